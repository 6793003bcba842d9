# SPDX-License-Identifier: MIT
"""Failover: region shares (70/30), a region down, the DR tier, spill-over,
panic threshold, slow start, pods killed under load (retries, passive ejection,
health), pinned sessions under a flapping health endpoint, the retry budget and
the max_ejected cap. Shares are counted over real new sessions."""
import collections
import http.client
import re
import threading
import time
from datetime import datetime, timezone

import harness as h

# DESIGN section 4 regions. {extra} adds upstream directives per test.
REGIONS = """
workers 2;
error_log stderr info;
access_log {access_log} json;
upstream voice {
    region eu-west weight=70 priority=0;
    region me-central weight=30 priority=0;
    {dr_region}
    server pod-a {a} region=eu-west;
    server pod-b {b} region=eu-west;
    server pod-c {c} region=me-central;
    {dr_server}
    retries 2;
    health_check { path /health; interval 150ms; timeout 1s; rise 2; fall 2; }
    {extra}
}
affinity { cookie VOICE_AFFINITY; }
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity cookie; }
    route / { upstream voice; affinity cookie; }
}
"""
EU, ME, DR = ("pod-a", "pod-b"), ("pod-c",), ("pod-d",)


def low_port():
    """A free port below the kernel's ephemeral range: a pod killed and started
    again on it cannot find it taken by an outgoing connection (or by a TCP
    self-connect of someone trying to reach the dead port)."""
    for _ in range(200):
        port = h.random.randint(20000, 32000)
        s = h.socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port")


def stop(t):
    """Stop tether; it must exit 0 without sanitizer reports (leaks included)."""
    rc = t.stop()
    err = t.stderr()
    assert rc == 0 and "Sanitizer" not in err and "runtime error" not in err, (rc, err[-3000:])


def start(dr=True, extra="", pods=None):
    pods = pods or {n: h.Mockpod(n) for n in ("pod-a", "pod-b", "pod-c", "pod-d")}
    kw = dict(a=pods["pod-a"].addr, b=pods["pod-b"].addr, c=pods["pod-c"].addr, extra=extra,
              dr_region="region us-west weight=100 priority=1;" if dr else "",
              dr_server="server pod-d %s region=us-west;" % pods["pod-d"].addr if dr else "")
    return h.Tether(REGIONS, **kw), pods


def log_lines(t, pattern):
    return [l for l in t.stderr().splitlines() if re.search(pattern, l)]


def log_time(line):
    """Wall-clock seconds of an error-log line ("2026-11-22T10:58:37.159Z ...")."""
    ts = line.split(" ", 1)[0]
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def down(t, *names):
    return all(log_lines(t, "voice/%s is DOWN" % n) for n in names)


def new_sessions(port, n, threads=4, path="/session"):
    """<n> new sessions (no cookie) over <threads> keep-alive connections."""
    counts = collections.Counter()
    lock = threading.Lock()

    def run(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * h.SLOW)
        local = collections.Counter()
        for _ in range(k):
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            local[r.getheader("X-Pod") if r.status == 200 else r.status] += 1
        c.close()
        with lock:
            counts.update(local)

    ts = [threading.Thread(target=run, args=(n // threads + (i < n % threads),))
          for i in range(threads)]
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    return counts


def share(c, names):
    return sum(c[n] for n in names) / float(sum(c.values()))


def until_share(t, names, want, n=200, what="share"):
    """Wait (bounded) until the plan gives <names> the share <want> (+-0.05)."""
    return h.wait_until(lambda: abs(share(new_sessions(t.port, n), names) - want) < 0.05,
                        timeout=5, what=what)


def test_split_70_30_over_10000_sessions():
    t, pods = start()
    c = new_sessions(t.port, 10000)
    assert sum(c.values()) == 10000 and set(c) <= {"pod-a", "pod-b", "pod-c"}, c
    assert abs(share(c, EU) - 0.70) <= 0.03, c
    assert abs(share(c, ME) - 0.30) <= 0.03, c
    assert abs(c["pod-a"] - c["pod-b"]) <= 0.03 * 10000, c
    stop(t)


def test_one_region_down_all_to_the_other():
    t, pods = start(dr=False)
    for n in EU:
        pods[n].control("/control/health/fail")
    h.wait_until(lambda: down(t, *EU), what="eu-west down")
    until_share(t, ME, 1.0, what="all to me-central")
    assert new_sessions(t.port, 500) == {"pod-c": 500}
    for n in EU:
        pods[n].control("/control/health/ok")
    until_share(t, EU, 0.70, what="eu-west back")
    stop(t)


def test_spill_over_and_dr_tier():
    # The Envoy model, asked for with overprovisioning 1.4 (the default is
    # strict tiers: tests/integration/test_sessions_capacity.py).
    t, pods = start(extra="overprovisioning 1.4;")
    # One of two eu-west pods down: eu availability min(1, 1.4 * 0.5) = 0.7,
    # tier 0 carries 0.7 * 70 + 30 = 79 %, eu-west 49 %, me-central 30 %, the
    # DR tier the 21 % tier 0 cannot carry (doc/failover.md, example 2).
    pods["pod-a"].control("/control/health/fail")
    h.wait_until(lambda: down(t, "pod-a"), what="pod-a down")
    until_share(t, DR, 0.21, n=400, what="21 % spilled to DR")
    c = new_sessions(t.port, 2000)
    assert abs(share(c, EU) - 0.49) < 0.03 and abs(share(c, ME) - 0.30) < 0.03, c
    assert abs(share(c, DR) - 0.21) < 0.03 and c["pod-a"] == 0, c
    # Both tier-0 regions down: the DR tier takes every new session.
    for n in ("pod-b", "pod-c"):
        pods[n].control("/control/health/fail")
    h.wait_until(lambda: down(t, "pod-b", "pod-c"), what="tier 0 down")
    until_share(t, DR, 1.0, what="all to DR")
    assert new_sessions(t.port, 500) == {"pod-d": 500}
    stop(t)


def test_panic_threshold():
    # panic_threshold 0 (the default): nothing healthy means 503 at once, and
    # no request reaches a pod known to be down.
    t, pods = start(dr=False)
    for n in EU + ME:
        pods[n].control("/control/health/fail")
    h.wait_until(lambda: down(t, *(EU + ME)), what="all down")
    sessions = lambda: sum(1 for n in EU + ME for r in pods[n].requests() if r["path"] == "/session")
    before = sessions()
    assert new_sessions(t.port, 50, threads=1) == {503: 50}
    assert sessions() == before
    stop(t)
    # panic_threshold 50 %: with 2 of 3 servers up (67 %) only they serve; with
    # 1 of 3 (33 %) the tier panics and every server gets its share again
    # (health ignored: the checks may be what is wrong); with none, too.
    for n in EU + ME:
        pods[n].control("/control/health/ok")
    t, pods = start(dr=False, extra="panic_threshold 50%;", pods=pods)
    pods["pod-a"].control("/control/health/fail")
    h.wait_until(lambda: down(t, "pod-a"), what="pod-a down")
    until_share(t, ("pod-a",), 0.0, what="pod-a out")
    pods["pod-b"].control("/control/health/fail")
    h.wait_until(lambda: down(t, "pod-b"), what="pod-b down")
    until_share(t, EU, 0.70, what="panic: eu-west back in")
    c = new_sessions(t.port, 1000)
    assert abs(share(c, ("pod-a",)) - 0.35) < 0.04 and abs(share(c, ME) - 0.30) < 0.04, c
    pods["pod-c"].control("/control/health/fail")
    h.wait_until(lambda: down(t, "pod-c"), what="pod-c down")
    c = new_sessions(t.port, 1000)
    assert abs(share(c, EU) - 0.70) < 0.04 and sum(c.values()) == c["pod-a"] + c["pod-b"] + \
        c["pod-c"], c
    stop(t)


def test_recovery_ramps_with_slow_start():
    t, pods = start(dr=False, extra="slow_start 3s;")
    for n in EU:
        pods[n].control("/control/health/fail")
    h.wait_until(lambda: down(t, *EU), what="eu-west down")
    until_share(t, ME, 1.0, what="all to me-central")
    records = []
    stop_ev = threading.Event()

    def load():
        c = http.client.HTTPConnection("127.0.0.1", t.port, timeout=10 * h.SLOW)
        while not stop_ev.is_set():
            c.request("GET", "/session")
            r = c.getresponse()
            r.read()
            records.append((time.time(), r.getheader("X-Pod")))
        c.close()

    ts = [threading.Thread(target=load) for _ in range(2)]
    for x in ts:
        x.start()
    t_ok = time.time()
    for n in EU:
        pods[n].control("/control/health/ok")
    h.wait_until(lambda: len(log_lines(t, "voice/pod-[ab] is UP")) == 2, what="eu-west up")
    t_up = max(log_time(l) for l in log_lines(t, "voice/pod-[ab] is UP"))
    time.sleep(3.2)
    stop_ev.set()
    for x in ts:
        x.join()
    first = min(ts_ for ts_, pod in records if pod in EU)
    # eu-west share per 0.5 s window after the last pod came up: slow start
    # ramps it from a few % to 70 % (min(1, 1.4 f), f = time / 3 s).
    windows = []
    for k in range(6):
        w = [pod for ts_, pod in records if t_up + 0.5 * k <= ts_ < t_up + 0.5 * (k + 1)]
        windows.append(share(collections.Counter(w), EU) if w else None)
    print("recovery: first eu-west session %.0f ms after /health ok; eu-west share per "
          "0.5 s window after up: %s" % ((first - t_ok) * 1000,
                                         ["%.2f" % x for x in windows if x is not None]))
    assert None not in windows, windows
    assert windows[0] < 0.45, windows
    assert windows[0] < windows[2] < windows[5], windows
    assert abs(windows[5] - 0.70) < 0.06, windows
    stop(t)


class Load:
    """Client threads sending GETs and small POSTs (tagged X-Test-Id) on
    keep-alive connections until stopped; every answer and error recorded."""

    def __init__(self, port, threads=4):
        self.port = port
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.records = []  # (start time, method, tag, status or exception name, pod)
        self.ts = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for x in self.ts:
            x.start()

    def run(self, i):
        c = None
        n = 0
        while not self.stop_ev.is_set():
            n += 1
            method = "POST" if n % 2 else "GET"
            tag = "%d-%d" % (i, n)
            if c is None:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * h.SLOW)
            t0 = time.time()
            try:
                if method == "POST":
                    c.request("POST", "/upload", body=b"x" * 64, headers={"X-Test-Id": tag})
                else:
                    c.request("GET", "/x?id=" + tag, headers={"X-Test-Id": tag})
                r = c.getresponse()
                r.read()
                rec = (t0, method, tag, r.status, r.getheader("X-Pod"))
                if r.will_close:
                    c.close()
                    c = None
            except Exception as e:  # a client-visible error
                rec = (t0, method, tag, type(e).__name__, None)
                c.close()
                c = None
            with self.lock:
                self.records.append(rec)
        if c:
            c.close()

    def stop(self):
        self.stop_ev.set()
        for x in self.ts:
            x.join()
        return self.records


def test_pods_killed_under_load_no_client_errors():
    pods = {n: h.Mockpod(n, port=low_port()) for n in ("pod-a", "pod-b", "pod-c", "pod-d")}
    t, _ = start(pods=pods, extra="outlier { consecutive_errors 3; base_ejection 1s; }")
    load = Load(t.port)
    time.sleep(0.8)
    dead = {}
    for name in ("pod-a", "pod-c"):
        t_kill = time.time()
        pods[name].kill()  # SIGKILL, then wait: its sockets are closed on return
        dead[name] = (t_kill, time.time(), pods[name].requests)
        time.sleep(0.8)
    # pod-a comes back on its port.
    port_a = pods["pod-a"].port
    t_back = time.time()
    pods["pod-a"] = h.Mockpod("pod-a", port=port_a)
    time.sleep(1.0)
    recs = load.stop()
    errors = [r for r in recs if r[3] != 200]
    # POSTs are not retried once they reached a pod: an error is allowed only
    # for a POST the killed pod had received (it is in its request log), or
    # that was on its way when the pod died (sent before it was gone, unread).
    reached = set()
    for name, (_, _, reqs) in dead.items():
        for r in reqs():
            reached.update(v for k, v in r["headers"] if k.lower() == "x-test-id")

    def in_flight(r):
        return any(k - 1.0 < r[0] < gone for k, gone, _ in dead.values())

    bad = [r for r in errors if r[1] == "GET" or (r[2] not in reached and not in_flight(r))]
    if bad:
        print("kills at", [(n, "%.4f %.4f" % v[:2]) for n, v in dead.items()])
        for a in t.access():
            if a["status"] != 200:
                print(a["time"], a["method"], a["server"], a["status"], a["term"], a["retries"], a["connect_ms"])
    assert not bad, (len(recs), bad[:10], t.stderr())
    assert len(recs) > 500, len(recs)
    # Figures for the closing note (not asserted: timing belongs in bench/).
    for name, (t_kill, _, _) in dead.items():
        d = log_lines(t, "voice/%s is DOWN" % name)
        e = log_lines(t, "server voice/%s ejected" % name)
        last = max([r[0] for r in recs if r[4] == name and r[0] < t_back] or [t_kill])
        print("%s killed: last request answered by it started %+.0f ms, ejected (passive) "
              "%+.0f ms, health DOWN %+.0f ms" %
              (name, (last - t_kill) * 1000, (log_time(e[0]) - t_kill) * 1000 if e else -1,
               (log_time(d[0]) - t_kill) * 1000 if d else -1))
    back = [r[0] for r in recs if r[4] == "pod-a" and r[0] > t_back]
    print("pod-a restarted: first answer from it after %.0f ms; %d requests, %d errors "
          "(POSTs that had reached a killed pod)" %
          (((min(back) - t_back) * 1000) if back else -1, len(recs), len(errors)))
    assert back, "pod-a never served again"
    stop(t)


def test_flapping_health_does_not_move_pinned_sessions_back():
    pods = {n: h.Mockpod(n) for n in ("pod-a", "pod-b", "pod-c", "pod-d")}
    t, _ = start(dr=False, pods=pods)
    # 30 sessions pinned by cookie, spread over the three pods.
    clients = []
    for _ in range(30):
        r = h.get(t.port, "/session")
        cookie = r.header("Set-Cookie").split(";")[0]
        clients.append({"cookie": cookie, "pods": [r.header("X-Pod")]})
    assert {c["pods"][0] for c in clients} == {"pod-a", "pod-b", "pod-c"}
    # pod-a's /health alternates fail/ok every 400 ms: with fall 2 / rise 2 at
    # 150 ms it goes down and up again and again.
    pods["pod-a"].control("/control/health/flap?period=400")
    deadline = time.time() + 3.0
    while time.time() < deadline:
        conn = None  # a connection per round: a round is far below keepalive_requests
        for c in clients:
            r = h.get(t.port, "/sdp", headers={"Cookie": c["cookie"]}, conn=conn)
            conn = r.conn
            assert r.status == 200, r
            c["pods"].append(r.header("X-Pod"))
            sc = r.header("Set-Cookie")
            if sc:
                c["cookie"] = sc.split(";")[0]
        conn.close()
    pods["pod-a"].control("/control/health/ok")
    flaps = len(log_lines(t, "voice/pod-a is DOWN"))
    assert flaps >= 2, t.stderr()
    moved = 0
    for c in clients:
        seq = [p for i, p in enumerate(c["pods"]) if i == 0 or p != c["pods"][i - 1]]
        # At most one move, away from pod-a, and never back.
        assert len(seq) <= 2, seq
        if len(seq) == 2:
            assert seq[0] == "pod-a" and seq[1] != "pod-a", seq
            moved += 1
        if c["pods"][0] != "pod-a":
            assert len(seq) == 1, seq
    assert moved > 0
    stop(t)


BUDGET = """
workers 1;
access_log {access_log} json;
upstream voice {
    server live {live};
    server dead 127.0.0.1:{dead_port};
    retries 1;
    retry_budget {budget};
    outlier { enabled off; }
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def test_retry_budget_stops_retry_storm():
    live = h.Mockpod("live")
    dead_port = low_port()  # nothing listens: every try there is refused
    results = {}
    for budget in ("100%", "20%"):
        t = h.Tether(BUDGET, live=live.addr, dead_port=dead_port, budget=budget)
        # 40 clients, answers taking 200 ms: about 40 requests in flight, and
        # every other first try (round robin) refused by the dead server.
        results[budget] = new_sessions(t.port, 200, threads=40, path="/x?delay=200")
        h.wait_until(lambda: len(t.access()) >= 200, what="access log")
        results[budget + " retried"] = sum(1 for r in t.access() if r["retries"])
        stop(t)
    # A budget of 100 % lets every refused request be retried: no error. At
    # 20 % at most a fifth of the requests in flight may be retries (8 of 40):
    # the storm is cut off and the rest is answered 502 at once.
    print("retry budget:", dict((k, dict(v) if isinstance(v, collections.Counter) else v) for k, v in results.items()))
    assert results["100%"] == {"live": 200}, results
    assert results["100% retried"] >= 90, results
    c = results["20%"]
    assert c[502] >= 40 and c["live"] + c[502] == 200, results
    assert results["20% retried"] < results["100% retried"], results


EJECT = """
workers 2;
error_log stderr info;
upstream voice {
    server a {a};
    server b {b};
    server c {c};
    server d {d};
    retries 0;
    outlier { consecutive_errors 2; base_ejection 300ms; max_ejection 10s; max_ejected 50%; }
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def test_max_ejected_cap_and_growing_ejection():
    pods = [h.Mockpod(n) for n in "abcd"]
    t = h.Tether(EJECT, **{n: p.addr for n, p in zip("abcd", pods)})
    # Every pod answers 503: all four would be ejected without the cap.
    deadline = time.time() + 1.5
    while time.time() < deadline:
        new_sessions(t.port, 40, threads=2, path="/x?status=503")
    spans = []
    for l in log_lines(t, "outlier: server voice/. ejected for"):
        m = re.search(r"voice/(.) ejected for (\d+)ms", l)
        spans.append((log_time(l), log_time(l) + int(m.group(2)) / 1000.0, m.group(1),
                      int(m.group(2))))
    assert len(spans) >= 4, t.stderr()
    # Never more than 2 of 4 (50 %) ejected at once (log times are taken just
    # after the ejection: a little slack).
    for s in spans:
        at_once = [x for x in spans if x[0] <= s[0] + 0.001 and x[1] > s[0] + 0.05]
        assert len(at_once) <= 2, (s, spans)
    # A server ejected again soon after is ejected for longer (300, 600, ...).
    by = collections.defaultdict(list)
    for s in spans:
        by[s[2]].append(s[3])
    assert any(len(v) >= 2 and v[1] == 2 * v[0] for v in by.values()), by
    assert log_lines(t, "re-admitted after ejection")
    stop(t)


if __name__ == "__main__":
    h.main(globals())
