/* The handler host's HTTP listener (see listener.h). */
#include "listener.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct hlisten {
    struct MHD_Daemon *daemon;
    int fd;
    hlisten_answer_fn answer;
    void *arg;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **state) {
    struct hlisten *l = cls;
    struct MHD_Response *res;
    const char *type = "application/json";
    char *body = NULL;
    size_t len = 0;
    int status = 200;
    enum MHD_Result r;
    static int first;

    (void)version;
    (void)upload;
    /* Answering on the second call keeps the connection alive (MHD answers
     * "Connection: close" to a response queued on the first). */
    if (!*state) {
        *state = &first;
        return MHD_YES;
    }
    if (*upload_len) {
        *upload_len = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = 405;
        body = strdup("{\"error\":{\"code\":405,\"description\":\"only GET is allowed\"}}");
        len = body ? strlen(body) : 0;
    } else if (strcmp(url, "/health") == 0 || strcmp(url, "/metrics") == 0) {
        bool metrics = url[1] == 'm';
        body = l->answer(l->arg, metrics, &status, &len);
        if (metrics)
            type = "text/plain; version=0.0.4; charset=utf-8";
        if (!body) {
            status = 500;
            type = "application/json";
        }
    } else {
        status = 404;
        body = strdup("{\"error\":{\"code\":404,\"description\":\"no such path: only /health and "
                      "/metrics are served here\"}}");
        len = body ? strlen(body) : 0;
    }
    if (!body) {
        body = strdup("{\"error\":{\"code\":500,\"description\":\"out of memory\"}}");
        len = body ? strlen(body) : 0;
        status = 500;
    }
    res = MHD_create_response_from_buffer(len, body ? body : (char *)"", MHD_RESPMEM_MUST_FREE);
    if (!res) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(res, "Content-Type", type);
    if (status == 405)
        MHD_add_response_header(res, "Allow", "GET, HEAD");
    r = MHD_queue_response(conn, (unsigned)status, res);
    MHD_destroy_response(res);
    return r;
}

struct hlisten *hlisten_start(const char *host, int port, hlisten_answer_fn answer, void *arg,
                              char *err, size_t err_len) {
    struct addrinfo hints = {0}, *ai = NULL;
    struct hlisten *l = NULL;
    char service[16];
    int fd = -1, one = 1, saved, rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%d", port);
    rc = getaddrinfo(host && *host && strcmp(host, "*") != 0 ? host : NULL, service, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, err_len, "cannot resolve %s: %s", host ? host : "*", gai_strerror(rc));
        goto out_fail;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        saved = errno;
        snprintf(err, err_len, "cannot create a socket: %s", strerror(saved));
        goto out_fail;
    }
    /* SO_REUSEADDR lets a restart bind while old connections linger in
     * TIME_WAIT; never SO_REUSEPORT, which would let two hosts share it. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        saved = errno;
        snprintf(err, err_len, "cannot listen on %s:%d: %s", host ? host : "*", port,
                 saved == EADDRINUSE ? "the port is taken by another process" : strerror(saved));
        goto out_fail;
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, err_len, "out of memory");
        goto out_fail;
    }
    l->fd = fd;
    l->answer = answer;
    l->arg = arg;
    l->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL,
                                 on_request, l, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64, MHD_OPTION_END);
    if (!l->daemon) {
        snprintf(err, err_len, "cannot start the HTTP listener on %s:%d", host ? host : "*", port);
        goto out_fail;
    }
    freeaddrinfo(ai);
    return l;

out_fail:
    free(l);
    if (fd >= 0)
        close(fd);
    if (ai)
        freeaddrinfo(ai);
    return NULL;
}

int hlisten_fd(const struct hlisten *l) {
    return l ? l->fd : -1;
}

void hlisten_stop(struct hlisten *l) {
    if (!l)
        return;
    /* MHD closes the listening socket it was given. */
    MHD_stop_daemon(l->daemon);
    free(l);
}
