# SPDX-License-Identifier: MIT
"""A passing active health check ends a passive ejection (Envoy's default):
a pod ejected by passive checks and restarted gets traffic back on its first
passing check, long before base_ejection; with uneject_on_health_pass off it
stays out for the period."""
import re

import harness as h

CONF = """
workers 1;
error_log stderr info;
upstream voice {
    balance round_robin;
    retries 2;
    retry_on connect-failure refused reset;
    health_check { interval 100ms; timeout 1s; rise 1; fall 100; }
    outlier { consecutive_errors 3; base_ejection 30s; max_ejected 50%; {knob} }
    server pod-a {a};
    server pod-b {b};
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def events(t):
    """The outlier/health log lines about pod-a, in order."""
    return [l for l in t.stderr().splitlines()
            if "voice/pod-a" in l and re.search(r"outlier|health: server", l)]


def client_requests(pod):
    return [r for r in pod.requests() if r["path"].startswith("/x")]


def eject_and_restart(knob):
    a, b = h.Mockpod("pod-a"), h.Mockpod("pod-b")
    t = h.Tether(CONF, a=a.addr, b=b.addr, knob=knob)
    port = a.port
    a.stop()
    # Refused connects are retried on pod-b (the client sees 200) and count as
    # passive failures of pod-a until it is ejected.
    for i in range(40):
        assert h.get(t.port, "/x%d" % i).status == 200
        if any("ejected" in l for l in events(t)):
            break
    assert any("ejected for 30000ms" in l for l in events(t)), t.stderr()[-2000:]
    a = h.Mockpod("pod-a", port=port)  # the pod restarts on its address
    return t, a, b


def test_passing_check_ends_ejection():
    t, a, b = eject_and_restart("")
    h.wait_until(lambda: any("re-admitted: an active health check passed" in l
                             for l in events(t)), timeout=10, what="un-ejection")
    ev = events(t)
    ej = next(i for i, l in enumerate(ev) if "ejected for" in l)
    re_adm = next(i for i, l in enumerate(ev) if "re-admitted" in l)
    assert ej < re_adm, ev
    # Traffic returns to pod-a (once the plan is rebuilt, right after).
    n = [0]

    def back():
        n[0] += 1
        assert h.get(t.port, "/x-after%d" % n[0]).status == 200
        return client_requests(a)

    h.wait_until(back, timeout=5, step=0.05, what="traffic back on pod-a")
    h.stop_clean(t)
    a.stop()
    b.stop()


def test_knob_off_keeps_ejection():
    t, a, b = eject_and_restart("uneject_on_health_pass off;")
    # Five passing checks of the restarted pod, then traffic: still out.
    h.wait_until(lambda: len([r for r in a.requests() if r["path"] == "/health"]) >= 5,
                 timeout=10, what="checks of the restarted pod")
    for i in range(10):
        assert h.get(t.port, "/x-after%d" % i).status == 200
    assert not client_requests(a), client_requests(a)
    assert not any("re-admitted" in l for l in events(t)), events(t)
    h.stop_clean(t)
    a.stop()
    b.stop()


if __name__ == "__main__":
    h.main(globals())
