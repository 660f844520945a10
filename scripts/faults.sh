#!/usr/bin/env bash
# make faults: the fault tests at full length on a stack of their own.
# (make test runs the same tests shortened, on its own stack.)
# make faults CLUSTER=1 (FPESA_FAULTS_CLUSTER=1): the cluster's fault test
# instead (tests/integration/cluster_faults.py, on ports FPESA_PORT_BASE+60
# and up), which starts and stops scripts/cluster.sh itself.
set -u
export FPESA_STACK=${FPESA_STACK:-faults} FPESA_PORT_BASE=${FPESA_PORT_BASE:-21700}
if [ "${FPESA_FAULTS_CLUSTER:-0}" = 1 ]; then
    paths=tests/integration/cluster_faults.py
else
    paths=tests/integration/test_zz_faults.py
fi
export FPESA_SUITES=integration PYTEST_PATHS=${PYTEST_PATHS:-$paths} PYTEST_ARGS="${PYTEST_ARGS:--rP}"
exec "$(dirname "${BASH_SOURCE[0]}")/test.sh"
