/* The auth section of endpoints.yaml and the auth rules and rate limits of
 * endpoints (endpoints[].auth, endpoints[].live_auth, endpoints[].rate_limit):
 * their key tables, and the check of the rules against what auth offers.
 */
#include "config_int.h"

#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AR(f) offsetof(struct cfg_auth_rule, f)
#define AK(f) offsetof(struct cfg_api_key, f)
#define JK(f) offsetof(struct cfg_jwt_key, f)
#define CF(f) offsetof(struct cfg, f)

const struct cfg_key cfg_auth_rule_keys[] = {
    {"anonymous", cfg_set_bool, AR(anonymous), 0, 0, 0, NULL, 0},
    {"scopes", cfg_set_strlist, AR(scopes), AR(n_scopes), 0, 0, NULL, 0},
    {"roles", cfg_set_strlist, AR(roles), AR(n_roles), 0, 0, NULL, 0},
    {"methods", cfg_set_strlist, AR(methods), AR(n_methods), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const char *const auth_methods[] = {"api_key", "jwt"};
static const char *const jwt_algs[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                       "RS512", "ES256", "ES384", "ES512"};

/* An endpoint's auth or live_auth section (its struct at base + k->off). */
void cfg_set_auth_rule(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                       void *base) {
    struct cfg_auth_rule *r = FIELD(base, k->off, struct cfg_auth_rule);
    char d[96];

    if (v->kind != YNODE_MAP) {
        cfg_errf(ld, v, "expected a mapping for \"%s\" (anonymous, scopes, roles, methods), got %s",
                 k->name, cfg_describe(v, d, sizeof(d)));
        return;
    }
    r->given = true;
    r->pos.line = v->line;
    r->pos.col = v->col;
    cfg_apply_map(ld, cfg_auth_rule_keys, v, r);
    for (size_t i = 0; i < r->n_methods; i++) {
        bool ok = false;

        for (size_t j = 0; j < sizeof(auth_methods) / sizeof(auth_methods[0]); j++)
            ok |= strcmp(r->methods[i], auth_methods[j]) == 0;
        if (!ok)
            cfg_errf(ld, ytree_get(v, "methods"),
                     "unknown auth method \"%s\" (expected api_key or jwt)", r->methods[i]);
    }
}

/* A string whose node's position is kept in the struct cfg_pos at k->off2. */
static void set_str_pos(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                        void *base) {
    cfg_set_str(ld, k, v, base);
    FIELD(base, k->off2, struct cfg_pos)->line = v->line;
    FIELD(base, k->off2, struct cfg_pos)->col = v->col;
}

static const struct cfg_key api_key_keys[] = {
    {"name", cfg_set_str, AK(name), 0, 0, 0, NULL, K_REQUIRED},
    {"sha256", cfg_set_str, AK(sha256), 0, 0, 0, NULL, K_REQUIRED},
    {"scopes", cfg_set_strlist, AK(scopes), AK(n_scopes), 0, 0, NULL, 0},
    {"roles", cfg_set_strlist, AK(roles), AK(n_roles), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct cfg_key jwt_key_keys[] = {
    {"kid", cfg_set_str, JK(kid), 0, 0, 0, NULL, 0},
    {"alg", cfg_set_str, JK(alg), 0, 0, 0, NULL, K_REQUIRED},
    {"secret", cfg_set_str, JK(secret), 0, 0, 0, NULL, 0},
    {"secret_file", cfg_set_str, JK(secret_file), 0, 0, 0, NULL, 0},
    {"pem_file", cfg_set_str, JK(pem_file), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

void cfg_api_key_free(struct cfg_api_key *a) {
    free(a->name);
    free(a->sha256);
    cfg_free_strv(a->scopes, a->n_scopes);
    cfg_free_strv(a->roles, a->n_roles);
}

void cfg_jwt_key_free(struct cfg_jwt_key *j) {
    free(j->kid);
    free(j->alg);
    free(j->secret);
    free(j->secret_file);
    free(j->pem_file);
}

static void api_key_init(void *item, const struct ynode *map) {
    struct cfg_api_key *a = item;

    a->pos.line = map->line;
    a->pos.col = map->col;
}

static void api_key_check(struct cfg_loader *ld, const struct ynode *map, void *item) {
    struct cfg_api_key *a = item;
    size_t n = 0;

    if (!a->sha256)
        return;
    for (char *p = a->sha256; *p; p++, n++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F'))) {
            n = 0;
            break;
        }
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    }
    if (n != 64)
        cfg_errf(
            ld, ytree_get(map, "sha256"),
            "\"sha256\" must be the 64 hex digits of the key's SHA-256 (never the key itself)");
}

static void jwt_key_init(void *item, const struct ynode *map) {
    struct cfg_jwt_key *j = item;

    j->pos.line = map->line;
    j->pos.col = map->col;
}

static void jwt_key_check(struct cfg_loader *ld, const struct ynode *map, void *item) {
    struct cfg_jwt_key *j = item;
    bool known = false;

    if (!j->alg)
        return;
    for (size_t i = 0; i < sizeof(jwt_algs) / sizeof(jwt_algs[0]); i++)
        known |= strcmp(j->alg, jwt_algs[i]) == 0;
    if (!known) {
        cfg_errf(
            ld, ytree_get(map, "alg"),
            "unknown JWT algorithm \"%s\" (expected HS256, RS256, ES256 or their 384/512 forms)",
            j->alg);
        return;
    }
    if (j->alg[0] == 'H' && !!j->secret == !!j->secret_file)
        cfg_errf(ld, map, "an %s key needs exactly one of \"secret\" and \"secret_file\"", j->alg);
    if (j->alg[0] == 'H' && j->pem_file)
        cfg_errf(ld, ytree_get(map, "pem_file"), "an %s key is a shared secret, not a PEM file",
                 j->alg);
    if (j->alg[0] != 'H' && !j->pem_file)
        cfg_errf(ld, map, "an %s key needs \"pem_file\" (its public key)", j->alg);
    if (j->alg[0] != 'H' && (j->secret || j->secret_file))
        cfg_errf(ld, map, "an %s key is a public key in \"pem_file\", not a secret", j->alg);
}

void cfg_set_api_keys(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                      void *base) {
    struct cfg *cfg = base;

    for (size_t i = 0; i < cfg->auth.n_api_keys; i++)
        cfg_api_key_free(&cfg->auth.api_keys[i]);
    free(cfg->auth.api_keys);
    cfg->auth.api_keys = cfg_apply_list(ld, k, v, sizeof(struct cfg_api_key), "API keys",
                                        &cfg->auth.n_api_keys, api_key_init, api_key_check);
}

void cfg_set_jwt_keys(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                      void *base) {
    struct cfg *cfg = base;

    for (size_t i = 0; i < cfg->auth.n_jwt_keys; i++)
        cfg_jwt_key_free(&cfg->auth.jwt_keys[i]);
    free(cfg->auth.jwt_keys);
    cfg->auth.jwt_keys = cfg_apply_list(ld, k, v, sizeof(struct cfg_jwt_key), "JWT keys",
                                        &cfg->auth.n_jwt_keys, jwt_key_init, jwt_key_check);
}

const struct cfg_key cfg_jwt_keys[] = {
    {"issuer", cfg_set_str, CF(auth.issuer), 0, 0, 0, NULL, 0},
    {"audience", cfg_set_str, CF(auth.audience), 0, 0, 0, NULL, 0},
    {"leeway", cfg_set_seconds, CF(auth.leeway), 0, 0, 3600, NULL, 0},
    {"jwks_file", set_str_pos, CF(auth.jwks_file), CF(auth.jwks_file_pos), 0, 0, NULL, 0},
    {"keys", cfg_set_jwt_keys, 0, 0, 0, 0, jwt_key_keys, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

const struct cfg_key cfg_auth_keys[] = {
    {"realm", cfg_set_str, CF(auth.realm), 0, 0, 0, NULL, 0},
    {"api_keys", cfg_set_api_keys, 0, 0, 0, 0, api_key_keys, 0},
    {"api_keys_file", set_str_pos, CF(auth.api_keys_file), CF(auth.api_keys_file_pos), 0, 0, NULL,
     0},
    {"jwt", cfg_set_section, 0, 0, 0, 0, cfg_jwt_keys, 0},
    {"origins", cfg_set_strlist, CF(auth.origins), CF(auth.n_origins), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

#define RL(f) offsetof(struct cfg_rate_limit, f)

const struct cfg_key cfg_rate_limit_keys[] = {
    {"requests", cfg_set_int, RL(requests), 0, 1, 1000000000, NULL, K_REQUIRED},
    {"per", cfg_set_duration, RL(per_ms), 0, 1, 86400000, NULL, 0},
    {"burst", cfg_set_int, RL(burst), 0, 1, 1000000000, NULL, 0},
    {"by", cfg_set_str, RL(by), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

/* An endpoint's rate_limit section (its struct at base + k->off). */
void cfg_set_rate_limit(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                        void *base) {
    struct cfg_rate_limit *r = FIELD(base, k->off, struct cfg_rate_limit);
    char d[96];

    if (v->kind != YNODE_MAP) {
        cfg_errf(ld, v, "expected a mapping for \"%s\" (requests, per, burst, by), got %s", k->name,
                 cfg_describe(v, d, sizeof(d)));
        return;
    }
    r->given = true;
    r->per_ms = 1000;
    r->pos.line = v->line;
    r->pos.col = v->col;
    cfg_apply_map(ld, cfg_rate_limit_keys, v, r);
    if (!r->burst)
        r->burst = r->requests;
    if (!r->by || strcmp(r->by, "client") == 0)
        r->by_kind = CFG_RATE_CLIENT;
    else if (strcmp(r->by, "principal") == 0)
        r->by_kind = CFG_RATE_PRINCIPAL;
    else if (strcmp(r->by, "route") == 0)
        r->by_kind = CFG_RATE_ROUTE;
    else
        cfg_errf(ld, ytree_get(v, "by"),
                 "unknown rate limit key \"%s\" (expected client, principal or route)", r->by);
}

void cfg_set_auth(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                  void *base) {
    struct cfg *cfg = base;

    cfg->auth.enabled = true;
    cfg_set_section(ld, k, v, base);
}

static void auth_report(void *ctx, const struct cfg_pos *pos, const char *msg) {
    struct cfg_loader *ld = ctx;

    if (pos && pos->line)
        cfg_add_err(ld, LERR_POS, pos->line, pos->col, msg);
    else
        cfg_add_err(ld, LERR_FILE, 0, 0, msg);
}

/* Checks the auth rules against what the auth section offers, and the key
 * files it names (read by auth_verify_files, as a start would). */
void cfg_check_auth(struct cfg_loader *ld) {
    struct cfg *cfg = ld->cfg;
    bool has_keys = cfg->auth.n_api_keys || cfg->auth.api_keys_file;
    bool has_jwt = cfg->auth.n_jwt_keys || cfg->auth.jwks_file;
    char msg[300];

    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        const struct cfg_auth_rule *rules[2] = {&ep->auth, &ep->live_auth};

        for (int r = 0; r < 2; r++) {
            const struct cfg_auth_rule *a = rules[r];

            if (!a->given || a->anonymous)
                continue;
            if (!cfg->auth.enabled) {
                snprintf(msg, sizeof(msg),
                         "%s asks for credentials but the file has no top-level \"auth\" section",
                         r ? "live_auth" : "auth");
                auth_report(ld, &a->pos, msg);
                continue;
            }
            for (size_t m = 0; m < a->n_methods; m++) {
                if ((strcmp(a->methods[m], "jwt") == 0 && !has_jwt) ||
                    (strcmp(a->methods[m], "api_key") == 0 && !has_keys)) {
                    snprintf(msg, sizeof(msg), "method %s is named but auth configures no %s",
                             a->methods[m],
                             a->methods[m][0] == 'j' ? "JWT keys (jwt.keys or jwt.jwks_file)"
                                                     : "API keys (api_keys or api_keys_file)");
                    auth_report(ld, &a->pos, msg);
                }
            }
        }
    }
    if (cfg->auth.enabled)
        auth_verify_files(cfg, auth_report, ld);
}
