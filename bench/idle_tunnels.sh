#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Memory per idle WebSocket tunnel: tether vs HAProxy vs nginx in the same run. For each
# system in turn (alternating over rounds, a fresh process every time): start it, open
# and close 100 tunnels (warm-up), read its RSS (VmRSS from /proc/PID/status; nginx: its
# workers), open N tunnels through it to the mock pod (bench/loadgen -m idle: connect,
# send the upgrade request, read the 101, then stay idle), wait until all are up and 2 s
# more, read the RSS again: (after - before) / N = bytes per idle tunnel. The RSS once the
# tunnels are closed again is shown too (memory given back or kept).
# Kernel socket memory is not in RSS and is the same for all systems.
#
# usage: bench/idle_tunnels.sh [-n TUNNELS] [-r ROUNDS] [-w WORKERS] [-S tether,haproxy,nginx]
#                              [-o OUT.md] [-j OUT.json]
#   -n  tunnels (10000; capped so that a proxy's 2 descriptors per tunnel fit the hard
#       open-files limit); -r rounds (1); -w workers (1)
# Environment: TETHER_BUILDDIR (see bench/lib.sh), BENCH_KEEP=1.
. "$(dirname "$0")/lib.sh"

N=10000 ROUNDS=1 WORKERS=1 SYSTEMS=tether,haproxy,nginx OUT_MD= OUT_JSON=
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;;
    -r) ROUNDS=$2; shift 2 ;;
    -w) WORKERS=$2; shift 2 ;;
    -S) SYSTEMS=$2; shift 2 ;;
    -o) OUT_MD=$2; shift 2 ;;
    -j) OUT_JSON=$2; shift 2 ;;
    -h | --help) sed -n '3,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see -h)" ;;
    esac
done
check_counts N ROUNDS WORKERS
[ "$ROUNDS" -le 20 ] || die "-r is at most 20"

bench_init
ensure_pkgs haproxy:haproxy nginx:nginx-light curl:curl /usr/bin/python3:python3
find_tether
build_loadgen
NOFILE=$(raise_nofile)
HARD=$(ulimit -Hn)
MAXN=$(((HARD - 80) / 2))
if [ "$N" -gt "$MAXN" ]; then
    log "the hard open-files limit is $HARD (cannot be raised here): $N tunnels need 2 per tunnel in the proxy; using $MAXN"
    N=$MAXN
fi
# tunnels set up at once by the client: below every listen backlog in play
RAMP=200

read -r P_POD <<<"$(free_ports 1)"
POD=127.0.0.1:$P_POD
start pod "" "$WORK/pod.log" "$MOCKPOD" --listen "$POD" --name pod1 --threads 1 --quiet
check_up pod "$PID_pod" "$P_POD" "$WORK/pod.log"

IFS=, read -r -a SYS <<<"$SYSTEMS"
RES=$WORK/tunnels.tsv
printf 'round\tsystem\ttunnels\trss_before_kb\trss_tunnels_kb\trss_closed_kb\n' >"$RES"

# open_tunnels PORT COUNT TAG: starts the idle client holding COUNT tunnels; waits for
# them; sets HOLD_PID. Closing fd 9 (the client's stdin) lets it close them and exit.
open_tunnels() {
    local port=$1 count=$2 tag=$3 i
    rm -f "$WORK/hold.$tag"
    mkfifo "$WORK/hold.$tag"
    "$LOADGEN" -m idle -a "127.0.0.1:$port" -p /ws -c "$count" --ramp "$RAMP" -d 600 \
        <"$WORK/hold.$tag" >"$WORK/client.$tag.log" 2>&1 &
    HOLD_PID=$!
    PIDS+=("$HOLD_PID")
    exec 9>"$WORK/hold.$tag"
    for i in $(seq 1200); do
        grep -q '^established' "$WORK/client.$tag.log" && return 0
        kill -0 "$HOLD_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "tunnels through port $port did not come up: $(cat "$WORK/client.$tag.log")"
    return 1
}

close_tunnels() {
    exec 9>&-
    local i
    for i in $(seq 300); do kill -0 "$HOLD_PID" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$HOLD_PID"
}

one_round() {
    local s=$1 r=$2 port conf pids before during closed
    read -r port <<<"$(free_ports 1)"
    conf=$WORK/$s.$r.conf
    case $s in
    tether) tether_conf "$conf" "$port" 0 - - "$POD" ;;
    haproxy) haproxy_cfg "$conf" "$port" 0 - $((N + 10)) "$POD" ;;
    nginx)
        mkdir -p "$WORK/$s.$r"
        conf=$WORK/$s.$r/nginx.conf
        nginx_conf "$conf" "$port" 0 - - $((4 * N + 1000)) "$POD"
        ;;
    esac
    start_system "$s" "" "$port" "$conf"
    local p=PID_$s
    pids=$(work_pids "${!p}" | tr '\n' ' ')
    # warm-up: 100 tunnels opened and closed
    open_tunnels "$port" 100 "$s.$r.warm" || die "$s: WebSocket upgrade through it failed"
    close_tunnels
    sleep 1
    # shellcheck disable=SC2086
    before=$(rss_kb $pids)
    open_tunnels "$port" "$N" "$s.$r" || die "$s: $N tunnels did not come up"
    sleep 2
    # shellcheck disable=SC2086
    during=$(rss_kb $pids)
    grep -q 'dropped' "$WORK/client.$s.$r.log" && log "$s: $(cat "$WORK/client.$s.$r.log")"
    close_tunnels
    sleep 1
    # shellcheck disable=SC2086
    closed=$(rss_kb $pids)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$s" "$N" "$before" "$during" "$closed" >>"$RES"
    log "round $r $s: RSS $before kB -> $during kB with $N tunnels ($(((during - before) * 1024 / N)) B/tunnel) -> $closed kB closed; client: $(tail -1 "$WORK/client.$s.$r.log")"
    stop_pid "${!p}"
}

log "systems: ${SYS[*]}; $N idle tunnels; workers $WORKERS; $ROUNDS round(s); open files $NOFILE"
for r in $(seq "$ROUNDS"); do
    n=${#SYS[@]}
    for k in $(seq 0 $((n - 1))); do one_round "${SYS[$(((k + r - 1) % n))]}" "$r"; done
done

{
    echo "## Idle WebSocket tunnels: $(date -u +%Y-%m-%dT%H:%MZ), tether $TETHER_REV"
    echo
    echo "$N idle tunnels per system (client -> proxy -> mock pod, upgraded, then silent), workers $WORKERS," \
        "$ROUNDS round(s), a fresh process per round; RSS = VmRSS (nginx: workers);" \
        "per tunnel = (RSS with tunnels - RSS before) / tunnels, median of rounds. Kernel socket buffers are not included."
    echo
    $PY - "$RES" "${OUT_JSON:-}" <<'EOF'
import json, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
systems = []
for r in rows:
    if r[1] not in systems:
        systems.append(r[1])
res = {}
print("| system | tunnels | RSS before | RSS with tunnels | growth | bytes / tunnel | RSS after close |")
print("|---|---:|---:|---:|---:|---:|---:|")
for s in systems:
    sr = [r for r in rows if r[1] == s]
    per = [(int(r[4]) - int(r[3])) * 1024 / int(r[2]) for r in sr]
    med = lambda i: statistics.median(int(r[i]) for r in sr)
    res[s] = {"tunnels": int(sr[0][2]), "rss_before_kb": med(3), "rss_tunnels_kb": med(4),
              "rss_closed_kb": med(5), "bytes_per_tunnel": statistics.median(per),
              "rounds": len(sr)}
    x = res[s]
    print("| %s | %d | %.1f MiB | %.1f MiB | %.1f MiB | %s | %.1f MiB |" % (
        s, x["tunnels"], x["rss_before_kb"] / 1024, x["rss_tunnels_kb"] / 1024,
        (x["rss_tunnels_kb"] - x["rss_before_kb"]) / 1024,
        "{:,.0f}".format(x["bytes_per_tunnel"]), x["rss_closed_kb"] / 1024))
print()
rat = {}
for b in ("haproxy", "nginx"):
    if "tether" in res and b in res and res[b]["bytes_per_tunnel"] > 0:
        rat["tether/" + b] = res["tether"]["bytes_per_tunnel"] / res[b]["bytes_per_tunnel"]
if rat:
    print("| ratio | bytes / tunnel |")
    print("|---|---:|")
    for k, v in rat.items():
        print("| %s | %.2f |" % (k, v))
    print()
if sys.argv[2]:
    json.dump({"systems": res, "ratios": rat, "rows": rows}, open(sys.argv[2], "w"), indent=1)
EOF
} >"$WORK/report.md"
cat "$WORK/report.md"
[ -n "$OUT_MD" ] && cp "$WORK/report.md" "$OUT_MD"
exit 0
