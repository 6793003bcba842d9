# SPDX-License-Identifier: MIT
"""Shared state that survives a Redis failover, with real parts: a primary and
a replica redis-server, three redis-sentinel processes, two tether replicas and
mock pods on loopback. The primary is killed under steady traffic: sentinel
promotes the replica, both tethers move to it, no client request fails, and
sessions learned before, during and after stay on their pods through both
replicas; an admin change and a global rate limit work across replicas again
after the switch. Also: several plain endpoints (the first whose ROLE is
master), sessions learned during an outage reach Redis afterwards, an unknown
master name, a wrong password, an ACL user and a Redis that answers garbage."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import harness as h

PREFIX = "t:"

CONF = """
workers 2;
error_log {dir}/error.log info;
admin { listen unix:{admin_sock}; }
stats { listen 127.0.0.1:{sport}; }
redis { {redis} prefix "{prefix}"; timeout 300ms; {check} }
rate_limit_zone g key=$http_x_key rate=1r/m burst=2 nodelay global;
upstream voice {
    server pod-a {a};
    server pod-b {b};
    server pod-c {c};
}
affinity {
    header X-Voice-Session-Id;
    learn header=X-Voice-Session-Id;
    path /webhook/{id}/;
    ttl 900s;
}
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
    route /webhook/ { upstream voice; affinity session; }
    route /limited/ { upstream voice; limit_req g; }
}
"""


class Redis(h.Proc):
    """redis-server on loopback, optionally a replica of <primary> or with
    extra arguments (a password, an ACL user)."""

    def __init__(self, primary=None, args=()):
        self.port = h.free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-")
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir]
        if primary:
            argv += ["--replicaof", "127.0.0.1", str(primary.port)]
        super().__init__(argv + list(args))
        h.wait_port(self.port)

    def cmd(self, *args):
        return h.Redis.cmd(self, *args)


class Sentinel(h.Proc):
    def __init__(self, primary, name="tm"):
        self.port = h.free_port()
        self.dir = tempfile.mkdtemp(prefix="sentinel-")
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                    "sentinel monitor %s 127.0.0.1 %d 2\n"
                    "sentinel down-after-milliseconds %s 500\n"
                    "sentinel failover-timeout %s 3000\n"
                    "sentinel parallel-syncs %s 1\n"
                    % (self.port, self.dir, name, primary.port, name, name, name))
        super().__init__(["redis-sentinel", conf])
        h.wait_port(self.port)

    def cmd(self, *args):
        return h.Redis.cmd(self, *args)


def pct(xs, q):
    """The q-th percentile of sorted <xs> (seconds) in ms."""
    return xs[min(len(xs) - 1, len(xs) * q // 100)] * 1e3


def metric(t, name):
    for line in h.get(t.kw["sport"], "/metrics").body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric " + name)


def error_log(t):
    try:
        with open(os.path.join(t.dir, "error.log")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def ctl(t, *args):
    p = subprocess.run([h.TETHERCTL, "-s", t.admin_sock] + list(args), capture_output=True,
                       text=True, timeout=30 * h.SLOW)
    assert p.returncode == 0 and not p.stderr, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def show_redis(t):
    out = {}
    for line in ctl(t, "show", "redis").splitlines():
        k, _, v = line.partition(": ")
        if k:
            out[k] = v
    return out


def weight(t, name):
    out = json.loads(ctl(t, "show", "servers", "json"))
    return {s["server"]: s for s in out["servers"]}[name]["weight"]


def start_tethers(redis_conf, pods, n=2, check="check_interval 200ms;"):
    ts = []
    for _ in range(n):
        t = h.Tether(CONF, sport=h.free_port(), prefix=PREFIX, redis=redis_conf, check=check,
                     a=pods[0].addr, b=pods[1].addr, c=pods[2].addr)
        h.wait_admin(t.admin_sock)
        ts.append(t)
    return ts


def pods3():
    return [h.Mockpod("pod-a"), h.Mockpod("pod-b"), h.Mockpod("pod-c")]


class Client:
    """One keep-alive connection to a tether (reopened once if it was closed)."""

    def __init__(self, t):
        self.port, self.conn = t.port, None

    def req(self, method, path, headers=None):
        for attempt in range(2):
            try:
                r = h.request(self.port, method, path, headers=headers, conn=self.conn)
                self.conn = r.conn
                return r
            except (ConnectionError, OSError):
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
    return r.header("X-Voice-Session-Id"), r.header("X-Pod")


def all_on_their_pods(ts, sessions):
    """Sessions (sid, pod) that some replica does not send to their pod."""
    wrong = []
    for t in ts:
        c = Client(t)
        for sid, pod in sessions:
            r = c.req("POST", "/webhook/%s/check" % sid)
            if r.status != 200 or r.header("X-Pod") != pod:
                wrong.append((t.port, sid, pod, r.status, r.header("X-Pod")))
        c.close()
    return wrong


def wait_primary(ts, port, timeout=30):
    want = "127.0.0.1:%d" % port
    h.wait_until(lambda: all(show_redis(t).get("primary") == want and
                             show_redis(t).get("workers_up") == "2/2" for t in ts),
                 timeout=timeout * h.SLOW, step=0.05,
                 what="both tethers on primary %s: %s" % (want, [show_redis(t) for t in ts]))


def sentinel_set():
    """A primary, its replica (in sync) and three sentinels that know both and
    each other, so a failover can be voted."""
    p = Redis()
    r = Redis(primary=p)
    h.wait_until(lambda: "master_link_status:up" in r.cmd("INFO", "replication"),
                 timeout=10 * h.SLOW, what="replica in sync")
    ss = [Sentinel(p) for _ in range(3)]

    def ready():
        for s in ss:
            if len(s.cmd("SENTINEL", "replicas", "tm") or []) < 1:
                return False
            if len(s.cmd("SENTINEL", "sentinels", "tm") or []) < 2:
                return False
        return True
    h.wait_until(ready, timeout=20 * h.SLOW, step=0.1, what="sentinels know each other")
    return p, r, ss


def test_sentinel_failover_under_traffic():
    p, r, ss = sentinel_set()
    pods = pods3()
    conf = "sentinel %s; master tm;" % " ".join("127.0.0.1:%d" % s.port for s in ss)
    ta, tb = start_tethers(conf, pods)
    wait_primary((ta, tb), p.port)
    info = show_redis(ta)
    assert info["mode"] == "sentinel" and info["role"] == "master", info
    assert info["master_name"] == "tm", info
    h.wait_until(lambda: all(show_redis(t)["sentinel"].endswith(" subscribed") for t in (ta, tb)),
                 what="+switch-master subscriptions")
    ca, cb = Client(ta), Client(tb)
    before = []
    for i in range(20):
        sid, pod = create(ca if i % 2 else cb)
        before.append((sid, pod))
    assert not all_on_their_pods((ta, tb), before)

    # Steady traffic: sessions created through one replica, followed at once
    # through the other. Bounded in count and time.
    stop = threading.Event()
    log = []  # (t, phase, ok, latency, right pod)
    learned = []
    failures = []

    def traffic():
        c1, c2 = Client(ta), Client(tb)
        t_end = time.monotonic() + 90 * h.SLOW
        for i in range(20000):
            if stop.is_set() or time.monotonic() > t_end:
                break
            x, y = (c1, c2) if i % 2 else (c2, c1)
            t0 = time.monotonic()
            try:
                sid, pod = create(x)
                learned.append((t0, sid, pod))
                resp = y.req("POST", "/webhook/%s/event" % sid)
                ok = resp.status == 200
                if not ok:
                    failures.append((sid, resp.status))
                log.append((t0, ok, time.monotonic() - t0, resp.header("X-Pod") == pod))
            except Exception as e:  # a failed client request: recorded, asserted below
                failures.append(repr(e))
                log.append((t0, False, time.monotonic() - t0, False))
        c1.close()
        c2.close()
    th = threading.Thread(target=traffic)
    th.start()
    h.wait_until(lambda: len(log) >= 50, timeout=20 * h.SLOW, what="traffic")
    t_kill = time.monotonic()
    p.kill()
    # sentinel promotes the replica; both tethers move every connection there
    moved = {}

    def both_moved():
        for t in (ta, tb):
            i = show_redis(t)
            if t.port not in moved and i.get("primary") == "127.0.0.1:%d" % r.port and \
                    i.get("workers_up") == "2/2":
                moved[t.port] = time.monotonic()
        return len(moved) == 2
    h.wait_until(both_moved, timeout=40 * h.SLOW, step=0.02, what="both tethers moved")
    t_switched = time.monotonic()
    n_at_switch = len(log)
    h.wait_until(lambda: len(log) >= n_at_switch + 50, timeout=20 * h.SLOW, what="traffic after")
    stop.set()
    th.join(60)
    assert not th.is_alive()
    assert not failures, failures[:5]

    # Sessions before, during and after: on their pods through both replicas
    # once the queued writes reached the new primary.
    sessions = before + [(sid, pod) for _, sid, pod in learned]
    h.wait_until(lambda: show_redis(ta)["queue"].startswith("0/") and
                 show_redis(tb)["queue"].startswith("0/"), timeout=10 * h.SLOW,
                 what="queues written")
    t_conv = time.monotonic()
    wrong = all_on_their_pods((ta, tb), sessions)
    assert not wrong, (len(wrong), wrong[:5])
    during = [l for l in log if t_kill <= l[0] <= t_switched]
    base = sorted(l[2] for l in log if l[0] < t_kill)
    lat = sorted(l[2] for l in during) or [0]
    print("  primary kill: %d requests, %d failed; during the %.2f s switch %d sessions were "
          "created on one replica and followed at once through the other, %d of those went to "
          "another pod (the other replica could not see them yet); latency p50/p99/max "
          "%.1f/%.1f/%.1f ms before, %.1f/%.1f/%.1f ms during; tethers on the new primary "
          "%.2f s and %.2f s after the kill; every session on its pod through both replicas "
          "%.2f s after the kill"
          % (len(log) * 2, len(failures), t_switched - t_kill, len(during),
             sum(1 for l in during if not l[3]), pct(base, 50), pct(base, 99), base[-1] * 1e3,
             pct(lat, 50), pct(lat, 99), lat[-1] * 1e3, min(moved.values()) - t_kill,
             max(moved.values()) - t_kill, t_conv - t_kill))
    for t in (ta, tb):
        info = show_redis(t)
        assert int(info["failovers"]) >= 1 and info["last_failover"] != "-", info
        assert metric(t, "tether_redis_failovers_total") >= 1
        st = json.loads(h.get(t.kw["sport"], "/stats").body)
        assert st["redis"]["primary"] == "127.0.0.1:%d" % r.port, st["redis"]

    # An admin change after the failover reaches both replicas.
    ctl(ta, "set", "server", "voice/pod-c", "weight", "7")
    h.wait_until(lambda: weight(tb, "pod-c") == 7, timeout=10 * h.SLOW, what="weight on B")
    assert weight(ta, "pod-c") == 7
    # A global rate limit holds across the replicas again: 3 allowed in all.
    h.wait_until(lambda: all(int(show_redis(t)["workers_up"][0]) == 2 for t in (ta, tb)))
    codes = [(ca if i % 2 else cb).req("GET", "/limited/x", {"X-Key": "after"}).status
             for i in range(8)]
    assert codes.count(200) == 3 and codes.count(429) == 5, codes
    ca.close()
    cb.close()
    h.stop_clean(ta, tb)


def test_servers_first_master():
    """Two plain endpoints, the replica first: tether uses the primary, and
    follows a manual switch of roles."""
    p = Redis()
    r = Redis(primary=p)
    pods = pods3()
    conf = "server 127.0.0.1:%d; server 127.0.0.1:%d;" % (r.port, p.port)
    ta, tb = start_tethers(conf, pods)
    wait_primary((ta, tb), p.port)
    assert show_redis(ta)["mode"] == "servers"
    sid, pod = create(Client(ta))
    # written to the primary and replicated (as it is before a real failover)
    for x in (p, r):
        h.wait_until(lambda: any(v and v.startswith("voice/" + pod) for v in
                                 [x.cmd("GET", k) for k in x.cmd("KEYS", PREFIX + "session:*")]),
                     what="session in %d" % x.port)
    # switch the roles: r becomes the primary, p its replica
    r.cmd("REPLICAOF", "NO", "ONE")
    p.cmd("REPLICAOF", "127.0.0.1", str(r.port))
    wait_primary((ta, tb), r.port)
    sid2, pod2 = create(Client(tb))
    wrong = all_on_their_pods((ta, tb), [(sid, pod), (sid2, pod2)])
    assert not wrong, (wrong, r.cmd("KEYS", "*"), show_redis(ta), show_redis(tb))
    assert "failover" in error_log(ta)
    h.stop_clean(ta, tb)


def test_readonly_reply_is_a_failover():
    """With a ROLE check far away, a worker's READONLY answer alone makes
    tether look for the primary again; the write that got it is kept."""
    p = Redis()
    r = Redis(primary=p)
    h.wait_until(lambda: "master_link_status:up" in r.cmd("INFO", "replication"),
                 timeout=10 * h.SLOW, what="replica in sync")
    pods = pods3()
    conf = "server 127.0.0.1:%d; server 127.0.0.1:%d;" % (p.port, r.port)
    ta, tb = start_tethers(conf, pods, check="check_interval 60s;")
    wait_primary((ta, tb), p.port)
    r.cmd("REPLICAOF", "NO", "ONE")
    p.cmd("REPLICAOF", "127.0.0.1", str(r.port))
    h.wait_until(lambda: "master_link_status:up" in p.cmd("INFO", "replication"),
                 timeout=10 * h.SLOW, what="old primary now a replica")
    # the learned session's SET meets READONLY on the old primary
    c = Client(ta)
    sessions = [create(c)]
    h.wait_until(lambda: 'answered "READONLY' in error_log(ta), what="READONLY seen")
    wait_primary((ta,), r.port, timeout=10)
    sessions += [create(c) for _ in range(3)]
    h.wait_until(lambda: show_redis(ta)["queue"].startswith("0/"), what="queue written")
    # tb learns of it by its own first write (its ROLE check is a minute away)
    cb = Client(tb)
    sessions.append(create(cb))
    wait_primary((tb,), r.port, timeout=10)
    cb.close()
    h.wait_until(lambda: not all_on_their_pods((tb,), sessions), timeout=10 * h.SLOW,
                 what="sessions on their pods through B")
    c.close()
    h.stop_clean(ta, tb)


def test_config_errors():
    """Bad redis blocks are refused with the reason; a password never shows."""
    d = tempfile.mkdtemp(prefix="conf-")
    cases = [
        ("server 127.0.0.1:1; sentinel 127.0.0.1:2; master m;", "not both"),
        ("sentinel 127.0.0.1:2;", "needs \"master NAME\""),
        ("server 127.0.0.1:1; master m;", "only used with \"sentinel\""),
        ("server 127.0.0.1:1; password hunter2; password_file /x;", "exclude each other"),
        ("server 127.0.0.1:1; password_file %s/missing;" % d, "cannot read password_file"),
        ("server 127.0.0.1:1; user alice;", "\"user\" needs"),
        ("prefix x;", "needs \"server HOST:PORT\" or \"sentinel"),
    ]
    for i, (block, want) in enumerate(cases):
        path = os.path.join(d, "t%d.conf" % i)
        with open(path, "w") as f:
            f.write("redis { %s }\nupstream u { server a 127.0.0.1:1; }\n"
                    "server { listen 127.0.0.1:1; route / { upstream u; } }\n" % block)
        out = subprocess.run([h.TETHER, "-t", "-c", path], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode != 0 and want in out.stderr, (block, out.returncode, out.stderr)
        assert "hunter2" not in out.stderr + out.stdout


def test_outage_queue_written_after():
    """Sessions learned while the only Redis is down reach it once it is back,
    so the other replica (with an empty table) sends them to their pods."""
    p = Redis()
    port = p.port
    pods = pods3()
    ta, = start_tethers("server 127.0.0.1:%d;" % port, pods, n=1)
    wait_primary((ta,), port)
    p.stop()
    h.wait_until(lambda: show_redis(ta)["workers_up"] == "0/2", what="workers down")
    c = Client(ta)
    sessions = [create(c) for _ in range(30)]
    info = show_redis(ta)
    assert info["queue"] == "30/10000", info
    p2 = h.Redis(port=port)
    h.wait_until(lambda: show_redis(ta)["queue"].startswith("0/"), timeout=15 * h.SLOW,
                 what="queue written")
    assert int(show_redis(ta)["replayed_total"]) >= 30
    tb, = start_tethers("server 127.0.0.1:%d;" % port, pods, n=1)
    wait_primary((tb,), port)
    assert not all_on_their_pods((tb,), sessions)
    ttl = p2.cmd("PTTL", p2.cmd("KEYS", PREFIX + "session:*")[0])
    assert 800000 < ttl <= 900000, ttl
    c.close()
    h.stop_clean(ta, tb)


def test_hung_redis_loses_no_session():
    """The issue's measurement: the only Redis stopped (SIGSTOP) under
    traffic. No client error; every session created meanwhile reaches Redis
    once it resumes, so the other replica sends each to its pod."""
    p = Redis()
    pods = pods3()
    ta, tb = start_tethers("server 127.0.0.1:%d;" % p.port, pods)
    wait_primary((ta, tb), p.port)
    ca, cb = Client(ta), Client(tb)
    p.signal(signal.SIGSTOP)
    try:
        during, t_end = [], time.monotonic() + 3 * h.SLOW
        while time.monotonic() < t_end and len(during) < 500:
            during.append(create(ca))
        # the monitor saw the hang: writes wait in the queue
        h.wait_until(lambda: int(show_redis(ta)["queue"].split("/")[0]) > 0,
                     what="writes queued")
    finally:
        p.signal(signal.SIGCONT)
    h.wait_until(lambda: show_redis(ta)["queue"].startswith("0/") and
                 show_redis(ta)["workers_up"] == "2/2", timeout=20 * h.SLOW, what="queue written")
    wrong = all_on_their_pods((tb,), during)
    print("  SIGSTOP ~3 s: %d sessions created on A, %d not on their pod through B afterwards"
          % (len(during), len(wrong)))
    assert not wrong, (len(wrong), wrong[:3])
    ca.close()
    cb.close()
    h.stop_clean(ta, tb)


def serves(t, pods):
    sid, pod = create(Client(t))
    r = Client(t).req("POST", "/webhook/%s/x" % sid)
    assert r.status == 200 and r.header("X-Pod") == pod, r


def test_unknown_master_name():
    p = Redis()
    ss = [Sentinel(p) for _ in range(3)]
    pods = pods3()
    ta, = start_tethers("sentinel %s; master nope;" % " ".join(
        "127.0.0.1:%d" % s.port for s in ss), pods, n=1)
    h.wait_until(lambda: 'does not know a master named "nope"' in error_log(ta),
                 what="unknown master error")
    info = show_redis(ta)
    assert info["primary"] == "-" and info["state"] in ("no primary", "asking sentinels"), info
    serves(ta, pods)
    h.stop_clean(ta)


def test_sentinel_not_answering_skipped():
    """A dead sentinel and one that answers garbage are skipped."""
    p = Redis()
    ss = [Sentinel(p) for _ in range(2)]
    dead = h.free_port()
    g = Garbage()
    g.start()
    pods = pods3()
    ta, = start_tethers("sentinel 127.0.0.1:%d 127.0.0.1:%d %s; master tm;" % (dead, g.port, " ".join(
        "127.0.0.1:%d" % s.port for s in ss)), pods, n=1)
    wait_primary((ta,), p.port)
    log = error_log(ta)
    assert "sentinel 127.0.0.1:%d does not answer" % dead in log, log
    assert "sentinel 127.0.0.1:%d: Protocol error" % g.port in log, log
    h.wait_until(lambda: show_redis(ta)["sentinel"] == "127.0.0.1:%d subscribed" % ss[0].port,
                 what="+switch-master subscription on the first sentinel that answered")
    serves(ta, pods)
    h.stop_clean(ta)
    g.close()


def test_wrong_password_and_file():
    secret = "s3cret-%d" % os.getpid()
    p = Redis(args=["--requirepass", secret])
    pods = pods3()
    d = tempfile.mkdtemp(prefix="pw-")
    bad, good = os.path.join(d, "bad"), os.path.join(d, "good")
    with open(bad, "w") as f:
        f.write("wrong-%s\n" % secret)
    with open(good, "w") as f:
        f.write(secret + "\n")
    ta, = start_tethers("server 127.0.0.1:%d; password_file %s;" % (p.port, bad), pods, n=1)
    h.wait_until(lambda: "WRONGPASS" in error_log(ta), what="auth error in the log")
    serves(ta, pods)
    assert secret not in error_log(ta) and secret not in ta.stderr()
    assert show_redis(ta)["workers_up"] == "0/2"
    tb, = start_tethers("server 127.0.0.1:%d; password_file %s;" % (p.port, good), pods, n=1)
    wait_primary((tb,), p.port)
    assert secret not in error_log(tb) and secret not in ctl(tb, "show", "redis")
    h.stop_clean(ta, tb)


def test_acl_user():
    p = Redis(args=["--user", "alice", "on", ">pw1", "~*", "&*", "+@all"])
    pods = pods3()
    ta, tb = start_tethers("server 127.0.0.1:%d; user alice; password pw1;" % p.port, pods)
    wait_primary((ta, tb), p.port)
    ctl(ta, "set", "server", "voice/pod-b", "weight", "4")
    h.wait_until(lambda: weight(tb, "pod-b") == 4, timeout=10 * h.SLOW, what="weight on B")
    h.stop_clean(ta, tb)


class Garbage(threading.Thread):
    """A "Redis" that answers every connection with bytes that are not RESP."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.done = False

    def run(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(2)
                c.recv(4096)
                c.sendall(b"?this is not redis\r\n\x00\xff\r\n")
            except OSError:
                pass
            c.close()

    def close(self):
        self.done = True
        self.sock.close()


def test_garbage_redis():
    g = Garbage()
    g.start()
    pods = pods3()
    ta, = start_tethers("server 127.0.0.1:%d;" % g.port, pods, n=1)
    h.wait_until(lambda: "Protocol error" in error_log(ta) or "protocol" in error_log(ta).lower(),
                 what="protocol error in the log")
    for _ in range(5):
        serves(ta, pods)
    assert show_redis(ta)["workers_up"] == "0/2"
    h.stop_clean(ta)
    g.close()


if __name__ == "__main__":
    h.main(globals(), tmp_prefix="tether-redis-failover-")
