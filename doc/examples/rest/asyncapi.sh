#!/bin/sh
# expect: 200
BASE=${BASE:-http://127.0.0.1:8888/api/v1}

curl -sS -i "$BASE/asyncapi.json"
