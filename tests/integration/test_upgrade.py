# SPDX-License-Identifier: MIT
"""Binary upgrade (tetherctl upgrade, SIGUSR2): the new process takes over the
listening, admin and stats sockets and the runtime state while the old one
drains; 50 WebSocket tunnels and steady HTTP traffic survive it; a failing new
binary leaves the old one serving; a second upgrade during a drain is refused;
and one instance per pid file / admin socket."""
import base64
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import harness as h

CONF = """
workers 2;
shutdown_timeout 60s;
error_log {dir}/error.log info;
access_log {access_log} json;
pidfile {dir}/tether.pid;
admin { listen unix:{admin_sock}; }
stats { listen 127.0.0.1:{sport}; }
affinity {
    cookie VOICE_AFFINITY secret_file={secret};
    learn header=X-Voice-Session-Id;
    path /webhook/{id}/;
}
upstream voice {
    balance round_robin;
    {servers}
}
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
    route /webhook/ { upstream voice; affinity session; }
    route / { upstream voice; }
}
"""


def setup(npods=2, conf=CONF):
    pods = [h.Mockpod("pod-%d" % i) for i in range(npods)]
    servers = "".join("server pod-%d %s;\n    " % (i, p.addr) for i, p in enumerate(pods))
    d = h.tempfile.mkdtemp(prefix="tether-key-")
    secret = os.path.join(d, "affinity.key")
    with open(secret, "w") as f:
        f.write("0123456789abcdef0123456789abcdef\n")
    text = conf.replace("{id}", "@ID@").replace("{servers}", servers).replace("@ID@", "{id}")
    t = h.Tether(text, sport=h.free_port(), secret=secret)
    h.wait_admin(t.admin_sock)
    return pods, t


def ctl(t, *args):
    """tetherctl on <t>'s admin socket: (exit status, output)."""
    p = subprocess.run([h.TETHERCTL, "-s", t.admin_sock, "-t", str(60 * h.SLOW)] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120 * h.SLOW)
    return p.returncode, p.stdout.decode()


def serving_pid(t):
    rc, out = ctl(t, "show info")
    assert rc == 0, out
    return int(out.split("\npid: ")[1].split("\n")[0])


def upgrade_ok(t, *path):
    """Upgrade <t> (to <path>, else its own binary), which must succeed: the
    new serving pid and tetherctl's answer."""
    rc, out = ctl(t, "upgrade", *path)
    assert rc == 0, out
    return serving_pid(t), out


def with_health(check):
    """CONF with the health_check block <check> in its upstream."""
    return CONF.replace("balance round_robin;",
                        "balance round_robin;\n    health_check { %s }" % check)


def servers_json(t):
    rc, out = ctl(t, "show servers json")
    assert rc == 0, out
    return {s["server"]: s for s in h.json.loads(out)["servers"]}


@contextlib.contextmanager
def upgraded(t):
    """Upgrade <t>: yields the new process's pid; after the block the old
    process has exited, and the new one is stopped either way."""
    new, _ = upgrade_ok(t)
    try:
        assert new != t.pid
        yield new
        h.wait_until(lambda: not t.alive(), timeout=20, what="old process to exit")
    finally:
        stop_pid(new)
        t.stop()


def gone(pid):
    """The process ended (a zombie counts: it serves nothing)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def stop_pid(pid):
    """SIGTERM a tether we did not start (a new process after an upgrade)."""
    if not gone(pid):
        os.kill(pid, signal.SIGTERM)
        try:
            h.wait_until(lambda: gone(pid), timeout=20, what="pid %d to exit" % pid)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            raise


def owner_pid(sock):
    """The pid whose descriptors hold the server side of our TCP connection
    <sock> (found through /proc/net/tcp and /proc/PID/fd)."""
    lport = sock.getsockname()[1]
    rport = sock.getpeername()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if int(p[1].split(":")[1], 16) == rport and int(p[2].split(":")[1], 16) == lport:
                inode = p[9]
    assert inode, "server side of the connection not found"
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == "socket:[%s]" % inode:
                    return int(pid)
        except OSError:
            continue
    return None


# ---- a minimal WebSocket client on a plain socket ----

def ws_open(port, path="/ws"):
    s = socket.create_connection(("127.0.0.1", port), timeout=20 * h.SLOW)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        assert d, "closed during the handshake: %r" % data
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert rest == b"", rest
    return s


def ws_echo(s, payload):
    """Send one masked binary frame; return the echoed payload."""
    mask = os.urandom(4)
    n = len(payload)
    assert n < 126
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(struct.pack("!BB", 0x82, 0x80 | n) + mask + masked)
    hdr = recv_exact(s, 2)
    assert hdr[0] & 0x0f == 2 and hdr[1] < 126, hdr
    return recv_exact(s, hdr[1])


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise EOFError("closed after %d of %d bytes" % (len(out), n))
        out += d
    return out


class Traffic:
    """Steady HTTP GETs from two threads until stopped: one opens a connection
    per request, one keeps its connection alive. A keep-alive request that
    finds its connection closed before any byte of an answer (the old process
    closing an idle connection as it drains) is resent on a new connection, as
    HTTP clients do for idempotent requests (RFC 9112 9.3.1); every other
    failure is an error."""

    def __init__(self, port):
        self.port, self.errors, self.count = port, [], 0
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.ths = [threading.Thread(target=self.fresh), threading.Thread(target=self.keepalive)]
        for th in self.ths:
            th.start()

    def done(self, status):
        with self.lock:
            self.count += 1
            if status != 200:
                self.errors.append(status)

    def fresh(self):
        for i in range(100000):
            if self.stop_ev.is_set():
                return
            try:
                r = h.get(self.port, "/fresh?i=%d" % i, headers={"Connection": "close"})
                r.conn.close()
                self.done(r.status)
            except Exception as e:
                self.done(repr(e))

    def keepalive(self):
        conn = None
        for i in range(100000):
            if self.stop_ev.is_set():
                break
            try:
                try:
                    r = h.get(self.port, "/ka?i=%d" % i, conn=conn)
                except (ConnectionError, h.http.client.RemoteDisconnected,
                        h.http.client.BadStatusLine):
                    if conn is None:
                        raise
                    conn.close()
                    r = h.get(self.port, "/ka?i=%d&again=1" % i)
                conn = r.conn
                self.done(r.status)
            except Exception as e:
                self.done(repr(e))
                conn = None
        if conn:
            conn.close()

    def stop(self):
        self.stop_ev.set()
        for th in self.ths:
            th.join(60)
        return self.count, self.errors


# ---- tests ----

def test_upgrade_keeps_50_tunnels_and_traffic():
    pods, t = setup(2)
    old = t.pid
    copy_dir = h.tempfile.mkdtemp(prefix="tether-bin-")
    copy = os.path.join(copy_dir, "tether")
    shutil.copy2(h.TETHER, copy)
    tunnels = [ws_open(t.port, "/ws/%d" % i) for i in range(50)]
    for i, s in enumerate(tunnels):
        assert ws_echo(s, b"before-%d" % i) == b"before-%d" % i
    traffic = Traffic(t.port)
    h.wait_until(lambda: traffic.count >= 50, timeout=20, what="traffic before the upgrade")
    before = traffic.count
    new = None
    try:
        new, out = upgrade_ok(t, copy)
        assert "upgraded: new process" in out and new != old, out
        assert int(open(os.path.join(t.dir, "tether.pid")).read()) == new
        # Traffic goes on across the hand-over.
        h.wait_until(lambda: traffic.count >= before + 200, timeout=30,
                     what="traffic after the upgrade")
        count, errors = traffic.stop()
        assert errors == [], errors[:5]
        # The old process drains: alive while its tunnels are, not accepting.
        assert t.alive()
        for i, s in enumerate(tunnels):
            assert ws_echo(s, b"after-%d" % i) == b"after-%d" % i
        # New connections (HTTP and WebSocket) are the new process's.
        r = h.get(t.port, "/owner")
        assert r.status == 200 and owner_pid(r.conn.sock) == new
        r.conn.close()
        s = ws_open(t.port, "/ws/new")
        assert ws_echo(s, b"new") == b"new" and owner_pid(s) == new
        s.close()
        # The stats listener is the new process's too.
        st = h.get(t.kw["sport"], "/metrics")
        assert st.status == 200 and owner_pid(st.conn.sock) == new
        st.conn.close()
        # Tunnels end: the old process exits, the new one keeps the files.
        for s in tunnels:
            s.close()
        h.wait_until(lambda: not t.alive(), timeout=30, what="old process to exit")
        assert t.p.returncode == 0
        assert os.path.exists(t.admin_sock) and serving_pid(t) == new
        assert int(open(os.path.join(t.dir, "tether.pid")).read()) == new
        print("%d requests during the test, none failed" % count)
    finally:
        traffic.stop()
        if new:
            stop_pid(new)
        t.stop()
    assert not os.path.exists(os.path.join(t.dir, "tether.pid"))
    err = t.stderr()
    assert not h.SANITIZER.search(err), err[-3000:]


def test_upgrade_keeps_an_http2_websocket():
    """A WebSocket over HTTP/2 (the stream carries the tunnel) stays with the
    old process across an upgrade: it keeps echoing there (GOAWAY tells the
    client to open new streams elsewhere), and the old process exits once it
    ends. Raw frames: python3-h2 stops at a GOAWAY."""
    import test_http2 as th
    h2port = h.free_port()
    pods, t = setup(1, CONF.replace("listen 127.0.0.1:{port};", "listen 127.0.0.1:{port};\n"
                                    "    listen 127.0.0.1:%d h2c;" % h2port))
    old = t.pid
    copy_dir = h.tempfile.mkdtemp(prefix="tether-bin-")
    copy = os.path.join(copy_dir, "tether")
    shutil.copy2(h.TETHER, copy)
    s = th.raw_client(h2port)
    th.send_headers(s, 1, [(":method", "CONNECT"), (":protocol", "websocket"),
                           (":scheme", "http"), (":path", "/ws"), (":authority", "x"),
                           ("sec-websocket-version", "13")], end_stream=False)

    def echo(msg):
        d = th.DataFrame(1)
        d.data = th.ws_frame(msg, 1)
        s.sendall(d.serialize())
        fr = th.read_frames(s, timeout=5.0, until=lambda fr: any(
            f[0] == 0 and f[2] == 1 and msg in f[3] for f in fr))
        return any(f[0] == 0 and f[2] == 1 and msg in f[3] for f in fr)

    assert echo(b"before upgrade")
    new = None
    try:
        new, out = upgrade_ok(t, copy)
        assert "upgraded: new process" in out and new != old, out
        assert t.alive() and echo(b"after upgrade")
        assert owner_pid(s) == old
        s.close()
        h.wait_until(lambda: not t.alive(), timeout=30, what="old process to exit")
        assert t.p.returncode == 0
    finally:
        if new:
            stop_pid(new)
        t.stop()
    err = t.stderr()
    assert not h.SANITIZER.search(err), err[-3000:]


def test_failed_upgrade_keeps_the_old_process_serving():
    pods, t = setup(1)
    # A configuration the new process refuses.
    good = open(t.conf_path).read()
    with open(t.conf_path, "w") as f:
        f.write(good.replace("workers 2;", "workers 2;\nno_such_directive 1;"))
    rc, out = ctl(t, "upgrade")
    assert rc == 1 and "no_such_directive" in out and "still serving" in out, out
    assert serving_pid(t) == t.pid
    assert h.get(t.port, "/x").status == 200
    # A new binary that dies before serving.
    rc, out = ctl(t, "upgrade", "/bin/false")
    assert rc == 1 and "exited with status 1" in out, out
    rc, out = ctl(t, "upgrade", "/nonexistent/tether")
    assert rc == 1 and "cannot execute" in out, out
    # SIGUSR2 with the broken file: logged, nothing changes.
    t.signal(signal.SIGUSR2)
    h.wait_until(lambda: "no_such_directive" in open(os.path.join(t.dir, "error.log")).read()
                 .split("upgrade: starting")[-1], timeout=10, what="the SIGUSR2 failure logged")
    assert serving_pid(t) == t.pid and t.alive()
    assert int(open(os.path.join(t.dir, "tether.pid")).read()) == t.pid
    assert h.get(t.port, "/y").status == 200
    # The file fixed: SIGUSR2 upgrades.
    with open(t.conf_path, "w") as f:
        f.write(good)
    t.signal(signal.SIGUSR2)
    new = h.wait_until(lambda: (lambda p: p if p != t.pid else None)(serving_pid(t)), timeout=20,
                       what="SIGUSR2 upgrade")
    try:
        h.wait_until(lambda: not t.alive(), timeout=20, what="old process to exit")
        assert h.get(t.port, "/z").status == 200
    finally:
        stop_pid(new)
        t.stop()
    err = t.stderr()
    assert not h.SANITIZER.search(err), err[-3000:]


def test_upgrade_timeout_and_crash_keep_the_old_process_serving():
    pods, t = setup(1, conf=CONF.replace("workers 2;", "workers 2;\nupgrade_timeout 500ms;"))
    d = h.tempfile.mkdtemp(prefix="tether-fake-")
    hang, crash = os.path.join(d, "hang"), os.path.join(d, "crash")
    with open(hang, "w") as f:
        f.write("#!/bin/sh\necho $$ > %s/hang.pid\nexec sleep 60\n" % d)
    with open(crash, "w") as f:
        f.write("#!/bin/sh\nkill -SEGV $$\n")
    os.chmod(hang, 0o755)
    os.chmod(crash, 0o755)
    rc, out = ctl(t, "upgrade", hang)
    assert rc == 1 and "did not" in out and "upgrade_timeout" in out, out
    hung = int(open(os.path.join(d, "hang.pid")).read())
    assert gone(hung), "the hung new process was not killed"
    rc, out = ctl(t, "upgrade", crash)
    assert rc == 1 and "killed by signal 11" in out, out
    assert serving_pid(t) == t.pid and h.get(t.port, "/x").status == 200
    h.stop_clean(t)


def test_second_upgrade_during_drain_is_refused():
    pods, t = setup(1)
    s = ws_open(t.port)
    first, _ = upgrade_ok(t)
    newer = None
    try:
        # The old process drains (the tunnel holds it): the next one is refused.
        rc, out = ctl(t, "upgrade")
        assert rc == 1 and "still draining" in out and str(t.pid) in out, out
        os.kill(first, signal.SIGUSR2)  # refused too, and logged
        log = os.path.join(t.dir, "error.log")
        h.wait_until(lambda: open(log).read().count("still draining") >= 2, timeout=10,
                     what="both refusals logged")
        assert serving_pid(t) == first and t.alive()
        # "kill -HUP $(pidof tether)" reaches the draining process too: it must
        # not bind listeners again (they would take connections it never accepts).
        t.signal(signal.SIGHUP)
        h.wait_until(lambda: "reload ignored" in open(log).read(), timeout=10,
                     what="reload ignored while draining")
        for i in range(40):
            r = h.get(t.port, "/h%d" % i, headers={"Connection": "close"}, timeout=10 * h.SLOW)
            assert r.status == 200
            r.conn.close()
        assert ws_echo(s, b"still") == b"still"
        s.close()
        h.wait_until(lambda: not t.alive(), timeout=20, what="old process to exit")
        # Drained: the next upgrade goes through.
        newer, _ = upgrade_ok(t)
        assert newer != first
        h.wait_until(lambda: gone(first), timeout=20, what="first new process to exit")
        assert h.get(t.port, "/x").status == 200
    finally:
        for p in (newer, first):
            if p:
                stop_pid(p)
        t.stop()
    err = t.stderr()
    assert not h.SANITIZER.search(err), err[-3000:]


def test_state_passes_to_the_new_process():
    # A systemd notification socket: READY=1 at start, MAINPID= after.
    nd = h.tempfile.mkdtemp(prefix="tether-notify-")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(os.path.join(nd, "notify"))
    notify.settimeout(20 * h.SLOW)
    os.environ["NOTIFY_SOCKET"] = os.path.join(nd, "notify")
    try:
        pods, t = setup(3)
    finally:
        del os.environ["NOTIFY_SOCKET"]
    assert notify.recv(4096) == b"READY=1"
    sessions = {}
    for i in range(20):
        r = h.request(t.port, "POST", "/session")
        assert r.status == 200
        sessions[r.json()["session_id"]] = r.header("X-Pod")
        r.conn.close()
    assert len(set(sessions.values())) == 3
    rc, out = ctl(t, "set server voice/pod-2 state drain")
    assert rc == 0, out
    rc, out = ctl(t, "set server voice/pod-1 weight 7")
    assert rc == 0, out
    new, _ = upgrade_ok(t)
    try:
        assert new != t.pid
        assert notify.recv(4096) == b"MAINPID=%d\nREADY=1" % new
        notify.close()
        rc, out = ctl(t, "show servers voice")
        cols = {l.split()[0]: l.split() for l in out.splitlines() if l.startswith("voice/")}
        # name address region state health weight ...: "7*" is an admin override.
        assert cols["voice/pod-2"][3] == "drain" and cols["voice/pod-1"][5] == "7*", out
        for sid, pod in sessions.items():
            r = h.request(t.port, "POST", "/webhook/%s/event" % sid)
            assert r.status == 200 and r.header("X-Pod") == pod, (sid, pod, r.header("X-Pod"))
            r.conn.close()
        h.wait_until(lambda: not t.alive(), timeout=20, what="old process to exit")
    finally:
        stop_pid(new)
        t.stop()


def test_health_state_passes_to_the_new_process():
    # pod-1 fails one check (fall 1) and would need 100 passes (50 s) to come back:
    # a new process starting from scratch would have it up (initial up).
    pods, t = setup(2, conf=with_health("path /health; interval 500ms; timeout 1s; rise 100; "
                                        "fall 1;"))
    pods[1].control("/control/health/fail")

    def state(name):
        rc, out = ctl(t, "show servers voice")
        return {l.split()[0]: l.split()[4] for l in out.splitlines() if l.startswith("voice/")}[name]
    h.wait_until(lambda: state("voice/pod-1") == "down", timeout=20, what="pod-1 down")
    pods[1].control("/control/health/ok")
    with upgraded(t):
        assert state("voice/pod-1") == "down" and state("voice/pod-0") == "up"
        for i in range(10):
            r = h.get(t.port, "/x%d" % i, headers={"Connection": "close"})
            assert r.status == 200 and r.header("X-Pod") == "pod-0", r.header("X-Pod")
            r.conn.close()


def test_added_and_leaving_servers_pass_to_the_new_process():
    # No Redis: only the handover can bring an admin-added server to the new
    # process (and it must come up there, not wait unchecked), and only the
    # handover can keep a deleted configured server leaving.
    pods, t = setup(2, conf=with_health("path /health; interval 1s; rise 1; fall 1;"))
    x = h.Mockpod("pod-x")
    rc, out = ctl(t, "add server voice/pod-x %s" % x.addr)
    assert rc == 0, out
    h.wait_until(lambda: servers_json(t)["pod-x"]["health"] == "up", what="pod-x checked up")
    sessions = {}
    for _ in range(60):
        r = h.request(t.port, "POST", "/session")
        assert r.status == 200
        sessions.setdefault(r.header("X-Pod"), r.json()["session_id"])
        r.conn.close()
        if len(sessions) == 3:
            break
    assert set(sessions) == {"pod-0", "pod-1", "pod-x"}, sessions
    rc, out = ctl(t, "del server voice/pod-1")
    assert rc == 0 and "leaving" in out, out
    with upgraded(t):
        s = servers_json(t)
        assert s["pod-x"]["source"] == "admin" and s["pod-x"]["health"] == "up", s["pod-x"]
        assert s["pod-1"]["state"] == "leaving", s["pod-1"]
        for pod, sid in sessions.items():
            r = h.request(t.port, "POST", "/webhook/%s/event" % sid)
            assert r.status == 200 and r.header("X-Pod") == pod, (sid, pod, r.header("X-Pod"))
            r.conn.close()
        placed = set()
        for _ in range(12):
            r = h.request(t.port, "POST", "/session")
            placed.add(r.header("X-Pod"))
            r.conn.close()
        assert placed == {"pod-0", "pod-x"}, placed


def test_a_server_waiting_for_its_first_check_still_waits_after_an_upgrade():
    # rise 100: a server the new process took for merely down would need 100
    # passing checks (20 s); one still waiting for its first check needs one.
    pods, t = setup(1, conf=with_health("path /health; interval 200ms; rise 100; fall 1;"))
    x = h.Mockpod("pod-x")
    x.control("/control/health/fail")
    rc, out = ctl(t, "add server voice/pod-x %s" % x.addr)
    assert rc == 0, out
    with upgraded(t):
        s = servers_json(t)["pod-x"]
        assert s["health"] == "down", s
        x.control("/control/health/ok")
        h.wait_until(lambda: set(h.count_pods(t.port, 10)) == {"pod-0", "pod-x"}, timeout=10,
                     what="pod-x up after one passing check")


def test_upgrade_to_fewer_workers_keeps_every_socket():
    # workers 3 -> 1: the new process inherits three SO_REUSEPORT sockets per
    # address and its one worker watches them all (a socket left unwatched
    # would hold the connections the kernel hashes to it), then 1 -> 2.
    pods, t = setup(1, conf=CONF.replace("workers 2;", "workers 3;"))
    traffic = Traffic(t.port)
    h.wait_until(lambda: traffic.count >= 20, timeout=20, what="traffic")
    conf = open(t.conf_path).read()
    with open(t.conf_path, "w") as f:
        f.write(conf.replace("workers 3;", "workers 1;"))
    new, _ = upgrade_ok(t)
    newer = None
    try:
        before = traffic.count
        h.wait_until(lambda: traffic.count >= before + 100, timeout=30, what="traffic after")
        count, errors = traffic.stop()
        assert errors == [], errors[:5]
        h.wait_until(lambda: not t.alive(), timeout=20, what="old process to exit")
        # Each new connection lands on one of the three sockets (by hash of
        # its port): every one is answered, and by the new process.
        for i in range(60):
            r = h.get(t.port, "/n%d" % i, headers={"Connection": "close"}, timeout=10 * h.SLOW)
            assert r.status == 200
            r.conn.close()
        with open(t.conf_path, "w") as f:
            f.write(conf.replace("workers 3;", "workers 2;"))
        newer, _ = upgrade_ok(t)
        h.wait_until(lambda: gone(new), timeout=20, what="first new process to exit")
        for i in range(60):
            r = h.get(t.port, "/m%d" % i, headers={"Connection": "close"}, timeout=10 * h.SLOW)
            assert r.status == 200
            r.conn.close()
    finally:
        traffic.stop()
        for p in (newer, new):
            if p:
                stop_pid(p)
        t.stop()


def handover(conf_path, messages, fds=()):
    """Start tether as if an upgrade started it, on a hand-over socket we
    drive: send <messages> (bytes, or (bytes, fd) with a socket), return
    (process, our end)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(os.environ, TETHER_UPGRADE_FD=str(theirs.fileno()))
    p = subprocess.Popen([h.TETHER, "-c", conf_path], env=env, pass_fds=[theirs.fileno()],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    h._procs.append(p)
    theirs.close()
    for m in messages:
        if isinstance(m, tuple):
            socket.send_fds(ours, [m[0]], [m[1]])
        else:
            ours.send(m)
    ours.settimeout(30 * h.SLOW)
    return p, ours


def test_bad_handover_is_refused_with_a_message():
    pods, t = setup(1)
    conf = t.conf_path
    for msgs, want in (
            ([b"hello\n"], "another hand-over protocol"),
            ([b"tether-upgrade 1 1\n", b"fd listen\n"], "missing from its message"),
            ([b"tether-upgrade 1 1\n", b"half a line"], "malformed hand-over message"),
            ([b"tether-upgrade 1 1\n"], "ended early")):
        p, ours = handover(conf, msgs)
        if want == "ended early":
            ours.shutdown(socket.SHUT_WR)
        answer = ours.recv(4096).decode()
        out = p.communicate(timeout=30 * h.SLOW)[0].decode()
        ours.close()
        assert p.returncode == 1 and want in out and answer.startswith("error ") and \
            want in answer, (msgs, out, answer)
    p = subprocess.run([h.TETHER, "-c", conf], env=dict(os.environ, TETHER_UPGRADE_FD="x"),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30 * h.SLOW)
    assert p.returncode == 1 and b"bad TETHER_UPGRADE_FD" in p.stdout, p.stdout
    # A hand-over of the admin socket that is not a listening socket: refused.
    a, b = socket.socketpair()
    p, ours = handover(conf, [b"tether-upgrade 1 1\n", (b"fd admin\n", a.fileno())])
    answer = ours.recv(4096).decode()
    p.communicate(timeout=30 * h.SLOW)
    assert p.returncode == 1 and "unusable admin socket" in answer, answer
    for s in (a, b, ours):
        s.close()
    # Unknown state lines are skipped; the old one still serves throughout.
    assert serving_pid(t) == t.pid and h.get(t.port, "/x").status == 200
    h.stop_clean(t)


def test_one_instance_per_pid_file_and_admin_socket():
    pods, t = setup(1)
    second = subprocess.run([h.TETHER, "-c", t.conf_path], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=30 * h.SLOW)
    out = second.stdout.decode()
    assert second.returncode == 1, out
    assert "another tether (pid %d)" % t.pid in out and "tether.pid" in out, out
    # Without a pid file, the admin socket tells.
    other = os.path.join(t.dir, "other.conf")
    text = open(t.conf_path).read()
    with open(other, "w") as f:
        f.write(text.replace("pidfile ", "# pidfile "))
    second = subprocess.run([h.TETHER, "-c", other], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=30 * h.SLOW)
    out = second.stdout.decode()
    assert second.returncode == 1, out
    assert "another tether (pid %d) answers on the admin socket" % t.pid in out, out
    # The first one never noticed: same pid file, admin socket, traffic.
    assert int(open(os.path.join(t.dir, "tether.pid")).read()) == t.pid
    assert serving_pid(t) == t.pid and h.get(t.port, "/x").status == 200
    h.stop_clean(t)
    # A pid file left by a process that is gone does not block a start.
    with open(os.path.join(t.dir, "tether.pid"), "w") as f:
        f.write("999999\n")
    t2 = h.Tether(text, port=t.port, sport=t.kw["sport"], secret=t.kw["secret"])
    try:
        h.wait_admin(t.admin_sock)
        assert int(open(os.path.join(t.dir, "tether.pid")).read()) == t2.pid
    finally:
        h.stop_clean(t2)


if __name__ == "__main__":
    h.main(globals(), tmp_prefix="tether-test-upgrade-")
