#!/bin/sh
# expect: 202
BASE=${BASE:-http://127.0.0.1:8888/api/v1}

curl -sS -i -X POST "$BASE/messages/" \
     -H 'Content-Type: application/json' \
     -d '{"text": "hello", "from": "docs"}'
