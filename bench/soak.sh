#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Soak test (not in CI): 10 minutes of mixed traffic through one tether (HTTP keep-alive
# and fresh connections, uploads, learned sessions, WebSocket tunnels) with reloads every
# 20 s, a pod killed and restarted every 60 s and Redis restarted every 150 s. Samples
# tether's RSS and descriptors every 5 s and prints a verdict (see bench/soak.py).
# Usage: bench/soak.sh [SECONDS]          (from a build directory; default 600)
# Env: TETHER_BUILDDIR (default: cwd), SOAK_OUT (samples JSON; default: cwd),
#      SOAK_WARMUP, SOAK_WINDOW, SOAK_RELOAD_EVERY, SOAK_KILL_EVERY, SOAK_REDIS_EVERY.
set -u
srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export TETHER_SRCDIR=${TETHER_SRCDIR:-$srcdir}
export TETHER_BUILDDIR=${TETHER_BUILDDIR:-$PWD}
export SOAK_SECONDS=${1:-${SOAK_SECONDS:-600}}
export SOAK_OUT=${SOAK_OUT:-$PWD}
for need in "$TETHER_BUILDDIR/tether" "$TETHER_BUILDDIR/tests/mockpod/mockpod"; do
    [[ -x $need ]] || { echo "soak: $need missing: build first" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "soak: redis-server missing" >&2; exit 2; }
exec /usr/bin/python3 "$srcdir/bench/soak.py"
