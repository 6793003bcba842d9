# SPDX-License-Identifier: MIT
"""WebSocket tunnels: upgrade forwarding, echo through real clients (Debian
python3-websockets), 1 000 concurrent tunnels, idle timeout, half-close,
back-pressure, reloads and shutdown with live tunnels, refused upgrades (and
the bytes after them parsed as HTTP), affinity, per-server counts and the
memory of idle tunnels."""
import asyncio
import base64
import os
import re
import resource
import signal
import socket
import struct
import threading
import time
import urllib.request

import websockets.client
import websockets.exceptions

import harness as h

CONF = """
workers 2;
shutdown_timeout {shutdown};
error_log {dir}/error.log info;
access_log {access_log} json;
stats { listen 127.0.0.1:{sport}; }
upstream voice {
    balance round_robin;
    server pod-a {a};
    server pod-b {b};
}
affinity { cookie VOICE_AFFINITY; }
server {
    listen 127.0.0.1:{port};
    route / { upstream voice; }
    route /short/ { upstream voice; websocket_timeout 300ms; }
    route /fin/ { upstream voice; websocket_fin_timeout 300ms; }
    route /pin/ { upstream voice; affinity cookie; }
}
"""


def setup(shutdown="5s", conf=CONF):
    a, b = h.Mockpod("pod-a"), h.Mockpod("pod-b")
    t = h.Tether(conf, a=a.addr, b=b.addr, shutdown=shutdown, sport=h.free_port())
    return a, b, t


def raise_nofile(n=8192):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n)) if hard != resource.RLIM_INFINITY else max(soft, n)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def asan_build():
    """True when tether was built with AddressSanitizer (redzones and a
    quarantine per allocation: memory figures are not tether's own)."""
    with open(h.TETHER, "rb") as f:
        return b"__asan_init" in f.read()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---- raw WebSocket (RFC 6455) helpers for byte-level tests ----

def upgrade_req(path, extra=""):
    key = base64.b64encode(os.urandom(16)).decode()
    return ("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (path, key, extra)
            ).encode()


def frame(payload, op=2, mask=None):
    """A masked client frame with FIN (a random mask unless given)."""
    mask = mask if mask is not None else os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | op, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
    m = (mask * (n // 4 + 1))[:n]
    x = int.from_bytes(payload, "big") ^ int.from_bytes(m, "big") if n else 0
    return head + mask + (x.to_bytes(n, "big") if n else b"")


def recv_exact(s, n):
    out = bytearray()
    while len(out) < n:
        d = s.recv(min(n - len(out), 1 << 20))
        if not d:
            raise EOFError("closed after %d of %d bytes" % (len(out), n))
        out += d
    return bytes(out)


def read_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            raise EOFError("closed in head: %r" % data)
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin1"), rest


class Reader:
    """Reads frames from a socket, with bytes already received first."""

    def __init__(self, s, rest=b""):
        self.s, self.buf = s, bytearray(rest)

    def take(self, n):
        while len(self.buf) < n:
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError("closed")
            self.buf += d
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def frame(self):
        b0, b1 = self.take(2)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack("!H", self.take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.take(8))[0]
        return b0 & 0x0f, self.take(n)


def ws_open(port, path="/ws", extra=""):
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * h.SLOW)
    s.sendall(upgrade_req(path, extra))
    head, rest = read_head(s)
    assert head.startswith("HTTP/1.1 101 "), head
    return s, head, Reader(s, rest)


def metrics_tunnels(t):
    """{server: active tunnels} from /metrics, or None while it is not served."""
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % t.kw["sport"],
                                      timeout=2).read().decode()
    except OSError:
        return None
    out = {}
    for m in re.finditer(r'^tether_server_active_tunnels\{([^}]*)\} (\d+)', body, re.M):
        srv = re.search(r'server="([^"]*)"', m.group(1))
        if srv:
            out[srv.group(1)] = int(m.group(2))
    return out if out else None


def access_tunnels(t):
    """{server: open tunnels} from the access log: 101 lines minus tunnel_end lines."""
    out = {}
    for l in t.access():
        if l.get("status") != 101:
            continue
        d = -1 if l.get("event") == "tunnel_end" else 1
        out[l["server"]] = out.get(l["server"], 0) + d
    return out


async def recv(ws):
    """The next message, or a failure after 30 s: a stalled tunnel fails the test."""
    return await asyncio.wait_for(ws.recv(), 30 * h.SLOW)


def run(coro):
    return asyncio.run(coro)


def connect(port, path="/ws", **kw):
    return websockets.client.connect("ws://127.0.0.1:%d%s" % (port, path), max_size=None,
                                     ping_interval=None, open_timeout=20 * h.SLOW, **kw)


# ---- tests ----

def test_echo_10000_messages():
    a, b, t = setup()

    async def go():
        async with connect(t.port) as ws:
            assert ws.response_headers["X-Pod"] in ("pod-a", "pod-b")
            t0 = time.time()
            for i in range(10000):
                msg = "m%d" % i if i % 2 else os.urandom(i % 300)
                await ws.send(msg)
                assert await recv(ws) == msg, i
            return time.time() - t0

    secs = run(go())
    print("10000 ws:// echoes in %.2fs (%.0f msg/s)" % (secs, 10000 / secs))
    h.wait_until(lambda: any(l.get("event") == "tunnel_end" for l in t.access()),
                 what="tunnel_end line")
    end = [l for l in t.access() if l.get("event") == "tunnel_end"][0]
    assert end["term"] == "tunnel_closed" and end["bytes_in"] > 10000 * 6, end
    assert end["upstream"] == "voice" and end["server"] in ("pod-a", "pod-b"), end
    assert t.alive()
    t.stop()


def test_large_messages():
    a, b, t = setup()

    async def go():
        async with connect(t.port) as ws:
            for size in (65535, 65536, 1 << 20, 5 << 20, 15 << 20):
                msg = os.urandom(size)
                await ws.send(msg)
                got = await recv(ws)
                assert got == msg, (size, len(got))
            text = "é" * 300000
            await ws.send(text)
            assert await recv(ws) == text

    run(go())
    t.stop()


def test_1000_concurrent_tunnels_and_counts_per_server():
    raise_nofile(8192)
    a, b, t = setup()
    N = 1000

    async def go():
        sem = asyncio.Semaphore(200)
        all_open = asyncio.Event()
        count = [0]
        socks = []
        seen = {}

        async def one(i):
            async with sem:
                ws = await connect(t.port, "/ws?c=%d" % i)
            pod = ws.response_headers["X-Pod"]
            seen[pod] = seen.get(pod, 0) + 1
            socks.append(ws)
            count[0] += 1
            if count[0] == N:
                all_open.set()
            await asyncio.wait_for(all_open.wait(), 60 * h.SLOW)
            # Every tunnel is open at once here; each echoes a few messages.
            for k in range(3):
                msg = "%d-%d" % (i, k)
                await ws.send(msg)
                assert await recv(ws) == msg
            return ws

        results = await asyncio.gather(*(one(i) for i in range(N)))
        return results, seen

    async def main():
        results, seen = await go()
        assert len(results) == N and sum(seen.values()) == N, seen
        # Round robin: both pods carry half of the tunnels.
        assert abs(seen["pod-a"] - seen["pod-b"]) <= 2, seen
        counts = metrics_tunnels(t)
        if counts is None:
            await asyncio.sleep(0.3)  # the access log is flushed every 100 ms
            counts = access_tunnels(t)
        assert counts.get("pod-a") == seen["pod-a"] and counts.get("pod-b") == seen["pod-b"], \
            (counts, seen)
        assert a.stats()["websockets_open"] + b.stats()["websockets_open"] == N
        await asyncio.gather(*(ws.close() for ws in results))

    run(main())
    h.wait_until(lambda: len([l for l in t.access() if l.get("event") == "tunnel_end"]) == N,
                 timeout=15, what="1000 tunnel_end lines")
    counts = metrics_tunnels(t)
    if counts is not None:
        assert counts.get("pod-a") == 0 and counts.get("pod-b") == 0, counts
    assert access_tunnels(t) == {"pod-a": 0, "pod-b": 0}
    ends = [l for l in t.access() if l.get("event") == "tunnel_end"]
    assert all(l["term"] == "tunnel_closed" for l in ends), {l["term"] for l in ends}
    t.stop()


def test_idle_timeout_closes_tunnel():
    a, b, t = setup()

    async def go():
        # Busy every 100 ms for a second: the timeout is idle time, not age.
        async with connect(t.port, "/short/ws") as ws:
            for i in range(10):
                await asyncio.sleep(0.1)
                await ws.send("x%d" % i)
                assert await recv(ws) == "x%d" % i
            # Idle: tether closes both sides after ~300 ms.
            t0 = time.time()
            try:
                await asyncio.wait_for(ws.recv(), 5 * h.SLOW)
                raise AssertionError("message on an idle tunnel")
            except websockets.exceptions.ConnectionClosed:
                pass
            return time.time() - t0

    idle = run(go())
    assert 0.25 <= idle < 2.0 * h.SLOW, idle
    h.wait_until(lambda: [l for l in t.access() if l.get("event") == "tunnel_end"],
                 what="tunnel_end")
    end = [l for l in t.access() if l.get("event") == "tunnel_end"][0]
    assert end["term"] == "tunnel_timeout", end
    assert end["duration_ms"] >= 1000, end
    # The default route's timeout is an hour: a tunnel idle for 1 s stays.
    s, _, rd = ws_open(t.port, "/ws")
    time.sleep(1.0)
    s.sendall(frame(b"still here"))
    assert rd.frame() == (2, b"still here")
    s.close()
    t.stop()


def test_half_close_client_fin():
    a, b, t = setup()
    s, _, rd = ws_open(t.port)
    s.sendall(frame(b"before fin") + frame(b"x" * 100000))
    s.shutdown(socket.SHUT_WR)
    # The pod still gets both messages after the FIN, and its echoes come back.
    assert rd.frame() == (2, b"before fin")
    assert rd.frame() == (2, b"x" * 100000)
    # The pod closes on EOF; tether passes its FIN on.
    s.settimeout(5 * h.SLOW)
    assert s.recv(10) == b""
    s.close()
    h.wait_until(lambda: [l for l in t.access() if l.get("event") == "tunnel_end"],
                 what="tunnel_end")
    end = [l for l in t.access() if l.get("event") == "tunnel_end"][0]
    assert end["term"] == "tunnel_closed", end
    t.stop()


def test_half_close_pod_fin():
    a, b, t = setup()
    s, _, rd = ws_open(t.port)
    # A close frame: the pod echoes it and closes; tether's FIN reaches the
    # client while the client's sending side is still open.
    s.sendall(frame(b"\x03\xe8bye", op=8))
    assert rd.frame() == (8, b"\x03\xe8bye")
    s.settimeout(5 * h.SLOW)
    assert s.recv(10) == b""
    s.close()
    t.stop()


def test_half_closed_tunnel_fin_timeout():
    """The pod closes; a client that never closes its half is let go after
    websocket_fin_timeout (300 ms on /fin/), not after websocket_timeout."""
    a, b, t = setup()
    ends = lambda: [l for l in t.access() if l.get("event") == "tunnel_end"]

    def pod_closes(path):
        s, _, rd = ws_open(t.port, path)
        s.sendall(frame(b"\x03\xe8bye", op=8))
        assert rd.frame() == (8, b"\x03\xe8bye")
        s.settimeout(5 * h.SLOW)
        assert s.recv(10) == b""  # the pod's FIN, passed on
        return s

    # Default route (fin timeout 60 s): the half-closed tunnel stays.
    s = pod_closes("/ws")
    time.sleep(1.0)
    assert ends() == [], ends()
    s.close()
    h.wait_until(lambda: len(ends()) == 1, what="tunnel_end on client close")
    assert ends()[0]["term"] == "tunnel_closed", ends()
    # /fin/: let go after ~300 ms of silence.
    s = pod_closes("/fin/ws")
    t0 = time.time()
    h.wait_until(lambda: len(ends()) == 2, timeout=5 * h.SLOW, what="tunnel_end after the fin timeout")
    waited = time.time() - t0
    assert ends()[1]["term"] == "tunnel_timeout", ends()
    assert 0.2 <= waited < 3 * h.SLOW, waited
    s.close()
    t.stop()


def test_early_frames_sent_with_the_upgrade():
    a, b, t = setup()
    s = socket.create_connection(("127.0.0.1", t.port), timeout=10 * h.SLOW)
    # Frames pipelined right behind the upgrade request reach the pod after the 101.
    s.sendall(upgrade_req("/ws") + frame(b"early-1") + frame(b"e" * 5000))
    head, rest = read_head(s)
    assert head.startswith("HTTP/1.1 101 "), head
    rd = Reader(s, rest)
    assert rd.frame() == (2, b"early-1")
    assert rd.frame() == (2, b"e" * 5000)
    s.close()
    # Early bytes that fill tether's request buffer at the switch: the part
    # in the buffer and the part still in the socket arrive in order.
    for size in (16000, 16200, 16300, 16350):
        s = socket.create_connection(("127.0.0.1", t.port), timeout=10 * h.SLOW)
        payload = os.urandom(size)
        s.sendall(upgrade_req("/pin/ws") + frame(payload))
        head, rest = read_head(s)
        assert head.startswith("HTTP/1.1 101 ") and "Set-Cookie: VOICE_AFFINITY=" in head, head
        rd = Reader(s, rest)
        assert rd.frame() == (2, payload), size
        s.sendall(frame(b"after"))
        assert rd.frame() == (2, b"after")
        s.close()
    t.stop()


def test_pod_pushes_right_after_101():
    """A pod that sends a big message in the same write as its 101 (realtime
    APIs greet at once): the pod's bytes fill tether's buffer in the read that
    brings the head, and the head tether sends is longer (request id,
    Set-Cookie) than the pod's. Both must reach the client whole."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    sizes = (100, 16000, 16200, 16300, 16350, 40000)
    errors = []

    def pod():
        try:
            for size in sizes:
                c, _ = lsock.accept()
                c.settimeout(10 * h.SLOW)
                head, rest = read_head(c)
                greet = bytes((i * 7 + size) & 0xff for i in range(size))
                hdr = struct.pack("!BB", 0x82, 126 if size < 65536 else 127)
                hdr += struct.pack("!H" if size < 65536 else "!Q", size)
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\nX-Pod: py\r\n\r\n"
                          + hdr + greet)
                # Then echo raw bytes until the client closes.
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    c.sendall(d)
                c.close()
        except Exception as e:  # reported by the main thread
            errors.append(repr(e))

    th = threading.Thread(target=pod, daemon=True)
    th.start()
    conf = CONF.replace("server pod-a {a};", "server pod-py 127.0.0.1:%d;" % port)
    conf = conf.replace("server pod-b {b};", "")
    t = h.Tether(conf, a="", b="", shutdown="1s", sport=h.free_port())
    for size in sizes:
        s, head, rd = ws_open(t.port, "/pin/ws")
        assert "Set-Cookie: VOICE_AFFINITY=" in head and "X-Request-Id: " in head, head
        greet = bytes((i * 7 + size) & 0xff for i in range(size))
        op, got = rd.frame()
        assert got == greet, (size, len(got))
        s.sendall(b"raw bytes after")
        assert rd.take(15) == b"raw bytes after"
        s.close()
    th.join(10 * h.SLOW)
    lsock.close()
    assert not errors, errors
    t.stop()


def test_backpressure_slow_reader():
    a, b, t = setup()
    s, _, rd = ws_open(t.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    before = rss_kib(t.pid)
    chunk = os.urandom(4 << 20)
    total = 24  # 96 MiB in 4 MiB messages, echoed by the pod; the client does not read
    data = b"".join(frame(chunk) for _ in range(total))
    s.setblocking(False)
    sent, stalled_since = 0, None
    deadline = time.time() + 20 * h.SLOW
    while sent < len(data) and time.time() < deadline:
        try:
            sent += s.send(data[sent:sent + (1 << 20)])
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.time()
            if time.time() - stalled_since > 1.0:
                break  # everything between us and the pod is full
            time.sleep(0.01)
    assert sent < len(data), "never blocked: no back-pressure (%d bytes)" % sent
    grown = rss_kib(t.pid) - before
    # tether holds at most one 16 KiB buffer per direction; allow slack for
    # allocator noise, far below the tens of MiB in flight.
    assert grown < 4096, "tether RSS grew by %d KiB with %d MiB in flight" % (grown, sent >> 20)
    # Now read: every byte arrives, in order, and the rest gets through.
    s.setblocking(True)
    s.settimeout(30 * h.SLOW)
    got = [0]
    errors = []

    def reader():
        try:
            for _ in range(total):
                op, p = rd.frame()
                if p != chunk:
                    errors.append("corrupt message")
                got[0] += 1
        except Exception as e:
            errors.append(repr(e))

    th = threading.Thread(target=reader)
    th.start()
    s.sendall(data[sent:])
    th.join(60 * h.SLOW)
    assert not errors and got[0] == total, (errors, got)
    s.close()
    t.stop()


def test_reload_keeps_live_tunnels():
    a, b, t = setup()
    N = 50

    async def go():
        conns = [await connect(t.port, "/ws?r=%d" % i) for i in range(N)]
        pods = {ws.response_headers["X-Pod"] for ws in conns}
        assert pods == {"pod-a", "pod-b"}, pods
        for k in range(5):
            # Real changes: a new route, a new timeout, and pod-b dropped from
            # the config; none of them cuts a live tunnel.
            conf = CONF.replace("route /pin/", "route /r%d/ { upstream voice; }\n    route /pin/" % k)
            if k >= 3:
                conf = conf.replace("server pod-b {b};", "")
            t.reload(conf)
            await asyncio.sleep(0.2)
            for i, ws in enumerate(conns):
                msg = "%d/%d" % (k, i)
                await ws.send(msg)
                assert await recv(ws) == msg
        assert h.get(t.port, "/r4/x").status == 200
        # New tunnels follow the new config: pod-a only.
        async with connect(t.port) as ws:
            assert ws.response_headers["X-Pod"] == "pod-a"
        for ws in conns:
            await ws.close()

    run(go())
    log = open(t.dir + "/error.log").read()
    assert log.count("configuration reloaded") >= 5, log[-800:]
    h.wait_until(lambda: len([l for l in t.access() if l.get("event") == "tunnel_end"]) >= N,
                 what="tunnel_end lines")
    ends = [l for l in t.access() if l.get("event") == "tunnel_end"]
    assert all(l["term"] == "tunnel_closed" for l in ends), [l["term"] for l in ends]
    t.stop()


def test_shutdown_waits_for_tunnels_then_exits_0():
    a, b, t = setup(shutdown="1500ms")
    s, _, rd = ws_open(t.port)
    t0 = time.time()
    t.signal(signal.SIGTERM)
    time.sleep(0.3)
    # New connections are refused; the live tunnel still works while draining.
    try:
        socket.create_connection(("127.0.0.1", t.port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    assert refused
    s.sendall(frame(b"during drain"))
    assert rd.frame() == (2, b"during drain")
    s.settimeout(5 * h.SLOW)
    assert s.recv(10) == b""  # closed at shutdown_timeout
    waited = time.time() - t0
    assert 1.3 <= waited < 4 * h.SLOW, waited
    rc = t.p.wait(timeout=5 * h.SLOW)
    assert rc == 0, rc
    ends = [l for l in t.access() if l.get("event") == "tunnel_end"]
    assert ends and ends[0]["term"] == "shutdown", ends

    # A tunnel that ends by itself lets tether exit before the timeout.
    a2, b2, t2 = setup(shutdown="10s")
    s, _, rd = ws_open(t2.port)
    t0 = time.time()
    t2.signal(signal.SIGTERM)
    time.sleep(0.3)
    s.sendall(frame(b"\x03\xe8", op=8))
    assert rd.frame()[0] == 8
    s.close()
    rc = t2.p.wait(timeout=5 * h.SLOW)
    assert rc == 0 and time.time() - t0 < 3 * h.SLOW, (rc, time.time() - t0)
    t.stop()
    t2.stop()


def test_refused_upgrade_then_normal_request():
    a, b, t = setup()
    s = socket.create_connection(("127.0.0.1", t.port), timeout=10 * h.SLOW)
    s.sendall(upgrade_req("/ws?ws_refuse=1"))
    head, rest = read_head(s)
    assert head.startswith("HTTP/1.1 403 "), head
    n = int(re.search(r"Content-Length: (\d+)", head, re.I).group(1))
    while len(rest) < n:
        rest += s.recv(4096)
    assert b"websocket refused" in rest
    # Same connection: a plain request is parsed and proxied as usual.
    s.sendall(b"GET /echo?after=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    head, rest = read_head(s)
    assert head.startswith("HTTP/1.1 200 "), head
    s.close()
    reqs = a.requests() + b.requests()
    paths = sorted(r["path"] for r in reqs)
    assert paths == ["/echo?after=1", "/ws?ws_refuse=1"], reqs
    # The pod saw the handshake headers of the upgrade.
    up = {k.lower(): v for k, v in [r for r in reqs if r["path"].startswith("/ws")][0]["headers"]}
    assert up["upgrade"].lower() == "websocket" and up["connection"].lower() == "upgrade", up
    assert up["sec-websocket-version"] == "13" and "sec-websocket-key" in up, up
    t.stop()


def test_refused_upgrade_bytes_after_are_http():
    a, b, t = setup()
    # A request pipelined behind the refused upgrade is a separate request
    # (it reaches the pod rewritten, with tether's headers), not tunnel bytes.
    data = upgrade_req("/ws?ws_refuse=1") + \
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n"
    out = h.parse_responses(h.raw(t.port, data, timeout=5))
    assert [st for st, _, _ in out] == [403, 200], out
    seen = [r for r in a.requests() + b.requests() if r["path"] == "/smuggled"]
    assert len(seen) == 1 and seen[0]["method"] == "GET", seen
    hdrs = {k.lower(): v for k, v in seen[0]["headers"]}
    assert hdrs.get("x-forwarded-for") == "6.6.6.6, 127.0.0.1", hdrs
    assert "x-request-id" in hdrs and "upgrade" not in hdrs, hdrs
    # Bytes after a refused upgrade are not tunnel bytes: a WebSocket frame (its
    # header has control bytes) and a line of non-token bytes both get 400, the
    # connection closes, and the pod sees neither.
    before = len(a.requests() + b.requests())
    for junk in (frame(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n", mask=b"\0\0\0\0"),
                 b"\x82\xfe\xb7 /x HTTP/1.1\r\nHost: x\r\n\r\n"):
        out = h.raw(t.port, upgrade_req("/ws?ws_refuse=1") + junk, timeout=5)
        resp = h.parse_responses(out)
        assert [st for st, _, _ in resp] == [403, 400], out
    assert len(a.requests() + b.requests()) == before + 2
    # An Upgrade that is not a WebSocket upgrade is not forwarded at all.
    r = h.get(t.port, "/echo", headers={"Connection": "Upgrade", "Upgrade": "h2c"})
    got = {k.lower() for k, _ in r.json()["headers"]}
    assert r.status == 200 and "upgrade" not in got and "connection" not in got, got
    t.stop()


def test_affinity_cookie_pins_tunnel():
    a, b, t = setup()
    r = h.get(t.port, "/pin/session")
    cookie = r.header("Set-Cookie").split(";")[0]
    pod = r.header("X-Pod")

    async def go():
        for i in range(8):
            async with connect(t.port, "/pin/ws?i=%d" % i,
                               extra_headers={"Cookie": cookie}) as ws:
                assert ws.response_headers["X-Pod"] == pod, (i, pod)
                await ws.send("hi")
                assert await recv(ws) == "hi"
        # Without the cookie the tunnels spread, and the 101 sets the cookie.
        pods = set()
        for i in range(4):
            async with connect(t.port, "/pin/ws") as ws:
                pods.add(ws.response_headers["X-Pod"])
                sc = ws.response_headers.get("Set-Cookie", "")
                assert sc.startswith("VOICE_AFFINITY=") and "HttpOnly" in sc, sc
        assert pods == {"pod-a", "pod-b"}, pods

    run(go())
    h.wait_until(lambda: len([l for l in t.access() if l.get("event") == "tunnel_end"]) == 12,
                 what="tunnel_end lines")
    aff = [l for l in t.access() if l.get("status") == 101 and "affinity" in l]
    assert sum(1 for l in aff if l["affinity"] == "cookie") == 8, aff
    t.stop()


def test_idle_tunnel_memory():
    raise_nofile(8192)
    a = h.Mockpod("pod-a")
    conf = CONF.replace("server pod-b {b};", "")
    t = h.Tether(conf, a=a.addr, b="", shutdown="1s", sport=h.free_port())
    N = 1000

    async def open_many(n):
        sem = asyncio.Semaphore(100)

        async def one():
            async with sem:
                r, w = await asyncio.open_connection("127.0.0.1", t.port)
                w.write(upgrade_req("/ws"))
                head = await r.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101 "), head
                return w

        return await asyncio.gather(*(one() for _ in range(n)))

    async def go():
        warm = await open_many(100)  # pools, free lists and arenas warmed up
        for w in warm:
            w.close()
        await asyncio.sleep(0.5)
        base = rss_kib(t.pid)
        live = await open_many(N)
        await asyncio.sleep(0.5)  # idle: every buffer is back
        grown = rss_kib(t.pid) - base
        # The tunnels are alive: the last one still echoes.
        return live, grown

    async def main():
        live, grown = await go()
        per = grown * 1024 / N
        limit = 8192 if asan_build() else 4096
        print("idle tunnel: %.0f bytes of tether RSS each (%d tunnels, %d KiB; bound %d%s)"
              % (per, N, grown, limit, ", ASan build" if limit > 4096 else ""))
        assert per < limit, per
        assert a.stats()["websockets_open"] == N
        for w in live:
            w.close()

    run(main())
    t.stop()


if __name__ == "__main__":
    h.main(globals(), tmp_prefix="tether-test-websocket-")
