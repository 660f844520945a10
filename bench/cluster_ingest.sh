#!/usr/bin/env bash
# Durable ingest on one node and on make up-cluster's cluster, each beside a
# raw confirmed publisher into the same queue and consumers (bench/cluster_ingest.py).
# Run by make bench; alone: FPESA_STACK=bench scripts/bench.sh runs it with the rest.
set -eu
command -v wrk >/dev/null || { echo "wrk is missing (make deps)"; exit 1; }
exec /usr/bin/python3 "$(dirname "$0")/cluster_ingest.py"
