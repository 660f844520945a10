#!/usr/bin/env bash
# Timers: TB_N (default 10000) timers due within the same second, called back
# on a local receiver by the scheduler of examples/timers/endpoints.yaml (its
# two instances, in a handler host of its own). Prints the p50/p99/max
# lateness of the calls and the webhooks per second.
#
# Needs the stack's database (scripts/stack.sh start servers); the receiver
# listens on FPESA_AUX_PORT + 12.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$FPESA_ROOT"

N=${TB_N:-10000}
PORT=$((${FPESA_AUX_PORT:-35610} + 12))
CONFIG=$FPESA_ROOT/examples/timers/endpoints.yaml
HOST_PID=

cleanup() {
    if [ -n "$HOST_PID" ]; then
        kill -TERM "$HOST_PID" 2>/dev/null
        wait "$HOST_PID" 2>/dev/null
    fi
}
trap cleanup EXIT

[ -x "$BUILD/bin/handler" ] && [ -f "$BUILD/plugins/timer_service.so" ] || {
    echo "timers: build first (make)" >&2
    exit 1
}
mkdir -p "$FPESA_LOG"
FPESA_LOG_LEVEL=${FPESA_LOG_LEVEL:-warn} "$BUILD/bin/handler" --config "$CONFIG" \
    --only timer_scheduler >>"$FPESA_LOG/bench-timers.log" 2>&1 &
HOST_PID=$!
# The scheduler creates its table at start.
PSQL=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql
for _ in $(seq 100); do
    [ "$("$PSQL" -X -q -t -A -d "$FPESA_DATABASE_URL" -c "SELECT to_regclass('timers') IS NOT NULL" 2>/dev/null)" = t ] && break
    kill -0 "$HOST_PID" 2>/dev/null || { tail -n 5 "$FPESA_LOG/bench-timers.log" >&2; exit 1; }
    sleep 0.1
done
/usr/bin/python3 bench/timers_bench.py "$FPESA_DATABASE_URL" "$PORT" "$N"
