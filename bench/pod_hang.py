#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A pod that hangs (SIGSTOP) under steady GET traffic: client-visible errors
and added latency with `retry_on timeout; per_try_timeout` and without (and,
with --haproxy, HAProxy 2.6 with `retry-on response-timeout`).

Three mock pods, health checks every 500 ms, retries 2, route timeout 1 s,
N client threads with keep-alive sending GETs for the whole run; one pod is
stopped for --hang seconds, then continued. Each setting runs --rounds times,
alternating. Prints per round and a summary: requests, non-200 answers,
p50/p99/max latency over the whole run and the slowest answers.

    TETHER_BUILDDIR=build bench/pod_hang.py [--hang 4] [--rounds 3] [--threads 4] [--haproxy]

HAProxy has one server timeout for the whole answer, so its response-timeout
retry comes after `timeout server` (set to the route's 1 s here).
"""
import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("TETHER_BUILDDIR") or os.path.join(os.path.dirname(__file__), "..", "build")
TETHER = os.path.join(BUILD, "tether")
MOCKPOD = os.path.join(BUILD, "tests", "mockpod", "mockpod")

CONF = """
workers 2;
error_log stderr warn;
upstream voice {
    balance round_robin;
    retries 2;
    retry_on connect-failure refused reset %(retry_on)s;
    %(per_try)s
    health_check { interval 500ms; timeout 400ms; rise 2; fall 2; }
    server pod-a 127.0.0.1:%(a)d;
    server pod-b 127.0.0.1:%(b)d;
    server pod-c 127.0.0.1:%(c)d;
}
server { listen 127.0.0.1:%(port)d; route / { upstream voice; timeout 1s; } }
"""

HAPROXY = """
global
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 1s
    timeout check 400ms
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
frontend fe
    bind 127.0.0.1:%(port)d
    default_backend voice
backend voice
    balance roundrobin
    server pod-a 127.0.0.1:%(a)d check inter 500ms rise 2 fall 2
    server pod-b 127.0.0.1:%(b)d check inter 500ms rise 2 fall 2
    server pod-c 127.0.0.1:%(c)d check inter 500ms rise 2 fall 2
"""

LABELS = {"plain": "tether, no per_try_timeout (before)",
          "knob": "tether, `retry_on timeout; per_try_timeout 200ms`",
          "haproxy": "HAProxy 2.6, `retry-on response-timeout`, `timeout server 1s`"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d did not open" % port)


def one_round(mode, args, tmp):
    procs = []
    try:
        ports = [free_port() for _ in range(3)]
        for n, p in zip("abc", ports):
            procs.append(subprocess.Popen([MOCKPOD, "--listen", "127.0.0.1:%d" % p, "--name",
                                           "pod-" + n, "--quiet"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in ports:
            wait_port(p)
        port = free_port()
        conf = os.path.join(tmp, mode + ".conf")
        knob = mode == "knob"
        with open(conf, "w") as f:
            f.write((HAPROXY if mode == "haproxy" else CONF) % {
                "retry_on": "timeout" if knob else "",
                "per_try": "per_try_timeout 200ms;" if knob else "",
                "a": ports[0], "b": ports[1], "c": ports[2], "port": port})
        argv = ["haproxy", "-f", conf] if mode == "haproxy" else [TETHER, "-c", conf]
        t = subprocess.Popen(argv)
        procs.append(t)
        wait_port(port)
        time.sleep(1.2)  # first health checks
        lat, errs, lock = [], {}, threading.Lock()
        stop = time.time() + args.warm + args.hang + args.after

        def client():
            conn = None
            while time.time() < stop:
                t0 = time.time()
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.request("GET", "/x")
                    r = conn.getresponse()
                    r.read()
                    st = r.status
                    if r.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as e:
                    st = type(e).__name__
                    conn = None
                with lock:
                    lat.append(time.time() - t0)
                    if st != 200:
                        errs[st] = errs.get(st, 0) + 1

        threads = [threading.Thread(target=client) for _ in range(args.threads)]
        for th in threads:
            th.start()
        time.sleep(args.warm)
        procs[1].send_signal(signal.SIGSTOP)
        time.sleep(args.hang)
        procs[1].send_signal(signal.SIGCONT)
        for th in threads:
            th.join(30)
        lat.sort()
        n = len(lat)
        return {"requests": n, "errors": sum(errs.values()), "kinds": errs,
                "p50": lat[n // 2] * 1e3, "p99": lat[min(n - 1, n * 99 // 100)] * 1e3,
                "max": lat[-1] * 1e3, "over_150ms": sum(1 for x in lat if x > 0.15)}
    finally:
        for p in procs:
            p.send_signal(signal.SIGCONT)
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hang", type=float, default=4.0, help="seconds the pod stays stopped")
    ap.add_argument("--warm", type=float, default=1.0, help="seconds of traffic before")
    ap.add_argument("--after", type=float, default=1.0, help="seconds of traffic after")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--haproxy", action="store_true", help="also HAProxy (Debian haproxy)")
    args = ap.parse_args()
    modes = ["plain", "knob"] + (["haproxy"] if args.haproxy else [])
    tmp = tempfile.mkdtemp(prefix="pod-hang-")
    res = {m: [] for m in modes}
    try:
        for r in range(args.rounds):
            for mode in modes:
                x = one_round(mode, args, tmp)
                res[mode].append(x)
                print("round %d %-8s %s" % (r + 1, mode, x), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| setting | requests | client errors | p50 ms | p99 ms | max ms | answers > 150 ms |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        xs = res[mode]
        med = lambda k: sorted(x[k] for x in xs)[len(xs) // 2]
        print("| %s | %d | %s | %.1f | %.1f | %.0f | %s |" % (
            LABELS[mode], med("requests"), "/".join(str(x["errors"]) for x in xs), med("p50"),
            med("p99"), med("max"), "/".join(str(x["over_150ms"]) for x in xs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
