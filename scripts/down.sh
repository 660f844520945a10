#!/usr/bin/env bash
# Stops everything `make up` or `make up-cluster` started, by the pids it recorded.
set -u
export FPESA_STACK=up
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$FPESA_ROOT/scripts/stack.sh" stop
"$FPESA_ROOT/scripts/cluster.sh" stop
say "down"
