#!/usr/bin/env bash
# The live page's long tasks at 1,000 msg/s against the page idle, in
# Chromium (see bench/live_render.mjs); run by make bench.
set -eu
"$(dirname "$0")/../scripts/frontend-build.sh"
exec node "$(dirname "$0")/live_render.mjs"
