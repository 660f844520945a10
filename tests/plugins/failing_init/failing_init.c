/* A plugin whose init fails, saying why through the host's log service. */
#include <fpesa/handler.h>

static int fi_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                   void **state) {
    (void)config_json;
    *state = 0;
    host->log(ctx, FPESA_LOG_ERROR, "failing_init: this plugin always refuses to start");
    return -1;
}

static int fi_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                    enum fpesa_result *results) {
    (void)state, (void)msgs, (void)n, (void)results;
    return 0;
}

FPESA_HANDLER_DEFINE("always fails init", fi_init, fi_batch, NULL)
