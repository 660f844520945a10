/* image_service: the plugins of the image example (examples/images/), one
 * library with a role per handler:
 *
 *   role: ingest     POST /image (rpc). The body is the image itself (the
 *                    mapper has checked its type by its bytes). Stores it as
 *                    pending, queues its id for the transform and answers
 *                    202 {"id"}.
 *   role: transform  consumes the transform queue: makes a thumbnail with the
 *                    time stamped on it (libvips), stores it, or the reason
 *                    it failed.
 *   role: get        GET /image/{id} (rpc): the thumbnail's bytes with its
 *                    media type once done; 202 with Retry-After while
 *                    pending; 404 unknown; 500 with the reason when the
 *                    transform failed; 400 an id that is not one.
 *   role: activity   consumes the activity queue: one log line per event,
 *                    so the queue stays short (the events are the pipeline's
 *                    audit trail, read from the handler's log).
 *
 * Every step publishes one event to the fanout exchange `activity` (config
 * activity_exchange), bound to a durable queue of the same name, so the
 * pipeline's history can be followed by anyone:
 *   {"image_id", "step", "at", "detail"?}
 *   steps: received, queued, transform_started, thumbnail, stored | failed
 *
 * Table (versioned migration, schema_migrations name "images"):
 *   images(id text PK, received_at, state pending|done|failed, original bytea,
 *          original_type, result bytea, result_type, error, done_at)
 *
 * config:
 *   role: ingest | transform | get | activity
 *   transform_queue: images.transform   (ingest publishes there; transform
 *                                         handlers consume it)
 *   activity_exchange: activity
 *   thumbnail_size: 128                  (pixels, the longer side; 16..2048)
 *   retry_after: 1                       (seconds, the pending answer's header)
 */
#include <errno.h>
#include <fpesa/handler.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/rpc.h"
#include "../lib/store.h"
#include "transform.h"

enum role { ROLE_INGEST, ROLE_TRANSFORM, ROLE_GET, ROLE_ACTIVITY };

struct svc {
    const struct fpesa_host *host;
    struct fpesa_ctx *ctx;
    struct rpc rpc; /* answers (the same host and context) */
    enum role role;
    char transform_queue[128];
    char activity[128];
    int size;
    char retry_after[16];
    PGconn *pg;
    time_t failed_at;
    bool declared;       /* the activity exchange and queue */
    bool declared_queue; /* the transform queue */
};

static const char *const migrations[] = {
    "CREATE TABLE images ("
    " id text PRIMARY KEY,"
    " received_at timestamptz NOT NULL DEFAULT now(),"
    " state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),"
    " original bytea NOT NULL,"
    " original_type text NOT NULL,"
    " result bytea,"
    " result_type text,"
    " error text,"
    " done_at timestamptz)",
};

static int open_db(struct svc *s) {
    char err[512];
    time_t now = time(NULL);

    if (s->pg && PQstatus(s->pg) == CONNECTION_OK)
        return 0;
    if (s->pg) {
        PQfinish(s->pg);
        s->pg = NULL;
    }
    if (s->failed_at && now - s->failed_at < 1)
        return -1;
    s->pg = store_connect(s->host->database_url(s->ctx), err, sizeof(err));
    if (!s->pg) {
        FPESA_LOG(s, FPESA_LOG_WARN, "image_service: database unavailable: %s", err);
        goto out_fail;
    }
    if (store_migrate_set(s->pg, "images", migrations, sizeof(migrations) / sizeof(migrations[0]),
                          NULL, err, sizeof(err)) < 0) {
        FPESA_LOG(s, FPESA_LOG_ERROR, "image_service: migration failed: %s", err);
        goto out_fail;
    }
    s->failed_at = 0;
    return 0;
out_fail:
    PQfinish(s->pg);
    s->pg = NULL;
    s->failed_at = now;
    return -1;
}

/* Drops a connection a failed statement showed to be broken. */
static void check_conn(struct svc *s) {
    if (s->pg && PQstatus(s->pg) != CONNECTION_OK) {
        PQfinish(s->pg);
        s->pg = NULL;
    }
}

static int copy_config(struct svc *s, const char *key, const char *def, char *dst, size_t cap) {
    const char *v = s->host->config(s->ctx, key);

    if (!v)
        v = def;
    if (!*v || strlen(v) >= cap) {
        FPESA_LOG(s, FPESA_LOG_ERROR, "image_service: config %s is empty or too long", key);
        return -1;
    }
    snprintf(dst, cap, "%s", v);
    return 0;
}

static int svc_init(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                    void **state) {
    struct svc *s = calloc(1, sizeof(*s));
    const char *role = host->config(ctx, "role");
    const char *size = host->config(ctx, "thumbnail_size");
    long ra;
    char *end;

    (void)config_json;
    if (!s)
        return -1;
    s->host = host;
    s->ctx = ctx;
    s->rpc = (struct rpc){host, ctx, "image_service"};
    if (!FPESA_HAS_FIELD(host, struct fpesa_host, declare)) {
        FPESA_LOG(s, FPESA_LOG_ERROR, "image_service: the host is too old (no reply_http/declare)");
        goto out_free;
    }
    if (role && strcmp(role, "ingest") == 0)
        s->role = ROLE_INGEST;
    else if (role && strcmp(role, "transform") == 0)
        s->role = ROLE_TRANSFORM;
    else if (role && strcmp(role, "get") == 0)
        s->role = ROLE_GET;
    else if (role && strcmp(role, "activity") == 0)
        s->role = ROLE_ACTIVITY;
    else {
        FPESA_LOG(s, FPESA_LOG_ERROR,
                  "image_service: config role must be ingest, transform, get or activity");
        goto out_free;
    }
    if (copy_config(s, "transform_queue", "images.transform", s->transform_queue,
                    sizeof(s->transform_queue)) < 0 ||
        copy_config(s, "activity_exchange", "activity", s->activity, sizeof(s->activity)) < 0 ||
        copy_config(s, "retry_after", "1", s->retry_after, sizeof(s->retry_after)) < 0)
        goto out_free;
    errno = 0;
    ra = strtol(s->retry_after, &end, 10);
    if (errno || *end || ra < 0 || ra > 3600) {
        FPESA_LOG(s, FPESA_LOG_ERROR,
                  "image_service: config retry_after must be 0 to 3600 seconds");
        goto out_free;
    }
    s->size = 128;
    if (size) {
        long v;
        errno = 0;
        v = strtol(size, &end, 10);
        if (errno || *end || end == size || v < 16 || v > 2048) {
            FPESA_LOG(s, FPESA_LOG_ERROR,
                      "image_service: config thumbnail_size must be 16 to 2048");
            goto out_free;
        }
        s->size = (int)v;
    }
    if (s->role == ROLE_TRANSFORM && transform_init("fpesa-handler") < 0) {
        FPESA_LOG(s, FPESA_LOG_ERROR, "image_service: libvips did not start");
        goto out_free;
    }
    if (s->role != ROLE_ACTIVITY)
        open_db(s);
    *state = s;
    return 0;

out_free:
    free(s);
    return -1;
}

/* ---- activity events ----------------------------------------------------- */

static void activity(struct svc *s, const char *id, const char *step, const char *detail) {
    char at[40];
    struct timespec ts;
    struct tm tm;
    json_t *ev;
    char *text;

    if (!s->declared) {
        if (s->host->declare(s->ctx, s->activity, "fanout", s->activity) < 0) {
            FPESA_LOG(s, FPESA_LOG_WARN, "image_service: cannot declare %s", s->activity);
            return;
        }
        s->declared = true;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(at, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(at + strlen(at), sizeof(at) - strlen(at), ".%06ldZ", ts.tv_nsec / 1000);
    ev = json_pack("{s:s,s:s,s:s}", "image_id", id, "step", step, "at", at);
    if (ev && detail)
        json_object_set_new(ev, "detail", json_string(detail));
    text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    if (text && s->host->publish(s->ctx, s->activity, "", text, strlen(text), "application/json"))
        s->declared = false; /* declare again next time */
    free(text);
    json_decref(ev);
}

static bool is_image_type(const char *ct, char *bare, size_t cap) {
    size_t n;

    if (!ct)
        return false;
    n = strcspn(ct, "; \t");
    if (n >= cap)
        return false;
    memcpy(bare, ct, n);
    bare[n] = '\0';
    return strcasecmp(bare, "image/png") == 0 || strcasecmp(bare, "image/jpeg") == 0;
}

/* ---- ingest ---------------------------------------------------------------- */

static enum fpesa_result ingest(struct svc *s, const struct fpesa_message *m) {
    char type[64], reply[128];
    const char *vals[3];
    int lens[3] = {0}, fmts[3] = {0, 1, 0};
    PGresult *r;

    if (!m->message_id || !*m->message_id) {
        rpc_reply_error(&s->rpc, m, 400, "the request has no message id");
        return FPESA_OK;
    }
    if (!is_image_type(m->content_type, type, sizeof(type)) || m->len == 0) {
        rpc_reply_error(&s->rpc, m, 415, "the body is not a PNG or JPEG image");
        return FPESA_OK;
    }
    if (open_db(s) < 0) {
        rpc_reply_error(&s->rpc, m, 503, "the image store is unavailable");
        return FPESA_OK;
    }
    vals[0] = m->message_id;
    vals[1] = m->body;
    lens[1] = (int)m->len;
    vals[2] = type;
    r = PQexecParams(s->pg,
                     "INSERT INTO images (id, original, original_type) VALUES ($1, $2, $3)"
                     " ON CONFLICT (id) DO NOTHING",
                     3, NULL, vals, lens, fmts, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        FPESA_LOG(s, FPESA_LOG_WARN, "image_service: image %s not stored: %s", m->message_id,
                  PQresultErrorMessage(r));
        PQclear(r);
        check_conn(s);
        rpc_reply_error(&s->rpc, m, 503, "the image store is unavailable");
        return FPESA_OK;
    }
    PQclear(r);
    activity(s, m->message_id, "received", type);
    /* The transform handlers declare their queue too; whoever starts first. */
    if (!s->declared_queue && s->host->declare(s->ctx, NULL, NULL, s->transform_queue) == 0)
        s->declared_queue = true;
    /* "queued" goes out before the job, on the same channel, so it reaches
     * the activity queue before anything the transform publishes. */
    activity(s, m->message_id, "queued", s->transform_queue);
    {
        json_t *job = json_pack("{s:s}", "id", m->message_id);
        char *text = job ? json_dumps(job, JSON_COMPACT) : NULL;
        int rc = text ? s->host->publish(s->ctx, "", s->transform_queue, text, strlen(text),
                                         "application/json")
                      : -1;
        free(text);
        json_decref(job);
        if (rc < 0) {
            const char *const why = "the transform job could not be queued";
            char ignore[8];

            vals[1] = why;
            store_exec_params(s->pg, "UPDATE images SET state = 'failed', error = $2 WHERE id = $1",
                              2, vals, ignore, sizeof(ignore));
            activity(s, m->message_id, "failed", why);
            rpc_reply_error(&s->rpc, m, 503, "the transform queue is unavailable");
            return FPESA_OK;
        }
    }
    {
        const char *headers[] = {"Location", NULL, NULL};
        char loc[300];

        /* Relative, so it stays right behind a proxy that adds a prefix
         * (/api/v1/image -> /api/v1/image/<id>). */
        snprintf(loc, sizeof(loc), "image/%s", m->message_id);
        headers[1] = loc;
        snprintf(reply, sizeof(reply), "{\"id\":\"%s\"}", m->message_id);
        s->host->reply_http(s->ctx, m, 202, headers, reply, strlen(reply), "application/json");
    }
    return FPESA_OK;
}

/* ---- transform ------------------------------------------------------------- */

static enum fpesa_result transform(struct svc *s, const struct fpesa_message *m) {
    json_error_t jerr;
    json_t *job = json_loadb(m->body, m->len, 0, &jerr);
    const char *id = json_string_value(json_object_get(job, "id"));
    const char *vals[4];
    int lens[4] = {0}, fmts[4] = {0};
    char err[512], stamp[64];
    void *out = NULL;
    size_t out_len = 0;
    const char *out_type = NULL;
    enum fpesa_result res = FPESA_RETRY;
    PGresult *r = NULL;
    time_t now;
    struct tm tm;

    if (!id || strlen(id) > 200) {
        FPESA_LOG(s, FPESA_LOG_WARN, "image_service: a transform job without an id");
        res = FPESA_REJECT;
        goto out;
    }
    if (open_db(s) < 0)
        goto out;
    vals[0] = id;
    r = PQexecParams(s->pg, "SELECT state, original FROM images WHERE id = $1", 1, NULL, vals, NULL,
                     NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        FPESA_LOG(s, FPESA_LOG_WARN, "image_service: cannot read %s: %s", id,
                  PQresultErrorMessage(r));
        check_conn(s);
        goto out;
    }
    if (PQntuples(r) == 0 || PQgetlength(r, 0, 0) != 7 ||
        memcmp(PQgetvalue(r, 0, 0), "pending", 7) != 0) {
        res = FPESA_OK; /* unknown, or already done by a redelivery */
        goto out;
    }
    activity(s, id, "transform_started", NULL);
    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (transform_thumbnail(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1), s->size, stamp, &out,
                            &out_len, &out_type, err, sizeof(err)) < 0) {
        PQclear(r);
        vals[1] = err;
        r = PQexecParams(s->pg,
                         "UPDATE images SET state = 'failed', error = $2, done_at = now()"
                         " WHERE id = $1 AND state = 'pending'",
                         2, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            check_conn(s);
            goto out;
        }
        FPESA_LOG(s, FPESA_LOG_INFO, "image_service: transform of %s failed: %s", id, err);
        activity(s, id, "failed", err);
        res = FPESA_OK;
        goto out;
    }
    activity(s, id, "thumbnail", stamp);
    PQclear(r);
    vals[1] = out;
    lens[1] = (int)out_len;
    fmts[1] = 1;
    vals[2] = out_type;
    r = PQexecParams(s->pg,
                     "UPDATE images SET state = 'done', result = $2, result_type = $3,"
                     " done_at = now() WHERE id = $1 AND state = 'pending'",
                     3, NULL, vals, lens, fmts, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        FPESA_LOG(s, FPESA_LOG_WARN, "image_service: result of %s not stored: %s", id,
                  PQresultErrorMessage(r));
        check_conn(s);
        goto out;
    }
    activity(s, id, "stored", out_type);
    res = FPESA_OK;
out:
    PQclear(r);
    transform_free(out);
    json_decref(job);
    return res;
}

/* ---- get ------------------------------------------------------------------- */

static bool id_is_plausible(const char *id) {
    size_t n = strlen(id);

    if (n == 0 || n > 200)
        return false;
    for (size_t i = 0; i < n; i++)
        if (id[i] < 0x21 || id[i] > 0x7e)
            return false;
    return true;
}

static enum fpesa_result get(struct svc *s, const struct fpesa_message *m) {
    json_error_t jerr;
    json_t *env = json_loadb(m->body, m->len, 0, &jerr);
    const char *id = json_string_value(json_object_get(json_object_get(env, "params"), "id"));
    const char *vals[1];
    PGresult *r = NULL;
    char desc[700];

    if (!id || !id_is_plausible(id)) {
        rpc_reply_error(&s->rpc, m, 400, "not an image id");
        goto out;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (open_db(s) < 0)
            break;
        vals[0] = id;
        r = PQexecParams(s->pg,
                         "SELECT state, coalesce(result_type, ''), coalesce(error, ''), result"
                         " FROM images WHERE id = $1",
                         1, NULL, vals, NULL, NULL, 1);
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            break;
        PQclear(r);
        r = NULL;
        check_conn(s);
        if (s->pg)
            break;
    }
    if (!r) {
        rpc_reply_error(&s->rpc, m, 503, "the image store is unavailable");
        goto out;
    }
    if (PQntuples(r) == 0) {
        rpc_reply_error(&s->rpc, m, 404, "no image has this id");
    } else {
        char state[16], type[64];
        int sl = PQgetlength(r, 0, 0), tl = PQgetlength(r, 0, 1);

        snprintf(state, sizeof(state), "%.*s", sl, PQgetvalue(r, 0, 0));
        snprintf(type, sizeof(type), "%.*s", tl, PQgetvalue(r, 0, 1));
        if (strcmp(state, "done") == 0) {
            s->host->reply_http(s->ctx, m, 200, NULL, PQgetvalue(r, 0, 3),
                                (size_t)PQgetlength(r, 0, 3), type);
        } else if (strcmp(state, "failed") == 0) {
            snprintf(desc, sizeof(desc), "the transform failed: %.*s", PQgetlength(r, 0, 2),
                     PQgetvalue(r, 0, 2));
            rpc_reply_error(&s->rpc, m, 500, desc);
        } else {
            const char *headers[] = {"Retry-After", s->retry_after, NULL};
            char body[300];

            snprintf(body, sizeof(body), "{\"id\":\"%s\",\"state\":\"pending\"}", id);
            s->host->reply_http(s->ctx, m, 202, headers, body, strlen(body), "application/json");
        }
    }
out:
    PQclear(r);
    json_decref(env);
    return FPESA_OK;
}

/* An event of the activity queue: one line in the log, then acked. A body
 * that is not an event is logged as such and acked too: nothing waits for it. */
static enum fpesa_result record_event(struct svc *s, const struct fpesa_message *m) {
    json_t *ev = json_loadb(m->body, m->len, 0, NULL);
    const char *id = json_string_value(json_object_get(ev, "image_id"));
    const char *step = json_string_value(json_object_get(ev, "step"));
    const char *at = json_string_value(json_object_get(ev, "at"));
    const char *detail = json_string_value(json_object_get(ev, "detail"));

    if (id && step)
        FPESA_LOG(s, FPESA_LOG_INFO, "image activity image_id=%.64s step=%.32s at=%.40s%s%.200s",
                  id, step, at ? at : "-", detail ? " detail=" : "", detail ? detail : "");
    else
        FPESA_LOG(s, FPESA_LOG_WARN, "image activity: not an event (%zu bytes)", m->len);
    json_decref(ev);
    return FPESA_OK;
}

static int svc_batch(void *state, const struct fpesa_message *const *msgs, size_t n,
                     enum fpesa_result *results) {
    struct svc *s = state;

    for (size_t i = 0; i < n; i++) {
        const struct fpesa_message *m = msgs[i];

        if (s->role == ROLE_ACTIVITY) {
            results[i] = record_event(s, m);
            continue;
        }
        if (s->role != ROLE_TRANSFORM && !m->reply_to) {
            results[i] = FPESA_REJECT;
            continue;
        }
        results[i] = s->role == ROLE_INGEST ? ingest(s, m)
                     : s->role == ROLE_GET  ? get(s, m)
                                            : transform(s, m);
    }
    return 0;
}

static void svc_fini(void *state) {
    struct svc *s = state;

    if (!s)
        return;
    PQfinish(s->pg);
    free(s);
}

FPESA_HANDLER_DEFINE("image_service: image upload, thumbnail with a time stamp, download", svc_init,
                     svc_batch, svc_fini)
