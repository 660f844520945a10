#!/bin/sh
# expect: 200 200 404 400
# BASE: the restmapper serving doc/examples/python_worker.yaml.
BASE=${BASE:-http://127.0.0.1:8081}

curl -sS -i "$BASE/greet/Ada"
echo
curl -sS -i "$BASE/greet/Grace?punct=."
echo
curl -sS -i "$BASE/greet/nobody"
echo
curl -sS -i "$BASE/greet/Ada?punct=x"
