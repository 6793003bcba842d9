#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What cookie affinity costs in tether: the same route with `affinity cookie` (the client
# sends the valid VOICE_AFFINITY cookie it got from a first response, so every request
# verifies the cookie's MAC and goes to the pinned server) against `affinity none`
# (round-robin pick). Two tether processes side by side, two upstream servers (mock pods
# pod1 and pod2 on the same CPU), alternating wrk rounds, ratio cookie/none. Both variants
# receive the same Cookie header.
#
# usage: bench/affinity_cost.sh [-r ROUNDS] [-d SECS] [-c CONNS] [-t WRK_THREADS] [-w WORKERS]
#                               [-m keepalive,close] [-P TETHER:POD:WRK | -P none]
#                               [-o OUT.md] [-j OUT.json]
#   defaults: 5 rounds x 10 s, 50 connections, keep-alive, pinning 0:0:1
# Environment: TETHER_BUILDDIR (see bench/lib.sh), BENCH_KEEP=1.
HELP_LINES=3,15
. "$(dirname "$0")/lib.sh"
ab_parse_args "$@"
ab_setup

head -c 48 /dev/urandom >"$WORK/affinity.key"
read -r P_NONE P_COOKIE <<<"$(free_ports 2)"
TETHER_MAIN_EXTRA="affinity { cookie VOICE_AFFINITY max_age=900s secret_file=$WORK/affinity.key; }"
TETHER_ROUTE_EXTRA="affinity none;" tether_conf "$WORK/none.conf" "$P_NONE" 0 - - "$POD_A" "$POD_B"
TETHER_ROUTE_EXTRA="affinity cookie;" tether_conf "$WORK/cookie.conf" "$P_COOKIE" 0 - - "$POD_A" "$POD_B"
ab_start tether_none "$WORK/none.conf" "$P_NONE"
ab_start tether_cookie "$WORK/cookie.conf" "$P_COOKIE"

# the cookie from a first response
curl -s -D "$WORK/first.head" -o /dev/null --max-time 5 "http://127.0.0.1:$P_COOKIE/"
COOKIE=$(tr -d '\r' <"$WORK/first.head" | sed -n 's/^[Ss]et-[Cc]ookie: \(VOICE_AFFINITY=[^;]*\).*/\1/p' | head -1)
[ -n "$COOKIE" ] || die "no VOICE_AFFINITY cookie in tether's first answer: $(cat "$WORK/first.head")"
# the cookie pins: 20 requests with it all reach the same pod; no new cookie is issued
for i in $(seq 20); do
    curl -s -D - -o /dev/null -H "Cookie: $COOKIE" "http://127.0.0.1:$P_COOKIE/" | tr -d '\r' | grep -i '^x-pod\|^set-cookie' || true
done >"$WORK/pin.check"
log "cookie: $COOKIE; 20 requests with it: $(sort "$WORK/pin.check" | uniq -c | tr -s ' ' | tr '\n' ';')"
WRK_HEADERS=("Cookie: $COOKIE")
AB_SYSTEMS=(tether_none tether_cookie)
ab_run "Cookie affinity cost" tether_cookie tether_none
