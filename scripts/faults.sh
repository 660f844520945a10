#!/usr/bin/env bash
# make faults: the fault tests at full length on a stack of their own.
# (make test runs the same tests shortened, on its own stack.)
set -u
export FPESA_STACK=${FPESA_STACK:-faults} FPESA_PORT_BASE=${FPESA_PORT_BASE:-21700}
export FPESA_SUITES=integration PYTEST_PATHS=tests/integration/test_zz_faults.py PYTEST_ARGS="${PYTEST_ARGS:--rP}"
exec "$(dirname "${BASH_SOURCE[0]}")/test.sh"
