# SPDX-License-Identifier: MIT
# Shared helpers of the bench/ scripts (sourced, not run). Everything runs on loopback;
# every process started here is recorded by pid and stopped on exit; the work directory
# (configs, logs, results) is a mktemp dir removed on exit unless BENCH_KEEP=1.
#
# Environment:
#   TETHER_BUILDDIR  a build dir holding tether and tests/mockpod/mockpod
#                    (default: the repo root if it holds them, else a fresh build in a
#                    temp dir: configure + make, removed on exit)
#   BENCH_KEEP=1     keep the work dir (configs, logs, raw wrk output) for inspection
#   BENCH_QUIET=PCT  before each measured run wait (up to BENCH_QUIET_WAIT s, default 60)
#                    until the machine is less than PCT% busy: for shared machines

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
PY=/usr/bin/python3
ME=$(basename "$0")
PIDS=()
WORK=
CREATED_POLICY_RC=

log() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "not root and no sudo: cannot run $*"
    fi
}

# Stops everything we started (TERM, then KILL after 5 s), removes the work dir.
bench_cleanup() {
    local rc=$? p i
    trap - EXIT INT TERM
    if declare -F bench_on_exit >/dev/null; then bench_on_exit || true; fi
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for i in $(seq 50); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "$CREATED_POLICY_RC" ]; then as_root rm -f /usr/sbin/policy-rc.d || true; fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            log "kept work dir $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit $rc
}

bench_init() {
    WORK=$(mktemp -d /tmp/tether-bench.XXXXXX)
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    NCPU=$(nproc)
    CLK_TCK=$(getconf CLK_TCK)
}

# ensure_pkgs CMD:PACKAGE ...: apt-get installs the packages whose command is missing.
# Services the packages would start (nginx, haproxy) are kept from starting with a
# temporary policy-rc.d, so installing leaves nothing running.
ensure_pkgs() {
    local missing=() pair cmd pkg
    for pair in "$@"; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        if [ -e "$cmd" ] || command -v "$cmd" >/dev/null 2>&1; then continue; fi
        case " ${missing[*]:-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    done
    [ ${#missing[@]} = 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get"
    log "installing: ${missing[*]}"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        CREATED_POLICY_RC=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    if [ -n "$CREATED_POLICY_RC" ]; then
        as_root rm -f /usr/sbin/policy-rc.d
        CREATED_POLICY_RC=
    fi
}

# Finds (or builds) tether and the mock pod; sets TETHER, MOCKPOD.
find_tether() {
    local b
    if [ -n "${TETHER_BUILDDIR:-}" ]; then
        b=$(cd "$TETHER_BUILDDIR" && pwd)
        [ -x "$b/tether" ] && [ -x "$b/tests/mockpod/mockpod" ] ||
            die "TETHER_BUILDDIR=$b holds no built tether and tests/mockpod/mockpod"
    elif [ -x "$REPO/tether" ] && [ -x "$REPO/tests/mockpod/mockpod" ]; then
        b=$REPO
    else
        log "no built tether found: building one in $WORK/build (set TETHER_BUILDDIR to skip)"
        ensure_pkgs cc:build-essential make:make autoreconf:autoconf automake:automake \
            pkg-config:pkg-config /usr/include/ev.h:libev-dev /usr/include/openssl/ssl.h:libssl-dev \
            /usr/include/xxhash.h:libxxhash-dev /usr/include/hiredis/hiredis.h:libhiredis-dev
        mkdir -p "$WORK/src" "$WORK/build"
        # a copy of the sources (without generated or built files), so nothing is
        # generated inside the repository
        if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
            git -C "$REPO" ls-files -z -c -o --exclude-standard |
                (cd "$REPO" && tar --null -T - -cf -) | tar -C "$WORK/src" -xf -
        else
            (cd "$REPO" && tar --exclude=.git --exclude=autom4te.cache --exclude=config.status \
                --exclude=Makefile --exclude='*.o' --exclude='*.a' -cf - .) | tar -C "$WORK/src" -xf -
        fi
        (cd "$WORK/src" && autoreconf -fi >"$WORK/autoreconf.log" 2>&1) ||
            die "autoreconf failed: $(tail -5 "$WORK/autoreconf.log")"
        (cd "$WORK/build" && "$WORK/src/configure" -q >/dev/null && make -j"$(nproc)" tether \
            tests/mockpod/mockpod >"$WORK/build.log" 2>&1) ||
            die "build failed: see $WORK/build.log (BENCH_KEEP=1 keeps it)"
        b=$WORK/build
    fi
    TETHER=$b/tether
    MOCKPOD=$b/tests/mockpod/mockpod
    # what the reports call the binary: TETHER_REV if given; the commit when built here;
    # else its version and build time (the repo's HEAD may have moved on since)
    if [ -z "${TETHER_REV:-}" ]; then
        if [ "$b" = "$WORK/build" ]; then
            TETHER_REV="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
            [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ] &&
                TETHER_REV="$TETHER_REV+uncommitted"
        else
            TETHER_REV="$("$TETHER" -v 2>&1 | head -1 | sed 's/^tether //'), built $(date -u -r "$TETHER" +%Y-%m-%dT%H:%MZ)"
        fi
    fi
    log "tether: $TETHER ($TETHER_REV); repo HEAD $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
}

# Builds bench/loadgen.c into $WORK; sets LOADGEN.
build_loadgen() {
    ensure_pkgs cc:build-essential /usr/include/openssl/ssl.h:libssl-dev
    LOADGEN=$WORK/loadgen
    cc -O2 -Wall -o "$LOADGEN" "$BENCH_DIR/loadgen.c" -lssl -lcrypto || die "cannot build loadgen"
}

# free_ports N: prints N distinct free loopback TCP ports (held together while chosen).
free_ports() {
    $PY - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
wait_port() {
    local port=$1 t=${2:-10} i
    for i in $(seq $((t * 20))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

# pin CPUS: the taskset prefix for CPUS ("" or "-" = no pinning).
pin() {
    if [ -n "$1" ] && [ "$1" != "-" ]; then echo "taskset -c $1"; fi
}

# start NAME CPUS LOGFILE CMD...: starts CMD in the background (pinned to CPUS unless
# empty), records its pid in PIDS and in the variable PID_<NAME>.
start() {
    local name=$1 cpus=$2 logf=$3
    shift 3
    # shellcheck disable=SC2046
    $(pin "$cpus") "$@" >"$logf" 2>&1 &
    local p=$!
    PIDS+=("$p")
    printf -v "PID_$name" '%s' "$p"
}

# stop_pid PID: TERM, wait (5 s), KILL; drops it from PIDS.
stop_pid() {
    local p=$1 i keep=()
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for i in "${PIDS[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# The processes doing a system's work: the pid itself, or for nginx its workers.
work_pids() {
    local p=$1 kids
    kids=$(cat "/proc/$p/task/$p/children" 2>/dev/null || true)
    if [ -n "$kids" ]; then echo "$kids"; else echo "$p"; fi
}

# cpu_ticks PID...: user+system CPU ticks of the processes (all threads).
cpu_ticks() {
    local s=0 p v
    for p in "$@"; do
        v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        s=$((s + v))
    done
    echo "$s"
}

# busy_ticks: machine-wide non-idle CPU ticks (user nice system irq softirq steal).
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# child_ticks VAR: sets VAR to the CPU ticks (user+system) of this shell's waited-for
# children so far. (`times` must run in this shell, not in a $(...) subshell.)
child_ticks() {
    times >"$WORK/.times"
    printf -v "$1" '%s' "$($PY -c '
import re, sys
v = re.findall(r"(\d+)m([\d.]+)s", open(sys.argv[1]).read().splitlines()[-1])
print(int(round(sum(int(m) * 60 + float(s) for m, s in v) * int(sys.argv[2]))))' "$WORK/.times" "$CLK_TCK")"
}

# rss_kb PID...: summed VmRSS in kB.
rss_kb() {
    local s=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        s=$((s + v))
    done
    echo "$s"
}

# check_up NAME PID PORT LOGFILE: dies with the log when the system did not come up.
check_up() {
    local name=$1 p=$2 port=$3 logf=$4
    if ! kill -0 "$p" 2>/dev/null || ! wait_port "$port" 10; then
        log "$name did not start; its log:"
        sed 's/^/    /' "$logf" >&2 || true
        exit 1
    fi
}

# ---------------------------------------------------------------------------------------
# Configurations. Common knobs (set by the scripts before calling):
#   WORKERS       worker threads/processes (same for every system)
#   EQUAL_HEADERS 1: HAProxy and nginx add what tether adds to each request
#                 (X-Forwarded-For/-Proto/-Host, X-Request-Id kept or generated and
#                 echoed in the response); 0: their plain pass-through configs

# tether_conf FILE PORT TLS(0|1) CERT KEY POD_ADDR... (ADDR = 127.0.0.1:PORT)
# Extra route directives from TETHER_ROUTE_EXTRA, main-context lines from TETHER_MAIN_EXTRA.
tether_conf() {
    local f=$1 port=$2 tls=$3 cert=$4 key=$5 i=0 a
    shift 5
    {
        echo "workers ${WORKERS:-1};"
        echo "error_log stderr warn;"
        echo "access_log off;"
        echo "max_connections 1000000;"
        echo "${TETHER_MAIN_EXTRA:-}"
        echo "upstream pods {"
        for a in "$@"; do
            i=$((i + 1))
            echo "    server pod$i $a;"
        done
        echo "    keepalive ${BENCH_POOL:-64};"
        echo "}"
        echo "server {"
        if [ "$tls" = 1 ]; then
            echo "    listen 127.0.0.1:$port tls;"
            echo "    tls_certificate $cert $key;"
        else
            echo "    listen 127.0.0.1:$port;"
        fi
        echo "    keepalive_requests 1000000;"
        echo "    route / { upstream pods; websocket_timeout 3600s; ${TETHER_ROUTE_EXTRA:-} }"
        echo "}"
    } >"$f"
}

# haproxy_cfg FILE PORT TLS(0|1) PEM(cert+key) MAXCONN POD_ADDR...
haproxy_cfg() {
    local f=$1 port=$2 tls=$3 pem=$4 maxconn=$5 i=0 a bind
    shift 5
    bind="bind 127.0.0.1:$port"
    [ "$tls" = 1 ] && bind="$bind ssl crt $pem alpn ${HAPROXY_ALPN:-http/1.1}"
    {
        echo "global"
        echo "    nbthread ${WORKERS:-1}"
        echo "    maxconn $maxconn"
        echo "    ulimit-n $(ulimit -Hn)"
        echo "    ssl-default-bind-options ssl-min-ver TLSv1.2"
        echo "defaults"
        echo "    mode http"
        echo "    timeout connect 5s"
        echo "    timeout client 60s"
        echo "    timeout server 60s"
        echo "    timeout tunnel 3600s"
        echo "    timeout http-keep-alive 75s"
        echo "frontend fe"
        echo "    $bind"
        echo "    maxconn $maxconn"
        if [ "${EQUAL_HEADERS:-1}" = 1 ]; then
            echo "    option forwardfor"
            if [ "$tls" = 1 ]; then
                echo "    http-request set-header X-Forwarded-Proto https"
            else
                echo "    http-request set-header X-Forwarded-Proto http"
            fi
            echo "    http-request set-header X-Forwarded-Host %[req.hdr(host)]"
            echo "    http-request set-header X-Request-Id %[uuid] unless { req.hdr(x-request-id) -m found }"
            echo "    http-request set-var(txn.rid) req.hdr(x-request-id)"
            echo "    http-response set-header X-Request-Id %[var(txn.rid)]"
        fi
        echo "    default_backend pods"
        echo "backend pods"
        echo "    http-reuse always"
        for a in "$@"; do
            i=$((i + 1))
            echo "    server pod$i $a pool-max-conn ${BENCH_POOL:-64} pool-purge-delay 10s"
        done
    } >"$f"
}

# nginx_conf FILE PORT TLS(0|1) CERT KEY WORKER_CONNECTIONS POD_ADDR...
# WebSocket upgrades pass with the usual map; plain requests get Connection "" so the
# upstream keep-alive pool is used.
nginx_conf() {
    local f=$1 port=$2 tls=$3 cert=$4 key=$5 wc=$6 d
    shift 6
    d=$(dirname "$f")/nginx-tmp
    mkdir -p "$d"
    {
        echo "worker_processes ${WORKERS:-1};"
        echo "daemon off;"
        echo "pid $d/nginx.pid;"
        echo "error_log $d/error.log warn;"
        echo "worker_rlimit_nofile $(ulimit -Hn);"
        echo "events { worker_connections $wc; }"
        echo "http {"
        echo "    access_log off;"
        echo "    client_body_temp_path $d/body; proxy_temp_path $d/proxy;"
        echo "    fastcgi_temp_path $d/fcgi; uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;"
        echo "    keepalive_requests 1000000;"
        echo "    keepalive_timeout 75s;"
        echo "    map \$http_upgrade \$conn_hdr { default upgrade; '' ''; }"
        echo "    map \$http_x_request_id \$rid { default \$http_x_request_id; '' \$request_id; }"
        echo "    upstream pods {"
        for a in "$@"; do echo "        server $a;"; done
        echo "        keepalive ${BENCH_POOL:-64};"
        echo "        keepalive_requests 1000000;"
        echo "    }"
        echo "    server {"
        if [ "$tls" = 1 ]; then
            echo "        listen 127.0.0.1:$port ssl${NGINX_LISTEN_EXTRA:-};"
            echo "        ssl_certificate $cert;"
            echo "        ssl_certificate_key $key;"
            echo "        ssl_protocols TLSv1.2 TLSv1.3;"
        else
            echo "        listen 127.0.0.1:$port;"
        fi
        echo "        location / {"
        echo "            proxy_pass http://pods;"
        echo "            proxy_http_version 1.1;"
        echo "            proxy_set_header Upgrade \$http_upgrade;"
        echo "            proxy_set_header Connection \$conn_hdr;"
        echo "            proxy_read_timeout 3600s;"
        if [ "${EQUAL_HEADERS:-1}" = 1 ]; then
            echo "            proxy_set_header Host \$http_host;"
            echo "            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
            echo "            proxy_set_header X-Forwarded-Proto \$scheme;"
            echo "            proxy_set_header X-Forwarded-Host \$http_host;"
            echo "            proxy_set_header X-Request-Id \$rid;"
            echo "            add_header X-Request-Id \$rid always;"
        fi
        echo "        }"
        echo "    }"
        echo "}"
    } >"$f"
}

# start_system NAME CPUS PORT CONF: starts tether|haproxy|nginx on its config; waits for
# the port; sets PID_<NAME>. (The name must start with the program's name.)
start_system() {
    local name=$1 cpus=$2 port=$3 conf=$4 p
    case $name in
    tether_base) start "$name" "$cpus" "$WORK/$name.log" "${TETHER_BASE:?TETHER_BASE: the binary to compare}" -c "$conf" ;;
    tether*) start "$name" "$cpus" "$WORK/$name.log" "$TETHER" -c "$conf" ;;
    haproxy*) start "$name" "$cpus" "$WORK/$name.log" haproxy -db -f "$conf" ;;
    nginx*) start "$name" "$cpus" "$WORK/$name.log" nginx -e "$(dirname "$conf")/nginx-tmp/error.log" \
        -p "$(dirname "$conf")/nginx-tmp" -c "$conf" ;;
    *) die "unknown system $name" ;;
    esac
    p=PID_$name
    check_up "$name" "${!p}" "$port" "$WORK/$name.log"
}

# raise_nofile: soft open-files limit to the hard one; prints it.
raise_nofile() {
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    ulimit -n
}

# ---------------------------------------------------------------------------------------
# Measured runs. The scripts fill SUTPIDS[system] (the processes whose CPU is charged to
# the system) and set TSV; PID_pod is the mock pod.

tsv_init() {
    TSV=$WORK/results.tsv
    mkdir -p "$WORK/raw"
    printf 'test\tround\tsystem\trate\tp50_us\tp99_us\tops\terrors\tnon2xx\tcpu_ticks\tsecs\tother_cpu_pct\tload_cpu_pct\n' >"$TSV"
}

# wait_quiet: with BENCH_QUIET=PCT, waits (at most BENCH_QUIET_WAIT seconds, default 60)
# until the machine's CPU use over one second is below PCT% of all CPUs (nothing of ours
# runs between rounds, so that is other load). For shared machines.
wait_quiet() {
    [ -n "${BENCH_QUIET:-}" ] || return 0
    local end=$((SECONDS + ${BENCH_QUIET_WAIT:-60})) b0 b1 t0 t1 pct
    while :; do
        b0=$(busy_ticks) t0=$(date +%s%N)
        sleep 1
        b1=$(busy_ticks) t1=$(date +%s%N)
        pct=$(((b1 - b0) * 100 * 1000000000 / ((t1 - t0) * CLK_TCK * NCPU)))
        [ "$pct" -lt "$BENCH_QUIET" ] && return 0
        if [ $SECONDS -ge $end ]; then
            log "machine still ${pct}% busy after ${BENCH_QUIET_WAIT:-60}s: measuring anyway"
            return 0
        fi
    done
}

# measure TEST ROUND SYSTEM PARSER(wrk|loadgen) SECS -- CMD...: runs CMD (bounded by
# `timeout`, pinned to CPU_LOAD), parses its output, appends a TSV row: the rate, p50,
# p99, the system's CPU ticks, the CPU share used by anything else on the machine
# ("other load") and by the load generator.
measure() {
    local test=$1 round=$2 s=$3 parser=$4 secs=$5 out c0 p0 w0 b0 t0 c1 p1 w1 b1 t1 vals ours
    shift 6
    out=$WORK/raw/$test.$round.$s
    wait_quiet
    child_ticks w0
    c0=$(cpu_ticks ${SUTPIDS[$s]}) p0=$(cpu_ticks ${POD_PIDS:-$PID_pod}) b0=$(busy_ticks)
    t0=$(date +%s%N)
    # shellcheck disable=SC2046
    timeout $((secs + 60)) $(pin "${CPU_LOAD:-}") "$@" >"$out" 2>&1 || true
    t1=$(date +%s%N)
    # shellcheck disable=SC2086
    b1=$(busy_ticks) c1=$(cpu_ticks ${SUTPIDS[$s]}) p1=$(cpu_ticks ${POD_PIDS:-$PID_pod})
    child_ticks w1
    vals=$($PY "$BENCH_DIR/report.py" "$parser" "$out") || die "$test against $s failed: $(head -c 2000 "$out")"
    ours=$(((c1 - c0) + (w1 - w0)))
    case " ${SUTPIDS[$s]} " in *" $PID_pod "*) ;; *) ours=$((ours + p1 - p0)) ;; esac
    read -r MEASURE_OTHER MEASURE_LOAD <<<"$($PY -c "
span = ($t1 - $t0) / 1e9 * $CLK_TCK
print('%.1f %.1f' % (max(0.0, 100.0 * ($b1 - $b0 - $ours) / (span * $NCPU)), 100.0 * ($w1 - $w0) / span))")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$test" "$round" "$s" "$vals" "$((c1 - c0))" "$secs" \
        "$MEASURE_OTHER" "$MEASURE_LOAD" >>"$TSV"
    MEASURE_RATE=$(cut -f1 <<<"$vals")
    log "$test round $round $s: $MEASURE_RATE/s (load generator ${MEASURE_LOAD}% of a CPU; other load ${MEASURE_OTHER}% of the machine)"
}

# rounds TEST ROUNDS CMDFN SYSTEM...: ROUNDS alternating rounds over the systems, the
# order rotated every round; CMDFN SYSTEM ROUND prints nothing and calls measure.
rounds() {
    local test=$1 n_rounds=$2 fn=$3 r k n
    shift 3
    local sys=("$@")
    n=${#sys[@]}
    for r in $(seq "$n_rounds"); do
        for k in $(seq 0 $((n - 1))); do
            "$fn" "${sys[$(((k + r - 1) % n))]}" "$r"
        done
    done
}

# summary ARGS...: the markdown tables of $TSV (see report.py summary).
summary() {
    CLK_TCK=$CLK_TCK $PY "$BENCH_DIR/report.py" summary "$TSV" "$@"
}

# ---------------------------------------------------------------------------------------
# A/B of two tether configurations (bench/affinity_cost.sh, bench/ratelimit_cost.sh).

# ab_parse_args ARGS...: the options the A/B scripts share; sets ROUNDS SECS CONNS THREADS
# MODES PINSPEC OUT_MD OUT_JSON WORKERS.
ab_parse_args() {
    ROUNDS=5 SECS=10 CONNS=50 THREADS=1 MODES=keepalive PINSPEC=default OUT_MD= OUT_JSON= WORKERS=1
    while [ $# -gt 0 ]; do
        case $1 in
        -w) WORKERS=$2; shift 2 ;;
        -r) ROUNDS=$2; shift 2 ;;
        -d) SECS=$2; shift 2 ;;
        -c) CONNS=$2; shift 2 ;;
        -t) THREADS=$2; shift 2 ;;
        -m) MODES=$2; shift 2 ;;
        -P) PINSPEC=$2; shift 2 ;;
        -o) OUT_MD=$2; shift 2 ;;
        -j) OUT_JSON=$2; shift 2 ;;
        -h | --help) sed -n "${HELP_LINES:-3,20}p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see -h)" ;;
        esac
    done
    check_counts WORKERS ROUNDS SECS CONNS THREADS
    [ "$ROUNDS" -le 100 ] || die "-r is at most 100"
}

# check_counts VAR...: each variable holds a positive integer; SECS (when
# named) is at most 600.
check_counts() {
    local v
    for v in "$@"; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v needs a positive integer"
        [ "$v" != SECS ] || [ "$SECS" -le 600 ] || die "-d is at most 600 seconds"
    done
}

# ab_setup: packages, tether, pinning, two mock pods pod1 and pod2 (two upstream servers:
# POD_A POD_B), both pinned like the pod of bench/run.sh.
ab_setup() {
    bench_init
    ensure_pkgs wrk:wrk curl:curl /usr/bin/python3:python3
    find_tether
    NOFILE=$(raise_nofile)
    if [ "$PINSPEC" = default ]; then
        if [ "$WORKERS" = 1 ] && [ "$NCPU" -ge 2 ]; then PINSPEC=0:0:1; else PINSPEC=none; fi
    fi
    if [ "$PINSPEC" = none ]; then CPU_SUT= CPU_POD= CPU_LOAD=; else IFS=: read -r CPU_SUT CPU_POD CPU_LOAD <<<"$PINSPEC"; fi
    local pa pb
    read -r pa pb <<<"$(free_ports 2)"
    POD_A=127.0.0.1:$pa POD_B=127.0.0.1:$pb
    start pod "$CPU_POD" "$WORK/pod.log" "$MOCKPOD" --listen "$POD_A" --name pod1 --threads 1 --quiet
    check_up pod "$PID_pod" "$pa" "$WORK/pod.log"
    start pod2 "$CPU_POD" "$WORK/pod2.log" "$MOCKPOD" --listen "$POD_B" --name pod2 --threads 1 --quiet
    check_up pod2 "$PID_pod2" "$pb" "$WORK/pod2.log"
    POD_PIDS="$PID_pod $PID_pod2"
    declare -gA PORT SUTPIDS
}

# ab_start NAME CONF PORT: starts a tether variant (pinned like the system under test).
ab_start() {
    local name=$1 conf=$2 port=$3 p
    start_system "$name" "$CPU_SUT" "$port" "$conf"
    p=PID_$name
    PORT[$name]=$port
    SUTPIDS[$name]=${!p}
}

# ab_run TITLE B A: alternating wrk rounds over the variants A and B (all of AB_SYSTEMS),
# each request carrying the headers in WRK_HEADERS; prints the tables and the ratio B/A.
ab_run() {
    local title=$1 b=$2 a=$3 s mode
    log "variants: ${AB_SYSTEMS[*]}; pinning $PINSPEC (tether:pod:wrk); wrk -t$THREADS -c$CONNS -d${SECS}s; $ROUNDS rounds; modes $MODES"
    ab_wrk_cmd() {
        WRK=(wrk -t"$THREADS" -c"$CONNS" -d"${3}s" --latency)
        local h
        for h in "${WRK_HEADERS[@]+"${WRK_HEADERS[@]}"}"; do WRK+=(-H "$h"); done
        [ "$2" = close ] && WRK+=(-H "Connection: close")
        WRK+=("http://127.0.0.1:${PORT[$1]}/")
    }
    ab_round() {
        ab_wrk_cmd "$1" "$AB_MODE" "$SECS"
        measure "$AB_MODE" "$2" "$1" wrk "$SECS" -- "${WRK[@]}"
    }
    tsv_init
    IFS=, read -r -a mode_list <<<"$MODES"
    for AB_MODE in "${mode_list[@]}"; do
        case $AB_MODE in keepalive | close) ;; *) die "unknown mode $AB_MODE" ;; esac
        for s in "${AB_SYSTEMS[@]}"; do
            ab_wrk_cmd "$s" "$AB_MODE" 2
            # shellcheck disable=SC2046
            timeout 32 $(pin "$CPU_LOAD") "${WRK[@]}" >/dev/null 2>&1 || true
        done
        rounds "$AB_MODE" "$ROUNDS" ab_round "${AB_SYSTEMS[@]}"
    done
    for s in "${AB_SYSTEMS[@]}"; do
        kill -0 "${SUTPIDS[$s]}" 2>/dev/null || die "$s died during the benchmark: $(tail -5 "$WORK/$s.log")"
    done
    {
        echo "## $title: $(date -u +%Y-%m-%dT%H:%MZ), tether $TETHER_REV"
        echo
        echo "tether only, workers $WORKERS; wrk -t$THREADS -c$CONNS -d${SECS}s --latency, $ROUNDS alternating rounds;" \
            "pinning (tether:pod:wrk) $PINSPEC; $NCPU CPUs. Every request carries: ${WRK_HEADERS[*]:-nothing extra}." \
            "CPU µs/op: tether's CPU per request."
        echo
        local json=()
        [ -n "$OUT_JSON" ] && json=(--json "$OUT_JSON")
        summary --ratio "$b:$a" "${json[@]+"${json[@]}"}"
    } >"$WORK/report.md"
    cat "$WORK/report.md"
    [ -n "$OUT_MD" ] && cp "$WORK/report.md" "$OUT_MD"
    return 0
}
