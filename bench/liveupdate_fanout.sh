#!/usr/bin/env bash
# liveupdate fan-out figures, beside nginx's nchan module doing the same job.
#
#   1,000 websocket clients, 1,000 messages/s for LIVE_BENCH_SECONDS (default 5):
#     latency from the publish being answered (the mapper's 202 when the stack
#     runs a mapper, else the broker's confirm, which is when the mapper would
#     answer) to the receipt at every client, p50/p99; then the same through
#     nchan (HTTP publish answered 201/202 -> websocket subscribers).
#   The two are compared on the latency from when each publish was due (the
#     schedule of RATE a second): nchan answers its publisher only after its
#     fan-out, so its publisher falls behind the schedule when nchan is slow,
#     and latencies from the answer or the send alone would hide that wait.
#     The rate each publisher achieved is printed too.
#   LIVE_BENCH_RUNS (default 1) repeats both measurements, interleaved, and
#     prints every run: the machine may be shared, so read ranges.
#     LIVE_BENCH_VIA=broker publishes straight to the broker even when a
#     mapper runs (liveupdate alone, without the mapper's share of the time).
#     The client prints how busy its own receiving loop was: near 100%, the
#     figures are the client's, not the server's.
#   The same 1,000-client fan-out as Server-Sent Events (GET /events/v1/...),
#     beside nchan's EventSource subscribers, in the same run.
#   10,000 idle connections: resident memory of liveupdate (goal < 100 MiB).
#   LIVE_BENCH_STUCK (default 100) resuming clients that never read, with
#     ?since= LIVE_BENCH_BACK (default 100,000) stored messages back: RSS of
#     liveupdate before and with them, and the latency of LIVE_BENCH_LAT_CLIENTS
#     (default 200) ordinary clients without and with them.
#
# Needs the stack's broker (scripts/stack.sh start servers) and, for the
# resuming clients, its handler and database (start apps); starts its own
# liveupdate and its own nginx+nchan on aux ports and stops them at the end.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$FPESA_ROOT"

SECS=${LIVE_BENCH_SECONDS:-5}
CLIENTS=${LIVE_BENCH_CLIENTS:-1000}
RATE=${LIVE_BENCH_RATE:-1000}
IDLE=${LIVE_BENCH_IDLE:-10000}
LIVE_PORT=$((FPESA_AUX_PORT + 15))
NCHAN_PORT=$((FPESA_AUX_PORT + 16))
WORK=$(mktemp -d /tmp/fpesa-livebench.XXXXXX)
BIN=$BUILD/bench/liveupdate_fanout
PIDS=()
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" -lt $((IDLE + 200)) ]; then
    echo "open files limit $(ulimit -n) is below $((IDLE + 200)); the idle figure uses fewer connections"
    IDLE=$(($(ulimit -n) - 200))
fi

[ -x "$BIN" ] || { echo "$BIN is missing (make bench-bins)"; exit 1; }
[ -x "$BUILD/bin/liveupdate" ] || { echo "build/bin/liveupdate is missing (run make)"; exit 1; }

# ---- liveupdate of our own ---------------------------------------------------
FPESA_LIVE_LISTEN=127.0.0.1:$LIVE_PORT FPESA_LOG_LEVEL=warn \
    "$BUILD/bin/liveupdate" --config "$FPESA_CONFIG" >"$WORK/liveupdate.log" 2>&1 &
LIVE_PID=$!
PIDS+=("$LIVE_PID")
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$LIVE_PORT/health" && break
    sleep 0.1
done
curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$LIVE_PORT/health" ||
    { echo "liveupdate did not come up:"; cat "$WORK/liveupdate.log"; exit 1; }

# ---- nginx + nchan of our own ---------------------------------------------------
mkdir -p "$WORK/nginx/tmp" "$WORK/nginx/logs"
cat >"$WORK/nginx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
worker_rlimit_nofile 30000;
events { worker_connections 30000; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NCHAN_PORT;
        # A channel per run (?id=): a new subscriber may be handed the last
        # messages of the channel, whose seq would count as this run's.
        location = /sub { nchan_subscriber websocket; nchan_channel_id \$arg_id; }
        location = /pub { nchan_publisher; nchan_channel_id \$arg_id; nchan_message_buffer_length 16; }
        location = /events { nchan_subscriber eventsource; nchan_channel_id \$arg_id; }
    }
}
EOF
NCHAN=0
if [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/logs/stdout.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 1 50); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$NCHAN_PORT/pub?id=probe" && { NCHAN=1; break; }
        sleep 0.1
    done
    [ "$NCHAN" = 1 ] || { echo "nginx with nchan did not start:"; cat "$WORK/nginx/logs/"*; }
else
    echo "libnginx-mod-nchan is not installed: no nchan reference"
fi

# ---- fan-out latency ------------------------------------------------------------
if [ "${LIVE_BENCH_VIA:-}" != broker ] &&
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$FPESA_MAPPER_PORT/health" >/dev/null 2>&1; then
    PUB=(--post "http://127.0.0.1:$FPESA_MAPPER_PORT/messages/")
    FROM="the mapper's 202"
else
    PUB=(--amqp "$FPESA_AMQP_URL" --exchange "/messages/:POST")
    FROM="the broker's confirm (no mapper running)"
fi
RUNS=${LIVE_BENCH_RUNS:-1}
NGINX_WORKER=""
[ "$NCHAN" = 1 ] && NGINX_WORKER=$(ps -o pid= --ppid "$(cat "$WORK/nginx/nginx.pid")" | head -n 1 | tr -d ' ')
fig() { sed -n "s/^FIGURES.* $1=\([0-9.]*\).*/\1/p" "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
hz=$(getconf CLK_TCK)
deliv=$((RATE * SECS * CLIENTS))
per_us() { awk -v t="$1" -v hz="$hz" -v n="$deliv" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }'; }

for run in $(seq 1 "$RUNS"); do
    echo "---- run $run of $RUNS"
    echo "liveupdate: $CLIENTS clients, $RATE msg/s for ${SECS}s, latency from $FROM to receipt"
    live_cpu0=$(cpu_ticks "$LIVE_PID")
    timeout 300 "$BIN" --ws "ws://127.0.0.1:$LIVE_PORT/messages/" --clients "$CLIENTS" \
        --rate "$RATE" --seconds "$SECS" "${PUB[@]}" | tee "$WORK/live.out"
    live_cpu=$(( $(cpu_ticks "$LIVE_PID") - live_cpu0 ))
    echo "liveupdate RSS after the fan-out: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$LIVE_PID/status)"
    : >"$WORK/nchan.out"
    nchan_cpu=""
    if [ "$NCHAN" = 1 ]; then
        echo "nchan: $CLIENTS clients, $RATE msg/s for ${SECS}s, latency from the publish response to receipt"
        nchan_cpu0=$(cpu_ticks "$NGINX_WORKER")
        timeout 300 "$BIN" --ws "ws://127.0.0.1:$NCHAN_PORT/sub?id=run$run" --clients "$CLIENTS" \
            --rate "$RATE" --seconds "$SECS" --post "http://127.0.0.1:$NCHAN_PORT/pub?id=run$run" | tee "$WORK/nchan.out"
        nchan_cpu=$(( $(cpu_ticks "$NGINX_WORKER") - nchan_cpu0 ))
    fi
    L=$WORK/live.out N=$WORK/nchan.out
    printf 'RESULT\trun %d: liveupdate p50 from when due, %d clients @ %d msg/s (ms)\t%s\tnchan (ms)\t%s\t%s\n' \
        "$run" "$CLIENTS" "$RATE" "$(fig due_p50_ms "$L")" "$(fig due_p50_ms "$N")" \
        "$(ratio "$(fig due_p50_ms "$L")" "$(fig due_p50_ms "$N")")"
    printf 'RESULT\trun %d: liveupdate p99 from when due (ms)\t%s\tnchan (ms)\t%s\t%s\n' \
        "$run" "$(fig due_p99_ms "$L")" "$(fig due_p99_ms "$N")" \
        "$(ratio "$(fig due_p99_ms "$L")" "$(fig due_p99_ms "$N")")"
    printf 'RESULT\trun %d: liveupdate p50 / p99 from the answer (ms)\t%s / %s\tnchan (ms)\t%s / %s\t-\n' \
        "$run" "$(fig p50_ms "$L")" "$(fig p99_ms "$L")" "$(fig p50_ms "$N")" "$(fig p99_ms "$N")"
    printf 'RESULT\trun %d: liveupdate publish rate achieved (msg/s)\t%s\tnchan (msg/s)\t%s\t-\n' \
        "$run" "$(fig rate "$L")" "$(fig rate "$N")"
    printf 'RESULT\trun %d: liveupdate deliveries made\t%s of %s\tnchan\t%s of %s\t-\n' \
        "$run" "$(fig delivered "$L")" "$(fig expected "$L")" "$(fig delivered "$N")" "$(fig expected "$N")"
    # CPU per delivery (the machine may be shared, so latency alone can mislead).
    live_us=$(per_us "$live_cpu")
    nchan_us=$([ -n "$nchan_cpu" ] && per_us "$nchan_cpu")
    printf 'RESULT\trun %d: liveupdate CPU per delivery, all threads (us)\t%s\tnchan, its worker (us)\t%s\t%s\n' \
        "$run" "$live_us" "${nchan_us:--}" "$(ratio "$live_us" "$nchan_us")"

    # The same over Server-Sent Events, beside nchan's EventSource.
    echo "liveupdate SSE: $CLIENTS clients, $RATE msg/s for ${SECS}s, latency from $FROM to receipt"
    timeout 300 "$BIN" --sse "http://127.0.0.1:$LIVE_PORT/events/v1/messages/" --clients "$CLIENTS" \
        --rate "$RATE" --seconds "$SECS" "${PUB[@]}" | tee "$WORK/live-sse.out"
    : >"$WORK/nchan-sse.out"
    if [ "$NCHAN" = 1 ]; then
        echo "nchan EventSource: $CLIENTS clients, $RATE msg/s for ${SECS}s"
        timeout 300 "$BIN" --sse "http://127.0.0.1:$NCHAN_PORT/events?id=sse$run" --clients "$CLIENTS" \
            --rate "$RATE" --seconds "$SECS" --post "http://127.0.0.1:$NCHAN_PORT/pub?id=sse$run" | tee "$WORK/nchan-sse.out"
    fi
    L=$WORK/live-sse.out N=$WORK/nchan-sse.out
    printf 'RESULT\trun %d: liveupdate SSE p50 from when due, %d clients @ %d msg/s (ms)\t%s\tnchan EventSource (ms)\t%s\t%s\n' \
        "$run" "$CLIENTS" "$RATE" "$(fig due_p50_ms "$L")" "$(fig due_p50_ms "$N")" \
        "$(ratio "$(fig due_p50_ms "$L")" "$(fig due_p50_ms "$N")")"
    printf 'RESULT\trun %d: liveupdate SSE p99 from when due (ms)\t%s\tnchan EventSource (ms)\t%s\t%s\n' \
        "$run" "$(fig due_p99_ms "$L")" "$(fig due_p99_ms "$N")" \
        "$(ratio "$(fig due_p99_ms "$L")" "$(fig due_p99_ms "$N")")"
    printf 'RESULT\trun %d: liveupdate SSE deliveries made\t%s of %s\tnchan EventSource\t%s of %s\t-\n' \
        "$run" "$(fig delivered "$L")" "$(fig expected "$L")" "$(fig delivered "$N")" "$(fig expected "$N")"
    printf 'RESULT\trun %d: liveupdate SSE p50 from when due (ms)\t%s\tliveupdate websocket, same run (ms)\t%s\t%s\n' \
        "$run" "$(fig due_p50_ms "$L")" "$(fig due_p50_ms "$WORK/live.out")" \
        "$(ratio "$(fig due_p50_ms "$L")" "$(fig due_p50_ms "$WORK/live.out")")"
done

# ---- resuming clients that never read ----------------------------------------------
STUCK=${LIVE_BENCH_STUCK:-100}
BACK=${LIVE_BENCH_BACK:-100000}
LAT_CLIENTS=${LIVE_BENCH_LAT_CLIENTS:-200}
LAT_RATE=${LIVE_BENCH_LAT_RATE:-500}
rss_mib_of() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
if psql "$FPESA_DATABASE_URL" -qAt -c "SELECT 1 FROM messages LIMIT 0" >/dev/null 2>&1; then
    echo "liveupdate: $STUCK resuming clients that never read, since $BACK stored messages back"
    tag=back$(date +%s)
    psql "$FPESA_DATABASE_URL" -q -c "INSERT INTO messages (id, data) SELECT '$tag-' || lpad(g::text, 7, '0'),
        jsonb_build_object('n', g, 'pad', repeat('x', 200)) FROM generate_series(1, $BACK) g" || exit 1
    since="$tag-0000001"
    rss_before=$(rss_mib_of "$LIVE_PID")
    echo "without them: $LAT_CLIENTS clients, $LAT_RATE msg/s for ${SECS}s"
    timeout 300 "$BIN" --ws "ws://127.0.0.1:$LIVE_PORT/messages/" --clients "$LAT_CLIENTS" \
        --rate "$LAT_RATE" --seconds "$SECS" "${PUB[@]}" | tee "$WORK/lat-base.out"
    timeout $((SECS + 120)) "$BIN" --ws "ws://127.0.0.1:$LIVE_PORT/messages/" --clients 1 \
        --idle $((SECS + 60)) --stuck "$STUCK" --since "$since" >"$WORK/stuck.out" 2>&1 &
    STUCK_PID=$!
    PIDS+=("$STUCK_PID")
    for _ in $(seq 1 300); do grep -q '^READY' "$WORK/stuck.out" 2>/dev/null && break; sleep 0.1; done
    sleep 3 # their first pages are fetched and written into full socket buffers
    cat "$WORK/stuck.out"
    rss_stuck=$(rss_mib_of "$LIVE_PID")
    echo "with them: $LAT_CLIENTS clients, $LAT_RATE msg/s for ${SECS}s"
    timeout 300 "$BIN" --ws "ws://127.0.0.1:$LIVE_PORT/messages/" --clients "$LAT_CLIENTS" \
        --rate "$LAT_RATE" --seconds "$SECS" "${PUB[@]}" | tee "$WORK/lat-stuck.out"
    rss_after=$(rss_mib_of "$LIVE_PID")
    curl -fsS --max-time 5 "http://127.0.0.1:$LIVE_PORT/metrics" |
        grep -E '^liveupdate_(clients|replayed_messages_total|queued_messages|replay_requests_inflight) '
    kill "$STUCK_PID" 2>/dev/null
    echo "liveupdate RSS: $rss_before MiB before, $rss_stuck MiB with $STUCK stuck resuming clients, $rss_after MiB after the second run"
    printf 'RESULT\tliveupdate RSS with %d resuming clients that never read, %d back (MiB)\t%s\twithout them (MiB)\t%s\t%s\n' \
        "$STUCK" "$BACK" "$rss_after" "$rss_before" "$(ratio "$rss_after" "$rss_before")"
    printf 'RESULT\tliveupdate p50 from when due, %d clients, %d stuck resuming beside (ms)\t%s\twithout them (ms)\t%s\t%s\n' \
        "$LAT_CLIENTS" "$STUCK" "$(fig due_p50_ms "$WORK/lat-stuck.out")" "$(fig due_p50_ms "$WORK/lat-base.out")" \
        "$(ratio "$(fig due_p50_ms "$WORK/lat-stuck.out")" "$(fig due_p50_ms "$WORK/lat-base.out")")"
    printf 'RESULT\tliveupdate p99 from when due, %d stuck resuming beside (ms)\t%s\twithout them (ms)\t%s\t%s\n' \
        "$STUCK" "$(fig due_p99_ms "$WORK/lat-stuck.out")" "$(fig due_p99_ms "$WORK/lat-base.out")" \
        "$(ratio "$(fig due_p99_ms "$WORK/lat-stuck.out")" "$(fig due_p99_ms "$WORK/lat-base.out")")"
else
    echo "no message store in this stack (start apps): no resuming-clients figure"
fi

# ---- idle connections -------------------------------------------------------------
echo "liveupdate: $IDLE idle connections"
rm -f "$WORK/idle.out"
timeout 120 "$BIN" --ws "ws://127.0.0.1:$LIVE_PORT/messages/" --clients "$IDLE" --idle 5 >"$WORK/idle.out" 2>&1 &
IDLE_PID=$!
PIDS+=("$IDLE_PID")
for _ in $(seq 1 600); do grep -q '^READY' "$WORK/idle.out" 2>/dev/null && break; sleep 0.1; done
sleep 1
cat "$WORK/idle.out"
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$LIVE_PID/status)
held=$(curl -fsS --max-time 5 "http://127.0.0.1:$LIVE_PORT/metrics" | sed -n 's/^liveupdate_clients \([0-9]*\)$/\1/p')
wait "$IDLE_PID" 2>/dev/null
rss_mib=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
echo "liveupdate holding ${held:-?} connections: RSS $rss_mib MiB (goal < 100 MiB)"
printf 'RESULT\tliveupdate RSS with %s idle connections (MiB)\t%s\tgoal (MiB)\t100\t%s\n' \
    "${held:-?}" "$rss_mib" "$(ratio "$rss_mib" 100)"
