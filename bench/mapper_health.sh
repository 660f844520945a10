#!/usr/bin/env bash
# GET /health throughput of the restmapper beside nginx `return 200`, same
# wrk settings, same run (goal: ratio >= 0.7).
#
# Uses the stack's restmapper when one answers on FPESA_MAPPER_PORT; otherwise
# starts one of its own on an aux port (and the stack's servers when no broker
# is up), and stops everything it started. nginx gets a tiny configuration of
# its own on another aux port.
#
#   BENCH_SECONDS (default 5)  WRK_THREADS (2)  WRK_CONNECTIONS (64)
set -u
export FPESA_STACK=${FPESA_STACK:-bench} FPESA_PORT_BASE=${FPESA_PORT_BASE:-35800}
export FPESA_LOG_LEVEL=${FPESA_LOG_LEVEL:-warn}
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$FPESA_ROOT"

SECS=${BENCH_SECONDS:-5}
THREADS=${WRK_THREADS:-2}
CONNS=${WRK_CONNECTIONS:-64}
MAPPER_AUX=$((FPESA_AUX_PORT + 18))
NGINX_AUX=$((FPESA_AUX_PORT + 19))
WORK=$(mktemp -d)
started_servers=0
mapper_pid=

cleanup() {
    if [ -f "$WORK/nginx.pid" ]; then kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; fi
    if [ -n "$mapper_pid" ]; then
        kill "$mapper_pid" 2>/dev/null
        wait "$mapper_pid" 2>/dev/null
    fi
    [ $started_servers = 1 ] && "$FPESA_ROOT/scripts/stack.sh" stop >/dev/null 2>&1
    sleep 0.2
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v wrk >/dev/null || { echo "mapper_health: wrk is not installed (scripts/deps.sh)"; exit 1; }
health_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1/health")" = 200 ]; }

mapper=http://127.0.0.1:$FPESA_MAPPER_PORT
if ! health_ok "$mapper"; then
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$FPESA_AMQP_PORT") 2>/dev/null; then
        "$FPESA_ROOT/scripts/stack.sh" start servers || exit 1
        started_servers=1
    fi
    [ -x "$BUILD/bin/restmapper" ] || { echo "mapper_health: $BUILD/bin/restmapper is missing (make)"; exit 1; }
    FPESA_HTTP_LISTEN=127.0.0.1:$MAPPER_AUX "$BUILD/bin/restmapper" --config "$FPESA_CONFIG" \
        >"$WORK/restmapper.log" 2>&1 &
    mapper_pid=$!
    mapper=http://127.0.0.1:$MAPPER_AUX
    for _ in $(seq 1 100); do health_ok "$mapper" && break; sleep 0.1; done
    health_ok "$mapper" || { echo "mapper_health: restmapper did not become healthy"; tail "$WORK/restmapper.log"; exit 1; }
fi

mkdir -p "$WORK/logs"
cat >"$WORK/nginx.conf" <<CONF
worker_processes $(nproc);
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NGINX_AUX;
        location / { default_type application/json; return 200 '{"status":"ok","broker":"connected"}'; }
    }
}
CONF
/usr/sbin/nginx -p "$WORK" -c "$WORK/nginx.conf" || { echo "mapper_health: nginx did not start"; exit 1; }
for _ in $(seq 1 50); do curl -fs -o /dev/null "http://127.0.0.1:$NGINX_AUX/" && break; sleep 0.1; done

rate() { # URL -> requests per second
    wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" "$1" 2>&1 | tee -a "$WORK/wrk.txt" |
        awk '/^Requests\/sec:/ {print $2}'
}

echo "mapper_health: wrk -t$THREADS -c$CONNS -d${SECS}s, $(nproc) cores"
ngx=$(rate "http://127.0.0.1:$NGINX_AUX/health")
map=$(rate "$mapper/health")
if [ -z "$ngx" ] || [ -z "$map" ]; then
    echo "mapper_health: wrk gave no figure"
    cat "$WORK/wrk.txt"
    exit 1
fi
ratio=$(awk -v a="$map" -v b="$ngx" 'BEGIN { printf "%.3f", a / b }')
printf 'nginx return 200:        %12.0f req/s\n' "$ngx"
printf 'restmapper GET /health:  %12.0f req/s\n' "$map"
printf 'ratio: %s (goal >= 0.7)\n' "$ratio"
printf 'RESULT\tGET /health req/s\t%.0f\tnginx return 200 req/s\t%.0f\t%s\n' "$map" "$ngx" "$ratio"
