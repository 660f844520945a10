#!/usr/bin/python3
"""Prints the live messages of a channel, one JSON frame per line.

    python3 ws_client.py ws://127.0.0.1:8888/ws/v1/messages/ [--since ID] [--count N]

With --since it first gets the stored messages newer than ID, then the live
ones; with --count it exits after N messages. Reconnects with a growing pause
and resumes after the last id it printed, so it misses nothing across a
liveupdate restart; on 4404 (a position nobody knows) it notes a gap and
continues live. Needs websocket-client (Debian: python3-websocket).
"""
import argparse
import json
import sys
import time
import urllib.parse

import websocket


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--since")
    ap.add_argument("--count", type=int, default=0)
    opts = ap.parse_args()
    last, seen, pause = opts.since, 0, 0.5
    while True:
        url = opts.url
        if last:
            url += "?since=" + urllib.parse.quote(last, safe="")
        ws = None
        try:
            ws = websocket.create_connection(url, timeout=60)
            while True:
                op, frame = ws.recv_data_frame(True)  # pings are answered by the library
                if op == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
                    reason = frame.data[2:].decode(errors="replace")
                    if code == 4404:  # unknown position: note the gap, continue live
                        print("gap: %s" % reason, file=sys.stderr)
                        last, pause = None, 0
                    print("closed (%s %s); resuming after %s" % (code, reason, last),
                          file=sys.stderr)
                    break
                if op != websocket.ABNF.OPCODE_TEXT:
                    continue
                msg = json.loads(frame.data)  # {"id", "channel", "received_at", "data"}
                print(json.dumps(msg), flush=True)
                last, seen = msg["id"], seen + 1
                pause = 0.5  # the connection proved good: the backoff starts over
                if opts.count and seen >= opts.count:
                    return 0
        except (OSError, websocket.WebSocketException) as e:
            print("connection failed (%s); retrying" % e, file=sys.stderr)
        finally:
            if ws is not None:
                ws.close()
        time.sleep(pause)
        pause = min(max(pause * 2, 0.5), 10)


if __name__ == "__main__":
    sys.exit(main())
