#!/usr/bin/env bash
# The offset contract (GET /messages/?offset=&limit=&paginationId=, in the
# original fpesa's shape) against keyset pages, over the bus, on a table of
# OP_ROWS (default 1,000,000) rows, in one run:
#
#   offset 0        (first page, no paginationId)   vs keyset page 1
#   offset 500,000  (paginationId of the first page) vs keyset page at the
#                                                      same depth
#
# Each figure is the p50 of OP_SECONDS (default 5) seconds of rpc requests
# with one in flight (bench/handlers_bench.c). The offset page seeks on the
# store's dense position column, so it should cost what a keyset page costs
# whatever the offset and the table's size.
#
# Needs the stack's broker and database (scripts/stack.sh start servers).
# Starts its own handler host on a queue and table of its own and removes
# them at the end.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$FPESA_ROOT"

ROWS=${OP_ROWS:-1000000}
SECS=${OP_SECONDS:-${BENCH_SECONDS:-5}}
[ "$SECS" -gt 5 ] && SECS=5
PSQL=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql
WORK=$(mktemp -d /tmp/fpesa-opbench.XXXXXX)
BIN=$BUILD/bench/handlers_bench
TAG=opb$$
Q="/${TAG}/:GET"
HOST_PID=

sql() { "$PSQL" -X -q -t -A -d "$FPESA_DATABASE_URL" -c "$1"; }

cleanup() {
    if [ -n "$HOST_PID" ]; then
        kill -TERM "$HOST_PID" 2>/dev/null
        wait "$HOST_PID" 2>/dev/null
    fi
    sql "DROP TABLE IF EXISTS ${TAG}; DROP FUNCTION IF EXISTS ${TAG}_pos();
         DELETE FROM schema_migrations WHERE name = '${TAG}';" >/dev/null 2>&1
    /usr/bin/python3 - "$FPESA_AMQP_URL" "$TAG" <<'PY' >/dev/null 2>&1
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = c.channel()
for suffix in (":POST", ":GET"):
    name = "/%s/%s" % (sys.argv[2], suffix)
    for n in (name, name + ".dlq"):
        ch.queue_delete(n)
        ch.exchange_delete(n)
c.close()
PY
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$(dirname "$BIN")"
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -o "$BIN" bench/handlers_bench.c \
    $(pkg-config --cflags --libs librabbitmq libpq) || exit 1
[ -x "$BUILD/bin/handler" ] || { echo "$BUILD/bin/handler is missing (run make)"; exit 1; }

cat >"$WORK/host.yaml" <<YAML
bus: {url: "$FPESA_AMQP_URL"}
database: {url: "$FPESA_DATABASE_URL"}
endpoints:
  - {path: "/${TAG}/", method: GET, mode: rpc}
handlers:
  - {name: get, plugin: messages_get.so, queue: "$Q", config: {table: ${TAG}, compat: fpesa-python}}
YAML
FPESA_LOG_LEVEL=warn FPESA_PLUGIN_DIR=$BUILD/plugins "$BUILD/bin/handler" --config "$WORK/host.yaml" \
    >>"$WORK/host.log" 2>&1 &
HOST_PID=$!
for _ in $(seq 1 200); do
    [ "$(sql "SELECT to_regclass('${TAG}') IS NOT NULL")" = t ] && break
    kill -0 "$HOST_PID" 2>/dev/null || { echo "the host died"; cat "$WORK/host.log"; exit 1; }
    sleep 0.1
done

t0=$(date +%s.%N)
# Numbered 1..ROWS in pos as messages_post numbers what it stores.
sql "INSERT INTO ${TAG} (id, received_at, data, pos)
     SELECT 'row-' || g, now() - (($ROWS - g) || ' ms')::interval,
            jsonb_build_object('n', g, 'text', 'hello fpesa'), g
     FROM generate_series(1, $ROWS) g; ANALYZE ${TAG};" || exit 1
echo "generated $ROWS rows in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s"

maxseq=$(sql "SELECT max(seq) FROM ${TAG}")
maxpos=$(sql "SELECT max(pos) FROM ${TAG}")
half=$((ROWS / 2))
cursor() { printf 'b%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
# The keyset page holding the same rows as offset 500,000 of the frozen view.
deepseq=$(sql "SELECT seq FROM ${TAG} WHERE pos = $((maxpos - half + 1))")

p50() { # LABEL ARGS: prints the line, echoes the p50 in ms
    local out
    out=$("$BIN" rpc "$FPESA_AMQP_URL" "$Q" "$SECS" 1 "$2") || { echo "$1 failed" >&2; return 1; }
    printf '%s: %s\n' "$1" "$(grep -vE '^(RATE|P50MS) ' <<<"$out")" >&2
    awk '/^P50MS /{print $2}' <<<"$out"
}

# Check once that both pages hold the rows they should.
/usr/bin/python3 - "$FPESA_AMQP_URL" "$Q" "$maxpos" "$half" "$(cursor "$deepseq")" <<'PY' || exit 1
import json, sys, uuid, pika
url, q, pid, half, cur = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
c = pika.BlockingConnection(pika.URLParameters(url))
ch = c.channel()
rq = ch.queue_declare("", exclusive=True).method.queue
ch.queue_bind(rq, "RPC", routing_key=rq)
def rpc(args):
    cid = str(uuid.uuid4())
    ch.basic_publish(q, q, json.dumps({"data": None, "args": args}),
                     pika.BasicProperties(reply_to=rq, correlation_id=cid))
    for m, p, body in ch.consume(rq, auto_ack=True, inactivity_timeout=30):
        if m is None:
            sys.exit("no answer")
        if p.correlation_id == cid:
            ch.cancel()
            return json.loads(body)
a = rpc({"offset": str(half), "limit": "10", "paginationId": pid})
b = rpc({"limit": "10", "before": cur})
assert a["total"] == int(pid), a["total"]
assert a["messages"] == [m["data"] for m in b["messages"]], (a["messages"][:1], b["messages"][:1])
print("offset %d page == keyset page at the same depth (first n=%s)" % (half, a["messages"][0]["n"]))
c.close()
PY

k1=$(p50 "keyset page 1 (limit 10)" '{"limit":"10"}')
o1=$(p50 "offset 0 (limit 10, no paginationId)" '{"offset":"0","limit":"10"}')
kd=$(p50 "keyset page at depth $half (limit 10)" "{\"limit\":\"10\",\"before\":\"$(cursor "$deepseq")\"}")
od=$(p50 "offset $half (limit 10, paginationId $maxpos)" \
    "{\"offset\":\"$half\",\"limit\":\"10\",\"paginationId\":\"$maxpos\"}")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
printf 'RESULT\toffset page, offset 0, %s rows, p50 ms\t%s\tkeyset page 1 p50 ms\t%s\t%s\n' \
    "$ROWS" "$o1" "$k1" "$(ratio "$o1" "$k1")"
printf 'RESULT\toffset page, offset %s, %s rows, p50 ms\t%s\tkeyset page at that depth p50 ms\t%s\t%s\n' \
    "$half" "$ROWS" "$od" "$kd" "$(ratio "$od" "$kd")"
printf 'RESULT\toffset page, offset %s, p50 ms\t%s\toffset page, offset 0, p50 ms\t%s\t%s\n' \
    "$half" "$od" "$o1" "$(ratio "$od" "$o1")"
