/* The libmicrohttpd adapter of restmapper's HTTP server: the daemon's
 * callbacks (request line, access handler, completion, connections, its log)
 * and the server's life cycle (configuration snapshots, bind, start, reload,
 * quiesce, stop). A request's way from its headers to its answer is in
 * request.c, upload.c, envelope.c, dispatch.c and http_reply.c (see
 * http_int.h).
 */
#include "http_int.h"

#include "asyncapi.h"
#include "auth.h"
#include "log.h"
#include "metrics.h"
#include "openapi.h"
#include "ratelimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static struct http_snap *snap_get(struct http_server *srv);
static void snap_put(struct http_snap *sn);

static double elapsed_s(const struct timespec *since) {
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* The request's path (its first 300 bytes) as a log value: quoted and
 * escaped when it needs to be (log_quote), so no path forges a field. */
static const char *path_q(const struct http_request *rq, char *buf, size_t len) {
    char raw[301];
    size_t n = rq->path_len > 300 ? 300 : rq->path_len;

    memcpy(raw, rq->uri, n);
    raw[n] = '\0';
    return log_quote(raw, buf, len);
}

/* ---- libmicrohttpd callbacks ------------------------------------------------ */

/* Checks the request target against http.max_uri and http.max_query_params,
 * and hides its query string from libmicrohttpd.
 *
 * libmicrohttpd 0.9 parses the query string into its per-connection memory
 * right after this callback, a record per parameter; many short parameters
 * overflow that memory, and it then neither answers nor frees the request.
 * The mapper parses the query itself (query.c) from its own copy and never
 * asks libmicrohttpd for it, so the query is cut off in libmicrohttpd's
 * buffer (uri points into it, and libmicrohttpd writes there itself): it
 * then has nothing to parse. */
static void edge_request_line(struct http_request *rq, const char *uri) {
    const struct cfg *cfg = rq->snap->cfg;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    char *q = uri ? strchr(uri, '?') : NULL;
    size_t n = 0;

    rq->ec = ci ? ci->socket_context : NULL;
    edge_phase(rq->srv->edge, rq->ec, EDGE_HEADER);
    if (q && q[1])
        q[1] = '\0';
    if (cfg->http.max_uri && strlen(rq->uri) > cfg->http.max_uri) {
        edge_refused(rq->srv->edge, "uri");
        http_fail(rq, MHD_HTTP_URI_TOO_LONG, "the request target is longer than %zu bytes",
                  cfg->http.max_uri);
        return;
    }
    if (rq->query && rq->query[0]) {
        n = 1;
        for (const char *p = rq->query; *p; p++)
            n += *p == '&';
    }
    if (cfg->http.max_query_params > 0 && n > (size_t)cfg->http.max_query_params) {
        edge_refused(rq->srv->edge, "query");
        http_fail(rq, MHD_HTTP_URI_TOO_LONG,
                  "the query has %zu parameters; at most %d are accepted", n,
                  cfg->http.max_query_params);
    }
}

/* Called with the raw request target before MHD decodes it; what it returns
 * becomes the request's context, and MHD calls on_completed for it whatever
 * happens next. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    struct http_server *srv = cls;
    struct http_request *rq = calloc(1, sizeof(*rq));
    const char *q;

    if (!rq)
        return NULL;
    rq->uri = strdup(uri ? uri : "");
    if (!rq->uri) {
        free(rq);
        return NULL;
    }
    rq->srv = srv;
    rq->conn = conn;
    clock_gettime(CLOCK_MONOTONIC, &rq->start);
    q = strchr(rq->uri, '?');
    rq->path_len = q ? (size_t)(q - rq->uri) : strlen(rq->uri);
    rq->query = q ? q + 1 : NULL;
    /* A fragment is never sent by a browser; drop one a client sent anyway. */
    if (rq->query) {
        char *hash = strchr(rq->uri + rq->path_len, '#');
        if (hash)
            *hash = '\0';
    }
    rq->snap = snap_get(srv);
    atomic_fetch_add_explicit(&srv->in_flight, 1, memory_order_relaxed);
    metrics_in_flight(rq->snap->metrics, 1);
    edge_request_line(rq, uri);
    return rq;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    struct http_request *rq = *req_cls;

    (void)cls;
    (void)url;
    (void)version;
    if (!rq)
        return MHD_NO; /* out of memory when the request began */
    if (!rq->started) {
        /* Answering on the first call makes MHD close the connection; the
         * answer is queued on a later call so that keep-alive holds. */
        rq->started = true;
        rq->conn = conn;
        rq->method = method;
        http_begin(rq, method);
        if (rq->status == MHD_HTTP_CONTENT_TOO_LARGE || rq->close_now)
            return http_reply_error(rq); /* refuse before the body is read */
        edge_phase(rq->srv->edge, rq->ec, rq->expect_len || rq->chunked ? EDGE_BODY : EDGE_BUSY);
        return MHD_YES;
    }
    if (*upload_data_size) {
        bool go_on = http_take_upload(rq, upload_data, *upload_data_size);

        *upload_data_size = 0;
        if (!go_on) {
            char pq[1300], mq[64];

            LOG(LOG_INFO,
                "request refused, closing after %zu bytes of body method=%s path=%s status=%d",
                rq->discarded, log_quote(method, mq, sizeof(mq)), path_q(rq, pq, sizeof(pq)),
                rq->status);
        }
        return go_on ? MHD_YES : MHD_NO;
    }
    if (rq->answered)
        return MHD_YES;
    edge_phase(rq->srv->edge, rq->ec, EDGE_BUSY);
    if (rq->status)
        return http_reply_error(rq);
    if (rq->preflight)
        return http_reply_preflight(rq);
    if (rq->dispatched) {
        if (!atomic_load_explicit(&rq->done, memory_order_acquire))
            return MHD_YES; /* woken before the outcome: wait on */
        if (rq->claiming)
            return http_claimed(rq);
        return http_reply_result(rq);
    }
    if (rq->route->kind != ROUTE_ENDPOINT)
        return http_reply_builtin(rq);
    return http_dispatch(rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    struct http_server *srv = cls;
    struct http_request *rq = *req_cls;
    double secs;
    char pq[1300], mq[64], iq[820];

    (void)conn;
    if (!rq)
        return;
    *req_cls = NULL;
    secs = elapsed_s(&rq->start);
    if (rq->answered) {
        metrics_request(rq->snap->metrics,
                        rq->route ? rq->route->id : router_count(rq->snap->router), rq->answered,
                        secs);
        /* The duration in whole microseconds printed as ms.uuu: the same
         * text as %.3f at about half the cost of formatting a double. */
        LOG(LOG_INFO, "request method=%s path=%s status=%d duration_ms=%ld.%03ld id=%s",
            log_quote(rq->method, mq, sizeof(mq)), path_q(rq, pq, sizeof(pq)), rq->answered,
            (long)(secs * 1e6 + 0.5) / 1000, (long)(secs * 1e6 + 0.5) % 1000,
            log_quote(rq->id[0] ? rq->id : NULL, iq, sizeof(iq)));
    } else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        LOG(LOG_DEBUG, "request ended without an answer method=%s path=%s reason=%d",
            log_quote(rq->method, mq, sizeof(mq)), path_q(rq, pq, sizeof(pq)), (int)toe);
    }
    if (rq->dispatched)
        atomic_fetch_sub_explicit(&srv->waiting, 1, memory_order_relaxed);
    edge_phase(srv->edge, rq->ec, EDGE_IDLE);
    json_decref(rq->params);
    free(rq->body);
    free(rq->result_body);
    free(rq->result_ctype);
    free(rq->result_headers);
    if (rq->pending) {
        http_outgoing_fini(&rq->pending->o);
        free(rq->pending);
    }
    free(rq->err);
    free(rq->principal);
    free(rq->uri);
    metrics_in_flight(rq->snap->metrics, -1);
    snap_put(rq->snap);
    free(rq);
    atomic_fetch_sub_explicit(&srv->in_flight, 1, memory_order_relaxed);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    char line[512];
    size_t n;

    (void)cls;
    if (LOG_WARN < log_threshold)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_write(LOG_WARN, "libmicrohttpd: %s", line);
}

/* ---- life cycle ---------------------------------------------------------- */

static void snap_free(struct http_snap *sn) {
    if (!sn)
        return;
    auth_free(sn->auth);
    ratelimit_free(sn->rl);
    metrics_free(sn->metrics);
    free(sn->openapi);
    free(sn->asyncapi);
    free(sn->cors_headers);
    free(sn->route_methods);
    free(sn->route_paths);
    router_free(sn->router);
    if (sn->owns_cfg)
        cfg_free(sn->cfg);
    free(sn);
}

/* Drops a reference; the last one frees the snapshot. NULL is fine. */
static void snap_put(struct http_snap *sn) {
    if (sn && atomic_fetch_sub_explicit(&sn->refs, 1, memory_order_acq_rel) == 1)
        snap_free(sn);
}

/* A new reference to the current snapshot. */
static struct http_snap *snap_get(struct http_server *srv) {
    struct http_snap *sn;

    pthread_mutex_lock(&srv->snap_lock);
    sn = srv->snap;
    atomic_fetch_add_explicit(&sn->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&srv->snap_lock);
    return sn;
}

/* Builds the snapshot of cfg (borrowed; kept by the snapshot until it is
 * freed, and freed with it when owns_cfg), with one reference. NULL on
 * failure (logged). */
static struct http_snap *snap_new(struct cfg *cfg, bool owns_cfg) {
    struct http_snap *sn = calloc(1, sizeof(*sn));
    json_t *doc = NULL;
    bool auth_failed = false;
    size_t n;

    if (!sn)
        return NULL;
    atomic_init(&sn->refs, 1);
    sn->cfg = cfg;
    sn->auth = auth_new(cfg, &auth_failed);
    if (auth_failed) {
        LOG(LOG_ERROR, "cannot load the keys of the auth section");
        goto out_free;
    }
    sn->rl = ratelimit_new(cfg);
    if (!sn->rl)
        goto out_free;
    sn->router = router_new(cfg);
    if (!sn->router) {
        LOG(LOG_ERROR, "cannot build the route table");
        goto out_free;
    }
    n = router_count(sn->router);
    sn->route_methods = calloc(n + 1, sizeof(*sn->route_methods));
    sn->route_paths = calloc(n + 1, sizeof(*sn->route_paths));
    if (!sn->route_methods || !sn->route_paths)
        goto out_free;
    for (size_t i = 0; i < n; i++) {
        sn->route_methods[i] = router_get(sn->router, i)->method;
        sn->route_paths[i] = router_get(sn->router, i)->path;
    }
    sn->metrics = metrics_new(n, sn->route_methods, sn->route_paths);
    doc = openapi_build(cfg);
    sn->openapi = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    doc = asyncapi_build(cfg);
    sn->asyncapi = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!sn->metrics || !sn->openapi || !sn->asyncapi) {
        LOG(LOG_ERROR, "out of memory building the metrics and the API documents");
        goto out_free;
    }
    sn->openapi_len = strlen(sn->openapi);
    sn->asyncapi_len = strlen(sn->asyncapi);
    {
        static const char base[] = "Content-Type, Idempotency-Key, Authorization, X-API-Key";
        size_t len = sizeof(base), o = sizeof(base) - 1;

        for (size_t i = 0; i < cfg->http.n_cors_headers; i++)
            len += strlen(cfg->http.cors_headers[i]) + 2;
        sn->cors_headers = malloc(len);
        if (!sn->cors_headers)
            goto out_free;
        memcpy(sn->cors_headers, base, sizeof(base));
        for (size_t i = 0; i < cfg->http.n_cors_headers; i++) {
            size_t hl = strlen(cfg->http.cors_headers[i]);

            memcpy(sn->cors_headers + o, ", ", 2);
            memcpy(sn->cors_headers + o + 2, cfg->http.cors_headers[i], hl + 1);
            o += hl + 2;
        }
    }
    sn->owns_cfg = owns_cfg;
    return sn;

out_free:
    snap_free(sn);
    return NULL;
}

struct http_server *http_new(const struct cfg *cfg, struct mbus *bus) {
    struct http_server *srv = calloc(1, sizeof(*srv));

    if (!srv)
        return NULL;
    srv->listen_fd = -1;
    srv->cfg = cfg;
    srv->bus = bus;
    pthread_mutex_init(&srv->snap_lock, NULL);
    /* The start's configuration stays main()'s. */
    srv->snap = snap_new((struct cfg *)cfg, false);
    if (!srv->snap) {
        http_free(srv);
        return NULL;
    }
    return srv;
}

int http_reload(struct http_server *srv, struct cfg *cfg,
                int (*before)(void *arg, const struct cfg *cfg), void *arg) {
    struct http_snap *sn = snap_new(cfg, false), *old;

    if (!sn)
        return -1;
    /* The bus declares the new topology before any request can use it. */
    if (before && before(arg, cfg) < 0) {
        snap_free(sn);
        return -1;
    }
    sn->owns_cfg = true;
    pthread_mutex_lock(&srv->snap_lock);
    old = srv->snap;
    srv->snap = sn;
    pthread_mutex_unlock(&srv->snap_lock);
    /* Requests that started with the old one keep it until they complete. */
    snap_put(old);
    return 0;
}

const struct cfg *http_config(struct http_server *srv) {
    const struct cfg *cfg;

    pthread_mutex_lock(&srv->snap_lock);
    cfg = srv->snap->cfg;
    pthread_mutex_unlock(&srv->snap_lock);
    return cfg;
}

static int resolve(const struct cfg *cfg, struct sockaddr_storage *out, bool *ipv6) {
    struct addrinfo hints = {0}, *res = NULL;
    char port[16];
    int rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", cfg->http.port);
    rc = getaddrinfo(cfg->http.host && cfg->http.host[0] ? cfg->http.host : NULL, port, &hints,
                     &res);
    if (rc != 0 || !res) {
        LOG(LOG_ERROR, "cannot resolve the listen address host=%s error=\"%s\"",
            cfg->http.host ? cfg->http.host : "", gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *ipv6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

int http_bind(struct http_server *srv) {
    const struct cfg *cfg = srv->cfg;
    const char *host = cfg->http.host ? cfg->http.host : "*";
    bool ipv6 = false;
    int fd, one = 1, saved;

    if (srv->listen_fd >= 0)
        return 0;
    if (resolve(cfg, &srv->addr, &ipv6) != 0)
        return -1;
    fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        saved = errno;
        LOG(LOG_ERROR, "cannot create the listening socket error=\"%s\"", strerror(saved));
        return -1;
    }
    /* SO_REUSEADDR lets a restart bind while old connections linger in
     * TIME_WAIT; never SO_REUSEPORT, which would let two instances share
     * the port and split its traffic silently. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&srv->addr,
             ipv6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0) {
        saved = errno;
        LOG(LOG_ERROR, "cannot listen on %s:%d: %s", host, cfg->http.port,
            saved == EADDRINUSE ? "the port is taken by another process" : strerror(saved));
        close(fd);
        return -1;
    }
    srv->listen_fd = fd;
    return 0;
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    struct http_server *srv = cls;

    return edge_may_accept(srv->edge, addr, addrlen) ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    struct http_server *srv = cls;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = addr ? addr->client_addr : NULL;
        socklen_t len = 0;

        if (sa)
            len = sa->sa_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                            : (socklen_t)sizeof(struct sockaddr_in);
        *socket_context = fd ? edge_conn_open(srv->edge, fd->connect_fd, sa, len) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        edge_conn_close(srv->edge, *socket_context);
        *socket_context = NULL;
    }
}

int http_start(struct http_server *srv) {
    const struct cfg *cfg = srv->cfg;
    unsigned int flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    long threads = cfg->http.threads;
    int saved;
    struct edge_limits lim = {
        .max_connections = cfg->http.max_connections,
        .max_per_client = cfg->http.max_connections_per_client,
        .idle_timeout_s = cfg->http.idle_timeout,
        .header_timeout_s = cfg->http.header_timeout,
        .body_timeout_s = cfg->http.body_timeout,
    };
    /* The edge counts connections and refuses past its limits (on_accept);
     * libmicrohttpd's own total limit, a little higher, only backs it up.
     * libmicrohttpd's own timeout restarts with every byte; it only backs the
     * edge's deadlines up, which end first. */
    int backstop = lim.idle_timeout_s;

    if (lim.header_timeout_s > backstop)
        backstop = lim.header_timeout_s;
    if (lim.body_timeout_s > backstop)
        backstop = lim.body_timeout_s;
    backstop += 5;
    if (threads < 1)
        threads = 1;
    if (http_bind(srv) != 0)
        return -1;
    if (listen(srv->listen_fd, SOMAXCONN) != 0) {
        saved = errno;
        LOG(LOG_ERROR, "cannot listen on %s:%d: %s", cfg->http.host ? cfg->http.host : "*",
            cfg->http.port,
            saved == EADDRINUSE ? "the port is taken by another process" : strerror(saved));
        return -1;
    }
    if (srv->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (!srv->edge)
        srv->edge = edge_new(&lim);
    if (!srv->edge) {
        LOG(LOG_ERROR, "cannot start the connection sweeper");
        return -1;
    }
    srv->daemon = MHD_start_daemon(
        flags, 0, on_accept, srv, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_LISTEN_SOCKET,
        (MHD_socket)srv->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(lim.max_connections + threads),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)backstop, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    if (!srv->daemon) {
        LOG(LOG_ERROR, "cannot start serving on %s:%d", cfg->http.host ? cfg->http.host : "*",
            cfg->http.port);
        return -1;
    }
    LOG(LOG_INFO, "listening on %s:%d threads=%ld", cfg->http.host ? cfg->http.host : "*",
        cfg->http.port, threads);
    return 0;
}

void http_quiesce(struct http_server *srv) {
    MHD_socket s;

    if (!srv || !srv->daemon)
        return;
    atomic_store(&srv->draining, true);
    s = MHD_quiesce_daemon(srv->daemon);
    if (s != MHD_INVALID_SOCKET) {
        close(s);
        if (s == srv->listen_fd)
            srv->listen_fd = -1;
    }
}

long http_in_flight(const struct http_server *srv) {
    return atomic_load_explicit(&((struct http_server *)srv)->in_flight, memory_order_relaxed);
}

long http_waiting(const struct http_server *srv) {
    return atomic_load_explicit(&((struct http_server *)srv)->waiting, memory_order_relaxed);
}

void http_stop(struct http_server *srv) {
    if (srv && srv->daemon) {
        MHD_stop_daemon(srv->daemon);
        srv->daemon = NULL;
        /* A started daemon owns the listening socket it was given (closed
         * by the stop, unless quiesced: then http_quiesce closed it). */
        srv->listen_fd = -1;
    }
}

void http_free(struct http_server *srv) {
    if (!srv)
        return;
    http_stop(srv);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    edge_free(srv->edge);
    snap_put(srv->snap);
    pthread_mutex_destroy(&srv->snap_lock);
    free(srv);
}
