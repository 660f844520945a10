#!/usr/bin/env bash
# The scaled-out system on one machine, as ordinary background processes:
# a 3-node RabbitMQ cluster, a PostgreSQL primary with a streaming replica,
# two handler hosts, two restmappers, two liveupdates and nginx in front.
#
#   scripts/cluster.sh start                 start what is not running yet
#   scripts/cluster.sh stop                  stop everything this cluster started
#   scripts/cluster.sh status                what runs where
#   scripts/cluster.sh kill-node N           kill -9 RabbitMQ node N (1..3)
#   scripts/cluster.sh stop-node N           stop RabbitMQ node N cleanly
#   scripts/cluster.sh start-node N          start node N again (it rejoins by itself)
#   scripts/cluster.sh leader QUEUE          the node number leading quorum queue QUEUE
#   scripts/cluster.sh kill NAME             kill -9 one program (mapper1, live2, handler1, ...)
#   scripts/cluster.sh start-apps            start the programs that are not running
#   scripts/cluster.sh stop-replica | start-replica
#   scripts/cluster.sh rabbitmqctl N ARGS... rabbitmqctl on node N
#   scripts/cluster.sh env                   the variables a client needs (shell syntax)
#
# Data, logs and pids live under var/cluster/ (make up-cluster) or under the
# test stack's folder (FPESA_STACK=test, ports from FPESA_PORT_BASE+60: a
# stack uses FPESA_PORT_BASE to +53, and stacks are 100 apart).
# The PostgreSQL clusters live under /tmp like scripts/stack.sh's, since the
# postgres user may not be able to enter the checkout.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

RABBIT_BIN=/usr/lib/rabbitmq/bin
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

if [ "$FPESA_STACK" = up ]; then
    CVAR=$FPESA_ROOT/var/cluster
    C_AMQP=(5672 5673 5674)
    C_DIST=(25672 25673 25674)
    C_EPMD=24369
    C_PG=5432
    C_REPLICA=5433
    C_MAPPER=(8081 8083)
    C_LIVE=(8082 8084)
    C_NGINX=8888
    C_TAG=up
else
    b=$((${FPESA_PORT_BASE:-21600} + 60))
    CVAR=$FPESA_VAR/cluster
    C_AMQP=($b $((b + 1)) $((b + 2)))
    C_DIST=($((b + 3)) $((b + 4)) $((b + 5)))
    C_EPMD=$((b + 6))
    C_PG=$((b + 7))
    C_REPLICA=$((b + 8))
    C_MAPPER=($((b + 10)) $((b + 11)))
    C_LIVE=($((b + 12)) $((b + 13)))
    C_NGINX=$((b + 14))
    C_TAG=$FPESA_STACK-$b
fi
C_LOG=$CVAR/log
C_RUN=$CVAR/run
C_PGDIR=/tmp/fpesa-pgc-$(printf '%s' "$CVAR" | md5sum | cut -c1-12)
SLOT=fpesa_replica
# Only what starts something makes the folders: status and stop leave a
# checkout that never ran a cluster as it is.
case "${1:-status}" in start*) mkdir -p "$C_LOG" "$C_RUN" ;; esac

node_name() { echo "fpesa-$C_TAG-r$1@localhost"; }
amqp_url() { echo "amqp://guest:guest@127.0.0.1:${C_AMQP[$1]}/"; }
# Every broker URL, starting with node FIRST (0-based), so that the programs
# spread over the nodes and each one knows where to go next.
amqp_urls() {
    local first=$1 k out=""
    for k in 0 1 2; do out="$out${out:+,}$(amqp_url $(((first + k) % 3)))"; done
    echo "$out"
}
PRIMARY_URL=postgresql://fpesa@127.0.0.1:$C_PG/fpesa
REPLICA_URL=postgresql://fpesa@127.0.0.1:$C_REPLICA/fpesa

pid_of() { cat "$C_RUN/$1.pid" 2>/dev/null; }
is_running() {
    local pid
    pid=$(pid_of "$1") || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}
port_taken() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
fail() { # MESSAGE [LOG]
    printf 'fpesa: error: %s\n' "$1" >&2
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        printf -- '--- last lines of %s ---\n' "$2" >&2
        tail -n 20 "$2" >&2
    fi
    exit 1
}
stop_pid() { # NAME: TERM, wait up to 10s, then KILL; only the recorded pid.
    local name=$1 pid i
    pid=$(pid_of "$name") || return 0
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$C_RUN/$name.pid"
}

# ---- RabbitMQ ---------------------------------------------------------------

rabbit_env() { # N (1..3)
    local d=$CVAR/rabbit$1
    export HOME=$d/home
    export RABBITMQ_MNESIA_BASE=$d/mnesia
    export RABBITMQ_LOG_BASE=$d/log
    export RABBITMQ_NODENAME=$(node_name "$1")
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=${C_AMQP[$(($1 - 1))]}
    export RABBITMQ_DIST_PORT=${C_DIST[$(($1 - 1))]}
    export RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins
    export RABBITMQ_CONFIG_FILE=$d/rabbitmq
    export RABBITMQ_PID_FILE=$d/rabbit.pid
    export ERL_EPMD_PORT=$C_EPMD
    export ERL_EPMD_ADDRESS=127.0.0.1
}

ctl() { # N ARGS...: rabbitmqctl on node N, bounded.
    local n=$1
    shift
    (rabbit_env "$n" && timeout 60 "$RABBIT_BIN/rabbitmqctl" -n "$(node_name "$n")" -q "$@")
}

start_epmd() {
    is_running epmd && return 0
    port_taken "$C_EPMD" && fail "port $C_EPMD for epmd is already taken"
    nohup /usr/bin/epmd -port "$C_EPMD" -address 127.0.0.1 >>"$C_LOG/epmd.log" 2>&1 </dev/null &
    echo $! >"$C_RUN/epmd.pid"
    sleep 0.2
}

start_node() { # N: start node N and wait until it runs; joins node 1 the first time.
    local n=$1 d=$CVAR/rabbit$1 i
    is_running "rabbit$n" && return 0
    [ -x "$RABBIT_BIN/rabbitmq-server" ] || fail "rabbitmq-server is not installed (run make deps)"
    start_epmd
    port_taken "${C_AMQP[$((n - 1))]}" && fail "port ${C_AMQP[$((n - 1))]} for RabbitMQ node $n is taken"
    (
        rabbit_env "$n"
        mkdir -p "$HOME" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
        # The nodes of a cluster share one Erlang cookie.
        if [ ! -f "$HOME/.erlang.cookie" ]; then
            cp "$CVAR/cookie" "$HOME/.erlang.cookie"
            chmod 400 "$HOME/.erlang.cookie"
        fi
        echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
        printf 'loopback_users.guest = true\nlisteners.tcp.default = 127.0.0.1:%s\n' \
            "$RABBITMQ_NODE_PORT" >"$RABBITMQ_CONFIG_FILE.conf"
        cd "$d" || exit 1
        nohup "$RABBIT_BIN/rabbitmq-server" >>"$C_LOG/rabbit$n.log" 2>&1 </dev/null &
        echo $! >"$C_RUN/rabbit$n.pid"
    )
    for ((i = 0; i < 600; i++)); do
        ctl "$n" await_startup >/dev/null 2>&1 && break
        is_running "rabbit$n" || fail "RabbitMQ node $n exited while starting" "$C_LOG/rabbit$n.log"
        sleep 0.2
    done
    ctl "$n" await_startup >/dev/null 2>&1 || fail "RabbitMQ node $n did not start" "$C_LOG/rabbit$n.log"
    if [ "$n" != 1 ] && [ ! -f "$d/joined" ]; then
        ctl "$n" stop_app && ctl "$n" join_cluster "$(node_name 1)" && ctl "$n" start_app ||
            fail "RabbitMQ node $n could not join $(node_name 1)" "$C_LOG/rabbit$n.log"
        touch "$d/joined"
    fi
    say "rabbitmq node $n up on 127.0.0.1:${C_AMQP[$((n - 1))]} ($(node_name "$n"))"
}

beam_pid() { cat "$CVAR/rabbit$1/rabbit.pid" 2>/dev/null; }

kill_node() { # N: kill -9 the node's Erlang VM, as a crash would.
    local n=$1 pid
    pid=$(beam_pid "$n")
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    stop_pid "rabbit$n"
    rm -f "$CVAR/rabbit$n/rabbit.pid"
}

stop_node() { # N: a clean stop, the recorded pids the fallback.
    local n=$1
    is_running "rabbit$n" && ctl "$n" stop >/dev/null 2>&1
    kill_node "$n"
}

# The node number (1..3) whose member leads quorum queue QUEUE.
leader_of() {
    local n l
    for n in 1 2 3; do
        is_running "rabbit$n" || continue
        l=$(ctl "$n" list_queues --no-table-headers name leader 2>/dev/null |
            awk -F'\t' -v q="$1" '$1 == q { print $2 }')
        [ -n "$l" ] || continue
        for k in 1 2 3; do [ "$l" = "$(node_name "$k")" ] && { echo "$k"; return 0; }; done
    done
    return 1
}

# ---- PostgreSQL -------------------------------------------------------------

as_pg() { runuser -u postgres -- "$@"; }
psql_p() { "$PG_BIN/psql" -h 127.0.0.1 -p "$C_PG" -U fpesa -d postgres -tAq "$@"; }

start_primary() {
    local dir=$C_PGDIR/primary
    [ -n "$PG_BIN" ] || fail "PostgreSQL is not installed (run make deps)"
    if [ -f "$dir/data/postmaster.pid" ] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$C_PG"; then
        return 0
    fi
    port_taken "$C_PG" && fail "port $C_PG for the PostgreSQL primary is taken"
    mkdir -p "$dir"
    chown postgres: "$C_PGDIR" "$dir"
    chmod 700 "$C_PGDIR" "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        # trust on loopback, replication connections included (initdb's
        # pg_hba.conf allows them from 127.0.0.1 with --auth=trust).
        as_pg "$PG_BIN/initdb" -D "$dir/data" -U fpesa --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$C_LOG/initdb.log" 2>&1 || fail "initdb failed" "$C_LOG/initdb.log"
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgresql.log" -w -t 60 \
        -o "-p $C_PG -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c wal_level=replica -c max_wal_senders=5 -c max_replication_slots=5" \
        start >"$C_LOG/pg_ctl.log" 2>&1 || fail "the PostgreSQL primary did not start" "$dir/postgresql.log"
    head -n 1 "$dir/data/postmaster.pid" >"$C_RUN/pg-primary.pid"
    ln -sfn "$dir/postgresql.log" "$C_LOG/pg-primary.log"
    if ! psql_p -c "SELECT 1 FROM pg_database WHERE datname = 'fpesa'" | grep -q 1; then
        "$PG_BIN/createdb" -h 127.0.0.1 -p "$C_PG" -U fpesa fpesa || fail "could not create database fpesa"
    fi
    if ! psql_p -c "SELECT 1 FROM pg_replication_slots WHERE slot_name = '$SLOT'" | grep -q 1; then
        psql_p -c "SELECT pg_create_physical_replication_slot('$SLOT')" >/dev/null ||
            fail "could not create the replication slot $SLOT"
    fi
    say "postgresql primary up on 127.0.0.1:$C_PG (database fpesa, slot $SLOT)"
}

start_replica() {
    local dir=$C_PGDIR/replica i
    if [ -f "$dir/data/postmaster.pid" ] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$C_REPLICA"; then
        return 0
    fi
    port_taken "$C_REPLICA" && fail "port $C_REPLICA for the PostgreSQL replica is taken"
    mkdir -p "$dir"
    chown postgres: "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        # -R writes standby.signal and primary_conninfo, -S the slot that
        # keeps the primary's WAL until the replica has it.
        as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$C_PG" -U fpesa -D "$dir/data" -R -S "$SLOT" \
            -X stream >"$C_LOG/pg_basebackup.log" 2>&1 || fail "pg_basebackup failed" "$C_LOG/pg_basebackup.log"
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgresql.log" -w -t 60 \
        -o "-p $C_REPLICA -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c hot_standby=on" \
        start >"$C_LOG/pg_ctl-replica.log" 2>&1 || fail "the PostgreSQL replica did not start" "$dir/postgresql.log"
    head -n 1 "$dir/data/postmaster.pid" >"$C_RUN/pg-replica.pid"
    ln -sfn "$dir/postgresql.log" "$C_LOG/pg-replica.log"
    for ((i = 0; i < 150; i++)); do
        [ "$(psql_p -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" -ge 1 ] 2>/dev/null && break
        sleep 0.2
    done
    say "postgresql replica up on 127.0.0.1:$C_REPLICA (streaming from $C_PG through slot $SLOT)"
}

stop_pgdir() { # NAME DIR
    [ -f "$2/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$2/data" -m fast -w -t 30 stop >/dev/null 2>&1
    rm -f "$C_RUN/$1.pid"
}

# ---- our programs and nginx -------------------------------------------------

http_ok() { curl -fs -o /dev/null --max-time 2 "$1"; }

start_prog() { # NAME URL-TO-WAIT-FOR ENV... -- COMMAND...
    local name=$1 wait=$2 i
    shift 2
    is_running "$name" && return 0
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    env "${envs[@]}" nohup "$@" >>"$C_LOG/$name.log" 2>&1 </dev/null &
    echo $! >"$C_RUN/$name.pid"
    [ -n "$wait" ] || return 0
    for ((i = 0; i < 300; i++)); do
        http_ok "$wait" && return 0
        is_running "$name" || fail "$name exited while starting" "$C_LOG/$name.log"
        sleep 0.2
    done
    fail "$name did not become ready" "$C_LOG/$name.log"
}

common_env() { # I (0-based instance): the environment of every program of ours
    echo "FPESA_AMQP_URL=$(amqp_urls "$1")" "FPESA_QUEUE_TYPE=quorum" "FPESA_LIVE_SOURCE=stream" \
        "FPESA_DATABASE_URL=$PRIMARY_URL" "FPESA_DATABASE_READ_URL=$REPLICA_URL" \
        "FPESA_PLUGIN_DIR=$FPESA_PLUGIN_DIR"
}

start_apps() {
    local cfg=$FPESA_CONFIG i
    for bin in restmapper handler liveupdate; do
        [ -x "$BUILD/bin/$bin" ] || fail "$BUILD/bin/$bin is missing (run make)"
    done
    "$BUILD/bin/restmapper" --check "$cfg" >/dev/null || fail "$cfg is not valid"
    for i in 0 1; do
        # shellcheck disable=SC2046
        start_prog "handler$((i + 1))" "" $(common_env "$i") -- "$BUILD/bin/handler" --config "$cfg"
    done
    for i in 0 1; do
        start_prog "mapper$((i + 1))" "http://127.0.0.1:${C_MAPPER[$i]}/health" $(common_env "$i") \
            "FPESA_HTTP_LISTEN=127.0.0.1:${C_MAPPER[$i]}" -- "$BUILD/bin/restmapper" --config "$cfg"
        start_prog "live$((i + 1))" "http://127.0.0.1:${C_LIVE[$i]}/health" $(common_env "$((i + 1))") \
            "FPESA_LIVE_LISTEN=127.0.0.1:${C_LIVE[$i]}" -- "$BUILD/bin/liveupdate" --config "$cfg"
    done
    start_nginx
}

start_nginx() {
    is_running nginx && return 0
    port_taken "$C_NGINX" && fail "port $C_NGINX for nginx is taken"
    FPESA_VAR=$CVAR FPESA_MAPPER_PORT=${C_MAPPER[0]} FPESA_MAPPER2_PORT=${C_MAPPER[1]} \
        FPESA_LIVE_PORT=${C_LIVE[0]} FPESA_NGINX_LIVES=127.0.0.1:${C_LIVE[1]} \
        FPESA_NGINX_PORT=$C_NGINX FPESA_MAPPERS=2 "$FPESA_ROOT/scripts/nginx-conf.sh" ||
        fail "could not write the nginx configuration"
    local prefix=$CVAR/nginx i
    /usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf" -t >"$C_LOG/nginx-t.log" 2>&1 ||
        fail "nginx -t refused the configuration" "$C_LOG/nginx-t.log"
    /usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf" >>"$C_LOG/nginx.log" 2>&1 ||
        fail "nginx did not start" "$C_LOG/nginx.log"
    for ((i = 0; i < 50; i++)); do [ -s "$prefix/nginx.pid" ] && break; sleep 0.1; done
    cp "$prefix/nginx.pid" "$C_RUN/nginx.pid"
    for ((i = 0; i < 50; i++)); do http_ok "http://127.0.0.1:$C_NGINX/api/v1/health" && break; sleep 0.2; done
}

APPS="nginx live2 live1 mapper2 mapper1 handler2 handler1"

start_all() {
    [ -f "$CVAR/cookie" ] || { head -c 15 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$CVAR/cookie"; }
    chmod 400 "$CVAR/cookie"
    start_node 1 && start_node 2 && start_node 3 || exit 1
    start_primary && start_replica || exit 1
    start_apps || exit 1
    status
}

stop_all() {
    local n
    for n in $APPS; do stop_pid "$n"; done
    stop_pgdir pg-replica "$C_PGDIR/replica"
    stop_pgdir pg-primary "$C_PGDIR/primary"
    for n in 3 2 1; do stop_node "$n"; done
    stop_pid epmd
}

status() {
    local n i
    for n in 1 2 3; do
        is_running "rabbit$n" && printf '%-12s running (pid %s) amqp 127.0.0.1:%s node %s\n' "rabbit$n" \
            "$(pid_of "rabbit$n")" "${C_AMQP[$((n - 1))]}" "$(node_name "$n")"
    done
    is_running pg-primary && printf '%-12s running (pid %s) 127.0.0.1:%s\n' pg-primary "$(pid_of pg-primary)" "$C_PG"
    is_running pg-replica && printf '%-12s running (pid %s) 127.0.0.1:%s (streaming replica)\n' pg-replica \
        "$(pid_of pg-replica)" "$C_REPLICA"
    for n in handler1 handler2; do
        is_running "$n" && printf '%-12s running (pid %s)\n' "$n" "$(pid_of "$n")"
    done
    for i in 0 1; do
        is_running "mapper$((i + 1))" && printf '%-12s running (pid %s) http://127.0.0.1:%s\n' \
            "mapper$((i + 1))" "$(pid_of "mapper$((i + 1))")" "${C_MAPPER[$i]}"
        is_running "live$((i + 1))" && printf '%-12s running (pid %s) http://127.0.0.1:%s\n' \
            "live$((i + 1))" "$(pid_of "live$((i + 1))")" "${C_LIVE[$i]}"
    done
    is_running nginx && printf '%-12s running (pid %s) http://127.0.0.1:%s/\n' nginx "$(pid_of nginx)" "$C_NGINX"
    return 0
}

cmd=${1:-status}
case "$cmd" in
start) start_all ;;
stop) stop_all ;;
status) status ;;
start-apps) start_apps ;;
kill-node) kill_node "$2" ;;
stop-node) stop_node "$2" ;;
start-node) start_node "$2" ;;
leader) leader_of "$2" ;;
kill)
    pid=$(pid_of "$2")
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -f "$C_RUN/$2.pid"
    ;;
stop-replica) stop_pgdir pg-replica "$C_PGDIR/replica" ;;
start-replica) start_replica ;;
rabbitmqctl)
    n=$2
    shift 2
    ctl "$n" "$@"
    ;;
env)
    printf 'CLUSTER_NGINX=http://127.0.0.1:%s\nCLUSTER_AMQP_URLS=%s\nCLUSTER_PRIMARY=%s\nCLUSTER_REPLICA=%s\n' \
        "$C_NGINX" "$(amqp_urls 0)" "$PRIMARY_URL" "$REPLICA_URL"
    printf 'CLUSTER_MAPPERS=%s\nCLUSTER_LIVES=%s\nCLUSTER_VAR=%s\n' "${C_MAPPER[*]}" "${C_LIVE[*]}" "$CVAR"
    ;;
*) die "usage: cluster.sh start | stop | status | kill-node N | stop-node N | start-node N | leader QUEUE | kill NAME | start-apps | stop-replica | start-replica | rabbitmqctl N ARGS... | env" ;;
esac
