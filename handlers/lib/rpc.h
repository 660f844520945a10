/* The rpc plugin skeleton: what every plugin that answers requests on the
 * bus does the same way (a handler whose route is `rpc: true`, or an
 * internal rpc such as the Idempotency-Key claims).
 *
 *   - the batch loop: a request without reply_to cannot be answered and is
 *     rejected (dead-lettered, logged); every other request is handed to the
 *     plugin and acknowledged (FPESA_OK) whatever the answer, because the
 *     caller waits on a timeout and a retry later would answer nobody;
 *   - the envelope: parsed once, a body that is not a JSON object answered
 *     400 {"error":{"code","description"}};
 *   - the answers: an error document, a jansson document, or text pieces
 *     pasted together (a page whose JSON the database built).
 *
 * Linked only into plugins that name `rpc` in their build.mk (jansson; no
 * libpq: dbconn.h is the database half). */
#ifndef FPESA_HANDLERS_LIB_RPC_H
#define FPESA_HANDLERS_LIB_RPC_H

#include <fpesa/handler.h>
#include <jansson.h>
#include <stddef.h>

/* Who answers: the host's services, the handler's context, and the plugin's
 * name for the logs (borrowed for the plugin's lifetime). A plugin keeps
 * one in its state. */
struct rpc {
    const struct fpesa_host *host;
    struct fpesa_ctx *ctx;
    const char *name;
};

/* Answers m with {"error":{"code":code,"description":desc}}. */
void rpc_reply_error(const struct rpc *r, const struct fpesa_message *m, int code,
                     const char *desc);

/* Answers m with doc (a reference is taken: the caller's doc is released
 * here, NULL included). 0, or -1 when it could not be sent (logged). */
int rpc_reply_json(const struct rpc *r, const struct fpesa_message *m, json_t *doc);

/* Answers m with the n text pieces concatenated (borrowed). 0, or -1 when
 * out of memory or not sent (logged). */
int rpc_reply_parts(const struct rpc *r, const struct fpesa_message *m, const char *const *parts,
                    size_t n);

/* The request's envelope as a JSON object (json_decref it), or NULL after
 * answering 400 "the request is not a JSON envelope". */
json_t *rpc_envelope(const struct rpc *r, const struct fpesa_message *m);

/* Handles one request that has a reply_to; it must answer it. */
typedef void (*rpc_handle_fn)(void *state, const struct fpesa_message *m);

/* The batch loop above: handle(state, m) for each message with a reply_to,
 * FPESA_REJECT for the others. Returns 0 (the batch callback's value). */
int rpc_batch(const struct rpc *r, void *state, rpc_handle_fn handle,
              const struct fpesa_message *const *msgs, size_t n, enum fpesa_result *results);

/* Reads the integer config key into *out: def when absent, else a decimal
 * in [min, max]. 0, or -1 after logging "<name>: config <key> ... is not
 * <min> to <max>". */
int rpc_config_long(const struct rpc *r, const char *key, long def, long min, long max, long *out);

#endif
