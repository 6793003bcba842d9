# SPDX-License-Identifier: MIT
"""Bodies stream through tether in bounded memory: a 1 GiB download and a 1 GiB
upload (Content-Length and chunked) keep tether's RSS under 64 MiB; a request
body keeps streaming to the pod after its answer started (POST /echo/body)."""
import socket
import threading
import time

import harness as h

GIB = 1 << 30
CONF = """
workers 2;
upstream voice { server pod-a {a}; }
server {
    listen 127.0.0.1:{port};
    client_max_body_size 2g;
    route / { upstream voice; timeout 120s; }
}
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssWatch(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_ev = pid, 0, threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)

    def stop(self):
        self.stop_ev.set()
        self.join()
        return self.peak


def test_1gib_download_bounded_memory():
    pod = h.Mockpod("pod-a")
    t = h.Tether(CONF, a=pod.addr)
    w = RssWatch(t.pid)
    w.start()
    s = socket.create_connection(("127.0.0.1", t.port), timeout=60 * h.SLOW)
    s.sendall(b"GET /big?bytes=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % GIB)
    got, head = 0, b""
    while b"\r\n\r\n" not in head:
        head += s.recv(65536)
    got = len(head) - head.index(b"\r\n\r\n") - 4
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        got += len(d)
    s.close()
    peak = w.stop()
    assert got == GIB, got
    assert peak < 64 * 1024, "peak RSS %d KiB" % peak
    print("download 1 GiB: tether peak RSS %d KiB" % peak)
    t.stop()


def upload(port, chunked):
    s = socket.create_connection(("127.0.0.1", port), timeout=60 * h.SLOW)
    if chunked:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    else:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % GIB)
    block = b"x" * (1 << 20)
    for _ in range(GIB // len(block)):
        if chunked:
            s.sendall(b"100000\r\n" + block + b"\r\n")
        else:
            s.sendall(block)
    if chunked:
        s.sendall(b"0\r\n\r\n")
    data = b""
    while b"}" not in data:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    return data


def test_1gib_upload_bounded_memory():
    pod = h.Mockpod("pod-a")
    t = h.Tether(CONF, a=pod.addr)
    for chunked in (False, True):
        w = RssWatch(t.pid)
        w.start()
        data = upload(t.port, chunked)
        peak = w.stop()
        assert b'"bytes":%d' % GIB in data, data[-200:]
        assert peak < 64 * 1024, "peak RSS %d KiB" % peak
        print("upload 1 GiB (chunked=%s): tether peak RSS %d KiB" % (chunked, peak))
    t.stop()


ECHO_SIZES = (1, 16383, 16384, 16385, 32607, 32768, 50000, 65535, 65536, 65537, 200000, 1 << 20)


def echo(port, body, chunked=False, early=False, slow=False):
    """POSTs <body> to /echo/body on one connection and returns the echoed body.
    A sender thread streams it in 4 KiB pieces; with <early> only the first
    piece goes before the response head is back (the pod answers before it has
    the body), with <slow> the reader takes small reads with pauses."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * h.SLOW)
    te = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body)
    head_seen = threading.Event()
    err = []

    def send():
        try:
            s.sendall(b"POST /echo/body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n\r\n" % te)
            for i in range(0, len(body), 4096):
                piece = body[i:i + 4096]
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                if early and i == 0:
                    head_seen.wait(10 * h.SLOW)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except OSError as e:
            err.append(e)

    th = threading.Thread(target=send, daemon=True)
    th.start()
    data, reads = b"", 0
    try:
        while True:
            d = s.recv(1024 if slow else 65536)
            if not d:
                break
            data += d
            if b"\r\n\r\n" in data:
                head_seen.set()
            reads += 1
            if slow and reads % 16 == 0 and reads <= 400:
                time.sleep(0.01)
    except socket.timeout:
        raise AssertionError("echo of %d bytes (chunked=%s early=%s): stalled after %d bytes"
                             % (len(body), chunked, early, len(data)))
    finally:
        head_seen.set()
        s.close()
        th.join(10 * h.SLOW)
    assert not err, err
    resps = h.parse_responses(data)
    assert len(resps) == 1 and resps[0][0] == 200, data[:300]
    return resps[0][2]


def test_echo_body_both_ways():
    pod = h.Mockpod("pod-a")
    t = h.Tether(CONF, a=pod.addr)
    pattern = bytes(range(33, 127))
    for n in ECHO_SIZES:
        body = (pattern * (n // len(pattern) + 1))[:n]
        for chunked in (False, True):
            for early in (False, True):
                got = echo(t.port, body, chunked=chunked, early=early)
                assert got == body, (n, chunked, early, len(got))
    # A slow reader: back-pressure on both directions at once, nothing lost.
    body = (pattern * (300000 // len(pattern) + 1))[:300000]
    for chunked in (False, True):
        got = echo(t.port, body, chunked=chunked, early=True, slow=True)
        assert got == body, (chunked, len(got))
    t.stop()
    pod.stop()


if __name__ == "__main__":
    h.main(globals())
