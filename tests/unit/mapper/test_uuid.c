#include "../../../mapper/uuid.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_SEQ 100000
#define N_THREADS 4
#define N_PER_THREAD 25000

Test(uuid, layout) {
    char s[UUID_STR_LEN + 1];
    uint8_t b[16];
    struct timespec ts;
    uint64_t ms = 0, now;

    uuid_v7(s);
    cr_assert_eq(strlen(s), 36);
    cr_assert_eq(s[8], '-');
    cr_assert_eq(s[13], '-');
    cr_assert_eq(s[18], '-');
    cr_assert_eq(s[23], '-');
    cr_assert_eq(s[14], '7', "version nibble in %s", s);
    cr_assert(strchr("89ab", s[19]) != NULL, "variant in %s", s);
    for (int i = 0; i < 36; i++)
        cr_assert(strchr("0123456789abcdef-", s[i]) != NULL);

    uuid_v7_bytes(b);
    cr_assert_eq(b[6] >> 4, 7);
    cr_assert_eq(b[8] >> 6, 2);
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | b[i];
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    cr_assert(ms <= now + 1000 && ms + 5000 >= now, "timestamp %llu vs now %llu",
              (unsigned long long)ms, (unsigned long long)now);
}

Test(uuid, strictly_increasing_over_100k) {
    char *ids = malloc((size_t)N_SEQ * (UUID_STR_LEN + 1));

    cr_assert_not_null(ids);
    for (int i = 0; i < N_SEQ; i++)
        uuid_v7(ids + (size_t)i * (UUID_STR_LEN + 1));
    for (int i = 1; i < N_SEQ; i++) {
        const char *a = ids + (size_t)(i - 1) * (UUID_STR_LEN + 1);
        const char *b = ids + (size_t)i * (UUID_STR_LEN + 1);
        cr_assert(strcmp(a, b) < 0, "%s then %s at %d", a, b, i);
    }
    free(ids);
}

static char (*thread_ids)[UUID_STR_LEN + 1];

static void *mint(void *arg) {
    size_t base = (size_t)(uintptr_t)arg * N_PER_THREAD;

    for (size_t i = 0; i < N_PER_THREAD; i++)
        uuid_v7(thread_ids[base + i]);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    return strcmp(a, b);
}

Test(uuid, unique_across_threads_and_ordered_per_thread) {
    pthread_t t[N_THREADS];

    thread_ids = calloc(N_THREADS * N_PER_THREAD, sizeof(*thread_ids));
    cr_assert_not_null(thread_ids);
    for (uintptr_t i = 0; i < N_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, mint, (void *)i), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    for (int k = 0; k < N_THREADS; k++) {
        for (int i = 1; i < N_PER_THREAD; i++)
            cr_assert(
                strcmp(thread_ids[k * N_PER_THREAD + i - 1], thread_ids[k * N_PER_THREAD + i]) < 0);
    }
    qsort(thread_ids, N_THREADS * N_PER_THREAD, sizeof(*thread_ids), cmp);
    for (int i = 1; i < N_THREADS * N_PER_THREAD; i++)
        cr_assert(strcmp(thread_ids[i - 1], thread_ids[i]) != 0, "duplicate %s", thread_ids[i]);
    free(thread_ids);
}
