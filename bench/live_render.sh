#!/usr/bin/env bash
# The live page's long tasks at 1,000 msg/s against the page idle, in
# Chromium (see bench/live_render.mjs); run by make bench.
set -eu
"$(dirname "$0")/../scripts/frontend-build.sh"
# The benchmark lowers the server side's priority for one phase and restores
# it; this restores it too if the benchmark dies on the way.
trap '"$(dirname "$0")/../scripts/renice-stack.sh" 0 >/dev/null 2>&1 || true' EXIT
node "$(dirname "$0")/live_render.mjs"
