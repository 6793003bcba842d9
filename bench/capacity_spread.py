#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The spread of sessions over pods with mixed capacities (issue 15): mock pods
that report their sessions (--report-sessions --max-sessions N) behind one tether
with `balance least_sessions` and `report json`; N new sessions (POST /session,
a learned session each, C client threads); then each pod's load / capacity
from `tetherctl show servers json` and the pods' own counts.

usage: bench/capacity_spread.py [--sessions N] [--pods P] [--caps 20,50,100]
                                [--regions R] [--clients C]
Environment: TETHER_BUILDDIR (the build directory; default ./build).
Prints one line per capacity class and the spread: the largest and the smallest
load / capacity over all pods."""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TETHER_BUILDDIR", os.path.join(SRC, "build"))
os.environ.setdefault("TETHER_SRCDIR", SRC)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import harness as h  # noqa: E402

CONF = """
workers 2;
error_log stderr warn;
admin { listen unix:{admin_sock}; }
affinity { header X-Voice-Session-Id; learn header=X-Voice-Session-Id; ttl 900s; }
upstream voice {
    balance least_sessions;
    {regions}
    {servers}
    health_check { path /health; interval 100ms; timeout 1s; rise 1; fall 3; report json; }
}
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=24)
    ap.add_argument("--caps", default="20,50,100")
    ap.add_argument("--regions", type=int, default=1)
    ap.add_argument("--clients", type=int, default=4)
    a = ap.parse_args()
    caps = [int(c) for c in a.caps.split(",")]
    if sum(caps[i % len(caps)] for i in range(a.pods)) < a.sessions:
        sys.exit("the pods' capacity is below --sessions")
    pods, lines = [], []
    for i in range(a.pods):
        cap = caps[i % len(caps)]
        p = h.Mockpod("pod%d" % i, args=("--report-sessions", "--max-sessions", str(cap)))
        pods.append((p, cap))
        lines.append("server pod%d %s region=r%d;" % (i, p.addr, i % a.regions))
    regions = " ".join("region r%d weight=100;" % r for r in range(a.regions))
    t = h.Tether(CONF, servers="\n    ".join(lines), regions=regions)
    try:
        h.wait_admin(t.admin_sock)

        def servers():
            out = subprocess.run([h.TETHERCTL, "-s", t.admin_sock, "show", "servers", "json"],
                                 capture_output=True, text=True, timeout=30).stdout
            return {s["server"]: s for s in json.loads(out)["servers"]}

        h.wait_until(lambda: all(s["reports_ok"] > 0 for s in servers().values()), timeout=20,
                     what="first reports")
        refused = []
        lock = threading.Lock()

        def client(n):
            conn = None
            for _ in range(n):
                r = h.get(t.port, "/session", conn=conn)
                conn = getattr(r, "conn", None)
                if r.status != 200:
                    with lock:
                        refused.append(r.status)
        ts = [threading.Thread(target=client, args=(a.sessions // a.clients +
                                                     (k < a.sessions % a.clients),))
              for k in range(a.clients)]
        t0 = time.time()
        for x in ts:
            x.start()
        for x in ts:
            x.join()
        took = time.time() - t0
        time.sleep(0.5)  # two more reports: the pods' own figures
        own = {p.name: json.loads(p.control("/health").body)["active_sessions"] for p, _ in pods}
        figs = servers()
        ratios = []
        by_cap = {}
        for p, cap in pods:
            n = own[p.name]
            ratios.append((n / cap, p.name, n, cap))
            by_cap.setdefault(cap, []).append(n)
        print("%d new sessions over %d pods (capacities %s), %d region(s), %d clients, %.1f s; "
              "refused %d" % (a.sessions, a.pods, a.caps, a.regions, a.clients, took,
                              len(refused)))
        for cap in sorted(by_cap):
            v = by_cap[cap]
            print("  capacity %4d: %d pods, sessions min %d max %d (%.1f%%..%.1f%% full)"
                  % (cap, len(v), min(v), max(v), 100.0 * min(v) / cap, 100.0 * max(v) / cap))
        ratios.sort()
        lo, hi = ratios[0], ratios[-1]
        print("spread: largest load/capacity %.3f (%s %d/%d), smallest %.3f (%s %d/%d); "
              "ideal %.3f" % (hi[0], hi[1], hi[2], hi[3], lo[0], lo[1], lo[2], lo[3],
                              a.sessions / float(sum(c for _, c in pods))))
        agree = all(figs[p.name]["sessions"] >= own[p.name] for p, _ in pods)
        print("tether's figures >= the pods' own counts for every pod: %s" % agree)
    finally:
        t.stop()
        for p, _ in pods:
            p.stop()


if __name__ == "__main__":
    main()
