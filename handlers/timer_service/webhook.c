#include "webhook.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_EXTRA_FDS 8

/* One allow-list entry: [scheme://]host[:port]. */
struct hook_rule {
    char scheme[8]; /* "http", "https" or "" (either) */
    char host[256]; /* a name, an address, ".suffix" or "*" */
    int port;       /* 0: the scheme's default port; -1: any port */
};

/* Parses one entry into r. 0, or -1 with the reason in err. */
static int rule_parse(const char *text, struct hook_rule *r, char *err, size_t errlen, size_t i) {
    const char *p = text, *sep, *end;
    size_t hl;

    memset(r, 0, sizeof(*r));
    sep = strstr(p, "://");
    if (sep) {
        if ((size_t)(sep - p) >= sizeof(r->scheme) ||
            !(((size_t)(sep - p) == 4 && strncasecmp(p, "http", 4) == 0) ||
              ((size_t)(sep - p) == 5 && strncasecmp(p, "https", 5) == 0))) {
            snprintf(err, errlen, "allow_hosts[%zu]: the scheme must be http or https", i);
            return -1;
        }
        snprintf(r->scheme, sizeof(r->scheme), "%.*s", (int)(sep - p), p);
        for (char *c = r->scheme; *c; c++)
            *c = (char)(*c | 0x20);
        p = sep + 3;
    }
    if (*p == '[') {
        end = strchr(p, ']');
        if (!end) {
            snprintf(err, errlen, "allow_hosts[%zu]: unclosed [ in an IPv6 address", i);
            return -1;
        }
        hl = (size_t)(end - p - 1);
        p++;
        end++;
    } else {
        /* A bare IPv6 address ("::1") has several colons and no port. */
        const char *colon = strchr(p, ':');
        end = colon && !strchr(colon + 1, ':') ? colon : p + strlen(p);
        hl = (size_t)(end - p);
    }
    if (hl == 0 || hl >= sizeof(r->host) || strchr(p, '/')) {
        snprintf(err, errlen, "allow_hosts[%zu] must be [scheme://]host[:port]", i);
        return -1;
    }
    memcpy(r->host, p, hl);
    r->host[hl] = '\0';
    if (r->host[0] == '*' && r->host[1] == '.')
        memmove(r->host, r->host + 1, hl);
    if (*end == ':') {
        char *e;
        long v;

        if (strcmp(end + 1, "*") == 0) {
            r->port = -1;
        } else {
            v = strtol(end + 1, &e, 10);
            if (e == end + 1 || *e || v < 1 || v > 65535) {
                snprintf(err, errlen, "allow_hosts[%zu]: the port must be 1 to 65535 or *", i);
                return -1;
            }
            r->port = (int)v;
        }
    } else if (*end) {
        snprintf(err, errlen, "allow_hosts[%zu] must be [scheme://]host[:port]", i);
        return -1;
    }
    return 0;
}

int hook_allow_init(struct hook_allow *allow, const json_t *list, char *err, size_t errlen) {
    size_t n = json_array_size(list);

    memset(allow, 0, sizeof(*allow));
    if (list && !json_is_array(list)) {
        snprintf(err, errlen, "allow_hosts must be a list of host names");
        return -1;
    }
    allow->rules = calloc(n + 1, sizeof(*allow->rules));
    if (!allow->rules) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *h = json_string_value(json_array_get(list, i));
        if (!h || !*h) {
            snprintf(err, errlen, "allow_hosts[%zu] must be a non-empty string", i);
            goto out_free;
        }
        if (rule_parse(h, &allow->rules[i], err, errlen, i) < 0)
            goto out_free;
        allow->n = i + 1;
    }
    return 0;

out_free:
    hook_allow_fini(allow);
    return -1;
}

void hook_allow_fini(struct hook_allow *allow) {
    if (!allow)
        return;
    free(allow->rules);
    memset(allow, 0, sizeof(*allow));
}

static int default_port(const char *scheme) {
    return strcasecmp(scheme, "https") == 0 ? 443 : 80;
}

/* The rule admitting scheme://host:port, or NULL. */
static const struct hook_rule *rule_for(const struct hook_allow *allow, const char *scheme,
                                        const char *host, int port) {
    size_t hl = strlen(host);

    for (size_t i = 0; i < allow->n; i++) {
        const struct hook_rule *r = &allow->rules[i];
        size_t al = strlen(r->host);
        bool host_ok;

        if (r->scheme[0] && strcasecmp(r->scheme, scheme) != 0)
            continue;
        if (r->port == 0 ? port != default_port(scheme) : r->port > 0 && r->port != port)
            continue;
        if (strcmp(r->host, "*") == 0)
            host_ok = true;
        else if (r->host[0] == '.')
            host_ok = hl > al && strcasecmp(host + hl - al, r->host) == 0;
        else
            host_ok = strcasecmp(host, r->host) == 0;
        if (host_ok)
            return r;
    }
    return NULL;
}

/* A port number from text; -1 when it is not 1 to 65535. */
static int atoi_port(const char *p) {
    char *e;
    long v = strtol(p, &e, 10);

    return e != p && !*e && v >= 1 && v <= 65535 ? (int)v : -1;
}

/* The parts of an absolute http(s) URL: scheme, bare host (no brackets),
 * port. 0, or -1 with the reason in why. */
static int url_parts(const char *url, char *scheme, size_t sl, char *host, size_t hl_max, int *port,
                     char *why, size_t whylen) {
    CURLU *u = curl_url();
    char *sc = NULL, *h = NULL, *p = NULL;
    size_t hl;
    int rc = -1;

    if (!u) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    /* No default scheme: a URL without one is refused, not guessed. */
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &sc, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !h || !*h) {
        snprintf(why, whylen, "url is not an absolute http or https URL");
        goto out;
    }
    if (strcasecmp(sc, "http") != 0 && strcasecmp(sc, "https") != 0) {
        snprintf(why, whylen, "url scheme must be http or https");
        goto out;
    }
    snprintf(scheme, sl, "%s", sc);
    /* An IPv6 literal comes back in brackets. */
    hl = strlen(h);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']')
        snprintf(host, hl_max, "%.*s", (int)(hl - 2), h + 1);
    else
        snprintf(host, hl_max, "%s", h);
    *port = default_port(sc);
    if (curl_url_get(u, CURLUPART_PORT, &p, 0) == CURLUE_OK && p)
        *port = atoi_port(p);
    if (*port <= 0) {
        snprintf(why, whylen, "url port is not valid");
        goto out;
    }
    rc = 0;

out:
    curl_free(sc);
    curl_free(h);
    curl_free(p);
    curl_url_cleanup(u);
    return rc;
}

int hook_url_check(const struct hook_allow *allow, const char *url, char *why, size_t whylen) {
    char scheme[8], host[256];
    int port;

    if (url_parts(url, scheme, sizeof(scheme), host, sizeof(host), &port, why, whylen) < 0)
        return -1;
    if (!rule_for(allow, scheme, host, port)) {
        snprintf(why, whylen, "url %s://%.100s:%d is not allowed", scheme, host, port);
        return -1;
    }
    return 0;
}

/* Whether a is loopback, link-local, private, shared (CGNAT), unspecified,
 * multicast or broadcast: an address of this host or its network. */
static bool address_is_internal(const struct sockaddr *a) {
    if (a->sa_family == AF_INET) {
        uint32_t v = ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);

        return (v >> 24) == 0 || (v >> 24) == 10 || (v >> 24) == 127 ||
               (v >> 16) == 0xa9fe /* 169.254/16 */ || (v >> 20) == 0xac1 /* 172.16/12 */ ||
               (v >> 16) == 0xc0a8 /* 192.168/16 */ || (v >> 22) == 0x191 /* 100.64/10 */ ||
               (v >> 28) >= 0xe /* multicast, reserved, broadcast */;
    }
    if (a->sa_family == AF_INET6) {
        const struct in6_addr *x = &((const struct sockaddr_in6 *)a)->sin6_addr;

        if (IN6_IS_ADDR_V4MAPPED(x)) {
            struct sockaddr_in v4 = {.sin_family = AF_INET};

            memcpy(&v4.sin_addr, x->s6_addr + 12, 4);
            return address_is_internal((const struct sockaddr *)&v4);
        }
        return IN6_IS_ADDR_LOOPBACK(x) || IN6_IS_ADDR_UNSPECIFIED(x) || IN6_IS_ADDR_LINKLOCAL(x) ||
               IN6_IS_ADDR_SITELOCAL(x) || IN6_IS_ADDR_MULTICAST(x) ||
               (x->s6_addr[0] & 0xfe) == 0xfc /* fc00::/7 */;
    }
    return true;
}

int hook_resolve(const struct hook_allow *allow, const char *url, struct hook_pin *pin, char *why,
                 size_t whylen) {
    char scheme[8], host[256], port_s[8], addr[INET6_ADDRSTRLEN];
    const struct hook_rule *r;
    struct addrinfo hints = {0}, *res = NULL, *it;
    int port, rc;

    memset(pin, 0, sizeof(*pin));
    if (url_parts(url, scheme, sizeof(scheme), host, sizeof(host), &port, why, whylen) < 0)
        return -1;
    r = rule_for(allow, scheme, host, port);
    if (!r) {
        snprintf(why, whylen, "url %s://%.100s:%d is not allowed", scheme, host, port);
        return -1;
    }
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(pin->resolve, sizeof(pin->resolve), "%s:%d:", host, port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(why, whylen, "cannot resolve %.100s: %s", host, gai_strerror(rc));
        return -1;
    }
    /* An address of this host or its network only when the rule names this
     * very host: never through a wildcard, a suffix or a DNS answer that
     * points a public name inward. */
    for (it = res; it && pin->n < HOOK_PIN_MAX; it = it->ai_next) {
        bool named = r->host[0] != '.' && strcmp(r->host, "*") != 0;
        size_t o;

        if (it->ai_addrlen > sizeof(pin->addr[0]) ||
            (it->ai_family != AF_INET && it->ai_family != AF_INET6))
            continue;
        if (address_is_internal(it->ai_addr) && !named)
            continue;
        memcpy(&pin->addr[pin->n], it->ai_addr, it->ai_addrlen);
        if (it->ai_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)it->ai_addr)->sin6_addr, addr,
                      sizeof(addr));
        else
            inet_ntop(AF_INET, &((struct sockaddr_in *)it->ai_addr)->sin_addr, addr, sizeof(addr));
        o = strlen(pin->resolve);
        snprintf(pin->resolve + o, sizeof(pin->resolve) - o, "%s%s%s%s", pin->n ? "," : "",
                 it->ai_family == AF_INET6 ? "[" : "", addr, it->ai_family == AF_INET6 ? "]" : "");
        pin->n++;
    }
    freeaddrinfo(res);
    if (!pin->n) {
        snprintf(why, whylen,
                 "%.100s resolves only to internal addresses (loopback, link-local, private), "
                 "which allow_hosts does not name",
                 host);
        return -1;
    }
    return 0;
}

/* ---- calls ----------------------------------------------------------------- */

struct call {
    CURL *easy;
    struct call *prev, *next; /* every call in flight, for hook_multi_free */
    char id[40];
    long attempt;
    struct curl_slist *headers;
    struct curl_slist *resolve; /* the pinned address for libcurl */
    struct hook_pin pin;
    char error[CURL_ERROR_SIZE];
};

struct hook_multi {
    CURLM *multi;
    long connect_timeout_ms, timeout_ms;
    int in_flight;
    struct call *calls;
};

struct hook_multi *hook_multi_new(long connect_timeout_ms, long timeout_ms) {
    struct hook_multi *hm = calloc(1, sizeof(*hm));

    if (!hm)
        return NULL;
    hm->multi = curl_multi_init();
    if (!hm->multi) {
        free(hm);
        return NULL;
    }
    hm->connect_timeout_ms = connect_timeout_ms;
    hm->timeout_ms = timeout_ms;
    /* Several calls to one receiver share its connections. */
    curl_multi_setopt(hm->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    return hm;
}

static void call_free(struct hook_multi *hm, CURL *e) {
    struct call *c = NULL;

    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&c);
    if (c) {
        if (c->prev)
            c->prev->next = c->next;
        else
            hm->calls = c->next;
        if (c->next)
            c->next->prev = c->prev;
        curl_slist_free_all(c->headers);
        curl_slist_free_all(c->resolve);
        free(c);
    }
    curl_easy_cleanup(e);
}

void hook_multi_free(struct hook_multi *hm) {
    if (!hm)
        return;
    while (hm->calls) {
        CURL *e = hm->calls->easy;
        curl_multi_remove_handle(hm->multi, e);
        call_free(hm, e);
    }
    curl_multi_cleanup(hm->multi);
    free(hm);
}

/* Opens the connection's socket only to the pinned address: libcurl has it
 * from CURLOPT_RESOLVE, and a connection to anything else (a proxy, another
 * address) is refused. */
static curl_socket_t open_pinned(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *address) {
    const struct call *c = clientp;
    bool same = false;

    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    for (size_t i = 0; i < c->pin.n && !same; i++) {
        const struct sockaddr *want = (const struct sockaddr *)&c->pin.addr[i];

        if (address->addr.sa_family != want->sa_family)
            continue;
        if (want->sa_family == AF_INET)
            same = memcmp(&((const struct sockaddr_in *)&address->addr)->sin_addr,
                          &((const struct sockaddr_in *)want)->sin_addr, 4) == 0;
        else
            same = memcmp(&((const struct sockaddr_in6 *)&address->addr)->sin6_addr,
                          &((const struct sockaddr_in6 *)want)->sin6_addr, 16) == 0;
    }
    if (!same)
        return CURL_SOCKET_BAD;
    return socket(address->family, address->socktype, address->protocol);
}

int hook_start(struct hook_multi *hm, const char *id, long attempt, const char *url,
               const struct hook_pin *pin) {
    struct call *c = calloc(1, sizeof(*c));
    CURL *e = curl_easy_init();
    char body[80];

    if (!c || !e)
        goto out_free;
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->attempt = attempt;
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!c->headers)
        goto out_free;
    c->pin = *pin;
    c->resolve = curl_slist_append(NULL, pin->resolve);
    if (!c->resolve)
        goto out_free;
    snprintf(body, sizeof(body), "{\"id\":\"%s\"}", c->id);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, hm->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, hm->timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "fpesa-timers");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->error);
    /* The address hook_resolve checked is the one connected to: no second
     * lookup that a DNS answer could point elsewhere. */
    curl_easy_setopt(e, CURLOPT_RESOLVE, c->resolve);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_pinned);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (curl_multi_add_handle(hm->multi, e) != CURLM_OK)
        goto out_free;
    c->easy = e;
    c->next = hm->calls;
    if (hm->calls)
        hm->calls->prev = c;
    hm->calls = c;
    hm->in_flight++;
    return 0;

out_free:
    if (c) {
        curl_slist_free_all(c->headers);
        curl_slist_free_all(c->resolve);
    }
    free(c);
    if (e)
        curl_easy_cleanup(e);
    return -1;
}

int hook_in_flight(const struct hook_multi *hm) {
    return hm->in_flight;
}

int hook_poll(struct hook_multi *hm, const int *extra_fds, int n_extra, long timeout_ms,
              struct hook_done *done, int cap) {
    struct curl_waitfd w[MAX_EXTRA_FDS];
    int running = 0, n = 0, left = 0;
    CURLMsg *m;

    if (n_extra > MAX_EXTRA_FDS)
        n_extra = MAX_EXTRA_FDS;
    for (int i = 0; i < n_extra; i++) {
        w[i].fd = extra_fds[i];
        w[i].events = CURL_WAIT_POLLIN;
        w[i].revents = 0;
    }
    if (timeout_ms > 0 &&
        curl_multi_poll(hm->multi, w, (unsigned)n_extra, (int)timeout_ms, NULL) != CURLM_OK)
        return -1;
    if (curl_multi_perform(hm->multi, &running) != CURLM_OK)
        return -1;
    while (n < cap && (m = curl_multi_info_read(hm->multi, &left))) {
        struct call *c = NULL;
        struct hook_done *d = &done[n];
        CURL *e = m->easy_handle;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&c);
        memset(d, 0, sizeof(*d));
        snprintf(d->id, sizeof(d->id), "%s", c ? c->id : "");
        d->attempt = c ? c->attempt : 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &d->status);
        if (m->data.result != CURLE_OK) {
            snprintf(d->error, sizeof(d->error), "%s",
                     c && c->error[0] ? c->error : curl_easy_strerror(m->data.result));
        } else if (d->status >= 200 && d->status < 300) {
            d->ok = true;
        } else {
            snprintf(d->error, sizeof(d->error), "HTTP status %ld", d->status);
        }
        curl_multi_remove_handle(hm->multi, e);
        call_free(hm, e);
        hm->in_flight--;
        n++;
    }
    return n;
}
