#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Health-check CPU cost: one tether checking N servers (default 1000, each its
# own mock-pod listener on 127.77.x.y) every INTERVAL, no traffic; prints the
# CPU tether used over a window (utime+stime from /proc) as % of one core, the
# checks per second the pods answered and the CPU per check.
# Usage: bench/health_cpu.sh [-n SERVERS] [-d SECONDS] [-i INTERVAL] [--close]
#   --close: the pods close after every answer (a new connection per check)
# Env: TETHER_BUILDDIR (default: the current directory).
set -euo pipefail

n=1000 dur=30 interval=1s close=0
while (($#)); do
    case $1 in
    -n) n=$2; shift 2 ;;
    -d) dur=$2; shift 2 ;;
    -i) interval=$2; shift 2 ;;
    --close) close=1; shift ;;
    *) echo "usage: $0 [-n SERVERS] [-d SECONDS] [-i INTERVAL] [--close]" >&2; exit 2 ;;
    esac
done
builddir=${TETHER_BUILDDIR:-$(pwd)}
tether=$builddir/tether
mockpod=$builddir/tests/mockpod/mockpod
[[ -x $tether && -x $mockpod ]] || { echo "no tether/mockpod in $builddir" >&2; exit 2; }

dir=$(mktemp -d /tmp/health-cpu.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

addr() { printf '127.77.%d.%d' $(($1 / 250)) $(($1 % 250 + 1)); }
port_free() { ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
pick_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 12000))
        if port_free "$1" "$p"; then echo "$p"; return; fi
    done
    echo "no free port" >&2; exit 1
}

pport=$(pick_port 127.77.0.1)
lport=$(pick_port 127.0.0.1)
# One mock pod per 16 listeners (its limit).
npods=0
for ((i = 0; i < n; i += 16)); do
    args=()
    for ((j = i; j < i + 16 && j < n; j++)); do args+=(--listen "$(addr "$j"):$pport"); done
    "$mockpod" "${args[@]}" --name "p$i" --quiet >/dev/null 2>&1 &
    pids+=($!)
    npods=$((npods + 1))
done
for _ in $(seq 200); do port_free "$(addr $((n - 1)))" "$pport" || break; sleep 0.05; done

path=/health
((close)) && path="/health?close=1"
{
    echo "workers 1;"
    echo "error_log $dir/error.log notice;"
    echo "upstream many {"
    for ((j = 0; j < n; j++)); do echo "    server s$j $(addr "$j"):$pport;"; done
    echo "    health_check { path $path; interval $interval; timeout 1s; rise 2; fall 3; }"
    echo "}"
    echo "server { listen 127.0.0.1:$lport; route / { upstream many; } }"
} >"$dir/tether.conf"
"$tether" -c "$dir/tether.conf" 2>"$dir/stderr" &
tpid=$!
pids+=("$tpid")
for _ in $(seq 200); do port_free 127.0.0.1 "$lport" || break; sleep 0.05; done

# Answered checks: the pods' request counters (their own /control/stats).
checks() {
    local sum=0 i v
    for ((i = 0; i < n; i += 16)); do
        v=$(curl -s "http://$(addr "$i"):$pport/control/stats" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

sleep 3 # every server checked at least twice: connections open, state settled
m0=$(date +%s.%N)
c0=$(checks)
m0=$(echo "$m0 $(date +%s.%N)" | awk '{printf "%.3f", ($1 + $2) / 2}') # when c0 was counted, about
t0=$(ticks "$tpid")
s0=$(date +%s.%N)
sleep "$dur"
t1=$(ticks "$tpid")
s1=$(date +%s.%N)
m1=$s1
c1=$(checks)
m1=$(echo "$m1 $(date +%s.%N)" | awk '{printf "%.3f", ($1 + $2) / 2}')
kill -0 "$tpid" 2>/dev/null || { echo "tether died:" >&2; cat "$dir/stderr" >&2; exit 1; }

hz=$(getconf CLK_TCK)
awk -v t="$((t1 - t0))" -v hz="$hz" -v s0="$s0" -v s1="$s1" -v c="$((c1 - c0))" -v m0="$m0" -v m1="$m1" -v n="$n" \
    -v iv="$interval" -v newconn="$close" -v down="$(grep -c 'is DOWN' "$dir/error.log" || true)" \
    'BEGIN {
        el = s1 - s0; cpu = t / hz;
        printf "servers %d, interval %s, %s, %.1f s measured\n", n, iv,
               newconn ? "new connection per check" : "kept-alive check connections", el;
        rate = c / (m1 - m0);
        printf "checks answered: %.0f/s (%d servers marked down)\n", rate, down;
        printf "tether CPU: %.2f s = %.2f %% of one core; %.1f us per check\n",
               cpu, 100 * cpu / el, rate ? 1e6 * cpu / (rate * el) : 0;
    }'
