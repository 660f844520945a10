#!/usr/bin/env bash
# Runs every test suite against a throwaway stack of its own (var/test/, its
# own ports and node name), stops that stack whatever happens, and ends with
# one line "N passed, N failed" over all suites.
#
# FPESA_SUITES picks suites (default: unit integration cluster frontend e2e
# docs fuzz); PYTEST_PATHS (default tests/integration) and PYTEST_ARGS (e.g.
# -k name) are passed to pytest; E2E_PATHS (default tests/e2e/) narrows the
# e2e suite. The cluster suite is the short form of the cluster's fault test
# (tests/integration/cluster_faults.py: three RabbitMQ nodes, a replica, two
# of each program, on ports FPESA_PORT_BASE+60 to +74).
#
# Nothing here can hang: every test has a timeout of its own (Criterion's
# --timeout, pytest-timeout, node --test-timeout, vitest's testTimeout) and
# every runner runs under `timeout` with an upper bound for its whole suite
# (FPESA_BOUND_<SUITE> seconds, defaults below). A suite that overruns is
# stopped, reported and counted as failed, and the final line still comes.
set -u
export FPESA_STACK=${FPESA_STACK:-test}
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FPESA_ROOT"

SUITES=${FPESA_SUITES:-unit integration cluster frontend e2e docs fuzz}
PY=/usr/bin/python3
total_pass=0
total_fail=0
failed_suites=()

count() { # SUITE PASSED FAILED
    total_pass=$((total_pass + $2))
    total_fail=$((total_fail + $3))
    [ "$3" = 0 ] || failed_suites+=("$1")
    printf 'fpesa: suite %s: %d passed, %d failed\n' "$1" "$2" "$3"
}
want() { [[ " $SUITES " == *" $1 "* ]]; }

# Upper bounds in seconds: several times what each takes on a loaded machine.
BOUND_UNIT_TEST=${FPESA_BOUND_UNIT_TEST:-60}     # one Criterion test
BOUND_UNIT=${FPESA_BOUND_UNIT:-300}              # one Criterion binary
BOUND_STACK=${FPESA_BOUND_STACK:-600}            # starting the test stack
BOUND_INTEGRATION=${FPESA_BOUND_INTEGRATION:-3600}
BOUND_CLUSTER=${FPESA_BOUND_CLUSTER:-2400}
BOUND_FRONTEND=${FPESA_BOUND_FRONTEND:-600}      # build and vitest, each
BOUND_E2E_TEST=${FPESA_BOUND_E2E_TEST:-300}      # one node test
BOUND_E2E=${FPESA_BOUND_E2E:-1500}
BOUND_DOCS=${FPESA_BOUND_DOCS:-900}
BOUND_FUZZ=${FPESA_BOUND_FUZZ:-1800}

# bounded SECONDS CMD...: runs CMD with stdin closed and at most SECONDS
# (TERM to its whole process group, KILL 30 s later); says so when it overran.
# Returns CMD's status, or 124/137 when it was stopped.
bounded() {
    local secs=$1 rc
    shift
    timeout --kill-after=30 "$secs" "$@" </dev/null &
    # timeout leads a process group of its own, out of reach of the
    # terminal's ^C: the INT/TERM trap below stops it through this file.
    echo $! >"$BOUNDED_PIDFILE"
    wait $!
    rc=$?
    rm -f "$BOUNDED_PIDFILE"
    if [ $rc = 124 ] || [ $rc = 137 ]; then
        echo "fpesa: TIMED OUT after ${secs}s and stopped: $*"
    fi
    return $rc
}
timed_out() { [ "$1" = 124 ] || [ "$1" = 137 ]; }

BOUNDED_PIDFILE=$FPESA_VAR/bounded.pid
cleanup() {
    if [ -s "$BOUNDED_PIDFILE" ]; then
        kill -TERM -- "-$(cat "$BOUNDED_PIDFILE")" 2>/dev/null
        rm -f "$BOUNDED_PIDFILE"
    fi
    "$FPESA_ROOT/scripts/stack.sh" stop >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A leftover stack from an interrupted run is stopped and wiped first.
"$FPESA_ROOT/scripts/stack.sh" stop >/dev/null 2>&1
rm -rf "$FPESA_VAR" "$FPESA_PG_DIR"
mkdir -p "$FPESA_VAR"

if want unit; then
    p=0 f=0
    for t in $(find "$BUILD/tests/unit" -type f -name 'test_*' -perm -u+x 2>/dev/null | sort); do
        out=$(bounded "$BOUND_UNIT" "$t" --jobs 1 --timeout "$BOUND_UNIT_TEST" 2>&1)
        rc=$?
        printf '%s\n' "$out" | tail -n 40 | grep -vE '^\[----\]' | grep -E 'Synthesis|FAIL|CRASH|failed|Assertion|Warning|TIMED OUT|[Tt]imed out' || true
        line=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n 1)
        tp=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line")
        tf=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$line")
        tc=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$line")
        if [ -z "$tp" ]; then tp=0 tf=1 tc=0; echo "fpesa: $t produced no summary (rc=$rc)"; fi
        [ $rc = 0 ] || [ $((tf + tc)) -gt 0 ] || tf=1
        echo "  $(basename "$t"): $line"
        p=$((p + tp)) f=$((f + tf + tc))
    done
    count unit $p $f
fi

needs_stack=0
for s in integration cluster e2e; do want $s && needs_stack=1; done
# nginx serves frontend/dist: the browser tests need it built first.
if want e2e && [ -d tests/e2e ]; then
    bounded "$BOUND_FRONTEND" "$FPESA_ROOT/scripts/frontend-build.sh" || echo "fpesa: the frontend did not build"
fi
stack_up=0
if [ $needs_stack = 1 ]; then
    if bounded "$BOUND_STACK" "$FPESA_ROOT/scripts/stack.sh" start servers &&
        bounded "$BOUND_STACK" "$FPESA_ROOT/scripts/stack.sh" start apps; then
        stack_up=1
    else
        echo "fpesa: the test stack did not start; integration and e2e suites count as failed"
    fi
fi

# pytest_suite NAME BOUND PATHS...: runs pytest on PATHS against the test
# stack and counts its summary as suite NAME.
pytest_suite() {
    local name=$1 bound=$2 out rc last ip if_ ie
    shift 2
    if [ $stack_up != 1 ]; then
        count "$name" 0 1
        return
    fi
    out=$(mktemp)
    # Each test's own limit (pytest-timeout) is in tests/integration/pytest.ini.
    bounded "$bound" $PY -m pytest -p no:cacheprovider -q -ra "$@" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    last=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|no tests ran|[0-9]+ error' "$out" | tail -n 1)
    ip=$(grep -oE '[0-9]+ passed' <<<"$last" | grep -oE '[0-9]+' || echo 0)
    if_=$(grep -oE '[0-9]+ failed' <<<"$last" | grep -oE '[0-9]+' || echo 0)
    ie=$(grep -oE '[0-9]+ errors?' <<<"$last" | grep -oE '[0-9]+' || echo 0)
    [ -n "$last" ] || if_=1
    # A run that printed its summary and then did not exit (a thread left
    # running) is a failure too.
    ! timed_out $rc || if_=$((${if_:-0} + 1))
    # pytest's own status catches what the summary does not: a usage
    # error, an internal error or no test selected at all.
    [ "$rc" = 0 ] || [ "$((${if_:-0} + ${ie:-0}))" -gt 0 ] || if_=1
    count "$name" "${ip:-0}" $((${if_:-0} + ${ie:-0}))
    rm -f "$out"
}

if want integration && [ -d tests/integration ]; then
    # shellcheck disable=SC2086
    pytest_suite integration "$BOUND_INTEGRATION" ${PYTEST_PATHS:-tests/integration} ${PYTEST_ARGS:-}
fi

if want cluster && [ -f tests/integration/cluster_faults.py ]; then
    pytest_suite cluster "$BOUND_CLUSTER" -rP tests/integration/cluster_faults.py
fi

if want frontend && [ -f frontend/package.json ] && grep -q '"test"' frontend/package.json; then
    out=$(mktemp)
    (cd frontend && bounded "$BOUND_FRONTEND" env NO_COLOR=1 npx --no-install vitest run 2>&1) | tee "$out"
    rc=${PIPESTATUS[0]}
    fp=$(grep -E '^\s*Tests' "$out" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
    ff=$(grep -E '^\s*Tests' "$out" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)
    grep -qE '^\s*Tests' "$out" || ff=1
    ! timed_out $rc || ff=$((${ff:-0} + 1))
    count frontend "${fp:-0}" "${ff:-0}"
    rm -f "$out"
fi

if want e2e && [ -d tests/e2e ] && ls tests/e2e/*.test.mjs >/dev/null 2>&1; then
    if [ $stack_up = 1 ]; then
        out=$(mktemp)
        bounded "$BOUND_E2E" env NODE_PATH="$FPESA_ROOT/frontend/node_modules" node --test \
            --test-concurrency=1 --test-timeout=$((BOUND_E2E_TEST * 1000)) ${E2E_PATHS:-tests/e2e/} 2>&1 | tee "$out"
        rc=${PIPESTATUS[0]}
        ep=$(grep -E '^# pass' "$out" | grep -oE '[0-9]+' || echo 0)
        ef=$(grep -E '^# fail' "$out" | grep -oE '[0-9]+' || echo 1)
        ! timed_out $rc || ef=$((${ef:-0} + 1))
        count e2e "${ep:-0}" "${ef:-0}"
        rm -f "$out"
    else
        count e2e 0 1
    fi
fi

if want docs && [ -f doc/conf.py ]; then
    if bounded "$BOUND_DOCS" "$FPESA_ROOT/scripts/docs.sh"; then count docs 1 0; else count docs 0 1; fi
fi

if want fuzz && [ -x scripts/fuzz.sh ] && [ -d tests/fuzz ]; then
    out=$(mktemp)
    bounded "$BOUND_FUZZ" "$FPESA_ROOT/scripts/fuzz.sh" --replay 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    zp=$(grep -oE '^fuzz replay: [0-9]+ passed' "$out" | grep -oE '[0-9]+' || echo 0)
    zf=$(grep -oE '^fuzz replay: [0-9]+ passed, [0-9]+ failed' "$out" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 1)
    ! timed_out $rc || zf=$((${zf:-0} + 1))
    count fuzz "${zp:-0}" "${zf:-1}"
    rm -f "$out"
fi

[ ${#failed_suites[@]} = 0 ] || echo "fpesa: failing suites: ${failed_suites[*]}"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ] && [ "$total_pass" -gt 0 ]
