#!/usr/bin/env bash
# Builds the Sphinx documentation of doc/ into build/doc/html with Debian's
# python3-sphinx. Any warning fails the build (-W), and --keep-going reports
# every warning of the run, not just the first.
set -u
FPESA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$FPESA_ROOT"
PY=/usr/bin/python3
out=build/doc/html

if ! $PY -c 'import sphinx' 2>/dev/null; then
    echo "fpesa: docs: Sphinx is missing (Debian package python3-sphinx; run make deps)" >&2
    exit 1
fi
mkdir -p build/doc
# A fresh environment every time: stale pickles can hide a warning.
rm -rf build/doc/doctrees
if ! $PY -m sphinx -W --keep-going -q -b html -d build/doc/doctrees doc "$out"; then
    echo "fpesa: docs: the build failed or warned (see above)" >&2
    exit 1
fi
echo "fpesa: docs: built $out/index.html"
