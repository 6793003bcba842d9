#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install everything, build with gcc and clang warning-free (-Werror), check the
# formatting, run the fuzz targets briefly, then run the whole test suite
# (make check) under AddressSanitizer + UndefinedBehaviorSanitizer. The last
# line is make check's "N passed, N failed".
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$src"
"$src/scripts/install-deps.sh" --test
autoreconf -fi

echo "== gcc and clang, warnings are errors"
BUILD_DIR=$src/build-gcc scripts/build.sh --enable-werror CC=gcc
BUILD_DIR=$src/build-clang scripts/build.sh --enable-werror CC=clang

echo "== formatting (clang-format)"
files=$(git ls-files 'src/*.c' 'src/*.h' 'include/tether/*.h' 'tests/unit/*.c' 'tests/unit/*.h' \
        'tests/fuzz/*.c' 'tests/mockpod/*.c' 'tests/mockpod/*.h' 'bench/*.c' 2>/dev/null ||
        ls src/*.c src/*.h include/tether/*.h tests/unit/*.[ch] tests/fuzz/*.c tests/mockpod/*.[ch])
clang-format --dry-run -Werror $files
echo "formatting ok"

if [[ -x tests/fuzz/run.sh ]]; then
    echo "== fuzz targets, ${FUZZ_SECONDS:-20} s each"
    BUILD_DIR=$src/build-fuzz scripts/build.sh --enable-fuzzing CC=clang
    (cd "$src/build-fuzz" && make -j"$(nproc)" fuzz >/dev/null)
    TETHER_BUILDDIR=$src/build-fuzz tests/fuzz/run.sh "${FUZZ_SECONDS:-20}"
fi

echo "== make check under ASan + UBSan"
BUILD_DIR=$src/build-asan scripts/build.sh --enable-sanitizers
cd "$src/build-asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    TETHER_TEST_SLOW=${TETHER_TEST_SLOW:-3} make check
