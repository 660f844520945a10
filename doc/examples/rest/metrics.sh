#!/bin/sh
# expect: ok
# /metrics is not served on nginx's public port: ask a restmapper itself.
MAPPER=${MAPPER:-http://127.0.0.1:${FPESA_MAPPER_PORT:-8081}}

curl -sS "$MAPPER/metrics" | grep -E '^fpesa_http_requests_total\{method="POST",route="/messages/"'
