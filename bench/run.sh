#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tether vs HAProxy vs nginx (and the pod directly), HTTP/1.1 through one mock pod on
# loopback, same worker count, keep-alive to the pod everywhere, access logs off.
# wrk runs against each system in alternating rounds (the order rotates every round);
# per system it reports the medians of req/s, p50, p99 and the CPU time the system under
# test spent per request, and the ratios tether/haproxy and tether/nginx as the median of
# the per-round ratios — for keep-alive clients and for a new connection per request.
#
# usage: bench/run.sh [-w WORKERS] [-r ROUNDS] [-d SECS] [-c CONNS] [-t WRK_THREADS]
#                     [-m keepalive,close] [-s direct,tether,haproxy,nginx]
#                     [-P SUT:POD:LOAD | -P none] [--plain] [-o OUT.md] [-j OUT.json]
#   -w  worker threads (tether workers, HAProxy nbthread, nginx worker_processes); 1
#   -r  rounds (5); -d seconds per wrk run (10); -c wrk connections (50); -t wrk threads (1)
#   -m  client modes: keepalive, close (Connection: close, a new connection per request)
#   -P  CPU pinning: CPU lists for the system under test, the mock pod and wrk. Default
#       with 1 worker on >= 2 CPUs: 0:0:1 (proxy and pod share CPU 0, wrk alone on CPU 1);
#       otherwise none
#   --plain  HAProxy and nginx only pass requests through; by default they add the same
#            headers tether adds (X-Forwarded-For/-Proto/-Host, X-Request-Id) so all do
#            the same work
# Environment: TETHER_BUILDDIR (see bench/lib.sh), BENCH_KEEP=1.
. "$(dirname "$0")/lib.sh"

WORKERS=1 ROUNDS=5 SECS=10 CONNS=50 THREADS=1 MODES=keepalive,close
SYSTEMS=direct,tether,haproxy,nginx PINSPEC=default EQUAL_HEADERS=1 OUT_MD= OUT_JSON=
WARMUP=2
while [ $# -gt 0 ]; do
    case $1 in
    -w) WORKERS=$2; shift 2 ;;
    -r) ROUNDS=$2; shift 2 ;;
    -d) SECS=$2; shift 2 ;;
    -c) CONNS=$2; shift 2 ;;
    -t) THREADS=$2; shift 2 ;;
    -m) MODES=$2; shift 2 ;;
    -s) SYSTEMS=$2; shift 2 ;;
    -P) PINSPEC=$2; shift 2 ;;
    -o) OUT_MD=$2; shift 2 ;;
    -j) OUT_JSON=$2; shift 2 ;;
    --plain) EQUAL_HEADERS=0; shift ;;
    -h | --help) sed -n '3,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see -h)" ;;
    esac
done
check_counts WORKERS ROUNDS SECS CONNS THREADS
[ "$ROUNDS" -le 100 ] || die "-r is at most 100"

bench_init
ensure_pkgs haproxy:haproxy nginx:nginx-light wrk:wrk curl:curl /usr/bin/python3:python3
find_tether
NOFILE=$(raise_nofile)

if [ "$PINSPEC" = default ]; then
    if [ "$WORKERS" = 1 ] && [ "$NCPU" -ge 2 ]; then PINSPEC=0:0:1; else PINSPEC=none; fi
fi
if [ "$PINSPEC" = none ]; then
    CPU_SUT= CPU_POD= CPU_LOAD=
else
    IFS=: read -r CPU_SUT CPU_POD CPU_LOAD <<<"$PINSPEC"
fi

read -r P_POD P_TETHER P_HAPROXY P_NGINX <<<"$(free_ports 4)"
POD=127.0.0.1:$P_POD
start pod "$CPU_POD" "$WORK/pod.log" "$MOCKPOD" --listen "$POD" --name pod1 --threads 1 --quiet
check_up pod "$PID_pod" "$P_POD" "$WORK/pod.log"

IFS=, read -r -a SYS <<<"$SYSTEMS"
declare -A PORT URLPID
for s in "${SYS[@]}"; do
    case $s in
    direct) PORT[$s]=$P_POD ;;
    tether)
        PORT[$s]=$P_TETHER
        tether_conf "$WORK/tether.conf" "$P_TETHER" 0 - - "$POD"
        start_system tether "$CPU_SUT" "$P_TETHER" "$WORK/tether.conf"
        ;;
    haproxy)
        PORT[$s]=$P_HAPROXY
        haproxy_cfg "$WORK/haproxy.cfg" "$P_HAPROXY" 0 - 4096 "$POD"
        start_system haproxy "$CPU_SUT" "$P_HAPROXY" "$WORK/haproxy.cfg"
        ;;
    nginx)
        PORT[$s]=$P_NGINX
        nginx_conf "$WORK/nginx.conf" "$P_NGINX" 0 - - 8192 "$POD"
        start_system nginx "$CPU_SUT" "$P_NGINX" "$WORK/nginx.conf"
        ;;
    *) die "unknown system $s" ;;
    esac
done

# the processes whose CPU time is charged to each system
declare -A SUTPIDS
for s in "${SYS[@]}"; do
    case $s in
    direct) SUTPIDS[$s]=$PID_pod ;;
    tether) SUTPIDS[$s]=$PID_tether ;;
    haproxy) SUTPIDS[$s]=$PID_haproxy ;;
    nginx) SUTPIDS[$s]=$(work_pids "$PID_nginx" | tr '\n' ' ') ;;
    esac
done

# sanity: every system answers 200 from the pod
for s in "${SYS[@]}"; do
    code=$(curl -s -o "$WORK/sanity.$s" -w '%{http_code}' --max-time 5 "http://127.0.0.1:${PORT[$s]}/")
    [ "$code" = 200 ] && grep -q '"pod":"pod1"' "$WORK/sanity.$s" ||
        die "$s answered $code: $(head -c 300 "$WORK/sanity.$s")"
done

log "systems: ${SYS[*]}; workers $WORKERS; pinning: ${PINSPEC} (system:pod:wrk); wrk -t$THREADS -c$CONNS -d${SECS}s; $ROUNDS rounds; modes $MODES; equal headers: $EQUAL_HEADERS; open files $NOFILE"

# wrk_cmd SYSTEM MODE SECS: sets WRK to the wrk command line
wrk_cmd() {
    local s=$1 mode=$2 secs=$3
    WRK=(wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency)
    [ "$mode" = close ] && WRK+=(-H "Connection: close")
    WRK+=("http://127.0.0.1:${PORT[$s]}/")
}

one_round() {
    local s=$1 r=$2
    wrk_cmd "$s" "$MODE" "$SECS"
    measure "$MODE" "$r" "$s" wrk "$SECS" -- "${WRK[@]}"
}

tsv_init
IFS=, read -r -a MODE_LIST <<<"$MODES"
for MODE in "${MODE_LIST[@]}"; do
    case $MODE in keepalive | close) ;; *) die "unknown mode $MODE" ;; esac
    for s in "${SYS[@]}"; do
        wrk_cmd "$s" "$MODE" "$WARMUP"
        # shellcheck disable=SC2046
        timeout $((WARMUP + 30)) $(pin "$CPU_LOAD") "${WRK[@]}" >/dev/null 2>&1 || true
    done
    rounds "$MODE" "$ROUNDS" one_round "${SYS[@]}"
done

for s in "${SYS[@]}"; do
    case $s in direct) continue ;; esac
    p=PID_$s
    kill -0 "${!p}" 2>/dev/null || die "$s died during the benchmark: $(tail -5 "$WORK/$s.log")"
done

{
    echo "## HTTP/1.1 through one mock pod: $(date -u +%Y-%m-%dT%H:%MZ), tether $TETHER_REV"
    echo
    echo "workers $WORKERS; wrk -t$THREADS -c$CONNS -d${SECS}s --latency, $ROUNDS alternating rounds;" \
        "pinning (system:pod:wrk) $PINSPEC; $NCPU CPUs; equal headers: $EQUAL_HEADERS." \
        "CPU µs/op: user+system CPU of the system under test per request (for direct: the pod's);" \
        "load gen CPU: wrk's CPU use (100% = one CPU busy);" \
        "other load: CPU used on the machine by anything but the system, the pod and wrk, in % of all CPUs."
    echo
    JSONARG=()
    [ -n "$OUT_JSON" ] && JSONARG=(--json "$OUT_JSON")
    summary --ratio tether:haproxy --ratio tether:nginx --ratio tether:direct \
        "${JSONARG[@]+"${JSONARG[@]}"}"
} >"$WORK/report.md"
cat "$WORK/report.md"
[ -n "$OUT_MD" ] && cp "$WORK/report.md" "$OUT_MD"
exit 0
