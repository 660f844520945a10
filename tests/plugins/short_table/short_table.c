/* A plugin whose table claims to be shorter than version 1's: refused. */
#include <fpesa/handler.h>

const struct fpesa_handler *fpesa_handler_v1(void);
const struct fpesa_handler *fpesa_handler_v1(void) {
    static const struct fpesa_handler t = {
        .abi_version = FPESA_HANDLER_ABI_VERSION,
        .struct_size = 8,
    };
    return &t;
}
