// fuzz-sources: common/*.c mapper/query.c
/* The query-string parser and percent-decoder on arbitrary bytes. */
#include "../../mapper/query.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *qs = strndup((const char *)data, size);
    json_t *out = NULL;
    char err[256];
    size_t dlen;
    char *dec;

    if (!qs)
        return 0;
    if (query_parse(qs, &out, err, sizeof(err)) == 0)
        json_decref(out);
    dec = query_decode((const char *)data, size, true, &dlen);
    if (dec)
        query_utf8_is_valid(dec, dlen);
    free(dec);
    free(qs);
    return 0;
}
