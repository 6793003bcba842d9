# SPDX-License-Identifier: MIT
"""DNS service discovery against a real DNS server: dnsmasq on a loopback port
with its own hosts file (reloaded with SIGHUP) and SRV records, mock pods on
127.0.0.2, 127.0.0.3, ... A pod added to DNS gets new sessions; a pod dropped
from DNS leaves (its cookie- and webhook-pinned sessions and its WebSocket stay
until it fails health); a stopped DNS server changes nothing; two replicas pin
a session id to the same pod; 3 -> 10 -> 3 pods under load cost no error."""
import collections
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import harness as h

CONF = """
workers 2;
admin { listen unix:{admin_sock}; }
stats { listen 127.0.0.1:{stats_port}; }
access_log {access_log} json;
affinity {
    cookie VOICE_AFFINITY secret_file={secret};
    learn header=X-Voice-Session-Id;
    path /webhook/@ID@/;
}
upstream voice {
    balance round_robin;
    resolver 127.0.0.1:{dns} valid={valid} timeout=300ms;
    {discover}
    max_servers {max_servers};
    health_check { path /health; interval 100ms; timeout 1s; rise 1; fall 1; }
}
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
    route = /sdp { upstream voice; affinity cookie; }
    route /ws { upstream voice; affinity cookie; }
    route /webhook/ { upstream voice; affinity session; }
    route /hdr/ { upstream voice; affinity header; }
    route / { upstream voice; }
}
"""


class Dnsmasq(h.Proc):
    """dnsmasq answering for *.test from its own hosts file on a loopback port."""

    def __init__(self, hosts, srv=(), port=None):
        self.dir = tempfile.mkdtemp(prefix="dnsmasq-")
        self.hosts_path = os.path.join(self.dir, "hosts")
        self.log = os.path.join(self.dir, "dnsmasq.log")
        self.port = port or h.free_port()
        self.set_hosts(hosts, reload=False)
        argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--addn-hosts=" + self.hosts_path, "--port=%d" % self.port,
                "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=",
                "--local=/test/", "--local-ttl=1", "--no-negcache",
                "--log-facility=" + self.log]
        if os.geteuid() == 0:
            argv.append("--user=root")  # no switch to "nobody": it reads our files
        argv += ["--srv-host=%s" % s for s in srv]
        super().__init__(argv)
        h.wait_port(self.port)

    def set_hosts(self, hosts, reload=True):
        """<hosts>: (ip, name) pairs; SIGHUP makes dnsmasq read them again."""
        tmp = self.hosts_path + ".new"
        with open(tmp, "w") as f:
            for ip, name in hosts:
                f.write("%s %s\n" % (ip, name))
        os.rename(tmp, self.hosts_path)
        if reload:
            self.signal(signal.SIGHUP)


def secret_file():
    d = tempfile.mkdtemp(prefix="tether-key-")
    p = os.path.join(d, "affinity.key")
    with open(p, "w") as f:
        f.write("0123456789abcdef0123456789abcdef\n")
    return p


def pods_on(n, first=2, port=None):
    """<n> mock pods pod-2, pod-3, ... on 127.0.0.2, 127.0.0.3, ... one port."""
    port = port or h.free_port()
    return [h.Mockpod("pod-%d" % i, port=port, host="127.0.0.%d" % i)
            for i in range(first, first + n)]


def hosts_of(pods, name="voice.test"):
    return [(p.host, name) for p in pods]


def tether(dns, pport, discover=None, valid="1s", max_servers=256, secret=None, **kw):
    discover = discover or "discover voice.test port=%d;" % pport
    conf = CONF.replace("{discover}", discover).replace("@ID@", "{id}")
    t = h.Tether(conf, dns=dns.port, valid=valid, max_servers=max_servers,
                 secret=secret or secret_file(), stats_port=h.free_port(), **kw)
    h.wait_admin(t.admin_sock)
    return t


def discovered(npods, nknown=None):
    """<npods> pods, the first <nknown> (all) of them in a dnsmasq, and a tether
    that found and checked them: (pods, dns, tether)."""
    pods = pods_on(npods)
    known = pods[:nknown or npods]
    dns = Dnsmasq(hosts_of(known))
    t = tether(dns, pods[0].port)
    wait_usable(t, known)
    return pods, dns, t


def ctl(t, *args):
    p = subprocess.run([h.TETHERCTL, "-s", t.admin_sock] + list(args), capture_output=True,
                       text=True, timeout=30 * h.SLOW)
    assert p.returncode == 0 and not p.stderr, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def servers(t):
    out = ctl(t, "show", "servers", "json")
    return {s["server"]: s for s in json.loads(out)["servers"]}


def usable(t):
    """Servers that are up and not leaving, by identity."""
    return {k for k, s in servers(t).items() if s["health"] == "up" and s["state"] == "ready"}


def metrics(t):
    """{(family, labels): value} of /metrics."""
    body = h.get(t.kw["stats_port"], "/metrics").body
    out = {}
    for m in re.finditer(r'^(tether_[a-z_]+)(\{[^}]*\})? (\S+)$', body, re.M):
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def ident(p):
    return "%s:%d" % (p.host, p.port)


count = h.count_pods


def wait_usable(t, pods, timeout=15):
    want = {ident(p) for p in pods}
    h.wait_until(lambda: usable(t) == want, timeout=timeout, what="usable servers %s" % want)


def test_pods_found_and_a_pod_added_gets_new_sessions():
    pods, dns, t = discovered(3, 2)
    s = servers(t)[ident(pods[0])]
    assert s["source"] == "dns" and s["address"] == ident(pods[0]), s
    # (the balancer plan follows the first passing checks within ~100 ms)
    h.wait_until(lambda: set(count(t.port, 20)) == {"pod-2", "pod-3"}, what="both pods serve")
    # The access log names a discovered server by its identity.
    h.wait_until(lambda: {l.get("server") for l in t.access()} >= {ident(p) for p in pods[:2]},
                 what="identities in the access log")
    # A third pod appears in DNS: within TTL + one health interval it takes
    # new sessions (the time is printed, not asserted).
    t0 = time.time()
    dns.set_hosts(hosts_of(pods))
    seen = []

    def new_pod_served():
        r = h.get(t.port, "/")
        assert r.status == 200, r.status
        if r.header("X-Pod") == "pod-4":
            seen.append(time.time() - t0)
        return bool(seen)

    h.wait_until(new_pod_served, timeout=15, step=0.005, what="a request on the new pod")
    print("     DNS change to first new session on the new pod: %.0f ms" % (seen[0] * 1000))
    assert "membership: server voice/%s joins (DNS voice.test)" % ident(pods[2]) in t.stderr()
    h.stop_clean(t)
    dns.stop()


def ws_open(port, cookie):
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * h.SLOW)
    s.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "Cookie: %s\r\n\r\n" % cookie).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        assert d, data
        data += d
    assert data.startswith(b"HTTP/1.1 101 "), data
    return s


def ws_echo(s, payload):
    """Send one masked text frame; the mock pod echoes it back."""
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + body)
    data = b""
    while len(data) < 2 + len(payload):
        d = s.recv(4096)
        assert d, data
        data += d
    return data[2:2 + len(payload)]


def pinned(t, pod):
    """A cookie and a learned session id, both on <pod>."""
    cookie = sid = None
    for _ in range(200):
        r = h.request(t.port, "POST", "/session")
        if r.header("X-Pod") == pod:
            sid = r.json()["session_id"]
            break
    for _ in range(200):
        r = h.get(t.port, "/sdp")
        if r.header("X-Pod") == pod:
            cookie = r.header("Set-Cookie").split(";")[0]
            break
    assert cookie and sid, (cookie, sid)
    return cookie, sid


def test_pod_dropped_from_dns_leaves_and_keeps_its_sessions():
    pods, dns, t = discovered(2)
    cookie, sid = pinned(t, "pod-3")
    ws = ws_open(t.port, cookie)
    assert ws_echo(ws, b"hello") == b"hello"
    gone = ident(pods[1])
    dns.set_hosts(hosts_of(pods[:1]))
    h.wait_until(lambda: servers(t)[gone]["state"] == "leaving", timeout=10, what="leaving")
    # No new session lands on it...
    assert count(t.port, 40) == {"pod-2": 40}
    assert count(t.port, 20, "/sdp") == {"pod-2": 20}
    # ...its pinned sessions and its tunnel keep reaching it.
    assert count(t.port, 10, "/sdp", headers={"Cookie": cookie}) == {"pod-3": 10}
    for _ in range(10):
        r = h.request(t.port, "POST", "/webhook/%s/event" % sid)
        assert r.status == 200 and r.header("X-Pod") == "pod-3", (r.status, r.header("X-Pod"))
    assert ws_echo(ws, b"still there") == b"still there"
    assert servers(t)[gone]["pinned"] >= 2, servers(t)[gone]
    # It stops answering its health checks: removed, its sessions move.
    pods[1].control("/control/health/fail")
    h.wait_until(lambda: gone not in servers(t), timeout=10, what="removed")
    assert count(t.port, 10, "/sdp", headers={"Cookie": cookie}) == {"pod-2": 10}
    r = h.request(t.port, "POST", "/webhook/%s/event" % sid)
    assert r.status == 200 and r.header("X-Pod") == "pod-2", r.header("X-Pod")
    ws.close()
    h.stop_clean(t)
    dns.stop()


def test_operator_delete_of_a_discovered_pod_holds_against_dns():
    pods, dns, t = discovered(2)
    ctl(t, "del", "server", "voice/" + ident(pods[1]))
    assert servers(t)[ident(pods[1])]["state"] == "leaving"
    # Later answers still list it: it stays leaving (and gets no new session).
    n = metrics(t)[("tether_discovery_queries_total",
                    '{upstream="voice",name="voice.test",result="ok"}')]
    h.wait_until(lambda: metrics(t)[("tether_discovery_queries_total",
                                     '{upstream="voice",name="voice.test",result="ok"}')] >= n + 2,
                 timeout=10, what="two more answers")
    assert servers(t)[ident(pods[1])]["state"] == "leaving"
    assert count(t.port, 20) == {"pod-2": 20}
    # add brings it back.
    ctl(t, "add", "server", "voice/" + ident(pods[1]), ident(pods[1]))
    assert servers(t)[ident(pods[1])]["state"] == "ready"
    h.stop_clean(t)
    dns.stop()


def test_dns_server_stopped_changes_nothing():
    pods, dns, t = discovered(2)
    port = dns.port
    dns.stop()
    # Several valid= periods without DNS: no client error, both pods serve.
    deadline = time.time() + 3
    seen = collections.Counter()
    while time.time() < deadline:
        seen += count(t.port, 20)
    assert set(seen) == {"pod-2", "pod-3"}, seen
    assert usable(t) == {ident(p) for p in pods}
    h.wait_until(lambda: "keeping the last good set of 2 server(s)" in t.stderr(), what="logged")
    assert t.stderr().count("keeping the last good set") == 1, t.stderr()
    m = metrics(t)
    lab = '{upstream="voice",name="voice.test",result="%s"}'
    assert m[("tether_discovery_queries_total", lab % "failed")] >= 1, m
    assert m[("tether_discovery_queries_total", lab % "ok")] >= 1, m
    last = m[("tether_discovery_last_good_timestamp_seconds",
              '{upstream="voice",name="voice.test"}')]
    assert 0 < last <= time.time(), last
    assert m[("tether_upstream_servers",
              '{upstream="voice",source="dns",state="ready"}')] == 2, m
    # DNS comes back: the name resolves again.
    dns = Dnsmasq(hosts_of(pods), port=port)
    h.wait_until(lambda: "voice.test (upstream voice) resolves again" in t.stderr(), timeout=10,
                 what="resolves again")
    assert usable(t) == {ident(p) for p in pods}
    h.stop_clean(t)
    dns.stop()


def test_binary_upgrade_keeps_discovered_servers_while_dns_is_down():
    pods, dns, t = discovered(3)
    cookie, sid = pinned(t, "pod-4")
    dns.set_hosts(hosts_of(pods[:2]))
    gone = ident(pods[2])
    h.wait_until(lambda: servers(t)[gone]["state"] == "leaving", timeout=10, what="leaving")
    # DNS is down when the new process starts: it has the servers only from
    # the old one, and it serves them at once (checked already, still leaving).
    dns.stop()
    ctl(t, "upgrade")
    new = int(ctl(t, "show", "info").split("\npid: ")[1].split("\n")[0])
    try:
        assert new != t.pid
        s = servers(t)
        assert set(s) == {ident(p) for p in pods}, s
        assert s[gone]["state"] == "leaving" and s[gone]["source"] == "dns", s[gone]
        assert usable(t) == {ident(p) for p in pods[:2]}, s
        assert count(t.port, 20) == {"pod-2": 10, "pod-3": 10}
        assert count(t.port, 10, "/sdp", headers={"Cookie": cookie}) == {"pod-4": 10}
        r = h.request(t.port, "POST", "/webhook/%s/event" % sid)
        assert r.status == 200 and r.header("X-Pod") == "pod-4", r.header("X-Pod")
        assert "3 discovered, added or deleted server(s) taken over" in t.stderr(), t.stderr()
    finally:
        os.kill(new, signal.SIGTERM)
        h.wait_until(lambda: not os.path.exists("/proc/%d" % new) or
                     open("/proc/%d/stat" % new).read().rsplit(")", 1)[1].split()[0] == "Z",
                     timeout=20, what="new process to exit")
        t.stop()


def test_two_replicas_pin_a_session_to_the_same_pod():
    pods = pods_on(4)
    dns = Dnsmasq(hosts_of(pods))
    secret = secret_file()
    t1 = tether(dns, pods[0].port, secret=secret)
    t2 = tether(dns, pods[0].port, secret=secret)
    for t in (t1, t2):
        wait_usable(t, pods)
    # Once both have seen the same answer (and rebuilt their plans after the
    # first checks), every session id lands on the same pod through either.
    used, last = set(), []

    def agree():
        used.clear()
        del last[:]
        for i in range(40):
            sid = "call-%d" % i
            a = h.get(t1.port, "/hdr/x", headers={"X-Voice-Session-Id": sid}).header("X-Pod")
            b = h.get(t2.port, "/hdr/x", headers={"X-Voice-Session-Id": sid}).header("X-Pod")
            used.add(a)
            if a != b:
                last.append((sid, a, b))
        return not last

    h.wait_until(agree, timeout=10, step=0.2, what="the replicas agree")
    assert len(used) > 1, used
    # A cookie issued by one replica pins on the other.
    r = h.get(t1.port, "/sdp")
    cookie = r.header("Set-Cookie").split(";")[0]
    assert count(t2.port, 5, "/sdp", headers={"Cookie": cookie}) == {r.header("X-Pod"): 5}
    h.stop_clean(t1, t2)
    dns.stop()


def test_scale_3_to_10_to_3_under_load_costs_no_error():
    pods, dns, t = discovered(10, 3)
    errors, seen, stop = [], collections.Counter(), threading.Event()
    started = []  # (start time, pod) of every request

    def load():
        conn = http.client.HTTPConnection("127.0.0.1", t.port, timeout=10 * h.SLOW)
        for _ in range(20000):  # bounded; stopped by the event long before
            if stop.is_set():
                break
            try:
                t0 = time.time()
                conn.request("GET", "/")
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(r.status)
                seen[r.getheader("X-Pod")] += 1
                started.append((t0, r.getheader("X-Pod")))
            except (OSError, http.client.HTTPException) as e:
                errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", t.port, timeout=10 * h.SLOW)
        conn.close()

    ths = [threading.Thread(target=load) for _ in range(2)]
    for th in ths:
        th.start()
    try:
        dns.set_hosts(hosts_of(pods))
        wait_usable(t, pods)
        h.wait_until(lambda: len(seen) == 10, timeout=15, what="all 10 pods served")
        dns.set_hosts(hosts_of(pods[:3]))
        h.wait_until(lambda: usable(t) == {ident(p) for p in pods[:3]}, timeout=15,
                     what="back to 3")
        # Requests started from now on only go to the 3 pods left.
        t_back = time.time()
        h.wait_until(lambda: len([1 for t0, _ in list(started) if t0 > t_back]) >= 100,
                     timeout=15, what="more requests")
        after = collections.Counter(p for t0, p in list(started) if t0 > t_back)
        assert set(after) <= {"pod-2", "pod-3", "pod-4"}, after
    finally:
        stop.set()
        for th in ths:
            th.join(30)
    assert not errors, errors[:10]
    assert {s["state"] for k, s in servers(t).items() if k not in usable(t)} == {"leaving"}
    m = metrics(t)
    assert m[("tether_upstream_servers", '{upstream="voice",source="dns",state="leaving"}')] == 7
    assert m[("tether_upstream_servers", '{upstream="voice",source="dns",state="ready"}')] == 3
    h.stop_clean(t)
    dns.stop()


def test_srv_records_give_ports_and_weights():
    a, b, c = h.Mockpod("pod-a", host="127.0.0.2"), h.Mockpod("pod-b", host="127.0.0.3"), \
        h.Mockpod("pod-c", host="127.0.0.4")
    srv = ["_voice._tcp.voice.test,a.voice.test,%d,0,640" % a.port,
           "_voice._tcp.voice.test,b.voice.test,%d,0,64" % b.port,
           "_voice._tcp.voice.test,c.voice.test,%d,1,64" % c.port]  # a worse priority
    dns = Dnsmasq([("127.0.0.2", "a.voice.test"), ("127.0.0.3", "b.voice.test"),
                   ("127.0.0.4", "c.voice.test")], srv=srv)
    t = tether(dns, 0, discover="discover _voice._tcp.voice.test srv;")
    wait_usable(t, [a, b])
    s = servers(t)
    assert s[ident(a)]["weight"] == 10 and s[ident(b)]["weight"] == 1, s
    assert ident(c) not in s, s
    # The balancer plan follows the passing checks within ~100 ms (until then
    # a plan built while both were still unchecked may be in use).
    h.wait_until(lambda: count(t.port, 110) == {"pod-a": 100, "pod-b": 10}, timeout=10,
                 what="pod-a 100 and pod-b 10 of 110 (SRV weights 10:1)")
    h.stop_clean(t)
    dns.stop()


def test_an_address_named_twice_is_one_server():
    a = h.Mockpod("pod-a", host="127.0.0.2")
    b = h.Mockpod("pod-b", host="127.0.0.3")
    # Two SRV targets with the same address and port, and a third name for the other pod.
    srv = ["_voice._tcp.voice.test,x.voice.test,%d,0,64" % a.port,
           "_voice._tcp.voice.test,y.voice.test,%d,0,64" % a.port,
           "_voice._tcp.voice.test,z.voice.test,%d,0,64" % b.port]
    dns = Dnsmasq([("127.0.0.2", "x.voice.test"), ("127.0.0.2", "y.voice.test"),
                   ("127.0.0.3", "z.voice.test")], srv=srv)
    t = tether(dns, 0, discover="discover _voice._tcp.voice.test srv;")
    wait_usable(t, [a, b])
    assert sorted(servers(t)) == sorted([ident(a), ident(b)]), servers(t)
    got = count(t.port, 40)
    assert got == {"pod-a": 20, "pod-b": 20}, got
    h.stop_clean(t)
    dns.stop()


def test_a_and_aaaa_records():
    port = h.free_port()
    v4 = h.Mockpod("pod-v4", port=port, host="127.0.0.2")
    v6 = h.Mockpod("pod-v6", port=port, host="::1")
    dns = Dnsmasq([("127.0.0.2", "voice.test"), ("::1", "voice.test")])
    t = tether(dns, port)
    h.wait_until(lambda: set(usable(t)) == {"127.0.0.2:%d" % port, "[::1]:%d" % port},
                 timeout=10, what="both families")
    h.wait_until(lambda: set(count(t.port, 20)) == {"pod-v4", "pod-v6"}, what="both serve")
    # A discovered IPv6 server is addressed by its identity.
    ctl(t, "set", "server", "voice/[::1]:%d" % port, "weight", "2")
    assert servers(t)["[::1]:%d" % port]["weight"] == 2
    h.stop_clean(t)
    dns.stop()


def test_name_that_does_not_resolve_yet_then_fills():
    pods = pods_on(1)
    dns = Dnsmasq([])
    t = tether(dns, pods[0].port)
    r = h.get(t.port, "/")
    assert r.status == 503 and r.header("Retry-After"), (r.status, r.headers)
    dns.set_hosts(hosts_of(pods))
    wait_usable(t, pods)
    assert count(t.port, 5) == {"pod-2": 5}
    h.stop_clean(t)
    dns.stop()


def test_max_servers_refuses_the_extra_addresses():
    pods = pods_on(3)
    dns = Dnsmasq(hosts_of(pods))
    t = tether(dns, pods[0].port, max_servers=2)
    h.wait_until(lambda: len(usable(t)) == 2, timeout=10, what="2 servers")
    h.wait_until(lambda: "upstream voice is at max_servers 2: 1 address(es) of voice.test refused"
                 in t.stderr(), what="refusal logged")
    assert len(servers(t)) == 2
    assert metrics(t)[("tether_upstream_servers_refused_total", "")] >= 1
    h.stop_clean(t)
    dns.stop()


def test_config_test_does_not_resolve():
    """tether -t checks the syntax of discover lines, not their DNS."""
    d = tempfile.mkdtemp(prefix="tether-conf-")
    path = os.path.join(d, "tether.conf")
    conf = CONF.replace("{discover}", "discover nowhere.invalid port=80;").replace("@ID@", "{id}")
    for k, v in {"admin_sock": os.path.join(d, "admin.sock"), "access_log": os.path.join(d, "a"),
                 "secret": secret_file(), "dns": 1, "valid": "1s", "max_servers": 8, "stats_port": 2,
                 "port": 1}.items():
        conf = conf.replace("{%s}" % k, str(v))
    with open(path, "w") as f:
        f.write(conf)
    p = subprocess.run([h.TETHER, "-t", "-c", path], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, (p.stdout, p.stderr)
    with open(path, "w") as f:
        f.write(conf.replace("port=80;", "port=80 srv;"))
    p = subprocess.run([h.TETHER, "-t", "-c", path], capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and "srv takes the port from DNS" in p.stderr, (p.stdout, p.stderr)


if __name__ == "__main__":
    h.main(globals(), tmp_prefix="test_discovery-")
