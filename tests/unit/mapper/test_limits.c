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
    struct cfg_endpoint eps[4] = {0};
    struct cfg cfg = {0};
    size_t per_type[] = {0, 8 * 1024 * 1024};
    char *ct[] = {"application/json", "image/png"};
    char *out;

    eps[0] = (struct cfg_endpoint){.path = "/image", .method = "POST", .max_body = 4 << 20};
    eps[1] = (struct cfg_endpoint){.path = "/image/{id}", .method = "GET"};
    /* Two methods of one path: the larger limit speaks for the path. */
    eps[2] = (struct cfg_endpoint){.path = "/docs", .method = "GET"};
    eps[3] = (struct cfg_endpoint){.path = "/docs",
                                   .method = "PUT",
                                   .content_types = ct,
                                   .n_content_types = 2,
                                   .content_max_body = per_type};
    cfg.endpoints = eps;
    cfg.n_endpoints = 4;

    cr_assert_eq(limits_endpoint(&cfg, &eps[1]), 64 * 1024, "no http.max_body: 64 KiB");
    cfg.http.max_body = 1000;
    cr_assert_eq(limits_endpoint(&cfg, &eps[0]), 4 << 20);
    cr_assert_eq(limits_endpoint(&cfg, &eps[1]), 1000);
    cr_assert_eq(limits_endpoint(&cfg, &eps[3]), 8 * 1024 * 1024);
    out = printed(&cfg);
    cr_assert_str_eq(out, "default 1000\n/image 4194304\n/image/{id} 1000\n/docs 8388608\n");
    free(out);
}
