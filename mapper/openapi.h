/* The machine-readable endpoint list: an OpenAPI 3.1 document generated from
 * endpoints.yaml, served at GET /openapi.json (the Dev page builds its forms
 * from it).
 */
#ifndef FPESA_MAPPER_OPENAPI_H
#define FPESA_MAPPER_OPENAPI_H

#include <jansson.h>

struct cfg;

/* Builds the document for cfg (borrowed): every endpoint with its method,
 * summary, path parameters, query parameters (the properties of its args
 * schema), request body schema and responses (the error schema included),
 * plus the built-in routes. Returns a new reference, or NULL when memory runs
 * out. */
json_t *openapi_build(const struct cfg *cfg);

#endif
