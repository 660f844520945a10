/* The plugin loader refuses each kind of broken plugin with a clear line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../../handlers/host/plugin.h"

/* The broken plugins are built beside this test: $BUILD (absolute, as
 * scripts/test.sh exports it) or the repository's build/. */
static const char *tp(const char *name) {
    static char buf[4096];
    const char *b = getenv("BUILD");
    if (b && b[0] == '/')
        snprintf(buf, sizeof(buf), "%s/tests/plugins/%s", b, name);
    else
        snprintf(buf, sizeof(buf), "%s/build/tests/plugins/%s", FPESA_SOURCE_DIR, name);
    return buf;
}

static void refused(const char *path, const char *n1, const char *n2) {
    struct plugin p;
    char err[1024] = "";
    cr_assert_eq(plugin_open(path, &p, err, sizeof(err)), -1, "%s loaded", path);
    cr_assert(strstr(err, path), "error does not name the file: %s", err);
    cr_assert(strstr(err, n1), "error \"%s\" lacks \"%s\"", err, n1);
    if (n2)
        cr_assert(strstr(err, n2), "error \"%s\" lacks \"%s\"", err, n2);
}

Test(plugin, missing_file) {
    refused(tp("does_not_exist.so"), "cannot open the file", "No such file");
}

Test(plugin, not_a_library) {
    refused(FPESA_SOURCE_DIR "/Makefile", "cannot load", NULL);
}

Test(plugin, no_entry_symbol) {
    refused(tp("no_symbol.so"), "no entry symbol fpesa_handler_v1", "undefined symbol");
}

Test(plugin, wrong_abi) {
    refused(tp("wrong_abi.so"), "expected 1", "found 99");
}

Test(plugin, short_table) {
    refused(tp("short_table.so"), "too small", "found 8");
}

Test(plugin, good_one_loads) {
    struct plugin p;
    char err[1024] = "";
    cr_assert_eq(plugin_open(tp("failing_init.so"), &p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(p.table->abi_version, FPESA_HANDLER_ABI_VERSION);
    cr_assert_not_null(p.table->init);
    plugin_close(&p);
    plugin_close(&p); /* cleared: a second close is harmless */
}
