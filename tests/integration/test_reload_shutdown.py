# SPDX-License-Identifier: MIT
"""Reloads (SIGHUP) swap generations without dropping requests; SIGTERM stops
accepting, finishes in-flight work up to shutdown_timeout and exits 0."""
import signal
import socket
import threading
import time

import harness as h

CONF = """
workers 2;
shutdown_timeout {shutdown};
error_log {dir}/error.log info;
upstream voice {
    server pod-a {a} weight={wa};
    server pod-b {b};
}
upstream onlyb { server pod-b {b}; }
server {
    listen 127.0.0.1:{port};
    route / { upstream voice; }
    route /extra/ { upstream voice; }
}
"""


def setup(shutdown="5s"):
    a, b = h.Mockpod("pod-a"), h.Mockpod("pod-b")
    t = h.Tether(CONF, a=a.addr, b=b.addr, wa=1, shutdown=shutdown)
    return a, b, t


def test_10000_requests_with_sighup_every_100ms():
    a, b, t = setup()
    errors = []
    done = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def client(n):
        conn = None
        for i in range(n):
            try:
                r = h.get(t.port, "/sdp?i=%d" % i, conn=conn)
                conn = r.conn
                if r.status != 200:
                    errors.append(r.status)
            except Exception as e:  # a dropped connection is a failure too
                errors.append(repr(e))
                conn = None
            with lock:
                done[0] += 1
        if conn:
            conn.close()

    def hupper():
        k = 0
        # At least 5 reloads however fast (or starved of the GIL) this thread is.
        while not stop.is_set() or k < 5:
            t.kw["wa"] = 1 + k % 3  # a real change each time: weights move
            t.reload(CONF)
            k += 1
            time.sleep(0.1)
        hupper.count = k

    ths = [threading.Thread(target=client, args=(2500,)) for _ in range(4)]
    hup = threading.Thread(target=hupper)
    hup.start()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    stop.set()
    hup.join()
    assert done[0] == 10000
    assert errors == [], errors[:10]
    assert hupper.count >= 5, hupper.count
    assert t.alive()
    h.wait_until(lambda: open(t.dir + "/error.log").read().count("configuration reloaded") >= 5,
                 what="5 reloads logged")
    t.stop()


def test_reload_changes_routes_and_keeps_inflight():
    a, b, t = setup()
    pods = {h.get(t.port, "/extra/x").header("X-Pod") for _ in range(4)}
    assert pods == {"pod-a", "pod-b"}, pods
    result = {}

    def slow():
        result["r"] = h.get(t.port, "/sdp?delay=800", timeout=5)

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.2)
    t.reload(CONF.replace("route /extra/ { upstream voice; }", "route /extra/ { upstream onlyb; }"))
    h.wait_until(lambda: all(h.get(t.port, "/extra/x").header("X-Pod") == "pod-b"
                             for _ in range(4)), what="route changed")
    th.join()
    assert result["r"].status == 200, result
    t.stop()


def test_sigterm_finishes_inflight_and_exits_0():
    a, b, t = setup()
    result = {}

    def slow():
        result["r"] = h.get(t.port, "/sdp?delay=700", timeout=5)

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.2)
    t.signal(signal.SIGTERM)
    time.sleep(0.1)
    # No new connections once stopping.
    refused = False
    try:
        socket.create_connection(("127.0.0.1", t.port), timeout=1).close()
    except OSError:
        refused = True
    assert refused
    th.join()
    assert result["r"].status == 200
    assert t.p.wait(timeout=5) == 0


def test_shutdown_timeout_bounds_the_wait():
    a, b, t = setup(shutdown="400ms")
    s = socket.create_connection(("127.0.0.1", t.port))
    s.sendall(b"GET /sdp?hang=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    t0 = time.time()
    t.signal(signal.SIGTERM)
    assert t.p.wait(timeout=5) == 0
    assert time.time() - t0 < 3
    s.close()


if __name__ == "__main__":
    h.main(globals())
