/* A shared object without the fpesa_handler_v1 entry symbol: the host must
 * refuse it, quoting dlerror(). */
int fpesa_handler_v0(void);
int fpesa_handler_v0(void) {
    return 0;
}
