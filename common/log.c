/* Lines are formatted by the calling thread into a stack buffer, appended
 * under a short lock to one shared pending buffer, and written to stderr in
 * batches: by a writer thread at most LOG_FLUSH_MS after the first line of a
 * batch (sooner when half the buffer is used), by the caller itself for a
 * warn or error line (so that those are on disk before the call returns,
 * together with every line before them), and by log_flush()/log_fini().
 *
 * One shared buffer rather than one per thread keeps the lines in the order
 * in which they were logged; the critical section is one memcpy of a line,
 * so on a few cores it is almost never contended. Two buffers alternate: the
 * one being written is owned by whoever holds write_mu, while the other
 * keeps taking lines. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUF_CAP (64 * 1024)
#define LOG_FLUSH_MS 50
#define COMPONENT_MAX 64

enum log_level log_threshold = LOG_INFO;
static const char *component = "fpesa";
static size_t component_len = 5;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const size_t level_lens[] = {5, 4, 4, 5};

/* The pending lines; guarded by mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv; /* writer wake-up; initialised when the writer starts */
static char bufs[2][LOG_BUF_CAP];
static char *pending = bufs[0];
static size_t pending_len;
static bool hurry;          /* half the buffer is used: write without waiting */
static bool writer_started; /* a start was attempted (even a failed one) */
static bool writer_running; /* the writer thread exists and takes batches */
static bool writer_stop;    /* log_fini() asked the writer to end */
static pthread_t writer;

/* Serialises the writes so that batches reach stderr in the order taken. */
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

/* The formatted second of this thread's last line: gmtime_r and strftime run
 * once a second per thread instead of once a line. */
static _Thread_local struct {
    time_t sec;
    bool valid;
    size_t len;
    char text[32];
} stamp;

int log_init(const char *name) {
    const char *lvl = getenv("FPESA_LOG_LEVEL");

    if (name) {
        size_t n = strlen(name);

        component = name;
        component_len = n < COMPONENT_MAX ? n : COMPONENT_MAX;
    }
    if (!lvl || !*lvl)
        return 0;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(lvl, level_names[i]) == 0) {
            log_threshold = (enum log_level)i;
            return 0;
        }
    }
    fprintf(stderr, "FPESA_LOG_LEVEL: bad value \"%.40s\": expected debug, info, warn or error\n",
            lvl);
    return -1;
}

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report it: the lines are dropped */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Writes every pending line. Called without mu held. */
static void drain(void) {
    const char *out;
    size_t n;

    pthread_mutex_lock(&write_mu);
    pthread_mutex_lock(&mu);
    out = pending;
    n = pending_len;
    pending = pending == bufs[0] ? bufs[1] : bufs[0];
    pending_len = 0;
    hurry = false;
    pthread_mutex_unlock(&mu);
    if (n)
        write_all(out, n);
    pthread_mutex_unlock(&write_mu);
}

static void *writer_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!writer_stop) {
        struct timespec deadline;

        if (pending_len == 0) {
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += LOG_FLUSH_MS * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!hurry && !writer_stop && pending_len > 0 &&
               pthread_cond_timedwait(&cv, &mu, &deadline) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&mu);
        drain();
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* fork() keeps only the calling thread: the child writes its own lines
 * synchronously until a writer of its own starts. */
static void atfork_prepare(void) {
    pthread_mutex_lock(&write_mu);
    pthread_mutex_lock(&mu);
}

static void atfork_parent(void) {
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&write_mu);
}

static void atfork_child(void) {
    writer_started = false;
    writer_running = false;
    writer_stop = false;
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&write_mu);
}

/* Starts the writer thread; called with mu held, once. When the thread
 * cannot start, every line is written by its caller. */
static void start_writer(void) {
    static bool registered;
    pthread_condattr_t ca;
    sigset_t all, old;

    writer_started = true;
    if (!registered) {
        registered = true;
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
        atexit(log_flush);
    }
    if (pthread_condattr_init(&ca) != 0)
        return;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        return;
    }
    pthread_condattr_destroy(&ca);
    /* The programs take SIGTERM with sigwait in one thread; the writer must
     * never be the thread a signal is delivered to. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    writer_running = pthread_create(&writer, NULL, writer_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (writer_running)
        pthread_setname_np(writer, "log");
    else
        pthread_cond_destroy(&cv);
}

static void enqueue(const char *line, size_t n, bool now) {
    bool sync;

    pthread_mutex_lock(&mu);
    if (!writer_started)
        start_writer();
    while (pending_len + n > LOG_BUF_CAP) {
        pthread_mutex_unlock(&mu);
        drain();
        pthread_mutex_lock(&mu);
    }
    memcpy(pending + pending_len, line, n);
    pending_len += n;
    if (writer_running) {
        if (pending_len == n) {
            pthread_cond_signal(&cv); /* the first line of a batch starts the clock */
        } else if (!hurry && pending_len >= LOG_BUF_CAP / 2) {
            hurry = true;
            pthread_cond_signal(&cv);
        }
    }
    sync = now || !writer_running;
    pthread_mutex_unlock(&mu);
    if (sync)
        drain();
}

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ level component " into out (of at least
 * LOG_LINE_MAX bytes) and returns its length. */
static size_t format_head(char *out, enum log_level level) {
    struct timespec ts;
    size_t n;
    long ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (!stamp.valid || stamp.sec != ts.tv_sec) {
        struct tm tm;

        gmtime_r(&ts.tv_sec, &tm);
        stamp.len = strftime(stamp.text, sizeof(stamp.text), "%Y-%m-%dT%H:%M:%S.", &tm);
        stamp.sec = ts.tv_sec;
        stamp.valid = stamp.len > 0;
    }
    memcpy(out, stamp.text, stamp.len);
    n = stamp.len;
    ms = ts.tv_nsec / 1000000L;
    out[n++] = (char)('0' + ms / 100);
    out[n++] = (char)('0' + ms / 10 % 10);
    out[n++] = (char)('0' + ms % 10);
    out[n++] = 'Z';
    out[n++] = ' ';
    memcpy(out + n, level_names[level], level_lens[level]);
    n += level_lens[level];
    out[n++] = ' ';
    memcpy(out + n, component, component_len);
    n += component_len;
    out[n++] = ' ';
    return n;
}

/* Rewrites the control bytes of line[from, end) as \n, \r, \t or \xNN,
 * within LOG_LINE_MAX - 1 bytes (what does not fit is cut, marked "...").
 * Returns the new end. */
static size_t escape_controls(char *line, size_t from, size_t end) {
    char tmp[LOG_LINE_MAX];
    size_t o = 0, i;
    bool any = false;

    for (i = from; i < end; i++) {
        unsigned char c = (unsigned char)line[i];

        if (c < 0x20 || c == 0x7f) {
            any = true;
            break;
        }
    }
    if (!any)
        return end;
    for (i = from; i < end; i++) {
        unsigned char c = (unsigned char)line[i];
        char esc[5];
        size_t el;

        if (c == '\n')
            el = (size_t)snprintf(esc, sizeof(esc), "\\n");
        else if (c == '\r')
            el = (size_t)snprintf(esc, sizeof(esc), "\\r");
        else if (c == '\t')
            el = (size_t)snprintf(esc, sizeof(esc), "\\t");
        else if (c < 0x20 || c == 0x7f)
            el = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c);
        else {
            esc[0] = (char)c;
            el = 1;
        }
        if (from + o + el + 4 > LOG_LINE_MAX - 1) {
            memcpy(tmp + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(tmp + o, esc, el);
        o += el;
    }
    memcpy(line + from, tmp, o);
    return from + o;
}

char *log_quote(const char *s, char *buf, size_t len) {
    size_t o = 0;
    bool plain = true;

    if (len < 4) {
        if (len)
            buf[0] = '\0';
        return buf;
    }
    if (!s) {
        snprintf(buf, len, "-");
        return buf;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p == 0x7f)
            plain = false;
    if (plain && *s) {
        snprintf(buf, len, "%s", s);
        return buf;
    }
    buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[5];
        size_t el;

        if (*p == '"' || *p == '\\')
            el = (size_t)snprintf(esc, sizeof(esc), "\\%c", *p);
        else if (*p == '\n')
            el = (size_t)snprintf(esc, sizeof(esc), "\\n");
        else if (*p == '\r')
            el = (size_t)snprintf(esc, sizeof(esc), "\\r");
        else if (*p == '\t')
            el = (size_t)snprintf(esc, sizeof(esc), "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            el = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *p);
        else {
            esc[0] = (char)*p;
            el = 1;
        }
        if (o + el + 2 > len)
            break;
        memcpy(buf + o, esc, el);
        o += el;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

void log_vwrite(enum log_level level, const char *fmt, va_list ap) {
    static const char cut[] = "...";
    char line[LOG_LINE_MAX];
    size_t n;
    int w;

    if (level < LOG_DEBUG || level > LOG_ERROR)
        level = LOG_ERROR;
    n = format_head(line, level);
    /* Room is kept for the newline; vsnprintf's NUL takes that byte. */
    w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (w < 0) {
        w = 0;
    } else if ((size_t)w >= sizeof(line) - n) {
        /* Too long: cut it, mark the cut, and still end it with a newline. */
        w = (int)(sizeof(line) - n - 1);
        memcpy(line + n + (size_t)w - (sizeof(cut) - 1), cut, sizeof(cut) - 1);
    }
    n = escape_controls(line, n, n + (size_t)w);
    line[n++] = '\n';
    enqueue(line, n, level >= LOG_WARN);
}

void log_write(enum log_level level, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}

void log_flush(void) {
    drain();
}

void log_fini(void) {
    bool join;

    pthread_mutex_lock(&mu);
    join = writer_running;
    if (join) {
        writer_stop = true;
        writer_running = false; /* from now on callers write their own lines */
        pthread_cond_signal(&cv);
    }
    pthread_mutex_unlock(&mu);
    if (join)
        pthread_join(writer, NULL);
    drain();
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

void log_reload_refused(const char *problems) {
    for (const char *line = problems, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl != line)
            LOG(LOG_ERROR, "reload refused: %.*s", (int)(nl ? nl - line : (long)strlen(line)),
                line);
    }
    LOG(LOG_ERROR, "reload refused; the running configuration stays");
}
