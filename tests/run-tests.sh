#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every test (unit programs, fuzz corpus replays, integration scripts) and
# print one closing line "N passed, N failed" (the count of test cases).
# Usage: tests/run-tests.sh [-j N] [FILTER]   (from the build directory)
# Env: TETHER_SRCDIR (default: this script's repo), TETHER_BUILDDIR (default: cwd).
set -u
jobs=${TEST_JOBS:-2}
if [[ ${1:-} == -j ]]; then jobs=$2; shift 2; fi
filter=${1:-}
srcdir=${TETHER_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
builddir=${TETHER_BUILDDIR:-$(pwd)}
export TETHER_SRCDIR=$srcdir TETHER_BUILDDIR=$builddir
export TETHER_ARTIFACTS=${TETHER_ARTIFACTS:-$builddir/tests/artifacts}
py=/usr/bin/python3
logdir=$builddir/tests/logs
mkdir -p "$logdir" "$TETHER_ARTIFACTS"
rm -f "$logdir"/*.log "$logdir"/*.res

run_one() { # kind name command...
    local kind=$1 name=$2; shift 2
    local log=$logdir/$name.log start=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$? line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    local p=0 f=0
    if [[ -n $line ]]; then
        p=${line%% passed*}; f=${line#*, }; f=${f%% failed}
    fi
    # A program that crashed, or ran nothing, is a failure whatever it printed.
    if (( rc != 0 && f == 0 )); then f=1; fi
    if (( p == 0 && f == 0 )); then f=1; fi
    echo "$p $f" >"$logdir/$name.res"
    printf '%-5s %-34s %4d passed, %d failed (%ds)\n' "$kind" "$name" "$p" "$f" $((SECONDS - start))
    if (( f > 0 )); then
        echo "----- $log (last 40 lines) -----"; tail -n 40 "$log"; echo "-----"
    fi
}

fuzz_replay() { # binary corpus
    local out
    out=$("$1" "$2" 2>&1); local rc=$?
    echo "$out"
    local n; n=$(echo "$out" | sed -n 's/^replayed \([0-9]*\) inputs.*/\1/p' | tail -n 1)
    if (( rc == 0 )) && [[ -n $n ]] && (( n > 0 )); then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
}

declare -a pids=()
throttle() { while (( $(jobs -rp | wc -l) >= jobs )); do wait -n; done; }

for t in "$builddir"/tests/unit/test_*; do
    b=$(basename "$t")
    [[ -x $t && $b != *.* ]] || continue
    name=unit_$(basename "$t"); [[ -n $filter && $name != *$filter* ]] && continue
    throttle; run_one unit "$name" "$t" &
done
for t in "$builddir"/tests/fuzz/fuzz_*; do
    b=$(basename "$t")
    [[ -x $t && $b != *.* ]] || continue
    base=$(basename "$t"); corpus=$srcdir/tests/fuzz/corpus/${base#fuzz_}
    name=fuzz_${base#fuzz_}; [[ -n $filter && $name != *$filter* ]] && continue
    [[ -d $corpus ]] || continue
    throttle; run_one fuzz "$name" fuzz_replay "$t" "$corpus" &
done
wait
for t in "$srcdir"/tests/integration/test_*.py; do
    [[ -f $t ]] || continue
    name=$(basename "$t" .py); [[ -n $filter && $name != *$filter* ]] && continue
    throttle; run_one integ "$name" "$py" "$t" &
done
wait

total_p=0; total_f=0
for r in "$logdir"/*.res; do
    [[ -f $r ]] || continue
    read -r p f <"$r"; total_p=$((total_p + p)); total_f=$((total_f + f))
done
echo "$total_p passed, $total_f failed"
(( total_f == 0 && total_p > 0 ))
