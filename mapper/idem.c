#include "idem.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <string.h>

/* Adds a length-prefixed part, so that no two different messages feed the
 * digest the same bytes. */
static int add(EVP_MD_CTX *md, const char *s, size_t len) {
    unsigned char n[8];

    for (int i = 0; i < 8; i++)
        n[i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return EVP_DigestUpdate(md, n, sizeof(n)) == 1 && EVP_DigestUpdate(md, s, len) == 1 ? 0 : -1;
}

static int add_str(EVP_MD_CTX *md, const char *s) {
    return add(md, s ? s : "", s ? strlen(s) : 0);
}

int idem_fingerprint(const struct mbus_msg *msg, char *out) {
    static const char hex[] = "0123456789abcdef";
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = -1;

    if (!md)
        return -1;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    if (add_str(md, msg->content_type) < 0)
        goto out;
    for (size_t i = 0; i < msg->n_headers; i++)
        if (add_str(md, msg->headers[i].name) < 0 || add_str(md, msg->headers[i].value) < 0)
            goto out;
    if (add(md, msg->body ? msg->body : "", msg->body_len) < 0)
        goto out;
    if (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl * 2 != IDEM_FINGERPRINT_HEX)
        goto out;
    for (unsigned i = 0; i < dl; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * dl] = '\0';
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

char *idem_claim_body(const char *scope, const char *key, const char *fingerprint) {
    json_t *doc =
        json_pack("{s:s,s:s,s:s}", "scope", scope, "key", key, "fingerprint", fingerprint);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    return text;
}
