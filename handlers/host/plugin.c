#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The version 1 table ends with fini: anything shorter lacks a callback. */
#define TABLE_V1_SIZE (offsetof(struct fpesa_handler, fini) + sizeof(void (*)(void *)))

int plugin_open(const char *path, struct plugin *out, char *err, size_t errlen) {
    struct stat st;
    fpesa_handler_entry_fn entry;
    const struct fpesa_handler *t;
    void *dl;
    const char *why;
    int saved;

    memset(out, 0, sizeof(*out));
    /* dlopen's message for a missing file is about the search path; say it
     * plainly instead. */
    if (stat(path, &st) < 0) {
        saved = errno;
        snprintf(err, errlen, "plugin %s: cannot open the file: %s", path, strerror(saved));
        return -1;
    }
    dlerror();
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        why = dlerror();
        snprintf(err, errlen, "plugin %s: cannot load: %s", path, why ? why : "unknown error");
        return -1;
    }
    dlerror();
    *(void **)&entry = dlsym(dl, FPESA_HANDLER_ENTRY);
    if (!entry) {
        why = dlerror();
        snprintf(
            err, errlen,
            "plugin %s: no entry symbol %s (not an fpesa handler, or built for another ABI): %s",
            path, FPESA_HANDLER_ENTRY, why ? why : "symbol is NULL");
        goto out_close;
    }
    t = entry();
    if (!t) {
        snprintf(err, errlen, "plugin %s: %s() returned NULL", path, FPESA_HANDLER_ENTRY);
        goto out_close;
    }
    if (t->abi_version != FPESA_HANDLER_ABI_VERSION) {
        snprintf(err, errlen, "plugin %s: wrong ABI version: expected %u, found %u", path,
                 FPESA_HANDLER_ABI_VERSION, t->abi_version);
        goto out_close;
    }
    if (t->struct_size < TABLE_V1_SIZE) {
        snprintf(err, errlen,
                 "plugin %s: handler table too small for ABI version %u: expected at least %zu "
                 "bytes, found %u",
                 path, FPESA_HANDLER_ABI_VERSION, (size_t)TABLE_V1_SIZE, t->struct_size);
        goto out_close;
    }
    if (!t->init || !t->handle_batch) {
        snprintf(err, errlen, "plugin %s: handler table lacks %s", path,
                 !t->init ? "init" : "handle_batch");
        goto out_close;
    }
    out->path = strdup(path);
    if (!out->path) {
        snprintf(err, errlen, "plugin %s: out of memory", path);
        goto out_close;
    }
    out->dl = dl;
    out->table = t;
    return 0;

out_close:
    dlclose(dl);
    return -1;
}

void plugin_close(struct plugin *p) {
    if (!p)
        return;
    if (p->dl)
        dlclose(p->dl);
    free(p->path);
    memset(p, 0, sizeof(*p));
}
