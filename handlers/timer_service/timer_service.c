/* timer_service: a delayed-webhook service as one handler plugin with three
 * roles, chosen by the handler's "config: { role: ... }" in endpoints.yaml:
 *
 *   create     answers POST /timer: stores the timer, answers {"id", "time_left"}
 *              once it is committed.
 *   get        answers GET /timer/{id}: {"id", "time_left"}, 404, 400.
 *   scheduler  runs beside the host's consumer (the run() callback): claims
 *              due timers from PostgreSQL, calls their webhooks with libcurl,
 *              records each outcome, retries with exponential backoff, and
 *              sleeps until the next due time or a creation's NOTIFY.
 *
 * Every instance of every role keeps its own database connection; nothing is
 * shared between instances, so any number of them may run in any number of
 * processes. See doc/timers.rst for the configuration keys. */
#include <curl/curl.h>
#include <fpesa/handler.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tstore.h"
#include "../lib/rpc.h"
#include "../lib/store.h"
#include "webhook.h"

#define DEFAULT_MAX_DELAY_S (30LL * 24 * 3600)
#define DONE_CAP 256

enum role { ROLE_CREATE, ROLE_GET, ROLE_SCHEDULER };

struct timers {
    const struct fpesa_host *host;
    struct fpesa_ctx *ctx;
    struct rpc rpc; /* answers (the same host and context) */
    enum role role;
    struct hook_allow allow;
    long long max_delay_s;
    long connect_timeout_ms, timeout_ms, retry_base_ms, retry_max_ms, lease_ms, idle_ms;
    long max_attempts, max_in_flight, claim_batch;
    PGconn *pg; /* create/get: used by handle_batch; scheduler: by run */
};

/* ---- configuration --------------------------------------------------------- */

/* Reads an integer key of cfg into *out (left alone when absent). */
static int conf_int(struct timers *t, const json_t *cfg, const char *key, long long lo,
                    long long hi, long long *out) {
    const json_t *v = json_object_get(cfg, key);

    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        FPESA_LOG(t, FPESA_LOG_ERROR,
                  "timer_service: config %s must be an integer from %lld to %lld", key, lo, hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int conf_long(struct timers *t, const json_t *cfg, const char *key, long lo, long hi,
                     long *out) {
    long long v = *out;

    if (conf_int(t, cfg, key, lo, hi, &v) < 0)
        return -1;
    *out = (long)v;
    return 0;
}

static int configure(struct timers *t, const json_t *cfg) {
    const char *role = json_string_value(json_object_get(cfg, "role"));
    char err[256];

    if (!role) {
        FPESA_LOG(t, FPESA_LOG_ERROR,
                  "timer_service: config role is required: create, get or scheduler");
        return -1;
    }
    if (strcmp(role, "create") == 0) {
        t->role = ROLE_CREATE;
    } else if (strcmp(role, "get") == 0) {
        t->role = ROLE_GET;
    } else if (strcmp(role, "scheduler") == 0) {
        t->role = ROLE_SCHEDULER;
    } else {
        FPESA_LOG(t, FPESA_LOG_ERROR,
                  "timer_service: config role \"%s\" is not create, get or scheduler", role);
        return -1;
    }
    if (hook_allow_init(&t->allow, json_object_get(cfg, "allow_hosts"), err, sizeof(err)) < 0) {
        FPESA_LOG(t, FPESA_LOG_ERROR, "timer_service: config %s", err);
        return -1;
    }
    t->max_delay_s = DEFAULT_MAX_DELAY_S;
    t->connect_timeout_ms = 2000;
    t->timeout_ms = 10000;
    t->retry_base_ms = 1000;
    t->retry_max_ms = 300000;
    t->max_attempts = 5;
    t->max_in_flight = 256;
    t->claim_batch = 256;
    t->lease_ms = 0;
    t->idle_ms = 30000;
    if (conf_int(t, cfg, "max_delay_s", 1, 10LL * 365 * 24 * 3600, &t->max_delay_s) < 0 ||
        conf_long(t, cfg, "connect_timeout_ms", 1, 600000, &t->connect_timeout_ms) < 0 ||
        conf_long(t, cfg, "timeout_ms", 1, 600000, &t->timeout_ms) < 0 ||
        conf_long(t, cfg, "retry_base_ms", 1, 86400000, &t->retry_base_ms) < 0 ||
        conf_long(t, cfg, "retry_max_ms", 1, 86400000, &t->retry_max_ms) < 0 ||
        conf_long(t, cfg, "max_attempts", 1, 100, &t->max_attempts) < 0 ||
        conf_long(t, cfg, "max_in_flight", 1, 10000, &t->max_in_flight) < 0 ||
        conf_long(t, cfg, "claim_batch", 1, 10000, &t->claim_batch) < 0 ||
        conf_long(t, cfg, "lease_ms", 1000, 86400000, &t->lease_ms) < 0 ||
        conf_long(t, cfg, "idle_ms", 100, 3600000, &t->idle_ms) < 0)
        return -1;
    /* A claim must outlive the call it covers, or a slow call would be
     * claimed again by another scheduler while still in flight. */
    if (t->lease_ms == 0)
        t->lease_ms = t->timeout_ms + t->connect_timeout_ms + 30000;
    if (t->lease_ms <= t->timeout_ms + 1000) {
        FPESA_LOG(t, FPESA_LOG_ERROR,
                  "timer_service: config lease_ms (%ld) must exceed timeout_ms (%ld) by more "
                  "than a second",
                  t->lease_ms, t->timeout_ms);
        return -1;
    }
    return 0;
}

static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int timers_init(const struct fpesa_host *host, struct fpesa_ctx *ctx,
                       const char *config_json, void **state) {
    static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
    struct timers *t = calloc(1, sizeof(*t));
    json_error_t jerr;
    json_t *cfg;

    if (!t) {
        host->log(ctx, FPESA_LOG_ERROR, "timer_service: out of memory");
        return -1;
    }
    t->host = host;
    t->ctx = ctx;
    t->rpc = (struct rpc){host, ctx, "timer_service"};
    cfg = json_loads(config_json ? config_json : "{}", 0, &jerr);
    if (!cfg || configure(t, cfg) < 0) {
        if (!cfg)
            host->log(ctx, FPESA_LOG_ERROR, "timer_service: config is not JSON: %s", jerr.text);
        json_decref(cfg);
        hook_allow_fini(&t->allow);
        free(t);
        return -1;
    }
    json_decref(cfg);
    /* Not thread-safe in every libcurl build: once, from init (main thread). */
    pthread_once(&curl_once, curl_init_once);
    *state = t;
    return 0;
}

static void timers_fini(void *state) {
    struct timers *t = state;

    if (!t)
        return;
    PQfinish(t->pg);
    hook_allow_fini(&t->allow);
    free(t);
}

/* ---- database -------------------------------------------------------------- */

static void db_drop(struct timers *t) {
    PQfinish(t->pg);
    t->pg = NULL;
}

/* Connects and migrates when not connected. 0, or -1 (logged). */
static int db_ready(struct timers *t) {
    const char *url = t->host->database_url(t->ctx);
    char err[512];

    if (t->pg && PQstatus(t->pg) == CONNECTION_OK)
        return 0;
    db_drop(t);
    t->pg = store_connect(url ? url : "", err, sizeof(err));
    if (!t->pg || tstore_migrate(t->pg, err, sizeof(err)) < 0) {
        FPESA_LOG(t, FPESA_LOG_WARN, "timer_service: database unavailable: %s", err);
        db_drop(t);
        return -1;
    }
    return 0;
}

/* ---- rpc answers (handlers/lib/rpc.h) --------------------------------------- */

/* The envelope's member (borrowed from env), or NULL. */
static json_t *member(json_t *env, const char *key) {
    return json_is_object(env) ? json_object_get(env, key) : NULL;
}

/* ---- create ---------------------------------------------------------------- */

/* Checks a POST /timer body. Returns the delay in seconds, or -1 with a
 * sentence for the client in why. The mapper checked the schema already;
 * this holds for any caller on the bus and for what a schema cannot say
 * (the sum of the parts, the allowed hosts). */
static long long body_delay(struct timers *t, const json_t *data, char *why, size_t whylen) {
    static const char *const parts[] = {"hours", "minutes", "seconds"};
    static const long long unit[] = {3600, 60, 1};
    long long total = 0;
    const char *url;

    if (!json_is_object(data)) {
        snprintf(why, whylen,
                 "the body must be an object {\"hours\", \"minutes\", \"seconds\", \"url\"}");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_object_get(data, parts[i]);
        long long n;
        if (!v) {
            snprintf(why, whylen, "%s is required", parts[i]);
            return -1;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            snprintf(why, whylen, "%s must be a non-negative integer", parts[i]);
            return -1;
        }
        n = json_integer_value(v);
        if (n > t->max_delay_s / unit[i]) {
            snprintf(why, whylen, "the delay must be at most %lld seconds", t->max_delay_s);
            return -1;
        }
        total += n * unit[i];
    }
    if (total < 1) {
        snprintf(why, whylen, "the delay must be at least one second");
        return -1;
    }
    if (total > t->max_delay_s) {
        snprintf(why, whylen, "the delay must be at most %lld seconds", t->max_delay_s);
        return -1;
    }
    url = json_string_value(json_object_get(data, "url"));
    if (!url) {
        snprintf(why, whylen, "url is required and must be a string");
        return -1;
    }
    if (strlen(url) > 2048) {
        snprintf(why, whylen, "url is longer than 2048 characters");
        return -1;
    }
    if (hook_url_check(&t->allow, url, why, whylen) < 0)
        return -1;
    return total;
}

static int create_batch(struct timers *t, const struct fpesa_message *const *msgs, size_t n,
                        enum fpesa_result *results) {
    json_t *rows = json_array(), *done = NULL;
    json_t **envs = calloc(n, sizeof(*envs));
    char err[512];
    int rc = 0;

    if (!rows || !envs) {
        rc = -1;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct fpesa_message *m = msgs[i];
        json_t *data;
        char why[256];
        long long secs;

        if (!m->reply_to) {
            FPESA_LOG(t, FPESA_LOG_WARN, "timer_service: request without reply_to id=%s",
                      m->message_id ? m->message_id : "-");
            results[i] = FPESA_REJECT;
            continue;
        }
        envs[i] = json_loadb(m->body, m->len, 0, NULL);
        data = member(envs[i], "data");
        secs = body_delay(t, data, why, sizeof(why));
        if (secs < 0) {
            rpc_reply_error(&t->rpc, m, 422, why);
            results[i] = FPESA_OK;
            json_decref(envs[i]);
            envs[i] = NULL;
            continue;
        }
        if (!m->message_id || !*m->message_id) {
            rpc_reply_error(&t->rpc, m, 400, "the request carries no message id");
            results[i] = FPESA_OK;
            json_decref(envs[i]);
            envs[i] = NULL;
            continue;
        }
        if (json_array_append_new(rows, json_pack("{s:s,s:O,s:I}", "key", m->message_id, "url",
                                                  json_object_get(data, "url"), "secs",
                                                  (json_int_t)secs)) < 0) {
            rc = -1;
            goto out;
        }
    }
    if (json_array_size(rows) == 0)
        goto out;
    /* One retry on a fresh connection: the old one may have died idle. */
    for (int attempt = 0; attempt < 2 && !done; attempt++) {
        if (db_ready(t) < 0)
            break;
        done = tstore_create(t->pg, rows, err, sizeof(err));
        if (!done) {
            FPESA_LOG(t, FPESA_LOG_WARN, "timer_service: create failed: %s", err);
            if (PQstatus(t->pg) == CONNECTION_OK)
                break;
            db_drop(t);
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_t *a;
        if (!envs[i])
            continue;
        a = done ? json_object_get(done, msgs[i]->message_id) : NULL;
        if (a)
            rpc_reply_json(&t->rpc, msgs[i], json_incref(a));
        else
            rpc_reply_error(&t->rpc, msgs[i], 503, "the timer store is unavailable; try again");
        results[i] = FPESA_OK;
    }

out:
    for (size_t i = 0; envs && i < n; i++)
        json_decref(envs[i]);
    free(envs);
    json_decref(rows);
    json_decref(done);
    return rc;
}

/* ---- get ------------------------------------------------------------------- */

static int get_batch(struct timers *t, const struct fpesa_message *const *msgs, size_t n,
                     enum fpesa_result *results) {
    for (size_t i = 0; i < n; i++) {
        const struct fpesa_message *m = msgs[i];
        json_t *env;
        const char *id;
        int64_t left = 0;
        char err[512];
        int found = -1;

        if (!m->reply_to) {
            results[i] = FPESA_REJECT;
            continue;
        }
        results[i] = FPESA_OK;
        env = json_loadb(m->body, m->len, 0, NULL);
        id = json_string_value(member(member(env, "params"), "id"));
        if (!tstore_id_is_valid(id)) {
            rpc_reply_error(&t->rpc, m, 400, "the timer id must be a UUID");
            json_decref(env);
            continue;
        }
        for (int attempt = 0; attempt < 2 && found < 0; attempt++) {
            if (db_ready(t) < 0)
                break;
            found = tstore_time_left(t->pg, id, &left, err, sizeof(err));
            if (found < 0) {
                FPESA_LOG(t, FPESA_LOG_WARN, "timer_service: lookup failed: %s", err);
                if (PQstatus(t->pg) == CONNECTION_OK)
                    break;
                db_drop(t);
            }
        }
        if (found < 0)
            rpc_reply_error(&t->rpc, m, 503, "the timer store is unavailable; try again");
        else if (found == 0)
            rpc_reply_error(&t->rpc, m, 404, "no timer has this id");
        else
            rpc_reply_json(&t->rpc, m,
                           json_pack("{s:s,s:I}", "id", id, "time_left", (json_int_t)left));
        json_decref(env);
    }
    return 0;
}

static int timers_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                        enum fpesa_result *results) {
    struct timers *t = state;

    switch (t->role) {
    case ROLE_CREATE:
        return create_batch(t, msgs, n, results);
    case ROLE_GET:
        return get_batch(t, msgs, n, results);
    case ROLE_SCHEDULER:
        break;
    }
    /* The scheduler's queue carries nothing it expects. */
    for (size_t i = 0; i < n; i++)
        results[i] = FPESA_REJECT;
    return 0;
}

/* ---- scheduler ------------------------------------------------------------- */

static bool fd_readable(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) > 0;
}

static int64_t mono_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The wait before attempt `attempt + 1`, or -1 when none is left. */
static long retry_after(const struct timers *t, long attempt) {
    long ms = t->retry_base_ms;

    if (attempt >= t->max_attempts)
        return -1;
    for (long i = 1; i < attempt && ms < t->retry_max_ms; i++)
        ms *= 2;
    return ms < t->retry_max_ms ? ms : t->retry_max_ms;
}

static void add_outcome(struct timers *t, json_t *outcomes, const char *id, long attempt, bool ok,
                        long status, const char *error) {
    long retry = ok ? 0 : retry_after(t, attempt);

    if (ok)
        FPESA_LOG(t, FPESA_LOG_DEBUG, "timer_service: fired id=%s attempt=%ld status=%ld", id,
                  attempt, status);
    else
        FPESA_LOG(t, FPESA_LOG_WARN,
                  "timer_service: webhook failed id=%s attempt=%ld status=%ld error=\"%s\" "
                  "retry_ms=%ld",
                  id, attempt, status, error, retry);
    json_array_append_new(outcomes,
                          json_pack("{s:s,s:I,s:b,s:I,s:s,s:I}", "id", id, "attempt",
                                    (json_int_t)attempt, "ok", ok, "status", (json_int_t)status,
                                    "error", ok ? "" : error, "retry_ms", (json_int_t)retry));
}

/* Connects, migrates and listens. 0, or -1 (logged). */
static int sched_connect(struct timers *t) {
    PGresult *r;

    if (t->pg && PQstatus(t->pg) == CONNECTION_OK)
        return 0;
    if (db_ready(t) < 0)
        return -1;
    r = PQexec(t->pg, "LISTEN " TSTORE_CHANNEL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        FPESA_LOG(t, FPESA_LOG_WARN, "timer_service: LISTEN failed: %s", PQresultErrorMessage(r));
        PQclear(r);
        db_drop(t);
        return -1;
    }
    PQclear(r);
    FPESA_LOG(t, FPESA_LOG_INFO, "timer_service: scheduler listening channel=%s", TSTORE_CHANNEL);
    return 0;
}

/* Drops notifications: they only mean "look again", which every turn does. */
static void drain_notifies(struct timers *t) {
    PGnotify *nt;

    if (PQconsumeInput(t->pg) == 0) {
        FPESA_LOG(t, FPESA_LOG_WARN, "timer_service: database connection lost: %s",
                  PQerrorMessage(t->pg));
        db_drop(t);
        return;
    }
    while ((nt = PQnotifies(t->pg)))
        PQfreemem(nt);
}

/* Claims what is due and starts its calls. Returns how long to wait before
 * the next look (ms), or -1 on a database failure. */
static long claim_and_start(struct timers *t, struct hook_multi *hm, json_t *outcomes) {
    long slots = t->max_in_flight - hook_in_flight(hm), wait, next;
    long want = slots < t->claim_batch ? slots : t->claim_batch;
    char err[512];
    json_t *claimed, *c;
    size_t i;

    if (want <= 0)
        return t->idle_ms; /* a finishing call wakes the poll */
    claimed = tstore_claim(t->pg, (int)want, t->lease_ms, err, sizeof(err));
    if (!claimed) {
        FPESA_LOG(t, FPESA_LOG_WARN, "timer_service: claim failed: %s", err);
        return -1;
    }
    json_array_foreach(claimed, i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *url = json_string_value(json_object_get(c, "url"));
        long attempt = (long)json_integer_value(json_object_get(c, "attempt"));
        char why[256];

        struct hook_pin pin;

        /* The allow-list may have shrunk since the timer was created; the
         * host is resolved here, once, and the call goes to that address. */
        if (hook_resolve(&t->allow, url, &pin, why, sizeof(why)) < 0) {
            json_array_append_new(outcomes, json_pack("{s:s,s:I,s:b,s:i,s:s,s:i}", "id", id,
                                                      "attempt", (json_int_t)attempt, "ok", 0,
                                                      "status", 0, "error", why, "retry_ms", -1));
            FPESA_LOG(t, FPESA_LOG_WARN, "timer_service: not called id=%s: %s", id, why);
        } else if (hook_start(hm, id, attempt, url, &pin) < 0) {
            add_outcome(t, outcomes, id, attempt, false, 0, "cannot start the call");
        }
    }
    if ((long)json_array_size(claimed) == want) {
        json_decref(claimed);
        return 0; /* there may be more due right now */
    }
    json_decref(claimed);
    next = tstore_next_ms(t->pg, err, sizeof(err));
    if (next == -2) {
        FPESA_LOG(t, FPESA_LOG_WARN, "timer_service: next due time failed: %s", err);
        return -1;
    }
    wait = next < 0 || next > t->idle_ms ? t->idle_ms : next;
    return wait;
}

static int record(struct timers *t, json_t *outcomes) {
    char err[512];

    if (json_array_size(outcomes) == 0)
        return 0;
    if (tstore_record(t->pg, outcomes, err, sizeof(err)) < 0) {
        FPESA_LOG(t, FPESA_LOG_WARN, "timer_service: recording outcomes failed: %s", err);
        return -1;
    }
    json_array_clear(outcomes);
    return 0;
}

static void collect(struct timers *t, struct hook_done *done, int n, json_t *outcomes) {
    for (int i = 0; i < n; i++)
        add_outcome(t, outcomes, done[i].id, done[i].attempt, done[i].ok, done[i].status,
                    done[i].error);
}

static int timers_run(void *state, int stop_fd) {
    struct timers *t = state;
    struct hook_multi *hm;
    struct hook_done *done;
    json_t *outcomes;
    long backoff = 100;
    int64_t deadline;
    int rc = 0;

    if (t->role != ROLE_SCHEDULER)
        return 0;
    hm = hook_multi_new(t->connect_timeout_ms, t->timeout_ms);
    done = calloc(DONE_CAP, sizeof(*done));
    outcomes = json_array();
    if (!hm || !done || !outcomes) {
        FPESA_LOG(t, FPESA_LOG_ERROR, "timer_service: out of memory");
        rc = -1;
        goto out;
    }
    while (!fd_readable(stop_fd)) {
        int fds[2] = {stop_fd, -1};
        long wait = t->idle_ms;
        int got;

        if (sched_connect(t) == 0)
            drain_notifies(t);
        if (t->pg && record(t, outcomes) == 0) {
            wait = claim_and_start(t, hm, outcomes);
            if (wait >= 0)
                backoff = 100;
        } else {
            wait = -1;
        }
        if (wait < 0) {
            /* The database is away: keep the calls in flight going and
             * look again after a growing pause. */
            if (t->pg && PQstatus(t->pg) != CONNECTION_OK)
                db_drop(t);
            wait = backoff;
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        }
        if (json_array_size(outcomes) > 0 && t->pg)
            wait = 0;
        if (t->pg)
            fds[1] = PQsocket(t->pg);
        got = hook_poll(hm, fds, fds[1] >= 0 ? 2 : 1, wait, done, DONE_CAP);
        if (got < 0) {
            FPESA_LOG(t, FPESA_LOG_ERROR, "timer_service: curl multi failed");
            rc = -1;
            goto out;
        }
        collect(t, done, got, outcomes);
    }

    /* Stopping: claim nothing more, let the calls in flight finish (they
     * have their own timeouts) and record them, so none is called twice. */
    deadline = mono_ms() + t->timeout_ms + 1000;
    while (hook_in_flight(hm) > 0 && mono_ms() < deadline) {
        int got = hook_poll(hm, NULL, 0, 100, done, DONE_CAP);
        if (got < 0)
            break;
        collect(t, done, got, outcomes);
    }
    if (json_array_size(outcomes) > 0 && sched_connect(t) == 0)
        record(t, outcomes);

out:
    hook_multi_free(hm);
    free(done);
    json_decref(outcomes);
    return rc;
}

/* The config block, checked by the host before init() (and by --check) with
 * file:line:col; configure() keeps its own checks for an older host. */
#define CONFIG_SCHEMA                                                                              \
    "{\"type\": \"object\", \"required\": [\"role\"], \"additionalProperties\": false,"            \
    " \"properties\": {"                                                                           \
    "  \"role\": {\"enum\": [\"create\", \"get\", \"scheduler\"]},"                                \
    "  \"allow_hosts\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"minLength\": "   \
    "1}},"                                                                                         \
    "  \"max_delay_s\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 315360000},"          \
    "  \"connect_timeout_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 600000},"      \
    "  \"timeout_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 600000},"              \
    "  \"retry_base_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 86400000},"         \
    "  \"retry_max_ms\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 86400000},"          \
    "  \"max_attempts\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100},"               \
    "  \"max_in_flight\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 10000},"            \
    "  \"claim_batch\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 10000},"              \
    "  \"lease_ms\": {\"type\": \"integer\", \"minimum\": 1000, \"maximum\": 86400000},"           \
    "  \"idle_ms\": {\"type\": \"integer\", \"minimum\": 100, \"maximum\": 3600000}"               \
    "}}"

FPESA_HANDLER_DEFINE_FULL("timer_service: delayed webhooks (roles create, get, scheduler)",
                          CONFIG_SCHEMA, timers_init, timers_batch, timers_fini, timers_run)
