#!/usr/bin/env bash
# make bench: every benchmark under bench/, each beside its reference measured
# in the same run, on a stack of its own (FPESA_STACK=bench). Each bench/*.sh
# prints its figures; lines of the form
#   RESULT<TAB>figure<TAB>value<TAB>reference<TAB>reference value<TAB>ratio
# also go into the table of bench/results/latest.md (not committed).
set -u
export FPESA_STACK=${FPESA_STACK:-bench} FPESA_PORT_BASE=${FPESA_PORT_BASE:-21800}
export FPESA_LOG_LEVEL=${FPESA_LOG_LEVEL:-warn}
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FPESA_ROOT"
BENCH_SECONDS=${BENCH_SECONDS:-10}
export BENCH_SECONDS

cleanup() { "$FPESA_ROOT/scripts/stack.sh" stop >/dev/null 2>&1; }
trap cleanup EXIT
trap 'exit 130' INT TERM

"$FPESA_ROOT/scripts/stack.sh" stop >/dev/null 2>&1
rm -rf "$FPESA_VAR" "$FPESA_PG_DIR"
"$FPESA_ROOT/scripts/stack.sh" start servers || exit 1
# Built before nginx starts: nginx serves a placeholder page when there is no
# build, and the live page's benchmark needs the real one.
"$FPESA_ROOT/scripts/frontend-build.sh" || exit 1
"$FPESA_ROOT/scripts/stack.sh" start apps || exit 1

mkdir -p bench/results
out=bench/results/latest.md
raw=$(mktemp)
{
    echo "# fpesa benchmarks"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- cores: $(nproc)"
    echo "- RabbitMQ: $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null)"
    echo "- PostgreSQL: $(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null)"
    echo "- nginx: $(dpkg-query -W -f='${Version}' nginx 2>/dev/null)"
    echo
} >"$out"

status=0
for b in bench/*.sh; do
    [ -x "$b" ] || continue
    # BENCH_ONLY=cluster_ingest runs the benchmarks whose name holds it.
    case "$b" in *"${BENCH_ONLY:-}"*) ;; *) continue ;; esac
    echo "=== $b"
    # Each benchmark is bounded by its own settings; this is the backstop.
    if ! timeout 900 "$b" 2>&1 | tee -a "$raw"; then
        echo "fpesa: bench: $b failed"
        status=1
    fi
done

{
    echo "| figure | value | reference | reference value | ratio |"
    echo "|---|---|---|---|---|"
    grep -P '^RESULT\t' "$raw" | awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6}'
    echo
    echo '```'
    grep -vP '^RESULT\t' "$raw"
    echo '```'
} >>"$out"
rm -f "$raw"
echo "fpesa: bench: results in $out"
exit $status
