/* wordcount: an example rpc handler plugin. POST /wordcount/ with
 * {"text": "..."} is answered {"words": N}; a request without a text is
 * answered 400. Build: put this folder under handlers/ and run make
 * (handlers/wordcount/ becomes build/plugins/wordcount.so). */
#include <fpesa/handler.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct wordcount {
    const struct fpesa_host *host; /* borrowed, valid until fini */
    struct fpesa_ctx *ctx;         /* borrowed, valid until fini */
    int max_words;                 /* from the handler's config: block */
};

static int wc_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                   void **state) {
    struct wordcount *wc;
    const char *max;

    (void)config_json; /* read key by key through host->config instead */
    wc = calloc(1, sizeof(*wc));
    if (!wc) {
        host->log(ctx, FPESA_LOG_ERROR, "out of memory");
        return -1;
    }
    wc->host = host;
    wc->ctx = ctx;
    max = host->config(ctx, "max_words");
    wc->max_words = max ? (int)strtol(max, NULL, 10) : 0;
    host->log(ctx, FPESA_LOG_INFO, "ready queue=%s max_words=%d", host->queue(ctx), wc->max_words);
    *state = wc;
    return 0;
}

static int count_words(const char *s) {
    int n = 0, in_word = 0;

    for (; *s; s++) {
        int space = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r';
        if (!space && !in_word)
            n++;
        in_word = !space;
    }
    return n;
}

/* Sends doc (taken) as the answer to m. Returns 0 or -1. */
static int answer(struct wordcount *wc, const struct fpesa_message *m, json_t *doc) {
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    int rc = -1;

    if (text)
        rc = wc->host->reply(wc->ctx, m, text, strlen(text), "application/json");
    free(text);
    json_decref(doc);
    return rc;
}

static int wc_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                    enum fpesa_result *results) {
    struct wordcount *wc = state;

    for (size_t i = 0; i < n; i++) {
        const struct fpesa_message *m = msgs[i];
        json_t *req = json_loadb(m->body, m->len, 0, NULL);
        const char *text = json_string_value(json_object_get(json_object_get(req, "data"), "text"));
        json_t *doc;
        int words;

        if (!m->reply_to) {
            results[i] = FPESA_REJECT; /* nobody waits: poison, to the dead-letter queue */
        } else if (!text) {
            doc = json_pack("{s:{s:i,s:s}}", "error", "code", 400, "description",
                            "the body needs a string \"text\"");
            results[i] = answer(wc, m, doc) == 0 ? FPESA_OK : FPESA_RETRY;
        } else if (wc->max_words > 0 && (words = count_words(text)) > wc->max_words) {
            doc = json_pack("{s:{s:i,s:s}}", "error", "code", 422, "description", "too many words");
            results[i] = answer(wc, m, doc) == 0 ? FPESA_OK : FPESA_RETRY;
        } else {
            doc = json_pack("{s:i}", "words", count_words(text));
            results[i] = answer(wc, m, doc) == 0 ? FPESA_OK : FPESA_RETRY;
        }
        json_decref(req);
    }
    return 0;
}

static void wc_fini(void *state) {
    free(state);
}

FPESA_HANDLER_DEFINE("wordcount: counts the words of a text", wc_init, wc_batch, wc_fini)
