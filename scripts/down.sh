#!/usr/bin/env bash
# Stops everything `make up` started, by the pids it recorded.
set -u
export FPESA_STACK=up
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$FPESA_ROOT/scripts/stack.sh" stop
say "down"
