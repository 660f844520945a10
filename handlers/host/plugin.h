/* Loading a handler plugin: dlopen, the entry symbol and the ABI checks.
 *
 * The host refuses a plugin with one clear line naming the file: a missing
 * file, a library dlopen() cannot load (dlerror() quoted), a missing entry
 * symbol, a table of another ABI version (expected and found printed) or one
 * shorter than version 1's. */
#ifndef HOST_PLUGIN_H
#define HOST_PLUGIN_H

#include <fpesa/handler.h>
#include <stddef.h>

struct plugin {
    char *path;                        /* as loaded */
    void *dl;                          /* dlopen handle */
    const struct fpesa_handler *table; /* borrowed from the library */
};

/* Loads path (borrowed). On success fills *out and returns 0; on failure
 * writes one line explaining why into err (of errlen bytes) and returns -1. */
int plugin_open(const char *path, struct plugin *out, char *err, size_t errlen);

/* Unloads (dlclose) and clears p. A zeroed struct is fine. */
void plugin_close(struct plugin *p);

#endif
