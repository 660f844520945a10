/* Body size limits per route, as the mapper applies them, for whatever sits in
 * front of it: scripts/nginx-conf.sh gives each path whose limit differs from
 * http.max_body a location of its own, so that nginx lets every route's body
 * through up to that route's limit and no further.
 */
#ifndef FPESA_MAPPER_LIMITS_H
#define FPESA_MAPPER_LIMITS_H

#include "config.h"

#include <stddef.h>
#include <stdio.h>

/* The largest body ep (borrowed) accepts in any of its content types, in bytes:
 * its max_body (which cfg_load sets to http.max_body when the file gives the
 * endpoint none), raised by any larger per-type limit. cfg is not read. */
size_t limits_endpoint(const struct cfg *cfg, const struct cfg_endpoint *ep);

/* Writes "default <bytes>" and then "<path> <bytes>" for each path (over all
 * its methods, the largest) to out, one per line, paths in the file's order.
 * Returns 0, or -1 when out could not be written. */
int limits_print(const struct cfg *cfg, FILE *out);

#endif
