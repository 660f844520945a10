#!/usr/bin/env bash
# The checks `make check` adds to `make test`: formatting, the functions the
# house style bans, every YAML file of the repository through --check, and
# nginx -t on the generated configuration.
set -u
FPESA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
cd "$FPESA_ROOT"
fail=0

files=$(git ls-files '*.c' '*.h')
bad=$(for f in $files; do clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"; done)
if [ -n "$bad" ]; then
    echo "fpesa: check: not clang-formatted (run make format):"
    printf '  %s\n' $bad
    fail=1
fi

banned=$(git grep -nE '\b(atoi|atol|sprintf|strcpy|strcat|strtok|gets)\s*\(' -- '*.c' '*.h' | grep -v 'snprintf\|vsnprintf' || true)
if [ -n "$banned" ]; then
    echo "fpesa: check: banned functions (../shared/STYLE.md):"
    echo "$banned"
    fail=1
fi

# Every YAML file that is an fpesa configuration (it has an endpoints: key);
# files under tests/unit/common/configs/bad_* are meant to fail.
for y in $(git ls-files '*.yaml' '*.yml'); do
    case "$y" in tests/unit/common/configs/bad_* | tests/fuzz/corpus/*) continue ;; esac
    grep -q '^endpoints:' "$y" || continue
    if ! "$BUILD/bin/restmapper" --check "$y"; then fail=1; fi
done

FPESA_STACK=check FPESA_PORT_BASE=21900 "$FPESA_ROOT/scripts/nginx-conf.sh"
prefix=$FPESA_ROOT/var/check/nginx
if ! /usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf" -t 2>&1; then fail=1; fi

[ $fail = 0 ] && echo "fpesa: check: ok"
exit $fail
