#include <criterion/criterion.h>
#include <string.h>

#include "../../../liveupdate/buf.h"

Test(buf, frame_is_the_json_with_a_text_frame_header) {
    json_t *data = json_pack("{s:i}", "n", 1);
    struct live_msg *m = live_msg_new(0, "/messages/", "id-1", "2026-01-01T00:00:00Z", data, 16);
    const unsigned char *f;
    const char *want = "{\"id\":\"id-1\",\"channel\":\"/messages/\","
                       "\"received_at\":\"2026-01-01T00:00:00Z\",\"data\":{\"n\":1}}";

    cr_assert_not_null(m);
    cr_assert_eq(m->len, strlen(want));
    cr_assert_eq(memcmp(live_msg_payload(m), want, m->len), 0);
    f = live_msg_frame(m);
    cr_assert_eq(m->hl, 2);
    cr_assert_eq(f[0], 0x81);
    cr_assert_eq(f[1], m->len);
    cr_assert_eq(live_msg_frame_len(m), m->len + 2);
    cr_assert_str_eq(m->id, "id-1");
    live_msg_unref(m);
    json_decref(data);
}

Test(buf, long_frames_use_16_and_64_bit_lengths) {
    size_t sizes[] = {200, 70000};
    for (int i = 0; i < 2; i++) {
        char *big = malloc(sizes[i] + 1);
        memset(big, 'x', sizes[i]);
        big[sizes[i]] = '\0';
        json_t *data = json_string(big);
        struct live_msg *m = live_msg_new(0, "/c/", "id", "t", data, 16);
        const unsigned char *f = live_msg_frame(m);
        uint64_t n = 0;
        cr_assert_not_null(m);
        if (i == 0) {
            cr_assert_eq(m->hl, 4);
            cr_assert_eq(f[1], 126);
            n = ((uint64_t)f[2] << 8) | f[3];
        } else {
            cr_assert_eq(m->hl, 10);
            cr_assert_eq(f[1], 127);
            for (int k = 0; k < 8; k++)
                n = (n << 8) | f[2 + k];
        }
        cr_assert_eq(n, m->len);
        live_msg_unref(m);
        json_decref(data);
        free(big);
    }
}

Test(buf, null_data_and_missing_id) {
    struct live_msg *m = live_msg_new(2, "/c/", NULL, "t", NULL, 16);
    cr_assert_not_null(m);
    cr_assert_eq(m->channel, 2);
    cr_assert(strstr((char *)live_msg_payload(m), "\"data\":null") != NULL);
    cr_assert(strstr((char *)live_msg_payload(m), "\"id\":\"\"") != NULL);
    live_msg_unref(m);
}

Test(buf, references_and_inbox_order) {
    struct live_inbox q;
    struct live_event *ev, *all;
    struct live_msg *m = live_msg_new(0, "/c/", "a", "t", NULL, 16);

    live_msg_ref(m);
    cr_assert_eq(atomic_load(&m->refs), 2);
    live_msg_unref(m);
    live_inbox_init(&q);
    cr_assert_not(live_inbox_nonempty(&q));
    for (int i = 0; i < 3; i++) {
        ev = calloc(1, sizeof(*ev));
        ev->kind = LIVE_EV_MESSAGE;
        ev->msg = live_msg_ref(m);
        ev->page = i;
        live_inbox_push(&q, ev);
    }
    cr_assert_eq(q.depth, 3);
    cr_assert(live_inbox_nonempty(&q));
    all = live_inbox_take_all(&q);
    cr_assert_eq(q.depth, 0);
    cr_assert_not(live_inbox_nonempty(&q));
    for (int i = 0; i < 3; i++) {
        cr_assert_not_null(all);
        cr_assert_eq(all->page, i);
        ev = all->next;
        live_event_free(all);
        all = ev;
    }
    cr_assert_null(all);
    cr_assert_eq(atomic_load(&m->refs), 1);
    live_msg_unref(m);
    live_inbox_fini(&q);
}

Test(buf, iso_time) {
    char b[40];
    cr_assert_str_eq(live_time_iso(1700000000123LL, b, sizeof(b)), "2023-11-14T22:13:20.123+00:00");
    cr_assert_eq(live_uuid7_ms("018bcfe5-687b-7000-8000-000000000000"), 1700000000123LL);
    cr_assert_eq(live_uuid7_ms("018bcfe5-687b-4000-8000-000000000000"), 0);
    cr_assert_eq(live_uuid7_ms("not-a-uuid"), 0);
}

Test(buf, params_give_the_concrete_path_and_ride_in_the_frame) {
    json_t *params = json_pack("{s:s,s:i}", "id", "42", "n", 7);
    json_t *data = json_pack("{s:i}", "qty", 3);
    struct live_msg *m =
        live_msg_new_params(1, "/orders/{id}/lines/{n}", "m1", "t", params, data, 16);
    const char *want = "{\"id\":\"m1\",\"channel\":\"/orders/{id}/lines/{n}\","
                       "\"path\":\"/orders/42/lines/7\",\"params\":{\"id\":\"42\",\"n\":7},"
                       "\"received_at\":\"t\",\"data\":{\"qty\":3}}";
    char out[64];

    cr_assert_not_null(m);
    cr_assert_str_eq(m->path, "/orders/42/lines/7");
    cr_assert_eq(m->len, strlen(want));
    cr_assert_eq(memcmp(live_msg_payload(m), want, m->len), 0);
    live_msg_unref(m);
    cr_assert_eq(live_path_expand("/a/{missing}", params, out, sizeof(out)), -1);
    cr_assert_eq(live_path_expand("/orders/{id}", params, out, 8), -1);
    json_decref(params);
    params = json_object();
    m = live_msg_new_params(0, "/plain/", "m2", "t", params, data, 16);
    cr_assert_null(m->path);
    live_msg_unref(m);
    json_decref(params);
    json_decref(data);
}
