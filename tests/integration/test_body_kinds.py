"""Request bodies beyond JSON: urlencoded and multipart forms validated against
the body schema, raw files and multipart file fields checked by their bytes and
carried on the bus unchanged, and binary rpc answers. Runs a restmapper of its
own on an aux port."""
import io
import json
import os
import struct
import threading
import time
import zlib

import pika
import pytest
import requests

from conftest import wait_until, write_config

CONFIG = """
endpoints:
  - path: /bk/form
    method: POST
    mode: publish
    status: 201
    validation_status: 422
    response: {accepted: "{id}", kind: form, link: "/bk/form/{id}"}
    content_types: [application/x-www-form-urlencoded, multipart/form-data]
    body:
      type: object
      required: [data]
      additionalProperties: false
      properties:
        data: {type: string, minLength: 1}
        note: {type: string}
  - path: /bk/image/{album}
    method: POST
    mode: publish
    content_types:
      - {type: multipart/form-data, max_body: 64KiB}
      - {type: image/png, max_body: 32KiB}
      - {type: image/jpeg, max_body: 32KiB}
    files:
      - {field: image, required: true}
    body:
      type: object
      additionalProperties: false
      properties: {caption: {type: string, maxLength: 20}}
    args:
      type: object
      properties: {tag: {type: string}}
  - path: /bk/thumb
    method: POST
    mode: rpc
    timeout: 3s
    content_types: [image/png]
"""

FORM_Q = "/bk/form:POST"
IMAGE_Q = "/bk/image/{album}:POST"
THUMB_Q = "/bk/thumb:POST"


def png_bytes(width=8, height=8, seed=0):
    """A real PNG: 8-bit RGB, one zlib stream of filtered rows."""
    rows = b"".join(b"\x00" + bytes((x * 31 + y * 17 + seed) & 0xFF for x in range(width * 3))
                    for y in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) +
            chunk(b"IEND", b""))


def jpeg_bytes():
    from PIL import Image  # python3-pil
    img = Image.new("RGB", (16, 16), (200, 30, 90))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=80)
    return out.getvalue()


@pytest.fixture
def bk(stack, proc, tmp_path, amqp):
    port = stack.aux_port + 12
    url = "http://127.0.0.1:%d" % port
    p = proc.start([os.path.join(stack.bin, "restmapper"), "--config", write_config(tmp_path, CONFIG)],
                   env=stack.env(FPESA_HTTP_LISTEN="127.0.0.1:%d" % port), wait_http=url + "/health")
    wait_until(lambda: requests.get(url + "/health", timeout=2).status_code == 200, timeout=20)
    ch = amqp.channel()
    for q in (FORM_Q, IMAGE_Q, THUMB_Q):
        ch.queue_purge(q)
    p.url = url
    return p


def get_message(amqp, queue, timeout=10):
    ch = amqp.channel()
    deadline = time.time() + timeout
    while time.time() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method:
            return props, body
        time.sleep(0.05)
    pytest.fail("no message on %s" % queue)


def queue_is_empty(amqp, queue):
    return amqp.channel().queue_declare(queue, passive=True).method.message_count == 0


def error_of(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"]["code"] == status
    return body["error"]


# ---- forms -------------------------------------------------------------------

def test_urlencoded_form_is_validated_and_published(bk, amqp):
    r = requests.post(bk.url + "/bk/form", data={"data": '{"a": 1}', "note": "x y&z"})
    assert r.status_code == 201, r.text
    body = r.json()
    mid = body["accepted"]
    assert body == {"accepted": mid, "kind": "form", "link": "/bk/form/" + mid}
    props, raw = get_message(amqp, FORM_Q)
    assert props.message_id == mid
    assert props.content_type == "application/json"
    assert json.loads(raw) == {"data": {"data": '{"a": 1}', "note": "x y&z"}, "args": None}


def test_urlencoded_form_errors(bk, amqp):
    e = error_of(requests.post(bk.url + "/bk/form", data={"note": "n"}), 422)
    assert e["keyword"] == "required"
    e = error_of(requests.post(bk.url + "/bk/form", data={"data": "d", "other": "o"}), 422)
    assert e["keyword"] == "additionalProperties"
    error_of(requests.post(bk.url + "/bk/form", data=b"data=%zz",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}), 400)
    error_of(requests.post(bk.url + "/bk/form", data=b"data=1&data=2",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}), 400)
    error_of(requests.post(bk.url + "/bk/form", json={"data": "x"}), 415)
    assert queue_is_empty(amqp, FORM_Q)


def test_multipart_fields_are_validated_like_a_form(bk, amqp):
    r = requests.post(bk.url + "/bk/form", files={"data": (None, "héllo"), "note": (None, "n")})
    assert r.status_code == 201, r.text
    props, raw = get_message(amqp, FORM_Q)
    assert props.content_type == "application/json"
    assert json.loads(raw)["data"] == {"data": "héllo", "note": "n"}
    e = error_of(requests.post(bk.url + "/bk/form", files={"data": (None, "")}), 422)
    assert e["keyword"] == "minLength"
    # A file where the endpoint takes none.
    error_of(requests.post(bk.url + "/bk/form", files={"data": ("a.png", png_bytes(), "image/png")}), 400)
    assert queue_is_empty(amqp, FORM_Q)


def test_malformed_multipart_is_a_400(bk):
    boundary = "XyZ"
    good = ("--XyZ\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\nv\r\n--XyZ--\r\n").encode()
    ct = {"Content-Type": "multipart/form-data; boundary=" + boundary}
    assert requests.post(bk.url + "/bk/form", data=good, headers=ct).status_code == 201
    error_of(requests.post(bk.url + "/bk/form", data=good[:-9], headers=ct), 400)  # no closing delimiter
    error_of(requests.post(bk.url + "/bk/form", data=good, headers={"Content-Type": "multipart/form-data"}), 400)
    error_of(requests.post(bk.url + "/bk/form", data=good.replace(b"Content-Disposition", b"X-Nothing"),
                           headers=ct), 400)


# ---- files -------------------------------------------------------------------

def test_raw_png_is_carried_as_the_message_body(bk, amqp):
    png = png_bytes(seed=3)
    r = requests.post(bk.url + "/bk/image/a1?tag=t1", data=png, headers={"Content-Type": "image/png"})
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    props, raw = get_message(amqp, IMAGE_Q)
    assert raw == png
    assert props.message_id == mid
    assert props.content_type == "image/png"
    assert props.delivery_mode == 2
    h = props.headers
    assert json.loads(h["x-fpesa-args"]) == {"tag": "t1"}
    assert json.loads(h["x-fpesa-params"]) == {"album": "a1"}
    assert "x-fpesa-field" not in h


def test_multipart_png_file_with_fields(bk, amqp):
    png = png_bytes(16, 4, seed=9)
    r = requests.post(bk.url + "/bk/image/a2", files={"image": ("cat 1.png", png, "image/png"),
                                                      "caption": (None, "a cat")})
    assert r.status_code == 202, r.text
    props, raw = get_message(amqp, IMAGE_Q)
    assert raw == png
    assert props.content_type == "image/png"
    h = props.headers
    assert json.loads(h["x-fpesa-data"]) == {"caption": "a cat"}
    assert h["x-fpesa-field"] == "image"
    assert h["x-fpesa-filename"] == "cat 1.png"
    assert json.loads(h["x-fpesa-args"]) is None
    assert json.loads(h["x-fpesa-params"]) == {"album": "a2"}


def test_jpeg_raw_and_multipart(bk, amqp):
    jpg = jpeg_bytes()
    r = requests.post(bk.url + "/bk/image/j", data=jpg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 202, r.text
    props, raw = get_message(amqp, IMAGE_Q)
    assert raw == jpg and props.content_type == "image/jpeg"
    r = requests.post(bk.url + "/bk/image/j", files={"image": ("p.jpg", jpg, "image/jpeg")})
    assert r.status_code == 202, r.text
    props, raw = get_message(amqp, IMAGE_Q)
    assert raw == jpg and props.content_type == "image/jpeg"


def test_files_that_are_not_what_they_claim_are_415(bk, amqp):
    png = png_bytes()
    url = bk.url + "/bk/image/x"
    error_of(requests.post(url, data=png[:-20], headers={"Content-Type": "image/png"}), 415)
    error_of(requests.post(url, data=b"<html>not an image</html>", headers={"Content-Type": "image/png"}), 415)
    error_of(requests.post(url, data=png, headers={"Content-Type": "image/jpeg"}), 415)
    error_of(requests.post(url, data=jpeg_bytes()[:-30], headers={"Content-Type": "image/jpeg"}), 415)
    error_of(requests.post(url, data=png, headers={"Content-Type": "image/gif"}), 415)
    error_of(requests.post(url, files={"image": ("a.png", png[:40], "image/png")}), 415)
    error_of(requests.post(url, files={"image": ("a.png", b"hello", "image/png")}), 415)
    error_of(requests.post(url, files={"image": ("a.txt", b"hello", "application/octet-stream")}), 415)
    assert queue_is_empty(amqp, IMAGE_Q)


def test_multipart_file_rules(bk, amqp):
    url = bk.url + "/bk/image/x"
    png = png_bytes()
    e = error_of(requests.post(url, files={"caption": (None, "no image")}), 400)
    assert "image" in e["description"]
    error_of(requests.post(url, files={"other": ("a.png", png, "image/png")}), 400)
    error_of(requests.post(url, files=[("image", ("a.png", png, "image/png")),
                                       ("image", ("b.png", png, "image/png"))]), 400)
    e = error_of(requests.post(url, files={"image": ("a.png", png, "image/png"),
                                           "caption": (None, "x" * 30)}), 400)
    assert e["keyword"] == "maxLength"
    assert queue_is_empty(amqp, IMAGE_Q)


def test_limits_per_content_type(bk, amqp):
    url = bk.url + "/bk/image/x"
    # A PNG's signature, header and end around 40 KiB of filler: complete as far as the
    # signature check goes, so only its size is refused.
    big = png_bytes()[:33] + os.urandom(40 * 1024) + png_bytes()[-12:]
    assert 32 * 1024 < len(big) < 64 * 1024
    error_of(requests.post(url, data=big, headers={"Content-Type": "image/png"}), 413)
    # Inside the multipart limit, over the limit of its type.
    error_of(requests.post(url, files={"image": ("a.png", big, "image/png")}), 413)
    # Over the multipart limit: refused before the body is read.
    error_of(requests.post(url, files={"image": ("a.png", big + big, "image/png")}), 413)
    assert queue_is_empty(amqp, IMAGE_Q)


# ---- binary rpc answers ----------------------------------------------------

def test_binary_rpc_answer_round_trip(bk, stack):
    stop = threading.Event()
    seen = []

    def worker():
        conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
        ch = conn.channel()
        try:
            while not stop.is_set():
                method, props, body = ch.basic_get(THUMB_Q, auto_ack=True)
                if not method:
                    time.sleep(0.01)
                    continue
                seen.append((props, body))
                answer = png_bytes(2, 2, seed=len(body) & 0xFF)
                ch.basic_publish("RPC", props.reply_to, answer, pika.BasicProperties(
                    correlation_id=props.correlation_id, content_type="image/png",
                    headers={"x-fpesa-status": 201, "x-fpesa-header-X-Thumb-Of": str(len(body)),
                             "x-fpesa-header-Content-Length": "1"}))
        finally:
            conn.close()

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    try:
        png = png_bytes(5, 5, seed=1)
        r = requests.post(bk.url + "/bk/thumb", data=png, headers={"Content-Type": "image/png"})
        assert r.status_code == 201, r.text
        assert r.headers["Content-Type"] == "image/png"
        assert r.headers["X-Thumb-Of"] == str(len(png))
        assert r.content == png_bytes(2, 2, seed=len(png) & 0xFF)
        assert seen[0][1] == png and seen[0][0].content_type == "image/png"
        # A body that is not a PNG never reaches the worker.
        error_of(requests.post(bk.url + "/bk/thumb", data=b"GIF89a...",
                               headers={"Content-Type": "image/png"}), 415)
        assert len(seen) == 1
    finally:
        stop.set()
        t.join(5)


def test_openapi_describes_the_body_kinds(bk):
    doc = requests.get(bk.url + "/openapi.json").json()
    content = doc["paths"]["/bk/image/{album}"]["post"]["requestBody"]["content"]
    assert content["image/png"]["schema"] == {"type": "string", "format": "binary"}
    mp = content["multipart/form-data"]["schema"]
    assert mp["properties"]["image"] == {"type": "string", "format": "binary"}
    assert mp["properties"]["caption"]["maxLength"] == 20
    form = doc["paths"]["/bk/form"]["post"]["requestBody"]["content"]
    assert form["application/x-www-form-urlencoded"]["schema"]["required"] == ["data"]
    thumb = doc["paths"]["/bk/thumb"]["post"]["requestBody"]["content"]
    assert thumb == {"image/png": {"schema": {"type": "string", "format": "binary"}}}
