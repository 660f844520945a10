#!/usr/bin/env bash
# Confirmed POST throughput of this restmapper beside the restmapper of a
# reference commit, same broker, same configuration, same run: what the
# exact data path (the body checked by jsontext and spliced into the
# envelope, no jansson parse and dump of the data) costs or saves.
#
# The reference is built from BENCH_REF (default: the last commit before the
# exact data path) in a temporary git worktree. Both mappers run on aux ports
# with a publish endpoint that has no consumer (its queue is purged between
# runs); wrk alternates between them (A B A B ...) so that drift of the
# machine hits both alike. Two bodies: a small object, and a 1.5 KiB one
# full of reals. Starts the stack's servers when no broker is up.
#
#   BENCH_SECONDS (default 5)  BENCH_ROUNDS (5)  WRK_CONNECTIONS (100)  BENCH_REF
set -u
export FPESA_STACK=${FPESA_STACK:-bench} FPESA_PORT_BASE=${FPESA_PORT_BASE:-35800}
export FPESA_LOG_LEVEL=${FPESA_LOG_LEVEL:-warn}
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$FPESA_ROOT"

SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${WRK_CONNECTIONS:-100}
REF=${BENCH_REF:-96bc2b9}
PORT_NEW=$((FPESA_AUX_PORT + 11))
PORT_REF=$((FPESA_AUX_PORT + 12))
EXCHANGE="/bench/exact/:POST"
WORK=$(mktemp -d)
TREE=$WORK/ref
started_servers=0
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    purge 2>/dev/null
    [ -d "$TREE" ] && git worktree remove --force "$TREE" >/dev/null 2>&1
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

command -v wrk >/dev/null || { echo "exact_post: wrk is not installed (scripts/deps.sh)"; exit 1; }
[ -x "$BUILD/bin/restmapper" ] || { echo "exact_post: $BUILD/bin/restmapper is missing (make)"; exit 1; }

echo "exact_post: building the reference restmapper of $REF"
git worktree add --detach "$TREE" "$REF" >"$WORK/worktree.log" 2>&1 ||
    { echo "exact_post: cannot check out $REF"; cat "$WORK/worktree.log"; exit 1; }
make -C "$TREE" -j2 BUILD="$WORK/refbuild" "$WORK/refbuild/bin/restmapper" >"$WORK/build.log" 2>&1 ||
    { echo "exact_post: the reference does not build"; tail -20 "$WORK/build.log"; exit 1; }

if ! (exec 3<>"/dev/tcp/127.0.0.1/$FPESA_AMQP_PORT") 2>/dev/null; then
    "$FPESA_ROOT/scripts/stack.sh" start servers || exit 1
    started_servers=1
fi

cat >"$WORK/endpoints.yaml" <<CONF
http:
  max_body: 64KiB
endpoints:
  - path: /bench/exact/
    method: POST
    mode: publish
    body: {type: object}
CONF

start_mapper() { # BINARY PORT
    FPESA_HTTP_LISTEN=127.0.0.1:$2 "$1" --config "$WORK/endpoints.yaml" >>"$WORK/mapper-$2.log" 2>&1 &
    pids+=($!)
    local i
    for i in $(seq 1 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$2/health")" = 200 ] && return 0
        sleep 0.1
    done
    echo "exact_post: the restmapper on port $2 did not become healthy"
    tail "$WORK/mapper-$2.log"
    exit 1
}
start_mapper "$BUILD/bin/restmapper" "$PORT_NEW"
PID_NEW=${pids[-1]}
start_mapper "$WORK/refbuild/bin/restmapper" "$PORT_REF"
PID_REF=${pids[-1]}

# The bodies: a small object, and one of 1.5 KiB full of reals and integers.
cat >"$WORK/small.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"text":"hello world","n":1}'
wrk.headers["Content-Type"] = "application/json"
LUA
/usr/bin/python3 - "$WORK/numbers.lua" <<'PY'
import json, random, sys
rnd = random.Random(7)
vals = {"k%d" % i: (round(rnd.uniform(-1e6, 1e6), 6) if i % 2 else rnd.randrange(-10**12, 10**12))
        for i in range(80)}
body = json.dumps({"readings": vals, "unit": "mV"}, separators=(",", ":"))
with open(sys.argv[1], "w") as f:
    f.write('wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n'
            % json.dumps(body))
PY

cpu_ticks() { # PID -> user + system clock ticks the process used so far
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

rate() { # PORT PID SCRIPT -> "req/s cpu-us-per-request" (non-2xx fails the run)
    local t0 t1 n
    purge
    t0=$(cpu_ticks "$2")
    wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$3" "http://127.0.0.1:$1/bench/exact/" >"$WORK/wrk.txt" 2>&1
    t1=$(cpu_ticks "$2")
    if grep -q 'Non-2xx' "$WORK/wrk.txt"; then
        echo "exact_post: non-2xx answers from port $1" >&2
        cat "$WORK/wrk.txt" >&2
        return 1
    fi
    n=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
    awk -v r="$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.txt")" -v d=$((t1 - t0)) -v n="$n" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%s %.1f\n", r, (n > 0 ? d * 1e6 / hz / n : 0) }'
}

median() { sort -n | awk '{ v[NR] = $1 } END {
    printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "exact_post: $CONNS connections, ${SECS}s per run, $ROUNDS rounds, $(nproc) cores"
# The mapper's own CPU time per request is the cost of the data path
# itself; the throughput also depends on the broker's confirms and on
# whatever else runs on the machine.
for body in small numbers; do
    new_sum=0
    ref_sum=0
    ratios=()
    cpu_ratios=()
    for r in $(seq 1 "$ROUNDS"); do
        read -r a ac <<<"$(rate "$PORT_REF" "$PID_REF" "$WORK/$body.lua")" || exit 1
        read -r b bc <<<"$(rate "$PORT_NEW" "$PID_NEW" "$WORK/$body.lua")" || exit 1
        [ -n "$a" ] && [ -n "$b" ] || exit 1
        printf '  %-8s round %d: reference %7.0f req/s %6.1f us cpu/req   this %7.0f req/s %6.1f us cpu/req\n' \
            "$body" "$r" "$a" "$ac" "$b" "$bc"
        ref_sum=$(awk -v s="$ref_sum" -v x="$a" 'BEGIN { print s + x }')
        new_sum=$(awk -v s="$new_sum" -v x="$b" 'BEGIN { print s + x }')
        ratios+=("$(awk -v a="$b" -v b="$a" 'BEGIN { printf "%.4f", a / b }')")
        cpu_ratios+=("$(awk -v a="$bc" -v b="$ac" 'BEGIN { printf "%.4f", (b > 0 ? a / b : 0) }')")
    done
    # Medians of the rounds' ratios: a burst of load elsewhere on the
    # machine during one run moves one ratio, not the figure.
    ratio=$(printf '%s\n' "${ratios[@]}" | median)
    cpu=$(printf '%s\n' "${cpu_ratios[@]}" | median)
    printf '%s body: throughput this / reference (%s) = %s; mapper CPU per request this / reference = %s (medians of %d rounds; goal: throughput >= 0.95)\n' \
        "$body" "$REF" "$ratio" "$cpu" "$ROUNDS"
    printf 'RESULT\tconfirmed POST req/s, %s body\t%.0f\treference %s\t%.0f\t%s\n' "$body" \
        "$(awk -v s="$new_sum" -v n="$ROUNDS" 'BEGIN { print s / n }')" "$REF" \
        "$(awk -v s="$ref_sum" -v n="$ROUNDS" 'BEGIN { print s / n }')" "$ratio"
done
