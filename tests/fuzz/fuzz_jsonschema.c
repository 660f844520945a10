// fuzz-sources: common/*.c
/* The JSON Schema compiler and validator on arbitrary input: the first line
 * is the schema, the rest the instance. Invalid schemas must be refused and
 * valid ones must validate anything without crashing. */
#include "jsonschema.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t slen = nl ? (size_t)(nl - data) : size;
    json_t *schema, *inst = NULL;
    struct jschema *js;
    struct jschema_error err;

    schema = json_loadb((const char *)data, slen, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (!schema)
        return 0;
    js = jschema_compile(schema, &err);
    if (js && nl)
        inst = json_loadb((const char *)nl + 1, size - slen - 1, JSON_DECODE_ANY, NULL);
    if (js && inst)
        jschema_validate(js, inst, &err);
    json_decref(inst);
    jschema_free(js);
    json_decref(schema);
    return 0;
}
