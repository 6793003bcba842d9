#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Where the time goes: tether (and HAProxy, nginx for comparison) under the keep-alive
# (or -m close) load of bench/run.sh (same configs, pinning and wrk), one system at a time. For each
# system, three separate measurement windows of -d seconds, each in the middle of its own
# wrk run:
#   1. perf stat: task-clock, context switches, page faults, and system calls counted by
#      tracepoint (raw_syscalls:sys_enter and per-syscall syscalls:sys_enter_*), plus the
#      user/system CPU split from /proc; libc malloc calls (a uprobe, added for the run and
#      removed after) unless --no-malloc. Low overhead: this window's numbers are the
#      reference.
#   2. strace -c -f on the process (slows it down a lot; the calls per request still
#      show what a request costs in system calls, though more work per epoll_wait)
#   3. perf record (cpu-clock sampling, call graphs) -> the top symbols, user and kernel
# Requests in a window are counted by the mock pod (its /control/stats), so they are
# exactly the requests the proxy forwarded during the window.
#
# usage: bench/profile.sh [-d SECS] [-c CONNS] [-m keepalive|close] [-S tether,haproxy,nginx]
#                         [-P SUT:POD:LOAD|none] [--no-record] [--no-strace] [--no-malloc]
#                         [-o OUT.md]
#   defaults: 10 s windows, 50 connections, keep-alive clients (close: a new connection
#   per request), all three systems, pinning 0:0:1
# Environment: TETHER_BUILDDIR (see bench/lib.sh), BENCH_KEEP=1 (keeps perf.data files).
. "$(dirname "$0")/lib.sh"

SECS=10 CONNS=50 MODE=keepalive SYSTEMS=tether,haproxy,nginx PINSPEC=default OUT_MD= RECORD=1 STRACE=1 MALLOC=1
WORKERS=1
while [ $# -gt 0 ]; do
    case $1 in
    -d) SECS=$2; shift 2 ;;
    -c) CONNS=$2; shift 2 ;;
    -m) MODE=$2; shift 2 ;;
    -S) SYSTEMS=$2; shift 2 ;;
    -P) PINSPEC=$2; shift 2 ;;
    -o) OUT_MD=$2; shift 2 ;;
    --no-record) RECORD=0; shift ;;
    --no-strace) STRACE=0; shift ;;
    --no-malloc) MALLOC=0; shift ;;
    -h | --help) sed -n '3,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see -h)" ;;
    esac
done
[[ $SECS =~ ^[1-9][0-9]*$ ]] && [ "$SECS" -le 120 ] || die "-d: 1..120 seconds"
[[ $CONNS =~ ^[1-9][0-9]*$ ]] || die "-c needs a positive integer"
case $MODE in
keepalive) WRK_EXTRA=() ;;
close) WRK_EXTRA=(-H "Connection: close") ;;
*) die "-m keepalive|close" ;;
esac

bench_init
ensure_pkgs haproxy:haproxy nginx:nginx-light wrk:wrk curl:curl strace:strace perf:linux-perf \
    /usr/bin/python3:python3
find_tether
NOFILE=$(raise_nofile)
if [ "$PINSPEC" = default ]; then
    if [ "$NCPU" -ge 2 ]; then PINSPEC=0:0:1; else PINSPEC=none; fi
fi
if [ "$PINSPEC" = none ]; then CPU_SUT= CPU_POD= CPU_LOAD=; else IFS=: read -r CPU_SUT CPU_POD CPU_LOAD <<<"$PINSPEC"; fi

PERF_OK=1
if ! perf stat -e task-clock -- true >/dev/null 2>&1; then
    log "perf does not work here (perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null)); skipping perf"
    PERF_OK=0
fi
# the syscall tracepoints that exist here
TP=/sys/kernel/tracing/events/syscalls
[ -d "$TP" ] || TP=/sys/kernel/debug/tracing/events/syscalls
EVENTS=task-clock,context-switches,cpu-migrations,page-faults
if [ $PERF_OK = 1 ] && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
    EVENTS=$EVENTS,raw_syscalls:sys_enter
    for s in read write readv writev recvfrom sendto recvmsg sendmsg recvmmsg sendmmsg \
        epoll_wait epoll_pwait epoll_pwait2 epoll_ctl accept accept4 close connect socket \
        shutdown setsockopt getsockopt futex mmap munmap brk madvise ioctl clock_gettime \
        gettimeofday getpid splice pipe2 eventfd2 timerfd_settime poll ppoll; do
        [ -d "$TP/sys_enter_$s" ] && EVENTS=$EVENTS,syscalls:sys_enter_$s
    done
else
    log "syscall tracepoints unavailable: counting with strace only"
fi
ADDED_PROBE=
# called by bench_cleanup: the uprobe goes away with everything else
bench_on_exit() { [ -z "$ADDED_PROBE" ] || perf probe -q -d probe_libc:malloc >/dev/null 2>&1 || true; }
LIBC=$(ldd "$TETHER" | awk '/libc\.so/{print $3}')
if [ $PERF_OK = 1 ] && [ $MALLOC = 1 ] && [ -n "$LIBC" ]; then
    if perf probe -l 2>/dev/null | grep -q 'probe_libc:malloc '; then
        EVENTS=$EVENTS,probe_libc:malloc
    elif perf probe -q -x "$LIBC" --add malloc >/dev/null 2>&1; then
        ADDED_PROBE=1
        EVENTS=$EVENTS,probe_libc:malloc
    else
        log "cannot add a uprobe on malloc: malloc calls not counted"
    fi
fi

read -r P_POD P_TETHER P_HAPROXY P_NGINX <<<"$(free_ports 4)"
POD=127.0.0.1:$P_POD
start pod "$CPU_POD" "$WORK/pod.log" "$MOCKPOD" --listen "$POD" --name pod1 --threads 1 --quiet
check_up pod "$PID_pod" "$P_POD" "$WORK/pod.log"
IFS=, read -r -a SYS <<<"$SYSTEMS"
declare -A PORT SUTPIDS
for s in "${SYS[@]}"; do
    case $s in
    tether)
        PORT[$s]=$P_TETHER
        tether_conf "$WORK/tether.conf" "$P_TETHER" 0 - - "$POD"
        start_system tether "$CPU_SUT" "$P_TETHER" "$WORK/tether.conf"
        SUTPIDS[$s]=$PID_tether
        ;;
    haproxy)
        PORT[$s]=$P_HAPROXY
        haproxy_cfg "$WORK/haproxy.cfg" "$P_HAPROXY" 0 - 4096 "$POD"
        start_system haproxy "$CPU_SUT" "$P_HAPROXY" "$WORK/haproxy.cfg"
        SUTPIDS[$s]=$PID_haproxy
        ;;
    nginx)
        PORT[$s]=$P_NGINX
        nginx_conf "$WORK/nginx.conf" "$P_NGINX" 0 - - 8192 "$POD"
        start_system nginx "$CPU_SUT" "$P_NGINX" "$WORK/nginx.conf"
        SUTPIDS[$s]=$(work_pids "$PID_nginx" | tr '\n' ' ')
        ;;
    *) die "unknown system $s" ;;
    esac
done

pod_requests() {
    curl -s --max-time 5 "http://$POD/control/stats" | $PY -c 'import json,sys; print(json.load(sys.stdin)["requests"])'
}
utime_stime() { # PIDS -> "utime stime" ticks
    local u=0 t=0 p a b
    for p in "$@"; do
        read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat")
        u=$((u + a)) t=$((t + b))
    done
    echo "$u $t"
}

# window_begin SYSTEM TAG / window_end SYSTEM TAG: a measurement window in the middle of
# a wrk run; window_end writes $WORK/prof/SYSTEM.TAG.window: requests secs utime stime
window_begin() {
    local s=$1 tag=$2
    # shellcheck disable=SC2046
    $(pin "$CPU_LOAD") wrk -t1 -c"$CONNS" -d"$((SECS + 6))s" "${WRK_EXTRA[@]+"${WRK_EXTRA[@]}"}" "http://127.0.0.1:${PORT[$s]}/" \
        >"$WORK/prof/$s.$tag.wrk" 2>&1 &
    WIN_WRK=$!
    PIDS+=("$WIN_WRK")
    sleep 1
}
window_mark() { # sets WIN_R WIN_U WIN_S WIN_T
    WIN_R=$(pod_requests)
    # shellcheck disable=SC2086
    read -r WIN_U WIN_S <<<"$(utime_stime ${SUTPIDS[$1]})"
    WIN_T=$(date +%s%N)
}
window_end() {
    local s=$1 tag=$2 r0=$3 u0=$4 s0=$5 t0=$6
    echo "$((WIN_R - r0 - 1)) $($PY -c "print(($WIN_T - $t0) / 1e9)") $((WIN_U - u0)) $((WIN_S - s0))" \
        >"$WORK/prof/$s.$tag.window"
    stop_pid "$WIN_WRK"
    log "$s $tag: $((WIN_R - r0 - 1)) requests in the window"
}

# perf_window SYSTEM TAG PERF-ARGS...: perf attached to the system with its events
# disabled, enabled through a control fifo for exactly the window (attaching to many
# tracepoints takes a while; that must not count).
perf_window() {
    local s=$1 tag=$2 ppid a r0 u0 s0 t0 pids_csv
    shift 2
    pids_csv=$(echo "${SUTPIDS[$s]}" | xargs | tr ' ' ',')
    rm -f "$WORK/ctl" "$WORK/ack"
    mkfifo "$WORK/ctl" "$WORK/ack"
    window_begin "$s" "$tag"
    perf "$@" -D -1 --control "fifo:$WORK/ctl,$WORK/ack" -p "$pids_csv" 2>"$WORK/prof/$s.$tag.err" &
    ppid=$!
    PIDS+=("$ppid")
    exec 7<>"$WORK/ctl" 8<>"$WORK/ack"
    echo enable >&7
    read -r -t 60 a <&8 || log "$s $tag: perf did not acknowledge enable: $(cat "$WORK/prof/$s.$tag.err")"
    window_mark "$s"
    r0=$WIN_R u0=$WIN_U s0=$WIN_S t0=$WIN_T
    sleep "$SECS"
    echo disable >&7
    read -r -t 60 a <&8 || true
    window_mark "$s"
    kill -INT "$ppid" 2>/dev/null || true
    for a in $(seq 600); do kill -0 "$ppid" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$ppid"
    exec 7>&- 8>&-
    window_end "$s" "$tag" "$r0" "$u0" "$s0" "$t0"
}

# strace_window SYSTEM: strace -c -f attached to all threads for SECS
strace_window() {
    local s=$1 p r0 u0 s0 t0 sargs=()
    for p in ${SUTPIDS[$s]}; do sargs+=(-p "$p"); done
    window_begin "$s" strace
    window_mark "$s"
    r0=$WIN_R u0=$WIN_U s0=$WIN_S t0=$WIN_T
    # SIGINT after SECS: strace detaches and writes its table
    timeout -s INT "$SECS" strace -c -f -o "$WORK/prof/$s.strace" "${sargs[@]}" || true
    window_mark "$s"
    window_end "$s" strace "$r0" "$u0" "$s0" "$t0"
}

mkdir -p "$WORK/prof"
log "systems: ${SYS[*]}; pinning $PINSPEC (system:pod:wrk); wrk -t1 -c$CONNS; ${SECS}s windows; perf $PERF_OK, strace $STRACE, record $RECORD"
for s in "${SYS[@]}"; do
    # warm-up
    # shellcheck disable=SC2046
    timeout 30 $(pin "$CPU_LOAD") wrk -t1 -c"$CONNS" -d2s "${WRK_EXTRA[@]+"${WRK_EXTRA[@]}"}" "http://127.0.0.1:${PORT[$s]}/" >/dev/null 2>&1 || true
    if [ $PERF_OK = 1 ]; then
        perf_window "$s" stat stat -x, -o "$WORK/prof/$s.perfstat" -e "$EVENTS"
    else
        window_begin "$s" stat
        window_mark "$s"
        r0=$WIN_R u0=$WIN_U s0=$WIN_S t0=$WIN_T
        sleep "$SECS"
        window_mark "$s"
        window_end "$s" stat "$r0" "$u0" "$s0" "$t0"
    fi
    [ $STRACE = 1 ] && strace_window "$s"
    if [ $PERF_OK = 1 ] && [ $RECORD = 1 ]; then
        perf_window "$s" record record -q -F 1999 -g -o "$WORK/prof/$s.perf.data"
        perf report -i "$WORK/prof/$s.perf.data" --stdio --no-children --sort dso,sym -g none \
            --percent-limit 0.8 2>/dev/null | grep -v '^#' | grep -v '^$' >"$WORK/prof/$s.top" || true
        perf report -i "$WORK/prof/$s.perf.data" --stdio --no-children --sort dso -g none \
            2>/dev/null | grep -v '^#' | grep -v '^$' >"$WORK/prof/$s.dso" || true
        perf report -i "$WORK/prof/$s.perf.data" --stdio --children --sort sym -g none \
            --percent-limit 3 2>/dev/null | grep -v '^#' | grep -v '^$' >"$WORK/prof/$s.children" || true
        [ "${BENCH_KEEP:-0}" = 1 ] || rm -f "$WORK/prof/$s.perf.data"
    fi
done

{
    echo "## Profile under $MODE load: $(date -u +%Y-%m-%dT%H:%MZ), tether $TETHER_REV"
    echo
    echo "wrk -t1 -c$CONNS ($MODE), pinning (system:pod:wrk) $PINSPEC, ${SECS}s windows; requests counted by the pod."
    echo
    CLK_TCK=$CLK_TCK $PY "$BENCH_DIR/report.py" profile "$WORK/prof" "${SYS[@]}"
} >"$WORK/report.md"
cat "$WORK/report.md"
[ -n "$OUT_MD" ] && cp "$WORK/report.md" "$OUT_MD"
exit 0
