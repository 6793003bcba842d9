# SPDX-License-Identifier: MIT
"""Replica-wide admin changes through a real redis-server: a change on one
tether is applied by the others (measured by where their requests go), stored
so a replica started later applies it too, and kept locally while Redis is
down, then published when it is back."""
import collections
import http.client
import json
import os
import re
import socket
import subprocess

import harness as h

CONF = """
workers 1;
admin { listen unix:{admin_sock}; }
redis { server 127.0.0.1:{redis_port}; prefix "{prefix}"; timeout 200ms; }
upstream voice {
    balance round_robin;
    server pod-a {a};
    server pod-b {b};
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


class Cluster:
    def __init__(self, n=2, redis=None):
        self.a, self.b = h.Mockpod("pod-a"), h.Mockpod("pod-b")
        self.redis = redis or h.Redis()
        self.prefix = "t%d:" % os.getpid()
        self.nodes = [self.start() for _ in range(n)]

    def start(self, wait_up=True):
        t = h.Tether(CONF, a=self.a.addr, b=self.b.addr, redis_port=self.redis.port,
                     prefix=self.prefix)
        h.wait_admin(t.admin_sock)
        if wait_up:
            wait_log(t, "admin replication through 127.0.0.1:%d up" % self.redis.port)
        return t



def wait_log(t, text, timeout=10):
    h.wait_until(lambda: text in t.stderr(), timeout=timeout, what=repr(text))


def ctl(t, *args):
    p = subprocess.run([h.TETHERCTL, "-s", t.admin_sock] + list(args), capture_output=True,
                       text=True, timeout=30 * h.SLOW)
    return p.returncode, p.stdout, p.stderr


def ok(t, *args):
    rc, out, err = ctl(t, *args)
    assert rc == 0 and not err, (args, rc, out, err)
    return out


def server(t, name):
    out = json.loads(ok(t, "show", "servers", "json"))
    return {s["server"]: s for s in out["servers"]}[name]


def count(port, n):
    c = collections.Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * h.SLOW)
    for _ in range(n):
        conn.request("GET", "/")
        r = conn.getresponse()
        r.read()
        c[r.getheader("X-Pod")] += 1
    conn.close()
    return c


def test_change_on_one_replica_is_applied_by_the_others():
    cl = Cluster(2)
    ta, tb = cl.nodes
    assert count(tb.port, 100) == {"pod-a": 50, "pod-b": 50}
    out = ok(ta, "set", "server", "voice/pod-b", "state", "drain")
    assert "warning" not in out, out
    h.wait_until(lambda: server(tb, "pod-b")["state"] == "drain", timeout=3, what="drain on B")
    assert count(tb.port, 100) == {"pod-a": 100}
    assert re.search(r"admin \(from replica [^)]+\): set server voice/pod-b state drain",
                     tb.stderr()), tb.stderr()
    ok(ta, "set", "server", "voice/pod-b", "state", "ready")
    ok(ta, "set", "server", "voice/pod-a", "weight", "3")
    h.wait_until(lambda: server(tb, "pod-a")["weight"] == 3, timeout=3, what="weight on B")
    assert server(tb, "pod-b")["state"] == "ready"
    c = count(tb.port, 200)
    assert abs(c["pod-a"] - 150) <= 10 and abs(c["pod-b"] - 50) <= 10, c
    # B applies without republishing, and A ignores its own messages.
    ok(tb, "show", "info")
    assert "from replica" not in ta.stderr(), ta.stderr()
    # The overrides are stored for replicas that start later.
    stored = cl.redis.cmd("HGETALL", cl.prefix + "admin:overrides")
    stored = dict(zip(stored[::2], stored[1::2]))
    assert stored == {
        "server voice/pod-b state": "set server voice/pod-b state ready",
        "server voice/pod-a weight": "set server voice/pod-a weight 3",
    }, stored
    # A replica started afterwards applies them at start.
    ok(ta, "set", "server", "voice/pod-b", "state", "maint")
    h.wait_until(lambda: server(tb, "pod-b")["state"] == "maint", timeout=3, what="maint on B")
    tc = cl.start()
    h.wait_until(lambda: server(tc, "pod-b")["state"] == "maint", timeout=3, what="maint on C")
    assert server(tc, "pod-a")["weight"] == 3
    assert count(tc.port, 100) == {"pod-a": 100}
    wait_log(tc, "stored admin overrides read from " + cl.prefix + "admin:overrides")
    for t in (ta, tb, tc):
        t.stop()
    cl.redis.stop()


def test_redis_down_changes_stay_local_then_replicate():
    cl = Cluster(2)
    ta, tb = cl.nodes
    port = cl.redis.port
    assert "redis: 127.0.0.1:%d up\n" % port in ok(ta, "show", "info")
    cl.redis.stop()
    wait_log(ta, "admin replication through 127.0.0.1:%d lost" % port)
    assert "redis: 127.0.0.1:%d down\n" % port in ok(ta, "show", "info")
    out = ok(ta, "set", "server", "voice/pod-b", "weight", "3")
    assert "voice/pod-b weight 3 (was 1; configured 1)" in out, out
    assert "warning: Redis is unreachable" in out, out
    # Applied here, not on the other replica.
    c = count(ta.port, 200)
    assert abs(c["pod-b"] - 150) <= 10, c
    assert server(tb, "pod-b")["weight"] == 1
    # Local changes go on working while Redis is away.
    ok(tb, "set", "server", "voice/pod-a", "state", "drain")
    assert count(tb.port, 50) == {"pod-b": 50}
    # Redis comes back (empty): the waiting changes are published and applied.
    cl.redis = h.Redis(port=port)
    for t in (ta, tb):
        wait_log(t, "admin replication through 127.0.0.1:%d restored" % port, timeout=15)
    h.wait_until(lambda: server(tb, "pod-b")["weight"] == 3, timeout=5, what="weight on B")
    h.wait_until(lambda: server(ta, "pod-a")["state"] == "drain", timeout=5, what="drain on A")
    assert count(ta.port, 50) == {"pod-b": 50}
    # And new changes replicate again.
    ok(tb, "set", "server", "voice/pod-a", "state", "ready")
    h.wait_until(lambda: server(ta, "pod-a")["state"] == "ready", timeout=3, what="ready on A")
    for t in (ta, tb):
        t.stop()
    cl.redis.stop()


def test_replica_starts_while_redis_is_down():
    r = h.Redis()
    port = r.port
    r.stop()
    cl = Cluster(0, redis=r)
    t = cl.start(wait_up=False)
    wait_log(t, "admin replication through 127.0.0.1:%d unavailable" % port)
    ok(t, "set", "server", "voice/pod-a", "weight", "2")
    assert count(t.port, 30) == {"pod-a": 20, "pod-b": 10}
    cl.redis = h.Redis(port=port)
    wait_log(t, "admin replication through 127.0.0.1:%d restored" % port, timeout=15)
    h.wait_until(lambda: cl.redis.cmd("HGET", cl.prefix + "admin:overrides",
                                      "server voice/pod-a weight") ==
                 "set server voice/pod-a weight 2", timeout=3, what="stored override")
    assert t.stderr().count("unavailable") == 1, t.stderr()  # logged once per outage
    t.stop()
    cl.redis.stop()


if __name__ == "__main__":
    h.main(globals())
