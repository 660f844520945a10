/* The bus without a broker: every call is still answered exactly once, with
 * 503, and stopping never loses or hangs a caller. (The behaviour against a
 * real broker is covered by tests/integration/test_mapper_bus.py.) */
#include "config.h"
#include "../../../mapper/bus.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct cfg_endpoint eps[2];
static struct cfg cfg;

static void setup(void) {
    memset(eps, 0, sizeof(eps));
    memset(&cfg, 0, sizeof(cfg));
    /* Port 1 on loopback refuses connections at once. */
    cfg.bus.url = "amqp://guest:secret@127.0.0.1:1/";
    cfg.bus.heartbeat = 5;
    eps[0].path = "/p";
    eps[0].method = "POST";
    eps[0].exchange = "/p:POST";
    eps[0].mode = CFG_MODE_PUBLISH;
    eps[1].path = "/r";
    eps[1].method = "GET";
    eps[1].exchange = "/r:GET";
    eps[1].mode = CFG_MODE_RPC;
    cfg.endpoints = eps;
    cfg.n_endpoints = 2;
}

struct outcome {
    atomic_int calls;
    atomic_int status;
};

static void done(void *ctx, const struct mbus_result *r) {
    struct outcome *o = ctx;
    atomic_store(&o->status, r->status);
    atomic_fetch_add(&o->calls, 1);
}

static const struct mbus_msg msg_p = {"/p:POST", "id-1", "{}", 2, "application/json", 1};
static const struct mbus_msg msg_r = {"/r:GET", "id-2", "{}", 2, "application/json", 1};

static bool wait_calls(struct outcome *o, int n) {
    for (int i = 0; i < 500; i++) {
        if (atomic_load(&o->calls) >= n)
            return true;
        usleep(10000);
    }
    return false;
}

TestSuite(bus, .init = setup);

Test(bus, free_null_is_fine) {
    mbus_free(NULL);
}

Test(bus, not_connected_answers_503_once) {
    struct mbus *bus = mbus_new(&cfg);
    cr_assert_not_null(bus);
    cr_assert_eq(mbus_start(bus), 0);
    cr_assert_not(mbus_is_connected(bus));

    struct outcome p = {0}, r = {0};
    cr_assert_eq(mbus_publish(bus, &msg_p, done, &p), 0);
    cr_assert_eq(mbus_rpc(bus, &msg_r, 10000, done, &r), 0);
    cr_assert(wait_calls(&p, 1));
    cr_assert(wait_calls(&r, 1));
    cr_assert_eq(atomic_load(&p.status), 503);
    cr_assert_eq(atomic_load(&r.status), 503);

    struct mbus_stats st;
    mbus_stats(bus, &st);
    cr_assert_eq(st.publishes_in_flight, 0);
    cr_assert_eq(st.rpcs_in_flight, 0);
    mbus_stop(bus, 100);
    cr_assert_eq(atomic_load(&p.calls), 1);
    cr_assert_eq(atomic_load(&r.calls), 1);
    mbus_free(bus);
}

Test(bus, calls_after_stop_are_refused) {
    struct mbus *bus = mbus_new(&cfg);
    cr_assert_eq(mbus_start(bus), 0);
    mbus_stop(bus, 0);
    struct outcome p = {0};
    cr_assert_eq(mbus_publish(bus, &msg_p, done, &p), -1);
    cr_assert_eq(mbus_rpc(bus, &msg_r, 100, done, &p), -1);
    usleep(20000);
    cr_assert_eq(atomic_load(&p.calls), 0);
    mbus_free(bus);
}

static void *hammer(void *arg) {
    struct mbus *bus = ((void **)arg)[0];
    struct outcome *o = ((void **)arg)[1];
    for (int i = 0; i < 500; i++) {
        if (mbus_publish(bus, &msg_p, done, o) != 0)
            atomic_fetch_add(&o->calls, 1); /* refused: counted as answered */
    }
    return NULL;
}

Test(bus, every_accepted_call_is_answered_even_when_stopping_meanwhile) {
    struct mbus *bus = mbus_new(&cfg);
    cr_assert_eq(mbus_start(bus), 0);
    struct outcome o = {0};
    void *arg[2] = {bus, &o};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, arg);
    usleep(1000);
    mbus_stop(bus, 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&o.calls), 2000);
    mbus_free(bus);
}

Test(bus, a_bad_url_keeps_answering_503) {
    cfg.bus.url = "http://nowhere";
    struct mbus *bus = mbus_new(&cfg);
    cr_assert_eq(mbus_start(bus), 0);
    struct outcome p = {0};
    cr_assert_eq(mbus_publish(bus, &msg_p, done, &p), 0);
    cr_assert(wait_calls(&p, 1));
    cr_assert_eq(atomic_load(&p.status), 503);
    mbus_stop(bus, 0);
    mbus_free(bus);
}
