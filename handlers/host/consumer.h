/* One consumer instance of a handler: its AMQP connection, its plugin state
 * and the thread that batches deliveries into handle_batch().
 *
 * The instance is struct fpesa_ctx, the opaque context plugins pass back to
 * the host services (services.c). */
#ifndef HOST_CONSUMER_H
#define HOST_CONSUMER_H

#include <fpesa/handler.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "plugin.h"

/* Creates instance number `instance` of handler h (borrowed, with cfg, must
 * outlive it) served by plugin p (borrowed), and calls the plugin's init.
 * Returns the new instance (free with consumer_free), or NULL with one line
 * in err explaining why. */
struct fpesa_ctx *consumer_new(const struct cfg *cfg, const struct cfg_handler *h,
                               const struct plugin *p, int instance, char *err, size_t errlen);

/* Starts the consumer thread, and the plugin's run() in a second thread when
 * the plugin has one. 0, or -1 when a thread cannot start. */
int consumer_start(struct fpesa_ctx *c);

/* Asks every consumer to stop once its batch in hand is settled. Async-signal-safe. */
void consumer_request_stop(void);

/* Waits for the thread started by consumer_start. */
void consumer_join(struct fpesa_ctx *c);

/* Calls the plugin's fini and frees the instance. NULL is fine. */
void consumer_free(struct fpesa_ctx *c);

/* The host services table given to every plugin (services.c). */
extern const struct fpesa_host host_services;

#endif
