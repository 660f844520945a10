#!/usr/bin/python3
"""Prints the live messages of a channel, one JSON frame per line.

    python3 ws_client.py ws://127.0.0.1:8888/ws/v1/messages/ [--since ID] [--count N]

With --since it first gets the stored messages newer than ID, then the live
ones; with --count it exits after N messages. Reconnects with a growing pause
and resumes after the last id it printed, so it misses nothing across a
liveupdate restart. Needs websocket-client (Debian: python3-websocket).
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
        try:
            ws = websocket.create_connection(url, timeout=60)
            pause = 0.5
            while True:
                frame = json.loads(ws.recv())  # {"id", "channel", "received_at", "data"}
                print(json.dumps(frame), flush=True)
                last, seen = frame["id"], seen + 1
                if opts.count and seen >= opts.count:
                    ws.close()
                    return 0
        except websocket.WebSocketConnectionClosedException:
            print("closed; resuming after %s" % last, file=sys.stderr)
        except (OSError, websocket.WebSocketException) as e:
            print("connection failed (%s); retrying" % e, file=sys.stderr)
        time.sleep(pause)
        pause = min(pause * 2, 10)


if __name__ == "__main__":
    sys.exit(main())
