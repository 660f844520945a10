#!/usr/bin/env bash
# rpc round trip through the restmapper beyond the worker's own time, on
# loopback (goal: p50 under 1 ms). bench/rpc_latency.c is both the echo
# worker (original fpesa protocol, rabbitmq-c) and a sequential keep-alive
# HTTP client. The restmapper runs on an aux port with a configuration of its
# own. Starts the stack's servers when no broker is up and stops everything
# it started.
#
#   RPC_REQUESTS (default 5000)
set -u
export FPESA_STACK=${FPESA_STACK:-bench} FPESA_PORT_BASE=${FPESA_PORT_BASE:-35800}
export FPESA_LOG_LEVEL=${FPESA_LOG_LEVEL:-warn}
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$FPESA_ROOT"

N=${RPC_REQUESTS:-5000}
PORT=$((FPESA_AUX_PORT + 14))
QUEUE="/bench/echo:POST"
WORK=$(mktemp -d)
started_servers=0
mapper_pid=

cleanup() {
    if [ -n "$mapper_pid" ]; then
        kill "$mapper_pid" 2>/dev/null
        wait "$mapper_pid" 2>/dev/null
    fi
    [ $started_servers = 1 ] && "$FPESA_ROOT/scripts/stack.sh" stop >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$BUILD/bin/restmapper" ] || { echo "rpc_latency: $BUILD/bin/restmapper is missing (make)"; exit 1; }
[ -x "$BUILD/bench/rpc_latency" ] || { echo "rpc_latency: $BUILD/bench/rpc_latency is missing (make bench-bins)"; exit 1; }
if ! (exec 3<>"/dev/tcp/127.0.0.1/$FPESA_AMQP_PORT") 2>/dev/null; then
    "$FPESA_ROOT/scripts/stack.sh" start servers || exit 1
    started_servers=1
fi

cat >"$WORK/endpoints.yaml" <<CONF
endpoints:
  - path: /bench/echo
    method: POST
    mode: rpc
    timeout: 5s
    body: {type: object}
CONF
FPESA_HTTP_LISTEN=127.0.0.1:$PORT "$BUILD/bin/restmapper" --config "$WORK/endpoints.yaml" \
    >"$WORK/restmapper.log" 2>&1 &
mapper_pid=$!
for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/health")" = 200 ] && break
    sleep 0.1
done

out=$(timeout 300 "$BUILD/bench/rpc_latency" "$FPESA_AMQP_URL" "$QUEUE" 127.0.0.1 "$PORT" /bench/echo "$N") ||
    { echo "rpc_latency: failed: $out"; tail "$WORK/restmapper.log"; exit 1; }
echo "$out"
beyond=$(sed -n 's/.*beyond_worker_p50=\([0-9.]*\)ms.*/\1/p' <<<"$out")
printf 'rpc p50 beyond the worker: %s ms (goal < 1 ms)\n' "$beyond"
printf 'RESULT\trpc p50 beyond worker (ms)\t%s\tgoal (ms)\t1\t%s\n' "$beyond" \
    "$(awk -v a="$beyond" 'BEGIN { printf "%.3f", a / 1 }')"
