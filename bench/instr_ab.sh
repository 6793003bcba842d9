#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Instructions per request of two tether binaries, counted by callgrind (user space,
# every thread of the tether process): a figure that does not move with the load of a
# shared machine, unlike req/s and CPU time. run.sh's configuration (one route, one
# mock pod, keep-alive), h2load --h1 with a fixed number of keep-alive requests; the
# counters are zeroed after a warm-up and dumped after the measured requests.
# Alternating rounds; prints Ir/request per round and the medians, ratio new/old.
#
# usage: TETHER_OLD=/tmp/tether-main TETHER_BUILDDIR=build bench/instr_ab.sh [ROUNDS] [REQUESTS]
#   defaults: 3 rounds, 20000 requests (10 connections)
set -eu
ROUNDS=${1:-3} N=${2:-20000}
B=$(cd "${TETHER_BUILDDIR:?set TETHER_BUILDDIR}" && pwd)
OLD=${TETHER_OLD:?set TETHER_OLD}
NEW=$B/tether
for c in valgrind callgrind_control h2load curl; do
    command -v $c >/dev/null || { echo "instr_ab.sh: needs $c" >&2; exit 1; }
done
W=$(mktemp -d /tmp/instr_ab.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() {
    for _ in $(seq 300); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
        sleep 0.1
    done
    echo "instr_ab.sh: nothing answers on port $1" >&2
    return 1
}
PP=$(port)
"$B/tests/mockpod/mockpod" --listen 127.0.0.1:$PP --name pod1 --threads 1 --quiet >"$W/pod.log" 2>&1 &
PIDS+=($!)
wait_up "$PP"
# one binary's figure: Ir per request
measure() {
    local bin=$1 name=$2 r=$3 tp pid out
    tp=$(port)
    cat >"$W/$name.conf" <<CONF
workers 1;
error_log stderr warn;
access_log off;
max_connections 1000000;
upstream pods {
    server pod1 127.0.0.1:$PP;
    keepalive 64;
}
server {
    listen 127.0.0.1:$tp;
    keepalive_requests 1000000;
    route / { upstream pods; websocket_timeout 3600s; }
}
CONF
    out=$W/cg.$name.$r
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" -c "$W/$name.conf" \
        >"$W/$name.$r.log" 2>&1 &
    pid=$!
    wait_up "$tp"
    h2load --h1 -n 2000 -c 10 "http://127.0.0.1:$tp/" >/dev/null 2>&1
    callgrind_control -z "$pid" >/dev/null 2>&1
    h2load --h1 -n "$N" -c 10 "http://127.0.0.1:$tp/" >"$W/h2load.$name.$r" 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    grep -q "succeeded, 0 failed\|$N succeeded" "$W/h2load.$name.$r" ||
        { echo "instr_ab.sh: $name: $(grep 'requests:' "$W/h2load.$name.$r")" >&2; exit 1; }
    # the dump after the measured requests is the one with the highest part number
    local f ir
    f=$(ls "$out".* 2>/dev/null | sort -t. -k3 -n | tail -1)
    ir=$(grep -m1 '^summary:\|^totals:' "$f" | awk '{print $2}')
    echo $((ir / N))
}
declare -a OLDV NEWV
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
        o=$(measure "$OLD" old "$r"); n=$(measure "$NEW" new "$r")
    else
        n=$(measure "$NEW" new "$r"); o=$(measure "$OLD" old "$r")
    fi
    OLDV+=("$o") NEWV+=("$n")
    echo "round $r: old $o Ir/request, new $n Ir/request"
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mo=$(med "${OLDV[@]}") mn=$(med "${NEWV[@]}")
echo "median: old $mo, new $mn Ir/request; new/old $(python3 -c "print(f'{$mn/$mo:.4f}')")"
