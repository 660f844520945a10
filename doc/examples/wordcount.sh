#!/bin/sh
# expect: 200 400 422
# BASE: the restmapper serving doc/examples/wordcount.yaml.
BASE=${BASE:-http://127.0.0.1:8081}

curl -sS -i -X POST "$BASE/wordcount/" \
     -H 'Content-Type: application/json' -d '{"text": "to be or not to be"}'
echo
curl -sS -i -X POST "$BASE/wordcount/" \
     -H 'Content-Type: application/json' -d '{"words": "none"}'
echo
python3 -c 'print("{\"text\": \"%s\"}" % ("word " * 1001))' |
    curl -sS -i -X POST "$BASE/wordcount/" \
         -H 'Content-Type: application/json' --data-binary @-
