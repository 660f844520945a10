/* Webhook calls: the host allow-list and many POSTs in flight at once on
 * libcurl's multi interface. */
#ifndef TIMER_WEBHOOK_H
#define TIMER_WEBHOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Hosts a webhook may be sent to: exact names ("localhost", "127.0.0.1",
 * "::1"), suffixes (".example.com" or "*.example.com" match any name under
 * example.com) or "*" for any host. Compared case-insensitively with the
 * host of the URL as written (not with what it resolves to). */
struct hook_allow {
    char **hosts;
    size_t n;
};

/* Fills allow from a JSON array of strings (borrowed; NULL: the loopback
 * default). 0, or -1 with the reason in err when it is not an array of
 * non-empty strings. Free with hook_allow_fini. */
int hook_allow_init(struct hook_allow *allow, const json_t *list, char *err, size_t errlen);
void hook_allow_fini(struct hook_allow *allow);

/* Checks that url is an absolute http or https URL whose host allow admits.
 * 0, or -1 with a sentence for the client in why. */
int hook_url_check(const struct hook_allow *allow, const char *url, char *why, size_t whylen);

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

/* Starts POST url with body {"id": id}. 0, or -1 when it cannot start (the
 * caller records it as a failed attempt). Everything is copied. */
int hook_start(struct hook_multi *hm, const char *id, long attempt, const char *url);

/* Calls in flight. */
int hook_in_flight(const struct hook_multi *hm);

/* Waits at most timeout_ms for curl's sockets or one of extra_fds (readable)
 * and drives the transfers; stores up to cap finished calls in done and
 * returns how many (0 or more), -1 on a curl failure. */
int hook_poll(struct hook_multi *hm, const int *extra_fds, int n_extra, long timeout_ms,
              struct hook_done *done, int cap);

#endif
