#!/usr/bin/env bash
# Prints the demo credentials of examples/secure/endpoints.yaml, with a
# fresh HS256 token (one hour) signed with demo-hs256.secret.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${FPESA_NGINX_PORT:-8888}
secret=$(tr -d '\n' <"$here/demo-hs256.secret")
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"HS256","typ":"JWT","kid":"demo-hs"}' | b64url)
payload=$(printf '{"sub":"demo-user","iss":"https://demo.fpesa.invalid","aud":"fpesa","iat":%d,"exp":%d,"scope":"messages:write messages:read"}' \
    "$now" $((now + 3600)) | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)
token="$header.$payload.$sig"
cat <<TXT
fpesa: demo credentials (examples/secure; demonstration values, never for production)
  API key, writes and reads:  X-API-Key: demo-writer-2f9c41d7e0b84a1c
  API key, reads only:        X-API-Key: demo-reader-7a13e5c9b2d64f08
  JWT (HS256, 1 hour):        Authorization: Bearer $token
  try:  curl -H 'X-API-Key: demo-writer-2f9c41d7e0b84a1c' -H 'Content-Type: application/json' \\
            -d '{"hello":"world"}' http://127.0.0.1:$port/api/v1/messages/
  live: ws://127.0.0.1:$port/ws/v1/messages/?api_key=demo-reader-7a13e5c9b2d64f08
TXT
