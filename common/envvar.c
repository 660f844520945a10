#include "envvar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int envvar_long(const char *name, long def, long min, long max, const char *unit, long *out) {
    const char *v = getenv(name);
    char *end;
    long long n;
    int saved;

    *out = def;
    if (!v || !*v)
        return 0;
    errno = 0;
    n = strtoll(v, &end, 10);
    saved = errno;
    if (saved != 0 || end == v || *end != '\0' || v[0] == '+' || v[0] == ' ' || n < min ||
        n > max) {
        fprintf(stderr, "%s: bad value \"%.40s\": expected a whole number from %ld to %ld %s\n",
                name, v, min, max, unit);
        return -1;
    }
    *out = (long)n;
    return 0;
}
