/* Tests of the JSON Schema validator: the whole draft 7 test suite for the
 * keywords we support, then error reports, refusals and limits. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema.h"

#define SUITE_DIR FPESA_SOURCE_DIR "/../shared/json-schema-test-suite/draft7"

/* What the suite run leaves out, and why. group NULL skips the whole file.
 * optional/ is not read at all: it tests format assertions, bignums and
 * ECMA-262 regex details that draft 7 does not require. */
static const struct skip {
    const char *file;
    const char *group;
    const char *why;
} skips[] = {
    {"refRemote.json", NULL,
     "every group loads schemas from http://localhost:1234; only references within the "
     "document are supported"},
    {"definitions.json", "validate definition against metaschema",
     "refers to the draft-07 metaschema by its URL, a remote reference"},
    {"ref.json", "remote ref, containing refs itself",
     "refers to the draft-07 metaschema by its URL, a remote reference"},
};

static const struct skip *find_skip(const char *file, const char *group) {
    for (size_t i = 0; i < sizeof skips / sizeof skips[0]; i++) {
        if (strcmp(skips[i].file, file) != 0)
            continue;
        if (!skips[i].group || (group && strcmp(skips[i].group, group) == 0))
            return &skips[i];
    }
    return NULL;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct counts {
    int run, passed, skipped, files, skipped_files;
};

static void run_file(const char *name, struct counts *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", SUITE_DIR, name);
    json_error_t jerr;
    json_t *groups = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    cr_assert_not_null(groups, "%s:%d: %s", name, jerr.line, jerr.text);
    cr_assert(json_is_array(groups), "%s: not an array of groups", name);
    size_t gi;
    json_t *group;
    json_array_foreach(groups, gi, group) {
        const char *desc = json_string_value(json_object_get(group, "description"));
        json_t *tests = json_object_get(group, "tests");
        const struct skip *sk = find_skip(name, desc);
        if (sk) {
            n->skipped += (int)json_array_size(tests);
            continue;
        }
        struct jschema_error err;
        struct jschema *js = jschema_compile(json_object_get(group, "schema"), &err);
        size_t ti;
        json_t *test;
        json_array_foreach(tests, ti, test) {
            const char *tdesc = json_string_value(json_object_get(test, "description"));
            int want_valid = json_is_true(json_object_get(test, "valid"));
            n->run++;
            if (!js) {
                cr_expect(0, "%s / %s / %s: schema refused at %s: %s", name, desc, tdesc,
                          err.schema_path, err.message);
                continue;
            }
            struct jschema_error verr;
            int rc = jschema_validate(js, json_object_get(test, "data"), &verr);
            int ok = (rc == 0) == want_valid;
            n->passed += ok;
            cr_expect(ok, "%s / %s / %s: expected %s, got %s (%s at %s: %s)", name, desc, tdesc,
                      want_valid ? "valid" : "invalid", rc == 0 ? "valid" : "invalid", verr.keyword,
                      verr.instance_path, verr.message);
            if (rc != 0) {
                /* Every refusal must say something. */
                cr_expect(verr.message[0] != '\0', "%s / %s / %s: empty message", name, desc,
                          tdesc);
            }
        }
        jschema_free(js);
    }
    json_decref(groups);
}

static int count_cases(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", SUITE_DIR, name);
    json_t *groups = json_load_file(path, JSON_ALLOW_NUL, NULL);
    int total = 0;
    size_t gi;
    json_t *group;
    json_array_foreach(groups, gi, group) total +=
        (int)json_array_size(json_object_get(group, "tests"));
    json_decref(groups);
    return total;
}

Test(jsonschema, draft7_suite) {
    DIR *d = opendir(SUITE_DIR);
    cr_assert_not_null(d, "cannot open %s", SUITE_DIR);
    char *names[256];
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(d)) && count < sizeof names / sizeof names[0]) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0)
            names[count++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, count, sizeof names[0], cmp_names);
    cr_assert(count > 30, "only %zu suite files found in %s", count, SUITE_DIR);

    struct counts n = {0};
    for (size_t i = 0; i < count; i++) {
        const struct skip *sk = find_skip(names[i], NULL);
        if (sk && !sk->group) {
            n.skipped_files++;
            n.skipped += count_cases(names[i]);
            free(names[i]);
            continue;
        }
        n.files++;
        run_file(names[i], &n);
        free(names[i]);
    }
    fprintf(stderr,
            "json-schema-test-suite draft7: %d files, %d cases run, %d passed, %d failed, "
            "%d cases skipped (%d whole files):\n",
            n.files, n.run, n.passed, n.run - n.passed, n.skipped, n.skipped_files);
    for (size_t i = 0; i < sizeof skips / sizeof skips[0]; i++)
        fprintf(stderr, "  skipped %s%s%s: %s\n", skips[i].file, skips[i].group ? " / " : "",
                skips[i].group ? skips[i].group : "", skips[i].why);
    cr_expect_eq(n.run, n.passed);
}

/* ---- helpers ----------------------------------------------------------- */

static json_t *parse(const char *text) {
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(j, "bad test JSON: %s: %s", text, jerr.text);
    return j;
}

static struct jschema *compile_ok(const char *text) {
    json_t *j = parse(text);
    struct jschema_error err;
    struct jschema *js = jschema_compile(j, &err);
    json_decref(j);
    cr_assert_not_null(js, "schema %s refused at %s: %s", text, err.schema_path, err.message);
    return js;
}

static void expect_refused(const char *text, const char *schema_path, const char *keyword,
                           const char *message_part) {
    json_t *j = parse(text);
    struct jschema_error err;
    struct jschema *js = jschema_compile(j, &err);
    json_decref(j);
    cr_expect_null(js, "schema %s accepted", text);
    jschema_free(js);
    if (js)
        return;
    cr_expect_str_eq(err.schema_path, schema_path, "schema %s: %s", text, err.message);
    if (keyword)
        cr_expect_str_eq(err.keyword, keyword, "schema %s", text);
    cr_expect(strstr(err.message, message_part) != NULL, "schema %s: message \"%s\" lacks \"%s\"",
              text, err.message, message_part);
}

/* Validates instance against schema, expecting a failure described so. */
static void expect_error(const char *schema, const char *instance, const char *instance_path,
                         const char *keyword, const char *schema_path, const char *message) {
    struct jschema *js = compile_ok(schema);
    json_t *inst = parse(instance);
    struct jschema_error err;
    int rc = jschema_validate(js, inst, &err);
    cr_expect_eq(rc, -1, "%s accepted by %s", instance, schema);
    if (rc == -1) {
        cr_expect_str_eq(err.instance_path, instance_path, "%s", err.message);
        cr_expect_str_eq(err.keyword, keyword, "%s", err.message);
        cr_expect_str_eq(err.schema_path, schema_path, "%s", err.message);
        cr_expect_str_eq(err.message, message);
    }
    json_decref(inst);
    jschema_free(js);
}

static int validate_text(const struct jschema *js, const char *instance,
                         struct jschema_error *err) {
    json_t *inst = parse(instance);
    int rc = jschema_validate(js, inst, err);
    json_decref(inst);
    return rc;
}

/* ---- refusals at compile time ----------------------------------------- */

Test(jsonschema, unsupported_keywords_are_refused) {
    expect_refused("{\"foo\": 1}", "/foo", "foo", "unsupported keyword \"foo\"");
    expect_refused("{\"properties\": {\"a\": {\"typo\": true}}}", "/properties/a/typo", "typo",
                   "unsupported keyword \"typo\"");
    expect_refused("{\"items\": [true, {\"$defs\": {}}]}", "/items/1/$defs", "$defs",
                   "unsupported keyword \"$defs\"");
    /* Later drafts' keywords are not silently ignored either. */
    expect_refused("{\"unevaluatedProperties\": false}", "/unevaluatedProperties",
                   "unevaluatedProperties", "unsupported keyword");
    expect_refused("{\"a/b\": 1}", "/a~1b", NULL, "unsupported keyword \"a/b\"");
}

Test(jsonschema, invalid_keyword_values_are_refused) {
    expect_refused("{\"minimum\": \"x\"}", "/minimum", "minimum", "must be a number");
    expect_refused("{\"required\": 3}", "/required", "required", "array of strings");
    expect_refused("{\"required\": [\"a\", 1]}", "/required", "required", "item 1");
    expect_refused("{\"type\": \"text\"}", "/type", "type", "unknown type \"text\"");
    expect_refused("{\"type\": 5}", "/type", "type", "must be a string or an array");
    expect_refused("{\"maxLength\": -1}", "/maxLength", "maxLength", "non-negative integer");
    expect_refused("{\"minItems\": 1.5}", "/minItems", "minItems", "non-negative integer");
    expect_refused("{\"multipleOf\": 0}", "/multipleOf", "multipleOf", "greater than 0");
    expect_refused("{\"enum\": {}}", "/enum", "enum", "must be an array");
    expect_refused("{\"anyOf\": []}", "/anyOf", "anyOf", "non-empty array");
    expect_refused("{\"uniqueItems\": 1}", "/uniqueItems", "uniqueItems", "boolean");
    expect_refused("{\"exclusiveMinimum\": true}", "/exclusiveMinimum", "exclusiveMinimum",
                   "must be a number");
    expect_refused("{\"properties\": {\"a\": 3}}", "/properties/a", NULL,
                   "must be an object or a boolean");
    expect_refused("{\"dependencies\": {\"a\": [1]}}", "/dependencies/a", "a", "array of strings");
    expect_refused("{\"pattern\": \"(\"}", "/pattern", "pattern",
                   "invalid regular expression \"(\"");
    expect_refused("{\"patternProperties\": {\"[a\": true}}", "/patternProperties/[a", "[a",
                   "invalid regular expression");
}

Test(jsonschema, references_that_cannot_be_resolved_are_refused) {
    expect_refused("{\"properties\": {\"a\": {\"$ref\": \"#/definitions/nope\"}}}",
                   "/properties/a/$ref", "$ref", "cannot resolve $ref \"#/definitions/nope\"");
    expect_refused("{\"$ref\": \"http://example.com/other.json\"}", "/$ref", "$ref",
                   "only references within this document");
    expect_refused("{\"$ref\": 5}", "/$ref", "$ref", "must be a string");
    expect_refused("{\"$ref\": \"#/definitions/a%zz\"}", "/$ref", "$ref", "percent-encoding");
    /* A chain of references that never reaches a schema. */
    expect_refused("{\"definitions\": {\"a\": {\"$ref\": \"#/definitions/b\"},"
                   " \"b\": {\"$ref\": \"#/definitions/a\"}}, \"$ref\": \"#/definitions/a\"}",
                   "/$ref", "$ref", "refers back to itself");
    expect_refused("{\"$ref\": \"#\"}", "/$ref", "$ref", "refers back to itself");
    /* A reference to something that is not a schema. */
    expect_refused("{\"definitions\": {\"a\": 3}, \"$ref\": \"#/definitions/a\"}", "/definitions/a",
                   NULL, "must be an object or a boolean");
}

/* ---- error reports ------------------------------------------------------ */

Test(jsonschema, error_names_instance_path_keyword_and_schema_path) {
    expect_error("{\"type\": \"object\", \"properties\": {\"items\": {\"type\": \"array\","
                 " \"items\": {\"properties\": {\"name\": {\"type\": \"string\"}}}}}}",
                 "{\"items\": [{}, {}, {}, {\"name\": 3}]}", "/items/3/name", "type",
                 "/properties/items/items/properties/name/type", "expected string, got integer");
    expect_error("{\"type\": [\"string\", \"null\"]}", "1.5", "", "type", "/type",
                 "expected null or string, got number");
    expect_error("{\"required\": [\"id\", \"name\"]}", "{\"id\": 1}", "", "required", "/required",
                 "missing required property \"name\"");
    expect_error("{\"properties\": {\"a\": true}, \"additionalProperties\": false}",
                 "{\"a\": 1, \"b/c~\": 2}", "/b~1c~0", "additionalProperties",
                 "/additionalProperties", "property \"b/c~\" is not allowed");
    expect_error("{\"anyOf\": [{\"type\": \"string\"}, {\"minimum\": 3}]}", "2", "", "anyOf",
                 "/anyOf", "must match at least one of the 2 schemas in anyOf");
    expect_error("{\"oneOf\": [{\"type\": \"integer\"}, {\"minimum\": 3}]}", "4", "", "oneOf",
                 "/oneOf", "must match exactly one schema in oneOf, matches 0 and 1");
    expect_error("{\"not\": {\"type\": \"integer\"}}", "4", "", "not", "/not",
                 "must not match the schema in \"not\"");
    expect_error("{\"minimum\": 2.5}", "2", "", "minimum", "/minimum", "must be >= 2.5");
    expect_error("{\"exclusiveMaximum\": 10}", "10", "", "exclusiveMaximum", "/exclusiveMaximum",
                 "must be < 10");
    expect_error("{\"multipleOf\": 3}", "10", "", "multipleOf", "/multipleOf",
                 "must be a multiple of 3");
    expect_error("{\"maxLength\": 4}", "\"h\\u00e9llo\"", "", "maxLength", "/maxLength",
                 "must be at most 4 characters long, got 5");
    expect_error("{\"pattern\": \"^[a-z]+$\"}", "\"abc1\"", "", "pattern", "/pattern",
                 "must match the pattern \"^[a-z]+$\"");
    expect_error("{\"uniqueItems\": true}", "[1, {\"a\": 1, \"b\": 2}, {\"b\": 2, \"a\": 1.0}]", "",
                 "uniqueItems", "/uniqueItems", "items must be unique, items 1 and 2 are equal");
    expect_error("{\"items\": [{\"type\": \"string\"}], \"additionalItems\": false}", "[\"a\", 2]",
                 "", "additionalItems", "/additionalItems", "must have at most 1 items, got 2");
    expect_error("{\"contains\": {\"const\": 5}}", "[1, 2]", "", "contains", "/contains",
                 "no item matches the \"contains\" schema");
    expect_error("{\"dependencies\": {\"card\": [\"billing\"]}}", "{\"card\": 1}", "",
                 "dependencies", "/dependencies",
                 "property \"billing\" is required when \"card\" is present");
    expect_error("{\"propertyNames\": {\"maxLength\": 3}}", "{\"abcd\": 1}", "/abcd",
                 "propertyNames", "/propertyNames",
                 "invalid property name \"abcd\": must be at most 3 characters long, got 4");
    expect_error("{\"enum\": [1, \"a\"]}", "\"b\"", "", "enum", "/enum",
                 "must be one of the 2 allowed values");
    expect_error("{\"const\": {\"a\": [1]}}", "{\"a\": [2]}", "", "const", "/const",
                 "must be equal to the constant value");
    expect_error("{\"properties\": {\"x\": false}}", "{\"x\": 1}", "/x", "false", "/properties/x",
                 "no value is allowed here");
    expect_error("{\"if\": {\"minimum\": 10}, \"then\": {\"multipleOf\": 5},"
                 " \"else\": {\"maximum\": 3}}",
                 "5", "", "maximum", "/else/maximum", "must be <= 3");
    /* Through a reference the schema path is the referenced schema's. */
    expect_error("{\"definitions\": {\"id\": {\"type\": \"integer\"}},"
                 " \"properties\": {\"a\": {\"$ref\": \"#/definitions/id\"}}}",
                 "{\"a\": \"x\"}", "/a", "type", "/definitions/id/type",
                 "expected integer, got string");
}

Test(jsonschema, valid_instance_and_null_arguments) {
    struct jschema *js = compile_ok("{\"type\": \"object\", \"required\": [\"a\"]}");
    struct jschema_error err;
    cr_expect_eq(validate_text(js, "{\"a\": null}", &err), 0);
    cr_expect_eq(validate_text(js, "{}", NULL), -1);
    cr_expect_eq(jschema_validate(js, NULL, &err), -1);
    cr_expect_eq(jschema_validate(NULL, json_null(), &err), -1);
    jschema_free(js);
    jschema_free(NULL);
    cr_expect_null(jschema_compile(NULL, &err));
    json_t *three = json_integer(3);
    cr_expect_null(jschema_compile(three, NULL));
    json_decref(three);
}

Test(jsonschema, numbers_compare_by_value) {
    struct jschema *js = compile_ok("{\"enum\": [1, {\"a\": 2.0}], \"type\": \"integer\","
                                    " \"maximum\": 9007199254740993}");
    cr_expect_eq(validate_text(js, "1.0", NULL), 0);
    cr_expect_eq(validate_text(js, "1", NULL), 0);
    cr_expect_eq(validate_text(js, "2", NULL), -1);
    jschema_free(js);
    js = compile_ok("{\"maximum\": 9007199254740992}");
    cr_expect_eq(validate_text(js, "9007199254740993", NULL), -1);
    cr_expect_eq(validate_text(js, "9007199254740992", NULL), 0);
    jschema_free(js);
    js = compile_ok("{\"multipleOf\": 0.01}");
    cr_expect_eq(validate_text(js, "19.99", NULL), 0);
    cr_expect_eq(validate_text(js, "19.995", NULL), -1);
    jschema_free(js);
}

/* ---- limits -------------------------------------------------------------- */

static json_t *nested_arrays(int depth) {
    json_t *j = json_array();
    for (int i = 0; i < depth; i++) {
        json_t *outer = json_array();
        json_array_append_new(outer, j);
        j = outer;
    }
    return j;
}

Test(jsonschema, deep_instances_are_refused_not_crashed) {
    struct jschema *js = compile_ok("{\"items\": {\"$ref\": \"#\"}}");
    json_t *shallow = nested_arrays(100);
    cr_expect_eq(jschema_validate(js, shallow, NULL), 0);
    json_t *deep = nested_arrays(5000);
    struct jschema_error err;
    cr_expect_eq(jschema_validate(js, deep, &err), -1);
    cr_expect(strstr(err.message, "nested deeper") != NULL, "%s", err.message);
    jschema_free(js);

    /* A deep instance compared by value. */
    js = compile_ok("{\"uniqueItems\": true}");
    json_t *pair = json_pack("[OO]", deep, deep);
    cr_expect_eq(jschema_validate(js, pair, &err), -1);
    json_decref(pair);
    jschema_free(js);
    json_decref(deep);
    json_decref(shallow);
}

Test(jsonschema, recursion_without_progress_is_an_error_even_under_not) {
    const char *schemas[] = {
        "{\"definitions\": {\"a\": {\"allOf\": [{\"$ref\": \"#/definitions/a\"}]}},"
        " \"$ref\": \"#/definitions/a\"}",
        "{\"definitions\": {\"a\": {\"anyOf\": [{\"$ref\": \"#/definitions/a\"}]}},"
        " \"not\": {\"$ref\": \"#/definitions/a\"}}",
    };
    for (size_t i = 0; i < 2; i++) {
        struct jschema *js = compile_ok(schemas[i]);
        struct jschema_error err;
        cr_expect_eq(validate_text(js, "1", &err), -1, "%s", schemas[i]);
        cr_expect(strstr(err.message, "deeper than") != NULL, "%s", err.message);
        jschema_free(js);
    }
}

Test(jsonschema, schema_outlives_the_document_it_came_from) {
    json_t *j = parse("{\"properties\": {\"a\": {\"enum\": [\"x\"]}}, \"required\": [\"a\"]}");
    struct jschema *js = jschema_compile(j, NULL);
    json_decref(j);
    cr_assert_not_null(js);
    cr_expect_eq(validate_text(js, "{\"a\": \"x\"}", NULL), 0);
    cr_expect_eq(validate_text(js, "{\"a\": \"y\"}", NULL), -1);
    jschema_free(js);
}

/* ---- concurrency ----------------------------------------------------------- */

struct worker {
    const struct jschema *js;
    int failures;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    json_t *good = json_pack("{s:s, s:[i,i]}", "name", "abc", "list", 1, 2);
    json_t *bad = json_pack("{s:s, s:[i,i]}", "name", "ab-", "list", 1, 1);
    for (int i = 0; i < 2000; i++) {
        struct jschema_error err;
        if (jschema_validate(w->js, good, &err) != 0)
            w->failures++;
        if (jschema_validate(w->js, bad, &err) != -1 || strcmp(err.keyword, "pattern") != 0)
            w->failures++;
    }
    json_decref(good);
    json_decref(bad);
    return NULL;
}

Test(jsonschema, one_compiled_schema_many_threads) {
    struct jschema *js = compile_ok("{\"properties\": {\"name\": {\"pattern\": \"^[a-z]+$\"},"
                                    " \"list\": {\"uniqueItems\": true}}}");
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){js, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(w[i].failures, 0);
    }
    jschema_free(js);
}

/* HTTP threads may have smaller stacks than the main thread: the depth
 * limits must stop recursion well before 1 MiB of stack is used. */
static void *deep_main(void *arg) {
    int *result = arg;
    json_t *loop = json_pack("{s:{s:{s:[{s:s}]}}, s:{s:s}}", "definitions", "a", "anyOf", "$ref",
                             "#/definitions/a", "not", "$ref", "#/definitions/a");
    json_t *tree = json_pack("{s:{s:s}}", "items", "$ref", "#");
    struct jschema *js = jschema_compile(loop, NULL);
    struct jschema *items = jschema_compile(tree, NULL);
    json_decref(loop);
    json_decref(tree);
    json_t *deep = nested_arrays(5000);
    result[0] = js ? jschema_validate(js, deep, NULL) : 1;
    result[1] = items ? jschema_validate(items, deep, NULL) : 1;
    json_decref(deep);
    jschema_free(js);
    jschema_free(items);
    return NULL;
}

Test(jsonschema, limits_hold_on_a_small_thread_stack) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    pthread_t th;
    int result[2] = {0, 0};
    cr_assert_eq(pthread_create(&th, &attr, deep_main, result), 0);
    pthread_join(th, NULL);
    pthread_attr_destroy(&attr);
    cr_expect_eq(result[0], -1);
    cr_expect_eq(result[1], -1);
}

Test(jsonschema, unique_items_on_long_arrays) {
    struct jschema *js = compile_ok("{\"uniqueItems\": true}");
    json_t *arr = json_array();
    for (int i = 0; i < 5000; i++)
        json_array_append_new(arr, json_pack("{s:i, s:[i, f]}", "k", i, "v", i, i + 0.5));
    struct jschema_error err;
    cr_expect_eq(jschema_validate(js, arr, &err), 0, "%s", err.message);
    /* Equal by value to item 1234, keys in another order, 1.0 for 1. */
    json_array_append_new(arr, json_pack("{s:[f, f], s:f}", "v", 1234.0, 1234.5, "k", 1234.0));
    cr_expect_eq(jschema_validate(js, arr, &err), -1);
    cr_expect_str_eq(err.message, "items must be unique, items 1234 and 5000 are equal");
    json_decref(arr);

    arr = json_pack("[i, f, s, n, b, b, [], {}]", 1, 1.5, "1", 1, 0);
    for (int i = 0; i < 20; i++)
        json_array_append_new(arr, json_integer(100 + i));
    cr_expect_eq(jschema_validate(js, arr, NULL), 0);
    json_array_append_new(arr, json_real(1.0));
    cr_expect_eq(jschema_validate(js, arr, &err), -1);
    cr_expect_str_eq(err.message, "items must be unique, items 0 and 28 are equal");
    json_decref(arr);
    jschema_free(js);
}

Test(jsonschema, catastrophic_patterns_give_up) {
    struct jschema *js = compile_ok("{\"pattern\": \"^(a+)+$\"}");
    char text[80];
    memset(text, 'a', 60);
    text[60] = '!';
    text[61] = '\0';
    json_t *s = json_string(text);
    struct jschema_error err;
    cr_expect_eq(jschema_validate(js, s, &err), -1);
    cr_expect_str_eq(err.keyword, "pattern");
    cr_expect_str_eq(err.message, "pattern \"^(a+)+$\" could not be evaluated");
    json_decref(s);
    jschema_free(js);
}

Test(jsonschema, root_reference_with_sibling_definitions) {
    /* A common shape: the root is a reference into its own definitions. */
    expect_error("{\"$ref\": \"#/definitions/a\", \"definitions\": {\"a\": {\"type\": \"object\","
                 " \"properties\": {\"b\": {\"$ref\": \"#/definitions/b\"}}},"
                 " \"b\": {\"type\": \"integer\"}}}",
                 "{\"b\": \"x\"}", "/b", "type", "/definitions/b/type",
                 "expected integer, got string");
    /* What such a reference reaches is checked like any other schema. */
    expect_refused("{\"$ref\": \"#/definitions/a\", \"definitions\": {\"a\": {\"typo\": 1}}}",
                   "/definitions/a/typo", "typo", "unsupported keyword \"typo\"");
    /* References by "$id" within the document. */
    expect_error("{\"$id\": \"http://example.com/a.json\", \"definitions\": {\"b\": {\"$id\":"
                 " \"b.json\", \"type\": \"integer\"}}, \"properties\": {\"q\": {\"$ref\":"
                 " \"b.json\"}}}",
                 "{\"q\": 1.5}", "/q", "type", "/definitions/b/type",
                 "expected integer, got number");
}

/* Every schema and instance of the suite, optional parts and remote
 * references included: each schema compiles or is refused with a message,
 * and validation never crashes, whatever the answer. */
static void robustness_dir(const char *dir, int *compiled, int *refused) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        json_t *groups = json_load_file(path, JSON_ALLOW_NUL, NULL);
        size_t gi;
        json_t *group;
        json_array_foreach(groups, gi, group) {
            struct jschema_error err;
            struct jschema *js = jschema_compile(json_object_get(group, "schema"), &err);
            if (!js) {
                (*refused)++;
                cr_expect(err.message[0] != '\0', "%s: refused without a message", path);
                continue;
            }
            (*compiled)++;
            size_t ti;
            json_t *test;
            json_array_foreach(json_object_get(group, "tests"), ti, test) {
                int rc = jschema_validate(js, json_object_get(test, "data"), &err);
                cr_expect(rc == 0 || (rc == -1 && err.message[0] != '\0'), "%s", path);
            }
            jschema_free(js);
        }
        json_decref(groups);
    }
    closedir(d);
}

Test(jsonschema, whole_suite_never_crashes) {
    int compiled = 0, refused = 0;
    robustness_dir(SUITE_DIR, &compiled, &refused);
    robustness_dir(SUITE_DIR "/optional", &compiled, &refused);
    robustness_dir(SUITE_DIR "/optional/format", &compiled, &refused);
    cr_expect(compiled > 250, "%d compiled", compiled);
    cr_expect(refused > 0, "remote references should be refused");
}

Test(jsonschema, strings_built_without_utf8_checks) {
    struct jschema *js = compile_ok("{\"pattern\": \"^a\"}");
    json_t *bad = json_stringn_nocheck("a\xff", 2);
    struct jschema_error err;
    cr_expect_eq(jschema_validate(js, bad, &err), -1);
    cr_expect_str_eq(err.message, "must be valid UTF-8");
    json_decref(bad);
    jschema_free(js);
}

/* optional/bignum.json and optional/float-overflow.json need numbers jansson
 * cannot hold: the file is read with jtext_parse, and its number texts serve
 * the schema and the instances alike (they are nodes of one tree). */
#include "jsontext.h"

static void run_exact_file(const char *name, int *run, int *passed) {
    char path[1024];
    FILE *f;
    char *text;
    long size;
    json_t *groups = NULL;
    struct jtext_numbers *nums = NULL;
    struct jtext_error jerr;
    size_t gi;
    json_t *group;

    snprintf(path, sizeof path, "%s/optional/%s", SUITE_DIR, name);
    f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = malloc((size_t)size + 1);
    cr_assert_eq(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    cr_assert_eq(jtext_parse(text, (size_t)size, NULL, &groups, &nums, &jerr), JTEXT_OK,
                 "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
    json_array_foreach(groups, gi, group) {
        struct jschema_error err;
        struct jschema *js = jschema_compile(json_object_get(group, "schema"), &err);
        size_t ti;
        json_t *test;

        cr_assert_not_null(js, "%s: schema refused: %s", name, err.message);
        json_array_foreach(json_object_get(group, "tests"), ti, test) {
            bool want = json_is_true(json_object_get(test, "valid"));
            int rc = jschema_validate_exact(js, json_object_get(test, "data"), nums, &err);

            (*run)++;
            *passed += (rc == 0) == want;
            cr_expect((rc == 0) == want, "%s / %s / %s: expected %s (%s)", name,
                      json_string_value(json_object_get(group, "description")),
                      json_string_value(json_object_get(test, "description")),
                      want ? "valid" : "invalid", err.message);
        }
        jschema_free(js);
    }
    json_decref(groups);
    jtext_numbers_free(nums);
    free(text);
}

Test(jsonschema, bignum_and_float_overflow_exact) {
    int run = 0, passed = 0;

    run_exact_file("bignum.json", &run, &passed);
    run_exact_file("float-overflow.json", &run, &passed);
    cr_assert(run >= 10, "only %d cases found", run);
    cr_assert_eq(passed, run);
}

static int exact_validate(const char *schema_text, const char *instance) {
    json_t *schema = json_loads(schema_text, 0, NULL), *inst = NULL;
    struct jtext_numbers *nums = NULL;
    struct jschema *js;
    int rc;

    cr_assert_not_null(schema, "bad test schema %s", schema_text);
    js = jschema_compile(schema, NULL);
    cr_assert_not_null(js);
    cr_assert_eq(jtext_parse(instance, strlen(instance), NULL, &inst, &nums, NULL), JTEXT_OK, "%s",
                 instance);
    rc = jschema_validate_exact(js, inst, nums, NULL);
    json_decref(inst);
    jtext_numbers_free(nums);
    jschema_free(js);
    json_decref(schema);
    return rc;
}

Test(jsonschema, numbers_beyond_double_compare_exactly) {
    /* 1e400 is above any double; 1e-400 is above zero though a double
     * rounds it to 0. */
    cr_expect_eq(exact_validate("{\"maximum\": 1e308}", "1e400"), -1);
    cr_expect_eq(exact_validate("{\"minimum\": 1e308}", "1e400"), 0);
    cr_expect_eq(exact_validate("{\"exclusiveMinimum\": 0}", "1e-400"), 0);
    cr_expect_eq(exact_validate("{\"exclusiveMaximum\": 0}", "-1e-400"), 0);
    cr_expect_eq(exact_validate("{\"exclusiveMinimum\": 0}", "-1e-400"), -1);
    cr_expect_eq(exact_validate("{\"type\": \"integer\"}", "123456789012345678901234567890"), 0);
    cr_expect_eq(exact_validate("{\"type\": \"integer\"}", "1e400"), 0);
    cr_expect_eq(exact_validate("{\"type\": \"integer\"}", "1.0000000000000000000001"), -1);
    cr_expect_eq(exact_validate("{\"type\": \"integer\"}", "1e-400"), -1);
    /* 0.1 written with 30 digits is more than the double 0.1. */
    cr_expect_eq(exact_validate("{\"maximum\": 0.1}", "0.100000000000000000000000000001"), -1);
    cr_expect_eq(exact_validate("{\"maximum\": 0.1}", "0.1"), 0);
    cr_expect_eq(exact_validate("{\"exclusiveMaximum\": 0.1}", "0.1"), -1);
    cr_expect_eq(exact_validate("{\"multipleOf\": 0.0001}", "0.0075"), 0);
    cr_expect_eq(exact_validate("{\"multipleOf\": 3}", "123456789012345678901234567891"), -1);
    cr_expect_eq(exact_validate("{\"multipleOf\": 3}", "123456789012345678901234567890"), 0);
    cr_expect_eq(exact_validate("{\"multipleOf\": 1}", "1000000000000000.5"), -1);
    cr_expect_eq(exact_validate("{\"multipleOf\": 7}", "7e400"), 0);
    cr_expect_eq(exact_validate("{\"multipleOf\": 0.5}", "1e-400"), -1);
    cr_expect_eq(exact_validate("{\"const\": 1}", "1.00000000000000000000000000"), 0);
    cr_expect_eq(exact_validate("{\"enum\": [1e19]}", "10000000000000000000"), 0);
    cr_expect_eq(exact_validate("{\"uniqueItems\": true}", "[1e400, 10e399]"), -1);
    cr_expect_eq(exact_validate("{\"uniqueItems\": true}", "[1e400, 1e401]"), 0);
    cr_expect_eq(
        exact_validate("{\"uniqueItems\": true}", "[1234567890123456789.0, 1234567890123456789]"),
        -1);
}
