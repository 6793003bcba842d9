# SPDX-License-Identifier: MIT
"""retry_on timeout with per_try_timeout: an idempotent request without a body
whose pod has not started answering within per_try_timeout goes to another pod
(the hung pod's connection closed, a server timeout counted, the retry logged
and counted); a request with a body, a non-idempotent one, or one on a route
without the knob is never resent and gets 504 at the route's timeout; a
per_try_timeout not shorter than the route's timeout is a config error."""
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

import harness as h

CONF = """
workers {workers};
error_log stderr info;
access_log {access_log} json;
stats { listen 127.0.0.1:{stats_port}; }
upstream voice {
    balance round_robin;
    retries 2;
    retry_on connect-failure refused reset timeout;
    per_try_timeout 200ms;
    keepalive 8;
    {health}
    outlier { {outlier} }
    server pod-a {a};
    server pod-b {b};
    server pod-c {c};
}
server {
    listen 127.0.0.1:{port};
    route /tools/ { upstream voice; timeout 1500ms; per_try_timeout off; }
    route / { upstream voice; timeout 1500ms; }
}
"""

# Short intervals; a timeout long enough that a loaded machine does not fail
# the checks of healthy pods.
HEALTH = "health_check { interval 100ms; timeout 500ms; rise 2; fall 2; }"


def setup(health=HEALTH, outlier="consecutive_errors 3;", workers=2):
    pods = [h.Mockpod(n) for n in ("pod-a", "pod-b", "pod-c")]
    sp = h.free_port()
    t = h.Tether(CONF, a=pods[0].addr, b=pods[1].addr, c=pods[2].addr, stats_port=sp,
                 health=health, outlier=outlier, workers=workers)
    h.wait_port(sp)
    t.stats_port = sp
    return pods, t


def stats(t):
    return json.loads(h.get(t.stats_port, "/stats").body)


def client_requests(pod, method=None):
    return [r for r in pod.requests() if not r["path"].startswith("/health") and
            not r["path"].startswith("/control") and (method is None or r["method"] == method)]


def stop_all(t, pods):
    for p in pods:
        p.signal(signal.SIGCONT)
    h.stop_clean(t)
    for p in pods:
        p.stop()


def test_hung_pod_under_steady_get_traffic():
    """One of three pods hangs (SIGSTOP) under steady GET traffic: no client
    error; the retries are logged as timeouts and never go to the hung pod."""
    pods, t = setup()
    a, b, c = pods
    try:
        results, lock = [], threading.Lock()
        go = threading.Event()

        def client(k):
            for i in range(120):
                if i == 20:
                    go.set()
                r = h.get(t.port, "/x?k=%d&i=%d" % (k, i), timeout=10)
                with lock:
                    results.append(r.status)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
        for th in threads:
            th.start()
        assert go.wait(30), "traffic did not start"
        b.signal(signal.SIGSTOP)
        for th in threads:
            th.join(120)
        assert not any(th.is_alive() for th in threads)
        assert results.count(200) == len(results) == 360, sorted(set(results))
        h.wait_until(lambda: any(l["retried_on"] == "timeout" for l in t.access()),
                     what="a timeout retry in the access log")
        lines = [l for l in t.access() if l["retried_on"] == "timeout"]
        assert all(l["status"] == 200 and l["server"] != "pod-b" and l["retries"] >= 1
                   for l in lines), lines[:5]
        s = stats(t)
        assert s["counters"]["retry_timeouts"] >= 1, s["counters"]
        srv = {x["name"]: x for u in s["upstreams"] for r in u["regions"] for x in r["servers"]}
        # Counted as server timeouts: passive or active checks took it out.
        assert srv["pod-b"]["timeouts"] >= 1, srv["pod-b"]
        assert srv["pod-b"]["health"] == "down" or srv["pod-b"]["ejected_left_ms"] > 0, srv["pod-b"]
    finally:
        stop_all(t, pods)


def test_body_nonidempotent_and_unknobbed_not_resent():
    """POST and PUT with a body and GET on a route with per_try_timeout off wait
    for the hung pod and get 504; a GET on the knobbed route is resent."""
    pods, t = setup(health="", outlier="enabled off;", workers=1)
    a, b, c = pods
    try:
        b.signal(signal.SIGSTOP)
        send = {
            "POST": lambda i: h.request(t.port, "POST", "/p%d" % i, body=b"abc"),
            "PUT": lambda i: h.request(t.port, "PUT", "/q%d" % i, body=b"abc"),
            "GET /tools/": lambda i: h.get(t.port, "/tools/t%d" % i),
        }
        got = {}
        # Round robin over three pods: one of three requests lands on the hung
        # pod; each kind goes on until it did (bounded).
        for k, f in send.items():
            got[k] = []
            for i in range(6):
                got[k].append(f(i).status)
                if got[k][-1] != 200:
                    break
            assert got[k][-1] == 504 and set(got[k]) == {200, 504}, (k, got)
        got["GET /"] = [h.get(t.port, "/g%d" % i).status for i in range(6)]
        assert got["GET /"] == [200] * 6, got
        # Nothing with a body, nor the /tools/ GET, reached a second pod.
        posts = client_requests(a, "POST") + client_requests(c, "POST")
        puts = client_requests(a, "PUT") + client_requests(c, "PUT")
        tools = [r for r in client_requests(a) + client_requests(c)
                 if r["path"].startswith("/tools/")]
        assert len(posts) == got["POST"].count(200), (posts, got)
        assert len(puts) == got["PUT"].count(200), (puts, got)
        assert len(tools) == got["GET /tools/"].count(200), (tools, got)
        h.wait_until(lambda: any(l["retried_on"] == "timeout" for l in t.access()),
                     what="the GET / resent")
        h.wait_until(lambda: len([l for l in t.access() if l["status"] == 504]) ==
                     sum(v.count(504) for v in got.values()), what="504s logged")
        for l in t.access():
            if l["status"] == 504:
                assert l["retries"] == 0 and l["term"] == "server_timeout", l
                assert l["duration_ms"] >= 1000, l  # the route's timeout, not 200ms
    finally:
        stop_all(t, pods)


def test_without_knob_hung_pod_gives_504():
    """No per_try_timeout: a GET to the hung pod waits for the route's timeout
    and gets 504, as before."""
    pods, t = setup(health="", outlier="enabled off;", workers=1)
    try:
        t.stop()
        conf = CONF.replace("per_try_timeout 200ms;", "").replace("per_try_timeout off;", "")
        t = h.Tether(conf, a=pods[0].addr, b=pods[1].addr, c=pods[2].addr,
                     stats_port=t.stats_port, health="", outlier="enabled off;", workers=1)
        pods[1].signal(signal.SIGSTOP)
        statuses = []
        for i in range(6):
            statuses.append(h.get(t.port, "/n%d" % i).status)
            if statuses[-1] != 200:
                break
        assert statuses[-1] == 504 and set(statuses) == {200, 504}, statuses
        h.wait_until(lambda: any(l["status"] == 504 for l in t.access()), what="504 logged")
        assert all(l["retries"] == 0 for l in t.access()), t.access()
    finally:
        stop_all(t, pods)


def check(conf):
    d = tempfile.mkdtemp(prefix="tether-pertry-")
    path = os.path.join(d, "t.conf")
    with open(path, "w") as f:
        f.write(conf)
    p = subprocess.run([h.TETHER, "-t", "-c", path], capture_output=True, text=True, timeout=20)
    return p, path


def test_per_try_timeout_must_be_shorter():
    base = """upstream voice {
    retry_on timeout;
    %s
    server pod-a 127.0.0.1:1;
}
server {
    listen 127.0.0.1:1;
    route / { upstream voice; timeout 2s; %s }
}
"""
    p, _ = check(base % ("per_try_timeout 500ms;", ""))
    assert p.returncode == 0, p.stderr
    # The route's own value, at its own position.
    p, path = check(base % ("", "per_try_timeout 2s;"))
    assert p.returncode == 1, p
    assert re.search(re.escape(path) + r":8:\d+: per_try_timeout 2000ms must be shorter",
                     p.stderr), p.stderr
    # Inherited from the upstream: reported where the upstream sets it.
    p, path = check(base % ("per_try_timeout 3s;", ""))
    assert p.returncode == 1 and (path + ":3:5:") in p.stderr, p.stderr
    # A route may turn the upstream's off.
    p, _ = check(base % ("per_try_timeout 3s;", "per_try_timeout off;"))
    assert p.returncode == 0, p.stderr
    # Without retry_on timeout it would do nothing: refused.
    p, path = check(base.replace("retry_on timeout;", "") % ("per_try_timeout 1s;", ""))
    assert p.returncode == 1 and "retry_on timeout" in p.stderr, p.stderr


if __name__ == "__main__":
    h.main(globals())
