#!/usr/bin/env bash
# Writes var/nginx/nginx.conf for this stack from nginx/nginx.conf.in.
set -eu
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
prefix=$FPESA_VAR/nginx
mkdir -p "$prefix/tmp" "$prefix/logs" "$FPESA_LOG"
mappers="        server 127.0.0.1:$FPESA_MAPPER_PORT max_fails=1 fail_timeout=2s;"
if [ "${FPESA_MAPPERS:-2}" -ge 2 ]; then
    mappers="$mappers
        server 127.0.0.1:$FPESA_MAPPER2_PORT max_fails=1 fail_timeout=2s;"
fi
lives="        server 127.0.0.1:$FPESA_LIVE_PORT;"
dist=$FPESA_ROOT/frontend/dist
[ -d "$dist" ] || dist=$FPESA_ROOT/nginx/placeholder
modules=""
[ -f /usr/share/nginx/modules-available/mod-http-nchan.conf ] && [ "${FPESA_NCHAN:-0}" = 1 ] &&
    modules="load_module modules/ngx_nchan_module.so;"
awk -v prefix="$prefix" -v log="$FPESA_LOG" -v port="$FPESA_NGINX_PORT" -v dist="$dist" \
    -v mappers="$mappers" -v lives="$lives" -v maxbody="${FPESA_NGINX_MAX_BODY:-1m}" -v modules="$modules" '
    { gsub("@PREFIX@", prefix); gsub("@LOG@", log); gsub("@PORT@", port); gsub("@DIST@", dist);
      gsub("@MAX_BODY@", maxbody); gsub("@MODULES@", modules);
      if ($0 == "@MAPPER_SERVERS@") $0 = mappers; if ($0 == "@LIVE_SERVERS@") $0 = lives; print }' \
    "$FPESA_ROOT/nginx/nginx.conf.in" >"$prefix/nginx.conf"
