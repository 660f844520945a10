/* The webhook URL check: schemes, absolute URLs and the host allow-list. */
#include <criterion/criterion.h>
#include <jansson.h>

#include "../../../../handlers/timer_service/webhook.h"

static int check(const struct hook_allow *a, const char *url) {
    char why[256];
    return hook_url_check(a, url, why, sizeof(why));
}

Test(webhook, loopback_by_default) {
    struct hook_allow a;
    char err[128];

    cr_assert_eq(hook_allow_init(&a, NULL, err, sizeof(err)), 0);
    cr_expect_eq(check(&a, "http://127.0.0.1:8080/hook"), 0);
    cr_expect_eq(check(&a, "https://LOCALHOST/x?y=1"), 0);
    cr_expect_eq(check(&a, "http://[::1]:9/x"), 0);
    cr_expect_eq(check(&a, "http://example.com/x"), -1);
    cr_expect_eq(check(&a, "http://127.0.0.1.example.com/x"), -1);
    hook_allow_fini(&a);
}

Test(webhook, schemes_and_shapes) {
    struct hook_allow a;
    char err[128], why[256];

    cr_assert_eq(hook_allow_init(&a, NULL, err, sizeof(err)), 0);
    cr_expect_eq(check(&a, "ftp://127.0.0.1/x"), -1);
    cr_expect_eq(check(&a, "file:///etc/passwd"), -1);
    cr_expect_eq(check(&a, "/relative/path"), -1);
    cr_expect_eq(check(&a, "127.0.0.1/x"), -1);
    cr_expect_eq(check(&a, ""), -1);
    cr_expect_eq(hook_url_check(&a, "http://evil.test/", why, sizeof(why)), -1);
    cr_expect_str_eq(why, "url host \"evil.test\" is not allowed");
    hook_allow_fini(&a);
}

Test(webhook, suffixes_and_wildcard) {
    struct hook_allow a;
    char err[128];
    json_t *list = json_pack("[s,s]", "*.example.com", "api.test");

    cr_assert_eq(hook_allow_init(&a, list, err, sizeof(err)), 0);
    cr_expect_eq(check(&a, "https://hooks.example.com/x"), 0);
    cr_expect_eq(check(&a, "https://a.b.EXAMPLE.com/x"), 0);
    cr_expect_eq(check(&a, "https://example.com/x"), -1);
    cr_expect_eq(check(&a, "https://badexample.com/x"), -1);
    cr_expect_eq(check(&a, "http://api.test:81/"), 0);
    cr_expect_eq(check(&a, "http://127.0.0.1/"), -1);
    hook_allow_fini(&a);
    json_decref(list);

    list = json_pack("[s]", "*");
    cr_assert_eq(hook_allow_init(&a, list, err, sizeof(err)), 0);
    cr_expect_eq(check(&a, "https://anything.example.org/"), 0);
    hook_allow_fini(&a);
    json_decref(list);
}

Test(webhook, bad_lists_are_refused) {
    struct hook_allow a;
    char err[128];
    json_t *list = json_pack("[s,i]", "ok", 3);

    cr_expect_eq(hook_allow_init(&a, list, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "allow_hosts[1] must be a non-empty string");
    json_decref(list);
    list = json_string("localhost");
    cr_expect_eq(hook_allow_init(&a, list, err, sizeof(err)), -1);
    json_decref(list);
}
