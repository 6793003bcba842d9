# SPDX-License-Identifier: MIT
"""Hardening, round two (issue 12): a regression test for each defect found by
review, each failing on the code before its fix.

1. a long X-Request-Id (41..64 characters) overflowed req_id[40] and the
   tunnel's rid[40];
2. pipelined requests that tether answers itself recursed once per buffered
   request (stack overflow with a large bufsize);
3. pipelined bytes were discarded while a kept-alive reply of tether's own
   waited for a full socket (desync);
4. an incomplete PROXY header spun the worker at 100 % CPU;
5. a hostile Redis aborted the process through hiredis's asserts;
and route matching on paths that try to climb out of their prefix route."""
import json
import os
import re
import socket
import struct
import threading
import time

import harness as h

CONF = """
workers 1;
error_log {dir}/error.log info;
access_log {access_log} json;
tune bufsize {bufsize};
rate_limit_zone tight key=$remote_addr rate=1r/m burst=1 nodelay;
upstream voice { server pod-a {a}; }
server {
    listen 127.0.0.1:{port};
    listen 127.0.0.1:{pport} proxy_protocol;
    keepalive_requests 100000;
    route /pod/ { upstream voice; }
    route /echo { upstream voice; }
    route /rl/ { upstream voice; limit_req tight; }
}
"""


def setup(bufsize="16k"):
    pod = h.Mockpod("pod-a")
    t = h.Tether(CONF, a=pod.addr, bufsize=bufsize, pport=h.free_port())
    return pod, t


def tcp_wmem_max():
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


def cpu_seconds(pid):
    """User + system CPU time of a process so far (all threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_responses(s, want, timeout):
    """Read from <s> until <want> complete responses are parsed (or the peer
    closes, or <timeout> passes). Returns the parsed responses."""
    data = b""
    end = time.time() + timeout * h.SLOW
    s.settimeout(0.5)
    got = []
    while time.time() < end:
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not d:
            break
        data += d
        if data.count(b"HTTP/1.1 ") >= want:
            got = h.parse_responses(data)
            if len(got) >= want:
                break
    return got or h.parse_responses(data)


def send_in_background(s, data):
    """sendall on a duplicate of <s> (its own timeout) in a thread."""
    snd = s.dup()
    snd.settimeout(120 * h.SLOW)

    def run():
        try:
            snd.sendall(data)
        except OSError:
            pass
        snd.close()

    th = threading.Thread(target=run)
    th.start()
    return th


# ---- defect 1: X-Request-Id longer than the old 40-byte fields ----

def upgrade_req(path, rid):
    return ("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "X-Request-Id: %s\r\n\r\n" % (path, rid)).encode()


def test_long_request_id_kept_whole():
    pod, t = setup()
    rid42 = "trace-0f8fad5b-d9cb-469f-a165-70867728950e"
    rid64 = "r" * 64
    for rid in (rid42, rid64):
        assert len(rid) in (42, 64)
        r = h.get(t.port, "/echo", headers={"X-Request-Id": rid})
        assert r.status == 200
        got = {k.lower(): v for k, v in r.json()["headers"]}
        assert got["x-request-id"] == rid, got["x-request-id"]
        assert r.header("X-Request-Id") == rid
    # 65 characters is over the limit: replaced by tether's own id.
    r = h.get(t.port, "/echo", headers={"X-Request-Id": "q" * 65})
    got = {k.lower(): v for k, v in r.json()["headers"]}
    assert len(got["x-request-id"]) == 32, got["x-request-id"]
    # tether's own reply carries it too.
    r = h.get(t.port, "/missing", headers={"X-Request-Id": rid64})
    assert r.status == 404 and r.header("X-Request-Id") == rid64
    # A WebSocket upgrade with it: the tunnel logs the whole id at its end.
    s = socket.create_connection(("127.0.0.1", t.port), timeout=5 * h.SLOW)
    s.sendall(upgrade_req("/pod/ws", rid64))
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        assert d, head
        head += d
    assert head.startswith(b"HTTP/1.1 101 "), head
    s.close()
    h.wait_until(lambda: any(e.get("event") == "tunnel_end" for e in t.access()), timeout=5)
    ends = [e for e in t.access() if e.get("event") == "tunnel_end"]
    assert ends[0]["request_id"] == rid64, ends
    h.stop_clean(t)
    pod.stop()


# ---- defect 2: recursion over buffered pipelined requests ----

def test_pipelined_own_replies_bounded_stack():
    pod, t = setup(bufsize="1m")
    n = 30000
    one = b"GET /rl/ HTTP/1.1\r\nHost: a\r\n\r\n"
    # The first request is slow: while the pod waits, tether buffers the
    # pipelined requests (up to bufsize), then answers them all at once: a
    # 429 each (the zone lets one through).
    data = b"GET /pod/slow?delay=700 HTTP/1.1\r\nHost: a\r\n\r\n" + one * n
    assert len(data) < 1 << 20
    s = socket.create_connection(("127.0.0.1", t.port), timeout=10 * h.SLOW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sender = send_in_background(s, data)
    got = read_responses(s, n + 1, 60)
    sender.join()
    s.close()
    assert t.alive(), "tether died:\n" + t.stderr()[-3000:]
    statuses = [g[0] for g in got]
    assert len(statuses) == n + 1, len(statuses)
    assert statuses[0] == 200 and statuses[1:4].count(200) <= 2, statuses[:4]
    assert statuses.count(429) >= n - 2 and statuses[-1] == 429, (statuses[:5], statuses[-5:], [(i, x) for i, x in enumerate(statuses) if x != 429][:10])
    h.stop_clean(t)
    pod.stop()


# ---- defect 3: back-pressure instead of discarding ----

def test_pipelined_bytes_kept_while_reply_waits():
    pod, t = setup()
    # More 404 replies (134 bytes each) than the two sockets hold: tether's
    # send buffer grows up to tcp_wmem's maximum (4 MB by default).
    n = min(100000, (tcp_wmem_max() + (1 << 17)) // 100 + 1000)
    data = (b"GET /pod/big?bytes=100000 HTTP/1.1\r\nHost: a\r\n\r\n"
            + b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n" * n
            + b"GET /pod/last HTTP/1.1\r\nHost: a\r\n\r\n")
    s = socket.create_connection(("127.0.0.1", t.port), timeout=10 * h.SLOW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    sender = send_in_background(s, data)
    time.sleep(1.5)  # a slow reader: tether's replies wait for room
    got = read_responses(s, n + 2, 60)
    sender.join(10)
    s.close()
    statuses = [g[0] for g in got]
    assert len(statuses) == n + 2, (len(statuses), statuses[-3:])
    assert statuses[0] == 200 and len(got[0][2]) == 100000
    assert statuses[1:-1] == [404] * n and statuses[-1] == 200
    assert [r["path"] for r in pod.requests()][-1] == "/pod/last"
    h.stop_clean(t)
    pod.stop()


# ---- defect 4: incomplete PROXY header ----

def test_incomplete_proxy_header_no_spin():
    pod, t = setup()
    pport = int(t.kw["pport"])
    s = socket.create_connection(("127.0.0.1", pport), timeout=5 * h.SLOW)
    s.sendall(b"PROXY TCP4 1.2.3.4 ")
    time.sleep(0.2)
    c0 = cpu_seconds(t.pid)
    time.sleep(1.0)
    used = cpu_seconds(t.pid) - c0
    assert used < 0.25, "tether used %.2f s of CPU in 1 s on an incomplete PROXY header" % used
    # The rest of the header, byte by byte, then a request: served with the
    # address from the header.
    for b in b"5.6.7.8 1111 80\r\n":
        s.sendall(bytes([b]))
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    got = read_responses(s, 1, 10)
    s.close()
    assert got and got[0][0] == 200, got
    assert b'"1.2.3.4"' in got[0][2], got[0][2]
    # A v2 header in pieces.
    addr = socket.inet_aton("10.9.8.7") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 4242, 80)
    v2 = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addr)) + addr
    s = socket.create_connection(("127.0.0.1", pport), timeout=5 * h.SLOW)
    for i in range(0, len(v2), 5):
        s.sendall(v2[i:i + 5])
        time.sleep(0.02)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    got = read_responses(s, 1, 10)
    s.close()
    assert got and got[0][0] == 200 and b'"10.9.8.7"' in got[0][2], got
    # Too long without an end of line: refused and closed.
    out = h.raw(pport, b"PROXY TCP4 " + b"1" * 200)
    assert out == b"", out
    h.stop_clean(t)
    pod.stop()


# ---- defect 5: a hostile Redis ----

class HostileRedis:
    """A Redis look-alike on a loopback port (Python stdlib): it answers the
    handshakes well (AUTH, SELECT, SCRIPT LOAD, HGETALL, PING, SUBSCRIBE), then
    sends one malformed reply per connection from <subscriber_cases> (the k-th
    subscriber connection gets the k-th case) and, once, a reply nobody asked
    for on a worker connection and on an admin command connection."""

    def __init__(self, subscriber_cases, spontaneous=True):
        self.cases = list(subscriber_cases)
        self.spontaneous = spontaneous
        self.lock = threading.Lock()
        self.nsub = 0
        self.spont_sent = set()
        self.conns = []
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = h.free_port()
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(64)
        self.stopping = False
        self.th = threading.Thread(target=self._accept, daemon=True)
        self.th.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_cmd(f):
        line = f.readline()
        if not line:
            return None
        if not line.startswith(b"*"):
            return line.split()
        args = []
        for _ in range(int(line[1:])):
            n = int(f.readline()[1:])
            args.append(f.read(n + 2)[:-2])
        return args

    def _later(self, c, data, delay=0.2):
        def go():
            time.sleep(delay)
            try:
                c.sendall(data)
            except OSError:
                pass
        threading.Thread(target=go, daemon=True).start()

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            while True:
                args = self._read_cmd(f)
                if args is None:
                    return
                cmd = args[0].upper() if args else b""
                if cmd == b"SUBSCRIBE":
                    ch = args[1]
                    with self.lock:  # counted before tether can see the answer
                        k = self.nsub
                        self.nsub += 1
                    c.sendall(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(ch), ch))
                    if k < len(self.cases):
                        self._later(c, self.cases[k].replace(b"{n}", b"%d" % len(ch))
                                    .replace(b"{ch}", ch))
                elif cmd == b"SCRIPT":
                    c.sendall(b"$40\r\n" + b"0" * 40 + b"\r\n")
                    self._spontaneous(c, "worker")
                elif cmd == b"HGETALL":
                    c.sendall(b"*0\r\n")
                    self._spontaneous(c, "admin")
                elif cmd == b"PING":
                    c.sendall(b"+PONG\r\n")
                elif cmd in (b"GET", b"EVALSHA", b"EVAL"):
                    c.sendall(b"$-1\r\n")
                else:
                    c.sendall(b"+OK\r\n")
        except (OSError, ValueError):
            return

    def _spontaneous(self, c, kind):
        with self.lock:
            if not self.spontaneous or kind in self.spont_sent:
                return
            # The admin links are dropped together by each subscriber case:
            # their turn comes once the cases are spent.
            if kind == "admin" and self.nsub <= len(self.cases):
                return
            self.spont_sent.add(kind)
        self._later(c, b"+OK\r\n")

    def stop(self):
        self.stopping = True
        self.ls.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


REDIS_CONF = """
workers 1;
error_log {dir}/error.log info;
admin { listen unix:{admin_sock}; }
stats { listen 127.0.0.1:{sport}; }
redis { server 127.0.0.1:{redis_port}; prefix "t:"; timeout 200ms; }
upstream voice { server pod-a {a}; }
server { listen 127.0.0.1:{port}; route /pod/ { upstream voice; } }
"""

# Pushes a server never sends, each of which hit an assert in hiredis 0.14's
# asynchronous dispatch (SIGABRT) before the guard.
HOSTILE_PUSHES = [
    b"*3\r\n$7\r\nmessage\r\n:1\r\n:2\r\n",              # channel not a string
    b"*3\r\n:1\r\n$2\r\nch\r\n$1\r\nx\r\n",              # kind not a string
    b"*1\r\n$7\r\nmessage\r\n",                          # too short
    b"*2\r\n$11\r\nunsubscribe\r\n${n}\r\n{ch}\r\n",       # unsubscribe without its count
    b"*3\r\n$11\r\nunsubscribe\r\n${n}\r\n{ch}\r\n$1\r\nx\r\n",  # count not an integer
    b"*3\r\n$7\r\nmessage\r\n*1\r\n:1\r\n$1\r\nx\r\n",   # channel an array
]


def redis_metric(t, name):
    body = h.get(int(t.kw["sport"]), "/metrics").body
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


def test_hostile_redis_never_aborts():
    pod = h.Mockpod("pod-a")
    r = HostileRedis(HOSTILE_PUSHES)
    t = h.Tether(REDIS_CONF, a=pod.addr, redis_port=r.port, sport=h.free_port())
    try:
        n = len(HOSTILE_PUSHES)
        # Every case is sent on its own subscriber connection: tether must
        # drop each and reconnect (n + 1 subscriptions), alive throughout.
        h.wait_until(lambda: r.nsub > n or not t.alive(), timeout=30 * h.SLOW,
                     what="tether to resubscribe after each malformed push")
        assert t.alive(), "tether died:\n" + t.stderr()[-3000:]
        # Plus the reply nobody asked for on the admin and worker connections.
        h.wait_until(lambda: redis_metric(t, "tether_redis_malformed_replies_total") >= n + 2,
                     timeout=10 * h.SLOW, what="every malformed reply counted (%r)" % redis_metric(t, "tether_redis_malformed_replies_total"))
        assert t.alive()
        log = open(t.error_log).read()
        assert "malformed reply" in log, log[-2000:]
        # Well-formed replies still pass: once the cases are spent, the
        # subscription is confirmed and replication comes up.
        h.wait_until(lambda: re.search(r"admin replication through 127\.0\.0\.1:%d (up|restored)"
                                       % r.port, open(t.error_log).read()),
                     timeout=15 * h.SLOW, what="admin replication up after the cases")
        assert h.get(t.port, "/pod/x").status == 200
    finally:
        r.stop()
    h.stop_clean(t)
    pod.stop()


# ---- hardened build: the ELF says so ----

def elf_info(path):
    """(e_type, program header types, dynamic tags {tag: value}, imported
    symbol names) of a little-endian ELF64 file, with the standard library."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not an ELF64 LE file"
    (e_type,) = struct.unpack_from("<H", data, 16)
    e_phoff, e_shoff = struct.unpack_from("<QQ", data, 32)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", data, 54)
    phtypes, dyn = [], {}
    for i in range(e_phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, e_phoff + i * e_phentsize)
        phtypes.append(p_type)
        if p_type == 2:  # PT_DYNAMIC
            for off in range(p_offset, p_offset + p_filesz, 16):
                tag, val = struct.unpack_from("<qQ", data, off)
                if tag == 0:
                    break
                dyn[tag] = dyn.get(tag, 0) | val
    # .dynsym names through its linked string table.
    names = set()
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
                for i in range(e_shnum)]
    for sh in sections:
        if sh[1] == 11:  # SHT_DYNSYM
            strtab = sections[sh[6]]
            for off in range(sh[4], sh[4] + sh[5], 24):
                (st_name,) = struct.unpack_from("<I", data, off)
                end = data.index(b"\0", strtab[4] + st_name)
                names.add(data[strtab[4] + st_name:end].decode())
    return e_type, phtypes, dyn, names


def test_binary_is_hardened():
    with open(os.path.join(h.BUILDDIR, "Makefile")) as f:
        mk = f.read()
    if "-Wl,-z,now" not in mk:
        print("hardening disabled in this build (--disable-hardening): not checked")
        return
    e_type, phtypes, dyn, names = elf_info(h.TETHER)
    assert e_type == 3, "not PIE (e_type %d)" % e_type  # ET_DYN
    assert 0x6474E552 in phtypes, "no PT_GNU_RELRO"
    DT_FLAGS, DT_FLAGS_1, DF_BIND_NOW, DF_1_NOW, DF_1_PIE = 30, 0x6FFFFFFB, 0x8, 0x1, 0x08000000
    assert dyn.get(DT_FLAGS, 0) & DF_BIND_NOW or dyn.get(DT_FLAGS_1, 0) & DF_1_NOW, \
        "not linked with -z now"
    assert dyn.get(DT_FLAGS_1, 0) & DF_1_PIE, "DF_1_PIE not set"
    assert "__stack_chk_fail" in names, "no stack protector"
    if "-D_FORTIFY_SOURCE=3" in mk:
        chk = sorted(n for n in names if n.startswith("__") and n.endswith("_chk"))
        assert chk, "no fortified libc call (__*_chk) imported"


# ---- paths that try to escape their route ----

PATH_CONF = """
workers 1;
error_log {dir}/error.log info;
upstream tools { server tools {a}; }
upstream public { server public {b}; }
server {
    listen 127.0.0.1:{port};
    merge_slashes {merge};
    route /tools/ { upstream tools; }
    route / { upstream public; }
}
"""


def routed(t, target):
    """(status, pod name, path the pod received) for a raw GET of <target>."""
    out = h.raw(t.port, b"GET " + target.encode() + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    got = h.parse_responses(out)
    assert got, (target, out[:200])
    status, _, body = got[0]
    if status != 200:
        return status, None, None
    j = json.loads(body)
    return status, j["pod"], j["path"]


def test_paths_cannot_walk_around_a_prefix_route():
    a, b = h.Mockpod("tools"), h.Mockpod("public")
    t = h.Tether(PATH_CONF, a=a.addr, b=b.addr, merge="on")
    # Matched as what they mean: the route of /tools/, the target unchanged.
    for target in ("/tools/x", "/%74ools/x", "/%74%6F%6fls/x", "//tools/x", "/tools//x",
                   "/tools%2Fx", "/tools;jsessionid=1/x", "/;x/tools/x", "/tools/a%2Db?q=/../"):
        assert routed(t, target) == (200, "tools", target.split("?")[0]), (target, routed(t, target))
    for target in ("/public/x", "/toolsx", "/%2574ools/x"):
        assert routed(t, target)[:2] == (200, "public"), target
    # Climbing out (or trying to): refused.
    for target in ("/tools/..%2f..", "/tools/..%2F..%2Fpublic", "/tools/..;/x", "/public/..;/tools/x",
                   "/public/..%2ftools/x", "/public/%2e%2e/tools/x", "/public/.%2e/tools/x",
                   "/tools/.", "/tools/./x", "/public/../tools/x", "/public\\..\\tools\\x",
                   "/public%5c..%5ctools", "/tools/%00", "/tools/%zz", "/tools/%2", "/a/..;x/b"):
        assert routed(t, target)[0] == 400, target
    h.stop_clean(t)
    # merge_slashes off: "//tools/x" is not under /tools/ (as nginx).
    t = h.Tether(PATH_CONF, a=a.addr, b=b.addr, merge="off")
    assert routed(t, "//tools/x") == (200, "public", "//tools/x")
    assert routed(t, "/tools//x") == (200, "tools", "/tools//x")
    h.stop_clean(t)
    a.stop()
    b.stop()


if __name__ == "__main__":
    h.main(globals(), tmp_prefix="tether-test-hardening-")
