// fuzz-sources: common/*.c mapper/[!b]*.c
/* The request path, from raw bytes on the socket to what goes on the bus:
 * restmapper's real HTTP server (libmicrohttpd, the edge, routing, auth,
 * query, body kinds, schemas, the envelope) runs in this process on a
 * loopback port, with a bus of this file in place of RabbitMQ. Each input is
 * written to a fresh connection as it is (one or several requests, whole or
 * cut), and the answers are read. Checks:
 *  - every answer starts with an HTTP/1.1 status line, 1xx..5xx;
 *  - an answer the mapper labels application/json is valid JSON, and an
 *    error answer has {"error":{"code","description"}} with the status as
 *    its code;
 *  - every envelope put on the bus is valid JSON (the strict reader's own
 *    account) holding "data", "args" and "params", and every message has an
 *    id, an exchange of the configuration and a content type.
 * The bus answers a publish 202 at once and an rpc with {"echo": envelope},
 * so the relay path runs too. */
#include "../../mapper/bus.h"
#include "../../mapper/http.h"
#include "config.h"
#include "jsontext.h"
#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- a bus that answers at once ----------------------------------------------- */

struct mbus {
    const struct cfg *cfg;
};

static void check_message(const struct mbus *bus, const struct mbus_msg *msg) {
    bool known = false;

    if (!msg->message_id || !*msg->message_id || !msg->content_type || !msg->exchange)
        abort();
    for (size_t i = 0; i < bus->cfg->n_endpoints; i++)
        known |= strcmp(bus->cfg->endpoints[i].exchange, msg->exchange) == 0;
    if (!known && !(bus->cfg->idempotency.exchange &&
                    strcmp(bus->cfg->idempotency.exchange, msg->exchange) == 0))
        abort();
    if (strcmp(msg->content_type, "application/json") == 0) {
        const char *v;
        size_t n;

        if (jtext_check(msg->body, msg->body_len, NULL, NULL) != JTEXT_OK)
            abort();
        if (jtext_member(msg->body, msg->body_len, "data", &v, &n) != 1 &&
            jtext_member(msg->body, msg->body_len, "key", &v, &n) != 1) /* a key's claim */
            abort();
    }
    for (size_t i = 0; i < msg->n_headers; i++)
        if (!msg->headers[i].name || !msg->headers[i].value)
            abort();
}

int mbus_publish(struct mbus *bus, const struct mbus_msg *msg, mbus_done_fn done, void *ctx) {
    struct mbus_result r = {.status = 202};

    check_message(bus, msg);
    done(ctx, &r);
    return 0;
}

int mbus_rpc(struct mbus *bus, const struct mbus_msg *msg, long timeout_ms, mbus_done_fn done,
             void *ctx) {
    static const char claim_ok[] = "{\"status\":\"new\"}";
    struct mbus_result r = {.status = 200, .content_type = "application/json"};
    char *answer = NULL;

    (void)timeout_ms;
    check_message(bus, msg);
    if (bus->cfg->idempotency.exchange &&
        strcmp(bus->cfg->idempotency.exchange, msg->exchange) == 0) {
        r.body = claim_ok;
        r.body_len = sizeof(claim_ok) - 1;
    } else if (strcmp(msg->content_type, "application/json") == 0) {
        size_t cap = msg->body_len + 16;

        answer = malloc(cap);
        if (!answer)
            return -1;
        r.body_len =
            (size_t)snprintf(answer, cap, "{\"echo\":%.*s}", (int)msg->body_len, msg->body);
        r.body = answer;
    } else {
        r.body = "{\"file\":true}";
        r.body_len = strlen(r.body);
    }
    done(ctx, &r);
    free(answer);
    return 0;
}

bool mbus_is_connected(const struct mbus *bus) {
    (void)bus;
    return true;
}

bool mbus_is_blocked(const struct mbus *bus) {
    (void)bus;
    return false;
}

void mbus_stats(const struct mbus *bus, struct mbus_stats *out) {
    (void)bus;
    memset(out, 0, sizeof(*out));
}

/* ---- the server, started once --------------------------------------------------- */

static const char config_text[] =
    "http:\n"
    "  listen: 127.0.0.1:%d\n"
    "  max_body: 16KiB\n"
    "  threads: 2\n"
    "  max_connections_per_client: 100000\n"
    "  header_timeout: 5s\n"
    "  body_timeout: 5s\n"
    "  cors: { origins: [\"http://app.test\"] }\n"
    "idempotency: { exchange: fpesa.idempotency, timeout: 1s }\n"
    "auth:\n"
    "  api_keys:\n"
    "    - { name: k, sha256: \"%s\", scopes: [w] }\n"
    "endpoints:\n"
    "  - path: /messages/\n"
    "    method: POST\n"
    "    mode: publish\n"
    "    auth: { anonymous: true }\n"
    "    body: { type: object, properties: { n: { type: number, minimum: 0, multipleOf: 0.5 },"
    " s: { type: string, maxLength: 8 } } }\n"
    "  - path: /messages/\n"
    "    method: GET\n"
    "    mode: rpc\n"
    "    auth: { anonymous: true }\n"
    "    args: { type: object, properties: { limit: { type: string, pattern: \"^[0-9]+$\" } } }\n"
    "  - path: /orders/{id}\n"
    "    method: PUT\n"
    "    mode: publish\n"
    "    auth: { scopes: [w] }\n"
    "    trailing_slash: true\n"
    "    body: { type: object, required: [qty], properties: { qty: { type: integer } } }\n"
    "  - path: /forms/\n"
    "    method: POST\n"
    "    mode: rpc\n"
    "    auth: { anonymous: true }\n"
    "    content_types: [application/x-www-form-urlencoded, application/json]\n"
    "  - path: /upload/\n"
    "    method: POST\n"
    "    mode: publish\n"
    "    auth: { anonymous: true }\n"
    "    content_types: [multipart/form-data]\n"
    "    files: [{ field: file, required: true, types: [image/png, application/octet-stream] }]\n"
    "  - path: /raw/\n"
    "    method: POST\n"
    "    mode: publish\n"
    "    auth: { anonymous: true }\n"
    "    content_types: [image/png]\n";

/* sha256("fuzz-key"): the key the seeds send as X-API-Key. */
#define KEY_SHA256 "231e9b2f757db8d48ecd0711b60135e1cc57a3a807be9dc12638856f17a7872c"

static struct mbus bus;
static struct http_server *srv;
static int port;

static int free_port(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), p = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        p = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return p;
}

static void start(void) {
    char path[] = "/tmp/fpesa-fuzz-request-XXXXXX";
    struct cfg *cfg;
    int fd = mkstemp(path);
    FILE *f;

    /* Warnings and errors only: a line per request would drown the fuzzer's. */
    setenv("FPESA_LOG_LEVEL", "warn", 0);
    if (log_init("fuzz_request") < 0)
        abort();
    /* The address is this file's, whatever the environment says. */
    unsetenv("FPESA_HTTP_LISTEN");
    port = free_port();
    if (fd < 0 || port < 0 || !(f = fdopen(fd, "w")))
        abort();
    fprintf(f, config_text, port, KEY_SHA256);
    fclose(f);
    cfg = cfg_load(path, stderr);
    unlink(path);
    if (!cfg)
        abort();
    bus.cfg = cfg;
    srv = http_new(cfg, &bus);
    if (!srv || http_start(srv) != 0)
        abort();
}

/* Reads the answers into buf; returns their length. A kept-alive
 * connection stays open after the last answer, so reading ends at the close
 * or after 50 ms of silence once something came (an answer cut there is not
 * checked: see check_answer). When nothing comes within 300 ms the request
 * is taken to be incomplete and the connection is half-closed (not at once:
 * libmicrohttpd drops a request whose end of stream it reads together with
 * it), and reading goes on for up to 3 s. */
static size_t read_all(int fd, char *buf, size_t cap) {
    size_t n = 0;
    bool shut = false;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r;
        int ready = poll(&p, 1, n ? 50 : shut ? 3000 : 300);

        if (ready == 0 && !n && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
            continue;
        }
        if (ready <= 0)
            break;
        r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break;
    }
    buf[n] = '\0';
    return n;
}

/* Checks one answer at text[0..len); returns the bytes it took, or 0 when
 * the rest is not a whole answer. */
static size_t check_answer(const char *text, size_t len) {
    const char *end = memmem(text, len, "\r\n\r\n", 4), *ct, *cl, *body;
    size_t head_len, body_len = 0;
    int status;

    if (len < 12)
        return 0;
    if (memcmp(text, "HTTP/1.1 ", 9) != 0)
        abort();
    status = (int)strtol(text + 9, NULL, 10);
    if (status < 100 || status > 599)
        abort();
    if (!end)
        return 0;
    head_len = (size_t)(end - text) + 4;
    body = text + head_len;
    cl = memmem(text, head_len, "\r\nContent-Length: ", 18);
    if (!cl)
        return 0; /* chunked or to the close: not looked into */
    body_len = strtoul(cl + 18, NULL, 10);
    if (head_len + body_len > len)
        return 0;
    ct = memmem(text, head_len, "\r\nContent-Type: application/json", 32);
    if (ct && body_len) {
        int code = 0;

        if (jtext_check(body, body_len, NULL, NULL) != JTEXT_OK)
            abort();
        if (status >= 400 && jtext_error_code(body, body_len, &code, NULL) != 1)
            abort();
        if (status >= 400 && code != status && status != 502)
            abort();
    }
    /* Nothing follows an answer that closes the connection (libmicrohttpd's
     * own refusals of what it cannot parse may repeat their head there). */
    if (memmem(text, head_len, "\r\nConnection: close\r\n", 21))
        return len;
    return head_len + body_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char answer[1 << 20];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    size_t n, off = 0;
    int fd;

    if (!srv)
        start();
    if (size > 64 * 1024)
        return 0;
    a.sin_port = htons((uint16_t)port);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        abort();
    for (size_t w = 0; w < size;) {
        ssize_t r = write(fd, data + w, size - w);
        if (r <= 0)
            break; /* the server closed early: its answer is still read */
        w += (size_t)r;
    }
    n = read_all(fd, answer, sizeof(answer));
    close(fd);
    while (off < n) {
        size_t took = check_answer(answer + off, n - off);
        if (!took)
            break;
        off += took;
    }
    return 0;
}
