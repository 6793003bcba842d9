#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run integration tests with every tether process under valgrind memcheck and report
# memory errors and leaks per process, then "N passed, N failed".
# Usage: tests/valgrind.sh [TEST...]          (from a build directory, not a sanitizer build)
#   TEST: integration test names (default: a selection that covers the proxy path,
#         errors, faults, reloads and shutdown), e.g. test_http_proxy test_faults
# Env:  TETHER_BUILDDIR (default: cwd), TETHER_SRCDIR (default: this script's repo),
#       TETHER_TEST_SLOW (default 10: valgrind runs tether ~20x slower),
#       VALGRIND_OUT (default: $TETHER_BUILDDIR/tests/valgrind),
#       VALGRIND_TESTS_MUST_PASS=1 to count test failures too (timing-sensitive tests
#       may fail under valgrind for reasons that are not memory errors).
# A process counts as clean when its log says "ERROR SUMMARY: 0 errors" and no
# definitely or indirectly lost blocks; a process that was killed (SIGKILL, no
# summary) is reported as "incomplete" and counted as a failure.
set -u
srcdir=${TETHER_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
builddir=${TETHER_BUILDDIR:-$PWD}
out=${VALGRIND_OUT:-$builddir/tests/valgrind}
export TETHER_SRCDIR=$srcdir TETHER_BUILDDIR=$builddir
export TETHER_TEST_SLOW=${TETHER_TEST_SLOW:-10}
py=/usr/bin/python3

if ! command -v valgrind >/dev/null; then
    echo "valgrind not found (apt-get install valgrind)" >&2
    exit 2
fi
if [[ ! -x $builddir/tether ]]; then
    echo "no $builddir/tether: build first (without --enable-sanitizers)" >&2
    exit 2
fi
if nm "$builddir/tether" 2>/dev/null | grep -q __asan_init; then
    echo "$builddir/tether is an ASan build: valgrind needs a plain build" >&2
    exit 2
fi

tests=("$@")
if [[ ${#tests[@]} -eq 0 ]]; then
    tests=(test_http_proxy test_framing_limits test_smuggling test_faults test_reload_shutdown)
fi

mkdir -p "$out"
rm -f "$out"/vg.*.log "$out"/*.testlog
wrapper=$out/tether-under-valgrind
cat >"$wrapper" <<EOF
#!/bin/sh
exec valgrind --leak-check=full --show-leak-kinds=definite,indirect \\
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=30 \\
    --log-file=$out/vg.%p.log "$builddir/tether" "\$@"
EOF
chmod +x "$wrapper"
export TETHER_BIN=$wrapper

tests_p=0 tests_f=0
for t in "${tests[@]}"; do
    f=$srcdir/tests/integration/$t.py
    [[ -f $f ]] || { echo "no such test: $t" >&2; tests_f=$((tests_f + 1)); continue; }
    start=$SECONDS
    "$py" "$f" >"$out/$t.testlog" 2>&1
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/$t.testlog" | tail -n 1)
    p=${line%% passed*}; f_=${line#*, }; f_=${f_%% failed}
    [[ -z $line ]] && p=0 f_=1
    tests_p=$((tests_p + p)); tests_f=$((tests_f + f_))
    printf 'test %-28s %3d passed, %d failed (%ds)\n' "$t" "$p" "$f_" $((SECONDS - start))
    if ((f_ > 0)); then
        grep -E '^(FAIL|AssertionError|[A-Za-z]+Error)' "$out/$t.testlog" | head -n 10 | sed 's/^/    /'
    fi
done

clean=0 bad=0 incomplete=0
for log in "$out"/vg.*.log; do
    [[ -f $log ]] || continue
    if ! grep -q 'ERROR SUMMARY:' "$log"; then
        incomplete=$((incomplete + 1))
        echo "valgrind: $(basename "$log"): incomplete (process killed before exit)"
        continue
    fi
    errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$log" | tail -n 1 | tr -d ,)
    def=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -n 1 | tr -d ,)
    ind=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -n 1 | tr -d ,)
    if [[ ${errs:-0} == 0 && ${def:-0} == 0 && ${ind:-0} == 0 ]]; then
        clean=$((clean + 1))
    else
        bad=$((bad + 1))
        echo "valgrind: $(basename "$log"): ${errs:-?} errors, ${def:-0} bytes definitely lost," \
            "${ind:-0} indirectly lost; command: $(sed -n 's/^==[0-9]*== Command: //p' "$log" | head -n 1)"
        # the first error or leak record, for the report
        awk '/^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and|Argument)|are definitely lost|are indirectly lost/{p=1} p{print; if (++n > 25) exit}' "$log" | sed 's/^/    /'
    fi
done
echo "valgrind: $clean clean processes, $bad with errors or leaks, $incomplete incomplete (logs in $out)"
echo "tests under valgrind: $tests_p passed, $tests_f failed"

failed=$((bad + incomplete))
if [[ ${VALGRIND_TESTS_MUST_PASS:-0} == 1 ]]; then failed=$((failed + tests_f)); fi
passed=$clean
echo "$passed passed, $failed failed"
((failed == 0 && passed > 0))
