#!/bin/sh
# expect: 202 202
BASE=${BASE:-http://127.0.0.1:8888/api/v1}
# The same key twice: one message id, stored once.
KEY=${KEY:-order-42-$(date +%s)}

for i in 1 2; do
    curl -sS -i -X POST "$BASE/messages/" \
         -H 'Content-Type: application/json' \
         -H "Idempotency-Key: $KEY" \
         -d '{"order": 42}'
    echo
done
