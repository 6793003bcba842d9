#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What a large discovered membership costs tether (issue 14, item 9):
#  1. pick cost: keep-alive req/s through an upstream of 1,000 servers found with
#     `discover` against the same through 2 discovered servers (two tether processes,
#     alternating wrk rounds, ratio many/two; the goal is >= 0.95). With HAProxy
#     installed, HAProxy with the same two server lists (static `server` lines: it is
#     the reference for what spreading requests over 1,000 upstream connections costs
#     any proxy, in the kernel most of all) runs in the same alternation (-x: not);
#  2. swap cost: p99 of the 1,000-server tether while its membership changes every
#     second (one address leaves and comes back through DNS) against the same tether
#     steady, with the same DNS server reloads (alternating rounds; the goal is a p99
#     ratio <= 1.5).
# The servers are addresses 127.0.1.1 ... on one port, all served by one mock pod
# process (the 2-server variant uses the first two addresses), named in a local
# dnsmasq's hosts file (TTL 1 s, resolver valid=1s). One pod process, so that both
# variants wake the same process in the same pattern and only the proxy's side differs
# (pods split over processes made the ratio swing from 0.47 to 1.33 with the split).
#
# usage: bench/discovery_cost.sh [-r ROUNDS] [-d SECS] [-c CONNS] [-t WRK_THREADS]
#                                [-w WORKERS] [-n SERVERS] [-x] [-o OUT.md] [-j OUT.json]
#   defaults: 5 rounds x 10 s, 50 connections, 1 worker, 1000 servers
# Environment: TETHER_BUILDDIR (see bench/lib.sh), BENCH_KEEP=1.
HELP_LINES=3,23
. "$(dirname "$0")/lib.sh"
NSERVERS=1000
WITH_HAPROXY=1
args=()
while [ $# -gt 0 ]; do
    case $1 in
    -n) NSERVERS=$2; shift 2 ;;
    -x) WITH_HAPROXY=0; shift ;;
    *) args+=("$1"); shift ;;
    esac
done
ab_parse_args "${args[@]+"${args[@]}"}"
check_counts NSERVERS
[ "$NSERVERS" -ge 2 ] && [ "$NSERVERS" -le 4000 ] || die "-n is 2..4000"
bench_init
ensure_pkgs wrk:wrk curl:curl /usr/bin/python3:python3 dnsmasq:dnsmasq
find_tether
NOFILE=$(raise_nofile)
PINSPEC=none CPU_SUT= CPU_POD= CPU_LOAD=
declare -gA PORT SUTPIDS

# the pods: NSERVERS loopback addresses, all served by one mock pod process
read -r PP PDNS P_TWO P_MANY P_HTWO P_HMANY <<<"$(free_ports 6)"
ADDRS=()
for i in $(seq 0 $((NSERVERS - 1))); do ADDRS+=("127.0.$((1 + i / 250)).$((1 + i % 250))"); done
listen=()
for a in "${ADDRS[@]}"; do listen+=(--listen "$a:$PP"); done
start pod "" "$WORK/pod.log" "$MOCKPOD" "${listen[@]}" --name pod --threads 1 --quiet
for a in "${ADDRS[0]}" "${ADDRS[NSERVERS - 1]}"; do
    for i in $(seq 100); do (exec 3<>"/dev/tcp/$a/$PP") 2>/dev/null && break; sleep 0.05; done
done

# DNS: "many.bench" answers every address, "two.bench" the first two
hosts() { # hosts SKIP: the hosts file, without address number SKIP (-1: none)
    local i
    {
        for i in "${!ADDRS[@]}"; do [ "$i" = "$1" ] || echo "${ADDRS[$i]} many.bench"; done
        echo "${ADDRS[0]} two.bench"
        echo "${ADDRS[1]} two.bench"
    } >"$WORK/hosts.new"
    mv "$WORK/hosts.new" "$WORK/hosts"
}
hosts -1
user=()
[ "$(id -u)" = 0 ] && user=(--user=root)
start dns "" "$WORK/dns.log" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv \
    --no-hosts --addn-hosts="$WORK/hosts" --port="$PDNS" --listen-address=127.0.0.1 \
    --bind-interfaces --pid-file= --local=/bench/ --local-ttl=1 --log-facility="$WORK/dnsmasq.log" \
    "${user[@]+"${user[@]}"}"
wait_port "$PDNS" || die "dnsmasq did not start: $(cat "$WORK/dns.log")"

conf() { # conf FILE PORT NAME
    cat >"$1" <<EOF
workers $WORKERS;
error_log stderr notice;
access_log off;
max_connections 1000000;
upstream pods {
    resolver 127.0.0.1:$PDNS valid=1s timeout=500ms;
    discover $3 port=$PP;
    max_servers 4096;
    keepalive 64;
}
server {
    listen 127.0.0.1:$2;
    keepalive_requests 1000000;
    route / { upstream pods; }
}
EOF
}
conf "$WORK/two.conf" "$P_TWO" two.bench
conf "$WORK/many.conf" "$P_MANY" many.bench
ab_start tether_two "$WORK/two.conf" "$P_TWO"
ab_start tether_many "$WORK/many.conf" "$P_MANY"
for i in $(seq 200); do
    n=$(grep -c 'joins (DNS many.bench)' "$WORK/tether_many.log" || true)
    [ "$n" -ge "$NSERVERS" ] && break
    sleep 0.1
done
log "tether_many found $n of $NSERVERS servers; tether_two $(grep -c 'joins' "$WORK/tether_two.log" || true)"
[ "$n" -ge "$NSERVERS" ] || die "tether_many did not find its servers: $(tail -5 "$WORK/tether_many.log")"

AB_SYSTEMS=(tether_two tether_many)
if [ "$WITH_HAPROXY" = 1 ] && command -v haproxy >/dev/null; then
    servers=()
    for a in "${ADDRS[@]}"; do servers+=("$a:$PP"); done
    haproxy_cfg "$WORK/haproxy_two.cfg" "$P_HTWO" 0 "" 4000 "${servers[@]:0:2}"
    haproxy_cfg "$WORK/haproxy_many.cfg" "$P_HMANY" 0 "" 4000 "${servers[@]}"
    ab_start haproxy_two "$WORK/haproxy_two.cfg" "$P_HTWO"
    ab_start haproxy_many "$WORK/haproxy_many.cfg" "$P_HMANY"
    AB_SYSTEMS+=(haproxy_two haproxy_many)
fi

# 1. pick cost
ab_run "Discovered membership: 1 of $NSERVERS servers vs 1 of 2 (keep-alive)" tether_many tether_two
if [ -n "${SUTPIDS[haproxy_many]:-}" ]; then
    {
        echo "## The same spread through HAProxy (static server lines): $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        summary --ratio "tether_many:tether_two" --ratio "haproxy_many:haproxy_two" \
            --ratio "tether_two:haproxy_two" --ratio "tether_many:haproxy_many"
    } >"$WORK/report-haproxy.md"
    cat "$WORK/report-haproxy.md"
    cat "$WORK/report-haproxy.md" >>"$WORK/report.md"
fi
cp "$WORK/report.md" "$WORK/report-pick.md"

# 2. membership swapped every second: the same tether, steady vs swapping
PORT[tether_swapping]=$P_MANY
SUTPIDS[tether_swapping]=${SUTPIDS[tether_many]}
PORT[tether_steady]=$P_MANY
SUTPIDS[tether_steady]=${SUTPIDS[tether_many]}
# Every second the hosts file is written and dnsmasq reloads it (SIGHUP): with the
# last address left out every other time (swapping), or unchanged (steady). Both
# rounds thus have the same DNS server work on the machine's CPUs (a reload of
# 1,000 names is no small part of a 2-CPU machine: with the steady rounds
# quiet instead, that alone made their p99 ratio 1.3 to 2 with no membership
# change at all); only tether's side differs.
swapper() { # swapper CHANGE(0|1); stops when $WORK/swap.stop exists
    local k=0
    while [ ! -e "$WORK/swap.stop" ]; do
        if [ "$1" = 1 ]; then hosts $((k % 2 ? -1 : NSERVERS - 1)); else hosts -1; fi
        kill -HUP "$PID_dns"
        k=$((k + 1))
        sleep 1
    done
}
swap_round() {
    local s=$1 r=$2 sp change=0
    WRK=(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$P_MANY/")
    [ "$s" = tether_swapping ] && change=1
    rm -f "$WORK/swap.stop"
    swapper "$change" &
    sp=$!
    PIDS+=("$sp")
    measure swap "$r" "$s" wrk "$SECS" -- "${WRK[@]}"
    : >"$WORK/swap.stop" # (a kill could leave its mv running, racing ours)
    wait "$sp" 2>/dev/null || true
    hosts -1
    kill -HUP "$PID_dns"
    sleep 2
}
tsv_init
rounds swap "$ROUNDS" swap_round tether_steady tether_swapping
swaps=$(grep -c 'is leaving\|is back' "$WORK/tether_many.log" || true)
{
    echo "## Membership of $NSERVERS swapped every second: $(date -u +%Y-%m-%dT%H:%MZ), tether $TETHER_REV"
    echo
    echo "tether workers $WORKERS; wrk -t$THREADS -c$CONNS -d${SECS}s --latency, $ROUNDS alternating rounds;" \
        "swapping: one address leaves and comes back through DNS every second ($swaps changes seen);" \
        "steady: the same hosts file written and reloaded by dnsmasq every second, unchanged."
    echo
    summary --ratio "tether_swapping:tether_steady"
} >"$WORK/report-swap.md"
cat "$WORK/report-pick.md" "$WORK/report-swap.md" >"$WORK/report.md"
cat "$WORK/report-swap.md"
[ -n "$OUT_MD" ] && cp "$WORK/report.md" "$OUT_MD"
exit 0
