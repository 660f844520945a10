/* A JSON Schema (draft 7) validator over jansson, with PCRE2 for "pattern".
 *
 * Supported keywords: type, enum, const, properties, required,
 * additionalProperties, patternProperties, propertyNames, minProperties,
 * maxProperties, items, additionalItems, contains, minItems, maxItems,
 * uniqueItems, minimum, maximum, exclusiveMinimum, exclusiveMaximum,
 * multipleOf, minLength, maxLength (in code points), pattern, allOf, anyOf,
 * oneOf, not, if/then/else, dependencies, boolean schemas, local $ref
 * ("#", "#/definitions/x", any local JSON pointer) with definitions, and the
 * annotations $schema, $id, $comment, title, description, default, examples,
 * readOnly, writeOnly, format, contentMediaType, contentEncoding (the last
 * three are not asserted). A schema that uses any other keyword is refused by
 * jschema_compile, so nothing is silently not checked. As draft 7 says, the
 * siblings of "$ref" are ignored (but an unknown one is still refused).
 *
 * References: "$ref" is resolved against "$id" (RFC 3986), so "#/a/b",
 * "#anchor" and "other.json#/x" reach any schema of the same document that
 * declares that "$id". References outside the document are refused; so is
 * a chain of references that only leads back to itself.
 *
 * Numbers compare by value (1 == 1.0) in enum, const and uniqueItems, and a
 * real with no fractional part is an integer. minLength/maxLength count code
 * points; "pattern" and "patternProperties" use PCRE2 in UTF mode, not
 * anchored, with a match limit: a pattern that cannot be evaluated within it
 * fails validation instead of hogging the thread.
 *
 * Limits: an instance nested deeper than 512 levels, or an evaluation that
 * recurses more than 2048 schemas deep (a "$ref" loop that never consumes
 * the instance), fails validation with a message; neither "not" nor "anyOf"
 * can turn that failure into a success. Validation uses well under 1 MiB of
 * stack at those limits.
 *
 * A compiled schema is immutable and may be used from many threads at once.
 */
#ifndef FPESA_JSONSCHEMA_H
#define FPESA_JSONSCHEMA_H

#include <jansson.h>

struct jschema;

struct jschema_error {
    char instance_path[256]; /* JSON pointer into the instance, "" for the root, e.g.
                                "/items/3/name" */
    char schema_path[256];   /* JSON pointer into the schema of the failing keyword, e.g.
                                "/properties/name/type" */
    char keyword[32];        /* the failing keyword, e.g. "type" */
    char message[256];       /* a sentence for a human, e.g. "expected string, got integer" */
};

/* Compiles schema (borrowed; the compiled schema keeps its own reference).
 * Returns a new compiled schema (free with jschema_free), or NULL when the
 * schema is invalid or uses an unsupported keyword; then err (may be NULL)
 * says which keyword where (schema_path) and why (message). */
struct jschema *jschema_compile(json_t *schema, struct jschema_error *err);

/* Validates instance (borrowed). Returns 0 when valid; -1 when not, with the
 * first failing keyword in err (may be NULL). Inside anyOf/oneOf/not/
 * contains the report is about the compound keyword itself; elsewhere it is
 * about the innermost failing keyword, e.g. instance_path "/items/3/name",
 * keyword "type", schema_path "/properties/items/items/properties/name/type",
 * message "expected string, got integer". */
int jschema_validate(const struct jschema *schema, const json_t *instance,
                     struct jschema_error *err);

/* Like jschema_validate, for an instance built by jtext_parse: the numbers
 * jansson cannot hold exactly (1e400, 123456789012345678901234567890) are
 * read from their text in nums (borrowed; NULL when there are none), so
 * "type": "integer", minimum, maximum, exclusiveMinimum, exclusiveMaximum,
 * multipleOf, enum, const and uniqueItems compare them exactly. Every
 * number is compared as the decimal it was written as (a double as its
 * shortest decimal), so 0.0075 is a multiple of 0.0001. */
struct jtext_numbers;
int jschema_validate_exact(const struct jschema *schema, const json_t *instance,
                           const struct jtext_numbers *nums, struct jschema_error *err);

/* Frees a compiled schema. NULL is fine. */
void jschema_free(struct jschema *schema);

#endif
