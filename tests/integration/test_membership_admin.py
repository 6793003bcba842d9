# SPDX-License-Identifier: MIT
"""Servers added and removed at runtime through the admin socket: a new server
waits for its first passing health check, a deleted one leaves (no new
sessions, its cookie-pinned sessions stay until it fails health or
leave_timeout), "del ... now" cuts at once, and added servers outlive a
reload. Measured by where requests go (X-Pod) and by show servers."""
import json
import os
import subprocess

import harness as h

CONF = """
workers 2;
admin { listen unix:{admin_sock}; }
upstream voice {
    balance round_robin;
    region eu weight=100;
    server pod-a {a} region=eu;
    leave_timeout {leave};
    health_check { path /health; interval 100ms; timeout 1s; rise 1; fall 1; }
}
server {
    listen 127.0.0.1:{port};
    route = /sdp { upstream voice; affinity cookie; }
    route / { upstream voice; }
}
"""


def ctl(t, *args):
    p = subprocess.run([h.TETHERCTL, "-s", t.admin_sock] + list(args), capture_output=True,
                       text=True, timeout=30 * h.SLOW)
    return p.returncode, p.stdout, p.stderr


def ok(t, *args):
    rc, out, err = ctl(t, *args)
    assert rc == 0 and not err, (args, rc, out, err)
    return out


def servers(t):
    out = ok(t, "show", "servers", "json")
    return {s["server"]: s for s in json.loads(out)["servers"]}


count = h.count_pods


def start(leave="15m"):
    a = h.Mockpod("pod-a")
    t = h.Tether(CONF, a=a.addr, leave=leave)
    h.wait_admin(t.admin_sock)
    return t, a


def pinned_cookie(port, pod):
    for _ in range(100):
        r = h.get(port, "/sdp")
        if r.header("X-Pod") == pod:
            return r.header("Set-Cookie").split(";")[0]
    raise AssertionError("no answer from " + pod)


def add_b(t, b):
    out = ok(t, "add", "server", "voice/pod-b", b.addr, "weight=1", "region=eu")
    assert "voice/pod-b added at" in out, out
    h.wait_until(lambda: servers(t)["pod-b"]["health"] == "up", what="pod-b checked up")


def test_added_server_waits_for_its_check_then_takes_sessions():
    t, a = start()
    b = h.Mockpod("pod-b")
    b.control("/control/health/fail")
    ok(t, "add", "server", "voice/pod-b", b.addr)
    s = servers(t)["pod-b"]
    assert s["source"] == "admin" and s["health"] == "down" and s["state"] == "ready", s
    # Unchecked: no traffic at all.
    assert count(t.port, 40) == {"pod-a": 40}
    b.control("/control/health/ok")
    h.wait_until(lambda: servers(t)["pod-b"]["health"] == "up", what="pod-b up")
    # (the balancer plan follows a passing check within ~100 ms)
    h.wait_until(lambda: set(count(t.port, 40)) == {"pod-a", "pod-b"}, what="pod-b serves")
    assert servers(t)["pod-a"]["source"] == "config"
    text = ok(t, "show", "servers")
    assert "voice/pod-b %s eu ready up" % b.addr in text, text
    h.stop_clean(t)


def test_deleted_server_leaves_keeps_pinned_then_goes_when_down():
    t, a = start()
    b = h.Mockpod("pod-b")
    add_b(t, b)
    cookie = pinned_cookie(t.port, "pod-b")
    out = ok(t, "del", "server", "voice/pod-b")
    assert "leaving" in out, out
    s = servers(t)["pod-b"]
    assert s["state"] == "leaving", s
    assert "voice/pod-b %s eu leaving" % b.addr in ok(t, "show", "servers")
    # No new session lands there; its pinned session still does.
    assert count(t.port, 40) == {"pod-a": 40}
    assert count(t.port, 20, "/sdp") == {"pod-a": 20}
    assert count(t.port, 20, "/sdp", headers={"Cookie": cookie}) == {"pod-b": 20}
    # It fails its health check: removed, the session moves.
    b.control("/control/health/fail")
    h.wait_until(lambda: "pod-b" not in servers(t), what="pod-b removed")
    assert count(t.port, 10, "/sdp", headers={"Cookie": cookie}) == {"pod-a": 10}
    assert "leaving server voice/pod-b removed (it failed its health check)" in t.stderr()
    h.stop_clean(t)


def test_leaving_server_that_comes_back_is_ready_again():
    t, a = start()
    b = h.Mockpod("pod-b")
    add_b(t, b)
    ok(t, "set", "server", "voice/pod-b", "weight", "3")
    ok(t, "del", "server", "voice/pod-b")
    assert servers(t)["pod-b"]["state"] == "leaving"
    ok(t, "add", "server", "voice/pod-b", b.addr, "region=eu")
    s = servers(t)["pod-b"]
    # Its runtime state is intact: still up (no new check needed), override kept.
    assert s["state"] == "ready" and s["health"] == "up" and s["weight"] == 3, s
    assert count(t.port, 40)["pod-b"] == 30
    h.stop_clean(t)


def test_leave_timeout_ends_the_drain():
    t, a = start(leave="500ms")
    b = h.Mockpod("pod-b")
    add_b(t, b)
    ok(t, "del", "server", "voice/pod-b")
    h.wait_until(lambda: "pod-b" not in servers(t), timeout=10, what="pod-b removed")
    assert "leaving server voice/pod-b removed (leave_timeout)" in t.stderr()
    h.stop_clean(t)


def test_del_now_cuts_at_once_and_configured_servers_can_leave():
    t, a = start()
    b = h.Mockpod("pod-b")
    add_b(t, b)
    cookie = pinned_cookie(t.port, "pod-b")
    ok(t, "del", "server", "voice/pod-b", "now")
    assert "pod-b" not in servers(t)
    assert count(t.port, 10, "/sdp", headers={"Cookie": cookie}) == {"pod-a": 10}
    # A configured server leaves too, and comes back with add.
    add_b(t, b)
    ok(t, "del", "server", "voice/pod-a")
    assert servers(t)["pod-a"]["state"] == "leaving"
    assert count(t.port, 20) == {"pod-b": 20}
    ok(t, "add", "server", "voice/pod-a", a.addr)
    assert servers(t)["pod-a"]["state"] == "ready"
    h.stop_clean(t)


def test_bad_add_and_del_are_refused_and_change_nothing():
    t, a = start()
    b = h.Mockpod("pod-b")
    for args, msg in [
        (("add", "server", "voice/pod-a", b.addr), "is a configured server"),
        (("add", "server", "nope/pod-b", b.addr), "no upstream \"nope\""),
        (("add", "server", "voice/pod-b", b.addr, "region=mars"), "has no region \"mars\""),
        (("add", "server", "voice/pod-b", "not an address"), "invalid address"),
        (("add", "server", "voice/pod-b", b.addr, "weight=0"), "invalid weight"),
        (("add", "server", "voice/p/b", b.addr), "expected UPSTREAM/SERVER"),
        (("add", "server", "voice/pod-b", b.addr, "colour=red"), "unexpected"),
        (("del", "server", "voice/pod-z"), "no server \"pod-z\""),
        (("del", "server", "voice/pod-a", "later"), "unexpected"),
    ]:
        rc, out, err = ctl(t, *args)
        assert rc != 0 and msg in out + err, (args, rc, out, err)
    assert list(servers(t)) == ["pod-a"]
    h.stop_clean(t)


def test_added_server_survives_a_reload():
    t, a = start()
    b = h.Mockpod("pod-b")
    add_b(t, b)
    t.reload()
    h.wait_until(lambda: "generation 2" in ok(t, "show", "info").replace(": ", " "),
                 what="reloaded")
    s = servers(t)["pod-b"]
    assert s["source"] == "admin" and s["health"] == "up", s
    assert set(count(t.port, 20)) == {"pod-a", "pod-b"}
    h.stop_clean(t)


REDIS_CONF = """
workers 1;
admin { listen unix:{admin_sock}; }
redis { server 127.0.0.1:{redis_port}; prefix "{prefix}"; timeout 200ms; }
upstream voice {
    balance round_robin;
    server pod-a {a};
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def replica(a, redis, prefix):
    t = h.Tether(REDIS_CONF, a=a.addr, redis_port=redis.port, prefix=prefix)
    h.wait_admin(t.admin_sock)
    h.wait_until(lambda: "admin replication through 127.0.0.1:%d up" % redis.port in t.stderr(),
                 what="replication up")
    return t


def test_admin_add_and_del_reach_every_replica_and_outlive_reload_and_restart():
    a, b = h.Mockpod("pod-a"), h.Mockpod("pod-b")
    redis = h.Redis()
    prefix = "m%d:" % os.getpid()
    t1, t2 = replica(a, redis, prefix), replica(a, redis, prefix)
    ok(t1, "add", "server", "voice/pod-b", b.addr, "weight=2")
    h.wait_until(lambda: "pod-b" in servers(t2), what="pod-b on the other replica")
    s = servers(t2)["pod-b"]
    assert s["source"] == "admin" and s["weight"] == 2 and s["address"] == b.addr, s
    assert count(t2.port, 30) == {"pod-a": 10, "pod-b": 20}
    # A reload keeps it; a replica started now gets it from Redis.
    t2.reload()
    h.wait_until(lambda: "configuration reloaded" in t2.stderr(), what="reloaded")
    assert "pod-b" in servers(t2)
    t3 = replica(a, redis, prefix)
    h.wait_until(lambda: "pod-b" in servers(t3), what="pod-b on a new replica")
    # A delete reaches the others too.
    ok(t2, "del", "server", "voice/pod-b", "now")
    h.wait_until(lambda: "pod-b" not in servers(t1) and "pod-b" not in servers(t3),
                 what="pod-b gone everywhere")
    h.stop_clean(t1, t2, t3)
    redis.stop()


if __name__ == "__main__":
    h.main(globals(), tmp_prefix="test_membership_admin-")
