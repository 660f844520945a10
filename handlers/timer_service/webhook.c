#include "webhook.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_EXTRA_FDS 8

static const char *const loopback[] = {"localhost", "127.0.0.1", "::1"};

int hook_allow_init(struct hook_allow *allow, const json_t *list, char *err, size_t errlen) {
    size_t n = list ? json_array_size(list) : sizeof(loopback) / sizeof(*loopback);

    memset(allow, 0, sizeof(*allow));
    if (list && !json_is_array(list)) {
        snprintf(err, errlen, "allow_hosts must be a list of host names");
        return -1;
    }
    allow->hosts = calloc(n + 1, sizeof(*allow->hosts));
    if (!allow->hosts) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *h = list ? json_string_value(json_array_get(list, i)) : loopback[i];
        if (!h || !*h) {
            snprintf(err, errlen, "allow_hosts[%zu] must be a non-empty string", i);
            goto out_free;
        }
        allow->hosts[i] = strdup(h);
        if (!allow->hosts[i]) {
            snprintf(err, errlen, "out of memory");
            goto out_free;
        }
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
    for (size_t i = 0; i < allow->n; i++)
        free(allow->hosts[i]);
    free(allow->hosts);
    memset(allow, 0, sizeof(*allow));
}

static bool host_allowed(const struct hook_allow *allow, const char *host) {
    size_t hl = strlen(host);

    for (size_t i = 0; i < allow->n; i++) {
        const char *a = allow->hosts[i];
        size_t al;
        if (strcmp(a, "*") == 0)
            return true;
        if (a[0] == '*' && a[1] == '.')
            a++;
        al = strlen(a);
        if (a[0] == '.') {
            if (hl > al && strcasecmp(host + hl - al, a) == 0)
                return true;
        } else if (strcasecmp(host, a) == 0) {
            return true;
        }
    }
    return false;
}

int hook_url_check(const struct hook_allow *allow, const char *url, char *why, size_t whylen) {
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    char bare[256];
    size_t hl;
    int rc = -1;

    if (!u) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    /* No default scheme: a URL without one is refused, not guessed. */
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
        snprintf(why, whylen, "url is not an absolute http or https URL");
        goto out;
    }
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        snprintf(why, whylen, "url scheme must be http or https");
        goto out;
    }
    /* An IPv6 literal comes back in brackets. */
    hl = strlen(host);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']')
        snprintf(bare, sizeof(bare), "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(bare, sizeof(bare), "%s", host);
    if (!host_allowed(allow, bare)) {
        snprintf(why, whylen, "url host \"%.100s\" is not allowed", bare);
        goto out;
    }
    rc = 0;

out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* ---- calls ----------------------------------------------------------------- */

struct call {
    CURL *easy;
    struct call *prev, *next; /* every call in flight, for hook_multi_free */
    char id[40];
    long attempt;
    struct curl_slist *headers;
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

int hook_start(struct hook_multi *hm, const char *id, long attempt, const char *url) {
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
    if (c)
        curl_slist_free_all(c->headers);
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
