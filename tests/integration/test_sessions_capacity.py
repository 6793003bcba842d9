# SPDX-License-Identifier: MIT
"""Session-aware capacity with real mock pods that report their sessions in
their health answers (--report-sessions): least_sessions fills a region evenly,
a full region spills to the next tier, everything full sheds new sessions with
Retry-After while pinned requests pass, a draining or degraded report, malformed
and huge reports ignored, the admin max_sessions override, and the strict tier
default (the DR tier only when the primary tier has no healthy server)."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import harness as h

CONF = """
workers 2;
error_log stderr info;
admin { listen unix:{admin_sock}; }
stats { listen 127.0.0.1:{stats_port}; }
affinity { header X-Voice-Session-Id; learn header=X-Voice-Session-Id; ttl 900s; }
upstream voice {
    balance least_sessions;
    region a weight=100 priority=0;
    region b weight=100 priority=1;
    {servers}
    health_check { path /health; interval 40ms; timeout 1s; rise 1; fall 2; report json; }
    {extra}
}
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
    route /tools/ { upstream voice; affinity header; }
    route / { upstream voice; }
}
"""


def ctl(t, *args):
    p = subprocess.run([h.TETHERCTL, "-s", t.admin_sock] + list(args), capture_output=True,
                       text=True, timeout=30 * h.SLOW)
    assert p.returncode == 0 and not p.stderr, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def servers(t):
    return {s["server"]: s for s in json.loads(ctl(t, "show", "servers", "json"))["servers"]}


def start(a=3, b=2, cap=5, extra="", pod_args=(), weight=1):
    """<a> pods in region a (tier 0), <b> in region b (tier 1), each reporting
    max_sessions <cap>. Returns (tether, pods by name)."""
    names = ["a%d" % i for i in range(1, a + 1)] + ["b%d" % i for i in range(1, b + 1)]
    args = ("--report-sessions",) + (("--max-sessions", str(cap)) if cap else ()) + pod_args
    pods = {n: h.Mockpod(n, args=args) for n in names}
    lines = "\n    ".join("server %s %s region=%s weight=%d;" % (n, p.addr, n[0], weight)
                           for n, p in pods.items())
    t = h.Tether(CONF, servers=lines, extra=extra, stats_port=h.free_port())
    h.wait_admin(t.admin_sock)
    h.wait_until(lambda: all(s["reports_ok"] > 0 for s in servers(t).values()),
                 what="first reports")
    return t, pods


def fresh_reports(t):
    """Wait until every server has answered a check sent after this call (two
    more reports), so the figures tether uses are the pods' own."""
    base = {n: s["reports_ok"] for n, s in servers(t).items()}
    h.wait_until(lambda: all(s["reports_ok"] >= base[n] + 2 for n, s in servers(t).items()),
                 what="fresh reports")


def new_session(t):
    r = h.get(t.port, "/session")
    return r.status, r.header("X-Pod"), r.header("X-Voice-Session-Id"), r


def stop(t, pods):
    h.stop_clean(t)
    for p in pods.values():
        p.stop()


def test_fill_evenly_spill_to_next_tier_then_shed():
    t, pods = start()
    placed = {n: 0 for n in pods}
    first = None
    for i in range(15):
        st, pod, sid, _ = new_session(t)
        assert st == 200 and pod in ("a1", "a2", "a3"), (i, st, pod)
        placed[pod] += 1
        first = first or (pod, sid)
        counts = [placed[n] for n in ("a1", "a2", "a3")]
        assert max(counts) - min(counts) <= 1, (i, placed)
        fresh_reports(t)
    assert [placed[n] for n in ("a1", "a2", "a3")] == [5, 5, 5], placed
    # The 16th finds tier 0 full: the next tier takes it.
    st, pod, _, _ = new_session(t)
    assert st == 200 and pod in ("b1", "b2"), (st, pod)
    placed[pod] += 1
    for _ in range(9):
        fresh_reports(t)
        st, pod, _, _ = new_session(t)
        assert st == 200 and pod in ("b1", "b2"), (st, pod, placed)
        placed[pod] += 1
    assert placed == {"a1": 5, "a2": 5, "a3": 5, "b1": 5, "b2": 5}, placed
    fresh_reports(t)
    # Everything full: a new session is shed, a pinned session's tools call passes.
    st, pod, _, r = new_session(t)
    assert st == 503 and r.header("Retry-After") == "1", (st, pod, r.headers)
    tools = h.get(t.port, "/tools/lookup", headers={"X-Voice-Session-Id": first[1]})
    assert tools.status == 200 and tools.header("X-Pod") == first[0], tools
    other = h.get(t.port, "/api/status")
    assert other.status == 200, other
    m = h.get(t.kw["stats_port"], "/metrics").body
    assert 'tether_server_sessions{upstream="voice",server="a1",region="a"} 5' in m, m
    assert 'tether_server_session_capacity{upstream="voice",server="b2",region="b"} 5' in m
    assert 'tether_region_sessions{upstream="voice",region="a"} 15' in m
    assert 'tether_sessions_shed_total{upstream="voice"} 1' in m
    assert 'tether_sessions_spilled_total{upstream="voice",from_region="a",to_region="b"}' in m
    show = ctl(t, "show", "servers")
    assert "voice/a1" in show and " 5 5" in show, show
    # A session ends on a1: its next report makes room there and only there.
    pods["a1"].control("/control/sessions/end")
    fresh_reports(t)
    st, pod, _, _ = new_session(t)
    assert (st, pod) == (200, "a1"), (st, pod)
    stop(t, pods)


def test_shed_status_429_and_admin_max_sessions():
    t, pods = start(a=2, b=0, cap=2, extra="shed_status 429 retry_after=7;")
    for _ in range(4):
        st, pod, _, _ = new_session(t)
        assert st == 200, st
        fresh_reports(t)
    st, _, _, r = new_session(t)
    assert st == 429 and r.header("Retry-After") == "7", (st, r.headers)
    # The operator raises a2's capacity above what the pod reports.
    out = ctl(t, "set", "server", "voice/a2", "max_sessions", "3")
    assert "max_sessions 3 (was 2" in out, out
    st, pod, _, _ = new_session(t)
    assert (st, pod) == (200, "a2"), (st, pod)
    assert servers(t)["a2"]["capacity"] == 3
    ctl(t, "set", "server", "voice/a2", "max_sessions", "default")
    assert servers(t)["a2"]["capacity"] == 2
    # The override is kept across a reload.
    ctl(t, "set", "server", "voice/a1", "max_sessions", "10")
    t.reload()
    h.wait_until(lambda: "generation 2" in ctl(t, "show", "info") or
                 "generation: 2" in ctl(t, "show", "info"), what="reload")
    assert servers(t)["a1"]["capacity"] == 10
    stop(t, pods)


def test_draining_report_and_degraded_weight():
    t, pods = start(a=2, b=0, cap=0, weight=10)
    st, pod, sid, _ = new_session(t)
    assert st == 200
    other = "a2" if pod == "a1" else "a1"
    pods[pod].control("/control/health/draining")
    h.wait_until(lambda: servers(t)[pod]["state"] == "drain", what="pod-driven drain")
    for _ in range(6):
        st, p2, _, _ = new_session(t)
        assert (st, p2) == (200, other), (st, p2)
    # Its pinned session keeps going to it.
    r = h.get(t.port, "/tools/x", headers={"X-Voice-Session-Id": sid})
    assert r.status == 200 and r.header("X-Pod") == pod, r
    pods[pod].control("/control/health/ok")
    h.wait_until(lambda: servers(t)[pod]["state"] == "ready", what="back to ready")
    # An operator's drain is not undone by a healthy report.
    ctl(t, "set", "server", "voice/%s" % pod, "state", "drain")
    fresh_reports(t)
    assert servers(t)[pod]["state"] == "drain"
    ctl(t, "set", "server", "voice/%s" % pod, "state", "ready")
    # degraded: weight x degraded_weight (50 %), and back.
    assert servers(t)[other]["weight"] == 10
    pods[other].control("/control/health/degraded")
    h.wait_until(lambda: servers(t)[other]["weight"] == 5, what="degraded")
    pods[other].control("/control/health/ok")
    h.wait_until(lambda: servers(t)[other]["weight"] == 10, what="no longer degraded")
    stop(t, pods)


def test_report_overtaking_a_placement_does_not_free_its_slot():
    """A pod of 1 session answers its new session only after 800 ms, while its
    health checks (every 40 ms) keep reporting 0 active: the placement in
    flight stays counted on top of those reports, so the pod counts as full and
    the next new session spills to region b instead of overfilling a1."""
    import threading
    t, pods = start(a=1, b=1, cap=1)
    first = {}
    before = servers(t)["a1"]["reports_ok"]
    th = threading.Thread(target=lambda: first.update(r=h.get(t.port, "/session?delay=800")))
    th.start()
    # Reports that do not include the session yet land while it is in flight.
    h.wait_until(lambda: servers(t)["a1"]["reports_ok"] >= before + 3, timeout=5,
                 what="reports during the placement")
    assert "r" not in first, "the pod answered before the reports: delay too short"
    assert servers(t)["a1"]["reported_sessions"] == 0
    assert servers(t)["a1"]["sessions"] >= 1
    st, pod, _, _ = new_session(t)
    th.join(10)
    assert first["r"].status == 200 and first["r"].header("X-Pod") == "a1", first
    assert (st, pod) == (200, "b1"), (st, pod)
    assert json.loads(pods["a1"].control("/health").body)["active_sessions"] == 1
    stop(t, pods)


def test_malformed_and_huge_reports_ignored():
    t, pods = start(a=2, b=0, cap=3)
    for mode in ("bad", "huge"):
        pods["a1"].control("/control/report/" + mode)
        before = servers(t)["a1"]["reports_bad"]
        h.wait_until(lambda: servers(t)["a1"]["reports_bad"] >= before + 2, what=mode)
        s = servers(t)["a1"]
        # Not a check failure, and the last figures stay.
        assert s["health"] == "up" and s["capacity"] == 3, s
    assert "no usable load report" in t.stderr()
    pods["a1"].control("/control/report/ok")
    st, _, _, _ = new_session(t)
    assert st == 200
    stop(t, pods)


OWN = """
workers 2;
admin { listen unix:{admin_sock}; }
affinity { header X-Voice-Session-Id; learn header=X-Voice-Session-Id; ttl 900s; }
upstream voice {
    balance least_sessions;
    max_sessions 2;
    server p1 {p1};
    server p2 {p2};
}
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
    route / { upstream voice; affinity header; }
}
"""


def test_own_count_without_reports():
    """Pods that do not report: tether counts the learned sessions alive in its
    table (recounted every second) plus those placed since."""
    pods = {n: h.Mockpod(n) for n in ("p1", "p2")}
    t = h.Tether(OWN, p1=pods["p1"].addr, p2=pods["p2"].addr)
    h.wait_admin(t.admin_sock)
    # Sessions the pods refuse (5xx) are not counted.
    for _ in range(4):
        assert h.get(t.port, "/session?status=500").status == 500
    got = [new_session(t) for _ in range(4)]
    assert sorted(g[1] for g in got) == ["p1", "p1", "p2", "p2"], got
    assert new_session(t)[0] == 503
    time.sleep(1.5)  # past a recount: the learned sessions still count
    assert new_session(t)[0] == 503
    assert {n: s["sessions"] for n, s in servers(t).items()} == {"p1": 2, "p2": 2}
    # A live session's requests pass.
    r = h.get(t.port, "/tools/x", headers={"X-Voice-Session-Id": got[0][2]})
    assert r.status == 200 and r.header("X-Pod") == got[0][1], r
    stop(t, pods)


REPLICAS = """
workers 2;
error_log stderr info;
admin { listen unix:{admin_sock}; }
redis { server 127.0.0.1:{redis_port}; prefix "{prefix}"; timeout 500ms; }
affinity { header X-Voice-Session-Id; learn header=X-Voice-Session-Id; ttl 900s; }
upstream voice {
    balance least_sessions;
    {servers}
    health_check { path /health; interval 10s; timeout 1s; report json; }
}
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
}
"""


def test_two_replicas_share_placements_through_redis():
    """4 pods of 5 sessions, reports only every 10 s: two replicas placing 20
    sessions alternately leave every pod with exactly 5, because each counts the
    other's placements (Redis) on top of the pods' last reports."""
    redis = h.Redis()
    pods = {n: h.Mockpod(n, args=("--report-sessions", "--max-sessions", "5"))
            for n in ("p1", "p2", "p3", "p4")}
    lines = "\n    ".join("server %s %s;" % (n, p.addr) for n, p in pods.items())
    prefix = "cap%d:" % os.getpid()
    ts = [h.Tether(REPLICAS, servers=lines, redis_port=redis.port, prefix=prefix)
          for _ in range(2)]
    for t in ts:
        h.wait_admin(t.admin_sock)
        h.wait_until(lambda: "admin replication through" in t.stderr(), timeout=10,
                     what="redis up")
        h.wait_until(lambda: all(s["reports_ok"] > 0 for s in servers(t).values()),
                     timeout=15, what="first reports")
    for i in range(20):
        t, other = ts[i % 2], ts[(i + 1) % 2]
        st, pod, _, _ = new_session(t)
        assert st == 200, (i, st)
        # Through Redis (the control tick, every 100 ms), not the next report.
        h.wait_until(lambda: sum(s["sessions"] for s in servers(other).values()) >= i + 1,
                     timeout=2.5, what="the other replica counts session %d" % (i + 1))
    own = {n: json.loads(p.control("/health").body)["active_sessions"] for n, p in pods.items()}
    assert own == {"p1": 5, "p2": 5, "p3": 5, "p4": 5}, own
    # Both replicas now see every pod full: the other replica's last placement
    # arrives through Redis (eventual, the control tick), so wait for each
    # replica to count every pod at 5 or more (a sum could hide a pod at 4
    # behind another counted twice), then it must refuse the 21st session.
    for t in ts:
        h.wait_until(lambda: all(s["sessions"] >= 5 for s in servers(t).values()), timeout=5,
                     what="every pod counted full")
    for k, t in enumerate(ts):
        st = new_session(t)
        assert st[0] == 503, (k, st[:2], {n: s["sessions"] for n, s in servers(t).items()})
    # The admin max_sessions override is replicated like the others.
    ctl(ts[0], "set", "server", "voice/p3", "max_sessions", "6")
    h.wait_until(lambda: servers(ts[1])["p3"]["capacity"] == 6, what="override replicated")
    assert new_session(ts[1])[:2] == (200, "p3")
    h.stop_clean(*ts)
    for p in pods.values():
        p.stop()
    redis.stop()


HASHED = """
workers 2;
affinity { header X-Voice-Session-Id; ttl 900s; }
upstream voice {
    server p1 {p1};
    server p2 {p2};
    server p3 {p3};
    hash_balance_factor {factor};
}
server { listen 127.0.0.1:{port}; route / { upstream voice; affinity header; } }
"""


def test_hash_balance_factor_bounds_load_and_replicas_agree():
    """30 new session ids over 3 pods with bounded-load hashing at 110 %: no pod
    takes more than ceil(30 x 1.1 / 3) = 11; two replicas that see the same ids
    place them the same way; a placed id stays where it went."""
    pods = {n: h.Mockpod(n) for n in ("p1", "p2", "p3")}
    addrs = {n: p.addr for n, p in pods.items()}
    # The factor as a percentage or as HAProxy writes it.
    ts = [h.Tether(HASHED, factor="110%", **addrs), h.Tether(HASHED, factor="110", **addrs)]
    ids = ["call-%d-%s" % (i, "x" * (i % 7)) for i in range(30)]
    where = []
    for t in ts:
        got = []
        for sid in ids:
            r = h.get(t.port, "/tools/q", headers={"X-Voice-Session-Id": sid})
            assert r.status == 200, r
            got.append(r.header("X-Pod"))
        where.append(got)
    assert where[0] == where[1], where
    load = {n: where[0].count(n) for n in pods}
    assert max(load.values()) <= 11 and sum(load.values()) == 30, load
    # Pinned: the same ids go to the same pods again.
    again = [h.get(ts[0].port, "/x", headers={"X-Voice-Session-Id": sid}).header("X-Pod")
             for sid in ids]
    assert again == where[0], (again, where[0])
    h.stop_clean(*ts)
    for p in pods.values():
        p.stop()


FAILOVER = """
workers 1;
admin { listen unix:{admin_sock}; }
upstream voice {
    region eu-west weight=70 priority=0;
    region me-central weight=30 priority=0;
    region dr weight=100 priority=1;
    server pod-a {a} region=eu-west;
    server pod-b {b} region=eu-west;
    server pod-c {c} region=me-central;
    server pod-d {d} region=dr;
    health_check { path /health; interval 40ms; timeout 1s; rise 1; fall 1; }
}
server { listen 127.0.0.1:{port}; route / { upstream voice; affinity cookie; } }
"""


def counts(t, n):
    c = {}
    for _ in range(n):
        r = h.get(t.port, "/session")
        k = r.header("X-Pod") if r.status == 200 else r.status
        c[k] = c.get(k, 0) + 1
    return c


def test_strict_tiers_default():
    pods = {n: h.Mockpod(n) for n in ("pod-a", "pod-b", "pod-c", "pod-d")}
    t = h.Tether(FAILOVER, a=pods["pod-a"].addr, b=pods["pod-b"].addr, c=pods["pod-c"].addr,
                 d=pods["pod-d"].addr)
    h.wait_admin(t.admin_sock)
    # One eu-west pod of two down: the DR tier stays untouched.
    pods["pod-a"].control("/control/health/fail")
    h.wait_until(lambda: servers(t)["pod-a"]["health"] == "down", what="pod-a down")
    c = counts(t, 200)
    assert set(c) <= {"pod-b", "pod-c"} and "pod-d" not in c, c
    # eu-west down entirely: every new session to me-central.
    pods["pod-b"].control("/control/health/fail")
    h.wait_until(lambda: servers(t)["pod-b"]["health"] == "down", what="pod-b down")
    assert counts(t, 100) == {"pod-c": 100}
    # me-central down too: DR.
    pods["pod-c"].control("/control/health/fail")
    h.wait_until(lambda: servers(t)["pod-c"]["health"] == "down", what="pod-c down")
    assert counts(t, 100) == {"pod-d": 100}
    # eu-west back: the DR tier gets nothing new.
    pods["pod-a"].control("/control/health/ok")
    h.wait_until(lambda: servers(t)["pod-a"]["health"] == "up", what="pod-a up")
    h.wait_until(lambda: counts(t, 20) == {"pod-a": 20}, what="back to tier 0")
    stop(t, pods)


def test_autoscaling_kit_uses_exported_metrics():
    """contrib/autoscaling: the HPA scales on the adapter's metric at 40 sessions
    per pod; the adapter's series are metrics tether exports; its queries are
    valid PromQL (promtool)."""
    try:
        import yaml
    except ImportError:
        print("skip: python3-yaml not installed")
        return
    d = os.path.join(h.SRCDIR, "contrib", "autoscaling")
    rules = yaml.safe_load(open(os.path.join(d, "prometheus-adapter-rules.yaml")))["rules"]
    hpa = yaml.safe_load(open(os.path.join(d, "hpa.yaml")))
    names = {r["name"]["as"]: r for r in rules["external"]}
    m = hpa["spec"]["metrics"][0]["external"]
    assert m["metric"]["name"] in names and m["target"] == {"type": "AverageValue",
                                                           "averageValue": "40"}, m
    t, pods = start(a=1, b=1, cap=50)
    text = h.get(t.kw["stats_port"], "/metrics").body
    exported = set(l.split("{")[0] for l in text.splitlines() if l and not l.startswith("#"))
    queries = []
    for r in rules["external"]:
        series = r["seriesQuery"].split("{")[0]
        assert series in exported, series
        queries.append(r["metricsQuery"].replace("<<.Series>>", series)
                       .replace("<<.LabelMatchers>>", 'upstream="voice"'))
    stop(t, pods)
    if not shutil.which("promtool"):
        print("skip: promtool not installed")
        return
    tmp = tempfile.mkdtemp(prefix="tether-hpa-")
    path = os.path.join(tmp, "rules.yml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": [{"name": "hpa", "rules": [
            {"record": "tether:check_%d" % i, "expr": q} for i, q in enumerate(queries)]}]}, f)
    p = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True,
                       timeout=60)
    shutil.rmtree(tmp, ignore_errors=True)
    assert p.returncode == 0, p.stdout + p.stderr


if __name__ == "__main__":
    h.main(globals())
