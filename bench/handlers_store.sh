#!/usr/bin/env bash
# Message store figures, each beside its reference measured in the same run:
#
#   1. messages_post draining a filled queue (batch 500: one multi-row INSERT
#      per transaction), messages/s, beside the same plugin with batch 1 (one
#      INSERT per transaction, fsync-bound).
#   2. GET /messages/?limit=50 answered by messages_get over the bus (rpc,
#      first page of a 1,000,000-row table): p50 and requests/s, beside a plain
#      libpq program running the same prepared query; through the mapper with
#      wrk as well when the stack runs one.
#   3. page 1 vs page 10,000 (limit 50) of that table: keyset (constant cost)
#      and, for contrast, the offset contract (cost grows with the offset).
#
# Needs the stack's broker and database (scripts/stack.sh start servers).
# Starts its own handler host on queues and tables of its own and removes
# them at the end. HS_N (default 50000) messages for the batched drain,
# HS_N1 (default 3000) for one per transaction, HS_ROWS (default 1000000),
# HS_SECONDS (default 5) per latency figure.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$FPESA_ROOT"

N=${HS_N:-50000}
N1=${HS_N1:-3000}
ROWS=${HS_ROWS:-1000000}
SECS=${HS_SECONDS:-${BENCH_SECONDS:-5}}
[ "$SECS" -gt 5 ] && SECS=5
PSQL=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql
WORK=$(mktemp -d /tmp/fpesa-hsbench.XXXXXX)
BIN=$BUILD/bench/handlers_bench
TAG=hsb$$
HOST_PID=

sql() { "$PSQL" -X -q -t -A -d "$FPESA_DATABASE_URL" -c "$1"; }

stop_host() {
    if [ -n "$HOST_PID" ]; then
        kill -TERM "$HOST_PID" 2>/dev/null
        wait "$HOST_PID" 2>/dev/null
        HOST_PID=
    fi
}

cleanup() {
    stop_host
    sql "DROP TABLE IF EXISTS ${TAG}_batch, ${TAG}_one, ${TAG}_big;
         DELETE FROM schema_migrations WHERE name LIKE '${TAG}%';" >/dev/null 2>&1
    /usr/bin/python3 - "$FPESA_AMQP_URL" "$TAG" <<'EOF' >/dev/null 2>&1
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = c.channel()
for q in ("batch", "one", "big"):
    for suffix, kind in ((":POST", "fanout"), (":GET", "direct")):
        name = "/%s_%s/%s" % (sys.argv[2], q, suffix)
        for n in (name, name + ".dlq"):
            ch.queue_delete(n)
            ch.exchange_delete(n)
c.close()
EOF
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$BIN" ] || { echo "$BIN is missing (make bench-bins)"; exit 1; }
[ -x "$BUILD/bin/handler" ] || { echo "$BUILD/bin/handler is missing (run make)"; exit 1; }

# config NAME BATCH PREFETCH: a host config for queue /<tag>_NAME/ and table <tag>_NAME.
config() {
    cat >"$WORK/$1.yaml" <<EOF
bus: {url: "$FPESA_AMQP_URL"}
database: {url: "$FPESA_DATABASE_URL"}
endpoints:
  - {path: "/${TAG}_$1/", method: POST, mode: publish}
  - {path: "/${TAG}_$1/", method: GET, mode: rpc}
handlers:
  - {name: post, plugin: messages_post.so, queue: "/${TAG}_$1/:POST", batch: $2, prefetch: $3,
     config: {table: ${TAG}_$1}}
  - {name: get, plugin: messages_get.so, queue: "/${TAG}_$1/:GET", config: {table: ${TAG}_$1}}
EOF
    echo "$WORK/$1.yaml"
}

start_host() { # CONFIG
    FPESA_LOG_LEVEL=warn FPESA_PLUGIN_DIR=$BUILD/plugins "$BUILD/bin/handler" --config "$1" \
        >>"$WORK/host.log" 2>&1 &
    HOST_PID=$!
}

now() { date +%s.%N; }

# drain NAME N BATCH PREFETCH: fill the queue, start the host, time the drain.
drain() {
    local cfg t0 c0 t1 c
    cfg=$(config "$1" "$3" "$4")
    # The host creates the table (migration) on a first start with an empty queue.
    start_host "$cfg"
    for _ in $(seq 1 100); do
        [ "$(sql "SELECT to_regclass('${TAG}_$1') IS NOT NULL")" = t ] && break
        sleep 0.1
    done
    stop_host
    "$BIN" fill "$FPESA_AMQP_URL" "/${TAG}_$1/:POST" "$2" >/dev/null || exit 1
    start_host "$cfg"
    while :; do
        c0=$(sql "SELECT count(*) FROM ${TAG}_$1")
        [ "$c0" -gt 0 ] && break
        sleep 0.02
    done
    t0=$(now)
    while :; do
        c=$(sql "SELECT count(*) FROM ${TAG}_$1")
        [ "$c" -ge "$2" ] && break
        kill -0 "$HOST_PID" 2>/dev/null || { echo "the host died"; tail "$WORK/host.log"; exit 1; }
        sleep 0.05
    done
    t1=$(now)
    stop_host
    awk -v n="$2" -v c0="$c0" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", (n - c0) / (b - a) }'
}

echo "--- messages_post: draining a filled queue"
batched=$(drain batch "$N" 500 1000)
echo "batch 500 per transaction: $N messages, $batched msg/s"
one=$(drain one "$N1" 1 100)
echo "one INSERT per transaction: $N1 messages, $one msg/s"
printf 'RESULT\tmessages_post msg/s (batch 500)\t%s\tone INSERT per transaction\t%s\t%s\n' \
    "$batched" "$one" "$(awk -v a="$batched" -v b="$one" 'BEGIN { printf "%.1fx", a / b }')"

echo "--- messages_get: $ROWS rows"
cfg=$(config big 100 256)
start_host "$cfg"
for _ in $(seq 1 100); do
    [ "$(sql "SELECT to_regclass('${TAG}_big') IS NOT NULL")" = t ] && break
    sleep 0.1
done
t0=$(now)
sql "INSERT INTO ${TAG}_big (id, received_at, data)
     SELECT 'row-' || g, now() - (($ROWS - g) || ' ms')::interval,
            jsonb_build_object('n', g, 'text', 'hello fpesa')
     FROM generate_series(1, $ROWS) g; ANALYZE ${TAG}_big;" || exit 1
echo "generated $ROWS rows in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s"
maxseq=$(sql "SELECT max(seq) FROM ${TAG}_big")
cursor() { printf 'b%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
deep=$((maxseq + 1 - 50 * (10000 - 1)))

figure() { # LABEL COMMAND...: run, print, echo "rate p50"
    local out
    out=$("${@:2}") || { echo "$1 failed" >&2; return 1; }
    printf '%s: %s\n' "$1" "$(grep -vE '^(RATE|P50MS) ' <<<"$out")" >&2
    printf '%s %s\n' "$(awk '/^RATE /{print $2}' <<<"$out")" "$(awk '/^P50MS /{print $2}' <<<"$out")"
}

read -r rpc_rate rpc_p50 < <(figure "rpc limit=50 page 1, 1 in flight" \
    "$BIN" rpc "$FPESA_AMQP_URL" "/${TAG}_big/:GET" "$SECS" 1 '{"limit":"50"}')
read -r rpc8_rate rpc8_p50 < <(figure "rpc limit=50 page 1, 8 in flight" \
    "$BIN" rpc "$FPESA_AMQP_URL" "/${TAG}_big/:GET" "$SECS" 8 '{"limit":"50"}')
read -r pg_rate pg_p50 < <(figure "libpq same query page 1" \
    "$BIN" pg "$FPESA_DATABASE_URL" "${TAG}_big" "$SECS" 9223372036854775807 50)
read -r deep_rate deep_p50 < <(figure "rpc limit=50 page 10,000 (keyset)" \
    "$BIN" rpc "$FPESA_AMQP_URL" "/${TAG}_big/:GET" "$SECS" 1 "{\"limit\":\"50\",\"before\":\"$(cursor $deep)\"}")
read -r pgdeep_rate pgdeep_p50 < <(figure "libpq same query page 10,000" \
    "$BIN" pg "$FPESA_DATABASE_URL" "${TAG}_big" "$SECS" "$deep" 50)
read -r off1_rate off1_p50 < <(figure "rpc offset contract page 1" \
    "$BIN" rpc "$FPESA_AMQP_URL" "/${TAG}_big/:GET" 2 1 '{"offset":"0","limit":"50"}')
read -r offd_rate offd_p50 < <(figure "rpc offset contract page 10,000" \
    "$BIN" rpc "$FPESA_AMQP_URL" "/${TAG}_big/:GET" 2 1 "{\"offset\":\"$((50 * 9999))\",\"limit\":\"50\"}")
stop_host

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
printf 'RESULT\tGET limit=50 over the bus, p50 ms\t%s\tlibpq same query p50 ms\t%s\t%s\n' \
    "$rpc_p50" "$pg_p50" "$(ratio "$rpc_p50" "$pg_p50")"
printf 'RESULT\tGET limit=50 over the bus, req/s (1 in flight; 8: %s)\t%s\tlibpq same query q/s\t%s\t%s\n' \
    "$rpc8_rate" "$rpc_rate" "$pg_rate" "$(ratio "$rpc_rate" "$pg_rate")"
printf 'RESULT\tkeyset page 10,000 p50 ms (rpc)\t%s\tpage 1 p50 ms\t%s\t%s\n' \
    "$deep_p50" "$rpc_p50" "$(ratio "$deep_p50" "$rpc_p50")"
printf 'RESULT\tkeyset page 10,000 p50 ms (libpq)\t%s\tpage 1 p50 ms\t%s\t%s\n' \
    "$pgdeep_p50" "$pg_p50" "$(ratio "$pgdeep_p50" "$pg_p50")"
printf 'RESULT\toffset contract page 10,000 p50 ms\t%s\tpage 1 p50 ms\t%s\t%s\n' \
    "$offd_p50" "$off1_p50" "$(ratio "$offd_p50" "$off1_p50")"

# Through the mapper, when this stack runs one: the stack's own table
# (whatever it holds), beside libpq running the same query on it.
if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$FPESA_MAPPER_PORT/health" 2>/dev/null &&
    command -v wrk >/dev/null; then
    url="http://127.0.0.1:$FPESA_MAPPER_PORT/messages/?limit=50"
    echo "--- GET /messages/?limit=50 through the mapper (stack table: $(sql 'SELECT count(*) FROM messages') rows)"
    w1=$(wrk -t1 -c1 -d"${SECS}s" --latency "$url")
    w8=$(wrk -t1 -c8 -d"${SECS}s" --latency "$url")
    grep -q 'Non-2xx' <<<"$w1$w8" && echo "warning: some answers were not 2xx"
    ms() { awk '$1 == "50%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 }
                              else if (v ~ /ms$/) sub(/ms/, "", v);
                              else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }; print v }'; }
    rps() { awk '/Requests\/sec/ { printf "%.0f", $2 }'; }
    http_p50=$(ms <<<"$w1") http_rps1=$(rps <<<"$w1") http_rps8=$(rps <<<"$w8")
    echo "mapper 1 connection: $http_rps1 req/s, p50 $http_p50 ms; 8 connections: $http_rps8 req/s"
    read -r mpg_rate mpg_p50 < <(figure "libpq same query on messages" \
        "$BIN" pg "$FPESA_DATABASE_URL" messages "$SECS" 9223372036854775807 50)
    printf 'RESULT\tGET /messages/?limit=50 via mapper p50 ms\t%s\tlibpq same query p50 ms\t%s\t%s\n' \
        "$http_p50" "$mpg_p50" "$(ratio "$http_p50" "$mpg_p50")"
    printf 'RESULT\tGET /messages/?limit=50 via mapper req/s (8 conns; 1: %s)\t%s\tlibpq same query q/s\t%s\t%s\n' \
        "$http_rps1" "$http_rps8" "$mpg_rate" "$(ratio "$http_rps8" "$mpg_rate")"
else
    echo "--- no mapper in this stack: the HTTP figure is skipped"
fi
