#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The newcomer's tour: install dependencies, build, start four mock voice pods in
# three regions (the eu-west ones found through a local dnsmasq) and tether in
# front of them (conf/demo.conf), show sessions spread 70/30, pinned through
# /sdp, /tools, a webhook and a WebSocket, a pod killed under load without
# client errors, a pod added in DNS and one removed while a call is pinned to
# it, a weight change with tetherctl, the pods filling up (they report their
# sessions): a full region spilling to the other, then to the DR tier, then new
# sessions shed with Retry-After; then keep running for you to explore the
# status page and /metrics (Ctrl-C stops everything). DEMO_SECONDS=N stops by
# itself after N seconds.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$src/scripts/install-deps.sh"
BUILD_DIR=${BUILD_DIR:-$src/build} "$src/scripts/build.sh"
build=${BUILD_DIR:-$src/build}
run=$(mktemp -d /tmp/tether-demo.XXXXXX)
PORT=${DEMO_PORT:-8080} STATS_PORT=${DEMO_STATS_PORT:-9100}
POD_A=${DEMO_POD_BASE:-8001}
POD_B=$POD_A POD_C=$((POD_A + 2)) POD_D=$((POD_A + 3))  # eu-west pods share a port on 127.0.0.x
DNS_PORT=${DEMO_DNS_PORT:-8053}
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for f in "$run"/*.pid; do [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "demo stopped; logs were in $run"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$run/affinity.key"
sed -e "s|@RUN@|$run|g" -e "s|@PORT@|$PORT|" -e "s|@STATS_PORT@|$STATS_PORT|" \
    -e "s|@POD_A@|$POD_A|" -e "s|@POD_C@|$POD_C|" -e "s|@POD_D@|$POD_D|" \
    -e "s|@DNS_PORT@|$DNS_PORT|" "$src/conf/demo.conf" >"$run/tether.conf"

start_pod() { # name host:port
    "$build/tests/mockpod/mockpod" --listen "$2" --name "$1" --quiet \
        --report-sessions >"$run/$1.log" 2>&1 &
    pids+=($!)
    echo $! >"$run/$1.pid"
    disown $! # the tour kills one on purpose: no "Killed" notice from bash
}
start_pod pod-a "127.0.0.2:$POD_A"; start_pod pod-b "127.0.0.3:$POD_B"
start_pod pod-c "127.0.0.1:$POD_C"; start_pod pod-d "127.0.0.1:$POD_D"
# DNS for the eu-west pods: the tour edits $run/hosts and sends dnsmasq SIGHUP.
printf '127.0.0.2 eu.demo.test\n127.0.0.3 eu.demo.test\n' >"$run/hosts"
dns_user=()
[[ $(id -u) == 0 ]] && dns_user=(--user=root)
/usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --addn-hosts="$run/hosts" --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
    --pid-file= --local=/test/ --local-ttl=1 --log-facility="$run/dnsmasq.log" \
    "${dns_user[@]+"${dns_user[@]}"}" &
pids+=($!)
echo $! >"$run/dnsmasq.pid"
"$build/tether" -t -c "$run/tether.conf"
"$build/tether" -c "$run/tether.conf" &
pids+=($!)
echo $! >"$run/tether.pid"

/usr/bin/python3 "$src/scripts/demo_tour.py" --port "$PORT" --stats "$STATS_PORT" --run "$run" \
    --tetherctl "$build/tetherctl" --mockpod "$build/tests/mockpod/mockpod" \
    --pod-b-addr "127.0.0.3:$POD_B" --eu-port "$POD_A"

cat <<MSG

tether is running in front of the demo pods (run directory: $run):
  status page  http://127.0.0.1:$STATS_PORT/
  metrics      curl -s http://127.0.0.1:$STATS_PORT/metrics | grep ^tether_
  a session    curl -si -X POST http://127.0.0.1:$PORT/session
  admin        $build/tetherctl -s $run/admin.sock show servers
  drain a pod  $build/tetherctl -s $run/admin.sock set server voice/pod-c state drain
  add a pod    $build/tests/mockpod/mockpod --listen 127.0.0.9:$POD_A --name pod-z --quiet &
               echo 127.0.0.9 eu.demo.test >>$run/hosts; kill -HUP \$(cat $run/dnsmasq.pid)
  reload       kill -HUP \$(cat $run/tether.pid)
Press Ctrl-C to stop everything.
MSG
if [[ -n ${DEMO_SECONDS:-} ]]; then sleep "$DEMO_SECONDS"; else while true; do sleep 3600; done; fi
