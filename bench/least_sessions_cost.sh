#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What `balance least_sessions` costs per pick against `balance round_robin` on the
# same 1 000 servers (issue 15 item 10: keep-alive req/s at least 0.95 x round_robin).
# The 1 000 servers are names for the two mock pods' addresses (500 each), so each
# pick really chooses among 1 000 servers with their own runtime state, session
# figures (max_sessions 1000000, so capacity is checked on every pick) and keep-alive
# pools. Requests go to a route that places a session (`affinity cookie`, no cookie
# sent), so every request is a new-session pick. Two tether processes side by side,
# alternating wrk rounds, ratio least_sessions/round_robin.
#
# usage: bench/least_sessions_cost.sh [-r ROUNDS] [-d SECS] [-c CONNS] [-t WRK_THREADS]
#                                     [-w WORKERS] [-m keepalive,close] [-P TETHER:POD:WRK | -P none]
#                                     [-o OUT.md] [-j OUT.json] [-n SERVERS]
#   defaults: 5 rounds x 10 s, 50 connections, keep-alive, pinning 0:0:1, 1000 servers
# Environment: TETHER_BUILDDIR (see bench/lib.sh), BENCH_KEEP=1.
HELP_LINES=3,17
. "$(dirname "$0")/lib.sh"
NSERVERS=1000
args=()
while [ $# -gt 0 ]; do
    if [ "$1" = -n ]; then NSERVERS=$2; shift 2; else args+=("$1"); shift; fi
done
ab_parse_args "${args[@]+"${args[@]}"}"
check_counts NSERVERS
ab_setup

head -c 32 /dev/urandom >"$WORK/affinity.key"
# conf FILE PORT BALANCE
conf() {
    local i
    {
        echo "workers ${WORKERS:-1};"
        echo "error_log stderr warn;"
        echo "access_log off;"
        echo "max_connections 1000000;"
        echo "affinity { cookie VOICE_AFFINITY max_age=900s secret_file=$WORK/affinity.key; }"
        echo "upstream pods {"
        echo "    balance $3;"
        echo "    max_sessions 1000000;"
        for i in $(seq "$NSERVERS"); do
            if [ $((i % 2)) = 0 ]; then echo "    server s$i $POD_A;"; else echo "    server s$i $POD_B;"; fi
        done
        echo "    keepalive 4;"
        echo "}"
        echo "server {"
        echo "    listen 127.0.0.1:$2;"
        echo "    keepalive_requests 1000000;"
        echo "    route / { upstream pods; affinity cookie; }"
        echo "}"
    } >"$1"
}
read -r P_RR P_LS <<<"$(free_ports 2)"
conf "$WORK/rr.conf" "$P_RR" round_robin
conf "$WORK/ls.conf" "$P_LS" least_sessions
ab_start tether_round_robin "$WORK/rr.conf" "$P_RR"
ab_start tether_least_sessions "$WORK/ls.conf" "$P_LS"
for p in "$P_RR" "$P_LS"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$p/")
    [ "$code" = 200 ] || die "tether on port $p answered $code"
done
WRK_HEADERS=()
AB_SYSTEMS=(tether_round_robin tether_least_sessions)
ab_run "least_sessions pick cost, $NSERVERS servers" tether_least_sessions tether_round_robin
