/* echo: the example rpc handler. Answers every request with
 * {"echo": <the request envelope>}, proving that a route and its worker are
 * added with endpoints.yaml and a .so alone. */
#include <fpesa/handler.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct echo {
    const struct fpesa_host *host;
    struct fpesa_ctx *ctx;
};

static int echo_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                     void **state) {
    struct echo *e;

    (void)config_json;
    e = calloc(1, sizeof(*e));
    if (!e) {
        host->log(ctx, FPESA_LOG_ERROR, "echo: out of memory");
        return -1;
    }
    e->host = host;
    e->ctx = ctx;
    *state = e;
    return 0;
}

static void answer(struct echo *e, const struct fpesa_message *m, json_t *doc) {
    char *text = json_dumps(doc, JSON_COMPACT);

    if (text) {
        e->host->reply(e->ctx, m, text, strlen(text), "application/json");
        free(text);
    }
}

static int echo_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                      enum fpesa_result *results) {
    struct echo *e = state;

    for (size_t i = 0; i < n; i++) {
        const struct fpesa_message *m = msgs[i];
        json_error_t jerr;
        json_t *req, *doc;

        if (!m->reply_to) {
            /* Nobody waits for an answer: nothing this handler can do with it. */
            e->host->log(e->ctx, FPESA_LOG_WARN, "echo: request without reply_to id=%s",
                         m->message_id ? m->message_id : "-");
            results[i] = FPESA_REJECT;
            continue;
        }
        req = json_loadb(m->body, m->len, 0, &jerr);
        if (req)
            doc = json_pack("{s:o}", "echo", req);
        else
            doc = json_pack("{s:{s:i,s:s}}", "error", "code", 400, "description",
                            "the request is not valid JSON");
        if (doc)
            answer(e, m, doc);
        json_decref(doc);
        results[i] = FPESA_OK;
    }
    return 0;
}

static void echo_fini(void *state) {
    free(state);
}

FPESA_HANDLER_DEFINE("echo: answers rpc requests with the request", echo_init, echo_batch,
                     echo_fini)
