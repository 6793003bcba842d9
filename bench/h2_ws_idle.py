#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""WebSockets over HTTP/2 (RFC 8441) in tether: RSS growth and descriptors per
idle WebSocket stream. -c h2c connections each open -s extended CONNECT
streams to one mock pod, echo one message on each, then stay idle; tether's
RSS and open descriptors are read before and after. TETHER_BIN=/path/to/other/tether
measures another binary with the same script (before/after a change).

usage: bench/h2_ws_idle.py [-c CONNS] [-s STREAMS_PER_CONN] [-r ROUNDS]
Environment: TETHER_BUILDDIR (the build directory), TETHER_SRCDIR, TETHER_BIN."""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("TETHER_SRCDIR", os.path.join(HERE, ".."))

import h2.events  # noqa: E402
import harness as h  # noqa: E402
import test_http2 as t2  # noqa: E402
import test_websocket as tw  # noqa: E402


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def open_streams(cl, n):
    sids = []
    for _ in range(n):
        sid = cl.conn.get_next_available_stream_id()
        cl.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                                   (":scheme", "http"), (":path", "/ws"),
                                   (":authority", "localhost"), ("sec-websocket-version", "13")])
        sids.append(sid)
    cl.flush()
    assert cl.until(lambda: len([e for e in cl.events if isinstance(
        e, h2.events.ResponseReceived) and e.stream_id in sids]) == n, timeout=20)
    for sid in sids:
        cl.conn.send_data(sid, t2.ws_frame(b"hi", 2))
    cl.flush()
    assert cl.until(lambda: len({e.stream_id for e in cl.events if isinstance(
        e, h2.events.DataReceived) and e.stream_id in sids}) == n, timeout=20)


def one_round(conns, streams):
    (pod,), t = t2.setup()
    cls = [t2.Client(t.port) for _ in range(conns)]
    for cl in cls:
        assert cl.response(cl.request("/warm"))[0] == 200
    time.sleep(0.5)
    rss0, fd0 = tw.rss_kib(t.pid), fds(t.pid)
    for cl in cls:
        open_streams(cl, streams)
    time.sleep(1.0)
    n = conns * streams
    active = t2.metric(t, "tether_tunnels_active")
    rss1, fd1 = tw.rss_kib(t.pid), fds(t.pid)
    for cl in cls:
        cl.close()
    h.stop_clean(t)
    assert active == n, (active, n)
    return (rss1 - rss0) / n, (fd1 - fd0) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-c", type=int, default=10, help="h2c connections")
    ap.add_argument("-s", type=int, default=100, help="WebSocket streams per connection")
    ap.add_argument("-r", type=int, default=3, help="rounds")
    a = ap.parse_args()
    print("| round | tunnels | RSS per tunnel (KiB) | descriptors per tunnel |")
    print("|---|---|---|---|")
    for r in range(a.r):
        kib, fd = one_round(a.c, a.s)
        print("| %d | %d | %.2f | %.2f |" % (r + 1, a.c * a.s, kib, fd))


if __name__ == "__main__":
    main()
