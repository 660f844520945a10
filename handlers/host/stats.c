/* Shared counters of the handler host (see stats.h). */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Upper bounds in seconds of the batch histogram; the last bucket is +Inf.
 * A batch is a database transaction or a few rpc answers: milliseconds to
 * seconds. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct hstats {
    uint64_t counters[HSTAT_N];
    uint64_t buckets[NBOUNDS + 1]; /* not cumulative; summed when rendered */
    uint64_t sum_ns;
};

struct hstats *hstats_new(void) {
    /* MAP_SHARED: the children forked afterwards write into these very
     * pages, and the parent reads them. Anonymous pages start zeroed. */
    void *p = mmap(NULL, sizeof(struct hstats), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void hstats_free(struct hstats *s) {
    if (s)
        munmap(s, sizeof(*s));
}

void hstats_add(struct hstats *s, enum hstat_counter which, uint64_t n) {
    if (s && which < HSTAT_N && n)
        __atomic_fetch_add(&s->counters[which], n, __ATOMIC_RELAXED);
}

void hstats_batch(struct hstats *s, double seconds) {
    size_t i = 0;

    if (!s)
        return;
    if (seconds < 0)
        seconds = 0;
    while (i < NBOUNDS && seconds > bounds[i])
        i++;
    __atomic_fetch_add(&s->buckets[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->sum_ns, (uint64_t)(seconds * 1e9), __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* A handler name as a label value: backslash, quote and newline escaped. */
static void label(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static const struct {
    const char *name;
    const char *help;
} families[HSTAT_N] = {
    [HSTAT_CONSUMED] = {"fpesa_handler_messages_consumed_total",
                        "Deliveries taken from the handler's queue."},
    [HSTAT_ACKED] = {"fpesa_handler_messages_acked_total",
                     "Messages the plugin handled, acknowledged to the broker."},
    [HSTAT_RETRIED] = {"fpesa_handler_messages_retried_total",
                       "Messages given back to the broker to be tried again."},
    [HSTAT_DEAD_LETTERED] = {"fpesa_handler_messages_dead_lettered_total",
                             "Messages moved to the handler's dead-letter queue."},
    [HSTAT_CRASH_RESTARTS] = {"fpesa_handler_crash_restarts_total",
                              "Handler instances started again after they died."},
};

char *hstats_render(const struct hstats_row *rows, size_t n, size_t *len) {
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);

    if (!f)
        return NULL;
    for (int c = 0; c < HSTAT_N; c++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", families[c].name, families[c].help,
                families[c].name);
        for (size_t i = 0; i < n; i++) {
            fprintf(f, "%s{handler=\"", families[c].name);
            label(f, rows[i].name);
            fprintf(f, "\"} %llu\n", (unsigned long long)load(&rows[i].stats->counters[c]));
        }
    }
    fputs("# HELP fpesa_handler_batch_duration_seconds Time from handing a batch to the plugin "
          "to its last settlement.\n# TYPE fpesa_handler_batch_duration_seconds histogram\n",
          f);
    for (size_t i = 0; i < n; i++) {
        uint64_t cum = 0;
        for (size_t b = 0; b <= NBOUNDS; b++) {
            cum += load(&rows[i].stats->buckets[b]);
            fputs("fpesa_handler_batch_duration_seconds_bucket{handler=\"", f);
            label(f, rows[i].name);
            if (b < NBOUNDS)
                fprintf(f, "\",le=\"%g\"} %llu\n", bounds[b], (unsigned long long)cum);
            else
                fprintf(f, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        fputs("fpesa_handler_batch_duration_seconds_sum{handler=\"", f);
        label(f, rows[i].name);
        fprintf(f, "\"} %.9f\n", (double)load(&rows[i].stats->sum_ns) / 1e9);
        fputs("fpesa_handler_batch_duration_seconds_count{handler=\"", f);
        label(f, rows[i].name);
        fprintf(f, "\"} %llu\n", (unsigned long long)cum);
    }
    fputs("# HELP fpesa_handler_instances Handler instances configured.\n"
          "# TYPE fpesa_handler_instances gauge\n",
          f);
    for (size_t i = 0; i < n; i++) {
        fputs("fpesa_handler_instances{handler=\"", f);
        label(f, rows[i].name);
        fprintf(f, "\"} %d\n", rows[i].instances);
    }
    fputs("# HELP fpesa_handler_instances_running Handler instances whose process is alive.\n"
          "# TYPE fpesa_handler_instances_running gauge\n",
          f);
    for (size_t i = 0; i < n; i++) {
        fputs("fpesa_handler_instances_running{handler=\"", f);
        label(f, rows[i].name);
        fprintf(f, "\"} %d\n", rows[i].running);
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    *len = out_len;
    return out;
}
