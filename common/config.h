/* endpoints.yaml: the one configuration file every fpesa program reads.
 *
 * cfg_load() parses the file with libyaml into a tree that remembers the
 * file, line and column of every node, checks it against a table of known
 * keys, and fills the structs below. Every problem found is reported as
 *   endpoints.yaml:12:7: unknown key "methd" (did you mean "method"?)
 * (1-based line and column), all of them, not just the first; when there is
 * any problem nothing is returned and the caller exits non-zero before it
 * starts anything.
 *
 * Environment variables override the file after it is read, so one file
 * serves development and production:
 *   FPESA_AMQP_URL       bus.url
 *   FPESA_DATABASE_URL   database.url
 *   FPESA_HTTP_LISTEN    http.listen        (host:port)
 *   FPESA_LIVE_LISTEN    liveupdate.listen  (host:port)
 *   FPESA_LIVE_SOURCE    liveupdate.source  (queue or stream)
 *   FPESA_HANDLER_LISTEN handler_host.listen (host:port)
 *   FPESA_PLUGIN_DIR     plugin_dir
 * An override with a bad value is an error like one in the file (reported as
 * "FPESA_HTTP_LISTEN: ...").
 */
#ifndef FPESA_CONFIG_H
#define FPESA_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct jschema;

/* Where a node stood in the file: 1-based line and column. */
struct cfg_pos {
    int line;
    int col;
};

enum cfg_mode { CFG_MODE_PUBLISH = 0, CFG_MODE_RPC = 1 };

/* compat: whom the bus topology must agree with (doc/fpesa-python.rst). */
enum cfg_compat {
    CFG_COMPAT_NONE = 0,         /* our own declarations: every exchange and queue durable */
    CFG_COMPAT_FPESA_PYTHON = 1, /* the original Python fpesa's: exchanges, RPC and the rpc
                                    queues not durable, publish queues durable */
};

/* bus.queue_type: what the durable endpoint queues and dead-letter queues are
 * declared as. A queue that exists as another type is used as it is. */
/* liveupdate.source: where liveupdate reads a live channel's messages. */
enum cfg_live_source {
    CFG_LIVE_QUEUE = 0,  /* a private queue of its own per instance (in the order it gets them) */
    CFG_LIVE_STREAM = 1, /* a stream per channel that every instance reads, in the stream's one
                            order: a client resumes exactly on any instance */
};

enum cfg_queue_type {
    CFG_QUEUE_CLASSIC = 0, /* RabbitMQ's classic queue (declared without x-queue-type) */
    CFG_QUEUE_QUORUM = 1,  /* a replicated quorum queue: survives the loss of a cluster node */
};

/* How a request body of one content type is read (endpoints[].content_types[].kind). */
enum cfg_body_kind {
    CFG_BODY_JSON = 0,  /* parsed as JSON, validated by the body schema */
    CFG_BODY_FORM,      /* application/x-www-form-urlencoded: an object of strings */
    CFG_BODY_MULTIPART, /* multipart/form-data: fields as an object of strings, and files */
    CFG_BODY_BINARY,    /* bytes carried as they are, checked by their signature when known */
};

/* A multipart/form-data field that may carry a file (endpoints[].files[]). */
struct cfg_file {
    char *field;   /* the form field's name */
    bool required; /* a request without this file is refused */
    char **types;  /* accepted media types of the file; none: the endpoint's non-form types */
    size_t n_types;
    size_t max_size; /* bytes; 0: the limit of the file's type in content_types, if any */
    struct cfg_pos pos;
};

/* Who may call a route (endpoints[].auth) or read its live channel
 * (endpoints[].live_auth). */
struct cfg_auth_rule {
    bool given;     /* the endpoint has this section */
    bool anonymous; /* anyone, without credentials */
    char **scopes;  /* every one of these is required */
    size_t n_scopes;
    char **roles; /* one of these is required (none: no role needed) */
    size_t n_roles;
    char **methods; /* "api_key", "jwt": the credentials accepted; none: any configured */
    size_t n_methods;
    struct cfg_pos pos;
};

/* What one bucket of a rate limit is kept for (endpoints[].rate_limit.by). */
enum cfg_rate_by { CFG_RATE_CLIENT = 0, CFG_RATE_PRINCIPAL, CFG_RATE_ROUTE };

/* A token bucket per client, principal or route (endpoints[].rate_limit). */
struct cfg_rate_limit {
    bool given;
    int requests; /* tokens added per window */
    long per_ms;  /* the window; default 1 s */
    int burst;    /* bucket size; default: requests */
    char *by;     /* as written; see by_kind */
    enum cfg_rate_by by_kind;
    struct cfg_pos pos;
};

/* An API key, known only by the SHA-256 of its text (auth.api_keys[]). */
struct cfg_api_key {
    char *name;   /* the principal's name; never the key */
    char *sha256; /* 64 hex digits */
    char **scopes;
    size_t n_scopes;
    char **roles;
    size_t n_roles;
    struct cfg_pos pos;
};

/* A key JWTs may be signed with (auth.jwt.keys[]). */
struct cfg_jwt_key {
    char *kid;         /* matched against the token's "kid", or NULL: any */
    char *alg;         /* HS256 HS384 HS512 RS256 RS384 RS512 ES256 ES384 ES512 */
    char *secret;      /* HS*: the shared secret */
    char *secret_file; /* HS*: or a file holding it */
    char *pem_file;    /* RS*, ES*: the public key, PEM */
    struct cfg_pos pos;
};

struct cfg_endpoint {
    char *path;     /* "/messages/" or "/timer/{id}"; always starts with '/' */
    char *method;   /* upper case: GET POST PUT PATCH DELETE */
    char *exchange; /* "<path>:<METHOD>", the exchange (and queue) name on the bus */
    enum cfg_mode mode;
    char *summary;               /* free text for the OpenAPI document, or NULL */
    json_t *body;                /* JSON Schema of the body as written, or NULL: no body allowed */
    json_t *args;                /* JSON Schema of the query string, or NULL: no query allowed */
    struct jschema *body_schema; /* compiled from body, or NULL */
    struct jschema *args_schema; /* compiled from args, or NULL */
    bool live;                   /* liveupdate forwards it to websocket clients */
    bool trailing_slash;         /* the path with a trailing '/' added (or taken off) matches too */
    long timeout_ms;             /* rpc: no answer in time -> 504; default 5000 */
    int status;                  /* publish: status on success; default 202 */
    int validation_status;       /* status for a body/args schema violation; default 400 */
    size_t max_body;             /* bytes; default http.max_body */
    char **content_types;        /* accepted request content types; default application/json */
    size_t n_content_types;
    struct cfg_pos pos;       /* of the endpoint's mapping */
    size_t *content_max_body; /* parallel to content_types: the limit for a body of that type */
    json_t *response;         /* publish: success body, "{id}" in strings replaced; NULL: {"id"} */
    struct cfg_file *files;   /* multipart fields that may carry a file */
    size_t n_files;
    enum cfg_body_kind *content_kinds; /* parallel to content_types */
    struct cfg_auth_rule auth;         /* who may call it */
    struct cfg_auth_rule live_auth;    /* who may read its live channel */
    struct cfg_rate_limit rate_limit;  /* requests allowed, per instance */
};

struct cfg_handler {
    char *name;         /* unique */
    char *plugin;       /* file name as written; relative names are looked up in plugin_dir */
    char *plugin_path;  /* resolved path */
    char *queue;        /* the queue it consumes, normally an endpoint's exchange name */
    int prefetch;       /* basic.qos prefetch; default 256 */
    int batch;          /* most messages handed to the plugin at once; default 100 */
    long batch_wait_ms; /* how long to wait to fill a batch; default 5 */
    int instances;      /* consumer processes in the host; default 1 */
    int crash_limit;    /* crashes of an instance a message may cause before it is
                           dead-lettered; default 3 */
    json_t *config;     /* the handler's own block ("config:"), or NULL; passed to the plugin */
    struct cfg_pos pos;
};

struct cfg {
    char *file; /* path as given to cfg_load */

    struct {
        char *url; /* amqp://user:pass@host:port/vhost; default amqp://guest:guest@127.0.0.1:5672 */
        int heartbeat;           /* seconds; default 5 (a frozen broker is noticed after two) */
        long confirm_timeout_ms; /* a publish not confirmed in time is answered 503
                                    "outcome unknown"; default 5000 */
        enum cfg_queue_type queue_type; /* default CFG_QUEUE_CLASSIC; FPESA_QUEUE_TYPE */
    } bus;

    struct {
        char *host;          /* default 127.0.0.1 */
        int port;            /* default 8081 */
        size_t max_body;     /* default 64 KiB; "64KiB", "1MiB", or a number of bytes */
        int threads;         /* libmicrohttpd thread pool size; default: number of cores */
        int max_connections; /* default 10000 */
        int max_connections_per_client; /* open connections from one address; default 512 */
        int header_timeout; /* seconds from a request line to its last header; default 10 */
        int body_timeout;   /* seconds from the headers to the last byte of the body; default 30 */
        int idle_timeout;   /* seconds a connection may wait for its next request; default 30 */
        int max_headers;    /* request header fields; more -> 431; default 64 */
        int max_query_params; /* query parameters; more -> 414; default 100 */
        size_t max_uri;       /* bytes of the request target; longer -> 414; default 8 KiB */
        char **cors_origins;  /* allowed Origin values ("*" for any), or none */
        size_t n_cors_origins;
        char *public_prefix; /* where clients reach the API (OpenAPI servers); default /api/v1 */
        char **cors_headers; /* request headers allowed beyond the built-in ones */
        size_t n_cors_headers;
    } http;

    struct {
        char *host;          /* default 127.0.0.1 */
        int port;            /* default 8082 */
        size_t client_queue; /* messages queued per client before it is dropped; default 1024 */
        size_t max_frame;    /* largest frame accepted from a client; default 4 KiB */
        int ping_interval;   /* seconds; default 20 */
        long resume_limit;   /* most stored messages replayed on ?since=; default 1000 */
        enum cfg_live_source source; /* default CFG_LIVE_QUEUE; FPESA_LIVE_SOURCE */
        size_t stream_max_bytes;     /* a stream's retention in bytes; default 256 MiB */
        int stream_max_age;          /* and in seconds; default 3600 */
    } live;

    /* The handler host's own HTTP listener for /health and /metrics
     * ("handler_host:"). Off unless given: several hosts may run on one
     * machine, and each needs an address of its own. */
    struct {
        char *host; /* default 127.0.0.1 */
        int port;   /* 0: no listener */
    } handler_host;

    struct {
        char *url;      /* default postgresql://fpesa@127.0.0.1:5432/fpesa */
        char *read_url; /* a streaming replica readers may use, or NULL; FPESA_DATABASE_READ_URL */
    } database;

    /* How an Idempotency-Key is honoured ("idempotency:"): before a keyed
     * request goes on the bus, the mapper asks the claim worker on this rpc
     * exchange whether the key is new, was used with the same request, or
     * with another one (409). NULL: keys only name the message. */
    struct {
        char *exchange;
        long timeout_ms; /* the claim's rpc timeout; default 2000 */
    } idempotency;

    char *plugin_dir; /* default: the folder "plugins" beside the programs (build/plugins) */

    struct {
        bool enabled; /* the file has an auth section: routes need credentials by default */
        char *realm;  /* for WWW-Authenticate; default "fpesa" */
        struct cfg_api_key *api_keys;
        size_t n_api_keys;
        char *api_keys_file; /* JSON list of {name, sha256, scopes, roles}, or NULL */
        struct cfg_pos api_keys_file_pos;
        char *issuer;    /* jwt.issuer: required "iss", or NULL */
        char *audience;  /* jwt.audience: required in "aud", or NULL */
        int leeway;      /* jwt.leeway: seconds of clock skew allowed; default 30 */
        char *jwks_file; /* jwt.jwks_file, or NULL */
        struct cfg_pos jwks_file_pos;
        struct cfg_jwt_key *jwt_keys;
        size_t n_jwt_keys;
        char **origins; /* Origin values allowed to open websockets; none: any */
        size_t n_origins;
    } auth;
    enum cfg_compat compat; /* default CFG_COMPAT_NONE */

    struct cfg_endpoint *endpoints;
    size_t n_endpoints;
    struct cfg_handler *handlers;
    size_t n_handlers;
};

/* Loads and checks path. On success returns a new struct cfg (free with
 * cfg_free). On failure writes every problem as "file:line:col: message\n" to
 * errs (borrowed; may be NULL to stay silent) and returns NULL. */
struct cfg *cfg_load(const char *path, FILE *errs);

/* cfg_load for a reload (SIGHUP): logs "reloading signal=HUP file=path"; a
 * file with problems is logged as refused, each problem as file:line:col,
 * and NULL returned (the running configuration stays). */
struct cfg *cfg_load_reload(const char *path);

/* Frees everything cfg_load returned, including compiled schemas. NULL is fine. */
void cfg_free(struct cfg *cfg);

/* Fills *cfg (whatever it held) with the values cfg_load starts from: every
 * default a file may leave out, set once here so that users read the fields
 * as they are. For a configuration built without a file (a test); a loaded
 * one has them already. Strings are new: release them with cfg_fini. Returns
 * 0, or -1 when out of memory (cfg_fini still releases what was set). */
int cfg_init(struct cfg *cfg);

/* Releases what *cfg holds, not cfg itself (cfg_free is cfg_fini plus
 * free): strings, lists, endpoints and handlers. NULL is fine. */
void cfg_fini(struct cfg *cfg);

/* Fills *ep (whatever it held) with what the loader gives an endpoint before
 * its keys are read (publish mode, a 5000 ms rpc timeout, statuses 202 and 400), for an
 * endpoint built without a file. max_body and the content types are
 * derived from the whole file by cfg_load; such an endpoint sets them. */
void cfg_endpoint_init(struct cfg_endpoint *ep);

/* The endpoint with this exact method and path pattern, or NULL (borrowed). */
const struct cfg_endpoint *cfg_endpoint_find(const struct cfg *cfg, const char *method,
                                             const char *path);

/* True when the endpoint exchanges, the exchange RPC and the rpc queues are
 * declared durable (compat none); false under compat fpesa-python, whose
 * programs declare them transient. Publish queues are durable either way.
 * Whatever this says, a program finding a declaration with other flags uses
 * it as it is. cfg is borrowed; NULL means the defaults. */
bool cfg_declare_durable(const struct cfg *cfg);

/* The x-queue-type a durable endpoint or dead-letter queue is declared
 * with: "quorum", or NULL for a classic queue (no argument, so that queues
 * declared before the setting existed stay equivalent). Static storage;
 * cfg is borrowed, NULL means the defaults. */
const char *cfg_queue_type_arg(const struct cfg *cfg);

/* The compat setting as written in the file ("none", "fpesa-python");
 * static storage. */
const char *cfg_compat_name(const struct cfg *cfg);

/* Every key the loader knows, as dotted paths ("http.max_body",
 * "endpoints[].path", "handlers[].config"), NULL-terminated; static storage.
 * The documentation test compares it with doc/'s reference. */
const char *const *cfg_known_keys(void);

/* Parses "64KiB", "1MiB", "512", "2KB" into bytes. 0 on success, -1 on a bad value.
 * A whole number, optionally followed (spaces allowed) by a unit, case-insensitive:
 * B, K/KB = 1000, KiB = 1024, M/MB, MiB, G/GB, GiB. No sign, no fraction. */
int cfg_parse_size(const char *s, size_t *out);

/* Parses "2s", "500ms", "1m", "1.5s" into milliseconds. 0 on success, -1 on a bad value.
 * A number (digits, at most one point) with a unit ms, s, m or h; a bare number
 * is refused (its unit would be a guess) except 0. The result must be a whole
 * number of milliseconds. */
int cfg_parse_duration(const char *s, long *out_ms);

/* Implements the --check option every program has: loads path, prints
 * "path: ok" (stdout) or every problem (stderr), returns the process exit
 * status (0 or 1). */
int cfg_check_main(const char *path);

#endif
