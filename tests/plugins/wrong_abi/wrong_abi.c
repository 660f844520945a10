/* A plugin claiming ABI version 99: the host must refuse it, naming the
 * expected (1) and found (99) versions. */
#include <fpesa/handler.h>

static int wa_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                   void **state) {
    (void)host, (void)ctx, (void)config_json;
    *state = 0;
    return 0;
}

static int wa_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                    enum fpesa_result *results) {
    (void)state, (void)msgs, (void)n, (void)results;
    return 0;
}

const struct fpesa_handler *fpesa_handler_v1(void);
const struct fpesa_handler *fpesa_handler_v1(void) {
    static const struct fpesa_handler t = {
        .abi_version = 99,
        .struct_size = sizeof(struct fpesa_handler),
        .init = wa_init,
        .handle_batch = wa_batch,
    };
    return &t;
}
