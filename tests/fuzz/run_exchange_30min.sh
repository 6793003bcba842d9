#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run the whole-path fuzzer (fuzz_exchange) for a long, bounded time - 30 minutes
# unless told otherwise - at the lowest CPU priority, one job, and print its
# figures: executions, executions per second, coverage (cov and ft of libFuzzer's
# last status line), corpus, and every crash with what it was (the first line of
# its report when replayed). It keeps going after a crash (libFuzzer's fork
# mode), so one run shows every kind of defect it can reach.
# Usage: tests/fuzz/run_exchange_30min.sh [SECONDS]
# Env: TETHER_BUILDDIR the build directory configured with --enable-fuzzing CC=clang
#                      where `make fuzz` ran (default: the current directory)
#      FUZZ_WORKDIR    corpus copy, log and crash artifacts
#                      (default: $TETHER_BUILDDIR/tests/fuzz/run-exchange-long)
#      TETHER_SRCDIR   the source tree (default: this script's repository)
# Exit status: 0 when no crash was found, 1 when one was, 2 on a usage error.
set -u
secs=${1:-1800}
if [[ ! $secs =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi
srcdir=${TETHER_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
builddir=${TETHER_BUILDDIR:-$PWD}
bin=$builddir/tests/fuzz/fuzz_exchange.libfuzzer
dir=${FUZZ_WORKDIR:-$builddir/tests/fuzz/run-exchange-long}
if [[ ! -x $bin ]]; then
    echo "no $bin (configure --enable-fuzzing CC=clang; make fuzz)" >&2
    exit 2
fi
rm -rf "$dir"
mkdir -p "$dir/corpus" "$dir/artifacts"
cp -r "$srcdir/tests/fuzz/corpus/exchange/." "$dir/corpus/"

start=$SECONDS
t0=$(date +%s)
# -fork=1 -ignore_*: one child process at a time, restarted after a crash, so the
# run lasts its whole time; -timeout: an input running 10 s is a hang.
nice -n 19 timeout -k 10 $((secs + 300)) "$bin" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
    -ignore_ooms=1 -dict="$srcdir/tests/fuzz/exchange.dict" -max_total_time="$secs" \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$dir/artifacts/" "$dir/corpus" \
    >"$dir/log" 2>&1
rc=$?
elapsed=$((SECONDS - start))

# Fork mode's status lines: "#EXECS: cov: C ft: F corp: N exec/s E oom/timeout/crash: a/b/c ..."
last=$(grep -E '^#[0-9]+: cov:' "$dir/log" | tail -n 1)
execs=$(echo "$last" | sed -n 's/^#\([0-9]*\):.*/\1/p')
cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
oomtc=$(echo "$last" | sed -n 's/.* oom\/timeout\/crash: \([0-9/]*\).*/\1/p')
eps=$([[ -n $execs && $elapsed -gt 0 ]] && echo $((execs / elapsed)) || echo "?")
ncrash=$(find "$dir/artifacts" -name 'crash-*' | wc -l)
echo "exchange secs=$elapsed rc=$rc execs=${execs:-?} exec/s=$eps cov=${cov:-?} ft=${ft:-?}" \
    "corpus=${corp:-?} oom/timeout/crash=${oomtc:-?} crash-files=$ncrash"
for f in "$dir"/artifacts/crash-* "$dir"/artifacts/timeout-* "$dir"/artifacts/oom-*; do
    [[ -e $f ]] || continue
    what=$("$bin" -runs=1 "$f" 2>&1 |
        grep -m1 -E 'ERROR: AddressSanitizer|runtime error|fuzz_exchange: (ORACLE|SPIN|LEAK)' |
        sed 's/^==[0-9]*==//')
    echo "  $(basename "$f") (after $(($(stat -c %Y "$f") - t0)) s): ${what:-no report on replay}"
done
echo "log: $dir/log"
((ncrash == 0))
