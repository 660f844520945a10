#!/usr/bin/env bash
# make up-cluster: starts the scaled-out system in the background (see
# scripts/cluster.sh) and prints what runs where.
set -u
export FPESA_STACK=up
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FPESA_ROOT"
if FPESA_STACK=up scripts/stack.sh status | grep -q running; then
    die "make up's stack is running on the same ports; stop it with make down first"
fi
if [ -f frontend/package.json ] && [ ! -f frontend/dist/index.html ]; then
    say "building the frontend"
    mkdir -p "$FPESA_LOG"
    (cd frontend && npm run --silent build >"$FPESA_LOG/frontend-build.log" 2>&1) ||
        { tail -n 20 "$FPESA_LOG/frontend-build.log" >&2; die "the frontend build failed"; }
fi
scripts/cluster.sh start || { scripts/cluster.sh stop; exit 1; }
echo
say "cluster up. Open http://127.0.0.1:8888/"
say "logs in var/cluster/log/, stop with: make down"
