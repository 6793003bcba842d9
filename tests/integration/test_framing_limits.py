# SPDX-License-Identifier: MIT
"""Strict framing (ambiguous requests get 400 and a close), limits with their
status codes (431, 413, 408, 504), keep-alive idle timeout, 404/502/503, and the
shape of tether's own error replies."""
import socket
import threading
import time

import harness as h

CONF = """
workers 2;
error_log {dir}/error.log info;
access_log {access_log} json;
upstream voice {
    server pod-a {a};
    connect_timeout 300ms;
    retries 0;
}
upstream dead { server nobody 127.0.0.1:{deadport}; retries 1; }
upstream blackhole { server bh 127.0.0.1:{bhport}; connect_timeout 300ms; retries 0; }
server {
    listen 127.0.0.1:{port};
    client_header_timeout 400ms;
    client_body_timeout 400ms;
    keepalive_timeout 500ms;
    max_header_size 4k;
    max_headers 20;
    client_max_body_size 1k;
    route /big/ { upstream voice; client_max_body_size 100k; }
    route /slow/ { upstream voice; timeout 300ms; }
    route /dead/ { upstream dead; }
    route /bh/ { upstream blackhole; }
    route /sdp { upstream voice; }
    route = /exact { upstream voice; }
}
"""


def setup():
    pod = h.Mockpod("pod-a")
    # A listener whose accept queue is full: connects to it hang (SYNs dropped).
    bh = socket.socket()
    bh.bind(("127.0.0.1", 0))
    bh.listen(0)
    fillers = []
    for _ in range(8):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(bh.getsockname())
        except BlockingIOError:
            pass
        fillers.append(c)
    t = h.Tether(CONF, a=pod.addr, deadport=h.free_port(), bhport=bh.getsockname()[1])
    t._keep = (bh, fillers)
    return pod, t


def status_of(data):
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


# Ambiguous or malformed requests: expected status, and the connection closes.
BAD = [
    (b"POST /sdp HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /sdp HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"GET /sdp HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    (b"GET /sdp HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    (b"GET /sdp HTTP/1.1\nHost: x\n\n", 400),
    (b"GET /sdp HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    (b"GET /sdp HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    (b"GET /sdp HTTP/1.1\r\n\r\n", 400),
    (b"GET /sdp HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    (b"POST /sdp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST /sdp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", 400),
    (b"GET /sdp HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /sdp/../admin HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /sdp HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(30)) + b"\r\n", 431),
    (b"GET /sdp HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", 431),
]


def test_malformed_requests_rejected_and_closed():
    pod, t = setup()
    for req, want in BAD:
        # Valid pipelined request after the bad one must never reach the pod.
        data = h.raw(t.port, req + b"GET /sdp?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
        assert status_of(data) == want, (req[:60], data[:80])
        assert data.count(b"HTTP/1.1 ") == 1, data
        assert b"Connection: close" in data
    assert not any("smuggled" in r["path"] for r in pod.requests()), pod.requests()
    t.stop()


def test_error_reply_shape():
    pod, t = setup()
    data = h.raw(t.port, b"GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = h.parse_responses(data)
    st, hd, body = out[0]
    assert st == 404 and body == b"404 Not Found\n", out
    assert hd["content-type"] == "text/plain" and hd["content-length"] == str(len(body))
    assert len(hd["x-request-id"]) == 32
    # 404 keeps the connection: a second request on it works
    out = h.parse_responses(h.raw(t.port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                                  b"GET /sdp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert [o[0] for o in out] == [404, 200], out
    t.stop()


def test_body_size_limits():
    pod, t = setup()
    assert h.request(t.port, "POST", "/sdp", body=b"x" * 1024).status == 200
    assert h.request(t.port, "POST", "/sdp", body=b"x" * 1025).status == 413
    assert h.request(t.port, "POST", "/big/upload", body=b"x" * 50000).status == 200
    # chunked bodies are counted as they stream
    chunks = b"400\r\n" + b"y" * 1024 + b"\r\n" + b"1\r\nz\r\n0\r\n\r\n"
    data = h.raw(t.port, b"POST /sdp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    assert status_of(data) == 413, data[:100]
    t.stop()


def test_client_header_timeout_408():
    pod, t = setup()
    s = socket.create_connection(("127.0.0.1", t.port))
    s.sendall(b"GET /sdp HTTP/1.1\r\nHost: x\r\n")
    s.settimeout(5)
    data = s.recv(4096)
    assert status_of(data) == 408, data
    # an idle connection that never sent a byte is just closed
    s2 = socket.create_connection(("127.0.0.1", t.port))
    s2.settimeout(5)
    assert s2.recv(10) == b""
    t.stop()


def test_keepalive_idle_timeout():
    pod, t = setup()
    s = socket.create_connection(("127.0.0.1", t.port))
    s.sendall(b"GET /sdp HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    first = s.recv(4096)
    assert status_of(first) == 200
    t0 = time.time()
    assert s.recv(10) == b""  # closed after keepalive_timeout
    assert time.time() - t0 < 4
    t.stop()


def test_slow_body_408_or_close():
    pod, t = setup()
    s = socket.create_connection(("127.0.0.1", t.port))
    s.sendall(b"POST /sdp HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    s.settimeout(5)
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    # The body stalled: tether gives up on the client (timeout) and closes.
    assert data == b"" or status_of(data) in (408, 502, 504), data
    h.wait_until(lambda: any(l.get("term") == "client_timeout" for l in t.access()),
                 what="client_timeout in the access log")
    t.stop()


def test_response_timeout_504_and_connect_timeout_504():
    pod, t = setup()
    r = h.get(t.port, "/slow/x?delay=2000")
    assert r.status == 504, r
    r = h.get(t.port, "/bh/x")
    assert r.status == 504, r
    h.wait_until(lambda: {"server_timeout", "connect_timeout"} <= {l.get("term") for l in t.access()},
                 what="timeouts in the access log")
    t.stop()


def test_unreachable_server_502():
    pod, t = setup()
    r = h.get(t.port, "/dead/x")
    assert r.status == 502 and r.body == "502 Bad Gateway\n", r
    h.wait_until(lambda: any(l.get("term") == "server_refused" for l in t.access()),
                 what="server_refused")
    t.stop()


def test_exact_vs_prefix_routes():
    pod, t = setup()
    assert h.get(t.port, "/exact").status == 200
    assert h.get(t.port, "/exact/more").status == 404
    assert h.get(t.port, "/exact?q=1").status == 200
    assert h.get(t.port, "/sdpx").status == 200  # prefix "/sdp"
    t.stop()


if __name__ == "__main__":
    h.main(globals())
