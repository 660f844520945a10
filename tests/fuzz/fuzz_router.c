// fuzz-sources: common/*.c mapper/router.c mapper/query.c
/* The router on arbitrary methods and paths, over the repository's
 * endpoints.yaml: the first line is the method, the rest the raw path. */
#include "config.h"
#include "../../mapper/router.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cfg *cfg;
static struct router *router;

static void release(void) {
    router_free(router);
    cfg_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t mlen = nl ? (size_t)(nl - data) : size;
    char *method, *path;
    struct route_match m = {0};

    if (!router) {
        cfg = cfg_load(FPESA_FUZZ_CONFIG, NULL);
        router = cfg ? router_new(cfg) : NULL;
        if (!router)
            abort();
        atexit(release);
    }
    method = strndup((const char *)data, mlen);
    path = nl ? strndup((const char *)nl + 1, size - mlen - 1) : strdup("/");
    if (method && path) {
        router_match(router, method, path, &m);
        json_decref(m.params);
    }
    free(method);
    free(path);
    return 0;
}
