/* Prometheus metrics of the restmapper, kept in relaxed atomics so that
 * counting a request takes no lock; rendered as text for GET /metrics.
 */
#ifndef FPESA_MAPPER_METRICS_H
#define FPESA_MAPPER_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct mbus_stats;
struct metrics;

/* Creates counters for n_routes routes labelled by method and path
 * (methods/paths borrowed; must outlive the metrics) plus one for requests
 * that matched no route. Returns NULL when memory runs out. */
struct metrics *metrics_new(size_t n_routes, const char *const *methods, const char *const *paths);

/* Frees the metrics. NULL is fine. */
void metrics_free(struct metrics *m);

/* Counts one finished request: route id, or n_routes for "no route";
 * its status and how long it took. Thread-safe. */
void metrics_request(struct metrics *m, size_t route, int status, double seconds);

/* Observes a confirm round trip (publish) or an rpc round trip. Thread-safe. */
void metrics_confirm(struct metrics *m, double seconds);
void metrics_rpc(struct metrics *m, double seconds);

/* Moves the in-flight gauge by delta. Thread-safe. */
void metrics_in_flight(struct metrics *m, int delta);

/* Renders every metric as Prometheus text, with bus (borrowed; may be NULL)
 * and connected for the broker's state. Returns a new string (free with
 * free()) and its length in *len, or NULL when memory runs out. */
char *metrics_render(struct metrics *m, const struct mbus_stats *bus, bool connected, size_t *len);

#endif
