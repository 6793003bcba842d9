#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""HTTP/2 costs in tether: the memory of an idle HTTP/2 connection (cleartext
h2c and over TLS), and what each flood of tests/integration/test_http2.py costs
tether (CPU time, peak RSS growth, bytes the attacker got to send) before the
connection ends. One tether worker, one mock pod, loopback; default limits
unless -l gives a server-block line.

usage: bench/h2_cost.py [-n IDLE_CONNS] [-k FLOODS] [-l 'http2_max_resets 200; ...'] [-o OUT.md]
Environment: TETHER_BUILDDIR (the build directory), TETHER_SRCDIR."""
import argparse
import os
import socket
import ssl
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("TETHER_SRCDIR", os.path.join(HERE, ".."))

import harness as h  # noqa: E402
import test_http2 as t2  # noqa: E402
from hyperframe.frame import SettingsFrame  # noqa: E402
from test_tls import certs  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_rss(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / CLK
    with open("/proc/%d/status" % pid) as f:
        rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")][0]
    return cpu, rss


def idle_conns(t, n, tls):
    port = t.kw["tport"] if tls else t.port
    ctx = None
    if tls:
        ctx = ssl.create_default_context(cafile=certs() + "/ca.pem")
        ctx.set_alpn_protocols(["h2"])
    socks = []
    _, rss0 = proc_cpu_rss(t.pid)
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize())
        socks.append(s)
    time.sleep(1.0)
    for s in socks:  # tether's SETTINGS and ACK: read so nothing waits in buffers
        s.settimeout(0.05)
        try:
            s.recv(4096)
        except OSError:
            pass
    time.sleep(0.5)
    _, rss1 = proc_cpu_rss(t.pid)
    for s in socks:
        s.close()
    return (rss1 - rss0) * 1024.0 / n


def flood_cost(t, name, k):
    """<k> connections flooding one after the other: per connection, tether's CPU
    and the seconds until it ended; the RSS growth over all of them."""
    cpu0, rss0 = proc_cpu_rss(t.pid)
    t0 = time.time()
    ok = True
    for _ in range(k):
        goaway, frames = t2.flood_case(t.port, name)
        ok = ok and goaway
    secs = (time.time() - t0) / k
    cpu1, rss1 = proc_cpu_rss(t.pid)
    return ok, (cpu1 - cpu0) * 1e3 / k, max(0, rss1 - rss0), secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("-l", default="")
    ap.add_argument("-k", type=int, default=20)
    ap.add_argument("-o")
    a = ap.parse_args()
    (pod,), t = t2.setup(extra=a.l)
    try:
        out = ["## HTTP/2 costs: %s" % time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "",
               "One worker, loopback, limits: %s." % (a.l or "defaults"), "",
               "| idle HTTP/2 connection | bytes of tether RSS each (%d connections) |" % a.n,
               "|---|---:|"]
        for tls in (False, True):
            out.append("| %s | %.0f |" % ("TLS (h2)" if tls else "cleartext (h2c)",
                                          idle_conns(t, a.n, tls)))
        out += ["", "Each flood: %d connections one after the other (frames as in"
                " test_http2.flood_case); CPU ms and seconds per connection, RSS growth over"
                " all of them." % a.k, "",
                "| flood | GOAWAY every time | tether CPU ms / connection | RSS growth KiB |"
                " seconds / connection |", "|---|---|---:|---:|---:|"]
        for name in ("settings", "ping", "priority", "window_update", "empty_data",
                     "rapid_reset", "continuation", "hpack_bomb"):
            g, cpu, rss, secs = flood_cost(t, name, a.k)
            out.append("| %s | %s | %.1f | %d | %.2f |" % (name, "yes" if g else "NO", cpu, rss,
                                                           secs))
        text = "\n".join(out) + "\n"
        print(text)
        if a.o:
            with open(a.o, "w") as f:
                f.write(text)
    finally:
        t.stop()
        pod.stop()


if __name__ == "__main__":
    main()
