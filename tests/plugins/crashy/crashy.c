/* A plugin that crashes its instance on a marked message: one whose body
 * holds the text of the config key "marker" (default "\"crash\":\"segv\"")
 * dies with SIGSEGV, or with abort() when the marker holds "abort". Every
 * other message is OK. For the host's crash isolation tests. */
#include <fpesa/handler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct crashy {
    char marker[128];
};

static int cr_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                   void **state) {
    struct crashy *s = calloc(1, sizeof(*s));
    const char *m = host->config(ctx, "marker");

    (void)config_json;
    if (!s)
        return -1;
    snprintf(s->marker, sizeof(s->marker), "%s", m ? m : "\"crash\":\"segv\"");
    *state = s;
    return 0;
}

static int cr_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                    enum fpesa_result *results) {
    struct crashy *s = state;

    for (size_t i = 0; i < n; i++) {
        if (msgs[i]->body && memmem(msgs[i]->body, msgs[i]->len, s->marker, strlen(s->marker))) {
            if (strstr(s->marker, "abort"))
                abort();
            int *volatile nowhere = NULL; /* volatile: the write cannot be optimised away */
            *nowhere = 1;
        }
        results[i] = FPESA_OK;
    }
    return 0;
}

static void cr_fini(void *state) {
    free(state);
}

FPESA_HANDLER_DEFINE("crashy: crashes on a marked message", cr_init, cr_batch, cr_fini)
