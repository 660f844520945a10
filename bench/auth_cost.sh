#!/usr/bin/env bash
# The cost of authentication on the POST path: confirmed POST throughput of
# one restmapper on three publish endpoints of one configuration, without
# credentials (anonymous), with an API key (X-API-Key, SHA-256 looked up
# among 100 keys) and with an HS256 JWT (libjwt), each measured in the same
# run; prints each as a ratio to the anonymous one. The three alternate
# (none key jwt none key jwt ...) for BENCH_ROUNDS rounds after a warm-up
# round, and each figure is the mean of its rounds, so that the drift of a
# noisy machine hits all three alike.
#
# Starts the stack's servers when no broker is up and stops what it started.
#   BENCH_SECONDS (default 5)  BENCH_ROUNDS (3)  WRK_THREADS (1)  WRK_CONNECTIONS (100)
set -u
export FPESA_STACK=${FPESA_STACK:-bench} FPESA_PORT_BASE=${FPESA_PORT_BASE:-35800}
export FPESA_LOG_LEVEL=${FPESA_LOG_LEVEL:-warn}
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$FPESA_ROOT"

SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${WRK_THREADS:-1}
CONNS=${WRK_CONNECTIONS:-100}
PORT=$((FPESA_AUX_PORT + 16))
WORK=$(mktemp -d)
started_servers=0
mapper_pid=
KEY=bench-key-0042
SECRET=bench-secret-of-the-hs256-key-0123456789

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
    /usr/bin/python3 - "$FPESA_AMQP_URL" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
for q in ("/bench/none/:POST", "/bench/key/:POST", "/bench/jwt/:POST"):
    ch = c.channel()
    try:
        ch.queue_purge(q)
    except pika.exceptions.ChannelClosedByBroker:
        pass
c.close()
PY
}

command -v wrk >/dev/null || { echo "auth_cost: wrk is not installed (scripts/deps.sh)"; exit 1; }
[ -x "$BUILD/bin/restmapper" ] || { echo "auth_cost: $BUILD/bin/restmapper is missing (make)"; exit 1; }
if ! (exec 3<>"/dev/tcp/127.0.0.1/$FPESA_AMQP_PORT") 2>/dev/null; then
    "$FPESA_ROOT/scripts/stack.sh" start servers || exit 1
    started_servers=1
fi

# 100 API keys (the right one last) and a token valid for an hour.
keys=$(/usr/bin/python3 - "$KEY" <<'PY'
import hashlib, sys
for i in range(99):
    print('    - { name: k%d, sha256: "%s", scopes: [w] }' % (i, hashlib.sha256(b"other-%d" % i).hexdigest()))
print('    - { name: bench, sha256: "%s", scopes: [w] }' % hashlib.sha256(sys.argv[1].encode()).hexdigest())
PY
)
token=$(/usr/bin/python3 - "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=")
head = b({"alg": "HS256", "typ": "JWT", "kid": "b1"}) + b"." + b({
    "sub": "bench", "iss": "bench", "aud": "fpesa", "scope": "w", "exp": int(time.time()) + 3600})
sig = base64.urlsafe_b64encode(hmac.new(sys.argv[1].encode(), head, hashlib.sha256).digest()).rstrip(b"=")
print((head + b"." + sig).decode())
PY
)
cat >"$WORK/endpoints.yaml" <<CONF
http:
  max_body: 64KiB
  max_connections_per_client: 10000
auth:
  api_keys:
$keys
  jwt:
    issuer: bench
    audience: fpesa
    keys:
      - { kid: b1, alg: HS256, secret: "$SECRET" }
endpoints:
  - { path: /bench/none/, method: POST, mode: publish, body: {type: object}, auth: {anonymous: true} }
  - { path: /bench/key/, method: POST, mode: publish, body: {type: object}, auth: {methods: [api_key], scopes: [w]} }
  - { path: /bench/jwt/, method: POST, mode: publish, body: {type: object}, auth: {methods: [jwt], scopes: [w]} }
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
    { echo "auth_cost: restmapper did not become healthy"; tail "$WORK/restmapper.log"; exit 1; }
# Each endpoint must accept its credential before it is measured.
check() { # name, curl options
    local n=$1 code
    shift
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Content-Type: application/json" \
        "$@" -d '{}' "$url/bench/$n/")
    [ "$code" = 202 ] || { echo "auth_cost: /bench/$n/ answered $code"; exit 1; }
}
check none
check key -H "X-API-Key: $KEY"
check jwt -H "Authorization: Bearer $token"

run() { # name, header or "", round
    purge
    if [ -n "$2" ]; then
        wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" -s bench/post.lua -H "$2" "$url/bench/$1/" >"$WORK/$1.$3.txt" 2>&1
    else
        wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" -s bench/post.lua "$url/bench/$1/" >"$WORK/$1.$3.txt" 2>&1
    fi
    awk '/^Requests\/sec:/ {print $2}' "$WORK/$1.$3.txt"
}
echo "auth_cost: $CONNS connections, ${SECS}s each, $ROUNDS rounds after a warm-up, $(nproc) cores"
run none "" warm >/dev/null
none=0 key=0 jwt=0
for r in $(seq 1 "$ROUNDS"); do
    a=$(run none "" "$r")
    b=$(run key "X-API-Key: $KEY" "$r")
    c=$(run jwt "Authorization: Bearer $token" "$r")
    if [ -z "$a" ] || [ -z "$b" ] || [ -z "$c" ]; then
        echo "auth_cost: no figure in round $r"
        cat "$WORK"/*."$r".txt
        exit 1
    fi
    printf 'round %d: anonymous %.0f  API key %.0f  JWT %.0f req/s\n' "$r" "$a" "$b" "$c"
    none=$(awk -v s="$none" -v x="$a" -v n="$ROUNDS" 'BEGIN { print s + x / n }')
    key=$(awk -v s="$key" -v x="$b" -v n="$ROUNDS" 'BEGIN { print s + x / n }')
    jwt=$(awk -v s="$jwt" -v x="$c" -v n="$ROUNDS" 'BEGIN { print s + x / n }')
done
for f in "$WORK"/*.txt; do
    bad=$(awk '/Non-2xx/ {print $NF}' "$f")
    [ -z "$bad" ] || echo "auth_cost: $(basename "$f" .txt) had $bad non-2xx answers"
done
rk=$(awk -v a="$key" -v b="$none" 'BEGIN { printf "%.3f", a / b }')
rj=$(awk -v a="$jwt" -v b="$none" 'BEGIN { printf "%.3f", a / b }')
printf 'POST, anonymous:            %10.0f req/s\n' "$none"
printf 'POST, API key:              %10.0f req/s  ratio %s\n' "$key" "$rk"
printf 'POST, JWT HS256:            %10.0f req/s  ratio %s\n' "$jwt" "$rj"
printf 'RESULT\tconfirmed POST req/s with an API key\t%.0f\twithout credentials\t%.0f\t%s\n' "$key" "$none" "$rk"
printf 'RESULT\tconfirmed POST req/s with a JWT (HS256)\t%.0f\twithout credentials\t%.0f\t%s\n' "$jwt" "$none" "$rj"
