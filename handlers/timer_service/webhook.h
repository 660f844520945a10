/* Webhook calls: the host allow-list and many POSTs in flight at once on
 * libcurl's multi interface. */
#ifndef TIMER_WEBHOOK_H
#define TIMER_WEBHOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Where a webhook may be sent: a list of "[scheme://]host[:port]" entries.
 * host is a name or an address ("localhost", "127.0.0.1", "[::1]" or
 * "::1"), a suffix (".example.com" or "*.example.com": any name under
 * example.com) or "*" (any host). Without a scheme either http or https
 * matches; without a port only the scheme's default port (80, 443) does;
 * ":*" admits any port. Names compare case-insensitively with the URL's host
 * as written. No entry (the default) admits nothing.
 *
 * Before a call the host is resolved once (hook_resolve) and that address is
 * the one connected to. An internal address (loopback, link-local, private,
 * shared, unspecified, multicast) is used only when the admitting entry names
 * the host itself, never through a wildcard or a suffix. */
struct hook_rule;
struct hook_allow {
    struct hook_rule *rules;
    size_t n;
};

#define HOOK_PIN_MAX 4

/* The addresses a call is pinned to. */
struct hook_pin {
    struct sockaddr_storage addr[HOOK_PIN_MAX];
    size_t n;
    char resolve[512]; /* "host:port:addr[,addr...]" for CURLOPT_RESOLVE */
};

/* Fills allow from a JSON array of strings (borrowed; NULL: empty). 0, or -1
 * with the reason in err when an entry is not a non-empty
 * [scheme://]host[:port]. Free with hook_allow_fini. */
int hook_allow_init(struct hook_allow *allow, const json_t *list, char *err, size_t errlen);
void hook_allow_fini(struct hook_allow *allow);

/* Checks that url is an absolute http or https URL whose scheme, host and
 * port allow admits. 0, or -1 with a sentence for the client in why. */
int hook_url_check(const struct hook_allow *allow, const char *url, char *why, size_t whylen);

/* hook_url_check, then resolves the host (blocking) and picks the address
 * the call will use (see above) into *pin. 0, or -1 with the reason in why. */
int hook_resolve(const struct hook_allow *allow, const char *url, struct hook_pin *pin, char *why,
                 size_t whylen);

/* One call that finished: which timer, which attempt, and how it went. */
struct hook_done {
    char id[40];
    long attempt;
    bool ok;         /* a 2xx answer */
    long status;     /* HTTP status, 0 when there was none */
    char error[264]; /* why it failed, "" when ok */
};

struct hook_multi;

/* A new multi handle with the given timeouts (ms); NULL when out of memory. */
struct hook_multi *hook_multi_new(long connect_timeout_ms, long timeout_ms);
void hook_multi_free(struct hook_multi *hm);

/* Starts POST url with body {"id": id}, connecting only to pin's address
 * (from hook_resolve). 0, or -1 when it cannot start (the caller records it
 * as a failed attempt). Everything is copied. */
int hook_start(struct hook_multi *hm, const char *id, long attempt, const char *url,
               const struct hook_pin *pin);

/* Calls in flight. */
int hook_in_flight(const struct hook_multi *hm);

/* Waits at most timeout_ms for curl's sockets or one of extra_fds (readable)
 * and drives the transfers; stores up to cap finished calls in done and
 * returns how many (0 or more), -1 on a curl failure. */
int hook_poll(struct hook_multi *hm, const int *extra_fds, int n_extra, long timeout_ms,
              struct hook_done *done, int cap);

#endif
