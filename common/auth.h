/* Authentication and authorization of a request, shared by restmapper (per
 * route) and liveupdate (per channel).
 *
 * Credentials are API keys, known only by their SHA-256 (auth.api_keys in
 * endpoints.yaml, or a JSON file it names), and JWT bearer tokens checked
 * with libjwt against the keys of auth.jwt (HS*, RS*, ES*; inline, PEM files
 * or a JWKS file): signature, "exp" (required), "nbf", "iss" and "aud", with
 * auth.jwt.leeway seconds of clock skew. A route's rule (struct
 * cfg_auth_rule) then asks for every one of its scopes and one of its roles.
 *
 * The token's algorithm must be the one of the key it is checked with: a
 * token naming "none", or an HS256 token meant to be checked with an RSA
 * public key as its secret, finds no key.
 *
 * Nothing here logs a credential; a principal is its kind and name (the API
 * key's name or the token's "sub"), scopes and roles.
 *
 * Thread-safety: struct auth is read-only after auth_new; auth_check may run
 * in many threads at once.
 */
#ifndef FPESA_AUTH_H
#define FPESA_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct cfg;
struct cfg_pos;
struct cfg_auth_rule;
struct auth;

/* A problem with a key file, at pos (borrowed; may be NULL) in the config. */
typedef void auth_report_fn(void *ctx, const struct cfg_pos *pos, const char *msg);

/* Reads every key file cfg's auth section names (api_keys_file, jwks_file,
 * secret_file, pem_file) as auth_new would, and reports each problem through
 * report. Returns the number of problems. */
int auth_verify_files(const struct cfg *cfg, auth_report_fn *report, void *ctx);

/* Builds the verifier of cfg's auth section; cfg (borrowed) must outlive it.
 * Returns NULL when the section is absent (every route is then anonymous)
 * or when a key cannot be loaded (*failed set, reason logged). */
struct auth *auth_new(const struct cfg *cfg, bool *failed);

/* Frees the verifier. NULL is fine. */
void auth_free(struct auth *a);

/* Who made a request. Strings are NUL-terminated and cut to fit. */
struct auth_principal {
    char kind[12];    /* "api_key", "jwt" or "anonymous" */
    char name[128];   /* the key's name or the token's "sub" */
    char scopes[512]; /* space-separated */
    char roles[256];  /* space-separated */
};

/* Credentials found on a request; either may be NULL. Borrowed. */
struct auth_creds {
    const char *api_key; /* X-API-Key, or api_key= in a websocket URL */
    const char *bearer;  /* Authorization: Bearer, or access_token= in a websocket URL */
};

enum auth_outcome {
    AUTH_OK = 0,
    AUTH_UNAUTHENTICATED = 401, /* no credentials, or bad ones */
    AUTH_FORBIDDEN = 403,       /* good credentials without a scope or role asked for */
};

/* Checks creds against rule (borrowed; NULL or not given: authentication
 * without scopes when auth is configured). a NULL: no auth section, every
 * request is anonymous. Fills *p and, unless AUTH_OK, why (a sentence for
 * the client, never a credential). */
enum auth_outcome auth_check(const struct auth *a, const struct cfg_auth_rule *rule,
                             const struct auth_creds *creds, struct auth_principal *p, char *why,
                             size_t why_len);

/* Writes the WWW-Authenticate value for an answer of outcome (401 or 403) to
 * rule (borrowed; may be NULL): a Bearer and/or ApiKey challenge with the
 * realm, and for a bad token error="invalid_token". Returns buf. */
char *auth_challenge(const struct auth *a, const struct cfg_auth_rule *rule,
                     enum auth_outcome outcome, bool had_creds, char *buf, size_t len);

/* The principal as compact JSON {"kind","name","scopes":[...],"roles":[...]},
 * the value of the x-fpesa-principal header of a bus message. New string
 * (free with free()), or NULL when memory runs out. */
char *auth_principal_json(const struct auth_principal *p);

/* Writes the lower-case hex SHA-256 of data (len bytes) to hex (65 bytes). */
void auth_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
