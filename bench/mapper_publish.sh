#!/usr/bin/env bash
# Confirmed POST throughput of the restmapper beside a plain rabbitmq-c
# program (bench/publish_baseline.c) publishing the same persistent messages
# to the same broker with the same number of confirms outstanding, same run
# (goal: ratio >= 0.8).
#
# The restmapper runs on an aux port with a configuration of its own whose
# publish endpoint has no consumer; its queue is purged before and after
# each measurement. wrk keeps one request in flight per connection, so
# WRK_CONNECTIONS is the mapper's number of confirms outstanding and the
# baseline gets the same K. Starts the stack's servers when no broker is up
# and stops everything it started.
#
#   BENCH_SECONDS (default 5)  WRK_THREADS (1)  WRK_CONNECTIONS (100)
set -u
export FPESA_STACK=${FPESA_STACK:-bench} FPESA_PORT_BASE=${FPESA_PORT_BASE:-35800}
export FPESA_LOG_LEVEL=${FPESA_LOG_LEVEL:-warn}
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$FPESA_ROOT"

SECS=${BENCH_SECONDS:-5}
THREADS=${WRK_THREADS:-1}
CONNS=${WRK_CONNECTIONS:-100}
PORT=$((FPESA_AUX_PORT + 13))
EXCHANGE="/bench/publish/:POST"
# The envelope the mapper builds from bench/post.lua's body.
ENVELOPE='{"data":{"text":"hello world","n":1},"args":null}'
WORK=$(mktemp -d)
started_servers=0
mapper_pid=

cleanup() {
    if [ -n "$mapper_pid" ]; then
        kill "$mapper_pid" 2>/dev/null
        wait "$mapper_pid" 2>/dev/null
    fi
    purge 2>/dev/null
    [ $started_servers = 1 ] && "$FPESA_ROOT/scripts/stack.sh" stop >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

purge() {
    /usr/bin/python3 - "$FPESA_AMQP_URL" "$EXCHANGE" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
try:
    c.channel().queue_purge(sys.argv[2])
except pika.exceptions.ChannelClosedByBroker:
    pass
c.close()
PY
}

command -v wrk >/dev/null || { echo "mapper_publish: wrk is not installed (scripts/deps.sh)"; exit 1; }
[ -x "$BUILD/bin/restmapper" ] || { echo "mapper_publish: $BUILD/bin/restmapper is missing (make)"; exit 1; }
[ -x "$BUILD/bench/publish_baseline" ] || { echo "mapper_publish: $BUILD/bench/publish_baseline is missing (make bench-bins)"; exit 1; }

if ! (exec 3<>"/dev/tcp/127.0.0.1/$FPESA_AMQP_PORT") 2>/dev/null; then
    "$FPESA_ROOT/scripts/stack.sh" start servers || exit 1
    started_servers=1
fi

cat >"$WORK/endpoints.yaml" <<CONF
http:
  max_body: 64KiB
endpoints:
  - path: /bench/publish/
    method: POST
    mode: publish
    body: {type: object}
CONF
FPESA_HTTP_LISTEN=127.0.0.1:$PORT "$BUILD/bin/restmapper" --config "$WORK/endpoints.yaml" \
    >"$WORK/restmapper.log" 2>&1 &
mapper_pid=$!
url=http://127.0.0.1:$PORT
for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/health")" = 200 ] && break
    sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/health")" = 200 ] ||
    { echo "mapper_publish: restmapper did not become healthy"; tail "$WORK/restmapper.log"; exit 1; }

echo "mapper_publish: $CONNS confirms outstanding, ${SECS}s each, $(nproc) cores"
# Baseline: about SECS seconds worth at the rate measured in a short first run.
purge
probe=$("$BUILD/bench/publish_baseline" "$FPESA_AMQP_URL" "$EXCHANGE" 5000 "$CONNS" "$ENVELOPE") ||
    { echo "mapper_publish: baseline failed"; exit 1; }
prate=$(sed -n 's/.* rate=\([0-9]*\) .*/\1/p' <<<"$probe")
n=$((prate * SECS))
[ "$n" -ge 5000 ] || n=5000
purge
base=$("$BUILD/bench/publish_baseline" "$FPESA_AMQP_URL" "$EXCHANGE" "$n" "$CONNS" "$ENVELOPE") ||
    { echo "mapper_publish: baseline failed"; exit 1; }
echo "$base"
brate=$(sed -n 's/.* rate=\([0-9]*\) .*/\1/p' <<<"$base")
purge

wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" -s bench/post.lua "$url/bench/publish/" >"$WORK/wrk.txt" 2>&1
mrate=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.txt")
errors=$(grep -E '^ *Socket errors' "$WORK/wrk.txt")
stored=$(/usr/bin/python3 - "$FPESA_AMQP_URL" "$EXCHANGE" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
print(c.channel().queue_declare(sys.argv[2], passive=True).method.message_count)
c.close()
PY
)
purge
if [ -z "$mrate" ] || [ -z "$brate" ]; then
    echo "mapper_publish: no figure"
    cat "$WORK/wrk.txt"
    exit 1
fi
ratio=$(awk -v a="$mrate" -v b="$brate" 'BEGIN { printf "%.3f", a / b }')
printf 'rabbitmq-c baseline (K=%d):   %10.0f msg/s\n' "$CONNS" "$brate"
printf 'restmapper POST (wrk -c%d):   %10.0f req/s (non-2xx: %s, messages in the queue: %s)\n' \
    "$CONNS" "$mrate" "${non2xx:-0}" "$stored"
[ -n "$errors" ] && echo "wrk: $errors"
printf 'ratio: %s (goal >= 0.8)\n' "$ratio"
printf 'RESULT\tconfirmed POST req/s\t%.0f\trabbitmq-c K=%d msg/s\t%.0f\t%s\n' "$mrate" "$CONNS" "$brate" "$ratio"
