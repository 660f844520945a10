#include "../../../mapper/bus.h"
#include "../../../mapper/metrics.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static const char *const methods[] = {"GET", "POST"};
static const char *const paths[] = {"/health", "/echo/{w\"x}"};

static bool has_line(const char *text, const char *line) {
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    }
    return false;
}

Test(metrics, counts_and_histograms) {
    struct metrics *m = metrics_new(2, methods, paths);
    struct mbus_stats st = {.confirms = 7, .nacks = 1, .reconnects = 2};
    size_t len = 0;
    char *t;

    cr_assert_not_null(m);
    metrics_request(m, 0, 200, 0.0002);
    metrics_request(m, 0, 200, 0.003);
    metrics_request(m, 0, 503, 0.5);
    metrics_request(m, 1, 404, 20.0);
    metrics_request(m, 99, 404, 0.001); /* no route */
    metrics_confirm(m, 0.002);
    metrics_rpc(m, 0.0001);
    metrics_in_flight(m, 3);
    metrics_in_flight(m, -1);
    t = metrics_render(m, &st, true, &len);
    cr_assert_not_null(t);
    cr_assert_eq(strlen(t), len);
    cr_assert(has_line(t, "# TYPE fpesa_http_requests_total counter"));
    cr_assert(
        has_line(t, "fpesa_http_requests_total{method=\"GET\",route=\"/health\",status=\"2xx\"} 2"),
        "%s", t);
    cr_assert(has_line(
        t, "fpesa_http_requests_total{method=\"GET\",route=\"/health\",status=\"5xx\"} 1"));
    cr_assert(has_line(
        t, "fpesa_http_requests_total{method=\"POST\",route=\"/echo/{w\\\"x}\",status=\"4xx\"} 1"));
    cr_assert(has_line(
        t, "fpesa_http_requests_total{method=\"\",route=\"(unmatched)\",status=\"4xx\"} 1"));
    cr_assert(has_line(t, "# TYPE fpesa_http_request_duration_seconds histogram"));
    cr_assert(has_line(t, "fpesa_http_request_duration_seconds_bucket{method=\"GET\",route=\"/"
                          "health\",le=\"0.0005\"} 1"));
    cr_assert(has_line(t, "fpesa_http_request_duration_seconds_bucket{method=\"GET\",route=\"/"
                          "health\",le=\"0.005\"} 2"));
    cr_assert(has_line(t, "fpesa_http_request_duration_seconds_bucket{method=\"GET\",route=\"/"
                          "health\",le=\"+Inf\"} 3"));
    cr_assert(has_line(
        t, "fpesa_http_request_duration_seconds_count{method=\"GET\",route=\"/health\"} 3"));
    cr_assert(has_line(t, "fpesa_http_request_duration_seconds_bucket{method=\"POST\",route=\"/"
                          "echo/{w\\\"x}\",le=\"10\"} 0"));
    cr_assert(has_line(t, "fpesa_bus_confirm_seconds_bucket{le=\"0.0025\"} 1"));
    cr_assert(has_line(t, "fpesa_bus_confirm_seconds_count 1"));
    cr_assert(has_line(t, "fpesa_bus_rpc_seconds_bucket{le=\"0.0005\"} 1"));
    cr_assert(has_line(t, "fpesa_http_requests_in_flight 2"));
    cr_assert(has_line(t, "fpesa_bus_connected 1"));
    cr_assert(has_line(t, "fpesa_bus_confirms_total 7"));
    cr_assert(has_line(t, "fpesa_bus_nacks_total 1"));
    cr_assert(has_line(t, "fpesa_bus_reconnects_total 2"));
    /* Every line is a comment or "name{labels} value". */
    for (char *line = t; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "the text ends with a newline");
        if (line[0] != '#') {
            char *sp = memrchr(line, ' ', (size_t)(nl - line));
            char *end;
            cr_assert_not_null(sp);
            strtod(sp + 1, &end);
            cr_assert_eq(end, nl, "value of: %.*s", (int)(nl - line), line);
        }
        line = nl + 1;
    }
    free(t);
    metrics_free(m);
}

Test(metrics, disconnected_and_no_bus) {
    struct metrics *m = metrics_new(0, NULL, NULL);
    size_t len;
    char *t = metrics_render(m, NULL, false, &len);

    cr_assert(has_line(t, "fpesa_bus_connected 0"));
    cr_assert_null(strstr(t, "fpesa_bus_confirms_total"));
    free(t);
    metrics_free(m);
}
