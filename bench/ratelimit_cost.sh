#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What a rate-limit zone costs in tether: the same route with `limit_req` on a local
# zone keyed by $remote_addr at a rate that never limits (1000000r/s, burst 1000000)
# against the route without it. Two tether processes side by side, alternating wrk
# rounds, ratio limited/plain. A non-2xx answer (a 429) would show in the errors column.
#
# usage: bench/ratelimit_cost.sh [-r ROUNDS] [-d SECS] [-c CONNS] [-t WRK_THREADS] [-w WORKERS]
#                                [-m keepalive,close] [-P TETHER:POD:WRK | -P none]
#                                [-o OUT.md] [-j OUT.json]
#   defaults: 5 rounds x 10 s, 50 connections, keep-alive, pinning 0:0:1
# Environment: TETHER_BUILDDIR (see bench/lib.sh), BENCH_KEEP=1.
HELP_LINES=3,13
. "$(dirname "$0")/lib.sh"
ab_parse_args "$@"
ab_setup

read -r P_PLAIN P_LIMIT <<<"$(free_ports 2)"
tether_conf "$WORK/plain.conf" "$P_PLAIN" 0 - - "$POD_A"
TETHER_MAIN_EXTRA="rate_limit_zone bench key=\$remote_addr rate=1000000r/s burst=1000000;" \
    TETHER_ROUTE_EXTRA="limit_req bench;" tether_conf "$WORK/limit.conf" "$P_LIMIT" 0 - - "$POD_A"
ab_start tether_plain "$WORK/plain.conf" "$P_PLAIN"
ab_start tether_limit "$WORK/limit.conf" "$P_LIMIT"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$P_LIMIT/")
[ "$code" = 200 ] || die "the rate-limited route answered $code"
WRK_HEADERS=()
AB_SYSTEMS=(tether_plain tether_limit)
ab_run "Rate-limit zone cost" tether_limit tether_plain
