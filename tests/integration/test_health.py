# SPDX-License-Identifier: MIT
"""Active health checks: down after `fall` failed checks and up after `rise`
passed ones, expected status range and body, Host/User-Agent/port of the check,
initial state, each transition logged once and counted, kept-alive check
connections, and state kept across reloads."""
import collections
import re

import harness as h

CONF = """
workers 2;
error_log stderr info;
upstream voice {
    server a {a};
    server b {b};
    health_check { path {path}; interval {interval}; timeout 1s; rise {rise}; fall {fall}; {extra} }
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def tether(a, b, conf=CONF, **kw):
    kw.setdefault("path", "/health")
    kw.setdefault("interval", "200ms")
    kw.setdefault("rise", 2)
    kw.setdefault("fall", 3)
    kw.setdefault("extra", "")
    return h.Tether(conf, a=a.addr, b=b.addr, **kw)


def stop(t):
    """Stop tether; it must exit 0 without sanitizer reports (leaks included)."""
    rc = t.stop()
    err = t.stderr()
    assert rc == 0 and "Sanitizer" not in err and "runtime error" not in err, (rc, err[-3000:])


def lines(t, pattern):
    return [l for l in t.stderr().splitlines() if re.search(pattern, l)]


def transitions(t, server):
    """(state, transition number) of every logged transition of <server>."""
    out = []
    for l in lines(t, r"health: server voice/%s is (UP|DOWN)" % server):
        m = re.search(r"is (UP|DOWN) .*transition (\d+)$", l)
        out.append((m.group(1), int(m.group(2))))
    return out


def checks_after(pod, marker):
    """/health requests the pod answered after its request <marker> (a control
    request), in order: the pod has one thread, so its log is answer order."""
    reqs = pod.requests()
    idx = max(i for i, r in enumerate(reqs) if r["path"] == marker)
    return [r for r in reqs[idx + 1:] if r["path"].startswith("/health")]


def served_by(t, n=20):
    c = collections.Counter()
    for _ in range(n):
        r = h.get(t.port, "/x")
        c[r.header("X-Pod") if r.status == 200 else r.status] += 1
    return c


def test_down_after_fall_up_after_rise():
    a, b = h.Mockpod("a"), h.Mockpod("b")
    t = tether(a, b)
    h.wait_until(lambda: len(a.requests()) >= 2, what="first checks")
    a.control("/control/health/fail")
    h.wait_until(lambda: transitions(t, "a"), step=0.01, what="a down")
    n = len(checks_after(a, "/control/health/fail"))
    # Marked down by the third failed check (the log is polled, so one more
    # check may have run before we looked), not before.
    assert 3 <= n <= 4, n
    assert transitions(t, "a") == [("DOWN", 1)], t.stderr()
    assert "status 503, expected 200-399" in lines(t, "voice/a is DOWN")[0]
    assert served_by(t) == {"b": 20}
    a.control("/control/health/ok")
    h.wait_until(lambda: len(transitions(t, "a")) == 2, step=0.01, what="a up")
    n = len(checks_after(a, "/control/health/ok"))
    assert 2 <= n <= 3, n
    assert transitions(t, "a") == [("DOWN", 1), ("UP", 2)]
    h.wait_until(lambda: "a" in served_by(t, 4), what="a serving again")
    assert transitions(t, "b") == []
    stop(t)


def test_transition_logged_once_per_change():
    a, b = h.Mockpod("a"), h.Mockpod("b")
    t = tether(a, b, interval="100ms", rise=1, fall=1)
    for _ in range(3):
        a.control("/control/health/fail")
        h.wait_until(lambda: len(checks_after(a, "/control/health/fail")) >= 6, what="fails")
        a.control("/control/health/ok")
        h.wait_until(lambda: len(checks_after(a, "/control/health/ok")) >= 6, what="oks")
    # Six checks in each state, but one log line (and one count) per change.
    assert transitions(t, "a") == [("DOWN", 1), ("UP", 2), ("DOWN", 3), ("UP", 4),
                                   ("DOWN", 5), ("UP", 6)], t.stderr()
    assert len(lines(t, "voice/a is")) == 6
    stop(t)


def test_expect_status_range():
    a, b = h.Mockpod("a"), h.Mockpod("b")
    # /health?status=418 answers 418: down for 200-399 ...
    t = tether(a, b, path="/health?status=418", interval="100ms", rise=1, fall=1)
    h.wait_until(lambda: len(transitions(t, "a")) and len(transitions(t, "b")), what="both down")
    assert "status 418, expected 200-399" in lines(t, "voice/a is DOWN")[0]
    assert served_by(t, 3) == {503: 3}
    stop(t)
    # ... up for "expect 418" (and a real 200 is then a failure).
    t = tether(a, b, path="/health?status=418", interval="100ms", rise=1, fall=1,
               extra="expect 418;")
    b.control("/control/stats")
    h.wait_until(lambda: len(checks_after(b, "/control/stats")) >= 5, what="checks")
    assert transitions(t, "a") == [] and transitions(t, "b") == []
    assert set(served_by(t, 10)) == {"a", "b"}
    stop(t)
    t = tether(a, b, interval="100ms", rise=1, fall=1, extra="expect 418;")
    h.wait_until(lambda: len(transitions(t, "a")) and len(transitions(t, "b")), what="both down")
    assert "status 200, expected 418-418" in lines(t, "voice/b is DOWN")[0]
    stop(t)


def test_expect_body():
    a, b = h.Mockpod("a"), h.Mockpod("b")
    t = tether(a, b, interval="100ms", rise=1, fall=2, extra='expect_body "ok";')
    b.control("/control/stats")
    h.wait_until(lambda: len(checks_after(b, "/control/stats")) >= 4, what="checks")
    assert transitions(t, "a") == [] and transitions(t, "b") == []
    # "draining" answers 200 with another body: the status passes, the body not.
    a.control("/control/health/draining")
    h.wait_until(lambda: transitions(t, "a"), what="a down")
    assert 'status 200 but the body lacks "ok"' in lines(t, "voice/a is DOWN")[0], t.stderr()
    assert served_by(t, 10) == {"b": 10}
    a.control("/control/health/ok")
    h.wait_until(lambda: len(transitions(t, "a")) == 2, what="a up")
    stop(t)


def test_host_user_agent_and_port():
    a, b, side = h.Mockpod("a"), h.Mockpod("b"), h.Mockpod("side")
    t = tether(a, b, interval="100ms", extra="host health.example;")
    h.wait_until(lambda: len([r for r in a.requests() if r["path"] == "/health"]) >= 2,
                 what="checks")
    chk = [r for r in a.requests() if r["path"] == "/health"][0]
    hdrs = dict((k.lower(), v) for k, v in chk["headers"])
    assert hdrs["host"] == "health.example", chk
    assert hdrs["user-agent"] == "tether-health", chk
    assert chk["method"] == "GET" and chk["version"] == "HTTP/1.1"
    stop(t)
    # Without host: the server's address; with port: checks go to that port.
    t = tether(a, b, interval="100ms", extra="port %d;" % side.port)
    h.wait_until(lambda: len([r for r in side.requests() if r["path"] == "/health"]) >= 4,
                 what="checks on the side port")
    hosts = set(dict((k.lower(), v) for k, v in r["headers"])["host"]
                for r in side.requests() if r["path"] == "/health")
    assert hosts == {"127.0.0.1:%d" % side.port}, hosts
    # The side pod answers for both: failing it takes both servers down.
    side.control("/control/health/fail")
    h.wait_until(lambda: transitions(t, "a") and transitions(t, "b"), what="both down")
    assert served_by(t, 2) == {503: 2}
    stop(t)


def test_initial_down():
    a, b = h.Mockpod("a"), h.Mockpod("b")
    t = tether(a, b, interval="400ms", rise=2, extra="initial down;")
    # rise 2 at 400 ms: nothing can be up for the first 400 ms.
    r = h.get(t.port, "/x")
    assert r.status == 503, r
    h.wait_until(lambda: len(transitions(t, "a")) and len(transitions(t, "b")), what="up")
    assert transitions(t, "a") == [("UP", 1)] and transitions(t, "b") == [("UP", 1)]
    h.wait_until(lambda: set(served_by(t, 6)) == {"a", "b"}, what="both serving")
    stop(t)


def test_check_connection_kept_alive():
    a, b = h.Mockpod("a"), h.Mockpod("b")
    t = tether(a, b, interval="100ms")
    h.wait_until(lambda: len(a.requests()) >= 2, what="first checks")
    before = a.stats()["connections_accepted"]
    a.control("/control/health/ok")  # a marker; costs one connection
    h.wait_until(lambda: len(checks_after(a, "/control/health/ok")) >= 8, what="checks")
    after = a.stats()["connections_accepted"]
    # 8 checks, 2 control requests: the checks opened no new connection.
    assert after - before == 2, (before, after)
    stop(t)


def test_reload_keeps_state_and_does_not_flap():
    a, b = h.Mockpod("a"), h.Mockpod("b")
    t = tether(a, b, interval="100ms", rise=2, fall=2, extra="initial down;")
    h.wait_until(lambda: len(transitions(t, "a")) and len(transitions(t, "b")), what="up")
    a.control("/control/health/fail")
    h.wait_until(lambda: len(transitions(t, "a")) == 2, what="a down")
    # Reload with other settings (timeout): a stays down, b stays up, nobody
    # restarts from "initial down", and no transition is logged.
    t.reload(CONF.replace("timeout 1s", "timeout 900ms"))
    h.wait_until(lambda: lines(t, "configuration reloaded"), what="reload")
    mark = len(checks_after(a, "/control/health/fail"))
    h.wait_until(lambda: len(checks_after(a, "/control/health/fail")) >= mark + 5, what="checks")
    assert transitions(t, "a") == [("UP", 1), ("DOWN", 2)], t.stderr()
    assert transitions(t, "b") == [("UP", 1)], t.stderr()
    assert served_by(t, 10) == {"b": 10}
    # The counter carries on across the reload.
    a.control("/control/health/ok")
    h.wait_until(lambda: len(transitions(t, "a")) == 3, what="a up")
    assert transitions(t, "a")[-1] == ("UP", 3)
    # Removing health_check: a failing server is up again (nothing would ever
    # bring it back), logged once.
    a.control("/control/health/fail")
    h.wait_until(lambda: len(transitions(t, "a")) == 4, what="a down again")
    t.reload(CONF.replace("health_check", "#"))
    h.wait_until(lambda: len(transitions(t, "a")) == 5, what="a up without checks")
    assert "no health_check any more" in lines(t, "voice/a is UP")[-1]
    h.wait_until(lambda: "a" in served_by(t, 4), what="a serving again")
    stop(t)


if __name__ == "__main__":
    h.main(globals())
