/* A request's way over the bus: its message published or sent as an rpc
 * (after the claim of its idempotency key, when it has one), the outcome
 * taken from the bus thread, and the answer made of it.
 */
#include "http_int.h"

#include "idem.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum MHD_Result reply_answer(struct http_request *rq, int status);

/* ---- the bus ---------------------------------------------------------------- */

static void on_bus_done(void *ctx, const struct mbus_result *res) {
    struct http_request *rq = ctx;
    const struct cfg_endpoint *ep = rq->route->ep;

    rq->result_status = res->status;
    rq->result_outcome = res->outcome;
    rq->result_blocked = res->blocked;
    if (res->body) {
        rq->result_body = malloc(res->body_len ? res->body_len : 1);
        if (rq->result_body) {
            memcpy(rq->result_body, res->body, res->body_len);
            rq->result_len = res->body_len;
        }
    }
    if (res->content_type)
        rq->result_ctype = strdup(res->content_type);
    if (res->http_headers)
        rq->result_headers = strdup(res->http_headers);
    if (rq->claiming)
        ; /* the key's claim: not the endpoint's confirm or rpc */
    else if (ep->mode == CFG_MODE_PUBLISH && res->status < 500)
        metrics_confirm(rq->snap->metrics, res->seconds);
    else if (ep->mode == CFG_MODE_RPC && res->body)
        metrics_rpc(rq->snap->metrics, res->seconds);
    atomic_store_explicit(&rq->done, true, memory_order_release);
    MHD_resume_connection(rq->conn);
}

bool http_idempotency_key_is_valid(const char *k) {
    size_t n = strlen(k);

    if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < 0x20 || k[i] > 0x7e)
            return false;
    }
    return true;
}

static enum MHD_Result send_to_bus(struct http_request *rq, const struct mbus_msg *msg,
                                   bool claim) {
    const struct cfg_endpoint *ep = rq->route->ep;
    const struct cfg *cfg = rq->snap->cfg;
    int rc;

    /* Suspend first: the bus may answer before mbus_publish returns. */
    if (!rq->dispatched)
        atomic_fetch_add_explicit(&rq->srv->waiting, 1, memory_order_relaxed);
    rq->dispatched = true;
    rq->claiming = claim;
    atomic_store_explicit(&rq->done, false, memory_order_release);
    MHD_suspend_connection(rq->conn);
    if (claim)
        rc = mbus_rpc(rq->srv->bus, msg, cfg->idempotency.timeout_ms, on_bus_done, rq);
    else if (ep->mode == CFG_MODE_RPC)
        rc = mbus_rpc(rq->srv->bus, msg, ep->timeout_ms, on_bus_done, rq);
    else
        rc = mbus_publish(rq->srv->bus, msg, on_bus_done, rq);
    if (rc != 0) {
        rq->result_status = MHD_HTTP_SERVICE_UNAVAILABLE;
        atomic_store_explicit(&rq->done, true, memory_order_release);
        MHD_resume_connection(rq->conn);
    }
    return MHD_YES;
}

/* Asks the claim worker about the request's Idempotency-Key; the message
 * waits in rq->pending. */
static enum MHD_Result send_claim(struct http_request *rq) {
    const struct cfg *cfg = rq->snap->cfg;
    struct mbus_msg msg, claim = {0};
    char fp[IDEM_FINGERPRINT_HEX + 1];
    char *body;
    enum MHD_Result ret;

    http_message_of(rq, &rq->pending->o, &msg);
    if (idem_fingerprint(&msg, fp) != 0 ||
        !(body = idem_claim_body(rq->route->ep->exchange, rq->id, fp))) {
        http_fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return http_reply_error(rq);
    }
    claim.exchange = cfg->idempotency.exchange;
    claim.message_id = rq->id;
    claim.body = body;
    claim.body_len = strlen(body);
    claim.content_type = "application/json";
    claim.timestamp = msg.timestamp;
    ret = send_to_bus(rq, &claim, true);
    free(body);
    return ret;
}

/* The claim's answer is in: send the message (a new key, or the same
 * request again), pass the worker's refusal on (409: the key was used with
 * another request), or answer 503 (nothing was sent). */
enum MHD_Result http_claimed(struct http_request *rq) {
    struct mbus_msg msg;
    int st = rq->result_status;

    rq->claiming = false;
    if (st == MHD_HTTP_OK) {
        free(rq->result_body);
        free(rq->result_ctype);
        free(rq->result_headers);
        rq->result_body = rq->result_ctype = rq->result_headers = NULL;
        rq->result_len = 0;
        http_message_of(rq, &rq->pending->o, &msg);
        return send_to_bus(rq, &msg, false);
    }
    if (st >= 400 && st < 500 && rq->result_body)
        return reply_answer(rq, st);
    http_fail(
        rq, MHD_HTTP_SERVICE_UNAVAILABLE,
        "the Idempotency-Key could not be checked (%s); nothing was sent: retry with the same key",
        st == MHD_HTTP_GATEWAY_TIMEOUT ? "the key store did not answer in time"
                                       : "the key store is unavailable");
    return http_reply_error(rq);
}

enum MHD_Result http_dispatch(struct http_request *rq) {
    struct mbus_msg msg;
    struct http_pending local, *pd = &local;
    bool claim = rq->snap->cfg->idempotency.exchange &&
                 MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Idempotency-Key");
    enum MHD_Result ret;

    /* A keyed request's message outlives this call (it waits for the
     * claim); every other one is sent from here. */
    if (claim && !(pd = calloc(1, sizeof(*pd)))) {
        http_fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return http_reply_error(rq);
    }
    if (!claim)
        memset(&local.o, 0, sizeof(local.o));
    pd->fm.have_file = false;
    if (http_build_envelope(rq, &pd->o, &pd->fm) != 0) {
        http_outgoing_fini(&pd->o);
        if (pd != &local)
            free(pd);
        return http_reply_error(rq);
    }
    /* Who sent it travels with it (and is part of a key's fingerprint: a
     * key used by another principal is another request). */
    if (rq->principal)
        pd->o.hdrs[pd->o.n_hdrs++] = (struct mbus_header){"x-fpesa-principal", rq->principal};
    if (claim) {
        rq->pending = pd;
        return send_claim(rq);
    }
    http_message_of(rq, &local.o, &msg);
    ret = send_to_bus(rq, &msg, false);
    http_outgoing_fini(&local.o);
    return ret;
}

/* A copy of the response template tpl (borrowed) with "{id}" replaced by id
 * in every string. New reference, or NULL when out of memory. */
static json_t *render_response(const json_t *tpl, const char *id) {
    json_t *out;

    if (json_is_string(tpl)) {
        const char *s = json_string_value(tpl), *hit;
        size_t idl = strlen(id), cap = json_string_length(tpl) + 1, n = 0;
        char *buf;

        if (!strstr(s, "{id}"))
            return json_deep_copy(tpl);
        for (hit = s; (hit = strstr(hit, "{id}")) != NULL; hit += 4)
            cap += idl;
        buf = malloc(cap);
        if (!buf)
            return NULL;
        while ((hit = strstr(s, "{id}")) != NULL) {
            memcpy(buf + n, s, (size_t)(hit - s));
            n += (size_t)(hit - s);
            memcpy(buf + n, id, idl);
            n += idl;
            s = hit + 4;
        }
        memcpy(buf + n, s, strlen(s) + 1);
        out = json_string(buf);
        free(buf);
        return out;
    }
    if (json_is_object(tpl)) {
        const char *k;
        json_t *v;

        out = json_object();
        json_object_foreach((json_t *)tpl, k, v) {
            if (!out || json_object_set_new(out, k, render_response(v, id)) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (json_is_array(tpl)) {
        size_t i;
        json_t *v;

        out = json_array();
        json_array_foreach(tpl, i, v) {
            if (!out || json_array_append_new(out, render_response(v, id)) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    return json_deep_copy(tpl);
}

/* Sends an rpc answer: its bytes, content type and the headers it set. */
static enum MHD_Result reply_answer(struct http_request *rq, int status) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(rq->result_len, rq->result_body, MHD_RESPMEM_MUST_FREE);
    char *line, *next;

    if (!resp)
        return MHD_NO;
    rq->result_body = NULL; /* the response owns it now */
    http_add_common_headers(rq, resp, rq->result_ctype ? rq->result_ctype : "application/json");
    for (line = rq->result_headers; line && *line; line = next) {
        char *colon = strchr(line, ':');

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        else
            next = line + strlen(line);
        if (!colon)
            continue;
        *colon = '\0';
        /* Framing is ours to decide, never the worker's. */
        if (strcasecmp(line, "Content-Length") == 0 || strcasecmp(line, "Content-Type") == 0 ||
            strcasecmp(line, "Transfer-Encoding") == 0 || strcasecmp(line, "Connection") == 0)
            continue;
        MHD_add_response_header(resp, line, colon[1] == ' ' ? colon + 2 : colon + 1);
    }
    return http_queue(rq, status, resp);
}

/* A 503 from the bus, in the two meanings a client must tell apart (see
 * doc/rest-api.rst): "not_accepted" (never sent: retry after Retry-After)
 * and "unknown" (sent, but the broker's confirm never came: it may have been
 * taken, so retry with the same Idempotency-Key, which the error names). */
static void fail_unavailable(struct http_request *rq) {
    bool publish = rq->route->ep->mode == CFG_MODE_PUBLISH;

    if (rq->result_outcome == MBUS_UNKNOWN) {
        http_fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE,
                  publish
                      ? "the outcome is unknown: the broker did not confirm the message in time or "
                        "the connection was lost; retry with the same Idempotency-Key"
                      : "the outcome is unknown: the connection to the broker was lost after the "
                        "request was sent");
        if (rq->err)
            rq->err->outcome = "unknown";
        return;
    }
    http_fail(rq, MHD_HTTP_SERVICE_UNAVAILABLE,
              rq->result_blocked
                  ? "not accepted: the broker is blocking publishers (resource alarm)"
                  : "not accepted: the broker is unavailable");
    if (rq->err) {
        rq->err->outcome = "not_accepted";
        rq->err->retry_after = 1;
    }
}

enum MHD_Result http_reply_result(struct http_request *rq) {
    const struct cfg_endpoint *ep = rq->route->ep;
    int st = rq->result_status;

    if (ep->mode == CFG_MODE_PUBLISH) {
        if (st >= 200 && st < 300)
            return http_reply_json(rq, ep->status,
                                   ep->response ? render_response(ep->response, rq->id)
                                                : json_pack("{s:s}", "id", rq->id));
        fail_unavailable(rq);
        return http_reply_error(rq);
    }
    if (rq->result_body) {
        if (st < 100 || st > 599)
            st = MHD_HTTP_BAD_GATEWAY;
        return reply_answer(rq, st);
    }
    if (st == MHD_HTTP_GATEWAY_TIMEOUT)
        http_fail(rq, st, "no answer from the worker within %ld ms", ep->timeout_ms);
    else
        fail_unavailable(rq);
    return http_reply_error(rq);
}
