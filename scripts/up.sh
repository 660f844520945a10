#!/usr/bin/env bash
# Starts the whole system in the background and prints where to open it.
set -u
export FPESA_STACK=up
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FPESA_ROOT"

mkdir -p "$FPESA_LOG"
if [ -f frontend/package.json ]; then
    if [ ! -f frontend/dist/index.html ] ||
        [ -n "$(find frontend/src frontend/index.html frontend/package.json -newer frontend/dist/index.html 2>/dev/null | head -n 1)" ]; then
        say "building the frontend"
        (cd frontend && npm run --silent build >"$FPESA_LOG/frontend-build.log" 2>&1) ||
            { tail -n 20 "$FPESA_LOG/frontend-build.log" >&2; die "the frontend build failed"; }
    fi
fi
mkdir -p "$FPESA_LOG"
scripts/stack.sh start servers || exit 1
scripts/stack.sh start apps || { scripts/stack.sh stop; exit 1; }
echo
say "up. Open http://127.0.0.1:$FPESA_NGINX_PORT/"
say "REST API: http://127.0.0.1:$FPESA_NGINX_PORT/api/v1/   websockets: ws://127.0.0.1:$FPESA_NGINX_PORT/ws/v1/"
say "logs in $FPESA_LOG/, stop with: make down"
# A configuration may come with demo credentials to print (examples/secure).
creds="$(dirname "$FPESA_CONFIG")/demo-credentials.sh"
if [ -x "$creds" ]; then
    echo
    FPESA_NGINX_PORT=$FPESA_NGINX_PORT "$creds"
fi
