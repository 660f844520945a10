#!/usr/bin/env bash
# Starts and stops the pieces of one stack as ordinary background processes.
#
#   scripts/stack.sh start [servers|apps|all]   start what is not running yet
#   scripts/stack.sh stop [apps|all]             stop what this stack started (apps: our
#                                                programs and nginx, not the servers)
#   scripts/stack.sh restart                     restart every program of ours in turn
#   scripts/stack.sh reload                      SIGHUP to every program of ours: each reads
#                                                the file again (a bad file is refused, in the
#                                                program's log, and the old one keeps serving)
#   scripts/stack.sh status                      list what runs
#   scripts/stack.sh rabbitmqctl ARGS...         rabbitmqctl on this stack's node
#
# Each process's pid is kept in var/run/NAME.pid and its log in var/log/NAME.log;
# stop ends exactly those pids. A piece that does not come up is reported with
# the tail of its log, and everything this call started is stopped again.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

RABBIT_BIN=/usr/lib/rabbitmq/bin
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
STARTED=()

mkdir -p "$FPESA_LOG" "$FPESA_RUN"

pid_of() { cat "$FPESA_RUN/$1.pid" 2>/dev/null; }
is_running() { # NAME: its recorded pid is alive (not a zombie)
    local pid
    pid=$(pid_of "$1") || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}
port_taken() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# fail NAME LOGFILE MESSAGE: report, show the log, undo this call's starts.
fail() {
    printf 'fpesa: error: %s\n' "$3" >&2
    if [ -n "$2" ] && [ -f "$2" ]; then
        printf -- '--- last lines of %s ---\n' "$2" >&2
        tail -n 20 "$2" >&2
        printf -- '---\n' >&2
    fi
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_one "${STARTED[$i]}"; done
    exit 1
}

need_port_free() { # NAME PORT
    port_taken "$2" && fail "$1" "" "port $2 for $1 is already taken by another process (set the FPESA_*_PORT variables to move it)"
    return 0
}

wait_for() { # NAME LOG SECONDS COMMAND...
    local name=$1 log=$2 secs=$3 i
    shift 3
    for ((i = 0; i < secs * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        if ! is_running "$name"; then fail "$name" "$log" "$name exited while starting"; fi
        sleep 0.2
    done
    fail "$name" "$log" "$name did not become ready within ${secs}s"
}

stop_one() { # NAME: TERM, wait, then KILL; only the recorded pid.
    local name=$1 pid i
    pid=$(pid_of "$name") || return 0
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$FPESA_RUN/$name.pid"
}

# ---- RabbitMQ ---------------------------------------------------------------

rabbit_env() {
    export HOME=$FPESA_VAR/rabbitmq/home
    export RABBITMQ_MNESIA_BASE=$FPESA_VAR/rabbitmq/mnesia
    export RABBITMQ_LOG_BASE=$FPESA_VAR/rabbitmq/log
    export RABBITMQ_NODENAME=$FPESA_NODE
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$FPESA_AMQP_PORT
    export RABBITMQ_DIST_PORT=$FPESA_DIST_PORT
    export RABBITMQ_ENABLED_PLUGINS_FILE=$FPESA_VAR/rabbitmq/enabled_plugins
    export RABBITMQ_CONFIG_FILE=$FPESA_VAR/rabbitmq/rabbitmq
    export RABBITMQ_PID_FILE=$FPESA_VAR/rabbitmq/rabbit.pid
    export ERL_EPMD_PORT=$FPESA_EPMD_PORT
    export ERL_EPMD_ADDRESS=127.0.0.1
}

rabbit_ready() { "$RABBIT_BIN/rabbitmqctl" -n "$FPESA_NODE" -q await_startup; }

launch_rabbit() {
    (
        rabbit_env
        mkdir -p "$HOME" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
        echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
        # guest may log in from loopback only, which is the RabbitMQ default.
        printf 'loopback_users.guest = true\nlisteners.tcp.default = 127.0.0.1:%s\n' \
            "$FPESA_AMQP_PORT" >"$RABBITMQ_CONFIG_FILE.conf"
        if ! is_running epmd; then
            port_taken "$FPESA_EPMD_PORT" && exit 3
            nohup /usr/bin/epmd -port "$FPESA_EPMD_PORT" -address 127.0.0.1 \
                >>"$FPESA_LOG/epmd.log" 2>&1 </dev/null &
            echo $! >"$FPESA_RUN/epmd.pid"
            sleep 0.2
        fi
        cd "$FPESA_VAR/rabbitmq" || exit 1
        nohup "$RABBIT_BIN/rabbitmq-server" >>"$FPESA_LOG/rabbitmq.log" 2>&1 </dev/null &
        echo $! >"$FPESA_RUN/rabbitmq.pid"
    )
}

start_rabbit() {
    is_running rabbitmq && return 0
    [ -x "$RABBIT_BIN/rabbitmq-server" ] || fail rabbitmq "" "rabbitmq-server is not installed (run make deps)"
    need_port_free rabbitmq "$FPESA_AMQP_PORT"
    need_port_free rabbitmq-dist "$FPESA_DIST_PORT"
    local attempt i
    # A node occasionally fails to come up the first time (a distribution
    # port briefly held by the kernel); one more try settles it.
    for attempt in 1 2; do
        launch_rabbit || fail epmd "" "port $FPESA_EPMD_PORT for epmd is already taken"
        STARTED+=(epmd rabbitmq)
        for ((i = 0; i < 300; i++)); do
            (rabbit_env && rabbit_ready) >/dev/null 2>&1 && {
                say "rabbitmq up on 127.0.0.1:$FPESA_AMQP_PORT (node $FPESA_NODE)"
                return 0
            }
            is_running rabbitmq || break
            sleep 0.2
        done
        [ $attempt = 2 ] && break
        say "rabbitmq did not come up; trying once more"
        stop_rabbit
        sleep 1
    done
    fail rabbitmq "$FPESA_LOG/rabbitmq.log" "rabbitmq did not become ready"
}

stop_rabbit() {
    # The rabbitmq-server script runs beam as a child; stopping the node
    # through rabbitmqctl is the clean way, the recorded pid the fallback.
    if is_running rabbitmq; then
        (rabbit_env && timeout 30 "$RABBIT_BIN/rabbitmqctl" -n "$FPESA_NODE" -q stop >/dev/null 2>&1)
    fi
    local bpid
    bpid=$(cat "$FPESA_VAR/rabbitmq/rabbit.pid" 2>/dev/null)
    if [ -n "$bpid" ] && kill -0 "$bpid" 2>/dev/null; then kill -KILL "$bpid" 2>/dev/null; fi
    rm -f "$FPESA_VAR/rabbitmq/rabbit.pid"
    stop_one rabbitmq
    stop_one epmd
}

# ---- PostgreSQL -------------------------------------------------------------

as_pg() { runuser -u postgres -- "$@"; }

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$FPESA_PG_PORT"; }

start_pg() {
    [ -n "$PG_BIN" ] || fail postgresql "" "PostgreSQL is not installed (run make deps)"
    local dir=$FPESA_PG_DIR
    if [ -f "$dir/data/postmaster.pid" ] && pg_ready; then
        return 0
    fi
    need_port_free postgresql "$FPESA_PG_PORT"
    mkdir -p "$dir"
    chown postgres: "$dir"
    chmod 700 "$dir"
    ln -sfn "$dir" "$FPESA_VAR/pg"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_pg "$PG_BIN/initdb" -D "$dir/data" -U fpesa --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$FPESA_LOG/initdb.log" 2>&1 || fail postgresql "$FPESA_LOG/initdb.log" "initdb failed"
    fi
    ln -sfn "$dir/postgresql.log" "$FPESA_LOG/postgresql.log"
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgresql.log" -w -t 60 \
        -o "-p $FPESA_PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" \
        start >"$FPESA_LOG/pg_ctl.log" 2>&1 || fail postgresql "$dir/postgresql.log" "PostgreSQL did not start"
    head -n 1 "$dir/data/postmaster.pid" >"$FPESA_RUN/postgresql.pid"
    STARTED+=(postgresql)
    wait_for postgresql "$dir/postgresql.log" 30 pg_ready
    if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$FPESA_PG_PORT" -U fpesa -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'fpesa'" | grep -q 1; then
        "$PG_BIN/createdb" -h 127.0.0.1 -p "$FPESA_PG_PORT" -U fpesa fpesa ||
            fail postgresql "$dir/postgresql.log" "could not create database fpesa"
    fi
    say "postgresql up on 127.0.0.1:$FPESA_PG_PORT (database fpesa)"
}

stop_pg() {
    if [ -f "$FPESA_PG_DIR/data/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$FPESA_PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1
    fi
    stop_one postgresql
}

# ---- our programs and nginx -------------------------------------------------

start_proc() { # NAME COMMAND...: start a program of ours in the background.
    local name=$1
    shift
    is_running "$name" && return 0
    nohup "$@" >>"$FPESA_LOG/$name.log" 2>&1 </dev/null &
    echo $! >"$FPESA_RUN/$name.pid"
    STARTED+=("$name")
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

# The handler host, with /health and /metrics on this stack's handler port.
start_handler() {
    FPESA_HANDLER_LISTEN=127.0.0.1:$FPESA_HANDLER_PORT \
        start_proc handler "$BUILD/bin/handler" --config "$FPESA_CONFIG"
}

# SIGHUP to every program of ours that runs (nginx is not ours: its own
# reload closes idle client connections). Each one reads the file again and
# logs what it did; a bad file is refused there and the old one keeps serving.
reload_apps() {
    local n pid sent=0
    for n in handler restmapper restmapper2 liveupdate; do
        is_running "$n" || continue
        pid=$(pid_of "$n")
        kill -HUP "$pid" 2>/dev/null && sent=$((sent + 1)) && say "$n reloading (pid $pid)"
    done
    [ "$sent" -gt 0 ] || die "nothing of this stack is running"
}

start_apps() {
    local cfg=$FPESA_CONFIG name
    for bin in restmapper handler liveupdate; do
        [ -x "$BUILD/bin/$bin" ] || fail "$bin" "" "$BUILD/bin/$bin is missing (run make)"
    done
    # A bad configuration stops everything before anything starts.
    "$BUILD/bin/restmapper" --check "$cfg" >/dev/null || fail restmapper "" "$cfg is not valid"
    "$BUILD/bin/handler" --check "$cfg" >/dev/null || fail handler "" "$cfg is not valid"

    if ! is_running handler; then
        need_port_free handler "$FPESA_HANDLER_PORT"
        start_handler
        wait_for handler "$FPESA_LOG/handler.log" 30 http_ok "http://127.0.0.1:$FPESA_HANDLER_PORT/health"
    fi
    if ! is_running restmapper; then
        need_port_free restmapper "$FPESA_MAPPER_PORT"
        start_proc restmapper "$BUILD/bin/restmapper" --config "$cfg"
        wait_for restmapper "$FPESA_LOG/restmapper.log" 20 http_ok "http://127.0.0.1:$FPESA_MAPPER_PORT/health"
    fi
    if [ "${FPESA_MAPPERS:-2}" -ge 2 ] && ! is_running restmapper2; then
        need_port_free restmapper2 "$FPESA_MAPPER2_PORT"
        FPESA_HTTP_LISTEN=127.0.0.1:$FPESA_MAPPER2_PORT \
            start_proc restmapper2 "$BUILD/bin/restmapper" --config "$cfg"
        wait_for restmapper2 "$FPESA_LOG/restmapper2.log" 20 http_ok "http://127.0.0.1:$FPESA_MAPPER2_PORT/health"
    fi
    # A system without live endpoints (examples/timers) has nothing for
    # liveupdate to serve, and liveupdate refuses to start without one.
    if ! is_running liveupdate && grep -Eq '^[[:space:]]*live:[[:space:]]*true' "$cfg"; then
        need_port_free liveupdate "$FPESA_LIVE_PORT"
        start_proc liveupdate "$BUILD/bin/liveupdate" --config "$cfg"
        wait_for liveupdate "$FPESA_LOG/liveupdate.log" 20 http_ok "http://127.0.0.1:$FPESA_LIVE_PORT/health"
    fi
    start_nginx
}

# Restarts the handler host, each restmapper and liveupdate in turn, each one
# back and healthy before the next goes down (nginx itself keeps running: its
# configuration does not change, and its own reload closes idle client
# connections, which a client may be writing to). Under a steady load through nginx
# nothing fails: a stopping restmapper drains what it holds and answers
# "Connection: close", and a starting one listens only once its broker
# connection is up, so nginx sends the traffic to the other one meanwhile.
restart_apps() {
    local cfg=$FPESA_CONFIG
    "$BUILD/bin/restmapper" --check "$cfg" >/dev/null || fail restmapper "" "$cfg is not valid; nothing restarted"
    "$BUILD/bin/handler" --check "$cfg" >/dev/null || fail handler "" "$cfg is not valid; nothing restarted"
    if is_running handler; then
        stop_one handler
        start_handler
        wait_for handler "$FPESA_LOG/handler.log" 30 http_ok "http://127.0.0.1:$FPESA_HANDLER_PORT/health"
        say "handler restarted (pid $(pid_of handler))"
    fi
    if is_running restmapper; then
        stop_one restmapper
        start_proc restmapper "$BUILD/bin/restmapper" --config "$cfg"
        wait_for restmapper "$FPESA_LOG/restmapper.log" 30 http_ok "http://127.0.0.1:$FPESA_MAPPER_PORT/health"
        say "restmapper restarted (pid $(pid_of restmapper))"
        # nginx marked it failed while it was away (max_fails=1
        # fail_timeout=2s in its pool): the other one goes down only once
        # nginx sends traffic here again.
        sleep 3
    fi
    if is_running restmapper2; then
        stop_one restmapper2
        FPESA_HTTP_LISTEN=127.0.0.1:$FPESA_MAPPER2_PORT \
            start_proc restmapper2 "$BUILD/bin/restmapper" --config "$cfg"
        wait_for restmapper2 "$FPESA_LOG/restmapper2.log" 30 http_ok "http://127.0.0.1:$FPESA_MAPPER2_PORT/health"
        say "restmapper2 restarted (pid $(pid_of restmapper2))"
    fi
    if is_running liveupdate; then
        stop_one liveupdate
        start_proc liveupdate "$BUILD/bin/liveupdate" --config "$cfg"
        wait_for liveupdate "$FPESA_LOG/liveupdate.log" 30 http_ok "http://127.0.0.1:$FPESA_LIVE_PORT/health"
        say "liveupdate restarted (pid $(pid_of liveupdate))"
    fi
}

start_nginx() {
    is_running nginx && return 0
    need_port_free nginx "$FPESA_NGINX_PORT"
    "$FPESA_ROOT/scripts/nginx-conf.sh" || fail nginx "" "could not write the nginx configuration"
    local prefix=$FPESA_VAR/nginx
    /usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf" -t >"$FPESA_LOG/nginx-t.log" 2>&1 ||
        fail nginx "$FPESA_LOG/nginx-t.log" "nginx -t refused the configuration"
    /usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf" >>"$FPESA_LOG/nginx.log" 2>&1 ||
        fail nginx "$FPESA_LOG/nginx-error.log" "nginx did not start"
    local i
    for ((i = 0; i < 50; i++)); do [ -s "$prefix/nginx.pid" ] && break; sleep 0.1; done
    cp "$prefix/nginx.pid" "$FPESA_RUN/nginx.pid"
    STARTED+=(nginx)
    wait_for nginx "$FPESA_LOG/nginx-error.log" 10 http_ok "http://127.0.0.1:$FPESA_NGINX_PORT/api/v1/health"
}

status() {
    local n
    for n in epmd rabbitmq postgresql handler restmapper restmapper2 liveupdate nginx; do
        if is_running "$n"; then printf '%-12s running (pid %s)\n' "$n" "$(pid_of "$n")"; fi
    done
}

stop_apps() {
    local n
    for n in nginx liveupdate restmapper2 restmapper handler; do stop_one "$n"; done
}

stop_all() {
    stop_apps
    stop_pg
    stop_rabbit
}

cmd=${1:-status}
what=${2:-all}
case "$cmd" in
start)
    case "$what" in
    servers) start_rabbit && start_pg ;;
    apps) start_apps ;;
    all) start_rabbit && start_pg && start_apps ;;
    *) die "unknown part: $what" ;;
    esac
    ;;
stop)
    case "$what" in
    apps) stop_apps ;;
    all) stop_all ;;
    *) die "unknown part: $what" ;;
    esac
    ;;
restart) restart_apps ;;
reload) reload_apps ;;
stop-one) stop_one "$what" ;;
stop-rabbit) stop_rabbit ;;
start-rabbit) start_rabbit ;;
stop-pg) stop_pg ;;
rabbitmqctl)
    # rabbitmqctl ARGS...: on this stack's node (its cookie and node name).
    shift
    (rabbit_env && exec "$RABBIT_BIN/rabbitmqctl" -n "$FPESA_NODE" -q "$@")
    ;;
start-pg) start_pg ;;
status) status ;;
*) die "usage: stack.sh start [servers|apps|all] | stop [apps|all] | restart | reload | status" ;;
esac
