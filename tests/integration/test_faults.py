# SPDX-License-Identifier: MIT
"""Fault injection, each with a pass criterion: a pod resetting mid-response, a pod
that accepts and hangs, a pod answering garbage (a table of broken responses from a
raw socket pod), a flapping health endpoint, Redis slow (DEBUG SLEEP) and down, a
SIGHUP storm under load (with a WebSocket tunnel open through it)."""
import os
import re
import signal
import socket
import struct
import threading
import time

import harness as h


CONF = """
workers 2;
error_log {dir}/error.log info;
access_log {access_log} json;
upstream voice {
    server pod-a {a};
    connect_timeout 500ms;
    retries 0;
}
upstream raw {
    server raw {raw};
    connect_timeout 500ms;
    retries 0;
    outlier { consecutive_errors 1000; }   # one broken answer after another, no ejection
}
server {
    listen 127.0.0.1:{port};
    route /t { upstream voice; timeout 600ms; }
    route /ws { upstream voice; websocket_timeout 30s; }
    route /raw { upstream raw; timeout 600ms; }
}
"""


class RawPod:
    """A pod on a plain socket: reads a request head, answers <reply> (bytes, or a
    function of the request head), then closes (or holds the connection when
    <hold>). reply=None: accept and never answer."""

    def __init__(self, reply=None, hold=False):
        self.reply = reply
        self.hold = hold
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.heads = []
        self.stop = False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                d = c.recv(65536)
                if not d:
                    return
                data += d
            self.heads.append(data)
            if self.reply is None:
                return  # hang: keep the socket open, never answer
            r = self.reply(data) if callable(self.reply) else self.reply
            c.sendall(r)
            if not self.hold:
                c.shutdown(socket.SHUT_WR)
                time.sleep(0.05)
                c.close()
        except OSError:
            pass

    def close(self):
        self.stop = True
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()


def errlog(t):
    """tether's error log so far ("" before it exists)."""
    try:
        with open(t.error_log) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def start(raw=None):
    pod = h.Mockpod("pod-a")
    raw = raw or RawPod(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    t = h.Tether(CONF, a=pod.addr, raw=raw.addr)
    return pod, raw, t


def terms(t, prefix):
    return [l.get("term") for l in t.access() if l.get("request", "").startswith(prefix)]


def fetch(port, path, timeout=5.0, close=True):
    """GET <path> on a fresh connection; returns (raw bytes, seconds, closed by peer).
    With <close> the request says Connection: close (tether's reply ends with the
    connection); without, a close proves tether gave up on the exchange."""
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * h.SLOW)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n"
               % (path, "Connection: close\r\n" if close else "")).encode())
    out, closed = b"", False
    try:
        while not complete(out):
            d = s.recv(65536)
            if not d:
                closed = True
                break
            out += d
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    took = time.time() - t0
    if not closed and not close:
        # whether tether closes right after (it must, when it cut the response)
        s.settimeout(0.3 * h.SLOW)
        try:
            closed = s.recv(1) == b""
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            pass
    s.close()
    return out, took, closed


def complete(out):
    """A whole response with a Content-Length is in <out>."""
    end = out.find(b"\r\n\r\n")
    if end < 0:
        return False
    m = re.search(rb"\r\ncontent-length: *(\d+)", out[:end + 2], re.I)
    return bool(m) and len(out) >= end + 4 + int(m.group(1))


def status_of(data):
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


# ---- pod resets ----

def test_pod_reset_mid_response():
    pod, raw, t = start()
    for path in ("/t/a?bytes=1000000&reset_after=100000",
                 "/t/b?bytes=1000000&reset_after=100000&chunked=1"):
        out, took, closed = fetch(t.port, path, close=False)
        assert status_of(out) == 200, out[:100]
        assert closed, "connection left open after a reset mid-response"
        assert took < 2 * h.SLOW, took
        body = out.split(b"\r\n\r\n", 1)[1]
        assert 90000 <= len(body) < 1000000, len(body)
        if b"chunked" in path.encode():
            assert not body.endswith(b"0\r\n\r\n"), "a truncated chunked body was terminated"
    h.wait_until(lambda: terms(t, "/t/a") == ["server_reset"] and terms(t, "/t/b") == ["server_reset"],
                 what="server_reset in the access log")
    # tether and the pod still serve
    assert h.get(t.port, "/t/after").status == 200
    h.stop_clean(t)
    raw.close()


def test_pod_reset_before_response_502():
    pod, raw, t = start()
    out, took, closed = fetch(t.port, "/t/r?reset=1")
    assert status_of(out) == 502, out[:100]
    assert took < 2 * h.SLOW
    h.wait_until(lambda: terms(t, "/t/r") == ["server_reset"], what="server_reset")
    h.stop_clean(t)
    raw.close()


# ---- pods that hang ----

def test_pod_hangs_504_after_route_timeout():
    pod, raw, t = start(RawPod(None))  # raw: accepts, reads, never answers
    out, took, _ = fetch(t.port, "/t/h?hang=1")
    assert status_of(out) == 504, out[:100]
    assert 0.5 <= took < 0.6 + 1.0 * h.SLOW, took
    out, took, _ = fetch(t.port, "/raw/h")
    assert status_of(out) == 504, out[:100]
    assert 0.5 <= took < 0.6 + 1.0 * h.SLOW, took
    h.wait_until(lambda: terms(t, "/t/h") == ["server_timeout"] and
                 terms(t, "/raw/h") == ["server_timeout"], what="server_timeout")
    # a hang mid-body (head sent, then nothing): the client sees a truncated response
    # and a close after the route timeout, never a hang
    raw2 = RawPod(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", hold=True)
    t.reload(CONF.replace("{raw}", raw2.addr))
    h.wait_until(lambda: "partial" in fetch(t.port, "/raw/m", timeout=3)[0].decode("latin1"),
                 timeout=5, what="reloaded to raw2")
    out, took, closed = fetch(t.port, "/raw/m2", close=False)
    assert status_of(out) == 200 and out.endswith(b"partial") and closed, out
    assert took < 0.6 + 1.0 * h.SLOW, took
    h.stop_clean(t)
    raw.close()
    raw2.close()


# ---- pods answering garbage ----

GARBAGE = [
    # (name, response bytes, status the client gets, term)
    ("not_http", b"\x00\x01garbage\r\n\r\n", 502, "bad_response"),
    ("http_0_9", b"hello world\n", 502, "bad_response"),
    ("bad_status", b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", 502, "bad_response"),
    ("cl_and_te", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 502, "bad_response"),
    ("cl_differing", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
     502, "bad_response"),
    ("cl_negative", b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello", 502, "bad_response"),
    ("nul_in_field", b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", 502,
     "bad_response"),
    ("obs_fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", 502,
     "bad_response"),
    ("bare_lf", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", 502, "bad_response"),
    ("space_before_colon", b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", 502, "bad_response"),
    ("huge_head", b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n", 502,
     "bad_response"),
    ("closed_without_answer", b"", 502, "server_reset"),
    ("half_head", b"HTTP/1.1 200 OK\r\nContent-Le", 502, "server_reset"),
]


def test_pod_garbage_502():
    raw = RawPod(None)
    pod, _, t = start(raw)
    failures = []
    for name, reply, want, term in GARBAGE:
        raw.reply = reply  # the pod closes after each answer: no connection is reused
        out, took, closed = fetch(t.port, "/raw/" + name)
        got_term = None
        try:
            got_term = h.wait_until(lambda: terms(t, "/raw/" + name), timeout=2)[0]
        except AssertionError:
            pass
        if status_of(out) != want or got_term != term or took > 2 * h.SLOW:
            failures.append("%s: %r term %s in %.1fs, want %d %s" % (
                name, out[:60], got_term, took, want, term))
        # the bad response never reaches the client as such
        if reply and reply[:20] in out:
            failures.append("%s: the pod's bytes were passed through" % name)
    assert t.alive()
    h.stop_clean(t)
    raw.close()
    assert not failures, "\n".join(failures)


def test_pod_bad_body_after_head():
    """The head is good, the body framing is not: the head was already passed on, so
    the client sees a truncated response and a close (never a desynced stream)."""
    for name, reply in [
        ("bad_chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"),
        ("short_cl", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this"),
    ]:
        raw = RawPod(reply)
        pod, _, t = start(raw)
        s = socket.create_connection(("127.0.0.1", t.port), timeout=5 * h.SLOW)
        s.sendall(b"GET /raw/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /raw/2 HTTP/1.1\r\nHost: x\r\n\r\n")
        out = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
        # nothing forwarded yet: a 502; else the head went out: a truncated 200 and
        # a close. Never silence, never a second response on a broken stream.
        assert out.count(b"HTTP/1.1 ") == 1 and status_of(out) in (200, 502), (name, out)
        if status_of(out) == 200:
            # the body never looks finished: no chunked terminator, no full length
            body = out[out.find(b"\r\n\r\n") + 4:]
            assert not body.endswith(b"0\r\n\r\n"), (name, out)
            assert not complete(out), (name, out)
        h.stop_clean(t)
        raw.close()
        pod.stop()


# ---- SIGHUP storm under load ----

def ws_connect(port, path="/ws"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * h.SLOW)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
               % path).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        assert d, "closed during the WebSocket handshake"
        head += d
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def ws_echo(s, payload):
    mask = os.urandom(4)
    n = len(payload)
    hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    got = b""
    while len(got) < 2 + n:
        d = s.recv(65536)
        assert d, "tunnel closed"
        got += d
    return got[2:2 + n] if n < 126 else got[4:4 + n]


def test_sighup_storm_under_load():
    pod, raw, t = start()
    ws = ws_connect(t.port)
    assert ws_echo(ws, b"before") == b"before"
    fds0 = len(os.listdir("/proc/%d/fd" % t.pid))
    errors, done = [], [0]
    stop = threading.Event()

    def load(kind):
        conn = None
        while not stop.is_set():
            try:
                if kind == "keepalive":
                    r = h.request(t.port, "POST", "/t/load", body=b"x" * 3000, conn=conn)
                    conn = r.conn
                else:
                    r = h.get(t.port, "/t/fresh?bytes=20000")
                if r.status != 200:
                    errors.append(r.status)
                done[0] += 1
            except Exception as e:  # any failure is an error: reloads must cut nothing
                errors.append(repr(e))
                conn = None

    ths = [threading.Thread(target=load, args=(k,)) for k in ("keepalive", "keepalive", "fresh")]
    for th in ths:
        th.start()
    confs = [CONF, CONF.replace("connect_timeout 500ms;", "connect_timeout 400ms;", 1)]
    for i in range(40):
        # replaced atomically (rename), so tether never reads a half-written file
        text = confs[i % 2]
        for k, v in t.kw.items():
            text = text.replace("{" + k + "}", str(v))
        with open(t.conf_path + ".new", "w") as f:
            f.write(text)
        os.replace(t.conf_path + ".new", t.conf_path)
        t.signal(signal.SIGHUP)
        time.sleep(0.05)
        if i % 10 == 9:
            assert ws_echo(ws, b"during %d" % i) == b"during %d" % i
    time.sleep(0.3)
    stop.set()
    for th in ths:
        th.join()
    assert not errors, errors[:5]
    assert done[0] > 100, done[0]
    assert ws_echo(ws, b"after") == b"after"
    ws.close()
    assert t.alive()
    err = errlog(t)
    assert not re.search(r"\[(error|crit|alert|emerg)\]", err), err[-2000:]
    # Old generations are freed: descriptors back to where they were (one tunnel less).
    h.wait_until(lambda: len(os.listdir("/proc/%d/fd" % t.pid)) <= fds0, timeout=5,
                 what="descriptors back after the storm")
    h.stop_clean(t)
    raw.close()


# ---- health flapping ----

HEALTH_CONF = """
workers 2;
error_log {dir}/error.log info;
upstream voice {
    server a {a};
    server b {b};
    retries 1;
    health_check { path /health; interval 50ms; timeout 100ms; rise 3; fall 3; }
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def health_transitions(t, server):
    return re.findall(r"health: server voice/%s is (UP|DOWN)" % server, errlog(t))


def test_flapping_health():
    a, b = h.Mockpod("a"), h.Mockpod("b")
    t = h.Tether(HEALTH_CONF, a=a.addr, b=b.addr)
    # Each phase (100 ms) lasts 2 checks: never 3 in a row, so a flapping endpoint
    # must not flap the server (hysteresis).
    a.control("/control/health/flap?period=100")
    statuses = []
    t_end = time.time() + 2.0
    while time.time() < t_end:
        statuses.append(h.get(t.port, "/x").status)
    assert set(statuses) == {200}, statuses
    assert health_transitions(t, "a") == [], health_transitions(t, "a")
    # Slow flapping (600 ms phases = 12 checks): the server goes down and up, each
    # change logged once, and clients see no error meanwhile (b takes the load).
    a.control("/control/health/flap?period=600")
    statuses = []
    t_end = time.time() + 2.5
    while time.time() < t_end:
        r = h.get(t.port, "/x")
        statuses.append(r.status)
    assert set(statuses) == {200}, statuses
    tr = health_transitions(t, "a")
    assert 2 <= len(tr) <= 6, tr
    assert all(x != y for x, y in zip(tr, tr[1:])), tr  # alternating, never repeated
    a.control("/control/health/ok")
    h.wait_until(lambda: health_transitions(t, "a")[-1:] == ["UP"], timeout=3, what="a up again")
    assert t.alive()
    h.stop_clean(t)


# ---- Redis slow and down ----

REDIS_CONF = """
workers 2;
error_log {dir}/error.log info;
access_log {access_log} json;
redis { server 127.0.0.1:{rport}; prefix "f:"; timeout 100ms; }
rate_limit_zone g key=$remote_addr rate=1000r/s burst=1000 global on_redis_error=local;
upstream voice { server pod-a {a}; }
affinity { learn header=X-Voice-Session-Id; header X-Voice-Session-Id; ttl 60s; }
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; limit_req g; }
    route / { upstream voice; affinity header; limit_req g; }
}
"""


class DebugRedis(h.Proc):
    """redis-server that accepts DEBUG SLEEP (off by default since Redis 7)."""

    def __init__(self, port=None):
        self.port = port or h.free_port()
        self.dir = __import__("tempfile").mkdtemp(prefix="redis-")
        super().__init__(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", self.dir,
                          "--enable-debug-command", "yes"])
        h.wait_port(self.port)

    cmd = h.Redis.cmd


def timed_get(port, path, headers=None):
    t0 = time.time()
    r = h.get(port, path, headers=headers)
    return r, time.time() - t0


def test_redis_slow_and_down():
    r = DebugRedis()
    pod = h.Mockpod("pod-a", args=["--session-header", "X-Voice-Session-Id"])
    t = h.Tether(REDIS_CONF, a=pod.addr, rport=r.port)
    h.wait_until(lambda: "up (worker" in errlog(t), what="redis up")
    s, _ = timed_get(t.port, "/session")
    assert s.status == 200
    sid = s.header("X-Voice-Session-Id")
    assert sid
    # Slow: Redis sleeps 1.5 s. Requests (rate-limit decision in Redis, session
    # lookups) still succeed, each within the 100 ms Redis timeout plus slack.
    th = threading.Thread(target=lambda: r.cmd("DEBUG", "SLEEP", "1.5"))
    th.start()
    time.sleep(0.1)
    worst = 0
    for i in range(10):
        resp, took = timed_get(t.port, "/x?i=%d" % i, headers={"X-Voice-Session-Id": sid})
        assert resp.status == 200, resp
        worst = max(worst, took)
    th.join()
    assert worst < 0.1 + 0.4 * h.SLOW, "a request waited %.3f s on a sleeping Redis" % worst
    # Down: Redis killed. Everything keeps serving from local state, failures logged.
    r.kill()
    for i in range(20):
        resp, took = timed_get(t.port, "/x?down=%d" % i, headers={"X-Voice-Session-Id": sid})
        assert resp.status == 200, resp
        assert took < 0.1 + 0.4 * h.SLOW, took
    s2, _ = timed_get(t.port, "/session")
    assert s2.status == 200
    # Back: tether reconnects by itself.
    n_up = errlog(t).count("up (worker")
    r2 = DebugRedis(port=r.port)
    h.wait_until(lambda: errlog(t).count("up (worker") > n_up, timeout=15,
                 what="redis reconnected")
    assert timed_get(t.port, "/x?back=1", headers={"X-Voice-Session-Id": sid})[0].status == 200
    assert t.alive()
    h.stop_clean(t)
    r2.stop()


if __name__ == "__main__":
    h.main(globals())
