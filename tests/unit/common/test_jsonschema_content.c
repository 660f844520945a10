/* contentMediaType: application/json is asserted on strings (the first group
 * of the suite's optional/content.json, which the main suite run leaves out),
 * and the other content keywords stay annotations. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "jsonschema.h"

static int check(const char *schema_text, const char *instance_text) {
    json_t *schema = json_loads(schema_text, 0, NULL);
    json_t *inst = json_loads(instance_text, JSON_DECODE_ANY, NULL);
    struct jschema_error err;
    struct jschema *s;
    int rc;

    cr_assert(schema && inst);
    s = jschema_compile(schema, &err);
    cr_assert(s, "schema %s refused", schema_text);
    rc = jschema_validate(s, inst, &err);
    if (rc != 0 && strcmp(instance_text, "\"{:}\"") == 0)
        cr_expect_str_eq(err.keyword, "contentMediaType", "the error names the keyword: %s",
                         err.message);
    jschema_free(s);
    json_decref(schema);
    json_decref(inst);
    return rc;
}

Test(jsonschema_content, json_media_type_is_asserted) {
    const char *s = "{\"contentMediaType\": \"application/json\"}";

    cr_expect_eq(check(s, "\"{\\\"foo\\\": \\\"bar\\\"}\""), 0);
    cr_expect_eq(check(s, "\"[1, 2]\""), 0);
    cr_expect_eq(check(s, "\"null\""), 0);
    cr_expect_neq(check(s, "\"{:}\""), 0);
    cr_expect_neq(check(s, "\"\""), 0);
    cr_expect_neq(check(s, "\"{} trailing\""), 0);
    cr_expect_neq(check(s, "\"{\\\"a\\\": 1, \\\"a\\\": 2}\""), 0);
    cr_expect_eq(check(s, "100"), 0); /* not a string: ignored */
}

Test(jsonschema_content, other_content_keywords_are_annotations) {
    cr_expect_eq(check("{\"contentMediaType\": \"text/html\"}", "\"<p\""), 0);
    cr_expect_eq(check("{\"contentEncoding\": \"base64\"}", "\"%%%\""), 0);
    /* With an encoding, the media type is about the decoded bytes: not asserted. */
    cr_expect_eq(
        check("{\"contentMediaType\": \"application/json\", \"contentEncoding\": \"base64\"}",
              "\"{:}\""),
        0);
}

Test(jsonschema_content, a_non_string_media_type_is_refused) {
    json_t *schema = json_loads("{\"contentMediaType\": 5}", 0, NULL);
    struct jschema_error err;

    cr_expect_null(jschema_compile(schema, &err));
    json_decref(schema);
}
