/* Who may open a channel (see common/auth.h): the auth rule of a channel
 * checked on a handshake, and the 401/403 answers with their challenge.
 */
#include "live_int.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

/* ---- who may open a channel (see common/auth.h) ------------------------------ */

/* Writes an error with a WWW-Authenticate challenge. Returns what the
 * callback must return. */
static int send_denied(struct lws *wsi, unsigned int status, const char *challenge,
                       const char *desc) {
    json_t *j = json_pack("{s:{s:i,s:s}}", "error", "code", (int)status, "description", desc);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    unsigned char hdr[LWS_PRE + 768];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr);
    size_t len = text ? strlen(text) : 0;
    unsigned char *buf = text ? malloc(LWS_PRE + len) : NULL;
    int rc = -1;

    json_decref(j);
    if (!buf)
        goto out;
    if (lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t)len, &p, end) ||
        (challenge[0] && lws_add_http_header_by_name(
                             wsi, (const unsigned char *)"www-authenticate:",
                             (const unsigned char *)challenge, (int)strlen(challenge), &p, end)) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        goto out;
    memcpy(buf + LWS_PRE, text, len);
    if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
        goto out;
    rc = lws_http_transaction_completed(wsi) ? -1 : 1;
out:
    free(buf);
    free(text);
    return rc;
}

/* The rule of a channel: live_auth of its live endpoint (the first that has one). */
static const struct cfg_auth_rule *channel_rule(struct live_server *srv, int ch) {
    const struct cfg_auth_rule *rule = NULL;

    for (size_t i = 0; i < srv->cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &srv->cfg->endpoints[i];

        if (!ep->live || strcmp(ep->path, srv->channels[ch].path) != 0)
            continue;
        if (ep->live_auth.given)
            return &ep->live_auth;
        if (!rule)
            rule = &ep->live_auth;
    }
    return rule;
}

/* Checks the Origin against auth.origins and the credentials (access_token=
 * or api_key= in the URL, as browsers cannot set headers on a websocket or
 * an EventSource; or the Authorization and X-API-Key headers) against the
 * channel's rule; ws: a websocket handshake, whose shape is checked too.
 * Returns 0 to go on, else 1 (answer sent) or -1 (connection to close). */
int live_check_access(struct live_server *srv, struct lws *wsi, int ch, bool ws) {
    const struct cfg *cfg = srv->cfg;
    char origin[256], tok[4096], key[256], hdr[4096], why[200], challenge[200];
    struct auth_creds cr = {0};
    struct auth_principal p;
    enum auth_outcome out;

    /* libwebsockets closes a handshake it cannot complete without an answer
     * (a subprotocol it does not serve, no key): refuse those here, in JSON. */
    if (ws && lws_hdr_copy(wsi, hdr, (int)sizeof(hdr), WSI_TOKEN_PROTOCOL) > 0 &&
        !strstr(hdr, "fpesa-live")) {
        srv->rejected_upgrades++;
        return send_denied(wsi, 400, "",
                           "unsupported websocket subprotocol (offer fpesa-live, or none)");
    }
    if (ws && lws_hdr_total_length(wsi, WSI_TOKEN_KEY) <= 0) {
        srv->rejected_upgrades++;
        return send_denied(wsi, 400, "", "a websocket handshake needs Sec-WebSocket-Key");
    }
    if (cfg->auth.n_origins &&
        lws_hdr_copy(wsi, origin, (int)sizeof(origin), WSI_TOKEN_ORIGIN) > 0) {
        bool ok = false;

        for (size_t i = 0; i < cfg->auth.n_origins; i++)
            ok |= strcmp(cfg->auth.origins[i], "*") == 0 ||
                  strcasecmp(cfg->auth.origins[i], origin) == 0;
        if (!ok) {
            srv->rejected_upgrades++;
            return send_denied(wsi, 403, "", "this Origin may not open websockets here");
        }
    }
    if (!srv->auth)
        return 0;
    if (lws_get_urlarg_by_name(wsi, "access_token=", tok, (int)sizeof(tok)))
        cr.bearer = strchr(tok, '=') ? strchr(tok, '=') + 1 : tok;
    else if (lws_hdr_copy(wsi, hdr, (int)sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION) > 7 &&
             strncasecmp(hdr, "Bearer ", 7) == 0)
        cr.bearer = hdr + 7;
    if (lws_get_urlarg_by_name(wsi, "api_key=", key, (int)sizeof(key)))
        cr.api_key = strchr(key, '=') ? strchr(key, '=') + 1 : key;
    else if (lws_hdr_custom_copy(wsi, key, (int)sizeof(key), "x-api-key:", 10) > 0)
        cr.api_key = key;
    out = auth_check(srv->auth, channel_rule(srv, ch), &cr, &p, why, sizeof(why));
    if (out == AUTH_OK) {
        LOG(LOG_DEBUG, "channel opened channel=%s principal=%s", srv->channels[ch].path, p.name);
        return 0;
    }
    srv->rejected_upgrades++;
    auth_challenge(srv->auth, channel_rule(srv, ch), out, cr.api_key || cr.bearer, challenge,
                   sizeof(challenge));
    return send_denied(wsi, (unsigned int)out, challenge, why);
}
