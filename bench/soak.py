# SPDX-License-Identifier: MIT
"""Soak: mixed traffic through one tether for a long time (HTTP keep-alive and fresh
connections, uploads chunked and not, learned sessions with affinity checks, WebSocket
tunnels), with reloads, pod kills and Redis restarts on a schedule. Samples tether's
RSS and open descriptors; at the end prints the figures and a verdict:
  - RSS and descriptors flat after warm-up: the median of the last window within 5 %
    of the median of the first window after warm-up (descriptors: 5 % or 3, whichever
    is larger, since a few connections come and go);
  - zero unexpected errors: a failed request is expected only when the access log says
    it went to a pod that was down at the time (killed, or not yet marked down), or it
    was a tunnel to a pod that was killed; any other failure is unexpected;
  - tether alive at the end and stopped cleanly by SIGTERM.
Run through bench/soak.sh."""
import collections
import http.client
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("TETHER_SRCDIR", "."), "tests", "integration"))
import harness as h  # noqa: E402

DURATION = float(os.environ.get("SOAK_SECONDS", "600"))
WARMUP = float(os.environ.get("SOAK_WARMUP", str(max(30.0, DURATION * 0.1))))
WINDOW = float(os.environ.get("SOAK_WINDOW", str(max(30.0, DURATION * 0.1))))
RELOAD_EVERY = float(os.environ.get("SOAK_RELOAD_EVERY", "20"))
KILL_EVERY = float(os.environ.get("SOAK_KILL_EVERY", "60"))
REDIS_EVERY = float(os.environ.get("SOAK_REDIS_EVERY", "150"))
SAMPLE_EVERY = 5.0

CONF = """
workers 2;
error_log {dir}/error.log notice;
access_log {access_log} json;
shutdown_timeout 5s;
admin { listen unix:{admin_sock}; }
redis { server 127.0.0.1:{rport}; prefix "soak:"; timeout 200ms; }
rate_limit_zone per_ip key=$remote_addr rate=100000r/s burst=100000 global on_redis_error=local;
upstream voice {
    balance least_conn;
    server pod-a {pa};
    server pod-b {pb};
    server pod-c {pc};
    keepalive KEEPALIVE;
    connect_timeout 500ms;
    retries 2;
    health_check { path /health; interval 500ms; timeout 300ms; rise 2; fall 2; }
}
affinity { learn header=X-Voice-Session-Id; header X-Voice-Session-Id; ttl 900s; }
server {
    listen 127.0.0.1:{port};
    limit_req per_ip;
    client_max_body_size 1m;
    route = /session { upstream voice; affinity none; learn on; timeout 10s; }
    route /sdp { upstream voice; affinity header; timeout 10s; }
    route /ws { upstream voice; affinity header; websocket_timeout 60s; }
    route / { upstream voice; timeout 10s; }
}
"""

t0 = time.time()
lock = threading.Lock()
results = []          # (time, kind, ok, detail, request id, pod)
down = {}             # pod name -> list of (from, to) windows when it was down
samples = []          # (time, rss KiB, fds)
events = []           # (time, what)
stop = threading.Event()


def now():
    return time.time() - t0


def record(kind, ok, detail="", rid="", pod=""):
    with lock:
        results.append((now(), kind, ok, detail, rid, pod))


def event(what):
    with lock:
        events.append((now(), what))
    print("[%6.1fs] %s" % (now(), what), flush=True)


def rid():
    return "soak%016x" % random.getrandbits(64)


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def req(self, method, path, body=None, headers=None, fresh=False):
        headers = dict(headers or {})
        headers["X-Request-Id"] = r = rid()
        if fresh or self.conn is None:
            if self.conn:
                self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            self.conn.request(method, path, body=body, headers=headers,
                              encode_chunked="Transfer-Encoding" in headers)
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.will_close or fresh:
                self.conn.close()
                self.conn = None
            return resp.status, resp.getheader("X-Pod", ""), resp.getheader("X-Voice-Session-Id"), data, r
        except Exception as e:
            if self.conn:
                self.conn.close()
            self.conn = None
            e.rid = r  # for the access log lookup
            raise


def guarded(kind, fn):
    def loop():
        c = Client(PORT)
        while not stop.is_set():
            try:
                fn(c)
            except Exception as e:  # classified later with the access log
                record(kind, False, repr(e)[:120], getattr(e, "rid", ""))
                time.sleep(0.05)
    return loop


def check(kind, status, pod, r, want=200):
    ok = status == want
    record(kind, ok, "" if ok else "status %d" % status, r, pod)
    return ok


def t_keepalive(c):
    if random.random() < 0.2:
        st, pod, _, _, r = c.req("POST", "/upload", body=os.urandom(random.randint(1, 20000)))
    else:
        st, pod, _, _, r = c.req("GET", "/x?bytes=%d" % random.randint(0, 5000))
    check("keepalive", st, pod, r)


def t_fresh(c):
    st, pod, _, _, r = c.req("GET", "/fresh?bytes=50000", fresh=True)
    check("fresh", st, pod, r)


def t_chunked(c):
    chunks = [os.urandom(random.randint(1, 4000)) for _ in range(3)]
    st, pod, _, _, r = c.req("POST", "/upload", body=iter(chunks),
                             headers={"Transfer-Encoding": "chunked"})
    check("chunked", st, pod, r)


def t_session(c):
    st, pod, sid, _, r = c.req("POST", "/session")
    if not check("session", st, pod, r) or not sid:
        return
    for _ in range(5):
        st, pod2, _, _, r = c.req("GET", "/sdp", headers={"X-Voice-Session-Id": sid})
        if check("sdp", st, pod2, r) and pod2 != pod:
            # moved: allowed only when its pod was down meanwhile
            if not was_down(pod, now() - 3, now()):
                record("affinity", False, "session %s moved %s -> %s" % (sid, pod, pod2), r, pod2)
            pod = pod2
        time.sleep(0.02)


def t_websocket(c):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    r = rid()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "X-Request-Id: %s\r\n\r\n" % r).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            raise ConnectionError("closed in handshake")
        head += d
    pod = ""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"x-pod:"):
            pod = line.split(b":", 1)[1].strip().decode()
    if not head.startswith(b"HTTP/1.1 101"):
        record("websocket", False, head[:40].decode("latin1"), r, pod)
        s.close()
        return
    opened = now()
    try:
        for i in range(20):
            payload = os.urandom(random.randint(1, 120))
            mask = os.urandom(4)
            s.sendall(bytes([0x82, 0x80 | len(payload)]) + mask +
                      bytes(b ^ mask[j % 4] for j, b in enumerate(payload)))
            got = b""
            while len(got) < 2 + len(payload):
                d = s.recv(4096)
                if not d:
                    raise ConnectionError("tunnel closed")
                got += d
            if got[2:] != payload:
                raise ValueError("echo mismatch")
            time.sleep(0.1)
        s.sendall(bytes([0x88, 0x80]) + os.urandom(4))
        record("websocket", True, "", r, pod)
    except Exception as e:
        ok = was_down(pod, opened, now() + 1)
        record("websocket", ok, ("expected: " if ok else "") + repr(e)[:80], r, pod)
    finally:
        s.close()


def was_down(pod, a, b):
    """Was <pod> down (killed, or killed recently and not yet marked down) in [a, b]?"""
    with lock:
        for (x, y) in down.get(pod, []):
            if x - 0.5 <= b and a <= (y if y else now()) + 3.0:
                return True
    return False


def rss_fds(pid):
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def write_conf(t, keepalive):
    text = CONF.replace("KEEPALIVE", str(keepalive))
    for k, v in t.kw.items():
        text = text.replace("{" + k + "}", str(v))
    with open(t.conf_path + ".new", "w") as f:
        f.write(text)
    os.replace(t.conf_path + ".new", t.conf_path)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0


def main():
    global PORT
    redis = h.Redis()
    pods = {n: h.Mockpod(n, args=["--session-header", "X-Voice-Session-Id"], threads=2)
            for n in ("pod-a", "pod-b", "pod-c")}
    t = h.Tether(CONF.replace("KEEPALIVE", "32"), rport=redis.port, pa=pods["pod-a"].addr,
                 pb=pods["pod-b"].addr, pc=pods["pod-c"].addr)
    PORT = t.port
    event("tether pid %d on port %d, %d s soak (warm-up %d s)" % (t.pid, t.port, DURATION, WARMUP))
    kinds = [("keepalive", t_keepalive)] * 3 + [("fresh", t_fresh), ("chunked", t_chunked),
                                                 ("session", t_session), ("session", t_session),
                                                 ("websocket", t_websocket), ("websocket", t_websocket)]
    threads = [threading.Thread(target=guarded(k, f), daemon=True) for k, f in kinds]
    for th in threads:
        th.start()

    next_sample = next_reload = next_kill = next_redis = 0.0
    next_reload, next_kill, next_redis = RELOAD_EVERY, KILL_EVERY, REDIS_EVERY
    reloads = kills = redis_restarts = 0
    victims = ["pod-a", "pod-b", "pod-c"]
    while now() < DURATION:
        if not t.alive():
            event("tether died")
            break
        if now() >= next_sample:
            rss, fds = rss_fds(t.pid)
            samples.append((now(), rss, fds))
            next_sample += SAMPLE_EVERY
        if now() >= next_reload:
            reloads += 1
            write_conf(t, 32 if reloads % 2 == 0 else 16)
            t.signal(signal.SIGHUP)
            next_reload += RELOAD_EVERY
        if now() >= next_kill:
            name = victims[kills % 3]
            kills += 1
            p = pods[name]
            with lock:
                down.setdefault(name, []).append([now(), None])
            event("kill %s" % name)
            p.kill()
            time.sleep(5)
            pods[name] = h.Mockpod(name, port=p.port, args=["--session-header", "X-Voice-Session-Id"],
                                   threads=2)
            with lock:
                down[name][-1][1] = now()
            event("restart %s" % name)
            next_kill += KILL_EVERY
        if now() >= next_redis:
            redis_restarts += 1
            event("restart redis")
            redis.kill()
            time.sleep(2)
            redis = h.Redis(port=redis.port)
            next_redis += REDIS_EVERY
        time.sleep(0.2)

    stop.set()
    for th in threads:
        th.join(timeout=20)
    alive = t.alive()
    rc = t.stop(timeout=15)
    time.sleep(0.3)

    # Classify failures with the access log (request id -> server, term).
    log = {}
    for l in t.access():
        if l.get("request_id"):
            log[l["request_id"]] = l
    unexpected = []
    expected = 0
    expected_by = collections.Counter()
    for (at, kind, ok, detail, r, pod) in results:
        if ok:
            continue
        l = log.get(r)
        srv = l.get("server") if l else pod
        if detail.startswith("expected: ") or (srv and was_down(srv, at - 2, at)):
            expected += 1
            expected_by["%s %s" % (kind, l.get("term") if l else detail.split("(")[0][:30])] += 1
        else:
            unexpected.append((round(at, 1), kind, detail, srv, l.get("term") if l else None))

    by_kind = collections.Counter(k for (_, k, ok, _, _, _) in results if ok)
    total_ok = sum(by_kind.values())
    after = [s for s in samples if s[0] >= WARMUP]
    first = [s for s in after if s[0] < WARMUP + WINDOW]
    last = [s for s in after if s[0] >= samples[-1][0] - WINDOW] if samples else []
    rss_a, rss_b = median([s[1] for s in first]), median([s[1] for s in last])
    fd_a, fd_b = median([s[2] for s in first]), median([s[2] for s in last])
    rss_drift = (rss_b - rss_a) / rss_a * 100 if rss_a else 0
    fd_drift = (fd_b - fd_a) / fd_a * 100 if fd_a else 0
    rss_ok = abs(rss_drift) <= 5
    fd_ok = abs(fd_b - fd_a) <= max(3, 0.05 * fd_a)

    print("\n==== soak summary ====")
    print("duration %.0f s, warm-up %.0f s, window %.0f s" % (now(), WARMUP, WINDOW))
    print("successful exchanges: %d (%s)" % (total_ok, ", ".join(
        "%s %d" % kv for kv in sorted(by_kind.items()))))
    print("reloads %d, pod kills %d, redis restarts %d" % (reloads, kills, redis_restarts))
    print("failures: %d expected (pod down), %d unexpected" % (expected, len(unexpected)))
    print("expected failures by kind and termination: %s" % ", ".join(
        "%s %d" % kv for kv in expected_by.most_common()))
    for u in unexpected[:20]:
        print("  unexpected: %r" % (u,))
    for (at, kind, ok, detail, r, pod) in results:
        if not ok and r in log and os.environ.get("SOAK_DEBUG"):
            print("  failed %s: %s" % (detail, json.dumps(log[r])))
    print("RSS KiB: first window median %d, last window median %d (%+.1f %%), min %d max %d"
          % (rss_a, rss_b, rss_drift, min(s[1] for s in after), max(s[1] for s in after)))
    print("fds: first window median %d, last window median %d (%+.1f %%), min %d max %d"
          % (fd_a, fd_b, fd_drift, min(s[2] for s in after), max(s[2] for s in after)))
    print("samples (t, rss KiB, fds): " + " ".join("%d:%d:%d" % s for s in samples[::6]))
    print("tether alive at the end: %s, exit status after SIGTERM: %s" % (alive, rc))
    ok = alive and rc == 0 and rss_ok and fd_ok and not unexpected and total_ok > 0
    print("VERDICT: %s" % ("PASS" if ok else "FAIL"))
    with open(os.path.join(os.environ.get("SOAK_OUT", "."), "soak-samples.json"), "w") as f:
        json.dump({"samples": samples, "events": events, "unexpected": unexpected}, f)
    for p in pods.values():
        p.stop()
    redis.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
