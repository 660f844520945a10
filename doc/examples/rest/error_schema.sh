#!/bin/sh
# expect: 400
BASE=${BASE:-http://127.0.0.1:8888/api/v1}

# The body of POST /messages/ must be a JSON object.
curl -sS -i -X POST "$BASE/messages/" \
     -H 'Content-Type: application/json' -d '[1, 2, 3]'
