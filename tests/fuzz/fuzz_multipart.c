// fuzz-sources: common/*.c mapper/multipart.c mapper/magic.c
/* The multipart/form-data parser and the file signature checks on arbitrary
 * bytes. The first line of the input is the Content-Type header value (its
 * boundary parameter), the rest the body. */
#include "../../mapper/magic.h"
#include "../../mapper/multipart.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_part(void *ctx, const struct mpart *p) {
    size_t *total = ctx;

    /* Touch every byte the parser handed out, and check it as a file. */
    for (size_t i = 0; i < p->len; i++)
        *total += (uint8_t)p->data[i];
    *total += strlen(p->name) + strlen(p->filename) + strlen(p->content_type);
    magic_matches(p->content_type[0] ? p->content_type : "image/png", p->data, p->len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    char *ctype = strndup((const char *)data, hlen);
    char boundary[MPART_BOUNDARY_MAX + 1], err[200];
    size_t total = 0;
    /* The body in its own allocation, so that ASan sees any read past it. */
    size_t blen = nl ? size - hlen - 1 : 0;
    char *body = malloc(blen ? blen : 1);

    if (!ctype || !body)
        goto out;
    if (blen)
        memcpy(body, nl + 1, blen);
    if (multipart_boundary(ctype, boundary, sizeof(boundary)) != 0)
        memcpy(boundary, "B", 2);
    multipart_parse(body, blen, boundary, on_part, &total, err, sizeof(err));
    magic_matches("image/jpeg", body, blen);
    magic_matches("image/gif", body, blen);
    magic_matches("image/webp", body, blen);
    magic_matches("application/pdf", body, blen);

out:
    free(body);
    free(ctype);
    return 0;
}
