/* The endpoints.yaml loader: the repository's file, defaults, every key,
 * environment overrides, value parsers, and golden files of bad configs with
 * their exact messages (configs/bad_X.yaml -> configs/bad_X.err).
 *
 * Set FPESA_REGEN_GOLDEN=1 to rewrite the .err files from the loader's
 * output (then read the diff before committing it). */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIGS FPESA_SOURCE_DIR "/tests/unit/common/configs"

static const char *const env_vars[] = {"FPESA_AMQP_URL",    "FPESA_DATABASE_URL",
                                       "FPESA_HTTP_LISTEN", "FPESA_LIVE_LISTEN",
                                       "FPESA_PLUGIN_DIR",  "FPESA_HANDLER_LISTEN"};

/* The test runner exports the stack's URLs; the loader must see a clean slate. */
static void clean_env(void) {
    size_t i;

    for (i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
}

TestSuite(config, .init = clean_env);

/* Loads text written to a file named name in a fresh folder; the messages
 * land in *errs (new; free it). */
static struct cfg *load_text(const char *name, const char *text, char **errs) {
    char dir[] = "/tmp/fpesa-test-config-XXXXXX";
    char path[512];
    size_t len = 0;
    struct cfg *cfg;
    FILE *f, *out;

    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(chdir(dir), 0);
    f = fopen(name, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    out = open_memstream(errs, &len);
    cr_assert_not_null(out);
    cfg = cfg_load(name, out);
    fclose(out);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
    rmdir(dir);
    return cfg;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

Test(config, repository_file_loads_with_its_values) {
    struct cfg *cfg = cfg_load(FPESA_SOURCE_DIR "/endpoints.yaml", stderr);
    const struct cfg_endpoint *ep;

    cr_assert_not_null(cfg);
    cr_assert_str_eq(cfg->bus.url, "amqp://guest:guest@127.0.0.1:5672");
    cr_assert_str_eq(cfg->http.host, "127.0.0.1");
    cr_assert_eq(cfg->http.port, 8081);
    cr_assert_eq(cfg->http.max_body, 64 * 1024);
    cr_assert_eq(cfg->http.n_cors_origins, 4);
    cr_assert_str_eq(cfg->http.cors_origins[0], "http://127.0.0.1:8888");
    cr_assert_eq(cfg->live.port, 8082);
    cr_assert_eq(cfg->live.client_queue, 1024);
    cr_assert_str_eq(cfg->database.url, "postgresql://fpesa@127.0.0.1:5432/fpesa");
    cr_assert_eq(cfg->n_endpoints, 4);

    ep = cfg_endpoint_find(cfg, "POST", "/messages/");
    cr_assert_not_null(ep);
    cr_assert_eq(ep->mode, CFG_MODE_PUBLISH);
    cr_assert_str_eq(ep->exchange, "/messages/:POST");
    cr_assert(ep->live);
    cr_assert_not_null(ep->body);
    cr_assert_not_null(ep->body_schema);
    cr_assert_null(ep->args);
    cr_assert_null(ep->args_schema);
    cr_assert_eq(ep->status, 202);
    cr_assert_eq(ep->pos.line, 24);
    cr_assert_eq(ep->pos.col, 5);

    ep = cfg_endpoint_find(cfg, "GET", "/messages/");
    cr_assert_not_null(ep);
    cr_assert_eq(ep->mode, CFG_MODE_RPC);
    cr_assert_eq(ep->timeout_ms, 5000);
    cr_assert_not_null(ep->args_schema);
    cr_assert_str_eq(
        json_string_value(json_object_get(
            json_object_get(json_object_get(ep->args, "properties"), "limit"), "pattern")),
        "^[0-9]+$");
    cr_assert(json_is_false(json_object_get(ep->args, "additionalProperties")));

    ep = cfg_endpoint_find(cfg, "POST", "/echo/{word}");
    cr_assert_not_null(ep);
    cr_assert_eq(ep->timeout_ms, 2000);
    cr_assert_str_eq(ep->exchange, "/echo/{word}:POST");
    cr_assert_null(cfg_endpoint_find(cfg, "GET", "/echo/{word}"));
    cr_assert_null(cfg_endpoint_find(cfg, "POST", "/echo/{other}"));

    ep = cfg_endpoint_find(cfg, "GET", "/messages/{id}");
    cr_assert_not_null(ep);
    cr_assert_eq(ep->mode, CFG_MODE_RPC);

    cr_assert_eq(cfg->n_handlers, 5);
    cr_assert_str_eq(cfg->handlers[4].queue, "fpesa.idempotency");
    cr_assert_str_eq(cfg->idempotency.exchange, "fpesa.idempotency");
    cr_assert_eq(cfg->idempotency.timeout_ms, 2000);
    cr_assert_str_eq(cfg->handlers[0].name, "messages_post");
    cr_assert_str_eq(cfg->handlers[0].queue, "/messages/:POST");
    cr_assert_eq(cfg->handlers[0].batch, 500);
    cr_assert_eq(cfg->handlers[0].prefetch, 1000);
    cr_assert_eq(cfg->handlers[1].instances, 2);
    cr_assert_eq(cfg->handlers[1].prefetch, 256);
    cr_assert_str_eq(cfg->handlers[2].queue, "/messages/{id}:GET");
    cr_assert_str_eq(cfg->handlers[3].queue, "/echo/{word}:POST");
    cfg_free(cfg);
}

Test(config, defaults) {
    char *errs = NULL;
    struct cfg *cfg = load_text("min.yaml",
                                "endpoints:\n"
                                "  - {path: /x, method: post, mode: publish}\n"
                                "  - {path: /y, method: GET, mode: rpc}\n"
                                "handlers:\n"
                                "  - {name: x, plugin: x.so, queue: /x:POST}\n",
                                &errs);
    const struct cfg_endpoint *ep;

    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_str_eq(cfg->file, "min.yaml");
    cr_assert_str_eq(cfg->bus.url, "amqp://guest:guest@127.0.0.1:5672");
    cr_assert_eq(cfg->bus.heartbeat, 5);
    cr_assert_eq(cfg->bus.confirm_timeout_ms, 5000);
    cr_assert_str_eq(cfg->http.host, "127.0.0.1");
    cr_assert_eq(cfg->http.port, 8081);
    cr_assert_eq(cfg->http.max_body, 65536);
    cr_assert_eq(cfg->http.threads, (int)sysconf(_SC_NPROCESSORS_ONLN));
    cr_assert_eq(cfg->http.max_connections, 10000);
    cr_assert_eq(cfg->http.n_cors_origins, 0);
    cr_assert_str_eq(cfg->live.host, "127.0.0.1");
    cr_assert_eq(cfg->live.port, 8082);
    cr_assert_eq(cfg->live.client_queue, 1024);
    cr_assert_eq(cfg->live.max_frame, 4096);
    cr_assert_eq(cfg->live.ping_interval, 20);
    cr_assert_eq(cfg->live.resume_limit, 1000);
    cr_assert_eq(cfg->live.source, CFG_LIVE_QUEUE);
    cr_assert_eq(cfg->live.stream_max_bytes, 256u * 1024 * 1024);
    cr_assert_eq(cfg->live.stream_max_age, 3600);
    cr_assert_str_eq(cfg->database.url, "postgresql://fpesa@127.0.0.1:5432/fpesa");
    cr_assert_not_null(cfg->plugin_dir);
    /* Beside the folder of the running program: build/tests/unit/common/x -> .../unit/plugins,
     * and since there is no such folder, the installed layout .../unit/lib/fpesa/plugins. */
    cr_assert(strstr(cfg->plugin_dir, "/tests/unit/lib/fpesa/plugins") != NULL, "%s",
              cfg->plugin_dir);

    ep = &cfg->endpoints[0];
    cr_assert_str_eq(ep->method, "POST", "methods are stored in upper case");
    cr_assert_str_eq(ep->exchange, "/x:POST");
    cr_assert_eq(ep->mode, CFG_MODE_PUBLISH);
    cr_assert_null(ep->summary);
    cr_assert_null(ep->body);
    cr_assert_null(ep->args);
    cr_assert_not(ep->live);
    cr_assert_eq(ep->status, 202);
    cr_assert_eq(ep->validation_status, 400);
    cr_assert_eq(ep->max_body, 65536);
    cr_assert_eq(ep->n_content_types, 1);
    cr_assert_str_eq(ep->content_types[0], "application/json");
    cr_assert_eq(cfg->endpoints[1].timeout_ms, 5000);

    cr_assert_eq(cfg->handlers[0].prefetch, 256);
    cr_assert_eq(cfg->handlers[0].batch, 100);
    cr_assert_eq(cfg->handlers[0].batch_wait_ms, 5);
    cr_assert_eq(cfg->handlers[0].instances, 1);
    cr_assert_null(cfg->handlers[0].config);
    cr_assert_eq(cfg->handlers[0].pos.line, 5);
    cr_assert_eq(cfg->handlers[0].pos.col, 5);
    {
        char want[4096];
        snprintf(want, sizeof(want), "%s/x.so", cfg->plugin_dir);
        cr_assert_str_eq(cfg->handlers[0].plugin_path, want);
    }
    cfg_free(cfg);
    free(errs);
}

/* Every key set to a value that is not its default. */
Test(config, every_key) {
    struct cfg *cfg;
    const struct cfg_endpoint *ep;
    const struct cfg_handler *h;
    char *errs = NULL;
    char *text = slurp(CONFIGS "/good_full.yaml");

    cr_assert_not_null(text);
    cfg = load_text("good_full.yaml", text, &errs);
    free(text);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_str_eq(cfg->bus.url, "amqps://u:p@bus.example:5671/v");
    cr_assert_eq(cfg->bus.heartbeat, 60);
    cr_assert_str_eq(cfg->http.host, "::1");
    cr_assert_eq(cfg->http.port, 9081);
    cr_assert_eq(cfg->http.max_body, 1024 * 1024);
    cr_assert_eq(cfg->http.threads, 3);
    cr_assert_eq(cfg->http.max_connections, 500);
    cr_assert_eq(cfg->http.n_cors_origins, 2);
    cr_assert_str_eq(cfg->http.cors_origins[1], "https://b.example");
    cr_assert_str_eq(cfg->live.host, "0.0.0.0");
    cr_assert_eq(cfg->live.port, 9082);
    cr_assert_eq(cfg->live.client_queue, 64);
    cr_assert_eq(cfg->live.max_frame, 2000);
    cr_assert_eq(cfg->live.ping_interval, 120);
    cr_assert_eq(cfg->live.resume_limit, 50);
    cr_assert_eq(cfg->live.source, CFG_LIVE_STREAM);
    cr_assert_eq(cfg->live.stream_max_bytes, 64u * 1024 * 1024);
    cr_assert_eq(cfg->live.stream_max_age, 1800);
    cr_assert_str_eq(cfg->database.url, "host=/run/postgresql dbname=fpesa");
    /* A relative plugin_dir is relative to the file's folder; the file was
     * loaded by a bare name, so it stays as written. */
    cr_assert_str_eq(cfg->plugin_dir, "lib/plugins");

    ep = cfg_endpoint_find(cfg, "PUT", "/timer/{id}");
    cr_assert_not_null(ep);
    cr_assert_str_eq(ep->summary, "Sets a timer.");
    cr_assert_eq(ep->status, 201);
    cr_assert_eq(ep->validation_status, 422);
    cr_assert_eq(ep->max_body, 2048);
    cr_assert(ep->live);
    cr_assert_eq(ep->n_content_types, 2);
    cr_assert_str_eq(ep->content_types[1], "application/cloudevents+json");
    cr_assert(json_is_true(ep->body));
    cr_assert_not_null(ep->body_schema);
    ep = cfg_endpoint_find(cfg, "DELETE", "/timer/{id}");
    cr_assert_not_null(ep);
    cr_assert_eq(ep->timeout_ms, 1500);
    cr_assert_eq(ep->max_body, 1024 * 1024, "endpoints inherit http.max_body");
    ep = cfg_endpoint_find(cfg, "PATCH", "/timer/{id}/{part}");
    cr_assert_not_null(ep);
    cr_assert_eq(ep->timeout_ms, 60000);

    cr_assert_eq(cfg->n_handlers, 2);
    h = &cfg->handlers[0];
    cr_assert_str_eq(h->plugin_path, "lib/plugins/timer.so");
    cr_assert_eq(h->prefetch, 10);
    cr_assert_eq(h->batch, 5);
    cr_assert_eq(h->batch_wait_ms, 250);
    cr_assert_eq(h->instances, 4);
    h = &cfg->handlers[1];
    cr_assert_str_eq(h->plugin_path, "/opt/fpesa/other.so");
    cfg_free(cfg);
    free(errs);
}

/* A plugin_dir written relative is taken from the configuration's folder. */
Test(config, plugin_dir_relative_to_file) {
    struct cfg *cfg = cfg_load(CONFIGS "/good_full.yaml", stderr);

    cr_assert_not_null(cfg);
    cr_assert_str_eq(cfg->plugin_dir, CONFIGS "/lib/plugins");
    cr_assert_str_eq(cfg->handlers[0].plugin_path, CONFIGS "/lib/plugins/timer.so");
    cfg_free(cfg);
}

Test(config, queue_type_values) {
    const char *base = "endpoints:\n  - {path: /m/, method: POST, mode: publish}\n";
    char text[512], *errs = NULL;
    struct cfg *cfg;

    cfg = load_text("q.yaml", base, &errs);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_eq(cfg->bus.queue_type, CFG_QUEUE_CLASSIC);
    cr_assert_null(cfg_queue_type_arg(cfg));
    cfg_free(cfg);
    free(errs);

    snprintf(text, sizeof(text), "bus: {queue_type: quorum}\n%s", base);
    cfg = load_text("q.yaml", text, &errs);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_eq(cfg->bus.queue_type, CFG_QUEUE_QUORUM);
    cr_assert_str_eq(cfg_queue_type_arg(cfg), "quorum");
    cfg_free(cfg);
    free(errs);

    /* The environment wins over the file, both ways. */
    setenv("FPESA_QUEUE_TYPE", "classic", 1);
    cfg = load_text("q.yaml", text, &errs);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_eq(cfg->bus.queue_type, CFG_QUEUE_CLASSIC);
    cfg_free(cfg);
    free(errs);
    setenv("FPESA_QUEUE_TYPE", "quorom", 1);
    cfg = load_text("q.yaml", base, &errs);
    cr_assert_null(cfg);
    cr_assert(strstr(errs, "FPESA_QUEUE_TYPE: expected classic or quorum"), "%s", errs);
    free(errs);
    unsetenv("FPESA_QUEUE_TYPE");

    snprintf(text, sizeof(text), "bus: {queue_type: quorom}\n%s", base);
    cfg = load_text("q.yaml", text, &errs);
    cr_assert_null(cfg);
    cr_assert(strstr(errs, "q.yaml:1:19: unknown queue_type \"quorom\" (did you mean "
                           "\"quorum\"?)"),
              "%s", errs);
    free(errs);
    cr_assert_null(cfg_queue_type_arg(NULL));
}

Test(config, compat_values) {
    const char *base = "endpoints:\n  - {path: /m/, method: POST, mode: publish}\n";
    char text[512], *errs = NULL;
    struct cfg *cfg;

    cfg = load_text("c.yaml", base, &errs);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_eq(cfg->compat, CFG_COMPAT_NONE);
    cr_assert(cfg_declare_durable(cfg));
    cr_assert_str_eq(cfg_compat_name(cfg), "none");
    cfg_free(cfg);
    free(errs);

    snprintf(text, sizeof(text), "compat: fpesa-python\n%s", base);
    cfg = load_text("c.yaml", text, &errs);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_eq(cfg->compat, CFG_COMPAT_FPESA_PYTHON);
    cr_assert_not(cfg_declare_durable(cfg));
    cr_assert_str_eq(cfg_compat_name(cfg), "fpesa-python");
    cfg_free(cfg);
    free(errs);

    snprintf(text, sizeof(text), "compat: fpesa-pyhton\n%s", base);
    cfg = load_text("c.yaml", text, &errs);
    cr_assert_null(cfg);
    cr_assert(strstr(errs, "c.yaml:1:9: unknown compat \"fpesa-pyhton\" (did you mean "
                           "\"fpesa-python\"?)"),
              "%s", errs);
    free(errs);
    cr_assert(cfg_declare_durable(NULL));
}

Test(config, handler_config_block_types) {
    char *errs = NULL;
    struct cfg *cfg = load_text("h.yaml",
                                "handlers:\n"
                                "  - name: h\n"
                                "    plugin: h.so\n"
                                "    queue: q\n"
                                "    config:\n"
                                "      s: \"123\"\n"
                                "      i: 123\n"
                                "      neg: -7\n"
                                "      f: 1.5\n"
                                "      e: 1e3\n"
                                "      t: true\n"
                                "      F: False\n"
                                "      n: null\n"
                                "      tilde: ~\n"
                                "      empty:\n"
                                "      hex: 0x1f\n"
                                "      oct: 0o17\n"
                                "      yes_is_a_string: yes\n"
                                "      quoted_true: 'true'\n"
                                "      big: 123456789012345678901234567890\n"
                                "      list: [a, 1, {k: v}]\n"
                                "      text: |\n"
                                "        two\n"
                                "        lines\n",
                                &errs);
    json_t *c;

    cr_assert_not_null(cfg, "%s", errs);
    c = cfg->handlers[0].config;
    cr_assert(json_is_object(c));
    cr_assert_str_eq(json_string_value(json_object_get(c, "s")), "123");
    cr_assert_eq(json_integer_value(json_object_get(c, "i")), 123);
    cr_assert_eq(json_integer_value(json_object_get(c, "neg")), -7);
    cr_assert(json_is_real(json_object_get(c, "f")));
    cr_assert_float_eq(json_real_value(json_object_get(c, "f")), 1.5, 1e-12);
    cr_assert_float_eq(json_real_value(json_object_get(c, "e")), 1000.0, 1e-12);
    cr_assert(json_is_true(json_object_get(c, "t")));
    cr_assert(json_is_false(json_object_get(c, "F")));
    cr_assert(json_is_null(json_object_get(c, "n")));
    cr_assert(json_is_null(json_object_get(c, "tilde")));
    cr_assert(json_is_null(json_object_get(c, "empty")));
    cr_assert_eq(json_integer_value(json_object_get(c, "hex")), 31);
    cr_assert_eq(json_integer_value(json_object_get(c, "oct")), 15);
    cr_assert_str_eq(json_string_value(json_object_get(c, "yes_is_a_string")), "yes");
    cr_assert_str_eq(json_string_value(json_object_get(c, "quoted_true")), "true");
    cr_assert(json_is_real(json_object_get(c, "big")));
    cr_assert_eq(json_array_size(json_object_get(c, "list")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(c, "text")), "two\nlines\n");
    cfg_free(cfg);
    free(errs);
}

Test(config, infinity_has_no_json_form) {
    char *errs = NULL;
    struct cfg *cfg = load_text("h.yaml",
                                "handlers:\n"
                                "  - name: h\n"
                                "    plugin: h.so\n"
                                "    queue: q\n"
                                "    config: {limit: .inf}\n",
                                &errs);

    cr_assert_null(cfg);
    cr_assert_str_eq(errs, "h.yaml:5:21: in \"config\": .inf has no JSON form\n");
    free(errs);
}

Test(config, environment_overrides) {
    char *errs = NULL;
    struct cfg *cfg;

    setenv("FPESA_AMQP_URL", "amqp://a:b@10.0.0.1:5673/x", 1);
    setenv("FPESA_DATABASE_URL", "postgresql://db.example/fpesa", 1);
    setenv("FPESA_DATABASE_READ_URL", "postgresql://replica.example/fpesa", 1);
    setenv("FPESA_HTTP_LISTEN", "0.0.0.0:18081", 1);
    setenv("FPESA_LIVE_LISTEN", "[::1]:18082", 1);
    setenv("FPESA_PLUGIN_DIR", "/srv/plugins", 1);
    cfg = load_text("e.yaml",
                    "bus: {url: amqp://guest:guest@127.0.0.1:5672/}\n"
                    "http: {listen: 127.0.0.1:8081}\n"
                    "plugin_dir: here\n"
                    "handlers: [{name: h, plugin: h.so, queue: q}]\n",
                    &errs);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_str_eq(cfg->bus.url, "amqp://a:b@10.0.0.1:5673/x");
    cr_assert_str_eq(cfg->database.url, "postgresql://db.example/fpesa");
    cr_assert_str_eq(cfg->database.read_url, "postgresql://replica.example/fpesa");
    cr_assert_str_eq(cfg->http.host, "0.0.0.0");
    cr_assert_eq(cfg->http.port, 18081);
    cr_assert_str_eq(cfg->live.host, "::1");
    cr_assert_eq(cfg->live.port, 18082);
    cr_assert_str_eq(cfg->plugin_dir, "/srv/plugins");
    cr_assert_str_eq(cfg->handlers[0].plugin_path, "/srv/plugins/h.so");
    cfg_free(cfg);
    free(errs);
}

Test(config, handler_host_listen) {
    char *errs = NULL;
    struct cfg *cfg;

    /* Off unless given: several hosts may share a machine. */
    cfg = load_text("e.yaml", "bus: {url: amqp://guest:guest@127.0.0.1:5672/}\n", &errs);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_eq(cfg->handler_host.port, 0);
    cfg_free(cfg);
    free(errs);
    errs = NULL;
    cfg = load_text("e.yaml", "handler_host: {listen: 127.0.0.2:8084}\n", &errs);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_str_eq(cfg->handler_host.host, "127.0.0.2");
    cr_assert_eq(cfg->handler_host.port, 8084);
    cfg_free(cfg);
    free(errs);
    errs = NULL;
    setenv("FPESA_HANDLER_LISTEN", "18084", 1);
    cfg = load_text("e.yaml", "handler_host: {listen: 127.0.0.2:8084}\n", &errs);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_str_eq(cfg->handler_host.host, "127.0.0.2");
    cr_assert_eq(cfg->handler_host.port, 18084);
    cfg_free(cfg);
    free(errs);
    errs = NULL;
    setenv("FPESA_HANDLER_LISTEN", "x:y", 1);
    cfg = load_text("e.yaml", "handler_host: {lisen: 1}\n", &errs);
    cr_assert_null(cfg);
    cr_assert_str_eq(errs, "e.yaml:1:16: unknown key \"lisen\" (did you mean \"listen\"?)\n"
                           "FPESA_HANDLER_LISTEN: bad value \"x:y\": expected host:port with a "
                           "port number\n");
    free(errs);
}

Test(config, environment_override_with_a_port_only) {
    char *errs = NULL;
    struct cfg *cfg;

    setenv("FPESA_HTTP_LISTEN", "18081", 1);
    cfg = load_text("e.yaml", "http: {listen: 10.1.2.3:8081}\n", &errs);
    cr_assert_not_null(cfg, "%s", errs);
    cr_assert_str_eq(cfg->http.host, "10.1.2.3");
    cr_assert_eq(cfg->http.port, 18081);
    cfg_free(cfg);
    free(errs);
}

Test(config, bad_environment_values_are_reported_with_the_file_errors) {
    char *errs = NULL;
    struct cfg *cfg;

    setenv("FPESA_AMQP_URL", "redis://x", 1);
    setenv("FPESA_HTTP_LISTEN", "localhost:http", 1);
    setenv("FPESA_LIVE_LISTEN", "1.2.3.4:70000", 1);
    cfg = load_text("e.yaml", "http: {threads: 0}\n", &errs);
    cr_assert_null(cfg);
    cr_assert_str_eq(errs, "e.yaml:1:17: \"threads\" must be from 1 to 1024, got 0\n"
                           "FPESA_AMQP_URL: expected an amqp:// or amqps:// URL\n"
                           "FPESA_HTTP_LISTEN: bad value \"localhost:http\": expected host:port "
                           "with a port number\n"
                           "FPESA_LIVE_LISTEN: bad value \"1.2.3.4:70000\": port must be a "
                           "number from 1 to 65535\n");
    free(errs);
}

Test(config, missing_file) {
    char *errs = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&errs, &len);

    cr_assert_null(cfg_load("/nonexistent/endpoints.yaml", out));
    fclose(out);
    cr_assert_str_eq(errs, "/nonexistent/endpoints.yaml: cannot open: No such file or directory\n");
    free(errs);
    cr_assert_null(cfg_load("/nonexistent/endpoints.yaml", NULL), "NULL errs stays silent");
}

Test(config, free_accepts_null) {
    cfg_free(NULL);
}

Test(config, check_main_exit_status) {
    cr_assert_eq(cfg_check_main(FPESA_SOURCE_DIR "/endpoints.yaml"), 0);
    cr_assert_eq(cfg_check_main(CONFIGS "/bad_syntax.yaml"), 1);
    cr_assert_eq(cfg_check_main("/nonexistent.yaml"), 1);
}

Test(config, known_keys) {
    const char *const *k = cfg_known_keys();
    const char *const want[] = {
        "bus.url",
        "bus.heartbeat",
        "bus.confirm_timeout",
        "bus.queue_type",
        "http.listen",
        "http.max_body",
        "http.threads",
        "http.max_connections",
        "http.max_connections_per_client",
        "http.header_timeout",
        "http.body_timeout",
        "http.idle_timeout",
        "http.max_headers",
        "http.max_query_params",
        "http.max_uri",
        "http.cors.origins",
        "http.cors.headers",
        "http.public_prefix",
        "liveupdate.listen",
        "liveupdate.client_queue",
        "liveupdate.max_frame",
        "liveupdate.ping_interval",
        "liveupdate.resume_limit",
        "liveupdate.source",
        "liveupdate.stream_max_bytes",
        "liveupdate.stream_max_age",
        "database.url",
        "database.read_url",
        "plugin_dir",
        "auth.realm",
        "auth.api_keys[].name",
        "auth.api_keys[].sha256",
        "auth.api_keys[].scopes",
        "auth.api_keys[].roles",
        "auth.api_keys_file",
        "auth.jwt.issuer",
        "auth.jwt.audience",
        "auth.jwt.leeway",
        "auth.jwt.jwks_file",
        "auth.jwt.keys[].kid",
        "auth.jwt.keys[].alg",
        "auth.jwt.keys[].secret",
        "auth.jwt.keys[].secret_file",
        "auth.jwt.keys[].pem_file",
        "auth.origins",
        "compat",
        "endpoints[].path",
        "endpoints[].method",
        "endpoints[].mode",
        "endpoints[].summary",
        "endpoints[].body",
        "endpoints[].args",
        "endpoints[].live",
        "endpoints[].trailing_slash",
        "endpoints[].timeout",
        "endpoints[].status",
        "endpoints[].validation_status",
        "endpoints[].max_body",
        "endpoints[].content_types",
        "endpoints[].response",
        "endpoints[].files[].field",
        "endpoints[].files[].required",
        "endpoints[].files[].types",
        "endpoints[].files[].max_size",
        "endpoints[].auth.anonymous",
        "endpoints[].auth.scopes",
        "endpoints[].auth.roles",
        "endpoints[].auth.methods",
        "endpoints[].live_auth.anonymous",
        "endpoints[].live_auth.scopes",
        "endpoints[].live_auth.roles",
        "endpoints[].live_auth.methods",
        "endpoints[].rate_limit.requests",
        "endpoints[].rate_limit.per",
        "endpoints[].rate_limit.burst",
        "endpoints[].rate_limit.by",
        "handlers[].name",
        "handlers[].plugin",
        "handlers[].queue",
        "handlers[].prefetch",
        "handlers[].batch",
        "handlers[].batch_wait",
        "handlers[].instances",
        "handlers[].crash_limit",
        "handlers[].config",
        "handler_host.listen",
        "idempotency.exchange",
        "idempotency.timeout",
    };
    size_t i, n = sizeof(want) / sizeof(want[0]);

    for (i = 0; i < n; i++) {
        cr_assert_not_null(k[i], "list ends early, missing %s", want[i]);
        cr_assert_str_eq(k[i], want[i]);
    }
    cr_assert_null(k[n]);
    cr_assert_eq(cfg_known_keys(), k, "static storage");
}

Test(config, parse_size) {
    static const struct {
        const char *s;
        size_t want;
    } good[] = {
        {"0", 0},          {"512", 512},     {"512B", 512},        {"2KB", 2000},
        {"2k", 2000},      {"64KiB", 65536}, {"64 KiB", 65536},    {"1MiB", 1048576},
        {"1mib", 1048576}, {"3MB", 3000000}, {"1GiB", 1073741824}, {"2GB", 2000000000},
    };
    static const char *const bad[] = {
        "",
        "KiB",
        "-1",
        "+5",
        " 5",
        "5 parsecs",
        "1.5MiB",
        "0x10",
        "99999999999999999999",
        "18446744073709551615GiB",
        "5KiBs",
        "5 K i B",
    };
    size_t i, out;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        out = 7;
        cr_assert_eq(cfg_parse_size(good[i].s, &out), 0, "%s", good[i].s);
        cr_assert_eq(out, good[i].want, "%s -> %zu", good[i].s, out);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(cfg_parse_size(bad[i], &out), -1, "\"%s\" accepted", bad[i]);
    cr_assert_eq(cfg_parse_size(NULL, &out), -1);
}

Test(config, parse_duration) {
    static const struct {
        const char *s;
        long want;
    } good[] = {
        {"0", 0},        {"500ms", 500}, {"2s", 2000},  {"1.5s", 1500},
        {"1.1s", 1100},  {"0.25s", 250}, {"1m", 60000}, {"2h", 7200000},
        {"10 s", 10000}, {".5s", 500},   {"5.ms", 5},
    };
    static const char *const bad[] = {
        "",     "5",     "s",     "-1s",   "+1s", "1.5ms", "2 days",         "inf",
        "nans", "0x10s", "1e3ms", "1..2s", ".s",  "2S",    "1000000000000h", " 2s",
    };
    size_t i;
    long out;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        out = -7;
        cr_assert_eq(cfg_parse_duration(good[i].s, &out), 0, "%s", good[i].s);
        cr_assert_eq(out, good[i].want, "%s -> %ld", good[i].s, out);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(cfg_parse_duration(bad[i], &out), -1, "\"%s\" accepted", bad[i]);
    cr_assert_eq(cfg_parse_duration(NULL, &out), -1);
}

/* Runs one golden file; returns 0 when the output matches. */
static int run_golden(const char *yaml, bool regen) {
    char err_name[512], *got = NULL, *want;
    size_t len = 0, n = strlen(yaml);
    struct cfg *cfg;
    FILE *out;
    int rc = 0;

    snprintf(err_name, sizeof(err_name), "%.*s.err", (int)(n - 5), yaml);
    out = open_memstream(&got, &len);
    cr_assert_not_null(out);
    cfg = cfg_load(yaml, out);
    fclose(out);
    if (cfg) {
        cr_log_error("%s: loaded, but every bad_ file must be refused", yaml);
        cfg_free(cfg);
        rc = -1;
    }
    if (regen) {
        out = fopen(err_name, "w");
        cr_assert_not_null(out);
        fputs(got, out);
        fclose(out);
    }
    want = slurp(err_name);
    if (!want) {
        cr_log_error("%s: no %s; the loader said:\n%s", yaml, err_name, got);
        rc = -1;
    } else if (strcmp(want, got) != 0) {
        cr_log_error("%s: expected:\n%s\ngot:\n%s", yaml, want, got);
        rc = -1;
    }
    free(want);
    free(got);
    return rc;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(config, golden_bad_files) {
    const char *regen_env = getenv("FPESA_REGEN_GOLDEN");
    bool regen = regen_env && strcmp(regen_env, "1") == 0;
    char *names[256];
    size_t n = 0, i, failed = 0;
    struct dirent *de;
    DIR *d;

    /* The messages name files as given, so load them by bare name. */
    cr_assert_eq(chdir(CONFIGS), 0);
    d = opendir(".");
    cr_assert_not_null(d);
    while ((de = readdir(d)) && n < sizeof(names) / sizeof(names[0])) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "bad_", 4) == 0 && len > 5 &&
            strcmp(de->d_name + len - 5, ".yaml") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), name_cmp);
    cr_assert_geq(n, 12, "golden files went missing: %zu", n);
    for (i = 0; i < n; i++) {
        if (run_golden(names[i], regen) < 0)
            failed++;
        free(names[i]);
    }
    cr_assert_eq(failed, 0, "%zu of %zu golden files differ (see above)", failed, n);
}

/* A file too deeply nested is refused without exhausting the stack. */
Test(config, deep_nesting_is_refused) {
    char text[2048], *errs = NULL;
    size_t i, o = 0;

    o += (size_t)snprintf(text + o, sizeof(text) - o,
                          "handlers: [{name: h, plugin: p, queue: q, "
                          "config: ");
    for (i = 0; i < 300; i++)
        text[o++] = '[';
    for (i = 0; i < 300; i++)
        text[o++] = ']';
    o += (size_t)snprintf(text + o, sizeof(text) - o, "}]\n");
    cr_assert_null(load_text("deep.yaml", text, &errs));
    cr_assert(strstr(errs, "nesting deeper than 128 levels") != NULL, "%s", errs);
    free(errs);
}

Test(config, several_documents_are_refused) {
    char *errs = NULL;

    cr_assert_null(load_text("two.yaml", "bus: {heartbeat: 5}\n---\nbus: {heartbeat: 6}\n", &errs));
    cr_assert_str_eq(errs, "two.yaml:2:1: only one YAML document is allowed\n");
    free(errs);
}

Test(config, invalid_utf8_is_a_syntax_error) {
    char *errs = NULL;

    cr_assert_null(load_text("u.yaml", "bus:\n  url: amqp://\xff\xfe/\n", &errs));
    cr_assert(strncmp(errs, "u.yaml:2:", 9) == 0, "%s", errs);
    cr_assert(strstr(errs, "YAML syntax error") != NULL, "%s", errs);
    free(errs);
}

Test(config, body_kinds_limits_files_and_response) {
    char *errs = NULL;
    struct cfg *cfg = load_text("kinds.yaml",
                                "http: {max_body: 1KiB}\n"
                                "endpoints:\n"
                                "  - path: /img\n"
                                "    method: POST\n"
                                "    mode: publish\n"
                                "    max_body: 2KiB\n"
                                "    response: {ok: true, at: \"/img/{id}\"}\n"
                                "    content_types:\n"
                                "      - application/x-www-form-urlencoded\n"
                                "      - {type: multipart/form-data, max_body: 6MiB}\n"
                                "      - {type: image/png, max_body: 5MiB}\n"
                                "      - {type: text/csv, kind: binary}\n"
                                "      - {type: image/svg+xml, kind: json}\n"
                                "      - application/json\n"
                                "    files:\n"
                                "      - {field: image, required: true, types: [image/png], "
                                "max_size: 3MiB}\n"
                                "      - {field: doc}\n",
                                &errs);
    const struct cfg_endpoint *ep;

    cr_assert_not_null(cfg, "%s", errs ? errs : "");
    ep = &cfg->endpoints[0];
    cr_assert_eq(ep->n_content_types, 6);
    cr_assert_eq(ep->content_kinds[0], CFG_BODY_FORM);
    cr_assert_eq(ep->content_kinds[1], CFG_BODY_MULTIPART);
    cr_assert_eq(ep->content_kinds[2], CFG_BODY_BINARY);
    cr_assert_eq(ep->content_kinds[3], CFG_BODY_BINARY);
    cr_assert_eq(ep->content_kinds[4], CFG_BODY_JSON);
    cr_assert_eq(ep->content_kinds[5], CFG_BODY_JSON);
    cr_assert_eq(ep->content_max_body[0], 2048, "the endpoint's limit by default");
    cr_assert_eq(ep->content_max_body[1], 6u << 20);
    cr_assert_eq(ep->content_max_body[2], 5u << 20);
    cr_assert_eq(ep->content_max_body[3], 2048);
    cr_assert_eq(ep->n_files, 2);
    cr_assert_str_eq(ep->files[0].field, "image");
    cr_assert(ep->files[0].required);
    cr_assert_eq(ep->files[0].n_types, 1);
    cr_assert_eq(ep->files[0].max_size, 3u << 20);
    cr_assert_not(ep->files[1].required);
    cr_assert_eq(ep->files[1].max_size, 0);
    cr_assert_str_eq(json_string_value(json_object_get(ep->response, "at")), "/img/{id}");
    cfg_free(cfg);
    free(errs);
}
