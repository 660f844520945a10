/* The command line the three programs share: options with and without an
 * argument, bare words, --help and --version, refusals, the generated
 * usage, and the signal thread that takes TERM and HUP synchronously. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum { OPT_CONFIG, OPT_FLAG };

static const struct cli_opt opts[] = {
    {"--config", "FILE", "the file", OPT_CONFIG},
    {"--flag", NULL, "a flag", OPT_FLAG},
    {NULL, NULL, NULL, 0},
};

static const struct cli line = {.prog = "prog", .summary = "Does things.", .opts = opts};
static const struct cli line_words = {
    .prog = "prog", .summary = "Does things.", .opts = opts, .words = "[NAME]..."};

Test(cli, options_with_and_without_arguments_in_order) {
    char *argv[] = {"prog", "--config", "a.yaml", "--flag", NULL};
    const char *val;
    int i = 1;

    cr_assert_eq(cli_next(&line, 4, argv, &i, &val), OPT_CONFIG);
    cr_assert_str_eq(val, "a.yaml");
    cr_assert_eq(cli_next(&line, 4, argv, &i, &val), OPT_FLAG);
    cr_assert_null(val);
    cr_assert_eq(cli_next(&line, 4, argv, &i, &val), CLI_END);
}

Test(cli, an_option_without_its_argument_or_an_unknown_one_is_refused) {
    char *missing[] = {"prog", "--config", NULL};
    char *unknown[] = {"prog", "--nope", NULL};
    char *word[] = {"prog", "name", NULL};
    const char *val;
    int i = 1;

    cr_assert_eq(cli_next(&line, 2, missing, &i, &val), CLI_ERROR);
    i = 1;
    cr_assert_eq(cli_next(&line, 2, unknown, &i, &val), CLI_ERROR);
    i = 1;
    cr_assert_eq(cli_next(&line, 2, word, &i, &val), CLI_ERROR,
                 "bare words are refused unless "
                 "the program takes them");
    i = 1;
    cr_assert_eq(cli_next(&line_words, 2, word, &i, &val), CLI_WORD);
    cr_assert_str_eq(val, "name");
}

Test(cli, help_and_version_end_with_status_zero) {
    char *help[] = {"prog", "-h", NULL};
    char *version[] = {"prog", "--version", NULL};
    const char *val;
    int i = 1;

    cr_assert_eq(cli_next(&line, 2, help, &i, &val), CLI_EXIT0);
    i = 1;
    cr_assert_eq(cli_next(&line, 2, version, &i, &val), CLI_EXIT0);
}

Test(cli, usage_lists_every_option_and_wraps_the_synopsis) {
    static const struct cli_opt many[] = {
        {"--first-long-option", "FILE", "one", 0},
        {"--second-long-option", "FILE", "two", 1},
        {"--third-long-option", "FILE", "three", 2},
        {"--fourth", NULL, "four", 3},
        {NULL, NULL, NULL, 0},
    };
    const struct cli c = {.prog = "prog", .summary = "Sum.", .opts = many, .epilog = "Env.\n"};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    cr_assert_not_null(f);
    cli_usage(&c, f);
    fclose(f);
    cr_assert(strstr(text, "usage: prog [--first-long-option FILE]"), "%s", text);
    cr_assert(strstr(text, "\n     ") != NULL, "the synopsis wraps under the name: %s", text);
    for (const char *p = text, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        cr_assert_not_null(nl);
        if (strncmp(p, "usage:", 6) == 0 || p[0] == ' ')
            cr_assert_leq(nl - p, 79, "line too long: %.*s", (int)(nl - p), p);
    }
    cr_assert(strstr(text, "  --fourth") && strstr(text, "  --help") && strstr(text, "Env.\n"),
              "%s", text);
    free(text);
}

static atomic_int hups, stops;

static void on_hup(void *arg) {
    (void)arg;
    atomic_fetch_add(&hups, 1);
}

static void on_stop(void *arg) {
    (void)arg;
    atomic_fetch_add(&stops, 1);
}

/* Waits up to 10 s for *v to reach want. */
static bool wait_for(atomic_int *v, int want) {
    struct timespec step = {0, 10 * 1000000L};

    for (int i = 0; i < 1000 && atomic_load(v) < want; i++)
        nanosleep(&step, NULL);
    return atomic_load(v) >= want;
}

Test(cli, the_signal_thread_reloads_on_hup_and_stops_on_term, .timeout = 30) {
    struct cli_sigthread t = {0};
    sigset_t set;

    atomic_store(&hups, 0);
    atomic_store(&stops, 0);
    cli_block_signals(&set, 0);
    cr_assert_eq(cli_signal_thread(&t, &set, on_hup, on_stop, NULL), 0);
    kill(getpid(), SIGHUP);
    cr_assert(wait_for(&hups, 1), "HUP reached the reload callback");
    cr_assert_eq(atomic_load(&stops), 0);
    kill(getpid(), SIGTERM);
    cr_assert(wait_for(&stops, 1), "TERM reached the stop callback");
    cli_signal_thread_join(&t);
    cr_assert_eq(atomic_load(&hups), 1);
}

Test(cli, joining_a_waiting_signal_thread_calls_nothing, .timeout = 30) {
    struct cli_sigthread t = {0};
    sigset_t set;

    atomic_store(&stops, 0);
    cli_block_signals(&set, 0);
    cr_assert_eq(cli_signal_thread(&t, &set, on_hup, on_stop, NULL), 0);
    cli_signal_thread_join(&t);
    cr_assert_eq(atomic_load(&stops), 0, "the program ended another way: no stop callback");
}
