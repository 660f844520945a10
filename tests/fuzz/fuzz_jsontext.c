// fuzz-sources: common/*.c
/* The exact JSON reader the mapper reads every body with, and the decimal
 * comparisons the schema keywords on numbers use. Checks, on arbitrary
 * bytes: the checker and the tree builder agree; what jansson reads is read
 * too (short of the limits: depth, numeric's range); a tree is always
 * something jansson can write; validation with number keywords terminates. */
#include "jsonschema.h"
#include "jsontext.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jschema *schema(const char *text) {
    json_t *j = json_loads(text, 0, NULL);
    struct jschema *js = j ? jschema_compile(j, NULL) : NULL;

    json_decref(j);
    return js;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct jschema *numbers, *unique;
    const char *s = (const char *)data;
    struct jtext_error err;
    struct jtext_numbers *nums = NULL;
    json_t *tree = NULL, *j;
    int checked, parsed;
    char *text;

    if (!numbers) {
        numbers = schema("{\"items\": {\"minimum\": -1e10, \"exclusiveMaximum\": 1e300,"
                         " \"multipleOf\": 0.25}, \"additionalProperties\": {\"type\": "
                         "\"integer\", \"maximum\": 9223372036854775807}}");
        unique = schema("{\"uniqueItems\": true, \"items\": {\"enum\": [1, 0.5, 1e19, \"a\"]}}");
        if (!numbers || !unique)
            abort();
    }
    checked = jtext_check(s, size, NULL, &err);
    parsed = jtext_parse(s, size, NULL, &tree, &nums, &err);
    /* The builder also refuses duplicate keys (a syntax error). */
    if (parsed == JTEXT_OK && checked != JTEXT_OK)
        abort();
    if (checked != JTEXT_OK && parsed == JTEXT_OK)
        abort();
    if (parsed != JTEXT_OK && (tree || nums))
        abort();
    /* (jansson stops at a NUL byte and ignores what follows; we refuse it.) */
    j = memchr(s, '\0', size) ? NULL
                              : json_loadb(s, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (j && parsed != JTEXT_OK && parsed != JTEXT_DEPTH && parsed != JTEXT_RANGE)
        abort();
    json_decref(j);
    if (parsed == JTEXT_OK) {
        text = json_dumps(tree, JSON_ENCODE_ANY);
        if (!text)
            abort();
        free(text);
        jschema_validate_exact(numbers, tree, nums, NULL);
        jschema_validate_exact(unique, tree, nums, NULL);
    }
    json_decref(tree);
    jtext_numbers_free(nums);
    return 0;
}
