#!/usr/bin/env bash
# liveupdate fan-out figures, beside nginx's nchan module doing the same job.
#
#   1,000 websocket clients, 1,000 messages/s for LIVE_BENCH_SECONDS (default 5):
#     latency from the publish being answered (the mapper's 202 when the stack
#     runs a mapper, else the broker's confirm, which is when the mapper would
#     answer) to the receipt at every client, p50/p99; then the same through
#     nchan (HTTP publish answered 201/202 -> websocket subscribers).
#   10,000 idle connections: resident memory of liveupdate (goal < 100 MiB).
#
# Needs the stack's broker (scripts/stack.sh start servers); starts its own
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

mkdir -p "$(dirname "$BIN")"
cc -std=c11 -O2 -Wall -Wextra -o "$BIN" bench/liveupdate_fanout.c \
    $(pkg-config --cflags --libs librabbitmq) -lpthread || exit 1
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
        location = /sub { nchan_subscriber websocket; nchan_channel_id bench; }
        location = /pub { nchan_publisher; nchan_channel_id bench; nchan_message_buffer_length 16; }
    }
}
EOF
NCHAN=0
if [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/logs/stdout.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 1 50); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$NCHAN_PORT/pub" && { NCHAN=1; break; }
        sleep 0.1
    done
    [ "$NCHAN" = 1 ] || { echo "nginx with nchan did not start:"; cat "$WORK/nginx/logs/"*; }
else
    echo "libnginx-mod-nchan is not installed: no nchan reference"
fi

# ---- fan-out latency ------------------------------------------------------------
if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$FPESA_MAPPER_PORT/health" >/dev/null 2>&1; then
    PUB=(--post "http://127.0.0.1:$FPESA_MAPPER_PORT/messages/")
    FROM="the mapper's 202"
else
    PUB=(--amqp "$FPESA_AMQP_URL" --exchange "/messages/:POST")
    FROM="the broker's confirm (no mapper running)"
fi
echo "liveupdate: $CLIENTS clients, $RATE msg/s for ${SECS}s, latency from $FROM to receipt"
live_cpu0=$(cpu_ticks "$LIVE_PID")
timeout 300 "$BIN" --ws "ws://127.0.0.1:$LIVE_PORT/messages/" --clients "$CLIENTS" \
    --rate "$RATE" --seconds "$SECS" "${PUB[@]}" | tee "$WORK/live.out"
live_cpu=$(( $(cpu_ticks "$LIVE_PID") - live_cpu0 ))
live_p50=$(sed -n 's/^FIGURES p50_ms=\([0-9.]*\).*/\1/p' "$WORK/live.out")
live_p99=$(sed -n 's/^FIGURES.* p99_ms=\([0-9.]*\).*/\1/p' "$WORK/live.out")
live_s50=$(sed -n 's/^FIGURES.* send_p50_ms=\([0-9.]*\).*/\1/p' "$WORK/live.out")
live_s99=$(sed -n 's/^FIGURES.* send_p99_ms=\([0-9.]*\).*/\1/p' "$WORK/live.out")
echo "liveupdate RSS after the fan-out: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$LIVE_PID/status)"

nchan_p50="" nchan_p99="" nchan_s50="" nchan_s99="" nchan_cpu=""
if [ "$NCHAN" = 1 ]; then
    echo "nchan: $CLIENTS clients, $RATE msg/s for ${SECS}s, latency from the publish response to receipt"
    NGINX_WORKER=$(ps -o pid= --ppid "$(cat "$WORK/nginx/nginx.pid")" | head -n 1 | tr -d ' ')
    nchan_cpu0=$(cpu_ticks "$NGINX_WORKER")
    timeout 300 "$BIN" --ws "ws://127.0.0.1:$NCHAN_PORT/sub" --clients "$CLIENTS" \
        --rate "$RATE" --seconds "$SECS" --post "http://127.0.0.1:$NCHAN_PORT/pub" | tee "$WORK/nchan.out"
    nchan_cpu=$(( $(cpu_ticks "$NGINX_WORKER") - nchan_cpu0 ))
    nchan_p50=$(sed -n 's/^FIGURES p50_ms=\([0-9.]*\).*/\1/p' "$WORK/nchan.out")
    nchan_p99=$(sed -n 's/^FIGURES.* p99_ms=\([0-9.]*\).*/\1/p' "$WORK/nchan.out")
    nchan_s50=$(sed -n 's/^FIGURES.* send_p50_ms=\([0-9.]*\).*/\1/p' "$WORK/nchan.out")
    nchan_s99=$(sed -n 's/^FIGURES.* send_p99_ms=\([0-9.]*\).*/\1/p' "$WORK/nchan.out")
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
printf 'RESULT\tliveupdate fan-out p50, %d clients @ %d msg/s (ms)\t%s\tnchan p50 (ms)\t%s\t%s\n' \
    "$CLIENTS" "$RATE" "${live_p50:--}" "${nchan_p50:--}" "$(ratio "$live_p50" "$nchan_p50")"
printf 'RESULT\tliveupdate fan-out p99, %d clients @ %d msg/s (ms)\t%s\tnchan p99 (ms)\t%s\t%s\n' \
    "$CLIENTS" "$RATE" "${live_p99:--}" "${nchan_p99:--}" "$(ratio "$live_p99" "$nchan_p99")"
# nchan answers its publisher after delivering, so from the send is the fair comparison.
printf 'RESULT\tliveupdate fan-out p50 from the send (ms)\t%s\tnchan p50 from the send (ms)\t%s\t%s\n' \
    "${live_s50:--}" "${nchan_s50:--}" "$(ratio "$live_s50" "$nchan_s50")"
printf 'RESULT\tliveupdate fan-out p99 from the send (ms)\t%s\tnchan p99 from the send (ms)\t%s\t%s\n' \
    "${live_s99:--}" "${nchan_s99:--}" "$(ratio "$live_s99" "$nchan_s99")"

# CPU per delivery (the machine may be shared, so latency alone can mislead).
hz=$(getconf CLK_TCK)
deliv=$((RATE * SECS * CLIENTS))
live_us=$(awk -v t="$live_cpu" -v hz="$hz" -v n="$deliv" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }')
nchan_us=$([ -n "$nchan_cpu" ] && awk -v t="$nchan_cpu" -v hz="$hz" -v n="$deliv" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }')
echo "CPU per delivery: liveupdate $live_us us (all threads), nchan ${nchan_us:--} us (its worker)"
printf 'RESULT\tliveupdate CPU per delivery (us)\t%s\tnchan CPU per delivery (us)\t%s\t%s\n' \
    "$live_us" "${nchan_us:--}" "$(ratio "$live_us" "$nchan_us")"

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
