# Sourced by the other scripts: where a stack lives and which ports it uses.
#
# Two stacks run side by side without touching each other: the one `make up`
# starts (FPESA_STACK=up, data under var/) and the throwaway one `make test`
# starts (FPESA_STACK=test, data under var/test/). Every port can be moved
# from the environment; FPESA_PORT_BASE moves a whole test stack at once.
# The handler host's /health and /metrics port (FPESA_HANDLER_PORT) is given
# to the host this stack starts only (FPESA_HANDLER_LISTEN on its command), so
# that other handler hosts started from the same environment do not ask for it.

FPESA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FPESA_STACK=${FPESA_STACK:-up}
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$FPESA_ROOT/$BUILD" ;; esac

if [ "$FPESA_STACK" = up ]; then
    FPESA_VAR=${FPESA_VAR:-$FPESA_ROOT/var}
    FPESA_AMQP_PORT=${FPESA_AMQP_PORT:-5672}
    FPESA_DIST_PORT=${FPESA_DIST_PORT:-25672}
    FPESA_EPMD_PORT=${FPESA_EPMD_PORT:-24369}
    FPESA_PG_PORT=${FPESA_PG_PORT:-5432}
    FPESA_MAPPER_PORT=${FPESA_MAPPER_PORT:-8081}
    FPESA_MAPPER2_PORT=${FPESA_MAPPER2_PORT:-8083}
    FPESA_LIVE_PORT=${FPESA_LIVE_PORT:-8082}
    FPESA_HANDLER_PORT=${FPESA_HANDLER_PORT:-8084}
    FPESA_NGINX_PORT=${FPESA_NGINX_PORT:-8888}
    FPESA_NODE=${FPESA_NODE:-fpesa-up@localhost}
else
    base=${FPESA_PORT_BASE:-21600}
    FPESA_VAR=${FPESA_VAR:-$FPESA_ROOT/var/$FPESA_STACK}
    FPESA_AMQP_PORT=${FPESA_AMQP_PORT:-$((base + 0))}
    FPESA_DIST_PORT=${FPESA_DIST_PORT:-$((base + 1))}
    FPESA_EPMD_PORT=${FPESA_EPMD_PORT:-$((base + 2))}
    FPESA_PG_PORT=${FPESA_PG_PORT:-$((base + 3))}
    FPESA_MAPPER_PORT=${FPESA_MAPPER_PORT:-$((base + 4))}
    FPESA_MAPPER2_PORT=${FPESA_MAPPER2_PORT:-$((base + 5))}
    FPESA_LIVE_PORT=${FPESA_LIVE_PORT:-$((base + 6))}
    FPESA_HANDLER_PORT=${FPESA_HANDLER_PORT:-$((base + 7))}
    FPESA_NGINX_PORT=${FPESA_NGINX_PORT:-$((base + 8))}
    # Ports base+10 .. base+29 are free for tests to start their own servers on.
    FPESA_AUX_PORT=${FPESA_AUX_PORT:-$((base + 10))}
    FPESA_NODE=${FPESA_NODE:-fpesa-$FPESA_STACK-$base@localhost}
fi

FPESA_CONFIG=${FPESA_CONFIG:-$FPESA_ROOT/endpoints.yaml}
case "$FPESA_CONFIG" in /*) ;; *) FPESA_CONFIG="$FPESA_ROOT/$FPESA_CONFIG" ;; esac

# PostgreSQL runs as the postgres user, which may not be able to enter the
# folder the checkout sits in; its cluster therefore lives in a folder of its
# own under /tmp, named after this stack's var/ folder, and var/pg links to it.
FPESA_PG_DIR=${FPESA_PG_DIR:-/tmp/fpesa-pg-$(printf '%s' "$FPESA_VAR" | md5sum | cut -c1-12)}

FPESA_AMQP_URL=${FPESA_AMQP_URL:-amqp://guest:guest@127.0.0.1:$FPESA_AMQP_PORT}
FPESA_DATABASE_URL=${FPESA_DATABASE_URL:-postgresql://fpesa@127.0.0.1:$FPESA_PG_PORT/fpesa}
FPESA_HTTP_LISTEN=${FPESA_HTTP_LISTEN:-127.0.0.1:$FPESA_MAPPER_PORT}
FPESA_LIVE_LISTEN=${FPESA_LIVE_LISTEN:-127.0.0.1:$FPESA_LIVE_PORT}
FPESA_PLUGIN_DIR=${FPESA_PLUGIN_DIR:-$BUILD/plugins}

export FPESA_ROOT FPESA_STACK BUILD FPESA_VAR FPESA_AMQP_PORT FPESA_DIST_PORT FPESA_EPMD_PORT \
    FPESA_PG_PORT FPESA_MAPPER_PORT FPESA_MAPPER2_PORT FPESA_LIVE_PORT FPESA_HANDLER_PORT FPESA_NGINX_PORT \
    FPESA_AUX_PORT FPESA_NODE FPESA_CONFIG FPESA_PG_DIR FPESA_AMQP_URL FPESA_DATABASE_URL \
    FPESA_HTTP_LISTEN FPESA_LIVE_LISTEN FPESA_PLUGIN_DIR

FPESA_LOG=$FPESA_VAR/log
FPESA_RUN=$FPESA_VAR/run

say() { printf 'fpesa: %s\n' "$*"; }
die() { printf 'fpesa: error: %s\n' "$*" >&2; exit 1; }
