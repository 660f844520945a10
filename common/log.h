/* One-line structured logging shared by every fpesa program.
 *
 * A line is: time, level, component, message, then key=value pairs written
 * by the caller into the message, e.g.
 *   2026-11-23T08:14:19.123Z info restmapper request method=GET path=/health status=200
 * The level is checked before anything is formatted. Never pass credentials
 * or whole connection URLs; log_redact_url() strips the password first.
 *
 * A value that comes from outside (a path, a header, a plugin's text) goes
 * through log_quote(). Whatever a message holds, a line stays one line:
 * control bytes in it (newlines, carriage returns, terminal escapes) are
 * written as \n, \r, \t or \xNN.
 */
#ifndef FPESA_LOG_H
#define FPESA_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* The level below which lines are dropped; set by log_init(). */
extern enum log_level log_threshold;

/* Sets the component name (borrowed; must outlive the process) and the level
 * from FPESA_LOG_LEVEL (debug|info|warn|error, any case; default info).
 * Returns 0, or -1 after printing "FPESA_LOG_LEVEL: ..." to stderr when the
 * variable holds anything else (the level is left as it was): a program
 * refuses to start rather than log at a level nobody asked for. */
int log_init(const char *component);

/* The longest line written, newline included; a longer message is cut and
 * ends with "..." and the newline. */
#define LOG_LINE_MAX 2048

/* Queues one line for stderr. Info and debug lines are written in batches,
 * at most about 50 ms later (or at log_flush()/log_fini()/exit); a warn or
 * error line is written before the call returns, with every line queued
 * before it. Lines are never interleaved and keep the order in which they
 * were logged. Must not be called from a signal handler. Use the LOG macro
 * instead, which skips the call entirely when the level is below the
 * threshold. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vwrite(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define LOG(level, ...)                                                                            \
    do {                                                                                           \
        if ((level) >= log_threshold)                                                              \
            log_write((level), __VA_ARGS__);                                                       \
    } while (0)

/* Writes every queued line to stderr before returning. Also runs at exit(). */
/* A reload that was refused: each line of problems (file:line:col
 * messages, NUL-terminated, may be NULL) as "reload refused: <line>" at
 * level error, then that the running configuration stays. */
void log_reload_refused(const char *problems);

void log_flush(void);

/* Flushes, then stops the background writer; later lines are written by
 * their callers, one write each. Call it where a program ends. */
void log_fini(void);

/* Writes s as one logfmt value into buf (of size len) and returns buf: as
 * it is when it is a plain token, else in double quotes with '"', '\\' and
 * control bytes escaped (\n, \r, \t, \xNN), so that no value can end
 * its line or pass for another key=value field. NULL is written as "-".
 * Always NUL-terminates; a value cut short still ends with its quote. */
char *log_quote(const char *s, char *buf, size_t len);

/* Copies url into buf (of size len) with any password replaced by "***" and
 * returns buf. Always NUL-terminates; truncates when buf is short. */
char *log_redact_url(const char *url, char *buf, size_t len);

#endif
