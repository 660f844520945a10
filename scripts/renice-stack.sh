#!/usr/bin/env bash
# renice-stack.sh N: sets the nice value of every thread of the running
# stack's processes (those scripts/stack.sh recorded, the broker's VM and
# PostgreSQL's backends included) to N. The live page's benchmark runs the
# server side at a lower priority than the browser, as if the browser had a
# machine of its own: on a small box the broker, the database and the load
# generator otherwise preempt the page's main thread and the timeline
# measures the scheduler rather than the page.
set -eu
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
n=${1:?usage: renice-stack.sh NICE}
roots=""
for f in "$FPESA_VAR"/run/*.pid "$FPESA_VAR/rabbitmq/rabbit.pid"; do
    [ -f "$f" ] && roots="$roots $(head -n 1 "$f")"
done
# The processes and all their descendants.
all=""
queue=$roots
while [ -n "${queue// /}" ]; do
    next=""
    for p in $queue; do
        [ -d "/proc/$p" ] || continue
        all="$all $p"
        next="$next $(ps -o pid= --ppid "$p" 2>/dev/null | tr '\n' ' ')"
    done
    queue=$next
done
count=0
for p in $all; do
    for t in /proc/"$p"/task/*; do
        renice -n "$n" -p "${t##*/}" >/dev/null 2>&1 && count=$((count + 1))
    done
done
echo "fpesa: bench: $count threads of the stack at nice $n"
