/* The channels of liveupdate built from the configuration (one per live
 * endpoint, with its window), and a reload: channels added, kept and
 * removed without dropping the clients of the kept ones.
 */
#include "live_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- setup ------------------------------------------------------------------- */

int live_channels_build(struct live_server *srv) {
    const struct cfg *cfg = srv->cfg;
    size_t n = cfg->n_endpoints;

    /* One more channel than endpoints: the original fpesa's, when asked for. */
    srv->channels = calloc(n + 1, sizeof(*srv->channels));
    srv->exchanges = calloc(n ? n : 1, sizeof(char *));
    srv->exchange_channel = calloc(n ? n : 1, sizeof(int));
    srv->rpc_exchanges = calloc(n ? n : 1, sizeof(char *));
    srv->channels_cap = n + 1 + RELOAD_CHANNELS;
    srv->channel_paths = calloc(srv->channels_cap, sizeof(char *));
    if (!srv->channels || !srv->exchanges || !srv->exchange_channel || !srv->rpc_exchanges ||
        !srv->channel_paths)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        size_t ch;
        if (!ep->live)
            continue;
        for (ch = 0; ch < srv->n_channels; ch++)
            if (strcmp(srv->channels[ch].path, ep->path) == 0)
                break;
        if (ch == srv->n_channels) {
            size_t cap = cfg->live.client_queue * 4;
            srv->channels[ch].path = strdup(ep->path);
            if (!srv->channels[ch].path)
                return -1;
            srv->channels[ch].has_params = strchr(ep->path, '{') != NULL;
            if (live_window_init(&srv->channels[ch].win, cap < 16384 ? 16384 : cap, WINDOW_BYTES) <
                0)
                return -1;
            srv->channel_paths[ch] = srv->channels[ch].path;
            srv->n_channels++;
        }
        srv->exchanges[srv->n_exchanges] = ep->exchange;
        srv->exchange_channel[srv->n_exchanges] = (int)ch;
        srv->n_exchanges++;
    }
    /* compat fpesa-python: the original's live channel, on "/" (its frontend
     * opens /ws/v1/, which the proxy hands on as "/"): every live message as
     * a binary frame holding only its data. It has no resume (the original
     * had none) and exists only when some endpoint is live and none is "/"
     * itself. */
    srv->original_channel = -1;
    if (cfg->compat == CFG_COMPAT_FPESA_PYTHON && srv->n_channels > 0 &&
        live_channel_find(srv, "/", NULL, 0) < 0) {
        size_t cap = cfg->live.client_queue * 4;

        srv->channels[srv->n_channels].path = strdup("/");
        if (!srv->channels[srv->n_channels].path)
            return -1;
        srv->channels[srv->n_channels].has_params = false;
        if (live_window_init(&srv->channels[srv->n_channels].win, cap < 16384 ? 16384 : cap,
                             WINDOW_BYTES) < 0)
            return -1;
        srv->channel_paths[srv->n_channels] = srv->channels[srv->n_channels].path;
        srv->original_channel = (int)srv->n_channels++;
    }
    /* A channel can be resumed when its path also has a GET rpc: the stored messages. */
    for (size_t ch = 0; ch < srv->n_channels; ch++) {
        for (size_t i = 0; i < n; i++) {
            const struct cfg_endpoint *ep = &cfg->endpoints[i];
            if (ep->mode == CFG_MODE_RPC && strcmp(ep->method, "GET") == 0 &&
                strcmp(ep->path, srv->channels[ch].path) == 0) {
                srv->channels[ch].rpc_exchange = ep->exchange;
                srv->channels[ch].rpc_timeout_ms = ep->timeout_ms;
                srv->rpc_exchanges[srv->n_rpc_exchanges++] = ep->exchange;
                break;
            }
        }
    }
    return srv->n_channels ? 0 : -1;
}

/* The channel of path, removed or not, or -1. */
static int channel_exact(const struct live_server *srv, const char *path) {
    for (size_t i = 0; i < srv->n_channels; i++)
        if (strcmp(srv->channels[i].path, path) == 0)
            return (int)i;
    return -1;
}

/* SIGHUP, on the service thread: reads the file again. A file with
 * problems is refused (each logged as file:line:col) and nothing changes.
 * From a good one, channels of new live endpoints are added (the bus binds
 * their exchanges), channels whose endpoint is gone take no new clients
 * (their clients stay until they leave), and the auth keys and rules are
 * those of the new file. Every connected client of a channel that still
 * exists stays connected. */
void live_reload(struct live_server *srv) {
    size_t added = 0, removed = 0, live = 0;
    struct cfg *cfg = cfg_load_reload(srv->config_path), **olds;
    struct live_channel *chs;
    struct auth *auth;
    bool failed = false;

    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        live += cfg->endpoints[i].live;
    auth = auth_new(cfg, &failed);
    olds = realloc(srv->old_cfgs, (srv->n_old_cfgs + 1) * sizeof(*olds));
    chs = realloc(srv->channels, (srv->channels_cap + 1) * sizeof(*chs));
    if (olds)
        srv->old_cfgs = olds;
    if (chs)
        srv->channels = chs;
    if (live == 0 || failed || !olds || !chs) {
        LOG(LOG_ERROR, "reload refused: %s; the running configuration stays",
            live == 0 ? "no endpoint has live: true"
            : failed  ? "the auth keys cannot be loaded"
                      : "out of memory");
        auth_free(auth);
        cfg_free(cfg);
        return;
    }
    /* New channels; channels of new exchanges. */
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct cfg_endpoint *ep = &cfg->endpoints[i];
        const char *rpc = NULL;
        long rpc_timeout = 5000;
        int ch;

        if (!ep->live)
            continue;
        for (size_t k = 0; k < cfg->n_endpoints; k++) {
            const struct cfg_endpoint *g = &cfg->endpoints[k];
            if (g->mode == CFG_MODE_RPC && strcmp(g->method, "GET") == 0 &&
                strcmp(g->path, ep->path) == 0) {
                rpc = g->exchange;
                rpc_timeout = g->timeout_ms;
            }
        }
        ch = channel_exact(srv, ep->path);
        if (ch >= 0) {
            if (srv->channels[ch].removed)
                LOG(LOG_INFO, "channel back path=%s", ep->path);
            srv->channels[ch].removed = false;
            continue;
        }
        if (srv->n_channels + 1 >= srv->channels_cap) {
            LOG(LOG_ERROR,
                "reload: no room for channel path=%s (at most %d added by reloads); "
                "restart to serve it",
                ep->path, RELOAD_CHANNELS);
            continue;
        }
        {
            struct live_channel *c = &srv->channels[srv->n_channels];
            size_t cap = cfg->live.client_queue * 4;

            memset(c, 0, sizeof(*c));
            c->path = strdup(ep->path);
            if (!c->path ||
                live_window_init(&c->win, cap < 16384 ? 16384 : cap, WINDOW_BYTES) < 0) {
                free(c->path);
                LOG(LOG_ERROR, "reload: out of memory for channel path=%s", ep->path);
                continue;
            }
            c->has_params = strchr(ep->path, '{') != NULL;
            c->rpc_exchange = rpc;
            c->rpc_timeout_ms = rpc_timeout;
            /* The bus thread reads this entry only after live_bus_add (its
             * lock orders the two). */
            srv->channel_paths[srv->n_channels] = c->path;
            ch = (int)srv->n_channels++;
        }
        if (live_bus_add(srv->bus, ep->exchange, ch, rpc) < 0)
            LOG(LOG_ERROR, "reload: out of memory binding exchange=%s", ep->exchange);
        added++;
        LOG(LOG_INFO, "channel added path=%s exchange=%s", ep->path, ep->exchange);
    }
    /* Channels whose endpoint is gone take no new clients. */
    for (size_t ch = 0; ch < srv->n_channels; ch++) {
        bool found = (int)ch == srv->original_channel;
        for (size_t i = 0; i < cfg->n_endpoints && !found; i++)
            found = cfg->endpoints[i].live &&
                    strcmp(cfg->endpoints[i].path, srv->channels[ch].path) == 0;
        if (!found && !srv->channels[ch].removed) {
            srv->channels[ch].removed = true;
            removed++;
            LOG(LOG_INFO, "channel removed path=%s clients_kept=%zu", srv->channels[ch].path,
                srv->channels[ch].n_clients);
        }
    }
    auth_free(srv->auth);
    srv->auth = auth;
    /* The old configuration stays: exchange and rpc names are borrowed from it. */
    srv->old_cfgs[srv->n_old_cfgs++] = (struct cfg *)srv->cfg;
    srv->cfg = cfg;
    LOG(LOG_INFO, "reloaded file=%s channels=%zu added=%zu removed=%zu clients=%zu",
        srv->config_path, srv->n_channels, added, removed, srv->clients);
}
