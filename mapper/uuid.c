#include "uuid.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/random.h>
#include <time.h>

/* The last (milliseconds << 12 | sequence) handed out. A compare-and-swap on
 * this one word is what makes ids unique and ordered across threads. */
static _Atomic uint64_t last_stamp;

/* Each thread draws the random tail from its own xorshift state, seeded from
 * the kernel, so that minting an id takes no lock and no system call. */
static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void) {
    uint64_t x = rng_state;

    if (x == 0) {
        if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x) || x == 0) {
            struct timespec ts;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&x;
            x |= 1;
        }
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t now_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t next_stamp(void) {
    uint64_t now = now_ms() << 12;
    uint64_t prev = atomic_load_explicit(&last_stamp, memory_order_relaxed);
    uint64_t next;

    do {
        /* A new millisecond restarts the sequence; otherwise count on, which
         * carries into the timestamp after 4095 ids in one millisecond. */
        next = now > prev ? now : prev + 1;
    } while (!atomic_compare_exchange_weak_explicit(&last_stamp, &prev, next, memory_order_relaxed,
                                                    memory_order_relaxed));
    return next;
}

void uuid_v7_bytes(uint8_t out[16]) {
    uint64_t stamp = next_stamp();
    uint64_t ms = stamp >> 12;
    uint64_t seq = stamp & 0xfffu;
    uint64_t tail = rng_next();

    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t)(ms >> (40 - 8 * i));
    out[6] = (uint8_t)(0x70u | (seq >> 8));
    out[7] = (uint8_t)seq;
    out[8] = (uint8_t)(0x80u | ((tail >> 56) & 0x3fu));
    for (int i = 9; i < 16; i++)
        out[i] = (uint8_t)(tail >> (8 * (15 - i)));
}

void uuid_v7(char out[UUID_STR_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    size_t o = 0;

    uuid_v7_bytes(b);
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0xf];
    }
    out[o] = '\0';
}
