/* API keys and JWT bearer tokens (see auth.h). libjwt checks signatures;
 * OpenSSL hashes API keys and turns JWKS entries into the PEM keys libjwt
 * takes. */
#include "auth.h"

#include "config.h"
#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_KEY_FILE (1024 * 1024)
#define MAX_TOKEN 8192

struct api_key {
    char *name;
    unsigned char hash[32];
    char *scopes; /* space-separated */
    char *roles;
};

struct jwt_key {
    char *kid; /* NULL: any */
    jwt_alg_t alg;
    unsigned char *key; /* secret, or PEM text */
    int key_len;
};

struct auth {
    const struct cfg *cfg;
    const char *realm;
    struct api_key *keys;
    size_t n_keys;
    struct jwt_key *jwks;
    size_t n_jwks;
};

/* ---- small helpers ------------------------------------------------------------ */

void auth_sha256_hex(const void *data, size_t len, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1)
        n = 0;
    for (unsigned int i = 0; i < n && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[n ? 64 : 0] = '\0';
}

static int hex_to_bytes(const char *hex, unsigned char *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;

        for (int j = 0; j < 2; j++) {
            char c = hex[2 * i + (size_t)j];

            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                v |= (unsigned)(c - 'A' + 10);
            else
                return -1;
        }
        out[i] = (unsigned char)v;
    }
    return hex[2 * n] == '\0' ? 0 : -1;
}

/* Decodes base64url (no padding needed) into a new buffer; *len its size. */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *len) {
    unsigned char *out = malloc(n * 3 / 4 + 3);
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int v;

        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-' || c == '+')
            v = 62;
        else if (c == '_' || c == '/')
            v = 63;
        else if (c == '=')
            break;
        else {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *len = o;
    return out;
}

/* path as written, or relative to the folder of the config file. New string. */
static char *resolve_path(const struct cfg *cfg, const char *path) {
    const char *slash = cfg->file ? strrchr(cfg->file, '/') : NULL;
    size_t dl, n;
    char *out;

    if (path[0] == '/' || !slash)
        return strdup(path);
    dl = (size_t)(slash - cfg->file) + 1;
    n = dl + strlen(path) + 1;
    out = malloc(n);
    if (out)
        snprintf(out, n, "%.*s%s", (int)dl, cfg->file, path);
    return out;
}

/* Reads a whole file (at most MAX_KEY_FILE bytes) into a new NUL-terminated
 * buffer. On failure writes why and returns NULL. */
static char *slurp(const struct cfg *cfg, const char *path, size_t *len, char *why,
                   size_t why_len) {
    char *full = resolve_path(cfg, path), *buf = NULL;
    FILE *f = full ? fopen(full, "rb") : NULL;
    size_t n;
    int saved;

    if (!f) {
        saved = errno;
        snprintf(why, why_len, "cannot open \"%s\": %s", path,
                 full ? strerror(saved) : "no memory");
        free(full);
        return NULL;
    }
    buf = malloc(MAX_KEY_FILE + 1);
    if (buf) {
        n = fread(buf, 1, MAX_KEY_FILE + 1, f);
        if (n > MAX_KEY_FILE) {
            snprintf(why, why_len, "\"%s\" is larger than %d bytes", path, MAX_KEY_FILE);
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
            *len = n;
        }
    }
    fclose(f);
    free(full);
    return buf;
}

/* Appends word to out (of which o bytes are used), space-separated. */
static size_t add_word(char *out, size_t o, const char *word, size_t n) {
    if (o)
        out[o++] = ' ';
    memcpy(out + o, word, n);
    out[o + n] = '\0';
    return o + n;
}

static char *join_strv(char *const *v, size_t n) {
    size_t len = 1, o = 0;
    char *out;

    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    out = calloc(1, len);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        o = add_word(out, o, v[i], strlen(v[i]));
    return out;
}

/* Whether word is one of the space-separated words of list. */
static bool has_word(const char *list, const char *word) {
    size_t n = strlen(word);

    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ' ');
        size_t l = end ? (size_t)(end - p) : strlen(p);

        if (l == n && strncmp(p, word, n) == 0)
            return true;
        p = end ? end + 1 : p + l;
    }
    return false;
}

/* ---- key loading ---------------------------------------------------------------- */

struct loading {
    struct auth *a;
    auth_report_fn *report;
    void *ctx;
    int problems;
};

__attribute__((format(printf, 3, 4))) static void
problem(struct loading *l, const struct cfg_pos *pos, const char *fmt, ...) {
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    l->problems++;
    if (l->report)
        l->report(l->ctx, pos, msg);
    else
        LOG(LOG_ERROR, "auth: %s", msg);
}

static int add_api_key(struct auth *a, const char *name, const char *sha256, char *scopes,
                       char *roles) {
    struct api_key *n = realloc(a->keys, (a->n_keys + 1) * sizeof(*n));
    struct api_key *k;

    if (!n) {
        free(scopes);
        free(roles);
        return -1;
    }
    a->keys = n;
    k = &a->keys[a->n_keys];
    k->name = strdup(name);
    k->scopes = scopes;
    k->roles = roles;
    if (!k->name || !k->scopes || !k->roles || hex_to_bytes(sha256, k->hash, 32) != 0) {
        free(k->name);
        free(k->scopes);
        free(k->roles);
        return -1;
    }
    a->n_keys++;
    return 0;
}

static int add_jwt_key(struct auth *a, const char *kid, jwt_alg_t alg, const unsigned char *key,
                       size_t len) {
    struct jwt_key *n = realloc(a->jwks, (a->n_jwks + 1) * sizeof(*n));
    struct jwt_key *k;

    if (!n || len > INT_MAX)
        return -1;
    a->jwks = n;
    k = &a->jwks[a->n_jwks];
    k->kid = kid ? strdup(kid) : NULL;
    k->alg = alg;
    k->key = malloc(len + 1);
    k->key_len = (int)len;
    if ((kid && !k->kid) || !k->key) {
        free(k->kid);
        free(k->key);
        return -1;
    }
    memcpy(k->key, key, len);
    k->key[len] = '\0';
    a->n_jwks++;
    return 0;
}

/* Strings of a JSON array (or one string) joined by spaces; new. */
static char *json_words(const json_t *v) {
    size_t i, o = 0, len = 1;
    json_t *it;
    char *out;

    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (!json_is_array(v))
        return strdup("");
    json_array_foreach(v, i, it) {
        if (json_is_string(it))
            len += json_string_length(it) + 1;
    }
    out = calloc(1, len);
    if (!out)
        return NULL;
    json_array_foreach(v, i, it) {
        if (json_is_string(it))
            o = add_word(out, o, json_string_value(it), strlen(json_string_value(it)));
    }
    return out;
}

static void load_api_keys_file(struct loading *l) {
    const struct cfg *cfg = l->a->cfg;
    const struct cfg_pos *pos = &cfg->auth.api_keys_file_pos;
    char why[300];
    size_t len, i;
    char *text = slurp(cfg, cfg->auth.api_keys_file, &len, why, sizeof(why));
    json_error_t jerr;
    json_t *doc, *it;

    if (!text) {
        problem(l, pos, "api_keys_file: %s", why);
        return;
    }
    doc = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!json_is_array(doc)) {
        problem(l, pos,
                "api_keys_file %s: expected a JSON list of {name, sha256, scopes, roles}%s%s",
                cfg->auth.api_keys_file, doc ? "" : ": ", doc ? "" : jerr.text);
        json_decref(doc);
        return;
    }
    json_array_foreach(doc, i, it) {
        const char *name = json_string_value(json_object_get(it, "name"));
        const char *hash = json_string_value(json_object_get(it, "sha256"));
        unsigned char tmp[32];

        if (!name || !hash || strlen(hash) != 64 || hex_to_bytes(hash, tmp, 32) != 0) {
            problem(l, pos,
                    "api_keys_file %s: entry %zu needs \"name\" and \"sha256\" (64 hex digits)",
                    cfg->auth.api_keys_file, i);
            continue;
        }
        if (add_api_key(l->a, name, hash, json_words(json_object_get(it, "scopes")),
                        json_words(json_object_get(it, "roles"))) != 0)
            problem(l, pos, "out of memory");
    }
    json_decref(doc);
}

/* A big-endian base64url number of a JWK as an OpenSSL BIGNUM; new. */
static BIGNUM *jwk_bn(const json_t *jwk, const char *name) {
    const char *s = json_string_value(json_object_get(jwk, name));
    size_t len;
    unsigned char *bytes;
    BIGNUM *bn;

    if (!s)
        return NULL;
    bytes = b64url_decode(s, strlen(s), &len);
    if (!bytes)
        return NULL;
    bn = BN_bin2bn(bytes, (int)len, NULL);
    free(bytes);
    return bn;
}

/* The public key of an RSA or EC JWK as PEM text; new, or NULL. */
static char *jwk_to_pem(const json_t *jwk, const char *kty, char *why, size_t why_len) {
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    BIGNUM *n = NULL, *e = NULL;
    unsigned char *x = NULL, *y = NULL, *pub = NULL;
    char *pem = NULL;
    BUF_MEM *mem;

    if (!bld)
        goto out;
    if (strcmp(kty, "RSA") == 0) {
        n = jwk_bn(jwk, "n");
        e = jwk_bn(jwk, "e");
        if (!n || !e) {
            snprintf(why, why_len, "an RSA key needs \"n\" and \"e\"");
            goto out;
        }
        if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
            goto out;
        pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    } else {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        const char *xs = json_string_value(json_object_get(jwk, "x"));
        const char *ys = json_string_value(json_object_get(jwk, "y"));
        const char *group = NULL;
        size_t xl = 0, yl = 0, sz = 0;

        if (crv && strcmp(crv, "P-256") == 0)
            group = "prime256v1", sz = 32;
        else if (crv && strcmp(crv, "P-384") == 0)
            group = "secp384r1", sz = 48;
        else if (crv && strcmp(crv, "P-521") == 0)
            group = "secp521r1", sz = 66;
        if (!group || !xs || !ys) {
            snprintf(why, why_len,
                     "an EC key needs \"crv\" (P-256, P-384, P-521), \"x\" and \"y\"");
            goto out;
        }
        x = b64url_decode(xs, strlen(xs), &xl);
        y = b64url_decode(ys, strlen(ys), &yl);
        pub = malloc(1 + 2 * sz);
        if (!x || !y || !pub || xl != sz || yl != sz) {
            snprintf(why, why_len, "the EC key's \"x\" or \"y\" has the wrong size");
            goto out;
        }
        pub[0] = 4; /* uncompressed point */
        memcpy(pub + 1, x, sz);
        memcpy(pub + 1 + sz, y, sz);
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * sz))
            goto out;
        pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if (!pctx || !params || EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        snprintf(why, why_len, "OpenSSL refused the %s key", kty);
        goto out;
    }
    bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_PUBKEY(bio, pkey))
        goto out;
    BIO_get_mem_ptr(bio, &mem);
    pem = malloc(mem->length + 1);
    if (pem) {
        memcpy(pem, mem->data, mem->length);
        pem[mem->length] = '\0';
    }
out:
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(x);
    free(y);
    free(pub);
    return pem;
}

static void load_jwks(struct loading *l) {
    const struct cfg *cfg = l->a->cfg;
    const struct cfg_pos *pos = &cfg->auth.jwks_file_pos;
    char why[300];
    size_t len, i;
    char *text = slurp(cfg, cfg->auth.jwks_file, &len, why, sizeof(why));
    json_error_t jerr;
    json_t *doc, *keys, *jwk;

    if (!text) {
        problem(l, pos, "jwks_file: %s", why);
        return;
    }
    doc = json_loadb(text, len, 0, &jerr);
    free(text);
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        problem(l, pos, "jwks_file %s: expected a JWK set {\"keys\": [...]}", cfg->auth.jwks_file);
        json_decref(doc);
        return;
    }
    json_array_foreach(keys, i, jwk) {
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        const char *alg = json_string_value(json_object_get(jwk, "alg"));
        const char *use = json_string_value(json_object_get(jwk, "use"));
        jwt_alg_t a;

        if (use && strcmp(use, "sig") != 0)
            continue; /* an encryption key */
        if (!kty ||
            (strcmp(kty, "RSA") != 0 && strcmp(kty, "EC") != 0 && strcmp(kty, "oct") != 0)) {
            problem(l, pos, "jwks_file %s: key %zu has no supported \"kty\" (RSA, EC, oct)",
                    cfg->auth.jwks_file, i);
            continue;
        }
        if (!alg) /* the usual algorithm of the key type */
            alg = kty[0] == 'R' ? "RS256" : kty[0] == 'o' ? "HS256" : "ES256";
        a = jwt_str_alg(alg);
        if (a == JWT_ALG_NONE || a == JWT_ALG_TERM || (kty[0] == 'R' && alg[0] != 'R') ||
            (kty[0] == 'E' && alg[0] != 'E') || (kty[0] == 'o' && alg[0] != 'H')) {
            problem(l, pos, "jwks_file %s: key %zu: algorithm \"%s\" does not fit a %s key",
                    cfg->auth.jwks_file, i, alg, kty);
            continue;
        }
        if (kty[0] == 'o') {
            const char *k = json_string_value(json_object_get(jwk, "k"));
            size_t kl = 0;
            unsigned char *secret = k ? b64url_decode(k, strlen(k), &kl) : NULL;

            if (!secret || kl == 0)
                problem(l, pos, "jwks_file %s: key %zu: \"k\" is missing or not base64url",
                        cfg->auth.jwks_file, i);
            else if (add_jwt_key(l->a, kid, a, secret, kl) != 0)
                problem(l, pos, "out of memory");
            free(secret);
            continue;
        }
        char *pem = jwk_to_pem(jwk, kty, why, sizeof(why));

        if (!pem) {
            problem(l, pos, "jwks_file %s: key %zu: %s", cfg->auth.jwks_file, i, why);
            continue;
        }
        if (add_jwt_key(l->a, kid, a, (unsigned char *)pem, strlen(pem)) != 0)
            problem(l, pos, "out of memory");
        free(pem);
    }
    json_decref(doc);
}

static void load_config_keys(struct loading *l) {
    const struct cfg *cfg = l->a->cfg;
    char why[300];

    for (size_t i = 0; i < cfg->auth.n_api_keys; i++) {
        const struct cfg_api_key *k = &cfg->auth.api_keys[i];

        if (!k->name || !k->sha256 || strlen(k->sha256) != 64)
            continue; /* reported by the loader */
        if (add_api_key(l->a, k->name, k->sha256, join_strv(k->scopes, k->n_scopes),
                        join_strv(k->roles, k->n_roles)) != 0)
            problem(l, &k->pos, "API key \"%s\": not a valid SHA-256", k->name);
    }
    for (size_t i = 0; i < cfg->auth.n_jwt_keys; i++) {
        const struct cfg_jwt_key *k = &cfg->auth.jwt_keys[i];
        jwt_alg_t alg = k->alg ? jwt_str_alg(k->alg) : JWT_ALG_TERM;
        char *text = NULL;
        size_t len = 0;

        if (alg == JWT_ALG_NONE || alg == JWT_ALG_TERM)
            continue; /* reported by the loader */
        if (k->secret) {
            text = strdup(k->secret);
            len = text ? strlen(text) : 0;
        } else if (k->secret_file || k->pem_file) {
            text =
                slurp(cfg, k->secret_file ? k->secret_file : k->pem_file, &len, why, sizeof(why));
            if (!text) {
                problem(l, &k->pos, "%s", why);
                continue;
            }
            /* A secret file's final newline is not part of the secret. */
            while (k->secret_file && len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
                text[--len] = '\0';
        } else {
            continue;
        }
        if (k->pem_file) {
            BIO *bio = BIO_new_mem_buf(text, (int)len);
            EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
            int id = pk ? EVP_PKEY_get_base_id(pk) : 0;

            if (!pk)
                problem(l, &k->pos, "pem_file %s is not a PEM public key", k->pem_file);
            else if ((k->alg[0] == 'R' && id != EVP_PKEY_RSA) ||
                     (k->alg[0] == 'E' && id != EVP_PKEY_EC))
                problem(l, &k->pos, "pem_file %s does not hold an %s key for %s", k->pem_file,
                        k->alg[0] == 'R' ? "RSA" : "EC", k->alg);
            EVP_PKEY_free(pk);
            BIO_free(bio);
        }
        if (len == 0)
            problem(l, &k->pos, "the key of %s is empty", k->alg);
        else if (add_jwt_key(l->a, k->kid, alg, (unsigned char *)text, len) != 0)
            problem(l, &k->pos, "out of memory");
        free(text);
    }
    if (cfg->auth.api_keys_file)
        load_api_keys_file(l);
    if (cfg->auth.jwks_file)
        load_jwks(l);
}

static struct auth *load(const struct cfg *cfg, struct loading *l) {
    struct auth *a = calloc(1, sizeof(*a));

    l->a = a;
    if (!a) {
        problem(l, NULL, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    a->realm = cfg->auth.realm ? cfg->auth.realm : "fpesa";
    load_config_keys(l);
    return a;
}

int auth_verify_files(const struct cfg *cfg, auth_report_fn *report, void *ctx) {
    struct loading l = {.report = report, .ctx = ctx};

    auth_free(load(cfg, &l));
    return l.problems;
}

struct auth *auth_new(const struct cfg *cfg, bool *failed) {
    struct loading l = {0};
    struct auth *a;

    *failed = false;
    if (!cfg->auth.enabled)
        return NULL;
    a = load(cfg, &l);
    if (!a || l.problems) {
        auth_free(a);
        *failed = true;
        return NULL;
    }
    LOG(LOG_INFO, "auth api_keys=%zu jwt_keys=%zu", a->n_keys, a->n_jwks);
    return a;
}

void auth_free(struct auth *a) {
    if (!a)
        return;
    for (size_t i = 0; i < a->n_keys; i++) {
        free(a->keys[i].name);
        free(a->keys[i].scopes);
        free(a->keys[i].roles);
    }
    free(a->keys);
    for (size_t i = 0; i < a->n_jwks; i++) {
        free(a->jwks[i].kid);
        OPENSSL_cleanse(a->jwks[i].key, (size_t)a->jwks[i].key_len);
        free(a->jwks[i].key);
    }
    free(a->jwks);
    free(a);
}

/* ---- checking ------------------------------------------------------------------- */

static bool rule_allows(const struct cfg_auth_rule *rule, const char *method) {
    if (!rule || !rule->given || rule->n_methods == 0)
        return true;
    for (size_t i = 0; i < rule->n_methods; i++)
        if (strcmp(rule->methods[i], method) == 0)
            return true;
    return false;
}

static enum auth_outcome check_api_key(const struct auth *a, const char *key,
                                       struct auth_principal *p, char *why, size_t why_len) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    const struct api_key *hit = NULL;

    if (EVP_Digest(key, strlen(key), md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        snprintf(why, why_len, "the API key could not be checked");
        return AUTH_UNAUTHENTICATED;
    }
    /* Every key is compared, in constant time, so timing tells nothing. */
    for (size_t i = 0; i < a->n_keys; i++)
        if (CRYPTO_memcmp(md, a->keys[i].hash, 32) == 0)
            hit = &a->keys[i];
    if (!hit) {
        snprintf(why, why_len, "the API key is not valid");
        return AUTH_UNAUTHENTICATED;
    }
    snprintf(p->kind, sizeof(p->kind), "api_key");
    snprintf(p->name, sizeof(p->name), "%s", hit->name);
    snprintf(p->scopes, sizeof(p->scopes), "%s", hit->scopes);
    snprintf(p->roles, sizeof(p->roles), "%s", hit->roles);
    return AUTH_OK;
}

/* The "alg" and "kid" of a token's header; new JSON object, or NULL. */
static json_t *token_header(const char *token) {
    const char *dot = strchr(token, '.');
    size_t len;
    unsigned char *raw;
    json_t *h;

    if (!dot)
        return NULL;
    raw = b64url_decode(token, (size_t)(dot - token), &len);
    if (!raw)
        return NULL;
    h = json_loadb((const char *)raw, len, 0, NULL);
    free(raw);
    if (!json_is_object(h)) {
        json_decref(h);
        return NULL;
    }
    return h;
}

static bool audience_matches(jwt_t *jwt, const char *want) {
    char *text = jwt_get_grants_json(jwt, "aud");
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    bool ok = false;
    size_t i;
    json_t *it;

    if (json_is_string(v))
        ok = strcmp(json_string_value(v), want) == 0;
    else if (json_is_array(v))
        json_array_foreach(v, i, it) ok |=
            json_is_string(it) && strcmp(json_string_value(it), want) == 0;
    json_decref(v);
    free(text);
    return ok;
}

static void claim_words(jwt_t *jwt, const char *claim, char *out, size_t len) {
    char *text = jwt_get_grants_json(jwt, claim);
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    char *w = v ? json_words(v) : NULL;

    snprintf(out, len, "%s", w ? w : "");
    free(w);
    json_decref(v);
    free(text);
}

static enum auth_outcome check_jwt(const struct auth *a, const char *token,
                                   struct auth_principal *p, char *why, size_t why_len) {
    const struct cfg *cfg = a->cfg;
    json_t *hdr;
    const char *alg_s, *kid;
    jwt_alg_t alg;
    jwt_t *jwt = NULL;
    const struct jwt_key *used = NULL;
    long exp, nbf, now = (long)time(NULL);
    const char *s;
    enum auth_outcome rc = AUTH_UNAUTHENTICATED;

    if (strlen(token) > MAX_TOKEN) {
        snprintf(why, why_len, "the token is too long");
        return rc;
    }
    hdr = token_header(token);
    alg_s = json_string_value(json_object_get(hdr, "alg"));
    kid = json_string_value(json_object_get(hdr, "kid"));
    alg = alg_s ? jwt_str_alg(alg_s) : JWT_ALG_NONE;
    if (!hdr || alg == JWT_ALG_NONE || alg == JWT_ALG_TERM) {
        snprintf(why, why_len, "the token is malformed or unsigned");
        goto out;
    }
    /* Only keys made for the token's algorithm (and its kid, if it names
     * one) are tried. */
    for (size_t i = 0; i < a->n_jwks && !jwt; i++) {
        const struct jwt_key *k = &a->jwks[i];

        if (k->alg != alg || (kid && k->kid && strcmp(kid, k->kid) != 0))
            continue;
        if (jwt_decode(&jwt, token, k->key, k->key_len) == 0 && jwt)
            used = k;
        else if (jwt) {
            jwt_free(jwt);
            jwt = NULL;
        }
    }
    if (!jwt || !used || jwt_get_alg(jwt) != used->alg) {
        snprintf(why, why_len, "the token's signature is not valid for any configured key");
        goto out;
    }
    errno = 0;
    exp = jwt_get_grant_int(jwt, "exp");
    if (errno == ENOENT || exp == 0) {
        snprintf(why, why_len, "the token has no \"exp\"");
        goto out;
    }
    if (now > exp + cfg->auth.leeway) {
        snprintf(why, why_len, "the token expired");
        goto out;
    }
    errno = 0;
    nbf = jwt_get_grant_int(jwt, "nbf");
    if (errno != ENOENT && nbf && now + cfg->auth.leeway < nbf) {
        snprintf(why, why_len, "the token is not valid yet");
        goto out;
    }
    if (cfg->auth.issuer &&
        (!(s = jwt_get_grant(jwt, "iss")) || strcmp(s, cfg->auth.issuer) != 0)) {
        snprintf(why, why_len, "the token's issuer is not accepted");
        goto out;
    }
    if (cfg->auth.audience && !audience_matches(jwt, cfg->auth.audience)) {
        snprintf(why, why_len, "the token is not meant for this audience");
        goto out;
    }
    s = jwt_get_grant(jwt, "sub");
    snprintf(p->kind, sizeof(p->kind), "jwt");
    snprintf(p->name, sizeof(p->name), "%s", s ? s : "");
    claim_words(jwt, "scope", p->scopes, sizeof(p->scopes));
    if (!p->scopes[0])
        claim_words(jwt, "scp", p->scopes, sizeof(p->scopes));
    claim_words(jwt, "roles", p->roles, sizeof(p->roles));
    rc = AUTH_OK;
out:
    jwt_free(jwt);
    json_decref(hdr);
    return rc;
}

enum auth_outcome auth_check(const struct auth *a, const struct cfg_auth_rule *rule,
                             const struct auth_creds *creds, struct auth_principal *p, char *why,
                             size_t why_len) {
    enum auth_outcome rc;

    memset(p, 0, sizeof(*p));
    snprintf(p->kind, sizeof(p->kind), "anonymous");
    why[0] = '\0';
    if (!a || (rule && rule->given && rule->anonymous))
        return AUTH_OK;
    if (creds->api_key && rule_allows(rule, "api_key"))
        rc = check_api_key(a, creds->api_key, p, why, why_len);
    else if (creds->bearer && rule_allows(rule, "jwt"))
        rc = check_jwt(a, creds->bearer, p, why, why_len);
    else {
        snprintf(why, why_len, "this route needs credentials (%s)",
                 rule_allows(rule, "api_key") && rule_allows(rule, "jwt")
                     ? "an X-API-Key header or a bearer token"
                 : rule_allows(rule, "jwt") ? "a bearer token"
                                            : "an X-API-Key header");
        return AUTH_UNAUTHENTICATED;
    }
    if (rc != AUTH_OK)
        return rc;
    if (!rule || !rule->given)
        return AUTH_OK;
    for (size_t i = 0; i < rule->n_scopes; i++) {
        if (!has_word(p->scopes, rule->scopes[i])) {
            snprintf(why, why_len, "the scope \"%.100s\" is needed", rule->scopes[i]);
            return AUTH_FORBIDDEN;
        }
    }
    if (rule->n_roles) {
        for (size_t i = 0; i < rule->n_roles; i++)
            if (has_word(p->roles, rule->roles[i]))
                return AUTH_OK;
        snprintf(why, why_len, "one of the roles of this route is needed");
        return AUTH_FORBIDDEN;
    }
    return AUTH_OK;
}

char *auth_challenge(const struct auth *a, const struct cfg_auth_rule *rule,
                     enum auth_outcome outcome, bool had_creds, char *buf, size_t len) {
    const char *realm = a ? a->realm : "fpesa";
    size_t o = 0;

    buf[0] = '\0';
    if (rule_allows(rule, "jwt")) {
        if (outcome == AUTH_FORBIDDEN)
            o += (size_t)snprintf(buf, len, "Bearer realm=\"%s\", error=\"insufficient_scope\"",
                                  realm);
        else if (had_creds)
            o += (size_t)snprintf(buf, len, "Bearer realm=\"%s\", error=\"invalid_token\"", realm);
        else
            o += (size_t)snprintf(buf, len, "Bearer realm=\"%s\"", realm);
    }
    if (rule_allows(rule, "api_key") && o < len)
        snprintf(buf + o, len - o, "%sApiKey realm=\"%s\"", o ? ", " : "", realm);
    return buf;
}

static json_t *words_array(const char *list) {
    json_t *arr = json_array();

    for (const char *p = list; arr && *p;) {
        const char *end = strchr(p, ' ');
        size_t l = end ? (size_t)(end - p) : strlen(p);

        if (l)
            json_array_append_new(arr, json_stringn(p, l));
        p = end ? end + 1 : p + l;
    }
    return arr;
}

char *auth_principal_json(const struct auth_principal *p) {
    json_t *o = json_pack("{s:s, s:s, s:o, s:o}", "kind", p->kind, "name", p->name, "scopes",
                          words_array(p->scopes), "roles", words_array(p->roles));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    return text;
}
