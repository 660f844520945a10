/* The crash records: a message in a crashed batch becomes suspect, one that
 * crashed its instance alone crash_limit times in all is poison, and a
 * settled message is forgotten. The records live in shared memory, so a
 * forked child's crash is seen by the parent. */
#include <criterion/criterion.h>
#include <fpesa/handler.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../../../handlers/host/supervise.h"

static const struct fpesa_message *msgs_of(const char **ids, size_t n, struct fpesa_message *store,
                                           const struct fpesa_message **ptr) {
    for (size_t i = 0; i < n; i++) {
        memset(&store[i], 0, sizeof(store[i]));
        store[i].message_id = ids[i];
        ptr[i] = &store[i];
    }
    return store;
}

Test(supervise, clean_until_a_crash) {
    struct sup_table *t = sup_table_new(3);
    cr_assert_not_null(t);
    cr_assert_eq(sup_verdict(t, "a", NULL, NULL, 0), SUP_CLEAN);
    cr_assert_eq(sup_verdict(t, NULL, NULL, NULL, 0), SUP_CLEAN);
    sup_table_free(t);
}

Test(supervise, batch_crash_makes_suspects_and_solo_crashes_make_poison) {
    struct sup_table *t = sup_table_new(3);
    struct sup_slot *s = sup_slot_new(8);
    const char *ids[] = {"a", "b", "c"};
    struct fpesa_message m[3];
    const struct fpesa_message *p[3];
    char log[256], reason[160];
    unsigned crashes = 0;

    msgs_of(ids, 3, m, p);
    sup_slot_set(s, p, 3);
    cr_assert_eq(sup_blame(t, s, SIGSEGV, log, sizeof(log)), 3);
    cr_assert_str_eq(log, "a,b,c");
    cr_assert_eq(sup_verdict(t, "b", &crashes, NULL, 0), SUP_SUSPECT);
    cr_assert_eq(crashes, 1);

    /* b alone, twice more: three crashes, two of them alone. */
    for (int k = 0; k < 2; k++) {
        sup_slot_set(s, &p[1], 1);
        cr_assert_eq(sup_blame(t, s, SIGSEGV, log, sizeof(log)), 1);
    }
    cr_assert_eq(sup_verdict(t, "b", &crashes, reason, sizeof(reason)), SUP_POISON);
    cr_assert_eq(crashes, 3);
    cr_assert(strstr(reason, "crashed 3 times") && strstr(reason, "SIGSEGV"), "%s", reason);
    /* The others were only ever in a crashed batch: suspects, not poison. */
    cr_assert_eq(sup_verdict(t, "a", NULL, NULL, 0), SUP_SUSPECT);
    sup_forget(t, "a");
    cr_assert_eq(sup_verdict(t, "a", NULL, NULL, 0), SUP_CLEAN);
    sup_slot_free(s);
    sup_table_free(t);
}

Test(supervise, a_crash_in_a_child_is_charged_in_the_parent) {
    struct sup_table *t = sup_table_new(1);
    struct sup_slot *s = sup_slot_new(4);
    const char *ids[] = {"poison"};
    struct fpesa_message m[1];
    const struct fpesa_message *p[1];
    char log[64];
    int status;
    pid_t pid;

    msgs_of(ids, 1, m, p);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        sup_slot_set(s, p, 1);
        abort();
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status));
    cr_assert_eq(sup_blame(t, s, WTERMSIG(status), log, sizeof(log)), 1);
    cr_assert_str_eq(log, "poison");
    cr_assert_eq(sup_verdict(t, "poison", NULL, NULL, 0), SUP_POISON);
    sup_slot_free(s);
    sup_table_free(t);
}

Test(supervise, long_ids_are_kept_apart) {
    struct sup_table *t = sup_table_new(3);
    struct sup_slot *s = sup_slot_new(2);
    char a[300], b[300];
    const char *ids[1];
    struct fpesa_message m[1];
    const struct fpesa_message *p[1];
    char log[16];

    memset(a, 'k', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(b));
    b[250] = 'z'; /* same head, another tail */
    ids[0] = a;
    msgs_of(ids, 1, m, p);
    sup_slot_set(s, p, 1);
    sup_blame(t, s, SIGSEGV, log, sizeof(log));
    cr_assert_eq(sup_verdict(t, a, NULL, NULL, 0), SUP_SUSPECT);
    cr_assert_eq(sup_verdict(t, b, NULL, NULL, 0), SUP_CLEAN);
    sup_slot_free(s);
    sup_table_free(t);
}
