#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# TLS termination: tether vs HAProxy vs nginx, same certificate, same worker count, same
# run, alternating rounds; the pod behind them is plain HTTP (keep-alive pools as in
# bench/run.sh). Tests:
#   handshake  a new TLS connection per request, full handshakes (bench/loadgen -m tls:
#              connect, handshake, GET with Connection: close, read until the server
#              closes; no session reuse) -> handshakes/s
#   resume     the same with session resumption offered (tickets/session cache, as each
#              server does by default) -> resumed handshakes/s (and how many resumed)
#   https      wrk over TLS with keep-alive -> req/s
#   wss        WebSocket echo over TLS (bench/loadgen -m ws --tls, -s BYTES messages, one
#              in flight per connection) -> messages/s
#   h2         HTTP/2 over TLS (h2load -c CONNS -m 10, ALPN h2 offered by all three; the
#              client offers one TLS 1.3 suite, TLS_AES_128_GCM_SHA256, so all negotiate
#              the same) -> req/s; not in the default list (-t ...,h2)
#
# usage: bench/tls.sh [-w WORKERS] [-r ROUNDS] [-d SECS] [-c CONNS] [-k ecdsa|rsa]
#                     [-t handshake,resume,https,wss] [-s MSG_BYTES]
#                     [-P SUT:POD:LOAD | -P none] [-o OUT.md] [-j OUT.json]
#   defaults: 1 worker, 5 rounds, 10 s, 50 connections, ECDSA P-256 (tests/tls/gen-certs.sh
#   server.pem; rsa: its RSA-2048 a.test.pem), all tests, 64-byte messages, pinning 0:0:1
#   with 1 worker on >= 2 CPUs (proxy and pod on CPU 0, the client alone on CPU 1).
#   -S systems to run (default tether,haproxy,nginx); tether_base is a second tether
#      binary, TETHER_BASE=/path/to/tether (before/after a change in the same run).
# Environment: TETHER_BUILDDIR (see bench/lib.sh), TETHER_BASE, BENCH_KEEP=1,
#   BENCH_POOL=N idle pod connections each system keeps (default 64: tether keepalive,
#   HAProxy pool-max-conn, nginx keepalive).
. "$(dirname "$0")/lib.sh"

WORKERS=1 ROUNDS=5 SECS=10 CONNS=50 KEYTYPE=ecdsa TESTS=handshake,resume,https,wss MSG=64
PINSPEC=default OUT_MD= OUT_JSON= SYSTEMS=tether,haproxy,nginx WARMUP=2
while [ $# -gt 0 ]; do
    case $1 in
    -w) WORKERS=$2; shift 2 ;;
    -r) ROUNDS=$2; shift 2 ;;
    -d) SECS=$2; shift 2 ;;
    -c) CONNS=$2; shift 2 ;;
    -k) KEYTYPE=$2; shift 2 ;;
    -t) TESTS=$2; shift 2 ;;
    -s) MSG=$2; shift 2 ;;
    -S) SYSTEMS=$2; shift 2 ;;
    -P) PINSPEC=$2; shift 2 ;;
    -o) OUT_MD=$2; shift 2 ;;
    -j) OUT_JSON=$2; shift 2 ;;
    -h | --help) sed -n '3,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see -h)" ;;
    esac
done
check_counts WORKERS ROUNDS SECS CONNS MSG
[ "$MSG" -le 65535 ] || die "-s is at most 65535"
case $KEYTYPE in ecdsa | rsa) ;; *) die "-k ecdsa|rsa" ;; esac

bench_init
ensure_pkgs haproxy:haproxy nginx:nginx-light wrk:wrk curl:curl openssl:openssl \
    /usr/bin/python3:python3
if [[ ,$TESTS, == *,h2,* ]]; then
    ensure_pkgs h2load:nghttp2-client
    export HAPROXY_ALPN=h2,http/1.1 NGINX_LISTEN_EXTRA=" http2" # nginx 1.22: "listen ... ssl http2"
fi
find_tether
build_loadgen
NOFILE=$(raise_nofile)
if [ "$PINSPEC" = default ]; then
    if [ "$WORKERS" = 1 ] && [ "$NCPU" -ge 2 ]; then PINSPEC=0:0:1; else PINSPEC=none; fi
fi
if [ "$PINSPEC" = none ]; then CPU_SUT= CPU_POD= CPU_LOAD=; else IFS=: read -r CPU_SUT CPU_POD CPU_LOAD <<<"$PINSPEC"; fi

bash "$REPO/tests/tls/gen-certs.sh" "$WORK/certs" 2 >/dev/null
if [ "$KEYTYPE" = ecdsa ]; then
    CERT=$WORK/certs/server.pem KEY=$WORK/certs/server.key SNI=localhost
else
    CERT=$WORK/certs/a.test.pem KEY=$WORK/certs/a.test.key SNI=a.test
fi
cat "$CERT" "$KEY" >"$WORK/certs/haproxy.pem"
KEYDESC=$(openssl x509 -in "$CERT" -noout -text | grep -m1 -E 'Public Key Algorithm|NIST CURVE|Public-Key' | sed 's/^ *//')

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
        tether_conf "$WORK/tether.conf" "$P_TETHER" 1 "$CERT" "$KEY" "$POD"
        start_system tether "$CPU_SUT" "$P_TETHER" "$WORK/tether.conf"
        SUTPIDS[$s]=$PID_tether
        ;;
    tether_base) # another tether binary (TETHER_BASE), e.g. main before a change: -S tether,tether_base
        PORT[$s]=$(free_ports 1)
        tether_conf "$WORK/tether_base.conf" "${PORT[$s]}" 1 "$CERT" "$KEY" "$POD"
        start_system tether_base "$CPU_SUT" "${PORT[$s]}" "$WORK/tether_base.conf"
        SUTPIDS[$s]=$PID_tether_base
        ;;
    haproxy)
        PORT[$s]=$P_HAPROXY
        haproxy_cfg "$WORK/haproxy.cfg" "$P_HAPROXY" 1 "$WORK/certs/haproxy.pem" 4096 "$POD"
        start_system haproxy "$CPU_SUT" "$P_HAPROXY" "$WORK/haproxy.cfg"
        SUTPIDS[$s]=$PID_haproxy
        ;;
    nginx)
        PORT[$s]=$P_NGINX
        nginx_conf "$WORK/nginx.conf" "$P_NGINX" 1 "$CERT" "$KEY" 8192 "$POD"
        start_system nginx "$CPU_SUT" "$P_NGINX" "$WORK/nginx.conf"
        SUTPIDS[$s]=$(work_pids "$PID_nginx" | tr '\n' ' ')
        ;;
    *) die "unknown system $s" ;;
    esac
done

# sanity: HTTPS answers 200 from the pod; a WebSocket echo works; note the TLS parameters
for s in "${SYS[@]}"; do
    code=$(curl -sk -o "$WORK/sanity.$s" -w '%{http_code}' --max-time 5 \
        --resolve "$SNI:${PORT[$s]}:127.0.0.1" "https://$SNI:${PORT[$s]}/")
    [ "$code" = 200 ] && grep -q '"pod":"pod1"' "$WORK/sanity.$s" ||
        die "$s answered $code over TLS: $(head -c 300 "$WORK/sanity.$s")"
    "$LOADGEN" -m tls -a "127.0.0.1:${PORT[$s]}" --sni "$SNI" -c 1 -n 3 -d 5 >"$WORK/sanity.tls.$s" 2>&1 || true
    grep -q ' errors=0 ' "$WORK/sanity.tls.$s" || die "$s: TLS handshake test failed: $(cat "$WORK/sanity.tls.$s")"
    log "$s: $(grep -o 'proto=.*' "$WORK/sanity.tls.$s")"
    if [[ ,$TESTS, == *,h2,* ]]; then
        v=$(curl -sk --http2 -o /dev/null -w '%{http_version}' --max-time 5 \
            --resolve "$SNI:${PORT[$s]}:127.0.0.1" "https://$SNI:${PORT[$s]}/")
        [ "$v" = 2 ] || die "$s does not negotiate HTTP/2 (got HTTP/$v)"
    fi
done
log "systems: ${SYS[*]}; workers $WORKERS; certificate: $KEYTYPE ($KEYDESC); pinning $PINSPEC (system:pod:client); $CONNS connections; ${SECS}s x $ROUNDS rounds; open files $NOFILE"

# cmd_for TEST SYSTEM SECS: sets CMD and PARSER
cmd_for() {
    local t=$1 s=$2 secs=$3 a=127.0.0.1:${PORT[$2]}
    case $t in
    handshake) PARSER=loadgen CMD=("$LOADGEN" -m tls -a "$a" --sni "$SNI" -c "$CONNS" -d "$secs") ;;
    resume) PARSER=loadgen CMD=("$LOADGEN" -m tls --resume -a "$a" --sni "$SNI" -c "$CONNS" -d "$secs") ;;
    https) PARSER=wrk CMD=(wrk -t1 -c"$CONNS" -d"${secs}s" --latency "https://$a/") ;;
    wss) PARSER=loadgen CMD=("$LOADGEN" -m ws --tls -a "$a" --sni "$SNI" -p /ws -c "$CONNS" -s "$MSG" -d "$secs") ;;
    h2) PARSER=h2load CMD=(h2load -t1 -c"$CONNS" -m10 -D"$secs" --tls13-ciphers=TLS_AES_128_GCM_SHA256
        "https://127.0.0.1:${PORT[$2]}/") ;;
    *) die "unknown test $t" ;;
    esac
}

one_round() {
    local s=$1 r=$2
    cmd_for "$TEST" "$s" "$SECS"
    measure "$TEST" "$r" "$s" "$PARSER" "$SECS" -- "${CMD[@]}"
    if [ "$PARSER" = loadgen ]; then
        grep -q ' errors=0 ' "$WORK/raw/$TEST.$r.$s" ||
            log "  $s: $(grep -o 'errors=[0-9]* bad_status=[0-9]*' "$WORK/raw/$TEST.$r.$s")"
    fi
}

tsv_init
IFS=, read -r -a TEST_LIST <<<"$TESTS"
for TEST in "${TEST_LIST[@]}"; do
    for s in "${SYS[@]}"; do
        cmd_for "$TEST" "$s" "$WARMUP"
        # shellcheck disable=SC2046
        timeout $((WARMUP + 30)) $(pin "$CPU_LOAD") "${CMD[@]}" >/dev/null 2>&1 || true
    done
    rounds "$TEST" "$ROUNDS" one_round "${SYS[@]}"
done

for s in "${SYS[@]}"; do
    p=PID_$s
    kill -0 "${!p}" 2>/dev/null || die "$s died during the benchmark: $(tail -5 "$WORK/$s.log")"
done

{
    echo "## TLS: $(date -u +%Y-%m-%dT%H:%MZ), tether $TETHER_REV"
    echo
    echo "workers $WORKERS; certificate $KEYTYPE ($KEYDESC), the same file for all; $CONNS client connections;" \
        "${SECS}s x $ROUNDS alternating rounds; pinning (system:pod:client) $PINSPEC; $NCPU CPUs;" \
        "idle pod connections kept ${BENCH_POOL:-64}." \
        "Negotiated: $(for s in "${SYS[@]}"; do printf '%s %s; ' "$s" "$(grep -o 'proto=[^ ]* cipher=[^ ]* group=[^ ]*' "$WORK/sanity.tls.$s")"; done)"
    echo "Rates: handshake/resume = new TLS connections (one request each) per second; https = requests/s;" \
        "wss = ${MSG}-byte echo round trips per second. CPU µs/op: CPU of the proxy per operation."
    if [[ ,$TESTS, == *,resume,* ]]; then
        echo "Resumed share (resume test, last round): $(for s in "${SYS[@]}"; do
            f=$WORK/raw/resume.$ROUNDS.$s
            [ -f "$f" ] && printf '%s %s; ' "$s" "$(grep -o 'full=[0-9]* reused=[0-9]*' "$f")"
        done)"
    fi
    echo
    JSONARG=()
    [ -n "$OUT_JSON" ] && JSONARG=(--json "$OUT_JSON")
    RATIOS=(--ratio tether:haproxy --ratio tether:nginx)
    [[ ,$SYSTEMS, == *,tether_base,* ]] && RATIOS+=(--ratio tether:tether_base)
    summary --unit "ops/s" "${RATIOS[@]}" "${JSONARG[@]+"${JSONARG[@]}"}"
} >"$WORK/report.md"
cat "$WORK/report.md"
[ -n "$OUT_MD" ] && cp "$WORK/report.md" "$OUT_MD"
exit 0
