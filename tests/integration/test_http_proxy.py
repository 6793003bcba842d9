# SPDX-License-Identifier: MIT
"""HTTP/1.1 proxying: keep-alive both sides, pipelining, HEAD/1xx/204/304,
Expect: 100-continue, hop-by-hop removal, X-Forwarded-*, X-Request-Id,
chunked and close-delimited bodies, HTTP/1.0 clients."""
import json
import os
import re
import socket
import time

import harness as h

CONF = """
workers 2;
error_log {dir}/error.log info;
access_log {access_log} json;
upstream voice {
    server pod-a {a};
    keepalive 16;
}
server {
    listen 127.0.0.1:{port};
    route / { upstream voice; }
}
"""


def setup(conf=CONF, **kw):
    pod = h.Mockpod("pod-a")
    t = h.Tether(conf, a=pod.addr, **kw)
    return pod, t


def test_keepalive_client_and_pool():
    pod, t = setup()
    r = h.get(t.port, "/sdp")
    conn = r.conn
    before = pod.stats()["connections_accepted"]
    for i in range(50):
        r = h.get(t.port, "/sdp?i=%d" % i, conn=conn)
        assert r.status == 200 and r.header("X-Pod") == "pod-a"
    conn.close()
    st = pod.stats()
    # 50 more requests on one client connection reused tether's pooled
    # connection: the pod accepted only the stats request's own connection.
    assert st["requests"] == 51, st
    assert st["connections_accepted"] - before == 1, (before, st)
    t.stop()


def test_pipelined_requests_answered_in_order():
    pod, t = setup()
    reqs = "".join("GET /tools/%d?delay=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i, (5 - i) * 20)
                   for i in range(5))
    reqs += "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = h.parse_responses(h.raw(t.port, reqs, timeout=5))
    assert len(out) == 6, out
    paths = [json.loads(b)["path"] for _, _, b in out]
    assert paths == ["/tools/0", "/tools/1", "/tools/2", "/tools/3", "/tools/4", "/last"], paths
    t.stop()


def test_head_204_304_have_no_body():
    pod, t = setup()
    data = h.raw(
        t.port,
        "HEAD /sdp?bytes=1000 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /x?status=204 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /x?status=304 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /sdp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    # The HEAD response announces 1000 bytes and sends none: the next bytes
    # are the 204's status line.
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 1000" in head, head
    assert rest.startswith(b"HTTP/1.1 204 "), rest[:40]
    out = h.parse_responses(rest)
    assert [s for s, _, _ in out] == [204, 304, 200], out
    assert out[0][2] == b"" and out[1][2] == b""
    assert json.loads(out[2][2])["pod"] == "pod-a"
    t.stop()


def test_expect_100_continue():
    pod, t = setup()
    s = socket.create_connection(("127.0.0.1", t.port), timeout=5)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    first = s.recv(4096)
    assert first.startswith(b"HTTP/1.1 100 Continue\r\n"), first
    s.sendall(b"hello")
    rest = b""
    while b"}" not in rest:
        d = s.recv(4096)
        if not d:
            break
        rest += d
    s.close()
    resp = h.parse_responses(first[first.find(b"\r\n\r\n") + 4:] + rest)
    assert resp[0][0] == 200 and json.loads(resp[0][2])["bytes"] == 5, resp
    t.stop()


def test_hop_by_hop_removed_and_forwarded_headers_set():
    pod, t = setup()
    r = h.get(t.port, "/echo", headers={
        "Connection": "keep-alive, X-Secret",
        "X-Secret": "drop me",
        "Keep-Alive": "timeout=5",
        "Proxy-Connection": "keep-alive",
        "TE": "trailers",
        "Proxy-Authorization": "Basic abc",
        "X-Forwarded-For": "10.1.1.1",
        "X-Forwarded-Proto": "https",
        "X-Keep": "yes",
    })
    assert r.status == 200
    got = {k.lower(): v for k, v in r.json()["headers"]}
    for gone in ("connection", "x-secret", "keep-alive", "proxy-connection", "te",
                 "proxy-authorization"):
        assert gone not in got, (gone, got)
    assert got["x-keep"] == "yes"
    assert got["x-forwarded-for"] == "10.1.1.1, 127.0.0.1", got
    assert got["x-forwarded-proto"] == "http"
    assert got["x-forwarded-host"] == "127.0.0.1:%d" % t.port
    assert re.fullmatch(r"[0-9a-f]{32}", got["x-request-id"]), got
    assert r.header("X-Request-Id") == got["x-request-id"]
    t.stop()


def test_request_id_kept_or_replaced():
    pod, t = setup()
    r = h.get(t.port, "/echo", headers={"X-Request-Id": "abc-123.x"})
    got = {k.lower(): v for k, v in r.json()["headers"]}
    assert got["x-request-id"] == "abc-123.x" and r.header("X-Request-Id") == "abc-123.x"
    r = h.get(t.port, "/echo", headers={"X-Request-Id": "bad id with spaces"})
    got = {k.lower(): v for k, v in r.json()["headers"]}
    assert re.fullmatch(r"[0-9a-f]{32}", got["x-request-id"]), got
    t.stop()


def test_bodies_chunked_and_close_delimited():
    pod, t = setup()
    # chunked request body
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"a" * 100, b"b" * 7000, b"c")) + b"0\r\n\r\n"
    out = h.parse_responses(h.raw(
        t.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + body))
    assert out[0][0] == 200 and json.loads(out[0][2])["bytes"] == 7101, out
    # chunked response passes through, then the connection is reused
    out = h.parse_responses(h.raw(
        t.port, "GET /x?bytes=50000&chunked=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /sdp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5))
    assert out[0][1].get("transfer-encoding") == "chunked" and len(out[0][2]) == 50000, out[0][1]
    assert out[1][0] == 200
    # close-delimited response: delivered whole, client connection closed after
    data = h.raw(t.port, "GET /x?bytes=30000&close=1 HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and len(rest) == 30000, (head, len(rest))
    t.stop()


def test_http10_client():
    pod, t = setup()
    data = h.raw(t.port, "GET /x?bytes=20000&chunked=1 HTTP/1.0\r\n\r\n", timeout=5)
    head, _, body = data.partition(b"\r\n\r\n")
    # An HTTP/1.0 client gets the chunked body de-chunked and a close.
    assert b"Transfer-Encoding" not in head, head
    assert len(body) == 20000 and body[:3] == b"abc", (head, len(body))
    # keep-alive for HTTP/1.0 only when asked
    out = h.parse_responses(h.raw(
        t.port, "GET /sdp HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /sdp HTTP/1.0\r\n\r\n"))
    assert len(out) == 2 and out[0][1].get("connection") == "keep-alive", out
    # An HTTP/1.0 request without Host goes to the pod as HTTP/1.1, which must
    # carry one: it names the upstream (as nginx does); one given is kept.
    data = h.raw(t.port, "GET /echo HTTP/1.0\r\n\r\n", timeout=5)
    head, _, body = data.partition(b"\r\n\r\n")
    got = json.loads(body)
    hosts = [v for k, v in got["headers"] if k.lower() == "host"]
    assert got["version"] == "HTTP/1.1" and hosts == ["voice"], got
    assert not [k for k, v in got["headers"] if k.lower() == "x-forwarded-host"], got
    data = h.raw(t.port, "GET /echo HTTP/1.0\r\nHost: given.example\r\n\r\n", timeout=5)
    got = json.loads(data.partition(b"\r\n\r\n")[2])
    assert [v for k, v in got["headers"] if k.lower() == "host"] == ["given.example"], got
    t.stop()


def test_access_log_json_fields():
    pod, t = setup()
    r = h.get(t.port, "/tools/run?x=1", headers={"X-Request-Id": "rid-42"})
    assert r.status == 200
    h.wait_until(lambda: t.access(), what="access log line")
    line = [l for l in t.access() if l.get("request_id") == "rid-42"][0]
    for k in ("time", "client", "method", "path", "request", "route", "upstream", "server", "status",
              "bytes_in", "bytes_out", "duration_ms", "connect_ms", "upstream_ms", "request_id",
              "affinity", "term"):
        assert k in line, (k, line)
    assert line["method"] == "GET" and line["request"] == "/tools/run?x=1"
    assert line["path"] == "/tools/run"
    assert line["route"] == "/" and line["upstream"] == "voice" and line["server"] == "pod-a"
    assert line["status"] == 200 and line["term"] == "ok" and line["client"] == "127.0.0.1"
    assert line["bytes_out"] > 0 and line["duration_ms"] >= 0
    t.stop()


def test_access_log_combined_format():
    pod, t = setup(CONF.replace("access_log {access_log} json;", "access_log {access_log} combined;"))
    h.get(t.port, "/sdp?a=1", headers={"X-Request-Id": "comb-1"})
    h.wait_until(lambda: os.path.exists(t.access_log) and open(t.access_log).read().strip(),
                 what="combined line")
    line = open(t.access_log).read().strip().splitlines()[0]
    assert re.match(r'127\.0\.0\.1 - - \[[^\]]+\] "GET /sdp\?a=1 HTTP/1\.1" 200 \d+ ', line), line
    assert "rid=comb-1" in line and "server=pod-a" in line and "term=ok" in line, line
    t.stop()




BURST_CONF = """
workers 1;
error_log {dir}/error.log info;
access_log off;
upstream voice {
    server pod-a {a};
    keepalive 1;
    keepalive_burst %s;
    keepalive_burst_timeout %sms;
}
server {
    listen 127.0.0.1:{port};
    route / { upstream voice; }
}
"""


def _burst(port, n):
    """<n> requests in flight at once (each the pod holds 150 ms)."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        rs = list(ex.map(lambda i: h.get(port, "/sdp?delay=150&i=%d" % i).status, range(n)))
    assert rs == [200] * n, rs


def test_keepalive_burst_reuses_then_expires():
    # keepalive 1 with keepalive_burst 8: after a burst of 6 the extra idle pod
    # connections are kept keepalive_burst_timeout, so a second burst right after
    # opens none; after the timeout only keepalive's one is left.
    pod, t = setup(BURST_CONF % (8, int(300 * h.SLOW)))
    _burst(t.port, 6)
    first = pod.stats()["connections_accepted"]
    assert first >= 6, first
    _burst(t.port, 6)
    assert pod.stats()["connections_accepted"] == first + 1, (first, pod.stats())  # +1: stats
    time.sleep(1.0 * h.SLOW)
    before = pod.stats()["connections_accepted"]
    _burst(t.port, 6)
    assert pod.stats()["connections_accepted"] - before >= 5, (before, pod.stats())
    t.stop()


def test_keepalive_burst_off_closes_extra_at_once():
    pod, t = setup(BURST_CONF % (0, int(300 * h.SLOW)))
    _burst(t.port, 6)
    first = pod.stats()["connections_accepted"]
    _burst(t.port, 6)
    # only keepalive's one connection was kept: five new ones (and the stats one)
    assert pod.stats()["connections_accepted"] - first >= 6, (first, pod.stats())
    t.stop()


if __name__ == "__main__":
    h.main(globals())
