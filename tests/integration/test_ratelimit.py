# SPDX-License-Identifier: MIT
"""Rate limiting: GCRA zones exact across worker threads, 429 with Retry-After
and RateLimit-* headers, pacing vs nodelay, keys, limit_conn, real client
addresses from trusted proxies and the PROXY protocol."""
import socket
import struct
import threading
import time

import harness as h

CONF = """
workers 2;
access_log {access_log} json;
rate_limit_zone per_ip key=$remote_addr rate={rate} burst={burst} nodelay;
rate_limit_zone per_user key=$http_x_user rate=1r/m burst=2 nodelay status=503;
rate_limit_zone per_route key=$remote_addr$route rate=1r/m burst=1 nodelay;
rate_limit_zone paced key=$remote_addr rate=10r/s burst=5;
upstream voice { server pod-a {a}; }
server {
    listen 127.0.0.1:{port};
    real_ip_from {trusted};
    route /limited/ { upstream voice; limit_req per_ip; }
    route /user/ { upstream voice; limit_req per_user; }
    route /r1/ { upstream voice; limit_req per_route; }
    route /r2/ { upstream voice; limit_req per_route; }
    route /paced/ { upstream voice; limit_req paced; }
    route / { upstream voice; }
}
"""


def setup(rate="100r/s", burst=50, trusted="127.0.0.1/32"):
    pod = h.Mockpod("pod-a", threads=2)
    t = h.Tether(CONF, a=pod.addr, rate=rate, burst=burst, trusted=trusted)
    return pod, t


def test_exact_across_threads_100rps_burst50_10s():
    pod, t = setup()
    ok = [0]
    limited = [0]
    lock = threading.Lock()
    deadline = time.time() + 10.0

    def client():
        conn = None
        while time.time() < deadline:
            try:
                r = h.get(t.port, "/limited/x", conn=conn)
            except Exception:
                conn = None
                continue
            conn = r.conn
            with lock:
                if r.status == 200:
                    ok[0] += 1
                elif r.status == 429:
                    limited[0] += 1
        if conn:
            conn.close()

    # Several connections land on both workers: the limit is shared by them.
    ths = [threading.Thread(target=client) for _ in range(6)]
    t0 = time.time()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    elapsed = time.time() - t0
    expected = 100 * elapsed + 50
    assert limited[0] > 0, (ok, limited)
    assert abs(ok[0] - expected) <= 0.05 * expected, (ok[0], expected, limited[0])
    print("admitted %d of %d in %.2fs (expected %.0f)" % (ok[0], ok[0] + limited[0], elapsed, expected))
    t.stop()


def test_429_headers_and_log():
    pod, t = setup(rate="1r/m", burst=2)
    codes = [h.get(t.port, "/limited/x") for _ in range(4)]
    assert [r.status for r in codes] == [200, 200, 200, 429], [r.status for r in codes]
    r = codes[3]
    assert int(r.header("Retry-After")) >= 1
    assert r.header("RateLimit-Limit") == "3" and r.header("RateLimit-Remaining") == "0"
    assert int(r.header("RateLimit-Reset")) >= 1
    h.wait_until(lambda: any(l["term"] == "rate_limited" and l["status"] == 429 for l in t.access()),
                 what="rate_limited in the access log")
    # other routes are not limited
    assert h.get(t.port, "/other").status == 200
    t.stop()


def test_header_key_status_503_and_route_key():
    pod, t = setup()
    st = [h.get(t.port, "/user/x", headers={"X-User": "alice"}).status for _ in range(4)]
    assert st == [200, 200, 200, 503], st
    assert h.get(t.port, "/user/x", headers={"X-User": "bob"}).status == 200
    # requests without the header are not limited by that zone
    assert all(h.get(t.port, "/user/x").status == 200 for _ in range(5))
    # $remote_addr$route: each route has its own budget
    assert [h.get(t.port, "/r1/x").status for _ in range(3)] == [200, 200, 429]
    assert [h.get(t.port, "/r2/x").status for _ in range(3)] == [200, 200, 429]
    t.stop()


def test_pacing_without_nodelay():
    pod, t = setup()
    # rate 10r/s burst 5 without nodelay: 6 requests at once are admitted but
    # spread at the rate (nginx-style), not refused.
    t0 = time.time()
    res = []

    def one():
        res.append(h.get(t.port, "/paced/x").status)

    ths = [threading.Thread(target=one) for _ in range(6)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    took = time.time() - t0
    assert res == [200] * 6, res
    assert took >= 0.4, took  # the 6th waited about 5 intervals of 100 ms
    t.stop()


def test_real_ip_from_trusted_proxy_only():
    pod, t = setup(rate="1r/m", burst=0)
    xff = lambda ip: {"X-Forwarded-For": "198.51.100.7, " + ip}
    assert h.get(t.port, "/limited/x", headers=xff("203.0.113.1")).status == 200
    assert h.get(t.port, "/limited/x", headers=xff("203.0.113.1")).status == 429
    assert h.get(t.port, "/limited/x", headers=xff("203.0.113.2")).status == 200
    h.wait_until(lambda: any(l["client"] == "203.0.113.2" for l in t.access()), what="real ip logged")
    t.stop()
    # peer not trusted: the header is ignored, the peer address is the key
    pod, t = setup(rate="1r/m", burst=0, trusted="10.0.0.0/8")
    assert h.get(t.port, "/limited/x", headers=xff("203.0.113.1")).status == 200
    assert h.get(t.port, "/limited/x", headers=xff("203.0.113.2")).status == 429
    t.stop()


LC_CONF = """
workers 2;
upstream voice { server pod-a {a}; }
server {
    listen 127.0.0.1:{port};
    listen 127.0.0.1:{pport} proxy_protocol;
    limit_conn 3;
    route / { upstream voice; }
}
"""


def test_limit_conn_per_client():
    pod = h.Mockpod("pod-a")
    t = h.Tether(LC_CONF, a=pod.addr, pport=h.free_port())
    conns = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", t.port))
        s.sendall(b"GET /sdp HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        conns.append(s)
    data = h.raw(t.port, b"GET /sdp HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 429"), data[:60]
    conns.pop().close()
    time.sleep(0.2)
    data = h.raw(t.port, b"GET /sdp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200"), data[:60]
    for s in conns:
        s.close()
    t.stop()


def proxy_v2(src, dst, sport, dport):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs


def test_proxy_protocol_v1_v2():
    pod = h.Mockpod("pod-a")
    pport = h.free_port()
    t = h.Tether(LC_CONF, a=pod.addr, pport=pport)
    h.wait_port(pport)
    data = h.raw(pport, b"PROXY TCP4 192.0.2.10 10.0.0.1 5555 443\r\n"
                 b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b'"X-Forwarded-For","192.0.2.10"' in data, data[-400:]
    data = h.raw(pport, proxy_v2("192.0.2.77", "10.0.0.1", 6000, 443) +
                 b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b'"X-Forwarded-For","192.0.2.77"' in data, data[-400:]
    # a listener that expects the header refuses a connection without one
    data = h.raw(pport, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200 OK" not in data
    # limit_conn counts the real client (3 connections of 192.0.2.10 max)
    socks = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", pport))
        s.sendall(b"PROXY TCP4 192.0.2.10 10.0.0.1 5555 443\r\nGET /sdp HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        socks.append(s)
    data = h.raw(pport, b"PROXY TCP4 192.0.2.10 10.0.0.1 5555 443\r\nGET /sdp HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 429"), data[:60]
    data = h.raw(pport, b"PROXY TCP4 192.0.2.11 10.0.0.1 5555 443\r\nGET /sdp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200"), data[:60]
    for s in socks:
        s.close()
    t.stop()


ZONE_CONF = """
workers 2;
limit_conn_zone per_tenant key=$http_x_tenant;
upstream voice { server pod-a {a}; }
server {
    listen 127.0.0.1:{port};
    limit_conn per_tenant 2;
    route / { upstream voice; }
}
"""


def test_limit_conn_zone_by_header():
    pod = h.Mockpod("pod-a")
    t = h.Tether(ZONE_CONF, a=pod.addr)

    def open_conn(tenant):
        s = socket.create_connection(("127.0.0.1", t.port))
        s.sendall(b"GET /sdp HTTP/1.1\r\nHost: x\r\nX-Tenant: %s\r\n\r\n" % tenant)
        return s, s.recv(4096)

    held = [open_conn(b"acme") for _ in range(2)]
    assert all(d.startswith(b"HTTP/1.1 200") for _, d in held)
    s3, d3 = open_conn(b"acme")
    assert d3.startswith(b"HTTP/1.1 429"), d3[:60]
    s4, d4 = open_conn(b"other")
    assert d4.startswith(b"HTTP/1.1 200"), d4[:60]
    for s, _ in held + [(s3, 0), (s4, 0)]:
        s.close()
    t.stop()


if __name__ == "__main__":
    h.main(globals())
