"""The image pipeline (examples/images/endpoints.yaml), black-box as its
clients use it: real PNG and JPEG uploads (raw and multipart), the thumbnail
with its time stamp downloaded, pending, unknown and failed images, refused
uploads, and the activity log. Real broker and database; its own restmapper
and two handler hosts (the transform apart, so a test can stop it) on spare
ports."""
import io
import json
import struct
import time
import uuid
import zlib

import pika
import pytest
from PIL import Image

from conftest import wait_until
from example_system import ExampleSystem

SIZE = 128  # thumbnail_size in examples/images/endpoints.yaml


def _ready(s):
    return s.get("/image/" + "x" * 201).status_code == 400


@pytest.fixture(scope="module")
def img(stack):
    s = ExampleSystem(stack, "images", [stack.aux_port + n for n in (23, 24, 25)], _ready,
                      hosts=[["image_ingest", "image_get"], ["image_transform"]])
    yield s
    s.close()


def picture(fmt, size=(640, 480)):
    """A real image: a colour gradient, no white in it (the stamp is white)."""
    im = Image.new("RGB", size)
    px = im.load()
    for x in range(size[0]):
        for y in range(size[1]):
            px[x, y] = (x * 200 // size[0], y * 200 // size[1], 90)
    out = io.BytesIO()
    im.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def wait_done(img, image_id, timeout=20):
    def done():
        r = img.get("/image/" + image_id)
        return [r] if r.status_code != 202 else None
    return wait_until(done, timeout=timeout)[0]


def has_stamp(im):
    """Light grey to white pixels in the lower part of the picture: the time
    stamp (the pictures of these tests have no channel above 200 in blue...
    but 90 in blue, so none of their pixels is that light)."""
    im = im.convert("RGB")
    w, h = im.size
    return sum(1 for x in range(w) for y in range(h // 2, h) if min(im.getpixel((x, y))) > 170) > 20


def original(db, image_id):
    with db.cursor() as c:
        c.execute("SELECT original, original_type, state FROM images WHERE id = %s", (image_id,))
        row = c.fetchone()
    return (bytes(row[0]), row[1], row[2]) if row else None


@pytest.mark.parametrize("fmt,ctype", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_raw_upload_round_trip(img, db, fmt, ctype):
    data = picture(fmt)
    r = img.post("/image", data=data, headers={"Content-Type": ctype})
    assert r.status_code == 202, r.text
    image_id = r.json()["id"]
    assert r.headers["Location"] == "image/" + image_id  # relative: proxies add prefixes
    assert original(db, image_id)[:2] == (data, ctype)
    r = wait_done(img, image_id)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == ctype
    thumb = Image.open(io.BytesIO(r.content))
    assert thumb.format == fmt
    assert max(thumb.size) == SIZE and thumb.size == (SIZE, SIZE * 3 // 4)
    assert has_stamp(thumb)
    assert not has_stamp(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("fmt,ctype", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_multipart_upload_round_trip(img, db, fmt, ctype):
    data = picture(fmt, (300, 600))
    r = img.post("/image", files={"image": ("photo." + fmt.lower(), data, ctype)})
    assert r.status_code == 202, r.text
    image_id = r.json()["id"]
    assert original(db, image_id)[:2] == (data, ctype)
    r = wait_done(img, image_id)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == ctype
    thumb = Image.open(io.BytesIO(r.content))
    assert thumb.format == fmt and thumb.size == (SIZE // 2, SIZE)


def test_pending_is_202_with_retry_after(img, db):
    transform = img.hosts[1]
    img.procs.stop(transform)
    try:
        r = img.post("/image", data=picture("PNG", (64, 64)), headers={"Content-Type": "image/png"})
        assert r.status_code == 202, r.text
        image_id = r.json()["id"]
        for _ in range(3):
            g = img.get("/image/" + image_id)
            assert g.status_code == 202, g.text
            assert g.headers["Retry-After"] == "1"
            assert g.json() == {"id": image_id, "state": "pending"}
            time.sleep(0.2)
    finally:
        img.hosts[1] = img.start_host(["image_transform"])
    r = wait_done(img, image_id)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"


def test_unknown_is_404_and_bad_id_400(img):
    r = img.get("/image/" + str(uuid.uuid4()))
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == 404
    r = img.get("/image/" + "a" * 201)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("fmt,ctype,cut", [("PNG", "image/png", 0.5), ("PNG", "image/png", 0.98),
                                           ("JPEG", "image/jpeg", 0.5)])
def test_truncated_image_is_415(img, fmt, ctype, cut):
    data = picture(fmt)
    data = data[:int(len(data) * cut)]
    r = img.post("/image", data=data, headers={"Content-Type": ctype})
    assert r.status_code == 415, r.text
    r = img.post("/image", files={"image": ("t", data, ctype)})
    assert r.status_code == 415, r.text


@pytest.mark.parametrize("data,ctype", [
    (b"hello, I am not a picture", "image/png"),
    (b"GIF89a" + b"\0" * 40 + b";", "image/jpeg"),
    (b"", "image/png"),
    (None, "image/jpeg"),   # a PNG labelled JPEG
    (None, "text/plain"),   # a PNG labelled text
])
def test_not_such_an_image_is_415(img, data, ctype):
    if data is None:
        data = picture("PNG", (32, 32))
    r = img.post("/image", data=data, headers={"Content-Type": ctype})
    assert r.status_code in ((415, 400) if not data else (415,)), (ctype, r.status_code, r.text)
    if data:
        r = img.post("/image", files={"image": ("f", data, ctype)})
        assert r.status_code == 415, (ctype, r.status_code, r.text)


def test_gif_is_refused_even_if_real(img):
    im = Image.new("RGB", (16, 16), (1, 2, 3))
    out = io.BytesIO()
    im.save(out, "GIF")
    r = img.post("/image", data=out.getvalue(), headers={"Content-Type": "image/gif"})
    assert r.status_code == 415, r.text


def test_over_the_limit_is_413(img):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (4 * 1024 * 1024 + 10)
    r = img.post("/image", data=big, headers={"Content-Type": "image/png"})
    assert r.status_code == 413, r.text


def corrupt_png():
    """A PNG whose signature, chunks and IEND are in place but whose pixel
    data is damaged: it passes the upload checks and fails to decode."""
    data = bytearray(picture("PNG", (200, 200)))
    pos = data.index(b"IDAT")
    length = struct.unpack(">I", data[pos - 4:pos])[0]
    for i in range(pos + 4 + 2, pos + 4 + length - 2):
        data[i] = 0x5A
    body = bytes(data[pos:pos + 4 + length])
    data[pos + 4 + length:pos + 8 + length] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return bytes(data)


def test_failed_transform_is_500_with_the_reason(img):
    r = img.post("/image", data=corrupt_png(), headers={"Content-Type": "image/png"})
    assert r.status_code == 202, r.text
    r = wait_done(img, r.json()["id"])
    assert r.status_code == 500, r.text
    desc = r.json()["error"]["description"]
    assert desc.startswith("the transform failed: ") and len(desc) > len("the transform failed: ")


def test_activity_log_has_one_event_per_step(img, stack):
    conn = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        ch = conn.channel()
        ok = img.post("/image", data=picture("PNG", (50, 50)), headers={"Content-Type": "image/png"})
        bad = img.post("/image", data=corrupt_png(), headers={"Content-Type": "image/png"})
        assert ok.status_code == bad.status_code == 202
        ids = {ok.json()["id"]: "ok", bad.json()["id"]: "bad"}
        for i in ids:
            wait_done(img, i)
        events = {i: [] for i in ids}

        def drain():
            while True:
                m, _, body = ch.basic_get("activity", auto_ack=True)
                if not m:
                    break
                ev = json.loads(body)
                if ev["image_id"] in events:
                    events[ev["image_id"]].append(ev)
            return all(len(v) >= (5 if ids[i] == "ok" else 4) for i, v in events.items())

        wait_until(drain, timeout=10)
        time.sleep(0.3)
        drain()
        steps = {i: [e["step"] for e in v] for i, v in events.items()}
        okid, badid = ok.json()["id"], bad.json()["id"]
        assert steps[okid] == ["received", "queued", "transform_started", "thumbnail", "stored"]
        assert steps[badid] == ["received", "queued", "transform_started", "failed"]
        assert events[badid][-1]["detail"]
        assert all(e["at"].endswith("Z") for v in events.values() for e in v)
    finally:
        conn.close()


def png_claiming(width, height):
    """A well-formed PNG whose header claims width x height pixels."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) +
            chunk(b"IEND", b""))


def test_a_picture_too_large_to_decode_fails_cleanly(img):
    # 10 billion pixels in a few hundred bytes: refused before decoding.
    r = img.post("/image", data=png_claiming(100000, 100000), headers={"Content-Type": "image/png"})
    assert r.status_code == 202, r.text
    r = wait_done(img, r.json()["id"])
    assert r.status_code == 500, r.text
    assert "too large" in r.json()["error"]["description"]


@pytest.mark.parametrize("size", [(1, 1), (3, 2000), (2000, 20)])
def test_odd_shapes_get_a_thumbnail(img, size):
    r = img.post("/image", data=picture("PNG", size), headers={"Content-Type": "image/png"})
    assert r.status_code == 202, r.text
    r = wait_done(img, r.json()["id"])
    assert r.status_code == 200, r.text
    thumb = Image.open(io.BytesIO(r.content))
    assert max(thumb.size) == min(SIZE, max(size))


def test_a_small_picture_is_not_enlarged(img):
    r = img.post("/image", data=picture("JPEG", (100, 60)), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 202, r.text
    r = wait_done(img, r.json()["id"])
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (100, 60)


def png_blank(width, height, depth=8, colour=6):
    """A real, complete PNG of width x height transparent black pixels
    (colour 6: RGBA; depth 8 or 16), small however large the picture: its
    rows of zeros compress about a thousand to one."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\0" * (1 + width * 4 * depth // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def test_a_picture_over_the_decode_budget_is_refused_before_decoding(img):
    # 36 megapixels (under the pixel limit) of 16-bit RGBA: 288 MB decoded.
    r = img.post("/image", data=png_blank(6000, 6000, depth=16), headers={"Content-Type": "image/png"})
    assert r.status_code == 202, r.text
    r = wait_done(img, r.json()["id"], timeout=60)
    assert r.status_code == 500, r.text
    assert "decode budget" in r.json()["error"]["description"]


@pytest.mark.timeout(240)
def test_concurrent_large_pictures_keep_the_host_bounded(img):
    """Four uploads of 38 megapixels of RGBA (154 MB decoded each) at once,
    on a host with two transform instances: the decode budget lets one at a
    time decode, so the host's peak memory grows by about one picture, not
    two or four."""
    pid = img.hosts[-1].pid
    before_rss, before_peak = kib(pid, "VmRSS"), kib(pid, "VmHWM")
    data = png_blank(7000, 5500)
    ids = []
    for _ in range(4):
        r = img.post("/image", data=data, headers={"Content-Type": "image/png"})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    for i in ids:
        r = wait_done(img, i, timeout=180)
        assert r.status_code == 200, r.text
    peak = kib(pid, "VmHWM")
    # The earlier tests of this module decode small pictures only, so the
    # peak before is close to the resident size.
    assert before_peak <= before_rss + 100 * 1024, (before_peak, before_rss)
    assert peak <= before_rss + 290 * 1024, \
        "the transform host peaked at %d MiB (from %d MiB)" % (peak // 1024, before_rss // 1024)
