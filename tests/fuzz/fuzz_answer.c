// fuzz-sources: common/*.c mapper/bus*.c liveupdate/buf.c
/* The answer path: a worker's answer in, the status and body the mapper
 * sends out, and the frames liveupdate builds from a page of stored
 * messages. Checks, on arbitrary bytes:
 *  - whatever jansson reads as JSON is relayed (never a 502), and a relayed
 *    answer is valid JSON by the strict reader's own account too;
 *  - the status is 200 or 400..599;
 *  - a frame built from a relayed page's messages is valid JSON;
 *  - the UTF-8 cleaner and the JSON string escaper always give valid UTF-8
 *    and never more than they were allowed. */
#include "../../liveupdate/buf.h"
#include "../../mapper/bus.h"
#include "jsontext.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const char *data, size_t len) {
    struct live_msg *m = live_msg_new_text(0, "/c/", "id", "t", NULL, data, len, 16);

    if (!m)
        abort();
    if (jtext_check(
            (const char *)live_msg_payload(m), m->len,
            &(struct jtext_limits){.max_depth = JTEXT_RELAY_DEPTH + 1, .grammar_only = true},
            NULL) != JTEXT_OK)
        abort();
    live_msg_unref(m);
}

static int on_message(void *ctx, const char *text, size_t len) {
    const char *d;
    size_t dl;

    (void)ctx;
    if (jtext_member(text, len, "data", &d, &dl) == 1)
        check_frame(d, dl);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    /* (jansson stops at a NUL byte and ignores what follows; we refuse it.) */
    json_t *j =
        memchr(s, '\0', size) ? NULL : json_loadb(s, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    int st = mbus_answer_status(s, size, "application/json");
    const char *msgs;
    size_t mlen;
    char out[64];

    if (st != 200 && (st < 400 || st > 599))
        abort();
    if (j) {
        /* jansson read it, so it is relayed: a 502 only when it says so. */
        int code = 0;

        if (st == 502 && !(jtext_error_code(s, size, &code, NULL) == 1 && code == 502))
            abort();
    }
    json_decref(j);
    if (st != 502) {
        struct jtext_limits relay = {.max_depth = JTEXT_RELAY_DEPTH, .grammar_only = true};

        if (jtext_check(s, size, &relay, NULL) != JTEXT_OK)
            abort();
        if (jtext_member(s, size, "messages", &msgs, &mlen) == 1 && msgs[0] == '[')
            jtext_elements(msgs, mlen, on_message, NULL);
    }
    /* Error descriptions quote client bytes through these two. */
    {
        size_t n = jtext_utf8_clean(out, sizeof(out), s, size);

        struct jtext_limits relay = {.grammar_only = true};
        json_t *str;
        char quoted[80];

        if (n >= sizeof(out) || out[n] != '\0' || memchr(out, '\0', n))
            abort();
        str = json_stringn(out, n); /* jansson checks the UTF-8 */
        if (!str)
            abort();
        json_decref(str);
        quoted[0] = '"';
        n = jtext_escape(quoted + 1, sizeof(quoted) - 2, s, size);
        quoted[n + 1] = '"';
        if (jtext_check(quoted, n + 2, &relay, NULL) != JTEXT_OK)
            abort();
    }
    return 0;
}
