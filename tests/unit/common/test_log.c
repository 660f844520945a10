/* common/log.c: lines from many threads all written, whole and in each
 * thread's order; the level threshold; warn and error lines written before
 * the call returns; redaction of connection URLs; a line too long for the
 * line buffer cut cleanly; lines logged after log_fini().
 *
 * Each test sends stderr to a temporary file (dup2) and reads it back.
 * Criterion runs every test in a process of its own, so the logger's global
 * state starts fresh each time. */
#include "log.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS 8
#define LINES 10000

static char path[] = "/tmp/fpesa-test-log-XXXXXX";
static int saved_stderr = -1;

/* Sends fd 2 to a fresh temporary file. */
static void capture(void) {
    int fd = mkstemp(path);

    cr_assert(fd >= 0);
    saved_stderr = dup(STDERR_FILENO);
    cr_assert(saved_stderr >= 0);
    cr_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    close(fd);
}

static void restore(void) {
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        saved_stderr = -1;
    }
    unlink(path);
}

TestSuite(log, .init = capture, .fini = restore);

/* Everything written to the file so far (new; free it); *len gets its size. */
static char *captured(size_t *len) {
    FILE *f = fopen(path, "rb");
    char *text;
    long size;

    cr_assert_not_null(f);
    cr_assert(fseek(f, 0, SEEK_END) == 0);
    size = ftell(f);
    cr_assert(size >= 0);
    rewind(f);
    text = malloc((size_t)size + 1);
    cr_assert_not_null(text);
    cr_assert(fread(text, 1, (size_t)size, f) == (size_t)size);
    text[size] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)size;
    return text;
}

static size_t count_lines(const char *text) {
    size_t n = 0;

    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* Checks the head of one line: "YYYY-MM-DDTHH:MM:SS.mmmZ level test " and
 * returns what follows it, or NULL. */
static const char *after_head(const char *line, const char *level) {
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    size_t i, n = strlen(level);

    for (i = 0; shape[i]; i++) {
        if (shape[i] == 'd' ? (line[i] < '0' || line[i] > '9') : line[i] != shape[i])
            return NULL;
    }
    line += i;
    if (strncmp(line, level, n) != 0 || strncmp(line + n, " test ", 6) != 0)
        return NULL;
    return line + n + 6;
}

static void *log_many(void *arg) {
    int t = (int)(long)arg;

    for (int i = 0; i < LINES; i++)
        LOG(LOG_INFO, "request thread=%d seq=%d path=/some/path/to/make/the/line/longer end", t, i);
    return NULL;
}

Test(log, many_threads_whole_lines_none_lost) {
    pthread_t th[THREADS];
    int next[THREADS] = {0};
    size_t len, total = 0;
    char *text, *line, *end;

    log_init("test");
    log_threshold = LOG_INFO;
    for (long t = 0; t < THREADS; t++)
        cr_assert(pthread_create(&th[t], NULL, log_many, (void *)t) == 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    log_flush();

    text = captured(&len);
    cr_assert(len > 0 && text[len - 1] == '\n', "the output ends inside a line");
    for (line = text; *line; line = end + 1) {
        const char *rest = after_head(line, "info");
        int t, i, used = 0;

        end = strchr(line, '\n');
        *end = '\0';
        cr_assert_not_null(rest, "malformed line: %s", line);
        cr_assert(sscanf(rest,
                         "request thread=%d seq=%d path=/some/path/to/make/the/line/longer end%n",
                         &t, &i, &used) == 2 &&
                      used > 0 && rest[used] == '\0',
                  "malformed or interleaved line: %s", line);
        cr_assert(t >= 0 && t < THREADS);
        /* One thread's lines keep their order, none missing, none twice. */
        cr_assert_eq(i, next[t], "thread %d: line %d where %d was expected", t, i, next[t]);
        next[t]++;
        total++;
    }
    cr_assert_eq(total, (size_t)THREADS * LINES);
    free(text);
}

Test(log, threshold_from_the_environment) {
    char *text;

    setenv("FPESA_LOG_LEVEL", "WARN", 1);
    log_init("test");
    cr_assert_eq(log_threshold, LOG_WARN);
    LOG(LOG_DEBUG, "dropped debug");
    LOG(LOG_INFO, "dropped info");
    LOG(LOG_WARN, "kept warn key=%d", 1);
    LOG(LOG_ERROR, "kept error key=%d", 2);
    log_flush();
    text = captured(NULL);
    cr_assert_null(strstr(text, "dropped"), "%s", text);
    cr_assert_eq(count_lines(text), 2, "%s", text);
    cr_assert_not_null(strstr(text, " warn test kept warn key=1\n"), "%s", text);
    cr_assert_not_null(strstr(text, " error test kept error key=2\n"), "%s", text);
    free(text);

    setenv("FPESA_LOG_LEVEL", "debug", 1);
    cr_assert_eq(log_init("test"), 0);
    cr_assert_eq(log_threshold, LOG_DEBUG);
    setenv("FPESA_LOG_LEVEL", "WARN", 1);
    cr_assert_eq(log_init("test"), 0);
    cr_assert_eq(log_threshold, LOG_WARN);
    setenv("FPESA_LOG_LEVEL", "debug", 1);
    log_init("test");
    setenv("FPESA_LOG_LEVEL", "nonsense", 1);
    cr_assert_eq(log_init("test"), -1, "an unknown level is refused");
    cr_assert_eq(log_threshold, LOG_DEBUG, "an unknown level keeps the current one");
    unsetenv("FPESA_LOG_LEVEL");
}

/* A warn line is on disk when LOG returns, after the info lines before it,
 * with no log_flush(). */
Test(log, warn_written_at_once_with_what_came_before) {
    char *text;
    const char *a, *b;

    log_init("test");
    log_threshold = LOG_INFO;
    LOG(LOG_INFO, "first");
    LOG(LOG_INFO, "second");
    LOG(LOG_WARN, "third");
    text = captured(NULL);
    a = strstr(text, " info test first\n");
    b = strstr(text, " info test second\n");
    cr_assert(a && b && a < b, "%s", text);
    cr_assert(strstr(text, " warn test third\n") > b, "%s", text);
    cr_assert_eq(count_lines(text), 3, "%s", text);
    free(text);
}

/* An info line reaches the file without log_flush(): the writer thread takes
 * it (within about 50 ms; the test only waits for it, up to 10 s). */
Test(log, info_written_without_flush) {
    struct timespec pause = {0, 10 * 1000000L};
    char *text = NULL;

    log_init("test");
    log_threshold = LOG_INFO;
    LOG(LOG_INFO, "lonely line");
    for (int i = 0; i < 1000; i++) {
        free(text);
        text = captured(NULL);
        if (strstr(text, "lonely line\n"))
            break;
        nanosleep(&pause, NULL);
    }
    cr_assert_not_null(strstr(text, " info test lonely line\n"), "%s", text);
    free(text);
}

Test(log, redact_url) {
    char buf[128], small[12], *text;

    cr_assert_str_eq(log_redact_url("amqp://fpesa:s3cret@127.0.0.1:5672/%2f", buf, sizeof(buf)),
                     "amqp://fpesa:***@127.0.0.1:5672/%2f");
    cr_assert_str_eq(log_redact_url("postgresql://u:p@db/fpesa?sslmode=disable", buf, sizeof(buf)),
                     "postgresql://u:***@db/fpesa?sslmode=disable");
    cr_assert_str_eq(log_redact_url("amqp://guest@localhost/", buf, sizeof(buf)),
                     "amqp://guest@localhost/");
    cr_assert_str_eq(log_redact_url("amqp://localhost:5672/", buf, sizeof(buf)),
                     "amqp://localhost:5672/");
    cr_assert_str_eq(log_redact_url(NULL, buf, sizeof(buf)), "(none)");
    cr_assert_str_eq(log_redact_url("amqp://user:secret@host/", small, sizeof(small)),
                     "amqp://user");
    cr_assert_null(log_redact_url("amqp://x", NULL, 10));

    log_init("test");
    log_threshold = LOG_INFO;
    LOG(LOG_INFO, "connecting url=%s",
        log_redact_url("amqp://fpesa:s3cret@127.0.0.1:5672/", buf, sizeof(buf)));
    log_flush();
    text = captured(NULL);
    cr_assert_null(strstr(text, "s3cret"), "%s", text);
    cr_assert_not_null(strstr(text, " info test connecting url=amqp://fpesa:***@127.0.0.1:5672/\n"),
                       "%s", text);
    free(text);
}

/* A message longer than a line can hold is cut to LOG_LINE_MAX bytes ending
 * in "...\n"; the lines around it are untouched. */
Test(log, long_line_cut_cleanly) {
    size_t big = 3 * LOG_LINE_MAX, len, head_len;
    char *msg = malloc(big + 1), *text, *first, *second, *third;

    cr_assert_not_null(msg);
    memset(msg, 'x', big);
    msg[big] = '\0';
    log_init("test");
    log_threshold = LOG_INFO;
    LOG(LOG_INFO, "before");
    LOG(LOG_INFO, "long %s", msg);
    LOG(LOG_INFO, "after");
    log_flush();
    text = captured(&len);
    cr_assert_eq(count_lines(text), 3, "%s", text);
    first = text;
    second = strchr(first, '\n') + 1;
    third = strchr(second, '\n') + 1;
    cr_assert_not_null(strstr(first, " info test before\n"));
    cr_assert_eq((size_t)(third - second), (size_t)LOG_LINE_MAX);
    cr_assert_not_null(after_head(second, "info"));
    cr_assert(strncmp(after_head(second, "info"), "long xxx", 8) == 0);
    cr_assert(strncmp(third - 4, "...\n", 4) == 0);
    cr_assert_not_null(after_head(third, "info"));
    cr_assert_str_eq(after_head(third, "info"), "after\n");
    head_len = (size_t)(after_head(third, "info") - third);
    free(text);

    /* A message that exactly fills the line is not cut. */
    {
        size_t room;
        char *fits;

        room = LOG_LINE_MAX - head_len - 1;
        fits = malloc(room + 1);
        cr_assert_not_null(fits);
        memset(fits, 'y', room);
        fits[room] = '\0';
        LOG(LOG_INFO, "%s", fits);
        log_flush();
        text = captured(&len);
        cr_assert_eq(count_lines(text), 4);
        cr_assert(text[len - 2] == 'y' && text[len - 1] == '\n');
        free(fits);
        free(text);
    }
    free(msg);
}

/* After log_fini() a line is still written, by its caller. */
Test(log, lines_after_fini) {
    char *text;

    log_init("test");
    log_threshold = LOG_INFO;
    LOG(LOG_INFO, "before fini");
    log_fini();
    text = captured(NULL);
    cr_assert_not_null(strstr(text, " info test before fini\n"), "%s", text);
    free(text);
    LOG(LOG_INFO, "after fini");
    text = captured(NULL);
    cr_assert_not_null(strstr(text, " info test after fini\n"), "%s", text);
    cr_assert_eq(count_lines(text), 2, "%s", text);
    free(text);
}

Test(log, quote_values) {
    char buf[128];

    cr_assert_str_eq(log_quote("plain-token/x", buf, sizeof(buf)), "plain-token/x");
    cr_assert_str_eq(log_quote(NULL, buf, sizeof(buf)), "-");
    cr_assert_str_eq(log_quote("", buf, sizeof(buf)), "\"\"");
    cr_assert_str_eq(log_quote("abc status=200", buf, sizeof(buf)), "\"abc status=200\"");
    cr_assert_str_eq(log_quote("a\"b\\c", buf, sizeof(buf)), "\"a\\\"b\\\\c\"");
    cr_assert_str_eq(log_quote("x\r\ny\x1b[31m\t", buf, sizeof(buf)), "\"x\\r\\ny\\x1b[31m\\t\"");
    /* Cut short, it still ends with its quote. */
    cr_assert_str_eq(log_quote("a b c d e f", buf, 8), "\"a b c\"");
}

Test(log, one_line_per_event_whatever_the_message) {
    char *text;

    log_init("test");
    log_threshold = LOG_INFO;
    LOG(LOG_WARN, "evil value=%s end", "x\nfake 2026-01-01T00:00:00.000Z error forged\r\x1b[2J");
    text = captured(NULL);
    cr_assert_eq(count_lines(text), 1, "%s", text);
    cr_assert_not_null(strstr(text, "evil value=x\\nfake 2026-01-01T00:00:00.000Z error "
                                    "forged\\r\\x1b[2J end\n"),
                       "%s", text);
    free(text);
}
