/* rpc round trip through restmapper, beyond the worker's own time.
 *
 *   rpc_latency AMQP_URL QUEUE HOST PORT PATH N
 *
 * An echo worker thread consumes QUEUE the way a worker written against the
 * fpesa protocol does (answer on exchange "RPC", routing key = reply_to, same
 * correlation_id) and times itself from delivery to answer sent. The main
 * thread sends N sequential POST PATH requests over one keep-alive HTTP
 * connection to restmapper and times each round trip. Prints the percentiles
 * of both and the p50 beyond the worker's time.
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 200

static const char *amqp_url, *queue_name;
static double *worker_times;
static atomic_long worker_n;
static long worker_cap;
static atomic_bool worker_ready, worker_stop;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, long n, double p) {
    if (n == 0)
        return 0;
    long i = (long)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static void *worker_main(void *arg) {
    (void)arg;
    char *url = strdup(amqp_url);
    struct amqp_connection_info info;
    amqp_default_connection_info(&info);
    if (!url || amqp_parse_url(url, &info) != AMQP_STATUS_OK) {
        fprintf(stderr, "rpc_latency: bad url\n");
        exit(2);
    }
    if (!*info.vhost)
        info.vhost = "/";
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (amqp_socket_open(s, info.host, info.port) != AMQP_STATUS_OK ||
        amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password)
                .reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "rpc_latency: worker cannot connect\n");
        exit(1);
    }
    amqp_channel_open(c, 1);
    amqp_basic_consume(c, 1, amqp_cstring_bytes(queue_name), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "rpc_latency: cannot consume %s\n", queue_name);
        exit(1);
    }
    atomic_store(&worker_ready, true);
    while (!atomic_load(&worker_stop)) {
        amqp_envelope_t env;
        struct timeval tv = {0, 200000};
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            fprintf(stderr, "rpc_latency: worker lost its connection\n");
            exit(1);
        }
        double t0 = now_s();
        amqp_basic_properties_t p;
        memset(&p, 0, sizeof(p));
        p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
        p.content_type = amqp_cstring_bytes("application/json");
        p.correlation_id = env.message.properties.correlation_id;
        amqp_basic_publish(c, 1, amqp_cstring_bytes("RPC"), env.message.properties.reply_to, 0, 0,
                           &p, env.message.body);
        double t = now_s() - t0;
        amqp_destroy_envelope(&env);
        long i = atomic_fetch_add(&worker_n, 1);
        if (i < worker_cap)
            worker_times[i] = t;
    }
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    free(url);
    return NULL;
}

/* Sends one request and reads one response; returns the status or -1. */
static int http_round_trip(int fd, const char *req, size_t req_len, char *buf, size_t cap) {
    size_t off = 0;
    while (off < req_len) {
        ssize_t n = send(fd, req + off, req_len - off, 0);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        char *cl = strcasestr(buf, "\r\nContent-Length:");
        long body = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
        if ((long)len >= (end + 4 - buf) + body) {
            int status = (int)strtol(buf + 9, NULL, 10);
            return status;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: rpc_latency AMQP_URL QUEUE HOST PORT PATH N\n");
        return 2;
    }
    amqp_url = argv[1];
    queue_name = argv[2];
    const char *host = argv[3];
    int port = (int)strtol(argv[4], NULL, 10);
    const char *path = argv[5];
    long n = strtol(argv[6], NULL, 10);
    if (n <= 0 || port <= 0)
        return 2;

    worker_cap = n + WARMUP;
    worker_times = calloc((size_t)worker_cap, sizeof(double));
    double *rtt = calloc((size_t)n, sizeof(double));
    pthread_t w;
    pthread_create(&w, NULL, worker_main, NULL);
    while (!atomic_load(&worker_ready))
        usleep(1000);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("rpc_latency: connect");
        return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    const char *body = "{\"text\":\"ping\"}";
    char req[1024];
    int req_len = snprintf(req, sizeof(req),
                           "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                           "Content-Length: %zu\r\n\r\n%s",
                           path, host, strlen(body), body);
    char buf[65536];
    long bad = 0;
    for (long i = 0; i < WARMUP + n; i++) {
        double t0 = now_s();
        int st = http_round_trip(fd, req, (size_t)req_len, buf, sizeof(buf));
        double t = now_s() - t0;
        if (st < 0) {
            fprintf(stderr, "rpc_latency: the connection broke after %ld requests\n", i);
            return 1;
        }
        if (st != 200)
            bad++;
        if (i >= WARMUP)
            rtt[i - WARMUP] = t;
    }
    close(fd);
    atomic_store(&worker_stop, true);
    pthread_join(w, NULL);

    long wn = atomic_load(&worker_n);
    if (wn > worker_cap)
        wn = worker_cap;
    /* The worker's times of the measured requests only. */
    double *wt = worker_times + (wn > n ? wn - n : 0);
    long wcount = wn > n ? n : wn;
    qsort(rtt, (size_t)n, sizeof(double), cmp_double);
    qsort(wt, (size_t)wcount, sizeof(double), cmp_double);
    double p50 = pct(rtt, n, 0.5), w50 = pct(wt, wcount, 0.5);
    printf("rpc requests=%ld worker_answers=%ld non200=%ld p50=%.3fms p90=%.3fms p99=%.3fms "
           "worker_p50=%.3fms "
           "beyond_worker_p50=%.3fms\n",
           n, wn - WARMUP, bad, p50 * 1e3, pct(rtt, n, 0.9) * 1e3, pct(rtt, n, 0.99) * 1e3,
           w50 * 1e3, (p50 - w50) * 1e3);
    free(rtt);
    free(worker_times);
    return bad ? 1 : 0;
}
