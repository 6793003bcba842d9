# SPDX-License-Identifier: MIT
"""Retries on pod answers: retry_on 502/503/504 retries idempotent requests on
another pod before the client sees anything; non-idempotent ones are not."""
import harness as h

CONF = """
workers 1;
access_log {access_log} json;
upstream voice {
    balance round_robin;
    retries 1;
    retry_on connect-failure refused reset 503;
    outlier { enabled off; }
    server pod-a {a};
    server pod-b {b};
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def test_503_retried_for_get_not_for_post():
    a, b = h.Mockpod("pod-a"), h.Mockpod("pod-b")
    t = h.Tether(CONF, a=a.addr, b=b.addr)
    # ?status=503 makes both pods answer 503: a retry happens, then the 503
    # of the second pod reaches the client.
    r = h.get(t.port, "/x?status=503")
    assert r.status == 503
    seen = len(a.requests()) + len(b.requests())
    assert seen == 2, seen
    # a POST is not retried
    r = h.request(t.port, "POST", "/x?status=503", body=b"abc")
    assert r.status == 503
    assert len(a.requests()) + len(b.requests()) == 3
    # 502 is not in retry_on: not retried
    r = h.get(t.port, "/x?status=502")
    assert r.status == 502 and len(a.requests()) + len(b.requests()) == 4
    h.wait_until(lambda: any(l["retries"] == 1 and l["status"] == 503 for l in t.access()),
                 what="retry in the access log")
    t.stop()


def test_503_on_one_pod_is_hidden():
    a, b = h.Mockpod("pod-a"), h.Mockpod("pod-b")
    t = h.Tether(CONF, a=a.addr, b=b.addr)
    a.control("/control/health/fail")  # irrelevant for routing: no health checks here
    # pod-a answers 503 on /health; round robin alternates: every /health
    # request that lands on pod-a is retried on pod-b and the client sees 200.
    statuses = [h.get(t.port, "/health").status for _ in range(10)]
    assert statuses == [200] * 10, statuses
    assert any(r["path"] == "/health" for r in a.requests())
    t.stop()


if __name__ == "__main__":
    h.main(globals())
