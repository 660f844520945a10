#!/bin/sh
# expect: 202 409
BASE=${BASE:-http://127.0.0.1:8888/api/v1}
# The same key with another body: refused, nothing is sent.
KEY=${KEY:-order-43-$(date +%s)}

for qty in 1 2; do
    curl -sS -i -X POST "$BASE/messages/" \
         -H 'Content-Type: application/json' \
         -H "Idempotency-Key: $KEY" \
         -d "{\"order\": 43, \"qty\": $qty}"
    echo
done
