/* What the host checks before it consumes anything, shared by a start and
 * `handler --check`: the configuration, every plugin's library and ABI, and
 * each handler's "config:" block against the JSON Schema its plugin declares.
 */
#ifndef HOST_CHECK_H
#define HOST_CHECK_H

#include <stddef.h>
#include <stdio.h>

struct cfg;
struct plugin;

/* Validates the "config:" block of cfg->handlers[i] (an absent block as {})
 * against the schema plugin p declares (config_schema, an appended ABI
 * field), if it declares one; everything borrowed. On a violation writes one
 * line "file:line:col: handlers[i].config/path: keyword: message (schema of
 * plugin NAME)" to errs, pointing at the offending value in the file, and
 * returns -1; a schema the host cannot read or compile is also -1, blamed on
 * the plugin. Returns 0 when the block is valid or there is no schema. */
int host_check_config(const struct cfg *cfg, size_t i, const struct plugin *p, FILE *errs);

/* `handler --check path`: loads path, then opens the plugin of every handler
 * (library, entry symbol, ABI) and validates its config block, as a start
 * does, without connecting to anything or calling init(). Prints "path: ok"
 * to stdout, or every problem found to stderr. Returns the exit status, 0 or
 * 1. */
int host_check_main(const char *path);

#endif
