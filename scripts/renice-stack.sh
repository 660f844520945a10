#!/usr/bin/env bash
# renice-stack.sh N [PID...]: sets the nice value of every thread of the
# running stack's processes (those scripts/stack.sh recorded, the broker's VM
# and PostgreSQL's backends included) to N. The live page's benchmark runs
# the server side at a lower priority than the browser, as if the browser had
# a machine of its own: on a small box the broker, the database and the load
# generator otherwise preempt the page's main thread and the timeline
# measures the scheduler rather than the page.
#
# Where the kernel groups processes by session (autogroups,
# /proc/sys/kernel/sched_autogroup_enabled), a thread's nice value only
# weighs against the threads of its own session, and each session gets an
# equal share of the CPU however its threads are niced: the browser (a
# session of its own) would still share the CPU evenly with nginx's,
# PostgreSQL's (one per backend) and the stack's sessions. Each session
# holding a stack process therefore gets the nice value N as well, except the
# sessions of the PIDs given (the browser's, the load generator's), whose
# other processes would be lowered with it: there only the stack's threads
# are.
set -eu
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
n=${1:?usage: renice-stack.sh NICE [PID...]}
shift
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
groups=0
if [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ]; then
    group_of() { awk '{ print $1 }' "/proc/$1/autogroup" 2>/dev/null; }
    # The groups left alone count as done from the start.
    done_groups=" "
    for p in "$@"; do
        [ -n "$p" ] || continue
        g=$(group_of "$p") || g=""
        done_groups="$done_groups$g "
    done
    for p in $all; do
        g=$(group_of "$p") || continue
        [ -n "$g" ] || continue
        case "$done_groups" in *" $g "*) continue ;; esac
        done_groups="$done_groups$g "
        echo "$n" >"/proc/$p/autogroup" 2>/dev/null && groups=$((groups + 1))
    done
fi
echo "fpesa: bench: $count threads of the stack at nice $n ($groups of its sessions' scheduling groups too)"
