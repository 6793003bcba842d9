# SPDX-License-Identifier: MIT
"""The demo's guided tour, run by scripts/demo.sh against a running tether."""
import argparse
import asyncio
import collections
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

REGION = {"pod-a": "eu-west", "pod-b": "eu-west", "pod-c": "me-central", "pod-d": "us-west",
          "pod-e": "eu-west"}


def request(port, method, path, headers=None, body=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    return r, data, c


def wait_ready(port, stats):
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            r, _, c = request(port, "GET", "/health")
            c.close()
            if r.status == 200:
                # let the first health checks mark every pod up
                time.sleep(2.5)
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("tether did not come up on port %d" % port)


def step(title):
    print("\n== %s" % title, flush=True)


def spread(port, n=1000):
    step("%d new voice sessions (POST /session), split by region weight 70/30" % n)
    pods = collections.Counter()
    conn = None
    for _ in range(n):
        r, body, conn = request(port, "POST", "/session", conn=conn)
        pods[r.getheader("X-Pod")] += 1
    conn.close()
    regions = collections.Counter()
    for p, k in pods.items():
        regions[REGION.get(p, p)] += k
    for reg in ("eu-west", "me-central", "us-west"):
        print("  %-10s %5.1f%%  %s" % (reg, 100.0 * regions[reg] / n,
                                      " ".join("%s=%d" % (p, pods[p]) for p in sorted(pods) if REGION[p] == reg)))


def one_session(port):
    step("one session stays on its pod: /session -> /sdp -> /tools -> webhook -> WebSocket")
    r, body, c = request(port, "POST", "/session")
    c.close()
    sid = json.loads(body)["session_id"]
    pod = r.getheader("X-Pod")
    cookie = r.getheader("Set-Cookie").split(";")[0]
    print("  POST /session            -> %s  (session %s)" % (pod, sid))
    for method, path, hdrs in (("POST", "/sdp", {"Cookie": cookie}),
                               ("POST", "/tools/lookup", {"Cookie": cookie}),
                               ("POST", "/webhook/%s/event" % sid, {})):
        r, _, c = request(port, method, path, hdrs)
        c.close()
        print("  %-4s %-20s -> %s%s" % (method, path[:20], r.getheader("X-Pod"),
                                       "  (no cookie: learned id)" if not hdrs else ""))
    try:
        import websockets.client

        async def ws():
            async with websockets.client.connect("ws://127.0.0.1:%d/ws/events" % port,
                                                 extra_headers={"Cookie": cookie}) as w:
                await w.send("hello pod")
                echo = await w.recv()
                return w.response_headers.get("X-Pod"), echo
        wpod, echo = asyncio.run(ws())
        print("  WebSocket /ws/events     -> %s  (echo: %r)" % (wpod, echo))
    except Exception as e:  # the demo goes on without python3-websockets
        print("  WebSocket skipped: %s" % e)


def kill_pod(port, run, mockpod, pod_b_addr):
    step("pod-b is killed (SIGKILL) during steady traffic")
    with open(os.path.join(run, "pod-b.pid")) as f:
        pid = int(f.read())
    errors = collections.Counter()
    served = collections.Counter()
    stop = time.time() + 4
    lock = threading.Lock()

    def client():
        # One voice session per client: its requests follow its pod.
        r, _, conn = request(port, "POST", "/session")
        cookie = {"Cookie": (r.getheader("Set-Cookie") or "").split(";")[0]}
        while time.time() < stop:
            try:
                r, _, conn = request(port, "GET", "/sdp", headers=cookie, conn=conn)
                with lock:
                    if r.status != 200:
                        errors[r.status] += 1
                    else:
                        served[r.getheader("X-Pod")] += 1
            except Exception as e:
                with lock:
                    errors[type(e).__name__] += 1
                conn = None

    ths = [threading.Thread(target=client) for _ in range(3)]
    for t in ths:
        t.start()
    time.sleep(1.5)
    os.kill(pid, signal.SIGKILL)
    for t in ths:
        t.join()
    total = sum(served.values())
    print("  %d requests, client errors: %d %s" % (total, sum(errors.values()), dict(errors) or ""))
    print("  served by: %s" % dict(served))
    p = subprocess.Popen([mockpod, "--listen", pod_b_addr, "--name", "pod-b",
                          "--quiet", "--report-sessions"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    with open(os.path.join(run, "pod-b.pid"), "w") as f:
        f.write("%d\n" % p.pid)
    print("  pod-b restarted (pid %d); health checks bring it back" % p.pid)


def set_dns(run, ips):
    """The eu-west pods in DNS: rewrite the hosts file, SIGHUP dnsmasq."""
    with open(os.path.join(run, "hosts.new"), "w") as f:
        f.write("".join("%s eu.demo.test\n" % ip for ip in ips))
    os.rename(os.path.join(run, "hosts.new"), os.path.join(run, "hosts"))
    with open(os.path.join(run, "dnsmasq.pid")) as f:
        os.kill(int(f.read()), signal.SIGHUP)


def ctl(tetherctl, run, *cmd):
    sock = os.path.join(run, "admin.sock")
    print("  $ tetherctl %s" % " ".join(cmd))
    out = subprocess.run([tetherctl, "-s", sock] + list(cmd), capture_output=True, text=True)
    for line in (out.stdout + out.stderr).strip().splitlines():
        print("    " + line)


def pods_come_and_go(port, run, mockpod, eu_port, tetherctl):
    step("a pod appears in DNS (scale-up): pod-e on 127.0.0.4 joins eu-west")
    p = subprocess.Popen([mockpod, "--listen", "127.0.0.4:%d" % eu_port, "--name", "pod-e",
                          "--quiet", "--report-sessions"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    with open(os.path.join(run, "pod-e.pid"), "w") as f:
        f.write("%d\n" % p.pid)
    time.sleep(0.3)
    t0 = time.time()
    set_dns(run, ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    first = None
    conn = None
    while time.time() < t0 + 15 and first is None:
        r, _, conn = request(port, "POST", "/session", conn=conn)
        if r.getheader("X-Pod") == "pod-e":
            first = time.time() - t0
        time.sleep(0.01)
    conn.close()
    print("  first new session on pod-e %.1f s after the DNS change" % first if first else
          "  pod-e did not get a session yet (see the status page)")

    step("a pod leaves DNS (scale-down) while a call is pinned to it: pod-a finishes its call")
    cookie = None
    for _ in range(200):
        r, _, c = request(port, "POST", "/sdp")
        c.close()
        if r.getheader("X-Pod") == "pod-a":
            cookie = r.getheader("Set-Cookie").split(";")[0]
            break
    set_dns(run, ["127.0.0.3", "127.0.0.4"])
    deadline = time.time() + 10
    while time.time() < deadline:
        out = subprocess.run([tetherctl, "-s", os.path.join(run, "admin.sock"), "show", "servers",
                              "json"], capture_output=True, text=True).stdout
        if any(s["state"] == "leaving" for s in json.loads(out or '{"servers":[]}')["servers"]):
            break
        time.sleep(0.2)
    ctl(tetherctl, run, "show", "servers")
    pods = collections.Counter()
    conn = None
    for _ in range(100):
        r, _, conn = request(port, "POST", "/session", conn=conn)
        pods[r.getheader("X-Pod")] += 1
    conn.close()
    print("  100 new sessions: %s (none on the leaving pod-a)" % dict(sorted(pods.items())))
    if cookie:
        r, _, c = request(port, "POST", "/sdp", {"Cookie": cookie})
        c.close()
        print("  the call pinned to pod-a: POST /sdp -> %s" % r.getheader("X-Pod"))


def admin(tetherctl, run):
    sock = os.path.join(run, "admin.sock")
    if not os.path.exists(tetherctl) or not os.path.exists(sock):
        return
    step("an SRE shifts weight with tetherctl")
    for cmd in (["set", "server", "voice/pod-c", "weight", "2"], ["show", "servers"]):
        print("  $ tetherctl -s %s %s" % (sock, " ".join(cmd)))
        out = subprocess.run([tetherctl, "-s", sock] + cmd, capture_output=True, text=True)
        for line in (out.stdout + out.stderr).strip().splitlines():
            print("    " + line)


def servers_json(tetherctl, sock):
    out = subprocess.run([tetherctl, "-s", sock, "show", "servers", "json"],
                         capture_output=True, text=True)
    try:
        return {s["server"]: s for s in json.loads(out.stdout)["servers"]}
    except ValueError:
        return {}


def capacity(port, tetherctl, run, pod_b_addr):
    step("sessions fill the pods (400 each): a full region spills to the other, then to the "
         "DR tier, then new sessions are shed")
    sock = os.path.join(run, "admin.sock")
    have_ctl = os.path.exists(tetherctl) and os.path.exists(sock)
    deadline = time.time() + 20
    while have_ctl and time.time() < deadline:
        s = servers_json(tetherctl, sock).get(pod_b_addr, {})  # discovered: named by address
        if s.get("health") == "up" and not s.get("ejected_ms"):
            break
        time.sleep(0.5)
    first_new, placed, shed = None, [], None
    conn = None
    for _ in range(3000):
        r, body, conn = request(port, "POST", "/session", conn=conn)
        if r.status != 200:
            shed = (r.status, r.getheader("Retry-After"))
            break
        placed.append(REGION.get(r.getheader("X-Pod"), "?"))
        if first_new is None:
            first_new = r.getheader("Set-Cookie").split(";")[0]
    conn.close()
    last = {reg: max([i for i, x in enumerate(placed) if x == reg] or [-1])
            for reg in ("eu-west", "me-central")}
    first_full = min(last, key=last.get)
    other = "me-central" if first_full == "eu-west" else "eu-west"
    dr_first = min([i for i, reg in enumerate(placed) if reg == "us-west"] or [len(placed)])
    both = collections.Counter(placed[:last[first_full] + 1])
    print("  both primary regions had room: eu-west +%d, me-central +%d (least loaded first)"
          % (both["eu-west"], both["me-central"]))
    print("  %s full: its new sessions spilled to %s, which took %d more"
          % (first_full, other, dr_first - last[first_full] - 1))
    print("  primary tier full: us-west (the DR tier, untouched until now) took %d"
          % (len(placed) - dr_first))
    if shed:
        print("  every pod full: %d with Retry-After: %s (tether_sessions_shed_total)" % shed)
    r, _, c = request(port, "POST", "/tools/lookup", {"Cookie": first_new})
    c.close()
    print("  a live session's tools call still passes: %d from %s" % (r.status,
                                                                    r.getheader("X-Pod")))
    if have_ctl:
        for cmd in (["show", "servers"], ["set", "server", "voice/" + pod_b_addr, "max_sessions", "600"]):
            print("  $ tetherctl -s %s %s" % (sock, " ".join(cmd)))
            out = subprocess.run([tetherctl, "-s", sock] + cmd, capture_output=True, text=True)
            for line in (out.stdout + out.stderr).strip().splitlines():
                print("    " + line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int)
    ap.add_argument("--stats", type=int)
    ap.add_argument("--run")
    ap.add_argument("--tetherctl")
    ap.add_argument("--mockpod")
    ap.add_argument("--pod-b-addr")
    ap.add_argument("--eu-port", type=int)
    a = ap.parse_args()
    wait_ready(a.port, a.stats)
    spread(a.port)
    one_session(a.port)
    kill_pod(a.port, a.run, a.mockpod, a.pod_b_addr)
    pods_come_and_go(a.port, a.run, a.mockpod, a.eu_port, a.tetherctl)
    admin(a.tetherctl, a.run)
    capacity(a.port, a.tetherctl, a.run, a.pod_b_addr)


if __name__ == "__main__":
    main()
