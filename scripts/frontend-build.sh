#!/usr/bin/env bash
# Builds frontend/dist when it is missing or older than its sources (what
# nginx serves at /). Quiet on success; the build log's tail on failure.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FPESA_ROOT/frontend" || exit 1
[ -f package.json ] || exit 0
if [ ! -d node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error || exit 1
fi
if [ -f dist/index.html ] &&
    [ -z "$(find src index.html package.json package-lock.json vite.config.js -newer dist/index.html 2>/dev/null | head -n 1)" ]; then
    exit 0
fi
mkdir -p "$FPESA_LOG"
if ! npm run --silent build >"$FPESA_LOG/frontend-build.log" 2>&1; then
    tail -n 20 "$FPESA_LOG/frontend-build.log" >&2
    echo "fpesa: error: the frontend build failed" >&2
    exit 1
fi
