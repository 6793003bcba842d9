#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run each libFuzzer target for a bounded time over its seed corpus and print one
# line per target (executions, coverage, corpus) and "N passed, N failed".
# Usage: tests/fuzz/run.sh [-j N] SECONDS [TARGET...]
#   TARGET: http1_request http1_response chunked conf cookie session_learn admin health_report h2
#           exchange (default: every target whose binary exists)
# Env: TETHER_BUILDDIR the build directory (default: the current directory)
#      FUZZ_BINDIR   where fuzz_<target>.libfuzzer live (default: $TETHER_BUILDDIR/tests/fuzz)
#      FUZZ_WORKDIR  corpus copies, logs and crash artifacts (default: $TETHER_BUILDDIR/tests/fuzz/run)
#      TETHER_SRCDIR the source tree (default: this script's repository)
# The seed corpus in the source tree is never written to: new inputs go to a copy in
# FUZZ_WORKDIR. A crash, leak, timeout or sanitizer report fails the target; its
# reproducer is kept as FUZZ_WORKDIR/<target>/crash-* (replay it with the binary).
set -u
jobs=1
if [[ ${1:-} == -j ]]; then jobs=$2; shift 2; fi
if [[ $# -lt 1 || ! ${1} =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [-j N] SECONDS [TARGET...]" >&2
    exit 2
fi
secs=$1; shift
srcdir=${TETHER_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
builddir=${TETHER_BUILDDIR:-$PWD}
bindir=${FUZZ_BINDIR:-$builddir/tests/fuzz}
workdir=${FUZZ_WORKDIR:-$builddir/tests/fuzz/run}
all=(http1_request http1_response chunked conf cookie session_learn admin health_report h2 exchange)
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    for t in "${all[@]}"; do [[ -x $bindir/fuzz_$t.libfuzzer ]] && targets+=("$t"); done
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "no fuzz_*.libfuzzer binaries in $bindir (configure --enable-fuzzing CC=clang; make fuzz)" >&2
    exit 2
fi

dict_of() {
    case $1 in
        http1_request | http1_response | chunked) echo "$srcdir/tests/fuzz/http1.dict" ;;
        conf) echo "$srcdir/tests/fuzz/conf.dict" ;;
        admin) echo "$srcdir/tests/fuzz/admin.dict" ;;
        health_report) echo "$srcdir/tests/fuzz/health_report.dict" ;;
        exchange) echo "$srcdir/tests/fuzz/exchange.dict" ;;
        *) echo "" ;;
    esac
}

run_one() { # target -> writes $workdir/<target>/result
    local t=$1 bin=$bindir/fuzz_$1.libfuzzer dir=$workdir/$1
    rm -rf "$dir"
    mkdir -p "$dir/corpus"
    if [[ ! -x $bin ]]; then
        echo "$t missing-binary" >"$dir/result"
        return
    fi
    [[ -d $srcdir/tests/fuzz/corpus/$t ]] && cp -r "$srcdir/tests/fuzz/corpus/$t/." "$dir/corpus/"
    local dict opts=()
    dict=$(dict_of "$t")
    [[ -n $dict && -f $dict ]] && opts+=("-dict=$dict")
    # -rss_limit_mb: the parsers are pure and bounded; 1 GiB would be a leak or a bomb.
    # The whole-path target (exchange) holds up to a few 1 MiB buffers and 4 MiB of
    # generated traffic per input under ASan: 2 GiB.
    # -timeout: one input taking more than 10 s is a hang.
    local start=$SECONDS rss=1024
    [[ $t == exchange ]] && rss=2048
    timeout -k 10 $((secs + 120)) "$bin" "${opts[@]}" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb="$rss" -print_final_stats=1 -artifact_prefix="$dir/" \
        "$dir/corpus" >"$dir/log" 2>&1
    local rc=$?
    # libFuzzer's last status line: "#N DONE cov: C ft: F corp: K/Sb ... exec/s: E"
    local last execs cov ft corp eps
    last=$(grep -E '^#[0-9]+' "$dir/log" | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p')
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
    local verdict=ok
    if ((rc != 0)) || ls "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* >/dev/null 2>&1; then
        verdict=FAIL
    fi
    echo "$t $verdict rc=$rc secs=$((SECONDS - start)) execs=${execs:-?} exec/s=${eps:-?}" \
        "cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?}" >"$dir/result"
}

mkdir -p "$workdir"
for t in "${targets[@]}"; do
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n; done
    run_one "$t" &
done
wait

passed=0 failed=0
for t in "${targets[@]}"; do
    line=$(cat "$workdir/$t/result" 2>/dev/null || echo "$t FAIL no-result")
    echo "$line"
    if [[ $line == "$t ok "* ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "----- $workdir/$t/log (last 30 lines) -----"
        tail -n 30 "$workdir/$t/log" 2>/dev/null
        echo "-----"
    fi
done
echo "$passed passed, $failed failed"
((failed == 0))
