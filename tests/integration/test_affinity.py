# SPDX-License-Identifier: MIT
"""Session affinity without Redis: signed cookies, learned session ids (header,
JSON body, webhook path), consistent header hashing, redispatch when a pinned
pod dies, weighted spread of new sessions."""
import collections
import json
import os
import re
import signal
import tempfile
import threading
import time
import urllib.parse

import harness as h

CONF = """
workers 2;
access_log {access_log} json;
affinity {
    cookie VOICE_AFFINITY max_age={max_age} secret_file={secret};
    header X-Voice-Session-Id;
    learn {learn};
    path /webhook/{id}/;
    ttl 900s;
    {aff_extra}
}
upstream voice {
    balance round_robin;
    retries 2;
    {servers}
}
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
    route = /sdp { upstream voice; affinity cookie; }
    route /tools/ { upstream voice; affinity cookie; }
    route /webhook/ { upstream voice; affinity session; }
    route /hdr/ { upstream voice; affinity header; }
    route / { upstream voice; }
}
"""


def secret_file():
    d = tempfile.mkdtemp(prefix="tether-key-")
    p = os.path.join(d, "affinity.key")
    with open(p, "w") as f:
        f.write("0123456789abcdef0123456789abcdef\n")
    return p


def setup(n=3, weights=None, learn="header=X-Voice-Session-Id", max_age="900s", pod_args=(),
          secret=None, order=None, aff_extra=""):
    pods = [h.Mockpod("pod-%d" % i, args=pod_args) for i in range(n)]
    weights = weights or [1] * n
    idx = order or range(n)
    servers = "".join("server pod-%d %s weight=%d;\n    " % (i, pods[i].addr, weights[i]) for i in idx)
    return pods, tether(servers, secret or secret_file(), learn, max_age, aff_extra)


def tether(servers, secret, learn="header=X-Voice-Session-Id", max_age="900s", aff_extra=""):
    """tether with CONF over <servers> (the upstream's server lines)."""
    return h.Tether(CONF.replace("{id}", "@ID@").replace("{servers}", servers).replace("@ID@", "{id}"),
                    secret=secret, learn=learn, max_age=max_age, aff_extra=aff_extra)


def cookie_of(r):
    sc = r.header("Set-Cookie")
    return sc.split(";")[0] if sc else None


def test_1000_sessions_stay_on_their_pod():
    pods, t = setup(3)
    bad = []
    lock = threading.Lock()

    def worker(k):
        conn = None
        for _ in range(k):
            r = h.request(t.port, "POST", "/session", conn=conn)
            conn = r.conn
            sid, pod, cookie = r.json()["session_id"], r.header("X-Pod"), cookie_of(r)
            checks = [
                h.request(t.port, "POST", "/sdp", headers={"Cookie": cookie}, conn=conn),
                h.request(t.port, "POST", "/tools/x", headers={"Cookie": cookie}, conn=conn),
                h.request(t.port, "POST", "/webhook/%s/event" % sid, conn=conn),
                h.request(t.port, "GET", "/hdr/x", headers={"X-Voice-Session-Id": sid}, conn=conn),
            ]
            for c in checks:
                if c.status != 200 or c.header("X-Pod") != pod:
                    with lock:
                        bad.append((sid, pod, c.status, c.header("X-Pod")))
        conn.close()

    ths = [threading.Thread(target=worker, args=(250,)) for _ in range(4)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    assert bad == [], bad[:5]
    t.stop()


def test_cookie_is_opaque_and_well_formed():
    pods, t = setup(2)
    r = h.request(t.port, "POST", "/session")
    sc = r.header("Set-Cookie")
    name, _, rest = sc.partition("=")
    value = rest.split(";")[0]
    assert name == "VOICE_AFFINITY" and re.fullmatch(r"[A-Za-z0-9_-]{20,80}", value), sc
    attrs = [a.strip() for a in sc.split(";")[1:]]
    assert "Path=/" in attrs and "HttpOnly" in attrs and "Max-Age=900" in attrs, attrs
    assert "Secure" not in attrs  # plain-HTTP listen
    for p in pods:
        assert p.name not in sc and str(p.port) not in sc and "127.0.0.1" not in sc
    # tether's cookie is not forwarded to the pod; the client's others are.
    r2 = h.get(t.port, "/sdp" if False else "/tools/echo", headers={"Cookie": "a=1; %s; b=2" % sc.split(";")[0]})
    assert r2.status == 200
    r3 = h.request(t.port, "GET", "/echo", headers={"Cookie": "a=1; %s; b=2" % sc.split(";")[0]})
    got = {k.lower(): v for k, v in r3.json()["headers"]}
    assert got["cookie"] == "a=1; b=2", got
    t.stop()


def test_forged_and_expired_cookies_fall_back():
    pods, t = setup(3, max_age="1s")
    r = h.request(t.port, "POST", "/session")
    good = cookie_of(r)
    pod = r.header("X-Pod")
    name, value = good.split("=", 1)
    forged = name + "=" + value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    r = h.request(t.port, "POST", "/sdp", headers={"Cookie": forged})
    assert r.status == 200 and cookie_of(r) is not None  # a fresh valid cookie replaces it
    assert h.request(t.port, "POST", "/sdp", headers={"Cookie": "VOICE_AFFINITY=garbage"}).status == 200
    # valid cookie: pinned
    assert all(h.request(t.port, "POST", "/sdp", headers={"Cookie": good}).header("X-Pod") == pod
               for _ in range(6))
    time.sleep(2.2)  # max_age=1s: now expired
    seen = {h.request(t.port, "POST", "/sdp", headers={"Cookie": good}).header("X-Pod") for _ in range(6)}
    assert len(seen) > 1, seen  # no longer pinned: round robin
    h.wait_until(lambda: len([l for l in t.access() if l.get("route") == "=/sdp"]) >= 14,
                 what="access log")
    outcomes = collections.Counter(l["affinity"] for l in t.access() if l.get("route") == "=/sdp")
    assert outcomes["cookie"] == 6 and outcomes["new"] >= 8, outcomes
    t.stop()


def test_cookie_stable_across_reload_and_reordering():
    secret = secret_file()
    pods, t = setup(3, secret=secret)
    r = h.request(t.port, "POST", "/session")
    cookie, pod = cookie_of(r), r.header("X-Pod")
    t.stop()
    # a second tether, servers listed in another order, same secret: same pod
    servers = "".join("server pod-%d %s;\n    " % (i, pods[i].addr) for i in (2, 0, 1))
    t2 = tether(servers, secret)
    assert all(h.request(t2.port, "POST", "/sdp", headers={"Cookie": cookie}).header("X-Pod") == pod
               for _ in range(6))
    t2.reload()
    time.sleep(0.3)
    assert h.request(t2.port, "POST", "/sdp", headers={"Cookie": cookie}).header("X-Pod") == pod
    t2.stop()


def test_killed_pod_sessions_redispatch_and_stay():
    pods, t = setup(3)
    sessions = []
    for _ in range(30):
        r = h.request(t.port, "POST", "/session")
        sessions.append((r.json()["session_id"], r.header("X-Pod"), cookie_of(r)))
    victim = pods[1]
    victim.kill()
    moved = {}
    for sid, pod, cookie in sessions:
        r = h.request(t.port, "POST", "/sdp", headers={"Cookie": cookie})
        assert r.status == 200, r
        if pod == victim.name:
            assert r.header("X-Pod") != victim.name
            new_cookie = cookie_of(r)
            assert new_cookie and new_cookie != cookie  # re-issued for the new pod
            moved[sid] = (r.header("X-Pod"), new_cookie)
        else:
            assert r.header("X-Pod") == pod
    assert moved
    # and they stay on the new pod, by cookie and by the re-pinned session id
    for sid, (pod, cookie) in moved.items():
        for _ in range(3):
            assert h.request(t.port, "POST", "/sdp", headers={"Cookie": cookie}).header("X-Pod") == pod
        assert h.request(t.port, "POST", "/webhook/%s/e" % sid).header("X-Pod") == pod
    t.stop()


def test_moved_session_does_not_return_when_pod_comes_back():
    pods, t = setup(3)
    mine = None
    while not mine:
        r = h.request(t.port, "POST", "/session")
        if r.header("X-Pod") == "pod-1":
            mine = (r.json()["session_id"], cookie_of(r))
    sid, cookie = mine
    port = pods[1].port
    pods[1].kill()
    # Only cookie requests while the pod is away: the cookie carries the
    # session's key, so the learned table follows the move too.
    r = h.request(t.port, "POST", "/sdp", headers={"Cookie": cookie})
    new_pod, new_cookie = r.header("X-Pod"), cookie_of(r)
    assert r.status == 200 and new_pod != "pod-1", r
    pods[1] = h.Mockpod("pod-1", port=port)
    for _ in range(3):
        assert h.request(t.port, "POST", "/webhook/%s/e" % sid).header("X-Pod") == new_pod
        assert h.request(t.port, "POST", "/sdp", headers={"Cookie": new_cookie}).header("X-Pod") == new_pod
    t.stop()


def test_new_sessions_follow_weights_10000():
    pods, t = setup(3, weights=[5, 3, 2])
    c = collections.Counter()
    lock = threading.Lock()

    def worker(k):
        conn = None
        for _ in range(k):
            r = h.request(t.port, "POST", "/session", conn=conn)
            conn = r.conn
            with lock:
                c[r.header("X-Pod")] += 1
        conn.close()

    ths = [threading.Thread(target=worker, args=(2500,)) for _ in range(4)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    for name, w in (("pod-0", 0.5), ("pod-1", 0.3), ("pod-2", 0.2)):
        share = c[name] / 10000
        assert abs(share - w) <= 0.05 * w, (c, name)
    t.stop()


def test_learn_from_json_body():
    pods, t = setup(2, learn="json=session_id", pod_args=("--no-session-header",))
    r = h.request(t.port, "POST", "/session")
    assert r.header("X-Voice-Session-Id") is None
    sid, pod = r.json()["session_id"], r.header("X-Pod")
    for _ in range(6):
        assert h.request(t.port, "POST", "/webhook/%s/e" % sid).header("X-Pod") == pod
    t.stop()


def test_learn_from_set_cookie_and_route_by_session_cookie():
    """The pod names the session in its own cookie: tether learns it from the
    Set-Cookie of /session and routes later requests carrying that cookie
    (and no affinity cookie) to the same pod."""
    pods, t = setup(3, learn="cookie=app_sid", pod_args=("--no-session-header",),
                    aff_extra="session_cookie app_sid;")
    homes = {}
    for i in range(9):
        sid = "sess-%d-%s" % (i, os.urandom(4).hex())
        sc = urllib.parse.quote("Set-Cookie:app_sid=%s; Path=/; HttpOnly" % sid)
        r = h.request(t.port, "POST", "/session?header=" + sc)
        assert r.status == 200 and "app_sid=" + sid in r.headers_all("Set-Cookie")[0], r.headers
        homes[sid] = r.header("X-Pod")
    assert len(set(homes.values())) == 3, homes  # round robin spread them
    for sid, pod in homes.items():
        for path in ("/sdp", "/tools/x", "/webhook/none/e"):
            r = h.get(t.port, path, {"Cookie": "theme=dark; app_sid=%s" % sid})
            assert r.header("X-Pod") == pod, (sid, path, r.header("X-Pod"), pod)
    # The pod gets the cookie as sent; the access log names the source.
    want = "theme=dark; app_sid=%s" % sid
    assert any(k.lower() == "cookie" and v == want for hs in pods_requests(pods) for k, v in hs)
    h.wait_until(lambda: [l for l in t.access() if l.get("affinity") == "cookie_session"],
                 what="cookie_session in the access log")
    t.stop()


def pods_requests(pods):
    """Headers of every request the pods saw, in no particular order between pods."""
    return [r["headers"] for p in pods for r in p.requests()]


TWO_UPSTREAMS = """
workers 2;
affinity { cookie VOICE_AFFINITY secret_file={secret}; }
upstream voice { balance round_robin; server v0 {v0}; server v1 {v1}; server v2 {v2}; }
upstream tools {
    balance round_robin;
    affinity_cookie TOOLS_AFFINITY;
    server t0 {t0}; server t1 {t1}; server t2 {t2};
}
server {
    listen 127.0.0.1:{port};
    route = /sdp { upstream voice; affinity cookie; }
    route /t/ { upstream tools; affinity cookie; }
}
"""


def test_affinity_cookie_per_upstream():
    """Two upstreams with cookie affinity and cookies of their own: a client
    holds both, and neither request replaces the other's cookie."""
    pods = {n: h.Mockpod(n) for n in ("v0", "v1", "v2", "t0", "t1", "t2")}
    t = h.Tether(TWO_UPSTREAMS, secret=secret_file(), **{n: p.addr for n, p in pods.items()})
    for _ in range(4):
        r1 = h.get(t.port, "/sdp")
        voice, vpod = cookie_of(r1), r1.header("X-Pod")
        assert voice.startswith("VOICE_AFFINITY="), voice
        r2 = h.get(t.port, "/t/x", {"Cookie": voice})
        tools, tpod = cookie_of(r2), r2.header("X-Pod")
        assert tools.startswith("TOOLS_AFFINITY="), tools
        both = {"Cookie": "%s; %s" % (voice, tools)}
        for _ in range(3):
            a, b = h.get(t.port, "/sdp", both), h.get(t.port, "/t/x", both)
            assert (a.header("X-Pod"), b.header("X-Pod")) == (vpod, tpod)
            assert a.header("Set-Cookie") is None and b.header("Set-Cookie") is None
    # Each pod gets the other upstream's cookie, never its own upstream's.
    cookies = [v for hs in pods_requests([pods[n] for n in ("t0", "t1", "t2")]) for k, v in hs
               if k.lower() == "cookie"]
    assert cookies and all("TOOLS_AFFINITY" not in c and "VOICE_AFFINITY" in c for c in cookies)
    t.stop()


def test_unknown_session_header_hashes_consistently():
    secret = secret_file()
    pods, t = setup(3, secret=secret)
    servers = "".join("server pod-%d %s weight=1;\n    " % (i, pods[i].addr) for i in range(3))
    t2 = tether(servers, secret)
    spread = collections.Counter()
    for i in range(60):
        sid = "client-made-%d" % i
        a = h.get(t.port, "/hdr/x", headers={"X-Voice-Session-Id": sid}).header("X-Pod")
        b = h.get(t2.port, "/hdr/x", headers={"X-Voice-Session-Id": sid}).header("X-Pod")
        assert a == b, (sid, a, b)
        spread[a] += 1
    assert len(spread) == 3, spread
    t.stop()
    t2.stop()


if __name__ == "__main__":
    h.main(globals())
