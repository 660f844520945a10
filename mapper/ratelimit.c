/* Token buckets per endpoint (see ratelimit.h). */
#include "ratelimit.h"

#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TABLE_SIZE 4096 /* hash chains per endpoint */

struct bucket {
    struct bucket *next;
    double tokens;
    double at; /* monotonic seconds of the last refill */
    char key[];
};

struct limiter {
    const struct cfg_rate_limit *cfg; /* NULL: no limit */
    double rate;                      /* tokens per second */
    pthread_mutex_t lock;
    struct bucket **table;
    size_t n;
    struct bucket overflow; /* shared once the table is full */
};

struct ratelimit {
    struct limiter *eps;
    size_t n_eps;
};

static double now_s(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)(h % TABLE_SIZE);
}

static void refill(const struct limiter *l, struct bucket *b, double now) {
    b->tokens += (now - b->at) * l->rate;
    if (b->tokens > l->cfg->burst)
        b->tokens = l->cfg->burst;
    b->at = now;
}

struct ratelimit *ratelimit_new(const struct cfg *cfg) {
    struct ratelimit *rl = calloc(1, sizeof(*rl));

    if (!rl)
        return NULL;
    rl->n_eps = cfg->n_endpoints;
    rl->eps = calloc(rl->n_eps ? rl->n_eps : 1, sizeof(*rl->eps));
    if (!rl->eps) {
        free(rl);
        return NULL;
    }
    for (size_t i = 0; i < rl->n_eps; i++) {
        struct limiter *l = &rl->eps[i];
        const struct cfg_rate_limit *c = &cfg->endpoints[i].rate_limit;

        pthread_mutex_init(&l->lock, NULL);
        if (!c->given)
            continue;
        l->cfg = c;
        l->rate = (double)c->requests * 1000.0 / (double)c->per_ms;
        l->table = calloc(TABLE_SIZE, sizeof(*l->table));
        l->overflow.tokens = c->burst;
        l->overflow.at = now_s();
        if (!l->table) {
            ratelimit_free(rl);
            return NULL;
        }
    }
    return rl;
}

void ratelimit_free(struct ratelimit *rl) {
    if (!rl)
        return;
    for (size_t i = 0; i < rl->n_eps; i++) {
        struct limiter *l = &rl->eps[i];

        for (size_t j = 0; l->table && j < TABLE_SIZE; j++) {
            while (l->table[j]) {
                struct bucket *b = l->table[j];

                l->table[j] = b->next;
                free(b);
            }
        }
        free(l->table);
        pthread_mutex_destroy(&l->lock);
    }
    free(rl->eps);
    free(rl);
}

/* Drops the buckets that are full again (their clients went quiet). Called
 * with the lock held when the table is full. */
static void sweep(struct limiter *l, double now) {
    for (size_t j = 0; j < TABLE_SIZE; j++) {
        struct bucket **pp = &l->table[j];

        while (*pp) {
            struct bucket *b = *pp;

            refill(l, b, now);
            if (b->tokens >= l->cfg->burst) {
                *pp = b->next;
                free(b);
                l->n--;
            } else {
                pp = &b->next;
            }
        }
    }
}

void ratelimit_take(struct ratelimit *rl, size_t ep_index, const char *key, struct rl_verdict *v) {
    struct limiter *l;
    struct bucket *b;
    size_t h;
    double now;

    memset(v, 0, sizeof(*v));
    if (!rl || ep_index >= rl->n_eps || !rl->eps[ep_index].cfg)
        return;
    l = &rl->eps[ep_index];
    now = now_s();
    h = hash(key);
    pthread_mutex_lock(&l->lock);
    for (b = l->table[h]; b; b = b->next)
        if (strcmp(b->key, key) == 0)
            break;
    if (!b) {
        if (l->n >= RATELIMIT_MAX_BUCKETS)
            sweep(l, now);
        if (l->n < RATELIMIT_MAX_BUCKETS) {
            size_t kl = strlen(key);

            b = malloc(sizeof(*b) + kl + 1);
            if (b) {
                memcpy(b->key, key, kl + 1);
                b->tokens = l->cfg->burst;
                b->at = now;
                b->next = l->table[h];
                l->table[h] = b;
                l->n++;
            }
        }
        if (!b)
            b = &l->overflow;
    }
    refill(l, b, now);
    v->applies = true;
    v->limit = l->cfg->burst;
    v->window_s = (l->cfg->per_ms + 999) / 1000;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        v->limited = false;
    } else {
        v->limited = true;
        v->retry_after = (long)ceil((1.0 - b->tokens) / l->rate);
        if (v->retry_after < 1)
            v->retry_after = 1;
    }
    v->remaining = (long)floor(b->tokens);
    v->reset_s = (long)ceil((l->cfg->burst - b->tokens) / l->rate);
    pthread_mutex_unlock(&l->lock);
}
