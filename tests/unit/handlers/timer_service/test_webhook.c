/* The webhook URL check: schemes, absolute URLs and the host allow-list. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "../../../../handlers/timer_service/webhook.h"

static int check(const struct hook_allow *a, const char *url) {
    char why[256];
    return hook_url_check(a, url, why, sizeof(why));
}

static int init(struct hook_allow *a, const char *const *entries, size_t n) {
    char err[128];
    json_t *list = json_array();
    int rc;

    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_string(entries[i]));
    rc = hook_allow_init(a, list, err, sizeof(err));
    json_decref(list);
    return rc;
}

Test(webhook, nothing_by_default) {
    struct hook_allow a;
    char err[128];

    cr_assert_eq(hook_allow_init(&a, NULL, err, sizeof(err)), 0);
    cr_expect_eq(check(&a, "http://127.0.0.1:8080/hook"), -1);
    cr_expect_eq(check(&a, "https://localhost/x"), -1);
    cr_expect_eq(check(&a, "http://example.com/x"), -1);
    hook_allow_fini(&a);
}

Test(webhook, scheme_host_and_port) {
    struct hook_allow a;
    const char *const e[] = {"http://127.0.0.1:8080", "localhost", "https://api.test", "[::1]:*"};

    cr_assert_eq(init(&a, e, 4), 0);
    cr_expect_eq(check(&a, "http://127.0.0.1:8080/hook"), 0);
    cr_expect_eq(check(&a, "http://127.0.0.1:8081/hook"), -1, "another port");
    cr_expect_eq(check(&a, "https://127.0.0.1:8080/hook"), -1, "another scheme");
    cr_expect_eq(check(&a, "http://127.0.0.1/hook"), -1, "the default port is not 8080");
    cr_expect_eq(check(&a, "http://LOCALHOST/x"), 0);
    cr_expect_eq(check(&a, "https://localhost/x"), 0);
    cr_expect_eq(check(&a, "http://localhost:5672/x"), -1, "no port: the default one only");
    cr_expect_eq(check(&a, "https://api.test/"), 0);
    cr_expect_eq(check(&a, "https://api.test:8443/"), -1);
    cr_expect_eq(check(&a, "http://api.test/"), -1);
    cr_expect_eq(check(&a, "http://[::1]:9/x"), 0);
    cr_expect_eq(check(&a, "http://127.0.0.1.example.com:8080/x"), -1);
    hook_allow_fini(&a);
}

Test(webhook, schemes_and_shapes) {
    struct hook_allow a;
    char why[256];
    const char *const e[] = {"127.0.0.1:*"};

    cr_assert_eq(init(&a, e, 1), 0);
    cr_expect_eq(check(&a, "ftp://127.0.0.1/x"), -1);
    cr_expect_eq(check(&a, "file:///etc/passwd"), -1);
    cr_expect_eq(check(&a, "/relative/path"), -1);
    cr_expect_eq(check(&a, "127.0.0.1/x"), -1);
    cr_expect_eq(check(&a, ""), -1);
    cr_expect_eq(hook_url_check(&a, "http://evil.test/", why, sizeof(why)), -1);
    cr_expect_str_eq(why, "url http://evil.test:80 is not allowed");
    hook_allow_fini(&a);
}

Test(webhook, suffixes_and_wildcard) {
    struct hook_allow a;
    const char *const e[] = {"*.example.com", "api.test:81"};
    const char *const any[] = {"*:*"};

    cr_assert_eq(init(&a, e, 2), 0);
    cr_expect_eq(check(&a, "https://hooks.example.com/x"), 0);
    cr_expect_eq(check(&a, "https://a.b.EXAMPLE.com/x"), 0);
    cr_expect_eq(check(&a, "https://example.com/x"), -1);
    cr_expect_eq(check(&a, "https://badexample.com/x"), -1);
    cr_expect_eq(check(&a, "http://api.test:81/"), 0);
    cr_expect_eq(check(&a, "http://127.0.0.1/"), -1);
    hook_allow_fini(&a);

    cr_assert_eq(init(&a, any, 1), 0);
    cr_expect_eq(check(&a, "https://anything.example.org:9443/"), 0);
    hook_allow_fini(&a);
}

Test(webhook, internal_addresses_only_when_named) {
    struct hook_allow a;
    struct hook_pin pin;
    char why[256];
    const char *const wild[] = {"*:*"};
    const char *const named[] = {"http://127.0.0.1:*", "http://localhost:9"};

    cr_assert_eq(init(&a, wild, 1), 0);
    cr_expect_eq(hook_resolve(&a, "http://127.0.0.1:9/x", &pin, why, sizeof(why)), -1);
    cr_expect(strstr(why, "internal") != NULL, "%s", why);
    cr_expect_eq(hook_resolve(&a, "http://[::1]:9/x", &pin, why, sizeof(why)), -1);
    cr_expect_eq(hook_resolve(&a, "http://169.254.169.254/latest", &pin, why, sizeof(why)), -1);
    cr_expect_eq(hook_resolve(&a, "http://10.1.2.3/", &pin, why, sizeof(why)), -1);
    cr_expect_eq(hook_resolve(&a, "http://192.168.1.1/", &pin, why, sizeof(why)), -1);
    cr_expect_eq(hook_resolve(&a, "http://[::ffff:127.0.0.1]:9/", &pin, why, sizeof(why)), -1);
    hook_allow_fini(&a);

    cr_assert_eq(init(&a, named, 2), 0);
    cr_assert_eq(hook_resolve(&a, "http://127.0.0.1:9/x", &pin, why, sizeof(why)), 0, "%s", why);
    cr_expect_str_eq(pin.resolve, "127.0.0.1:9:127.0.0.1");
    cr_expect_eq(pin.n, 1);
    cr_expect_eq(hook_resolve(&a, "http://localhost:9/x", &pin, why, sizeof(why)), 0, "%s", why);
    cr_expect(pin.n >= 1);
    cr_expect_eq(hook_resolve(&a, "http://localhost:10/x", &pin, why, sizeof(why)), -1);
    hook_allow_fini(&a);
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
