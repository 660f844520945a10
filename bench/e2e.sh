#!/usr/bin/env bash
# End-to-end figures through nginx (see bench/e2e.py); run by make bench.
set -eu
command -v wrk >/dev/null || { echo "wrk is missing (make deps)"; exit 1; }
exec /usr/bin/python3 "$(dirname "$0")/e2e.py"
