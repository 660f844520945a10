#!/usr/bin/env bash
# libFuzzer targets for every parser of outside input.
#
#   scripts/fuzz.sh             fuzz each target for FUZZ_SECONDS (default 60) under ASan+UBSan,
#                               adding what it finds to tests/fuzz/corpus/<target>/
#   scripts/fuzz.sh --replay    build each target with a plain main() under ASan+UBSan and
#                               run its committed corpus (make test does this)
#
# A target is tests/fuzz/fuzz_<name>.c; its first comment line says which
# sources it links ("fuzz-sources: common/*.c mapper/router.c").
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${BUILD:-build}/fuzz
mkdir -p "$OUT"
MODE=${1:-fuzz}
PKGS="librabbitmq yaml-0.1 jansson libpq libpcre2-8 libmicrohttpd"
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Iinclude -Icommon -DFPESA_FUZZ_CONFIG=\"$ROOT/endpoints.yaml\" $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread -ldl -lm"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"

passed=0
failed=0
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    deps=$(sed -n 's/.*fuzz-sources: *//p' "$src" | head -n 1)
    # shellcheck disable=SC2086 # the globs in fuzz-sources are meant to expand
    srcs=$(ls $deps 2>/dev/null | grep -v '/main\.c$')
    corpus=tests/fuzz/corpus/$name
    mkdir -p "$corpus"
    if [ "$MODE" = --replay ]; then
        bin=$OUT/replay_$name
        # shellcheck disable=SC2086
        if ! cc $CFLAGS $SAN -o "$bin" "$src" tests/fuzz/replay_main.c $srcs $LIBS 2>"$OUT/$name.build.log"; then
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
        command -v clang >/dev/null || { echo "fuzz: clang is missing (make deps)"; exit 1; }
        bin=$OUT/fuzz_$name
        # shellcheck disable=SC2086
        clang $CFLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
            -o "$bin" "$src" $srcs $LIBS || { failed=$((failed + 1)); continue; }
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
