#!/bin/sh
# expect: 200 200 404 400 201 415
# BASE: the restmapper serving doc/examples/python_worker.yaml.
BASE=${BASE:-http://127.0.0.1:8081}

curl -sS -i "$BASE/greet/Ada"
echo
curl -sS -i "$BASE/greet/Grace?punct=."
echo
curl -sS -i "$BASE/greet/nobody"
echo
curl -sS -i "$BASE/greet/Ada?punct=x"
echo
# A PNG body, answered with the same bytes (headers shown, body dropped).
curl -sS -D - -o /dev/null -X PUT -H "Content-Type: image/png" \
    --data-binary "@$(dirname "$0")/avatar.png" "$BASE/greet/Ada/avatar"
# Text that claims to be a PNG never reaches the worker.
curl -sS -i -X PUT -H "Content-Type: image/png" --data-binary "not a png" "$BASE/greet/Ada/avatar"
