/* Reloading the handler host's configuration on SIGHUP: new and changed
 * handlers start, replaced and removed ones drain, and drained units go.
 */
#include "supervise_int.h"

#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "plugin.h"
#include "stats.h"

/* ---- reload ------------------------------------------------------------------ */

static bool same_str(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Whether the endpoint whose exchange is queue is an rpc one (a consumer
 * answers rpc requests at once instead of filling batches). */
static int queue_mode(const struct cfg *cfg, const char *queue) {
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        if (strcmp(cfg->endpoints[i].exchange, queue) == 0)
            return (int)cfg->endpoints[i].mode;
    return -1;
}

/* True when handler a of ca runs exactly as handler b of cb would: its
 * children may go on as they are. */
static bool same_handler(const struct cfg *ca, const struct cfg_handler *a, const struct cfg *cb,
                         const struct cfg_handler *b) {
    return same_str(a->plugin_path, b->plugin_path) && same_str(a->queue, b->queue) &&
           a->prefetch == b->prefetch && a->batch == b->batch &&
           a->batch_wait_ms == b->batch_wait_ms && a->instances == b->instances &&
           a->crash_limit == b->crash_limit &&
           ((!a->config && !b->config) ||
            (a->config && b->config && json_equal(a->config, b->config))) &&
           same_str(ca->bus.url, cb->bus.url) && ca->bus.heartbeat == cb->bus.heartbeat &&
           same_str(ca->database.url, cb->database.url) && ca->compat == cb->compat &&
           queue_mode(ca, a->queue) == queue_mode(cb, b->queue);
}

static struct sup_unit *active_unit(struct sup *s, const char *name) {
    for (size_t i = 0; i < s->n_units; i++)
        if (!s->units[i]->draining && strcmp(sup_unit_handler(s->units[i])->name, name) == 0)
            return s->units[i];
    return NULL;
}

/* SIGHUP: loads the configuration again. When it is refused, every problem
 * is logged (file:line:col) and everything runs on as it was. Otherwise new
 * handlers start, changed ones start anew beside the old instances, which
 * then drain (so a queue never goes without a consumer), removed ones drain,
 * and unchanged ones are not touched. */
void sup_reload(struct sup *s) {
    struct sup_gen *g = calloc(1, sizeof(*g));
    struct sup_unit **fresh = NULL, **old = NULL, **units = NULL;
    size_t n_fresh = 0, n_old = 0, n_same = 0, n_units = 0;
    char *errs = NULL;
    size_t errs_len = 0;
    FILE *ef = open_memstream(&errs, &errs_len);

    if (!g || !ef)
        goto out_oom;
    LOG(LOG_INFO, "reloading signal=HUP");
    if (s->load(s->load_arg, &g->cfg, &g->plugins, ef) < 0) {
        fclose(ef);
        ef = NULL;
        log_reload_refused(errs);
        free(g);
        goto out;
    }
    fclose(ef);
    ef = NULL;
    g->refs = 1;
    if (s->n_units > 0) {
        const struct cfg *was = s->units[0]->gen->cfg;
        if (was->handler_host.port != g->cfg->handler_host.port ||
            strcmp(was->handler_host.host, g->cfg->handler_host.host) != 0)
            LOG(LOG_WARN, "handler_host.listen takes effect at the next start only");
    }
    fresh = calloc(g->cfg->n_handlers + 1, sizeof(*fresh));
    old = calloc(s->n_units + 1, sizeof(*old));
    units = calloc(s->n_units + g->cfg->n_handlers + 1, sizeof(*units));
    if (!fresh || !old || !units)
        goto out_oom;

    /* Start what is new or changed first; a plugin whose init refuses
     * refuses the whole reload, and nothing running is touched. */
    for (size_t j = 0; j < g->cfg->n_handlers; j++) {
        const struct cfg_handler *h = &g->cfg->handlers[j];
        struct sup_unit *was, *u;
        if (!g->plugins[j].table)
            continue;
        was = active_unit(s, h->name);
        if (was && same_handler(was->gen->cfg, sup_unit_handler(was), g->cfg, h)) {
            n_same++;
            continue;
        }
        u = sup_unit_new(g, j, was ? was->stats : NULL);
        if (!u)
            goto out_undo;
        fresh[n_fresh++] = u;
        if (sup_unit_start(u, s->set) < 0) {
            LOG(LOG_ERROR,
                "reload refused: handler=%s could not start; the running "
                "configuration stays",
                h->name);
            goto out_undo;
        }
        LOG(LOG_INFO, "%s handler=%s instances=%zu", was ? "restarted" : "started", h->name,
            u->n_kids);
    }
    /* Then drain what was removed or replaced. */
    for (size_t i = 0; i < s->n_units; i++) {
        struct sup_unit *u = s->units[i];
        bool keep = false;
        if (u->draining) {
            units[n_units++] = u;
            continue;
        }
        for (size_t j = 0; j < g->cfg->n_handlers && !keep; j++)
            keep = g->plugins[j].table &&
                   strcmp(g->cfg->handlers[j].name, sup_unit_handler(u)->name) == 0 &&
                   same_handler(u->gen->cfg, sup_unit_handler(u), g->cfg, &g->cfg->handlers[j]);
        units[n_units++] = u;
        if (keep)
            continue;
        for (size_t f = 0; f < n_fresh; f++)
            if (fresh[f]->stats == u->stats)
                u->owns_stats = false;
        LOG(LOG_INFO, "draining handler=%s instances=%zu", sup_unit_handler(u)->name,
            sup_unit_running(u));
        sup_unit_drain(u);
        old[n_old++] = u;
    }
    for (size_t f = 0; f < n_fresh; f++)
        units[n_units++] = fresh[f];
    pthread_mutex_lock(&s->lock);
    free(s->units);
    s->units = units;
    s->n_units = n_units;
    units = NULL;
    pthread_mutex_unlock(&s->lock);
    LOG(LOG_INFO, "reloaded file=%s started=%zu draining=%zu unchanged=%zu", g->cfg->file, n_fresh,
        n_old, n_same);
    sup_gen_unref(g);
    goto out;

out_oom:
    LOG(LOG_ERROR, "reload refused: out of memory");
out_undo:
    if (fresh) {
        for (size_t f = 0; f < n_fresh; f++) {
            const struct sup_unit *was = active_unit(s, sup_unit_handler(fresh[f])->name);
            if (was && was->stats == fresh[f]->stats)
                fresh[f]->owns_stats = false;
        }
        sup_wait_children(fresh, n_fresh, true);
        for (size_t f = 0; f < n_fresh; f++)
            sup_unit_free(fresh[f]);
    }
    if (g && g->cfg) {
        g->refs = 1;
        sup_gen_unref(g);
    } else {
        free(g);
    }
out:
    if (ef)
        fclose(ef);
    free(errs);
    free(fresh);
    free(old);
    free(units);
}

/* Frees the draining units whose children have all exited, and kills the
 * children of those past their grace. */
void sup_reap_drained(struct sup *s) {
    size_t w = 0;
    int64_t now = sup_now_ms();
    struct sup_unit **gone = calloc(s->n_units + 1, sizeof(*gone));
    size_t n_gone = 0;

    if (!gone)
        return;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_units; i++) {
        struct sup_unit *u = s->units[i];
        if (u->draining && sup_unit_running(u) == 0) {
            gone[n_gone++] = u;
            continue;
        }
        if (u->draining && now > u->drain_deadline_ms) {
            for (size_t c = 0; c < u->n_kids; c++)
                if (u->kids[c].pid > 0) {
                    LOG(LOG_WARN, "instance did not stop in time handler=%s instance=%d",
                        sup_unit_handler(u)->name, u->kids[c].instance);
                    kill(u->kids[c].pid, SIGKILL);
                }
            u->drain_deadline_ms = INT64_MAX;
        }
        s->units[w++] = u;
    }
    s->n_units = w;
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n_gone; i++) {
        LOG(LOG_INFO, "drained handler=%s", sup_unit_handler(gone[i])->name);
        sup_unit_free(gone[i]);
    }
    free(gone);
}
