#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../../liveupdate/window.h"

static struct live_msg *msg(const char *id) {
    json_t *data = json_pack("{s:s}", "id", id);
    struct live_msg *m = live_msg_new(0, "/c/", id, "t", data, 16);

    json_decref(data);
    cr_assert_not_null(m);
    return m;
}

/* Pushes messages "m0" .. "m<n-1>". */
static void push_numbered(struct live_window *w, int n) {
    char id[32];

    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        live_window_push(w, msg(id));
    }
}

Test(window, numbers_messages_and_finds_them_by_id) {
    struct live_window w;

    cr_assert_eq(live_window_init(&w, 16, 1 << 20), 0);
    push_numbered(&w, 10);
    cr_assert_eq(live_window_count(&w), 10);
    cr_assert_eq(w.start, 0);
    cr_assert_eq(w.end, 10);
    cr_assert_str_eq(live_window_at(&w, 3)->id, "m3");
    cr_assert_eq(live_window_find(&w, "m7")->lseq, 7);
    cr_assert_null(live_window_find(&w, "m10"));
    cr_assert_null(live_window_find(&w, ""));
    cr_assert_null(live_window_at(&w, 10));
    live_window_fini(&w);
}

Test(window, evicts_the_oldest_beyond_its_count) {
    struct live_window w;

    cr_assert_eq(live_window_init(&w, 16, 1 << 20), 0);
    push_numbered(&w, 100);
    cr_assert_eq(live_window_count(&w), 16);
    cr_assert_eq(w.start, 84);
    cr_assert_null(live_window_find(&w, "m83"));
    cr_assert_null(live_window_at(&w, 83));
    cr_assert_str_eq(live_window_find(&w, "m84")->id, "m84");
    cr_assert_str_eq(live_window_at(&w, 99)->id, "m99");
    live_window_fini(&w);
}

Test(window, evicts_the_oldest_beyond_its_bytes) {
    struct live_window w;
    struct live_msg *m = msg("a");
    size_t one = m->len;
    char id[32];

    live_msg_unref(m);
    cr_assert_eq(live_window_init(&w, 64, one * 3), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "%c", 'a' + i);
        live_window_push(&w, msg(id));
    }
    cr_assert_eq(live_window_count(&w), 3);
    cr_assert_leq(w.bytes, one * 3);
    cr_assert_null(live_window_find(&w, "b"));
    cr_assert_not_null(live_window_find(&w, "c"));
    live_window_fini(&w);
}

Test(window, dropping_all_keeps_counting_so_old_cursors_are_out) {
    struct live_window w;

    cr_assert_eq(live_window_init(&w, 16, 1 << 20), 0);
    live_window_push(&w, msg("x"));
    live_window_push(&w, msg("y"));
    live_window_drop_before(&w, w.end);
    cr_assert_eq(live_window_count(&w), 0);
    cr_assert_eq(w.start, 2);
    cr_assert_null(live_window_find(&w, "x"));
    live_window_push(&w, msg("z"));
    cr_assert_eq(live_window_find(&w, "z")->lseq, 2);
    cr_assert_null(live_window_at(&w, 1));
    live_window_fini(&w);
}

Test(window, drop_before_keeps_the_rest_and_their_numbers) {
    struct live_window w;

    cr_assert_eq(live_window_init(&w, 16, 1 << 20), 0);
    push_numbered(&w, 6);
    live_window_drop_before(&w, 4);
    cr_assert_eq(w.start, 4);
    cr_assert_eq(live_window_count(&w), 2);
    cr_assert_null(live_window_find(&w, "m3"));
    cr_assert_eq(live_window_find(&w, "m4")->lseq, 4);
    live_window_drop_before(&w, 2); /* already gone: nothing changes */
    cr_assert_eq(w.start, 4);
    live_window_drop_before(&w, 99); /* past the end: empty, still counting */
    cr_assert_eq(live_window_count(&w), 0);
    cr_assert_eq(w.start, 6);
    live_window_push(&w, msg("m6"));
    cr_assert_eq(live_window_find(&w, "m6")->lseq, 6);
    live_window_fini(&w);
}

Test(window, a_repeated_id_is_found_where_it_was_last_seen) {
    struct live_window w;

    cr_assert_eq(live_window_init(&w, 16, 1 << 20), 0);
    live_window_push(&w, msg("dup"));
    live_window_push(&w, msg("other"));
    live_window_push(&w, msg("dup"));
    cr_assert_eq(live_window_find(&w, "dup")->lseq, 2);
    live_window_fini(&w);
}
