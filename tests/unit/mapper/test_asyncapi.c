#include "config.h"
#include "../../../mapper/asyncapi.h"

#include <criterion/criterion.h>
#include <string.h>

/* doc[a][b], or doc[a] when b is NULL. */
static json_t *at(json_t *doc, const char *a, const char *b) {
    json_t *v = json_object_get(doc, a);
    return b ? json_object_get(v, b) : v;
}

static json_t *amqp(json_t *channel) {
    return json_object_get(json_object_get(channel, "bindings"), "amqp");
}

/* A publish endpoint that is live, an rpc endpoint with a path parameter,
 * and a handler on a queue no endpoint feeds. */
Test(asyncapi, channels_operations_and_messages) {
    struct cfg_endpoint eps[2] = {0};
    struct cfg_handler hs[2] = {0};
    struct cfg cfg = {0};
    char *text;
    json_t *doc, *ch, *op, *msg;

    eps[0] = (struct cfg_endpoint){.path = "/messages/",
                                   .method = "POST",
                                   .exchange = "/messages/:POST",
                                   .mode = CFG_MODE_PUBLISH,
                                   .live = true};
    eps[0].body = json_pack("{s:s}", "type", "object");
    eps[1] = (struct cfg_endpoint){.path = "/echo/{word}",
                                   .method = "POST",
                                   .exchange = "/echo/{word}:POST",
                                   .mode = CFG_MODE_RPC,
                                   .timeout_ms = 2000};
    hs[0] = (struct cfg_handler){.name = "echo", .queue = "/echo/{word}:POST"};
    hs[1] = (struct cfg_handler){.name = "other", .queue = "jobs"};
    cfg.endpoints = eps;
    cfg.n_endpoints = 2;
    cfg.handlers = hs;
    cfg.n_handlers = 2;
    cfg.bus.url = "amqp://user:s3cret@broker.example:5673/prod%2fvh";
    cfg.live.host = "0.0.0.0";
    cfg.live.port = 8082;

    doc = asyncapi_build(&cfg);
    cr_assert_not_null(doc);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "asyncapi")), "3.0.0");
    cr_assert_str_eq(json_string_value(json_object_get(at(doc, "servers", "broker"), "host")),
                     "broker.example:5673");
    text = json_dumps(doc, 0);
    cr_assert_null(strstr(text, "s3cret"), "the password leaked into the document");
    cr_assert_null(strstr(text, "user:"), "the user leaked into the document");
    free(text);

    ch = at(doc, "channels", "messages_POST_exchange");
    cr_assert_str_eq(json_string_value(json_object_get(ch, "address")), "/messages/:POST");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(amqp(ch), "exchange"), "type")),
        "fanout");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(amqp(ch), "exchange"), "vhost")),
        "prod/vh");
    ch = at(doc, "channels", "echo_word_POST_exchange");
    cr_assert(json_is_null(json_object_get(ch, "address")), "a name with braces is no parameter");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(amqp(ch), "exchange"), "type")),
        "direct");
    cr_assert_not_null(at(doc, "channels", "messages_POST_live"));
    cr_assert_not_null(at(doc, "channels", "rpc_reply"));
    cr_assert_not_null(at(doc, "channels", "liveupdate_queue"));
    cr_assert_not_null(at(doc, "channels", "echo_word_POST_dlq"));
    cr_assert_not_null(at(doc, "channels", "jobs_queue"));
    cr_assert_not_null(at(doc, "channels", "jobs_dlq"));

    op = at(doc, "operations", "echo_word_POST_send");
    cr_assert_str_eq(json_string_value(json_object_get(op, "action")), "send");
    cr_assert_eq(json_integer_value(json_object_get(amqp(op), "expiration")), 2000);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(op, "reply"), "address"), "location")),
                     "$message.header#/reply_to");
    op = at(doc, "operations", "messages_POST_send");
    cr_assert_eq(json_integer_value(json_object_get(amqp(op), "deliveryMode")), 2);
    cr_assert_null(json_object_get(op, "reply"));

    msg = json_object_get(at(doc, "components", "messages"), "messages_POST_request");
    cr_assert_not_null(msg);
    cr_assert(
        json_equal(at(at(json_object_get(msg, "payload"), "properties", "data"), "type", NULL),
                   json_object_get(eps[0].body, "type")),
        "the envelope's data is the body schema");
    cr_assert_not_null(json_object_get(at(doc, "components", "messages"), "echo_word_POST_reply"));
    cr_assert_not_null(json_object_get(at(doc, "components", "messages"), "messages_POST_frame"));
    json_decref(doc);
    json_decref(eps[0].body);
}
