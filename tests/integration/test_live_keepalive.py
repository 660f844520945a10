"""Pings both ways: every client ping is answered with a pong carrying its
own payload (RFC 6455 5.5.3), also while liveupdate's own keepalive pings
are going out, and an idle client with the standard keepalive of
python-websockets stays connected for minutes."""
import asyncio
import os
import time

import pytest
import requests
import websocket
import websockets

from conftest import wait_until


def start_live(stack, proc, tmp_path, ping_interval):
    port = stack.aux_port + 9
    cfg = tmp_path / "keepalive.yaml"
    cfg.write_text("bus:\n  url: %s\nliveupdate:\n  listen: 127.0.0.1:%d\n  ping_interval: %d\n"
                   "endpoints:\n  - {path: /quiet/, method: POST, mode: publish, live: true}\n"
                   % (stack.amqp_url, port, ping_interval))
    proc.start([os.path.join(stack.bin, "liveupdate"), "--config", str(cfg)],
               env=stack.env(FPESA_LIVE_LISTEN="127.0.0.1:%d" % port),
               wait_http="http://127.0.0.1:%d/metrics" % port)
    base = "http://127.0.0.1:%d" % port
    wait_until(lambda: requests.get(base + "/health", timeout=2).status_code == 200, timeout=15)
    return base


@pytest.mark.timeout(120)
def test_every_ping_gets_its_own_payload_back_while_the_server_pings_too(stack, proc, tmp_path):
    base = start_live(stack, proc, tmp_path, ping_interval=1)
    ws = websocket.create_connection(base.replace("http://", "ws://") + "/quiet/", timeout=10)
    server_pings = 0
    try:
        deadline = time.time() + 15
        n = 0
        while time.time() < deadline or server_pings < 3:
            assert time.time() < deadline + 30, "the server never pinged"
            payload = ("p%05d" % n).encode() * (1 + n % 10)
            ws.ping(payload)
            while True:
                op, frame = ws.recv_data_frame(True)  # answers the server's pings itself
                if op == websocket.ABNF.OPCODE_PING:
                    server_pings += 1
                    continue
                assert op == websocket.ABNF.OPCODE_PONG, op
                assert frame.data == payload, (n, frame.data, payload)
                break
            n += 1
            time.sleep(0.013 * (n % 40))  # drifts across the server's ping times
        assert n > 20 and server_pings >= 3
    finally:
        ws.close()


@pytest.mark.timeout(240)
def test_idle_python_websockets_client_with_default_keepalive_stays_connected(stack, proc,
                                                                             tmp_path):
    """python-websockets pings every 20 s and closes (1011) when the pong with
    its payload does not come within 20 s; liveupdate pings every 20 s too."""
    base = start_live(stack, proc, tmp_path, ping_interval=20)
    url = base.replace("http://", "ws://") + "/quiet/"
    idle_s = 150

    async def idle():
        async with websockets.connect(url) as ws:  # ping_interval=20, ping_timeout=20
            assert ws.ping_interval == 20 and ws.ping_timeout == 20
            try:
                await asyncio.wait_for(ws.recv(), timeout=idle_s)
            except asyncio.TimeoutError:
                pass
            assert ws.open, "closed by keepalive: %s %s" % (ws.close_code, ws.close_reason)
            # Still served: a fast ping round trip right now.
            pong = await ws.ping(b"still-here")
            await asyncio.wait_for(pong, timeout=5)

    t0 = time.time()
    asyncio.run(asyncio.wait_for(idle(), timeout=idle_s + 30))
    assert time.time() - t0 >= idle_s
    m = requests.get(base + "/metrics", timeout=5).text
    assert "liveupdate_silent_closes_total 0" in m
