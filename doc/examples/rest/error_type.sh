#!/bin/sh
# expect: 415
BASE=${BASE:-http://127.0.0.1:8888/api/v1}

curl -sS -i -X POST "$BASE/messages/" \
     -H 'Content-Type: text/plain' -d 'hello'
