/* The shared bus client's pieces that need no broker: backoff bounds, reply
 * texts, and a connect to a list of dead addresses that gives up after
 * trying each. */
#include <criterion/criterion.h>
#include <string.h>

#include "amqpc_int.h"

Test(amqpc, backoff_doubles_with_jitter_up_to_the_cap) {
    struct amqpc_backoff b;
    long prev_cap = 100;

    amqpc_backoff_init(&b, 100, 1600);
    for (int i = 0; i < 10; i++) {
        long d = amqpc_backoff_next(&b);
        cr_assert(d >= prev_cap / 2 && d <= prev_cap, "step %d: %ld not in [%ld, %ld]", i, d,
                  prev_cap / 2, prev_cap);
        prev_cap = prev_cap * 2 > 1600 ? 1600 : prev_cap * 2;
    }
    amqpc_backoff_reset(&b);
    cr_assert(amqpc_backoff_next(&b) <= 100);
}

Test(amqpc, reply_text_names_library_errors) {
    amqp_rpc_reply_t r = {.reply_type = AMQP_RESPONSE_LIBRARY_EXCEPTION,
                          .library_error = AMQP_STATUS_HEARTBEAT_TIMEOUT};
    char buf[128];

    cr_assert(strstr(amqpc_reply_text(r, buf, sizeof(buf)), "heartbeat"), "%s", buf);
    r.reply_type = AMQP_RESPONSE_NORMAL;
    cr_assert_str_eq(amqpc_reply_text(r, buf, sizeof(buf)), "ok");
}

Test(amqpc, every_url_of_the_list_is_tried_then_it_gives_up) {
    /* Port 1 on loopback refuses at once. */
    unsigned next = 1;
    struct amqpc_params p = {
        .urls = "amqp://guest:guest@127.0.0.1:1/, amqp://guest:guest@127.0.0.1:2/",
        .heartbeat = 5,
        .who = "test",
        .next_index = &next,
    };

    cr_assert_null(amqpc_connect(&p));
    cr_assert_eq(next, 1, "the starting point moves only on success");
}
