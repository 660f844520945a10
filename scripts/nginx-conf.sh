#!/usr/bin/env bash
# Writes var/<stack>/nginx/nginx.conf for this stack from nginx/nginx.conf.in.
#
# The upstream pools get one "server" line per instance the stack runs:
# two mappers unless FPESA_MAPPERS=1, one liveupdate; FPESA_NGINX_MAPPERS and
# FPESA_NGINX_LIVES ("host:port host:port") add more. client_max_body_size
# follows http.max_body of FPESA_CONFIG (64KiB when absent) unless
# FPESA_NGINX_MAX_BODY gives it in nginx's own units (e.g. 1m). Every path
# whose limit differs (a route's max_body, a content type's limit) gets a
# location of its own with that limit, from restmapper --body-limits, so each
# route is reachable up to its own limit and no further.
set -eu
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
prefix=$FPESA_VAR/nginx
mkdir -p "$prefix/tmp" "$prefix/logs" "$FPESA_LOG"

server_line() { printf '        server %s max_fails=1 fail_timeout=2s;' "$1"; }

mappers=$(server_line "127.0.0.1:$FPESA_MAPPER_PORT")
if [ "${FPESA_MAPPERS:-2}" -ge 2 ]; then
    mappers="$mappers
$(server_line "127.0.0.1:$FPESA_MAPPER2_PORT")"
fi
for hp in ${FPESA_NGINX_MAPPERS:-}; do mappers="$mappers
$(server_line "$hp")"; done
lives=$(server_line "127.0.0.1:$FPESA_LIVE_PORT")
for hp in ${FPESA_NGINX_LIVES:-}; do lives="$lives
$(server_line "$hp")"; done

# http.max_body of the configuration ("64KiB", "1MiB", "65536") in bytes.
max_body_bytes() {
    local v
    v=$(awk '
        /^[^ #]/ { top = $1 }
        top == "http:" && $1 == "max_body:" { print $2; exit }' "$FPESA_CONFIG" 2>/dev/null | tr -d '"'"'"'')
    [ -n "$v" ] || v=64KiB
    case "$v" in
    *KiB | *K | *k | *KB | *kb) echo $((${v%%[KkB]*} * 1024)) ;;
    *MiB | *M | *m | *MB | *mb) echo $((${v%%[MmB]*} * 1024 * 1024)) ;;
    *[!0-9]*) echo 65536 ;;
    *) echo "$v" ;;
    esac
}
if [ -n "${FPESA_NGINX_MAX_BODY:-}" ]; then
    max_body=$FPESA_NGINX_MAX_BODY
    max_text=$FPESA_NGINX_MAX_BODY
else
    bytes=$(max_body_bytes)
    max_body=$bytes
    max_text="$bytes bytes"
fi

# restmapper --body-limits prints "default N" and then "PATH N" per path.
route_locations=""
route_too_large=""
limits=""
if [ -x "$BUILD/bin/restmapper" ]; then
    limits=$("$BUILD/bin/restmapper" --body-limits "$FPESA_CONFIG" 2>/dev/null) || limits=""
fi
default_limit=$(awk '$1 == "default" { print $2 }' <<<"$limits")
i=0
while read -r path bytes; do
    [ -n "$path" ] && [ "$path" != default ] && [ "$bytes" != "$default_limit" ] || continue
    i=$((i + 1))
    # /image/{id} -> ^/api/v1/image/[^/]+/?$ (regex characters escaped, a
    # trailing slash optional as for the prefix location).
    re=$(printf '%s' "${path%/}" | sed -e 's/[][\.^$*+?()|]/\\&/g' -e 's/{[^}]*}/[^\/]+/g')
    route_locations="$route_locations
        location ~ \"^/api/v1$re/?\$\" {
            client_max_body_size $bytes;
            rewrite ^/api/v1(/.*)\$ \$1 break;
            proxy_pass http://restmapper;
            include $prefix/api-proxy.conf;
            error_page 413 = @too_large_$i;
        }"
    route_too_large="$route_too_large
        location @too_large_$i {
            default_type application/json;
            return 413 '{\"error\":{\"code\":413,\"description\":\"request body larger than $bytes bytes\"}}\\n';
        }"
done <<<"$limits"
cp "$FPESA_ROOT/nginx/api-proxy.conf" "$prefix/api-proxy.conf"
export FPESA_ROUTE_LOCATIONS=$route_locations FPESA_ROUTE_TOO_LARGE=$route_too_large
# /metrics of the mappers stays off the public port unless asked for
# (FPESA_NGINX_METRICS=public); Prometheus scrapes each mapper directly.
if [ "${FPESA_NGINX_METRICS:-}" = public ]; then
    metrics_location=""
else
    metrics_location='        location = /api/v1/metrics {
            default_type application/json;
            include '"$prefix"'/security-headers.conf;
            return 404 '"'"'{"error":{"code":404,"description":"no route for GET /metrics"}}'"'"';
        }'
fi

# Headers every answer carries (included from each location of nginx.conf).
cat >"$prefix/security-headers.conf.tmp" <<'HDRS'
add_header X-Content-Type-Options "nosniff" always;
add_header X-Frame-Options "DENY" always;
add_header Referrer-Policy "no-referrer" always;
add_header Cross-Origin-Opener-Policy "same-origin" always;
add_header Permissions-Policy "camera=(), microphone=(), geolocation=()" always;
HDRS
mv "$prefix/security-headers.conf.tmp" "$prefix/security-headers.conf"

dist=$FPESA_ROOT/frontend/dist
[ -f "$dist/index.html" ] || dist=$FPESA_ROOT/nginx/placeholder

# Workers: as many as cores, capped (the machine is shared with the servers).
cores=$(nproc 2>/dev/null || echo 2)
workers=${FPESA_NGINX_WORKERS:-$((cores < 4 ? cores : 4))}
# File descriptors: what this user may have, so worker_connections never
# asks for more than the system allows.
nofile=$(ulimit -Hn 2>/dev/null || echo 4096)
[ "$nofile" = unlimited ] && nofile=65536
[ "$nofile" -gt 65536 ] && nofile=65536
connections=$((nofile / 2))
[ "$connections" -gt 16384 ] && connections=16384

modules=""
[ -f /usr/share/nginx/modules-available/mod-http-nchan.conf ] && [ "${FPESA_NCHAN:-0}" = 1 ] &&
    modules="load_module modules/ngx_nchan_module.so;"

awk -v prefix="$prefix" -v logdir="$FPESA_LOG" -v port="$FPESA_NGINX_PORT" -v dist="$dist" \
    -v mappers="$mappers" -v lives="$lives" -v maxbody="$max_body" -v maxtext="$max_text" \
    -v modules="$modules" -v workers="$workers" -v nofile="$nofile" -v conns="$connections" \
    -v metricsloc="$metrics_location" '
    { gsub("@PREFIX@", prefix); gsub("@LOG@", logdir); gsub("@PORT@", port); gsub("@DIST@", dist);
      gsub("@MAX_BODY_TEXT@", maxtext); gsub("@MAX_BODY@", maxbody); gsub("@MODULES@", modules);
      gsub("@WORKERS@", workers); gsub("@NOFILE@", nofile); gsub("@CONNECTIONS@", conns);
      if ($0 == "@METRICS_LOCATION@") $0 = metricsloc;
      if ($0 == "@MAPPER_SERVERS@") $0 = mappers; if ($0 == "@LIVE_SERVERS@") $0 = lives;
      if ($0 == "@ROUTE_LOCATIONS@") $0 = ENVIRON["FPESA_ROUTE_LOCATIONS"];
      if ($0 == "@ROUTE_TOO_LARGE@") $0 = ENVIRON["FPESA_ROUTE_TOO_LARGE"]; print }' \
    "$FPESA_ROOT/nginx/nginx.conf.in" >"$prefix/nginx.conf.tmp"
mv "$prefix/nginx.conf.tmp" "$prefix/nginx.conf"
