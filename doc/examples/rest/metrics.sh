#!/bin/sh
# expect: ok
BASE=${BASE:-http://127.0.0.1:8888/api/v1}

curl -sS "$BASE/metrics" | grep -E '^fpesa_http_requests_total\{method="POST",route="/messages/"'
