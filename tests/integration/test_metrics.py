# SPDX-License-Identifier: MIT
"""The stats listener: /metrics values match the traffic sent (requests by
route/server/status class, latency buckets, rate limits, reloads, active
connections, requests and tunnels), promtool accepts the output, /stats JSON
agrees with /metrics, the listener survives garbage and moves on reload."""
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import harness as h

CONF = """
workers 2;
stats { listen 127.0.0.1:{stats_port}; }
rate_limit_zone z1 key=$remote_addr rate=1r/m burst=2 nodelay;
upstream solo { server pod-c {c}; }
upstream voice {
    region eu weight=70;
    region me weight=30;
    server pod-a {a} region=eu;
    server pod-b {b} region=me;
}
server {
    listen 127.0.0.1:{port};
    route /a { upstream solo; }
    route /lim { upstream solo; limit_req z1; }
    route /v/ { upstream voice; }
}
"""


# ---- Prometheus text parsing (strict enough to catch malformed lines) ----

def _labels(s, i):
    """Parse {k="v",...} starting at s[i] == '{'; returns (dict, index after '}')."""
    out = {}
    i += 1
    while s[i] != "}":
        eq = s.index("=", i)
        key = s[i:eq]
        assert key.replace("_", "a").isalnum(), "bad label name %r in %r" % (key, s)
        assert s[eq + 1] == '"', s
        j, val = eq + 2, ""
        while s[j] != '"':
            if s[j] == "\\":
                val += {"\\": "\\", '"': '"', "n": "\n"}[s[j + 1]]
                j += 2
            else:
                val += s[j]
                j += 1
        out[key] = val
        i = j + 1
        if s[i] == ",":
            i += 1
    return out, i + 1


def parse_prom(text):
    """{(name, frozenset(labels)): float}; asserts no sample appears twice and every
    family has HELP and TYPE before its samples."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name = line[:line.index("{")]
            labels, i = _labels(line, line.index("{"))
            value = line[i:].strip()
        else:
            name, value = line.split(" ", 1)
            labels = {}
        base = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[:-len(suffix)] in typed:
                base = name[:-len(suffix)]
        assert base in typed, "sample before its TYPE: " + line
        key = (name, frozenset(labels.items()))
        assert key not in samples, "duplicate sample " + line
        samples[key] = float(value)
    return samples


def metric(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    assert key in samples, "missing %s%r" % (name, labels)
    return samples[key]


def scrape(port):
    r = h.get(port, "/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4"), r.headers
    return r.body, parse_prom(r.body)


def setup(**kw):
    pods = [h.Mockpod(n) for n in ("pod-a", "pod-b", "pod-c")]
    sp = h.free_port()
    t = h.Tether(CONF, a=pods[0].addr, b=pods[1].addr, c=pods[2].addr, stats_port=sp, **kw)
    h.wait_port(sp)
    t.stats_port = sp
    return pods, t


SRV_C = dict(upstream="solo", server="pod-c", region="default")


def send_known_traffic(t):
    """7 OK + 3 503 + 2 404 to /a, 5 to /lim (3 allowed, 2 limited), 6 to /v/,
    2 unrouted. Returns the number of requests (each on a new connection)."""
    expect = [(7, "/a/ok", 200), (3, "/a/x?status=503", 503), (2, "/a/x?status=404", 404),
              (5, "/lim", None), (6, "/v/x", 200), (2, "/nowhere", 404)]
    n = 0
    lim = []
    for count, path, status in expect:
        for _ in range(count):
            r = h.get(t.port, path)
            n += 1
            if status is None:
                lim.append(r.status)
            else:
                assert r.status == status, (path, r)
    assert lim == [200, 200, 200, 429, 429], lim
    return n


def test_request_counters_exact():
    pods, t = setup()
    # The start-up probe (h.Tether's wait_port) is counted asynchronously, by a
    # worker that may not have run yet on a busy machine: wait for it.
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_connections_total") >= 1 and
                 metric(scrape(t.stats_port)[1], "tether_connections_active") == 0,
                 what="the start-up probe counted and closed")
    _, before = scrape(t.stats_port)
    conns0 = metric(before, "tether_connections_total")
    n = send_known_traffic(t)
    # Counters are recorded when a request is logged, just after its answer.
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_requests_received_total") == n,
                 what="all requests counted")
    _, m = scrape(t.stats_port)
    rq = lambda cls, **l: metric(m, "tether_requests_total", code_class=cls, **l)
    assert rq("2xx", **SRV_C) == 10  # 7 on /a, 3 admitted on /lim
    assert rq("5xx", **SRV_C) == 3
    assert rq("4xx", **SRV_C) == 2
    assert rq("1xx", **SRV_C) == 0 and rq("3xx", **SRV_C) == 0 and rq("other", **SRV_C) == 0
    va = rq("2xx", upstream="voice", server="pod-a", region="eu")
    vb = rq("2xx", upstream="voice", server="pod-b", region="me")
    assert va + vb == 6 and va > 0 and vb > 0, (va, vb)
    # The pods saw exactly what tether says it sent them.
    assert len(pods[2].requests()) == 15, len(pods[2].requests())
    assert len(pods[0].requests()) == va and len(pods[1].requests()) == vb
    route = lambda r, cls: metric(m, "tether_route_requests_total", route=r, code_class=cls)
    assert (route("/a", "2xx"), route("/a", "5xx"), route("/a", "4xx")) == (7, 3, 2)
    assert (route("/lim", "2xx"), route("/lim", "4xx")) == (3, 2)
    assert route("/v/", "2xx") == 6
    assert metric(m, "tether_requests_rate_limited_total") == 2
    assert metric(m, "tether_rate_limit_allowed_total", zone="z1") == 3
    assert metric(m, "tether_affinity_total", outcome="new") == 21  # every routed, admitted one
    assert metric(m, "tether_connections_total") - conns0 == n
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_connections_active") == 0,
                 what="connections closed")
    # Request histogram per server: count, +Inf and sum agree with the requests.
    assert metric(m, "tether_request_duration_seconds_count", **SRV_C) == 15
    assert metric(m, "tether_request_duration_seconds_bucket", le="+Inf", **SRV_C) == 15
    assert metric(m, "tether_request_duration_seconds_sum", **SRV_C) > 0
    assert metric(m, "tether_route_request_duration_seconds_count", route="/a") == 12
    # Server state and region figures from the config.
    for srv, reg in (("pod-a", "eu"), ("pod-b", "me")):
        lab = dict(upstream="voice", server=srv, region=reg)
        assert metric(m, "tether_server_up", **lab) == 1
        assert metric(m, "tether_server_ejected", **lab) == 0
        assert metric(m, "tether_server_weight", **lab) == 1
        assert metric(m, "tether_server_state", state="ready", **lab) == 1
        assert metric(m, "tether_server_state", state="drain", **lab) == 0
        assert metric(m, "tether_server_state", state="maint", **lab) == 0
    assert metric(m, "tether_region_weight", upstream="voice", region="eu") == 70
    assert metric(m, "tether_region_share", upstream="voice", region="eu") == 0.7
    assert metric(m, "tether_region_share", upstream="voice", region="me") == 0.3
    assert metric(m, "tether_region_servers_up", upstream="voice", region="me") == 1
    assert metric(m, "tether_workers") == 2
    assert metric(m, "tether_info", version=metric_version(m)) == 1
    h.stop_clean(t)


def metric_version(m):
    vs = [dict(k[1])["version"] for k in m if k[0] == "tether_info"]
    assert len(vs) == 1, vs
    return vs[0]


def test_rate_limit_zone_counters():
    """tether_rate_limited_total{zone} counts each refused request once."""
    pods, t = setup()
    codes = [h.get(t.port, "/lim").status for _ in range(6)]
    assert codes == [200, 200, 200, 429, 429, 429], codes
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_requests_received_total") == 6,
                 what="requests counted")
    _, m = scrape(t.stats_port)
    assert metric(m, "tether_requests_rate_limited_total") == 3
    assert metric(m, "tether_rate_limit_allowed_total", zone="z1") == 3
    assert metric(m, "tether_rate_limit_keys", zone="z1") == 1
    assert metric(m, "tether_rate_limited_total", zone="z1") == 3, \
        "zone counter %s for 3 refused requests" % metric(m, "tether_rate_limited_total", zone="z1")
    h.stop_clean(t)


def test_latency_buckets():
    """Two requests the pod holds for 1.2 s land in the (1 s, 2.5 s] bucket."""
    pods, t = setup()
    for _ in range(4):
        assert h.get(t.port, "/a/fast").status == 200
    for _ in range(2):
        assert h.get(t.port, "/a/slow?delay=1200").status == 200
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_requests_received_total") == 6,
                 what="requests counted")
    _, m = scrape(t.stats_port)
    b = lambda le: metric(m, "tether_request_duration_seconds_bucket", le=le, **SRV_C)
    assert b("1") == 4 and b("2.5") == 6 and b("+Inf") == 6, (b("1"), b("2.5"))
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                     if k[0] == "tether_request_duration_seconds_bucket"
                     and dict(k[1]).get("server") == "pod-c")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets), "cumulative"
    s = metric(m, "tether_request_duration_seconds_sum", **SRV_C)
    assert 2.4 <= s < 2.4 + 4 * h.SLOW, s
    st = h.get(t.stats_port, "/stats").json()
    srv = st["upstreams"][0]["regions"][0]["servers"][0]
    assert srv["name"] == "pod-c" and srv["latency"]["count"] == 6
    assert 1000000 <= srv["latency"]["p95_us"] <= 2500000, srv["latency"]
    h.stop_clean(t)


def test_active_requests_and_tunnels():
    pods, t = setup()
    lab = SRV_C
    # A request the pod holds: in flight on pod-c while we look.
    s = socket.create_connection(("127.0.0.1", t.port))
    s.sendall(b"GET /a/hold?delay=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_server_active_requests", **lab) == 1,
                 what="active request")
    # A WebSocket tunnel.
    ws = socket.create_connection(("127.0.0.1", t.port))
    ws.sendall(b"GET /a/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    ws.settimeout(5 * h.SLOW)
    assert ws.recv(4096).startswith(b"HTTP/1.1 101"), "upgrade"
    _, m = scrape(t.stats_port)
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_tunnels_active") == 1,
                 what="tunnel counted")
    _, m = scrape(t.stats_port)
    assert metric(m, "tether_server_active_tunnels", **lab) == 1
    assert metric(m, "tether_tunnels_total") == 1
    assert metric(m, "tether_server_tunnels_total", **lab) == 1
    assert metric(m, "tether_connections_active") == 2
    st = h.get(t.stats_port, "/stats").json()
    assert st["counters"]["tunnels_active"] == 1
    ws.close()
    s.settimeout(10 * h.SLOW)
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    s.close()
    h.wait_until(lambda: (lambda m: metric(m, "tether_tunnels_active") == 0 and
                          metric(m, "tether_server_active_tunnels", **lab) == 0 and
                          metric(m, "tether_server_active_requests", **lab) == 0 and
                          metric(m, "tether_connections_active") == 0)(scrape(t.stats_port)[1]),
                 what="gauges back to 0")
    h.stop_clean(t)


def test_promtool_check_metrics():
    pods, t = setup()
    send_known_traffic(t)
    body, _ = scrape(t.stats_port)
    path = os.path.join(h.ARTIFACTS, "metrics.txt")
    os.makedirs(h.ARTIFACTS, exist_ok=True)
    with open(path, "w") as f:
        f.write(body)
    h.stop_clean(t)
    if not shutil.which("promtool"):
        print("SKIP promtool check: promtool not installed (apt-get install prometheus)")
        return
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
        (p.returncode, p.stdout[:2000], p.stderr[:2000])


def test_stats_json_matches_metrics():
    pods, t = setup()
    n = send_known_traffic(t)
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_requests_received_total") == n,
                 what="requests counted")
    r = h.get(t.stats_port, "/stats")
    assert r.status == 200 and r.header("Content-Type") == "application/json"
    st = r.json()
    _, m = scrape(t.stats_port)
    assert st["generation"] == metric(m, "tether_config_generation") == 1
    assert st["counters"]["requests"] == metric(m, "tether_requests_received_total") == n
    assert st["counters"]["rate_limited"] == metric(m, "tether_requests_rate_limited_total")
    assert st["affinity"]["new"] == metric(m, "tether_affinity_total", outcome="new")
    names = []
    for u in st["upstreams"]:
        for reg in u["regions"]:
            rl = dict(upstream=u["name"], region=reg["name"])
            assert reg["weight"] == metric(m, "tether_region_weight", **rl)
            assert reg["servers_up"] == metric(m, "tether_region_servers_up", **rl)
            assert abs(reg["share"] - metric(m, "tether_region_share", **rl)) < 1e-6
            for s in reg["servers"]:
                lab = dict(upstream=u["name"], server=s["name"], region=reg["name"])
                names.append(u["name"] + "/" + s["name"])
                for cls, v in s["status"].items():
                    assert v == metric(m, "tether_requests_total", code_class=cls, **lab), (lab, cls)
                assert s["requests"] == sum(s["status"].values())
                assert s["latency"]["count"] == metric(m, "tether_request_duration_seconds_count",
                                                       **lab)
                assert s["up"] == metric(m, "tether_server_up", **lab)
                assert s["weight"] == metric(m, "tether_server_weight", **lab)
                assert metric(m, "tether_server_state", state=s["state"], **lab) == 1
                assert s["health"] == "up" and s["state"] == "ready"
    assert sorted(names) == ["solo/pod-c", "voice/pod-a", "voice/pod-b"], names
    routes = {r["route"]: r for r in st["routes"]}
    assert set(routes) == {"/a", "/lim", "/v/"}, routes.keys()
    for name, r in routes.items():
        for cls, v in r["status"].items():
            assert v == metric(m, "tether_route_requests_total", route=name, code_class=cls)
    z = {x["zone"]: x for x in st["rate_limit_zones"]}["z1"]
    assert z["allowed"] == metric(m, "tether_rate_limit_allowed_total", zone="z1") == 3
    assert z["limited"] == metric(m, "tether_rate_limited_total", zone="z1")
    h.stop_clean(t)


def test_reload_counters():
    pods, t = setup()
    for _ in range(3):
        h.get(t.port, "/a/x")
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_requests_received_total") == 3,
                 what="requests counted")
    _, m = scrape(t.stats_port)
    assert metric(m, "tether_reloads_total", result="ok") == 0
    assert metric(m, "tether_config_last_reload_timestamp_seconds") == 0
    t.reload()
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_config_generation") == 2,
                 what="generation 2")
    _, m = scrape(t.stats_port)
    assert metric(m, "tether_reloads_total", result="ok") == 1
    assert metric(m, "tether_reloads_total", result="failed") == 0
    assert abs(metric(m, "tether_config_last_reload_timestamp_seconds") - time.time()) < 60
    # Server counters carry over to the new generation.
    assert metric(m, "tether_requests_total", code_class="2xx", **SRV_C) == 3
    # A broken config is counted and changes nothing.
    good = open(t.conf_path).read()
    with open(t.conf_path, "w") as f:
        f.write("workers 2;\nupstream {\n")
    t.signal(signal.SIGHUP)
    h.wait_until(lambda: metric(scrape(t.stats_port)[1], "tether_reloads_total", result="failed") == 1,
                 what="failed reload counted")
    st = h.get(t.stats_port, "/stats").json()
    assert st["generation"] == 2 and st["reloads"]["failed"] == 1 and st["reloads"]["last_error"]
    with open(t.conf_path, "w") as f:
        f.write(good)
    h.stop_clean(t)


def test_listener_survives_garbage():
    pods, t = setup()
    sp = t.stats_port
    cases = [
        (b"\x00\x01\x02\xff garbage\r\n\r\n", b"HTTP/1.1 400"),
        (b"GET\r\n\r\n", b"HTTP/1.1 400"),
        (b"GET /metrics HTTP/9.9\r\n\r\n", b"HTTP/1.1 400"),
        (b"GET metrics HTTP/1.1\r\n\r\n", b"HTTP/1.1 400"),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", b"HTTP/1.1 400"),
        (b"GET / HTTP/1.1\nHost: x\n\n" + b"x" * 9000, b"HTTP/1.1 431"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n", b"HTTP/1.1 431"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"HTTP/1.1 405"),
        (b"BREW /pot HTTP/1.1\r\nConnection: close\r\n\r\n", b"HTTP/1.1 405"),
        (b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n", b"HTTP/1.1 404"),
        (b"GET /health HTTP/1.0\r\n\r\n", b"HTTP/1.1 200"),
    ]
    for data, want in cases:
        out = h.raw(sp, data, timeout=5)
        assert out.startswith(want), (data[:60], out[:200])
    # Half a request, then the client goes away; a client that sends nothing.
    for data in (b"GET /metr", b""):
        s = socket.create_connection(("127.0.0.1", sp))
        s.sendall(data)
        s.close()
    # More idle connections than the listener keeps: the oldest make room.
    idle = [socket.create_connection(("127.0.0.1", sp)) for _ in range(80)]
    r = h.get(sp, "/health")
    assert r.status == 200 and r.body == "ok\n"
    for s in idle:
        s.close()
    # Keep-alive and pipelining: three answers on one connection, in order.
    out = h.raw(sp, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nHEAD /metrics HTTP/1.1\r\n\r\n"
                    b"GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n", timeout=5)
    assert out.count(b"HTTP/1.1 200 OK") == 3, out[:500]
    parts = out.split(b"HTTP/1.1 200 OK")  # "", /health, HEAD /metrics, /stats
    assert b"Content-Type: text/plain; version=0.0.4" in parts[2] and b"# HELP" not in parts[2], \
        "HEAD has a length and no body"
    assert b"Connection: close" in parts[3] and b'"upstreams"' in parts[3]
    # Random bytes in bursts (ended so that each gets an answer, not a timeout).
    rnd = os.urandom(20000)
    for i in range(0, len(rnd), 2000):
        out = h.raw(sp, rnd[i:i + 2000] + b"\r\n\r\n", timeout=5)
        assert out.startswith(b"HTTP/1.1 4"), out[:100]
    assert t.alive(), t.stderr()
    _, m = scrape(sp)
    assert metric(m, "tether_workers") == 2
    assert h.get(t.port, "/a/x").status == 200
    h.stop_clean(t)


def test_listener_moves_on_reload():
    pods, t = setup()
    old = t.stats_port
    new = h.free_port()
    t.kw["stats_port"] = new
    t.reload(CONF)
    h.wait_port(new)
    h.wait_until(lambda: refused(old), what="old stats port closed")
    assert h.get(new, "/health").status == 200
    # Without a stats block the listener goes away; adding it back opens it.
    t.reload(CONF.replace("stats { listen 127.0.0.1:{stats_port}; }", ""))
    h.wait_until(lambda: refused(new), what="stats listener closed")
    assert h.get(t.port, "/a/x").status == 200
    t.reload(CONF)
    h.wait_port(new)
    _, m = scrape(new)
    assert metric(m, "tether_reloads_total", result="ok") == 3
    assert metric(m, "tether_config_generation") == 4
    h.stop_clean(t)


def test_scrapes_during_traffic_and_reloads():
    """Scrapes stay well-formed while requests flow and servers come and go."""
    pods, t = setup()
    extra = h.Mockpod("pod-d")
    with_d = CONF.replace("server pod-b {b} region=me;",
                          "server pod-b {b} region=me;\n    server pod-d %s region=me;" % extra.addr)
    stop = threading.Event()
    errors, scrapes = [], [0]

    def load():
        while not stop.is_set():
            try:
                h.get(t.port, "/v/x", timeout=5)
                h.get(t.port, "/a/x", timeout=5)
            except Exception as e:  # a request may meet a reload; counted below
                errors.append(("request", repr(e)))

    def scrape_loop():
        while not stop.is_set():
            try:
                parse_prom(h.get(t.stats_port, "/metrics").body)
                h.get(t.stats_port, "/stats").json()
                scrapes[0] += 1
            except Exception as e:
                errors.append(("scrape", repr(e)))

    threads = [threading.Thread(target=f, daemon=True) for f in (load, load, scrape_loop,
                                                                 scrape_loop)]
    for th in threads:
        th.start()
    for i in range(10):
        t.reload(with_d if i % 2 == 0 else CONF)
        gen = i + 2
        h.wait_until(lambda: h.get(t.stats_port, "/stats").json()["generation"] == gen,
                     what="generation %d" % gen)
    stop.set()
    for th in threads:
        th.join(20)
    assert not [e for e in errors if e[0] == "scrape"], errors[:5]
    assert scrapes[0] >= 10, scrapes
    assert len([e for e in errors if e[0] == "request"]) == 0, errors[:5]
    _, m = scrape(t.stats_port)
    assert metric(m, "tether_reloads_total", result="ok") == 10
    # pod-d left with the last reload: its series are gone.
    assert not [k for k in m if dict(k[1]).get("server") == "pod-d"]
    h.stop_clean(t)


def test_redis_metrics():
    """Redis state and errors: up with Redis, errors counted when it goes away."""
    if not shutil.which("redis-server"):
        print("SKIP Redis metrics: redis-server not installed")
        return
    redis = h.Redis()
    pods = [h.Mockpod(n) for n in ("pod-a", "pod-b", "pod-c")]
    sp = h.free_port()
    conf = CONF.replace("workers 2;", "workers 2;\nredis { server 127.0.0.1:%d; timeout 200ms; }"
                        % redis.port)
    t = h.Tether(conf, a=pods[0].addr, b=pods[1].addr, c=pods[2].addr, stats_port=sp)
    h.wait_port(sp)
    up = lambda m: (metric(m, "tether_redis_up"), metric(m, "tether_redis_worker_connections_up"))
    h.wait_until(lambda: up(scrape(sp)[1]) == (1, 2), what="redis connections up")
    _, m = scrape(sp)
    assert metric(m, "tether_redis_configured") == 1
    assert metric(m, "tether_redis_errors_total") == 0
    redis.stop()
    # Requests keep working from local state; the lost connections are counted.
    for _ in range(5):
        assert h.get(t.port, "/a/x").status == 200
    h.wait_until(lambda: up(scrape(sp)[1]) == (0, 0), timeout=10, what="redis down")
    h.wait_until(lambda: metric(scrape(sp)[1], "tether_redis_errors_total") > 0, timeout=10,
                 what="redis errors counted")
    st = h.get(sp, "/stats").json()["redis"]
    assert st["configured"] and not st["up"] and st["errors"] > 0, st
    h.stop_clean(t)


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


if __name__ == "__main__":
    h.main(globals())
