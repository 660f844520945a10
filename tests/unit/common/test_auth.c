/* common/auth.c: API keys by hash, HS256 tokens minted here with libjwt
 * (good, wrong secret, unsigned, expired, wrong audience), scopes and roles,
 * anonymous rules, the principal's JSON, the challenges. The configuration
 * is a real endpoints.yaml written to a temporary file. */
#include "auth.h"
#include "config.h"

#include <criterion/criterion.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SECRET "unit-test-secret-0123456789abcdef"

static char path[] = "/tmp/fpesa-test-auth-XXXXXX";
static struct cfg *cfg;
static struct auth *auth;

static void setup(void) {
    char hex[65];
    int fd = mkstemp(path);
    FILE *f;
    bool failed = true;

    cr_assert(fd >= 0);
    f = fdopen(fd, "w");
    cr_assert_not_null(f);
    auth_sha256_hex("the-key", 7, hex);
    fprintf(f,
            "auth:\n"
            "  api_keys:\n"
            "    - { name: svc, sha256: \"%s\", scopes: [a, b], roles: [ops] }\n"
            "  jwt:\n"
            "    issuer: iss1\n"
            "    audience: aud1\n"
            "    leeway: 0s\n"
            "    keys:\n"
            "      - { alg: HS256, secret: \"" SECRET "\" }\n"
            "endpoints:\n"
            "  - { path: /open, method: POST, mode: publish, auth: { anonymous: true } }\n"
            "  - { path: /any, method: POST, mode: publish }\n"
            "  - { path: /scoped, method: POST, mode: publish, auth: { scopes: [a, c] } }\n"
            "  - { path: /role, method: POST, mode: publish, auth: { roles: [admin, ops] } }\n"
            "  - { path: /jwt, method: POST, mode: publish, auth: { methods: [jwt] } }\n",
            hex);
    fclose(f);
    cfg = cfg_load(path, stderr);
    cr_assert_not_null(cfg);
    auth = auth_new(cfg, &failed);
    cr_assert_not_null(auth);
    cr_assert(!failed);
}

static void teardown(void) {
    auth_free(auth);
    cfg_free(cfg);
    unlink(path);
}

static const struct cfg_auth_rule *rule(const char *p) {
    const struct cfg_endpoint *ep = cfg_endpoint_find(cfg, "POST", p);

    cr_assert_not_null(ep, "%s", p);
    return &ep->auth;
}

/* An HS256 token (new; free with free()) with the given claims. */
static char *token(const char *secret, jwt_alg_t alg, long exp_in, const char *aud,
                   const char *scope) {
    jwt_t *j = NULL;
    long now = (long)time(NULL);
    char *out;

    cr_assert_eq(jwt_new(&j), 0);
    jwt_add_grant(j, "sub", "carol");
    jwt_add_grant(j, "iss", "iss1");
    if (aud)
        jwt_add_grant(j, "aud", aud);
    if (scope)
        jwt_add_grant(j, "scope", scope);
    jwt_add_grant_int(j, "exp", now + exp_in);
    cr_assert_eq(jwt_set_alg(j, alg, alg == JWT_ALG_NONE ? NULL : (const unsigned char *)secret,
                             alg == JWT_ALG_NONE ? 0 : (int)strlen(secret)),
                 0);
    out = jwt_encode_str(j);
    jwt_free(j);
    cr_assert_not_null(out);
    return out;
}

static enum auth_outcome check(const char *route, const char *key, const char *bearer,
                               struct auth_principal *p) {
    struct auth_creds cr = {key, bearer};
    char why[200];

    return auth_check(auth, rule(route), &cr, p, why, sizeof(why));
}

TestSuite(auth, .init = setup, .fini = teardown);

Test(auth, sha256_hex) {
    char hex[65];

    auth_sha256_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(auth, api_key_by_hash_with_scopes_and_roles) {
    struct auth_principal p;

    cr_assert_eq(check("/any", "the-key", NULL, &p), AUTH_OK);
    cr_assert_str_eq(p.kind, "api_key");
    cr_assert_str_eq(p.name, "svc");
    cr_assert_str_eq(p.scopes, "a b");
    cr_assert_eq(check("/any", "the-kez", NULL, &p), AUTH_UNAUTHENTICATED);
    cr_assert_eq(check("/any", NULL, NULL, &p), AUTH_UNAUTHENTICATED);
    cr_assert_eq(check("/scoped", "the-key", NULL, &p), AUTH_FORBIDDEN, "scope c is missing");
    cr_assert_eq(check("/role", "the-key", NULL, &p), AUTH_OK, "role ops is one of the list");
    cr_assert_eq(check("/jwt", "the-key", NULL, &p), AUTH_UNAUTHENTICATED, "keys not accepted");
    cr_assert_eq(check("/open", NULL, NULL, &p), AUTH_OK);
    cr_assert_str_eq(p.kind, "anonymous");
}

Test(auth, hs256_tokens) {
    struct auth_principal p;
    char *good = token(SECRET, JWT_ALG_HS256, 600, "aud1", "c a");
    char *other = token("another-secret-of-sufficient-len", JWT_ALG_HS256, 600, "aud1", "a");
    char *expired = token(SECRET, JWT_ALG_HS256, -5, "aud1", "a");
    char *wrong_aud = token(SECRET, JWT_ALG_HS256, 600, "aud2", "a");
    char *unsigned_tok = token(SECRET, JWT_ALG_NONE, 600, "aud1", "a");

    cr_assert_eq(check("/jwt", NULL, good, &p), AUTH_OK);
    cr_assert_str_eq(p.kind, "jwt");
    cr_assert_str_eq(p.name, "carol");
    cr_assert_eq(check("/scoped", NULL, good, &p), AUTH_OK);
    cr_assert_eq(check("/role", NULL, good, &p), AUTH_FORBIDDEN);
    cr_assert_eq(check("/jwt", NULL, other, &p), AUTH_UNAUTHENTICATED);
    cr_assert_eq(check("/jwt", NULL, expired, &p), AUTH_UNAUTHENTICATED);
    cr_assert_eq(check("/jwt", NULL, wrong_aud, &p), AUTH_UNAUTHENTICATED);
    cr_assert_eq(check("/jwt", NULL, unsigned_tok, &p), AUTH_UNAUTHENTICATED);
    cr_assert_eq(check("/jwt", NULL, "not.a.token", &p), AUTH_UNAUTHENTICATED);
    cr_assert_eq(check("/jwt", NULL, "", &p), AUTH_UNAUTHENTICATED);
    free(good);
    free(other);
    free(expired);
    free(wrong_aud);
    free(unsigned_tok);
}

Test(auth, principal_json_and_challenges) {
    struct auth_principal p;
    char buf[200];
    char *json;

    cr_assert_eq(check("/any", "the-key", NULL, &p), AUTH_OK);
    json = auth_principal_json(&p);
    cr_assert_str_eq(json, "{\"kind\":\"api_key\",\"name\":\"svc\",\"scopes\":[\"a\",\"b\"],"
                           "\"roles\":[\"ops\"]}");
    free(json);
    auth_challenge(auth, rule("/any"), AUTH_UNAUTHENTICATED, false, buf, sizeof(buf));
    cr_assert_str_eq(buf, "Bearer realm=\"fpesa\", ApiKey realm=\"fpesa\"");
    auth_challenge(auth, rule("/jwt"), AUTH_UNAUTHENTICATED, true, buf, sizeof(buf));
    cr_assert_str_eq(buf, "Bearer realm=\"fpesa\", error=\"invalid_token\"");
    auth_challenge(auth, rule("/scoped"), AUTH_FORBIDDEN, true, buf, sizeof(buf));
    cr_assert(strstr(buf, "insufficient_scope") != NULL);
}

Test(auth, no_auth_section_means_anonymous) {
    struct auth_creds cr = {"x", NULL};
    struct auth_principal p;
    char why[100];

    cr_assert_eq(auth_check(NULL, NULL, &cr, &p, why, sizeof(why)), AUTH_OK);
    cr_assert_str_eq(p.kind, "anonymous");
}
