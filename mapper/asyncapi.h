/* The bus side of the system as an AsyncAPI 3.0 document, generated from the
 * same endpoints.yaml as the OpenAPI one and served at GET /asyncapi.json:
 * every exchange and queue restmapper, the handler host and liveupdate
 * declare, the request envelope of every endpoint, the rpc answers, the
 * dead-letter queues and the live websocket channels.
 */
#ifndef FPESA_MAPPER_ASYNCAPI_H
#define FPESA_MAPPER_ASYNCAPI_H

#include <jansson.h>

struct cfg;

/* Builds the document for cfg (borrowed). The broker server is named by host
 * and port only: credentials in bus.url never reach the document. Returns a
 * new reference, or NULL when memory runs out. */
json_t *asyncapi_build(const struct cfg *cfg);

#endif
