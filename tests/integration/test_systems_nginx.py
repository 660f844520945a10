"""The example systems as their users reach them: through the nginx the stack
script generates for each, under /api/v1/, with the clients their
specifications describe (Python requests, the common way)."""
import io
import json
import os
import re
import uuid

import pika
import pytest
from PIL import Image

from conftest import wait_until
from example_system import NginxSystem

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def images(stack):
    s = NginxSystem(stack, "images", 0)
    try:
        wait_until(lambda: s.get("/image/" + "x" * 201).status_code == 400, timeout=20)
        yield s
    finally:
        s.close()


def photo(min_bytes, fmt="PNG"):
    """A picture of noise (it does not compress) of at least min_bytes."""
    side = 64
    while True:
        im = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
        out = io.BytesIO()
        im.save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        if out.tell() >= min_bytes:
            return out.getvalue()
        side = int(side * 1.25) + 1


def done(s, image_id, timeout=60):
    def ready():
        r = s.get("/image/" + image_id)
        return [r] if r.status_code != 202 else None
    return wait_until(ready, timeout=timeout)[0]


def test_generated_nginx_has_a_location_for_the_upload_route(images, stack):
    conf = open(os.path.join(stack.var, "sys-images", "nginx", "nginx.conf")).read()
    assert re.search(r'location ~ "\^/api/v1/image/\?\$" \{\s*client_max_body_size 4194304;', conf), conf


@pytest.mark.parametrize("fmt,ctype", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_a_2mb_photo_uploads_through_nginx(images, db, fmt, ctype):
    data = photo(2 * MIB, fmt)
    assert 2 * MIB <= len(data) < 4 * MIB
    r = images.post("/image", data=data, headers={"Content-Type": ctype})
    assert r.status_code == 202, r.text
    image_id = r.json()["id"]
    r = done(images, image_id)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == ctype
    assert max(Image.open(io.BytesIO(r.content)).size) == 128
    with db.cursor() as c:
        c.execute("SELECT length(original) FROM images WHERE id = %s", (image_id,))
        assert c.fetchone()[0] == len(data)


def test_a_file_posted_the_common_python_way_is_taken_by_its_bytes(images, db, tmp_path):
    # requests.post(url, files={"image": f}) sends the part with a file name
    # and no Content-Type of its own.
    for fmt, ctype in (("PNG", "image/png"), ("JPEG", "image/jpeg")):
        path = tmp_path / ("photo." + fmt.lower())
        path.write_bytes(photo(300 * 1024, fmt))
        with open(path, "rb") as f:
            r = images.post("/image", files={"image": f})
        assert r.status_code == 202, (fmt, r.text)
        image_id = r.json()["id"]
        with db.cursor() as c:
            c.execute("SELECT original_type FROM images WHERE id = %s", (image_id,))
            assert c.fetchone()[0] == ctype
        assert done(images, image_id).headers["Content-Type"] == ctype


def test_a_file_without_a_type_whose_bytes_are_no_image_is_415(images, tmp_path):
    path = tmp_path / "notes.png"
    path.write_bytes(b"just some text, not a picture at all\n" * 100)
    with open(path, "rb") as f:
        r = images.post("/image", files={"image": f})
    assert r.status_code == 415, r.text
    assert r.json()["error"]["code"] == 415


def test_the_upload_route_is_limited_to_its_own_limit_by_nginx(images):
    # Just over 4 MiB: refused by nginx, in the API's JSON error shape.
    r = images.post("/image", data=b"\x89PNG" + b"\0" * (4 * MIB), headers={"Content-Type": "image/png"})
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["code"] == 413 and "4194304" in err["description"]


def test_other_routes_keep_the_default_limit(images):
    # The default (64 KiB) still holds on the other routes: a 70 KB body to
    # GET /image/{id} is refused by nginx before it reaches a mapper.
    r = images.session.request("GET", images.url("/image/" + str(uuid.uuid4())), data=b"x" * 70000,
                               headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 413, r.text
    assert "65536" in r.json()["error"]["description"]


def test_the_activity_queue_is_consumed(images, stack):
    ids = []
    for _ in range(5):
        r = images.post("/image", data=photo(2000), headers={"Content-Type": "image/png"})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    for i in ids:
        done(images, i)
    # Every event of every picture reaches the consumer's log...
    log = os.path.join(stack.var, "sys-images", "log", "handler.log")
    wait_until(lambda: all("image_id=%s step=stored" % i in open(log).read() for i in ids), timeout=30)
    # ...and the queue is left empty, with its consumer on it.
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        ch = conn.channel()

        def drained():
            q = ch.queue_declare("activity", passive=True)
            return q.method.message_count == 0 and q.method.consumer_count >= 1
        wait_until(drained, timeout=30)
    finally:
        conn.close()


# ---- timers, as the seed's clients call it ---------------------------------------------


@pytest.fixture(scope="module")
def timers_sys(stack):
    s = NginxSystem(stack, "timers", 1)
    try:
        wait_until(lambda: s.get("/timer/" + "x" * 10).status_code == 400, timeout=20)
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def hook(stack):
    from timers_util import Receiver
    r = Receiver(stack.aux_port + 38)
    try:
        yield r
    finally:
        r.close()


@pytest.mark.parametrize("path", ["/timer", "/timer/"])
def test_timer_routes_with_and_without_the_slash(timers_sys, hook, path):
    tag = uuid.uuid4().hex[:10]
    r = timers_sys.post(path, json={"hours": 0, "minutes": 0, "seconds": 1, "url": hook.url("/" + tag)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "time_left"} and 0 < body["time_left"] <= 1
    g = timers_sys.get("/timer/" + body["id"])
    assert g.status_code == 200 and g.json()["id"] == body["id"]
    wait_until(lambda: len(hook.ids("/" + tag)) == 1, timeout=20)


@pytest.mark.parametrize("data,ctype", [(b"{not json", "application/json"), (b"", "application/json"),
                                        (b"[1, 2", "application/json")])
def test_a_body_that_is_not_a_timer_is_422(timers_sys, data, ctype):
    for path in ("/timer", "/timer/"):
        r = timers_sys.post(path, data=data, headers={"Content-Type": ctype})
        assert r.status_code == 422, (path, data, r.text)
        assert r.json()["error"]["code"] == 422


def test_ingestion_records_in_the_seeds_form(stack, tmp_path):
    # records_get's format: seed answers as the original service: "data" the
    # JSON as text, "timestamp" with six fraction digits. It runs before the
    # module's other ingestion system starts: both would consume /records:GET.
    text = open(os.path.join(stack.root, "examples", "ingestion", "endpoints.yaml")).read()
    assert "      page_size: 50\n" in text
    config = tmp_path / "ingestion-seed.yaml"
    config.write_text(text.replace("      page_size: 50\n", "      page_size: 50\n      format: seed\n"))
    s = NginxSystem(stack, "ingestion-seed", 3, config=str(config))
    try:
        wait_until(lambda: s.get("/records?next=%21").status_code == 400, timeout=20)
        doc = {"seed": uuid.uuid4().hex, "n": [1, 2.5]}
        r = s.post("/dummy", data={"data": json.dumps(doc)})
        assert r.status_code == 202, r.text
        mid = r.json()["id"]

        def find():
            nxt = None
            while True:
                page = s.get("/records" + ("?next=" + nxt if nxt else "")).json()
                hit = [rec for rec in page["results"] if rec["message_id"] == mid]
                if hit:
                    return hit[0]
                nxt = page["next"]
                if nxt is None:
                    return None
        rec = wait_until(find, timeout=20)
        assert isinstance(rec["data"], str) and json.loads(rec["data"]) == doc
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", rec["timestamp"]), rec["timestamp"]
    finally:
        s.close()


# ---- ingestion, as the seed's clients call it ------------------------------------------


@pytest.fixture(scope="module")
def ingestion_sys(stack):
    s = NginxSystem(stack, "ingestion", 2)
    try:
        wait_until(lambda: s.get("/records?next=%21").status_code == 400, timeout=20)
        yield s
    finally:
        s.close()


def test_ingestion_form_posts_and_records_through_nginx(ingestion_sys):
    doc = {"sensor": "t-%s" % uuid.uuid4().hex[:8], "value": 21.5}
    r = ingestion_sys.post("/dummy", data={"data": json.dumps(doc)})
    assert r.status_code == 202, r.text
    mid = r.json()["id"]

    def find():
        nxt, found = None, None
        while True:
            page = ingestion_sys.get("/records" + ("?next=" + nxt if nxt else "")).json()
            for rec in page["results"]:
                if rec["message_id"] == mid:
                    found = rec
            nxt = page["next"]
            if nxt is None:
                return found
    rec = wait_until(find, timeout=20)
    assert set(rec) == {"timestamp", "message_id", "data"}
    assert rec["data"] == doc or json.loads(rec["data"]) == doc

