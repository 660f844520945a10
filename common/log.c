#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum log_level log_threshold = LOG_INFO;
static const char *component = "fpesa";

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *name) {
    const char *lvl = getenv("FPESA_LOG_LEVEL");

    if (name)
        component = name;
    if (!lvl)
        return;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(lvl, level_names[i]) == 0)
            log_threshold = (enum log_level)i;
    }
}

void log_vwrite(enum log_level level, const char *fmt, va_list ap) {
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int w;

    if (level < LOG_DEBUG || level > LOG_ERROR)
        level = LOG_ERROR;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    w = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s ", ts.tv_nsec / 1000000L,
                 level_names[level], component);
    if (w > 0)
        n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
    w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (w > 0)
        n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
    /* One write per line so that lines from several threads never interleave. */
    line[n < sizeof(line) - 1 ? n : sizeof(line) - 2] = '\n';
    fwrite(line, 1, (n < sizeof(line) - 1 ? n : sizeof(line) - 2) + 1, stderr);
}

void log_write(enum log_level level, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}

char *log_redact_url(const char *url, char *buf, size_t len) {
    const char *scheme, *at, *colon;
    size_t head;

    if (!buf || len == 0)
        return buf;
    if (!url) {
        snprintf(buf, len, "(none)");
        return buf;
    }
    scheme = strstr(url, "://");
    at = scheme ? strchr(scheme + 3, '@') : NULL;
    colon = at ? memchr(scheme + 3, ':', (size_t)(at - (scheme + 3))) : NULL;
    if (!colon) {
        snprintf(buf, len, "%s", url);
        return buf;
    }
    head = (size_t)(colon - url) + 1;
    snprintf(buf, len, "%.*s***%s", (int)head, url, at);
    return buf;
}
