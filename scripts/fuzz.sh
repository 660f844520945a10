#!/usr/bin/env bash
# libFuzzer targets for every parser of outside input.
#
#   scripts/fuzz.sh             fuzz each target for FUZZ_SECONDS (default 60) under ASan+UBSan,
#                               adding what it finds to tests/fuzz/corpus/<target>/
#   scripts/fuzz.sh --replay    build each target with a plain main() under ASan+UBSan and
#                               run its committed corpus (make test does this)
#
# A target is tests/fuzz/fuzz_<name>.c; its first comment line says which
# sources it links ("fuzz-sources: common/*.c mapper/router.c"). The Makefile
# builds both kinds of binary (build/fuzz/replay_<name>, build/fuzz/fuzz_<name>)
# with the same package definitions as the programs.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
OUT=$BUILD/fuzz
mkdir -p "$OUT"
MODE=${1:-fuzz}
# mk TARGET: builds one target of the Makefile (a make of its own, not the
# caller's job server).
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -s -C "$ROOT" BUILD="$BUILD" "$1"; }

passed=0
failed=0
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    corpus=tests/fuzz/corpus/$name
    mkdir -p "$corpus"
    if [ "$MODE" = --replay ]; then
        bin=$OUT/replay_$name
        if ! mk "$bin" >"$OUT/$name.build.log" 2>&1; then
            echo "fuzz replay: $name: build failed"
            tail -n 20 "$OUT/$name.build.log"
            failed=$((failed + 1))
            continue
        fi
        files=$(find "$corpus" -type f | sort)
        if [ -z "$files" ]; then
            echo "fuzz replay: $name: empty corpus"
            failed=$((failed + 1))
            continue
        fi
        # shellcheck disable=SC2086
        if ASAN_OPTIONS=detect_leaks=1 "$bin" $files >"$OUT/$name.replay.log" 2>&1; then
            echo "fuzz replay: $name: $(wc -w <<<"$files") inputs ok"
            passed=$((passed + 1))
        else
            echo "fuzz replay: $name: FAILED"
            tail -n 30 "$OUT/$name.replay.log"
            failed=$((failed + 1))
        fi
    else
        bin=$OUT/fuzz_$name
        mk "$bin" || { failed=$((failed + 1)); continue; }
        mkdir -p "$OUT/new_$name"
        if "$bin" -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 -rss_limit_mb=2048 \
            "$OUT/new_$name" "$corpus" >"$OUT/$name.fuzz.log" 2>&1; then
            # Keep only what adds coverage: merge the new finds into the corpus.
            "$bin" -merge=1 "$corpus" "$OUT/new_$name" >/dev/null 2>&1
            echo "fuzz: $name: no finding in ${FUZZ_SECONDS:-60}s ($(ls "$corpus" | wc -l) corpus files)"
            passed=$((passed + 1))
        else
            echo "fuzz: $name: FINDING, see $OUT/$name.fuzz.log"
            grep -A 20 'ERROR' "$OUT/$name.fuzz.log" | head -n 40
            failed=$((failed + 1))
        fi
    fi
done
if [ "$MODE" = --replay ]; then
    echo "fuzz replay: $passed passed, $failed failed"
else
    echo "fuzz: $passed passed, $failed failed"
fi
[ $failed = 0 ]
