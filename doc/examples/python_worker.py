#!/usr/bin/python3
"""An rpc worker for GET /greet/{name} and PUT /greet/{name}/avatar, written
against the bus protocol.

Run it beside a restmapper that serves doc/examples/python_worker.yaml:

    FPESA_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f python3 python_worker.py

Needs pika (Debian: python3-pika).
"""
import json
import os
import signal
import struct
import sys

import pika

EXCHANGE = "/greet/{name}:GET"  # "<path>:<METHOD>" of the endpoint
QUEUE = EXCHANGE  # the queue has the same name, bound with the same key
AVATAR = "/greet/{name}/avatar:PUT"  # takes a PNG: a binary body


def answer(request):
    """The envelope {"data", "args", "params"} -> the JSON answer."""
    name = request["params"]["name"]
    punct = (request.get("args") or {}).get("punct", "!")
    if name == "nobody":
        # An error answer: restmapper turns it into HTTP 404 with this body.
        return {"error": {"code": 404, "description": "nobody is not here"}}
    return {"greeting": "Hello, %s%s" % (name, punct)}


def on_avatar(channel, method, props, body):
    """A binary request: the body is the PNG itself (restmapper checked its
    signature), content_type says so, and the rest of the envelope is in
    headers as JSON strings. The answer is binary too: the same PNG, with
    the status and an HTTP header set through AMQP headers."""
    headers = props.headers or {}
    params = json.loads(headers.get("x-fpesa-params", "{}"))
    width, height = struct.unpack(">II", body[16:24])  # from the IHDR chunk
    if props.reply_to:
        channel.basic_publish(
            exchange="RPC",
            routing_key=props.reply_to,
            properties=pika.BasicProperties(
                correlation_id=props.correlation_id,
                content_type=props.content_type,  # "image/png": sent as is
                headers={
                    "x-fpesa-status": 201,
                    "x-fpesa-header-X-Image-Size": "%dx%d" % (width, height),
                    "x-fpesa-header-X-Avatar-Of": params.get("name", ""),
                },
            ),
            body=body,
        )
    channel.basic_ack(delivery_tag=method.delivery_tag)


def on_request(channel, method, props, body):
    try:
        reply = answer(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError):
        reply = {"error": {"code": 400, "description": "malformed request"}}
    if props.reply_to:
        channel.basic_publish(
            exchange="RPC",  # answers go to the RPC exchange...
            routing_key=props.reply_to,  # ...routed to the caller's reply queue
            properties=pika.BasicProperties(
                correlation_id=props.correlation_id,  # copied from the request
                content_type="application/json",
            ),
            body=json.dumps(reply),
        )
    channel.basic_ack(delivery_tag=method.delivery_tag)  # after answering


def main():
    url = os.environ.get("FPESA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    conn = pika.BlockingConnection(pika.URLParameters(url))
    channel = conn.channel()
    # The same declarations as restmapper's, so either may start first.
    channel.exchange_declare(EXCHANGE, exchange_type="direct", durable=True)
    channel.queue_declare(QUEUE, durable=True)
    channel.queue_bind(QUEUE, EXCHANGE, routing_key=QUEUE)
    channel.exchange_declare(AVATAR, exchange_type="direct", durable=True)
    channel.queue_declare(AVATAR, durable=True)
    channel.queue_bind(AVATAR, AVATAR, routing_key=AVATAR)
    channel.exchange_declare("RPC", exchange_type="direct", durable=True)
    channel.basic_qos(prefetch_count=32)
    channel.basic_consume(QUEUE, on_request)
    channel.basic_consume(AVATAR, on_avatar)
    # SIGTERM and Ctrl-C stop it between two frames, never in the middle of
    # one: the handler only asks pika's loop to stop consuming. An
    # unacknowledged request goes back to the queue for the next worker.
    def stop(signum, frame):
        conn.add_callback_threadsafe(channel.stop_consuming)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("worker: consuming %s" % QUEUE, file=sys.stderr, flush=True)
    try:
        channel.start_consuming()
    finally:
        if conn.is_open:
            conn.close()


if __name__ == "__main__":
    main()
