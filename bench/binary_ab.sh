#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Two tether binaries, same configuration (bench/run.sh's: one route, one mock pod,
# keep-alive to the pod, access log off): the build in TETHER_BUILDDIR ("new") against
# the binary in TETHER_OLD ("old", e.g. main's copied to /tmp), side by side, alternating
# wrk rounds; req/s, p50, p99, CPU per request and the ratio new/old. For checking that
# a refactoring costs nothing (issue 13: within 3 %).
#
# usage: TETHER_OLD=/tmp/tether-main bench/binary_ab.sh [-r ROUNDS] [-d SECS] [-c CONNS]
#                               [-t WRK_THREADS] [-w WORKERS] [-m keepalive,close]
#                               [-P TETHER:POD:WRK | -P none] [-o OUT.md] [-j OUT.json]
#   defaults: 5 rounds x 10 s, 50 connections, keep-alive, pinning 0:0:1
# Environment: TETHER_BUILDDIR (see bench/lib.sh), TETHER_OLD (required), BENCH_KEEP=1.
HELP_LINES=3,15
. "$(dirname "$0")/lib.sh"
ab_parse_args "$@"
[ -x "${TETHER_OLD:-}" ] || die "TETHER_OLD must name the old tether binary"
ab_setup

read -r P_OLD P_NEW <<<"$(free_ports 2)"
tether_conf "$WORK/old.conf" "$P_OLD" 0 - - "$POD_A"
tether_conf "$WORK/new.conf" "$P_NEW" 0 - - "$POD_A"
NEW_TETHER=$TETHER
TETHER=$TETHER_OLD ab_start tether_old "$WORK/old.conf" "$P_OLD"
TETHER=$NEW_TETHER
ab_start tether_new "$WORK/new.conf" "$P_NEW"
log "old: $TETHER_OLD; new: $NEW_TETHER"
AB_SYSTEMS=(tether_old tether_new)
ab_run "Binary A/B (new/old)" tether_new tether_old
