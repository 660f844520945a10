/* fpesa handler plugin ABI, version 1.
 *
 * This header is all a plugin author needs. A plugin is a shared object that
 * the handler host loads with dlopen(path, RTLD_NOW | RTLD_LOCAL) when
 * endpoints.yaml names it under "handlers:". The plugin never links against
 * the host: everything the host offers reaches it through the const table of
 * function pointers (struct fpesa_host) passed to init().
 *
 * Entry point
 *   The plugin exports one function with C linkage:
 *
 *       const struct fpesa_handler *fpesa_handler_v1(void);
 *
 *   It returns a pointer to a static, const struct fpesa_handler that lives as
 *   long as the library is loaded (FPESA_HANDLER_DEFINE below writes it). The
 *   host refuses, with a message naming the file and both versions, a plugin
 *   whose table has another abi_version or a struct_size smaller than the
 *   version 1 table.
 *
 * Life cycle
 *   1. init() is called once per consumer instance ("instances:" in the YAML,
 *      default 1), before any message is consumed, in the main thread. It gets
 *      the host table, an opaque host context for this instance and the
 *      handler's own "config:" block as JSON text. A non-zero return refuses
 *      the whole host start (exit status 1), so init should only fail for a
 *      configuration the plugin cannot work with. A resource that can come
 *      later (a database being restarted) should be retried in handle_batch()
 *      rather than fail init.
 *   2. handle_batch() is called from that instance's consumer thread with up
 *      to "batch:" messages at a time. One state is never used by two threads
 *      at once; different instances' states may run in parallel.
 *   3. run(), when the plugin has one (an appended field), is called once per
 *      state in a thread of its own, beside handle_batch(), until the host
 *      stops (see struct fpesa_handler).
 *   4. fini() is called once per state at shutdown, after the last batch
 *      and after run() has returned.
 *
 * Outcome of a message (results[i])
 *   FPESA_OK      done: the host acknowledges it to the broker. Mark a message
 *                 OK only once its effect is durable (e.g. after COMMIT).
 *   FPESA_RETRY   a transient failure (database down): the host waits with a
 *                 growing backoff and hands it back later (it is requeued on
 *                 the broker, so it may come back flagged redelivered, possibly
 *                 to another instance). Nothing is lost, so a plugin must be
 *                 idempotent: the same message_id can arrive twice.
 *   FPESA_REJECT  poison (a body that can never be handled): the host moves it
 *                 to the dead-letter queue "<queue>.dlq" and acknowledges it.
 *   The host fills results[] with FPESA_RETRY before the call, so a message
 *   the plugin does not mark is retried, never lost. The host does not check
 *   bodies itself: a body that is not valid JSON is handed over like any
 *   other and the plugin decides (usually FPESA_REJECT).
 *
 * Ownership
 *   Everything the host passes is borrowed and valid only during the call it
 *   is passed to, unless stated otherwise; copy what you keep. Everything the
 *   plugin passes to host services is borrowed by the host for the duration
 *   of that call only.
 *
 * Evolution rules (how version 1 stays binary compatible)
 *   - Every struct crossing the boundary starts with {abi_version,
 *     struct_size}. New fields are only ever appended; existing fields never
 *     change type, meaning or position, and none is removed.
 *   - A reader checks struct_size before touching an appended field
 *     (FPESA_HAS_FIELD below), so an old plugin runs on a new host and a new
 *     plugin can detect an old host.
 *   - Messages are passed as an array of pointers, so a longer struct on a
 *     newer host never shifts the elements an older plugin indexes.
 *   - An incompatible change gets a new entry symbol (fpesa_handler_v2) and a
 *     new FPESA_HANDLER_ABI_VERSION; a host may support several at once.
 *   - enum values are only appended; a plugin must treat an unknown log level
 *     as FPESA_LOG_INFO.
 */
#ifndef FPESA_HANDLER_H
#define FPESA_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FPESA_HANDLER_ABI_VERSION 1u

/* The name of the entry symbol for dlsym(). */
#define FPESA_HANDLER_ENTRY "fpesa_handler_v1"

/* True when a struct that starts with struct_size has field f (appended
 * fields are only present when the producer was built with them). */
#define FPESA_HAS_FIELD(p, type, f) ((p)->struct_size >= offsetof(type, f) + sizeof(((type *)0)->f))

enum fpesa_result {
    FPESA_OK = 0,
    FPESA_RETRY = 1,
    FPESA_REJECT = 2,
};

enum fpesa_log_level {
    FPESA_LOG_DEBUG = 0,
    FPESA_LOG_INFO = 1,
    FPESA_LOG_WARN = 2,
    FPESA_LOG_ERROR = 3,
};

/* The host's per-instance context: opaque, passed back to every service. */
struct fpesa_ctx;

/* One delivery from the broker. Every pointer is borrowed for the duration of
 * the handle_batch() call; strings are NUL-terminated (body too, one byte past
 * len, though it may contain NUL bytes itself). An AMQP property the message
 * did not carry is NULL (strings) or 0 (timestamp). */
struct fpesa_message {
    uint32_t abi_version;       /* FPESA_HANDLER_ABI_VERSION */
    uint32_t struct_size;       /* sizeof(struct fpesa_message) of the host */
    const char *body;           /* the payload: the JSON envelope {"data","args","params"} */
    size_t len;                 /* bytes in body */
    const char *message_id;     /* UUIDv7 from the mapper, or the Idempotency-Key */
    const char *content_type;   /* e.g. "application/json" */
    int64_t timestamp;          /* seconds since the epoch (AMQP has no finer unit) */
    const char *reply_to;       /* rpc: the queue awaiting the answer */
    const char *correlation_id; /* rpc: to copy into the answer */
    int redelivered;            /* non-zero: the broker delivered it before */
    const char *exchange;       /* the exchange it was published to */
    const char *routing_key;    /* its routing key */

    /* ---- appended in ABI 1 (check with FPESA_HAS_FIELD) ----------------- */

    /* The message's AMQP headers as name/value pairs: headers[2 * i] is a
     * name, headers[2 * i + 1] its value, for i < n_headers, followed by a
     * NULL. Values are text: strings and byte arrays as they are (NUL
     * terminated), integers, floats and booleans printed ("42", "true"),
     * tables and arrays as JSON, void as "". Names keep the sender's case.
     * Never NULL: a message without headers has n_headers 0 and headers
     * {NULL}. Borrowed like the rest of the message. For a file or raw body
     * the mapper sends the rest of the request here (the same headers a
     * worker in another language reads): "x-fpesa-args" (the query string,
     * JSON), "x-fpesa-params" (path parameters, JSON), and for a multipart
     * file "x-fpesa-data" (the other form fields, JSON), "x-fpesa-field"
     * and "x-fpesa-filename". fpesa_message_header() looks one up. */
    const char *const *headers;
    size_t n_headers;
};

/* ASCII lower case, for fpesa_message_header(). */
static inline int fpesa_ascii_lower(int c) {
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* The value of the header called name (ASCII case-insensitive) of msg, or
 * NULL when it has none or its host predates headers. Borrowed from msg. */
static inline const char *fpesa_message_header(const struct fpesa_message *msg, const char *name) {
    if (!FPESA_HAS_FIELD(msg, struct fpesa_message, n_headers) || !msg->headers)
        return NULL;
    for (size_t i = 0; i < msg->n_headers; i++) {
        const unsigned char *a = (const unsigned char *)msg->headers[2 * i];
        const unsigned char *b = (const unsigned char *)name;

        while (*a && fpesa_ascii_lower(*a) == fpesa_ascii_lower(*b)) {
            a++;
            b++;
        }
        if (!*a && !*b)
            return msg->headers[2 * i + 1];
    }
    return NULL;
}

/* The AMQP header in which restmapper says who sent a request. */
#define FPESA_HEADER_PRINCIPAL "x-fpesa-principal"

/* Who sent msg, when the configuration has an auth section: JSON text
 * {"kind": "api_key", "jwt" or "anonymous", "name": the key's name or the
 * token's subject, "scopes": [...], "roles": [...]}. NULL without an auth
 * section (or from a host that predates headers). Only restmapper publishes
 * to endpoint exchanges, so a worker may trust it. Borrowed from msg. */
static inline const char *fpesa_message_principal(const struct fpesa_message *msg) {
    return fpesa_message_header(msg, FPESA_HEADER_PRINCIPAL);
}

/* Services the host offers. The table is const and outlives every state. Each
 * function takes the ctx given to init(). */
struct fpesa_host {
    uint32_t abi_version; /* FPESA_HANDLER_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct fpesa_host) of the host */

    /* Writes one log line at level, tagged with the handler's name, in the
     * host's format. fmt and arguments are borrowed. Safe from any thread. */
    void (*log)(struct fpesa_ctx *ctx, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* Answers the rpc request msg: publishes body (len bytes, borrowed) to
     * exchange "RPC" with routing key msg->reply_to and msg->correlation_id,
     * content type content_type (NULL: application/json). Only from within
     * handle_batch(). Returns 0, or -1 when msg has no reply_to or the broker
     * refused it (the rpc caller then times out). */
    int (*reply)(struct fpesa_ctx *ctx, const struct fpesa_message *msg, const char *body,
                 size_t len, const char *content_type);

    /* Publishes body (borrowed) to exchange with routing_key, persistent.
     * Only from within handle_batch(). Returns 0 or -1. */
    int (*publish)(struct fpesa_ctx *ctx, const char *exchange, const char *routing_key,
                   const char *body, size_t len, const char *content_type);

    /* The value of key in the handler's "config:" block ("table", or a dotted
     * path "pool.size"), as text: strings as they are, numbers and booleans
     * printed, NULL for a missing key, null, an object or an array. The
     * returned string is owned by the host and valid until fini(). */
    const char *(*config)(struct fpesa_ctx *ctx, const char *key);

    /* The database URL from endpoints.yaml ("database.url", overridable with
     * FPESA_DATABASE_URL). Owned by the host, valid until fini(). Never log
     * it whole: it may hold a password. */
    const char *(*database_url)(struct fpesa_ctx *ctx);

    /* The handler's name from endpoints.yaml. Owned by the host. */
    const char *(*name)(struct fpesa_ctx *ctx);

    /* The queue this instance consumes. Owned by the host. */
    const char *(*queue)(struct fpesa_ctx *ctx);

    /* ---- appended in ABI 1 (check with FPESA_HAS_FIELD) ----------------- */

    /* Answers the rpc request msg like reply(), and also chooses the HTTP
     * answer restmapper gives: status (100 to 599; 0 leaves it to the body as
     * reply() does) and response headers, headers being a NULL-terminated
     * array of name, value pairs ({"Retry-After", "1", NULL}; NULL for none;
     * at most 16 pairs, values without CR or LF). They travel as the AMQP
     * headers "x-fpesa-status" and "x-fpesa-header-<Name>" of the answer.
     * Everything is borrowed for the call. Only from within handle_batch().
     * Returns 0, or -1 (no reply_to, a bad status or header, broker refused). */
    int (*reply_http)(struct fpesa_ctx *ctx, const struct fpesa_message *msg, int status,
                      const char *const *headers, const char *body, size_t len,
                      const char *content_type);

    /* Declares a durable exchange of type ("fanout", "direct", ...; NULL:
     * fanout) and/or a durable queue (either may be NULL), the queue bound to
     * the exchange with its own name as routing key when both are given:
     * what a plugin needs before it publishes to an exchange of its own.
     * Idempotent. Only from within handle_batch(). Returns 0 or -1. */
    int (*declare)(struct fpesa_ctx *ctx, const char *exchange, const char *type,
                   const char *queue);
};

/* What a plugin exports through fpesa_handler_v1(). */
struct fpesa_handler {
    uint32_t abi_version;    /* FPESA_HANDLER_ABI_VERSION the plugin was built with */
    uint32_t struct_size;    /* sizeof(struct fpesa_handler) the plugin was built with */
    const char *description; /* one line for the logs; may be NULL */

    /* Creates the state of one instance. host and ctx are borrowed but stay
     * valid until fini(); keep them in the state. config_json is the
     * handler's "config:" block as JSON text ("{}" when absent), borrowed for
     * the call. On success stores the new state in *state (freed by fini)
     * and returns 0; on failure logs why through host->log and returns
     * non-zero (the host then refuses to start). */
    int (*init)(const struct fpesa_host *host, struct fpesa_ctx *ctx, const char *config_json,
                void **state);

    /* Handles msgs[0..n-1] (n >= 1; the array and the messages are
     * borrowed) and stores each outcome in results[i] (prefilled with
     * FPESA_RETRY). A non-zero return means "retry the whole batch" whatever
     * results[] says. */
    int (*handle_batch)(void *state, const struct fpesa_message *const *msgs, size_t n,
                        enum fpesa_result *results);

    /* Frees the state (taken). May be NULL when init stores nothing. */
    void (*fini)(void *state);

    /* ---- appended in ABI 1 (check with FPESA_HAS_FIELD) ----------------- */

    /* Optional background work of the plugin's own (a scheduler waking at
     * due times, say); NULL for none. When set, the host calls run() once per
     * instance, in a thread of its own, after every init() and alongside the
     * consumer thread of the same state: run() and handle_batch() may execute
     * at the same time, so the plugin locks what they share (or shares
     * nothing). stop_fd is a file descriptor (borrowed, never read it or
     * close it) that becomes readable when the host is stopping; run() polls
     * it beside its own descriptors and returns soon after. The reply and
     * publish services are not available from run(); log, config and the
     * other lookups are. A non-zero return is logged as a failure; the host
     * keeps serving its queues either way. fini() is called only after run()
     * has returned. */
    int (*run)(void *state, int stop_fd);

    /* ---- appended after ABI 1's first release (FPESA_HAS_FIELD) --------- */

    /* A JSON Schema (draft 7, as JSON text; static storage) for the
     * handler's "config:" block, or NULL for none. The host validates the
     * block against it (an absent block as {}) before init(), at start and
     * in `handler --check`, and refuses a violation with the position in
     * endpoints.yaml: "endpoints.yaml:58:13: handlers[0].config/role: enum:
     * ...". So init() may trust what the schema states. */
    const char *config_schema;
};

/* The one way a plugin logs: s is the plugin's state (any struct with the
 * members host, the const struct fpesa_host * init() received, and ctx, the
 * struct fpesa_ctx * that came with it). The host checks the level before
 * formatting and writes the line in the project's format, tagged with the
 * handler's name.
 *     FPESA_LOG(st, FPESA_LOG_WARN, "query failed table=%s", st->table);
 */
#define FPESA_LOG(s, level, ...) ((s)->host->log((s)->ctx, (level), __VA_ARGS__))

/* The entry symbol's type. */
typedef const struct fpesa_handler *(*fpesa_handler_entry_fn)(void);

/* Convenience for plugins: defines the entry symbol returning a table built
 * from the three callbacks, with the right version and size.
 *     FPESA_HANDLER_DEFINE("echo: answers with the request", my_init, my_batch, my_fini)
 */
#define FPESA_HANDLER_DEFINE(desc, init_cb, batch_cb, fini_cb)                                     \
    const struct fpesa_handler *fpesa_handler_v1(void);                                            \
    __attribute__((visibility("default"))) const struct fpesa_handler *fpesa_handler_v1(void) {    \
        static const struct fpesa_handler table = {                                                \
            .abi_version = FPESA_HANDLER_ABI_VERSION,                                              \
            .struct_size = sizeof(struct fpesa_handler),                                           \
            .description = (desc),                                                                 \
            .init = (init_cb),                                                                     \
            .handle_batch = (batch_cb),                                                            \
            .fini = (fini_cb),                                                                     \
        };                                                                                         \
        return &table;                                                                             \
    }

/* The same with every optional member: run (may be NULL) and the JSON Schema
 * of the handler's config block (JSON text, may be NULL).
 *     FPESA_HANDLER_DEFINE_FULL("timers", SCHEMA, my_init, my_batch, my_fini, my_run)
 */
#define FPESA_HANDLER_DEFINE_FULL(desc, schema, init_cb, batch_cb, fini_cb, run_cb)                \
    const struct fpesa_handler *fpesa_handler_v1(void);                                            \
    __attribute__((visibility("default"))) const struct fpesa_handler *fpesa_handler_v1(void) {    \
        static const struct fpesa_handler table = {                                                \
            .abi_version = FPESA_HANDLER_ABI_VERSION,                                              \
            .struct_size = sizeof(struct fpesa_handler),                                           \
            .description = (desc),                                                                 \
            .init = (init_cb),                                                                     \
            .handle_batch = (batch_cb),                                                            \
            .fini = (fini_cb),                                                                     \
            .run = (run_cb),                                                                       \
            .config_schema = (schema),                                                             \
        };                                                                                         \
        return &table;                                                                             \
    }

/* The same, with a run() callback (see struct fpesa_handler).
 *     FPESA_HANDLER_DEFINE_RUN("timers", my_init, my_batch, my_fini, my_run)
 */
#define FPESA_HANDLER_DEFINE_RUN(desc, init_cb, batch_cb, fini_cb, run_cb)                         \
    const struct fpesa_handler *fpesa_handler_v1(void);                                            \
    __attribute__((visibility("default"))) const struct fpesa_handler *fpesa_handler_v1(void) {    \
        static const struct fpesa_handler table = {                                                \
            .abi_version = FPESA_HANDLER_ABI_VERSION,                                              \
            .struct_size = sizeof(struct fpesa_handler),                                           \
            .description = (desc),                                                                 \
            .init = (init_cb),                                                                     \
            .handle_batch = (batch_cb),                                                            \
            .fini = (fini_cb),                                                                     \
            .run = (run_cb),                                                                       \
        };                                                                                         \
        return &table;                                                                             \
    }

#ifdef __cplusplus
}
#endif

#endif
