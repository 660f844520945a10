#!/usr/bin/env bash
# Installs what the project needs, only when something is missing: Debian
# packages with apt-get and the frontend's npm packages with npm ci.
set -eu
cd "$(dirname "$0")/.."

PKGS=(build-essential pkg-config clang clang-format curl ca-certificates procps iproute2
    libmicrohttpd-dev librabbitmq-dev libyaml-dev libjansson-dev libpq-dev libwebsockets-dev
    libcriterion-dev libpcre2-dev libcurl4-openssl-dev libvips-dev
    rabbitmq-server postgresql nginx libnginx-mod-nchan wrk
    libjwt-dev python3-jwt python3-cryptography python3-pytest-timeout stress-ng prometheus libssl-dev
    python3 python3-pytest python3-pika python3-websocket python3-websockets python3-requests python3-psycopg2 python3-sphinx python3-pil
    nodejs npm chromium)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# nodejs/npm may come from elsewhere than Debian; a working node and npm will do.
if command -v node >/dev/null && command -v npm >/dev/null; then
    tmp=()
    for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || tmp+=("$p"); done
    missing=("${tmp[@]+"${tmp[@]}"}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "fpesa: installing ${missing[*]}"
    [ "$(id -u)" = 0 ] || { echo "fpesa: error: run as root to install: ${missing[*]}" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Installing a server package must not start a system-wide copy of it.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.fpesa
    chmod +x /usr/sbin/policy-rc.d.fpesa
    had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ $had_policy = 1 ] || cp /usr/sbin/policy-rc.d.fpesa /usr/sbin/policy-rc.d
    rc=0
    apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
    [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
    rm -f /usr/sbin/policy-rc.d.fpesa
    [ $rc = 0 ] || { echo "fpesa: error: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
fi

if [ -f frontend/package-lock.json ]; then
    stamp=frontend/node_modules/.fpesa-lock
    if [ ! -f "$stamp" ] || ! cmp -s frontend/package-lock.json "$stamp"; then
        echo "fpesa: npm ci (frontend)"
        (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
        cp frontend/package-lock.json "$stamp"
    fi
fi

# The parsers the tests validate the OpenAPI and AsyncAPI documents with.
if [ -f tests/apidocs/package-lock.json ]; then
    stamp=tests/apidocs/node_modules/.fpesa-lock
    if [ ! -f "$stamp" ] || ! cmp -s tests/apidocs/package-lock.json "$stamp"; then
        echo "fpesa: npm ci (tests/apidocs)"
        (cd tests/apidocs && npm ci --no-audit --no-fund --loglevel=error)
        cp tests/apidocs/package-lock.json "$stamp"
    fi
fi
