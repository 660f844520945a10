#include "config.h"
#include "../../../mapper/limits.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* What limits_print writes for cfg, as a new string (free). */
static char *printed(const struct cfg *cfg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    cr_assert(f);
    cr_assert_eq(limits_print(cfg, f), 0);
    fclose(f);
    return buf;
}

Test(limits, route_default_and_per_type_limits) {
    struct cfg_endpoint eps[4];
    struct cfg cfg;
    size_t per_type[] = {0, 8 * 1024 * 1024};
    char *ct[] = {"application/json", "image/png"};
    char *out;

    cr_assert_eq(cfg_init(&cfg), 0);
    cr_assert_eq(cfg.http.max_body, 64 * 1024, "no http.max_body: 64 KiB");
    /* A file with http.max_body: 1000, as cfg_load gives it: an endpoint
     * without a max_body of its own, and a content type without a limit of
     * its own, has 1000. */
    cfg.http.max_body = 1000;
    for (int i = 0; i < 4; i++) {
        cfg_endpoint_init(&eps[i]);
        eps[i].max_body = cfg.http.max_body;
    }
    per_type[0] = cfg.http.max_body;
    eps[0].path = "/image";
    eps[0].method = "POST";
    eps[0].max_body = 4 << 20;
    eps[1].path = "/image/{id}";
    eps[1].method = "GET";
    /* Two methods of one path: the larger limit speaks for the path. */
    eps[2].path = "/docs";
    eps[2].method = "GET";
    eps[3].path = "/docs";
    eps[3].method = "PUT";
    eps[3].content_types = ct;
    eps[3].n_content_types = 2;
    eps[3].content_max_body = per_type;
    cfg.endpoints = eps;
    cfg.n_endpoints = 4;

    cr_assert_eq(limits_endpoint(&cfg, &eps[0]), 4 << 20);
    cr_assert_eq(limits_endpoint(&cfg, &eps[1]), 1000);
    cr_assert_eq(limits_endpoint(&cfg, &eps[3]), 8 * 1024 * 1024);
    out = printed(&cfg);
    cr_assert_str_eq(out, "default 1000\n/image 4194304\n/image/{id} 1000\n/docs 8388608\n");
    free(out);
    /* The endpoints are this function's, not cfg's. */
    cfg.endpoints = NULL;
    cfg.n_endpoints = 0;
    cfg_fini(&cfg);
}
