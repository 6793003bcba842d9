# SPDX-License-Identifier: MIT
"""A server that appears with a reload starts unchecked when its upstream has
a health check: no client request reaches it before its first passing check,
which then brings it up at once; servers present before keep their state."""
import re

import harness as h

CONF = """
workers 2;
error_log stderr info;
upstream voice {
    balance round_robin;
    health_check { interval {interval}; timeout 1s; rise 2; fall 3; }
    outlier { enabled off; }
    server pod-a {a};
    server pod-b {b};
    {extra}
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def client_requests(pod):
    return [r for r in pod.requests() if r["path"].startswith("/x")]


def lines(t, pattern):
    return [l for l in t.stderr().splitlines() if re.search(pattern, l)]


def test_reload_adds_failing_pod_without_traffic():
    a, b = h.Mockpod("pod-a"), h.Mockpod("pod-b")
    c = h.Mockpod("pod-c", args=["--health-fail"])  # /health answers 503
    # A long interval: an up-at-once server would take traffic for seconds.
    t = h.Tether(CONF, a=a.addr, b=b.addr, interval="2s", extra="")
    t.kw["extra"] = "server pod-c %s;" % c.addr
    t.reload(CONF)
    h.wait_until(lambda: lines(t, "configuration reloaded"), what="reload")
    for i in range(30):
        r = h.get(t.port, "/x%d" % i)
        assert r.status == 200 and r.header("X-Pod") in ("pod-a", "pod-b"), (r, r.headers)
    assert not client_requests(c), client_requests(c)
    # Its checks fail: it stays out, and the old servers kept their state
    # (no transition logged for them).
    h.wait_until(lambda: len([r for r in c.requests() if r["path"] == "/health"]) >= 1,
                 timeout=10, what="first check of pod-c")
    for i in range(10):
        assert h.get(t.port, "/y%d" % i).header("X-Pod") in ("pod-a", "pod-b")
    assert not lines(t, r"voice/pod-[ab] is (UP|DOWN)"), t.stderr()
    h.stop_clean(t)
    for p in (a, b, c):
        p.stop()


def test_new_pod_up_on_first_passing_check():
    a, b, c = h.Mockpod("pod-a"), h.Mockpod("pod-b"), h.Mockpod("pod-c")
    t = h.Tether(CONF, a=a.addr, b=b.addr, interval="300ms", extra="")
    t.kw["extra"] = "server pod-c %s;" % c.addr
    t.reload(CONF)
    h.wait_until(lambda: lines(t, "voice/pod-c is UP"), timeout=10, what="pod-c up")
    # One passing check was enough (rise 2 is for servers that were down).
    assert "after 1 passed check " in lines(t, "voice/pod-c is UP")[0], t.stderr()
    checks = [r for r in c.requests() if r["path"] == "/health"]
    assert len(checks) >= 1
    h.wait_until(lambda: h.get(t.port, "/x").header("X-Pod") == "pod-c", timeout=5,
                 what="traffic on pod-c")
    h.stop_clean(t)
    for p in (a, b, c):
        p.stop()


if __name__ == "__main__":
    h.main(globals())
