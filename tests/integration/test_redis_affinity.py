# SPDX-License-Identifier: MIT
"""Learned sessions shared through Redis: a session created through one tether
replica is routed to the same pod through another (path and header), Redis
killed, restarted, slow or absent never costs a client an error or a wait much
longer than the Redis timeout."""
import atexit
import os
import shutil
import signal
import socket
import statistics
import tempfile
import threading
import time

import harness as h


def session_rkey(r, prefix, sid, cmd=None):
    """The Redis key of session <sid>: keys are the session id's hash, the value
    is "upstream/server SID", so find it by value."""
    cmd = cmd or r.cmd
    for k in cmd("KEYS", prefix + "session:*") or []:
        v = cmd("GET", k)
        if v and v.endswith(" " + sid):
            return k
    return None


def session_value(r, prefix, sid, cmd=None):
    """"upstream/server" stored for session <sid>, or None."""
    cmd = cmd or r.cmd
    k = session_rkey(r, prefix, sid, cmd)
    v = cmd("GET", k) if k else None
    return v.split(" ", 1)[0] if v else None

CONF = """
workers 2;
error_log {dir}/error.log info;
access_log {access_log} json;
stats { listen 127.0.0.1:{sport}; }
redis { server 127.0.0.1:{rport}; prefix "{prefix}"; timeout {rtimeout}; }
rate_limit_zone g key=$remote_addr rate=1000r/s burst=1000 nodelay global;
upstream voice {
    server pod-a {a};
    server pod-b {b};
    server pod-c {c};
}
affinity {
    cookie VOICE_AFFINITY secret_file={key};
    header X-Voice-Session-Id;
    learn header=X-Voice-Session-Id;
    path /webhook/{id}/;
    path /both/{id}/;
    ttl 900s;
}
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
    route = /sdp { upstream voice; affinity header; }
    route /webhook/ { upstream voice; affinity session; }
    route /both/ { upstream voice; affinity session; limit_req g; }
}
"""


class Redis(h.Redis):
    """redis-server that also takes DEBUG from loopback (Redis 7 refuses it by
    default); a given port allows a restart on the same address."""

    def __init__(self, port=None):
        self.port = port or h.free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-")
        h.Proc.__init__(self, ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", self.dir,
                               "--enable-debug-command", "local"])
        h.wait_port(self.port)


_tmp = tempfile.mkdtemp(prefix="tether-redis-test-")
atexit.register(shutil.rmtree, _tmp, True)


def keyfile():
    path = os.path.join(_tmp, "affinity.key")
    with open(path, "w") as f:
        f.write("0123456789abcdef0123456789abcdef\n")
    return path


# The Redis timeout of the tests about slowness; the others use a generous one
# so a loaded machine cannot turn a slow reply into a wrong answer.
TIMEOUT_MS = int(100 * h.SLOW)


def setup(rport=None, redis=True, timeout="1s"):
    r = Redis() if redis else None
    pods = [h.Mockpod("pod-a"), h.Mockpod("pod-b"), h.Mockpod("pod-c")]
    kw = dict(rport=rport or r.port, key=keyfile(), a=pods[0].addr, b=pods[1].addr,
              c=pods[2].addr, rtimeout=timeout)
    ta = h.Tether(CONF, sport=h.free_port(), prefix="t:", **kw)
    tb = h.Tether(CONF, sport=h.free_port(), prefix="t:", **kw)
    for t in (ta, tb):
        # the stats listener opens after the signal handlers are in place
        h.wait_port(t.kw["sport"])
        if redis:
            h.wait_until(lambda: error_log(t).count("up (worker") >= 2, what="redis up")
    return r, pods, ta, tb


def error_log(t):
    try:
        with open(os.path.join(t.dir, "error.log")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def metrics(t):
    """/metrics of <t> as {name: value} for the unlabelled tether_redis_* samples."""
    body = h.get(t.kw["sport"], "/metrics").body
    out = {}
    for line in body.splitlines():
        if line.startswith("tether_redis_"):
            name, _, v = line.partition(" ")
            out[name] = float(v)
    return out


class Client:
    """One keep-alive connection to a tether."""

    def __init__(self, t):
        self.port = t.port
        self.conn = None

    def req(self, method, path, headers=None):
        for attempt in range(2):
            try:
                r = h.request(self.port, method, path, headers=headers, conn=self.conn)
                self.conn = r.conn
                return r
            except (ConnectionError, OSError):
                # the server may close an idle keep-alive connection: once more
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def close(self):
        if self.conn:
            self.conn.close()


def create(c):
    r = c.req("POST", "/session")
    assert r.status == 200, r
    sid, pod = r.header("X-Voice-Session-Id"), r.header("X-Pod")
    assert sid and pod, r.headers
    return sid, pod


def timed(c, method, path, headers=None):
    t0 = time.monotonic()
    r = c.req(method, path, headers)
    return r, time.monotonic() - t0


def test_sessions_shared_across_replicas():
    r, pods, ta, tb = setup()
    ca, cb = Client(ta), Client(tb)
    remote, local = [], []
    for i in range(200):
        # half created through A and followed through B, half the other way
        (c1, c2) = (ca, cb) if i % 2 == 0 else (cb, ca)
        sid, pod = create(c1)
        resp, dt = timed(c2, "POST", "/webhook/%s/event" % sid)
        assert resp.status == 200 and resp.header("X-Pod") == pod, (
            i, sid, pod, resp.headers, dt, session_value(r, "t:", sid),
            metrics(ta), metrics(tb))
        remote.append(dt)
        resp, dt = timed(c2, "POST", "/sdp", {"X-Voice-Session-Id": sid})
        assert resp.status == 200 and resp.header("X-Pod") == pod, (i, sid, pod, resp.headers)
        local.append(dt)
    # written through under the prefix, with the affinity TTL
    assert session_value(r, "t:", sid) == "voice/" + pod
    ttl = r.cmd("PTTL", session_rkey(r, "t:", sid))
    assert 890000 < ttl <= 900000, ttl
    # the first request on the other replica read Redis, the second hit locally
    extra = statistics.median(remote) - statistics.median(local)
    print("  lookup latency added: median %.3f ms (remote %.3f ms, local %.3f ms)"
          % (extra * 1e3, statistics.median(remote) * 1e3, statistics.median(local) * 1e3))
    for t in (ta, tb):
        al = h.wait_until(lambda: len(t.access()) >= 300 and t.access(), what="access log")
        assert all(l["status"] == 200 for l in al), [l for l in al if l["status"] != 200][:3]
        # learned from Redis on this replica, then from its own table
        assert sum(1 for l in al if l["affinity"] == "path") >= 100, al[:3]
    ca.close()
    cb.close()
    h.stop_clean(ta, tb)


def test_redis_killed_and_restarted():
    r, pods, ta, tb = setup()
    ca, cb = Client(ta), Client(tb)
    known = []
    for i in range(30):
        sid, pod = create(ca)
        resp = cb.req("GET", "/webhook/%s/x" % sid)
        assert resp.header("X-Pod") == pod
        known.append((sid, pod))

    # traffic keeps flowing while Redis is killed
    errors, done = [], [0]
    stop = threading.Event()

    def flow():
        c = [Client(ta), Client(tb)]
        k = 0
        while not stop.is_set():
            sid, pod = known[k % len(known)]
            try:
                resp = c[k % 2].req("GET", "/webhook/%s/x" % sid)
                if resp.status != 200 or resp.header("X-Pod") != pod:
                    errors.append((resp.status, resp.header("X-Pod"), pod))
            except Exception as e:
                errors.append(repr(e))
            k += 1
            done[0] += 1
        for x in c:
            x.close()

    th = threading.Thread(target=flow)
    th.start()
    time.sleep(0.3)
    r.kill()
    for t in (ta, tb):
        h.wait_until(lambda: "redis 127.0.0.1:%d down" % r.port in error_log(t),
                     what="redis down logged")
    # sessions created during the outage still stick on the replica that saw them
    outage = []
    for i in range(20):
        sid, pod = create(ca)
        resp = ca.req("GET", "/webhook/%s/x" % sid)
        assert resp.status == 200 and resp.header("X-Pod") == pod
        resp = cb.req("GET", "/webhook/%s/x" % sid)  # no shared state: any pod, no error
        assert resp.status == 200
        outage.append((sid, pod))
    time.sleep(0.5)
    stop.set()
    th.join()
    assert not errors, errors[:5]
    assert done[0] > 50, done[0]
    for t in (ta, tb):
        log = error_log(t)
        # one line per worker and change, not one per failed reconnect
        assert log.count("redis 127.0.0.1:%d down" % r.port) == 2, log

    # back on the same port: both replicas reconnect and share again
    r2 = Redis(port=r.port)
    for t in (ta, tb):
        h.wait_until(lambda: error_log(t).count("up (worker") >= 4, timeout=10,
                     what="redis up again")
    for i in range(30):
        sid, pod = create(ca if i % 2 else cb)
        resp = (cb if i % 2 else ca).req("GET", "/webhook/%s/x" % sid)
        assert resp.status == 200 and resp.header("X-Pod") == pod, (i, resp.headers)
    assert r2.cmd("DBSIZE") >= 30
    for t in (ta, tb):
        m = metrics(t)
        assert m["tether_redis_configured"] == 1 and m["tether_redis_up"] == 1, m
        assert m["tether_redis_errors_total"] >= 2 and m["tether_redis_reconnects_total"] >= 2, m
    ca.close()
    cb.close()
    h.stop_clean(ta, tb)
    r2.stop()


def redis_sleep(r, seconds, errors):
    """DEBUG SLEEP on a side connection in a thread; returns the thread once
    the command is on its way (Redis sleeps until the thread ends)."""
    asleep = threading.Event()

    def run():
        c = socket.create_connection(("127.0.0.1", r.port), timeout=10 * h.SLOW)
        sec = "%.1f" % seconds
        c.sendall(("*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$%d\r\n%s\r\n"
                   % (len(sec), sec)).encode())
        asleep.set()
        if not c.recv(100).startswith(b"+OK"):
            errors.append("DEBUG SLEEP failed")
        c.close()

    th = threading.Thread(target=run)
    th.start()
    asleep.wait()
    th.until = time.monotonic() + seconds  # the thread may notice the end late
    time.sleep(0.02)
    return th


def test_redis_slow_requests_bounded_by_timeout():
    r, pods, ta, tb = setup(timeout="%dms" % TIMEOUT_MS)
    ca, cb = Client(ta), Client(tb)
    fresh = [create(ca) for _ in range(60)]  # B has never seen these
    lat, errors = [], []
    to = TIMEOUT_MS / 1000.0

    for rnd in range(3):
        s = redis_sleep(r, 0.5 * h.SLOW, errors)
        # requests for sessions B does not know, for as long as Redis sleeps
        while s.is_alive() and time.monotonic() < s.until and fresh:
            sid, pod = fresh.pop()
            resp, dt = timed(cb, "GET", "/webhook/%s/x" % sid)
            if resp.status != 200:
                errors.append(resp.status)
            lat.append(dt)
        s.join()
    assert not errors, errors
    worst = max(lat)
    waited = [d for d in lat if d >= 0.9 * to]
    print("  during DEBUG SLEEP %.1f (timeout %dms): %d requests, median %.1f ms, max %.1f ms"
          % (0.5 * h.SLOW, TIMEOUT_MS, len(lat), statistics.median(lat) * 1e3, worst * 1e3))
    assert worst < 1.0 * h.SLOW, worst
    # most waited for the Redis timeout (not for the sleep to end), then went on
    assert len(lat) >= 9 and len(waited) >= len(lat) // 2, lat
    assert metrics(tb)["tether_redis_timeouts_total"] >= len(waited) // 2, metrics(tb)
    # the connection survived: sessions are shared again at once
    sid, pod = create(ca)
    resp = cb.req("GET", "/webhook/%s/x" % sid)
    assert resp.header("X-Pod") == pod
    ca.close()
    cb.close()
    h.stop_clean(ta, tb)


def test_lookup_and_global_zone_in_one_request():
    """A request waiting on a session lookup and a global zone decision at once
    is bounded by the timeout too, and both answers are used when they come."""
    r, pods, ta, tb = setup(timeout="%dms" % TIMEOUT_MS)
    ca, cb = Client(ta), Client(tb)
    fresh = [create(ca) for _ in range(30)]
    sid, pod = fresh.pop()
    assert cb.req("GET", "/both/%s/x" % sid).header("X-Pod") == pod
    assert "global zone g" not in error_log(tb)  # decided in Redis (its key lives 1 ms)
    lat, errors = [], []
    s = redis_sleep(r, 0.4 * h.SLOW, errors)
    while s.is_alive() and time.monotonic() < s.until and len(fresh) > 1:
        sid, pod = fresh.pop()
        resp, dt = timed(cb, "GET", "/both/%s/x" % sid)
        assert resp.status == 200
        lat.append(dt)
    s.join()
    assert not errors, errors
    # bounded by the timeout; the first ones waited it out for both operations
    assert max(lat) < 1.0 * h.SLOW and lat[0] >= 0.9 * TIMEOUT_MS / 1000.0, lat
    log = error_log(tb)
    assert "global zone g: Redis unreachable (timeout), falling back to the local zone" in log, log
    sid, pod = fresh.pop()
    assert cb.req("GET", "/both/%s/x" % sid).header("X-Pod") == pod
    assert "global zone g: Redis back" in error_log(tb)
    ca.close()
    cb.close()
    h.stop_clean(ta, tb)


def test_reload_keeps_or_replaces_the_connection():
    r, pods, ta, tb = setup()
    ca, cb = Client(ta), Client(tb)
    ups = error_log(ta).count("up (worker")
    ta.reload()  # same settings: the connections stay
    sid, pod = create(ca)
    time.sleep(0.3)
    assert error_log(ta).count("up (worker") == ups
    # a new prefix applies at once, on the same connections
    ta.kw["prefix"] = "u:"
    ta.reload(CONF)
    h.wait_until(lambda: create(ca) and r.cmd("KEYS", "u:session:*"), what="new prefix used")
    assert error_log(ta).count("up (worker") == ups
    # another server: reconnect there
    r2 = Redis()
    ta.kw["rport"] = r2.port
    ta.reload(CONF)
    h.wait_until(lambda: error_log(ta).count("up (worker") >= ups + 2, what="reconnected")
    h.wait_until(lambda: create(ca) and r2.cmd("KEYS", "u:session:*"), what="new server used")
    # no redis block any more: local state only, no errors
    conf = CONF.replace('redis { server 127.0.0.1:{rport}; prefix "{prefix}"; timeout {rtimeout}; }',
                        "").replace(" global;", ";")
    ta.reload(conf)
    time.sleep(0.5)
    r2.kill()
    sid, pod = create(ca)
    resp = ca.req("GET", "/webhook/%s/x" % sid)
    assert resp.status == 200 and resp.header("X-Pod") == pod
    time.sleep(0.3)
    assert "redis 127.0.0.1:%d down" % r2.port not in error_log(ta)
    assert metrics(ta)["tether_redis_configured"] == 0
    ca.close()
    cb.close()
    h.stop_clean(ta, tb)


def test_redis_stopped_connection_replaced():
    """A Redis that stops answering (SIGSTOP) is given up after a while and
    reconnected to once it answers again."""
    r, pods, ta, tb = setup(timeout="%dms" % TIMEOUT_MS)
    ca, cb = Client(ta), Client(tb)
    fresh = [create(ca) for _ in range(80)]
    r.signal(signal.SIGSTOP)
    try:
        t_end = time.monotonic() + 3.0
        lat = []
        while time.monotonic() < t_end and fresh:
            sid, pod = fresh.pop()
            resp, dt = timed(cb, "GET", "/webhook/%s/x" % sid)
            assert resp.status == 200
            lat.append(dt)
        assert max(lat) < 1.0 * h.SLOW, max(lat)
        # by the worker's own stall check, or first by the control thread's
        # ROLE check of the primary (every connection then closes together)
        h.wait_until(lambda: "no reply for" in error_log(tb) or
                     "no usable primary" in error_log(tb), timeout=5, what="stall detected")
    finally:
        r.signal(signal.SIGCONT)
    h.wait_until(lambda: error_log(tb).count("up (worker") >= 3, timeout=10, what="redis up again")
    sid, pod = create(ca)
    h.wait_until(lambda: cb.req("GET", "/webhook/%s/x" % sid).header("X-Pod") == pod,
                 timeout=5, what="shared again")
    ca.close()
    cb.close()
    h.stop_clean(ta, tb)


UNIX_CONF = """
workers 1;
error_log {dir}/error.log info;
redis { server unix:{sock}; password {password}; db 3; prefix "p:"; }
upstream voice { server pod-a {a}; }
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
}
"""


def test_unix_socket_auth_and_db():
    d = tempfile.mkdtemp(prefix="redis-unix-", dir=_tmp)
    sock = os.path.join(d, "redis.sock")
    r = h.Proc(["redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                "--appendonly", "no", "--dir", d, "--requirepass", "s3cret"])
    h.wait_until(lambda: os.path.exists(sock), what="redis socket")

    def rcmd(*args):
        import socket as so
        c = so.socket(so.AF_UNIX)
        c.connect(sock)
        f = c.makefile("rb")
        out = []
        for cmd in (("AUTH", "s3cret"), ("SELECT", "3"), args):
            c.sendall(("*%d\r\n" % len(cmd) + "".join(
                "$%d\r\n%s\r\n" % (len(a), a) for a in cmd)).encode())
            out.append(h._resp_read(f))
        c.close()
        return out[-1]

    pod = h.Mockpod("pod-a")
    t = h.Tether(UNIX_CONF, sock=sock, password="s3cret", a=pod.addr)
    h.wait_until(lambda: "up (worker 0)" in error_log(t), what="redis up")
    sid = h.request(t.port, "POST", "/session").header("X-Voice-Session-Id")
    h.wait_until(lambda: session_value(None, "p:", sid, cmd=rcmd) == "voice/pod-a", what="stored in db 3")
    h.stop_clean(t)
    # a wrong password: the reason is logged once, tether serves from local state
    t = h.Tether(UNIX_CONF, sock=sock, password="wrong", a=pod.addr)
    h.wait_until(lambda: "down: AUTH" in error_log(t), what="AUTH failure logged")
    assert h.request(t.port, "POST", "/session").status == 200
    time.sleep(0.5)
    assert error_log(t).count("down: AUTH") == 1, error_log(t)
    h.stop_clean(t)
    r.stop()


def test_redis_unreachable_from_start():
    dead = h.free_port()
    r, pods, ta, tb = setup(rport=dead, redis=False)
    for t in (ta, tb):
        h.wait_until(lambda: "redis 127.0.0.1:%d down" % dead in error_log(t), what="down logged")
    ca = Client(ta)
    for i in range(20):
        sid, pod = create(ca)
        resp, dt = timed(ca, "GET", "/webhook/%s/x" % sid)
        assert resp.status == 200 and resp.header("X-Pod") == pod
        assert dt < 0.5 * h.SLOW, dt  # no waiting on a connection that is down
        resp = ca.req("POST", "/sdp", {"X-Voice-Session-Id": sid})
        assert resp.status == 200 and resp.header("X-Pod") == pod
    time.sleep(0.6)  # several reconnect attempts: still one line per worker
    assert error_log(ta).count("redis 127.0.0.1:%d down" % dead) == 2, error_log(ta)
    ca.close()
    h.stop_clean(ta, tb)


if __name__ == "__main__":
    h.main(globals())
