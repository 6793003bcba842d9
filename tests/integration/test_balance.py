# SPDX-License-Identifier: MIT
"""Balancers: smooth weighted round-robin, weighted least_conn, random_two and
consistent hash, measured by the distribution of real requests."""
import collections
import threading
import time

import harness as h


def pods(n):
    return [h.Mockpod("pod-%d" % i) for i in range(n)]


def conf(balance, ps, weights):
    servers = "".join("    server pod-%d %s weight=%d;\n" % (i, p.addr, w)
                      for i, (p, w) in enumerate(zip(ps, weights)))
    return """
workers 1;
upstream voice {
    balance %s;
%s}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
""" % (balance, servers)


def count(port, n, path="/sdp", conn=None):
    c = collections.Counter()
    for _ in range(n):
        r = h.get(port, path, conn=conn)
        conn = r.conn
        c[r.header("X-Pod")] += 1
    conn.close()
    return c


def test_round_robin_smooth_weighted():
    ps = pods(3)
    t = h.Tether(conf("round_robin", ps, [5, 1, 1]))
    # One worker: the smooth WRR sequence is exact over every 7 requests.
    c = count(t.port, 700)
    assert c == {"pod-0": 500, "pod-1": 100, "pod-2": 100}, c
    # Smoothness: never more than 2 of pod-0 in a row... a a b a c a a
    seq = [h.get(t.port, "/sdp").header("X-Pod") for _ in range(14)]
    runs = max(len(r) for r in "".join("a" if s == "pod-0" else "." for s in seq).split("."))
    assert runs <= 4, seq
    t.stop()


def test_least_conn_sends_to_less_loaded_server():
    ps = pods(2)
    t = h.Tether(conf("least_conn", ps, [1, 1]))
    slow_to = collections.Counter()
    lock = threading.Lock()

    def slow():
        r = h.get(t.port, "/sdp?delay=1500", timeout=10)
        with lock:
            slow_to[r.header("X-Pod")] += 1

    ths = [threading.Thread(target=slow) for _ in range(5)]
    for th in ths:
        th.start()
        time.sleep(0.05)  # let each one be counted before the next pick
    time.sleep(0.2)
    fast = count(t.port, 10)
    for th in ths:
        th.join()
    # 5 slow requests split 3/2; every quick request while they were in flight
    # went to the server with fewer requests in flight.
    assert sorted(slow_to.values()) == [2, 3], slow_to
    lighter = min(slow_to, key=slow_to.get)
    assert fast == {lighter: 10}, (slow_to, fast)
    t.stop()


def test_least_conn_weights():
    ps = pods(2)
    t = h.Tether(conf("least_conn", ps, [3, 1]))
    # Concurrency 8 with equal per-request time: in-flight counts follow 3:1.
    c = collections.Counter()
    lock = threading.Lock()

    def worker():
        conn = None
        for _ in range(40):
            r = h.get(t.port, "/sdp?delay=20", conn=conn)
            conn = r.conn
            with lock:
                c[r.header("X-Pod")] += 1
        conn.close()

    ths = [threading.Thread(target=worker) for _ in range(8)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    share = c["pod-0"] / sum(c.values())
    assert 0.65 <= share <= 0.85, c
    t.stop()


def test_random_two_spreads_by_weight():
    ps = pods(2)
    t = h.Tether(conf("random_two", ps, [1, 1]))
    c = count(t.port, 1000)
    assert 400 <= c["pod-0"] <= 600, c
    t.stop()
    t = h.Tether(conf("random_two", ps, [4, 1]))
    c = count(t.port, 1000)
    # With no load difference the heavier server wins every draw it is in:
    # the light one gets only the draws where it is picked twice (1/25).
    assert 0.9 <= c["pod-0"] / 1000 < 1.0 and c["pod-1"] > 0, c
    t.stop()


def test_hash_balance_is_sticky_per_key():
    ps = pods(3)
    text = conf("hash $http_x_user", ps, [1, 1, 1])
    t = h.Tether(text)
    seen = {}
    for u in range(60):
        pods_for_user = {h.get(t.port, "/sdp", headers={"X-User": "u%d" % u}).header("X-Pod")
                         for _ in range(3)}
        assert len(pods_for_user) == 1, (u, pods_for_user)
        seen[u] = pods_for_user.pop()
    assert len(set(seen.values())) == 3, seen
    # A second tether with the same config maps every key the same way.
    t2 = h.Tether(text)
    for u in range(60):
        assert h.get(t2.port, "/sdp", headers={"X-User": "u%d" % u}).header("X-Pod") == seen[u]
    t.stop()
    t2.stop()


if __name__ == "__main__":
    h.main(globals())
