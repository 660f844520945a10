#!/bin/sh
# expect: 404 405
BASE=${BASE:-http://127.0.0.1:8888/api/v1}

curl -sS -i "$BASE/no-such-route"
echo
curl -sS -i -X DELETE "$BASE/messages/"
