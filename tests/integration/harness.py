# SPDX-License-Identifier: MIT
"""Integration-test harness: real tether processes, mock pods and redis-server on
loopback ports, talked to with real clients. Standard library only; run with
/usr/bin/python3. Every process a test starts is stopped by pid."""
import atexit
import collections
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILDDIR = os.environ.get("TETHER_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRCDIR = os.environ.get("TETHER_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
TETHER = os.environ.get("TETHER_BIN") or os.path.join(BUILDDIR, "tether")
TETHERCTL = os.environ.get("TETHERCTL_BIN") or os.path.join(BUILDDIR, "tetherctl")
MOCKPOD = os.environ.get("MOCKPOD_BIN") or os.path.join(BUILDDIR, "tests", "mockpod", "mockpod")
ARTIFACTS = os.environ.get("TETHER_ARTIFACTS") or os.path.join(BUILDDIR, "tests", "artifacts")
# Slower under sanitizers/valgrind: scale waits, never the assertions.
SLOW = float(os.environ.get("TETHER_TEST_SLOW", "1"))

_procs = []


def _cleanup():
    for p in list(_procs):
        try:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(timeout=5)
        except Exception:
            pass


atexit.register(_cleanup)

_used_ports = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A loopback TCP port nobody listens on right now, outside the kernel's
    ephemeral range: an outgoing connection (of this or a parallel test) cannot
    take it between this check and the bind."""
    lo, hi = _ephemeral_range()
    for _ in range(200):
        port = random.randint(10000, 65000)
        if lo <= port <= hi:
            continue
        if port in _used_ports:
            continue
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _used_ports.add(port)
        return port
    raise RuntimeError("no free port")


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d did not open" % port)


def wait_until(cond, timeout=5.0, step=0.02, what="condition"):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


def admin_raw(path, data, timeout=None):
    """Send <data> (bytes) to the admin socket at <path>, close our side, and return
    everything tether answers, decoded."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout or 10 * SLOW)
    try:
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            d = s.recv(65536)
            if not d:
                break
            chunks.append(d)
    finally:
        s.close()
    return b"".join(chunks).decode()


def wait_admin(path, timeout=5.0):
    """Until the admin socket accepts connections (the file appears first)."""
    def up():
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return True
        except OSError:
            return False
        finally:
            s.close()
    wait_until(up, timeout=timeout, what="admin socket")


class Proc:
    """A child process stopped by pid (SIGTERM, then SIGKILL)."""

    def __init__(self, argv, stdout=None, stderr=None, env=None):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=stdout or subprocess.DEVNULL,
                                  stderr=stderr or subprocess.DEVNULL, env=env)
        _procs.append(self.p)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def stop(self, timeout=10.0):
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.p in _procs:
            _procs.remove(self.p)
        return self.p.returncode

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait()
        if self.p in _procs:
            _procs.remove(self.p)


class Mockpod(Proc):
    def __init__(self, name, port=None, args=(), threads=1, host="127.0.0.1"):
        self.name = name
        self.host = host
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="mockpod-")
        self.log = os.path.join(self.dir, "requests.jsonl")
        argv = [MOCKPOD, "--listen", "%s:%d" % (host, self.port), "--name", name, "--quiet",
                "--threads", str(threads), "--request-log", self.log] + list(args)
        super().__init__(argv)
        wait_port(self.port, host=host)

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def requests(self):
        """The requests the pod has seen (its request log)."""
        try:
            with open(self.log) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def control(self, path):
        return get(self.port, path, host=self.host)

    def stats(self):
        return json.loads(get(self.port, "/control/stats", host=self.host).body)


class Tether(Proc):
    """tether with an inline config. {placeholders} in the text are filled from
    keyword arguments; the listen port is self.port."""

    def __init__(self, conf, port=None, wait=True, check_ok=True, **kw):
        self.dir = tempfile.mkdtemp(prefix="tether-")
        self.port = port or free_port()
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        self.admin_sock = os.path.join(self.dir, "admin.sock")
        kw.setdefault("port", self.port)
        kw.setdefault("access_log", self.access_log)
        kw.setdefault("admin_sock", self.admin_sock)
        kw.setdefault("dir", self.dir)
        self.kw = kw
        self.conf_path = os.path.join(self.dir, "tether.conf")
        self.write_conf(conf)
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self._stderr = open(self.stderr_path, "wb")
        super().__init__([TETHER, "-c", self.conf_path], stderr=self._stderr,
                         stdout=self._stderr)
        if wait:
            try:
                wait_port(self.port)
            except RuntimeError:
                self.stop()
                raise RuntimeError("tether did not start: " + self.stderr())

    def write_conf(self, conf):
        text = conf
        for k, v in self.kw.items():
            text = text.replace("{" + k + "}", str(v))
        with open(self.conf_path, "w") as f:
            f.write(text)

    def reload(self, conf=None):
        if conf is not None:
            self.write_conf(conf)
        self.signal(signal.SIGHUP)

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def access(self):
        """Parsed JSON access-log lines (flushed every 100 ms by tether)."""
        try:
            with open(self.access_log) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def stop(self, timeout=10.0):
        rc = super().stop(timeout)
        try:
            self._stderr.close()
        except Exception:
            pass
        return rc


SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:")


def stop_clean(*tethers):
    """Stop tethers (SIGTERM, by pid) and check each exited 0 without a sanitizer
    report (ASan, LeakSanitizer and UBSan write to its stderr, which nothing else
    reads)."""
    for t in tethers:
        rc = t.stop()
        err = t.stderr()
        m = SANITIZER.search(err)
        assert not m, "sanitizer report:\n" + err[max(0, m.start() - 300):m.start() + 3000]
        assert rc == 0, "tether exited %r after SIGTERM:\n%s" % (rc, err[-2000:])


class Redis(Proc):
    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-")
        super().__init__(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", self.dir])
        wait_port(self.port)

    def cmd(self, *args):
        """Run one command with RESP over a socket; returns the decoded reply."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        out = "*%d\r\n" % len(args)
        for a in args:
            a = str(a)
            out += "$%d\r\n%s\r\n" % (len(a.encode()), a)
        s.sendall(out.encode())
        f = s.makefile("rb")
        r = _resp_read(f)
        s.close()
        return r


def _resp_read(f):
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise RuntimeError("bad RESP " + repr(line))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def headers_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %r>" % (self.status, self.body[:80])


def request(port, method, path, headers=None, body=None, timeout=10, conn=None, host="127.0.0.1"):
    """One HTTP/1.1 request with http.client. Pass <conn> to reuse a keep-alive
    connection (returned as Response.conn)."""
    c = conn or http.client.HTTPConnection(host, port, timeout=timeout * SLOW)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    resp = Response(r.status, r.getheaders(), data.decode("latin1"))
    resp.conn = c
    if conn is None and r.will_close:
        c.close()
    return resp


def get(port, path, headers=None, **kw):
    return request(port, "GET", path, headers=headers, **kw)


def count_pods(port, n, path="/", headers=None):
    """Which pod (X-Pod) answered each of <n> GETs on one keep-alive connection; every
    answer must be 200."""
    c = collections.Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * SLOW)
    for _ in range(n):
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        c[r.getheader("X-Pod")] += 1
    conn.close()
    return c


def raw(port, data, timeout=2.0, read_until_close=True, host="127.0.0.1"):
    """Send raw bytes, return everything read until the peer closes (or timeout)."""
    s = socket.create_connection((host, port), timeout=timeout * SLOW)
    if isinstance(data, str):
        data = data.encode("latin1")
    s.sendall(data)
    out = b""
    s.settimeout(timeout * SLOW)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
            if not read_until_close and b"\r\n\r\n" in out:
                break
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def parse_responses(data):
    """Split raw bytes into (status, headers dict lowercased, body) tuples;
    handles Content-Length and chunked bodies."""
    out = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        head = data[:end].decode("latin1").split("\r\n")
        data = data[end + 4:]
        status = int(head[0].split(" ")[1])
        h = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            h[k.strip().lower()] = v.strip()
        body = b""
        if "content-length" in h:
            n = int(h["content-length"])
            body, data = data[:n], data[n:]
        elif h.get("transfer-encoding", "").lower() == "chunked":
            while True:
                le = data.find(b"\r\n")
                size = int(data[:le].split(b";")[0], 16)
                data = data[le + 2:]
                if size == 0:
                    te = data.find(b"\r\n\r\n") if not data.startswith(b"\r\n") else 0
                    data = data[te + (4 if te else 2):] if te else data[2:]
                    break
                body += data[:size]
                data = data[size + 2:]
        elif status >= 200 and status not in (204, 304):
            body, data = data, b""
        out.append((status, h, body))
    return out


# ---- running tests ----

def main(namespace, tmp_prefix=None):
    """Run every test_* function of the calling module, in order of definition;
    print "ok NAME" / "FAIL NAME" and the closing "N passed, N failed" line.
    A test name (or several) on the command line runs only those. Every
    temporary file of the run (tether and pod dirs, certificates) goes under
    one directory (named by <tmp_prefix>, else by the test file), removed when
    all passed and kept for a failure."""
    if not tmp_prefix:
        name = os.path.basename(sys.argv[0])
        tmp_prefix = "tether-%s-" % (name[:-3] if name.endswith(".py") else name)
    tempfile.tempdir = tempfile.mkdtemp(prefix=tmp_prefix)
    names = [n for n in namespace if n.startswith("test_") and callable(namespace[n])]
    only = sys.argv[1:]
    if only:
        names = [n for n in names if n in only]
    passed = failed = 0
    for n in names:
        t0 = time.time()
        try:
            namespace[n]()
            passed += 1
            print("ok   %s (%.1fs)" % (n, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % n, flush=True)
            traceback.print_exc()
        finally:
            _cleanup()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    ok = passed and not failed
    if ok:
        shutil.rmtree(tempfile.tempdir, ignore_errors=True)
    else:
        print("temporary files kept in " + tempfile.tempdir)
    sys.exit(0 if ok else 1)
