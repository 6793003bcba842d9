# SPDX-License-Identifier: MIT
"""The admin socket and tetherctl: every command, measured by where the next
requests go (X-Pod), the line protocol (several commands per connection, long
lines, many clients), error answers and exit codes, reload through the socket,
and changes seen at once by every worker."""
import collections
import http.client
import json
import os
import re
import socket
import stat
import subprocess
import threading
import time

import harness as h

CONF = """
workers {workers};
admin { listen unix:{admin_sock}; mode 0600; }
affinity { learn header=X-Voice-Session-Id; }
upstream voice {
    balance round_robin;
    server pod-a {a} weight={wa};
    server pod-b {b} weight={wb};
}
server {
    listen 127.0.0.1:{port};
    route = /session { upstream voice; affinity none; learn on; }
    route = /sdp { upstream voice; affinity cookie; }
    route / { upstream voice; }
}
"""

REGIONS = """
workers 1;
admin { listen unix:{admin_sock}; }
upstream voice {
    balance round_robin;
    region eu weight=50;
    region us weight=50;
    server pod-a {a} region=eu;
    server pod-b {b} region=us;
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""



def start(conf=CONF, workers=1, wa=1, wb=1):
    a, b = h.Mockpod("pod-a"), h.Mockpod("pod-b")
    t = h.Tether(conf, a=a.addr, b=b.addr, workers=workers, wa=wa, wb=wb)
    h.wait_admin(t.admin_sock)
    return t, a, b


def admin(t, *lines, path=None):
    """Send <lines> on one connection; return the answers (text without the
    closing empty line)."""
    text = h.admin_raw(path or t.admin_sock, "".join(l + "\n" for l in lines).encode())
    assert text.endswith("\n\n") or not text, repr(text)
    return [a + "\n" for a in text[:-2].split("\n\n")] if text else []


def ctl(t, *args, path=None):
    p = subprocess.run([h.TETHERCTL, "-s", path or t.admin_sock] + list(args),
                       capture_output=True, text=True, timeout=30 * h.SLOW)
    return p.returncode, p.stdout, p.stderr


def ok(t, *args):
    rc, out, err = ctl(t, *args)
    assert rc == 0 and not err, (args, rc, out, err)
    return out


count = h.count_pods


def servers(t):
    """show servers json, keyed by "upstream/server"."""
    out = ok(t, "show", "servers", "json")
    return {"%s/%s" % (s["upstream"], s["server"]): s for s in json.loads(out)["servers"]}


def near(value, expected, n, pct=5):
    return abs(value - expected) <= n * pct / 100.0


def test_help_lists_every_command():
    t, _, _ = start()
    out = ok(t, "help")
    for usage in ["help", "show info", "show servers [UPSTREAM] [json]", "show stat [json]",
                  "show sessions [N]", "show regions",
                  "set server UPSTREAM/SERVER weight N|default",
                  "set server UPSTREAM/SERVER state ready|drain|maint",
                  "set region UPSTREAM/REGION weight N|default", "reload", "quit"]:
        assert "  " + usage + "  " in out, (usage, out)
    # The raw protocol: the answer ends with an empty line.
    ans = admin(t, "help")
    assert len(ans) == 1 and ans[0] == out, (ans, out)
    t.stop()


def test_weight_change_shifts_the_next_requests():
    t, _, _ = start()
    c = count(t.port, 200)
    assert c == {"pod-a": 100, "pod-b": 100}, c
    out = ok(t, "set", "server", "voice/pod-a", "weight", "3")
    assert "voice/pod-a weight 3 (was 1; configured 1)" in out, out
    c = count(t.port, 200)
    assert near(c["pod-a"], 150, 200) and near(c["pod-b"], 50, 200), c
    s = servers(t)
    assert s["voice/pod-a"]["weight"] == 3 and s["voice/pod-a"]["weight_override"], s
    assert s["voice/pod-a"]["weight_config"] == 1
    text = ok(t, "show", "servers")
    assert re.search(r"^voice/pod-a \S+ default ready up 3\* 1 ", text, re.M), text
    # Weight 0: no new sessions at all.
    ok(t, "set", "server", "voice/pod-a", "weight", "0")
    assert count(t.port, 100) == {"pod-b": 100}
    out = ok(t, "set", "server", "voice/pod-a", "weight", "default")
    assert "override removed" in out, out
    c = count(t.port, 200)
    assert c == {"pod-a": 100, "pod-b": 100}, c
    assert not servers(t)["voice/pod-a"]["weight_override"]
    t.stop()


def test_state_maint_then_ready():
    t, _, b = start()
    before = len(b.requests())
    ok(t, "set", "server", "voice/pod-b", "state", "maint")
    assert count(t.port, 100) == {"pod-a": 100}
    assert len(b.requests()) == before, "a maint server got traffic"
    assert servers(t)["voice/pod-b"]["state"] == "maint"
    out = ok(t, "set", "server", "voice/pod-b", "state", "ready")
    assert "state ready (was maint" in out, out
    c = count(t.port, 100)
    assert c == {"pod-a": 50, "pod-b": 50}, c
    t.stop()


def pinned_cookie(port, pod):
    """A VOICE_AFFINITY cookie pinning to <pod> (from /sdp answers)."""
    for _ in range(10):
        r = h.get(port, "/sdp")
        if r.header("X-Pod") == pod:
            return r.header("Set-Cookie").split(";")[0]
    raise AssertionError("no answer from " + pod)


def test_drain_keeps_pinned_sessions_and_active_count_falls():
    t, _, b = start()
    cookie = pinned_cookie(t.port, "pod-b")
    done = []

    def long_call():
        r = h.get(t.port, "/sdp?delay=%d" % int(1500 * h.SLOW), headers={"Cookie": cookie},
                  timeout=20)
        done.append(r.header("X-Pod"))

    th = threading.Thread(target=long_call)
    th.start()
    h.wait_until(lambda: servers(t)["voice/pod-b"]["active"] == 1, what="in-flight request")
    out = ok(t, "set", "server", "voice/pod-b", "state", "drain")
    assert "state drain (was ready; 1 active requests" in out, out
    s = servers(t)["voice/pod-b"]
    assert s["state"] == "drain" and s["active"] == 1, s
    # No new sessions go to the draining pod...
    assert count(t.port, 100) == {"pod-a": 100}
    assert count(t.port, 50, "/sdp") == {"pod-a": 50}
    # ...but its pinned session still does.
    assert count(t.port, 20, "/sdp", headers={"Cookie": cookie}) == {"pod-b": 20}
    text = ok(t, "show", "servers")
    assert re.search(r"^voice/pod-b \S+ default drain up 1 1 1 0 0 \d+ - config \d+$", text, re.M), text
    th.join(30)
    assert done == ["pod-b"], done
    h.wait_until(lambda: servers(t)["voice/pod-b"]["active"] == 0, what="active count 0")
    assert re.search(r"^voice/pod-b \S+ default drain up 1 1 0 0 0 \d+ - config \d+$", ok(t, "show", "servers"),
                     re.M)
    ok(t, "set", "server", "voice/pod-b", "state", "ready")
    assert count(t.port, 100) == {"pod-a": 50, "pod-b": 50}
    t.stop()


def test_region_weight():
    t, _, _ = start(REGIONS)
    assert count(t.port, 200) == {"pod-a": 100, "pod-b": 100}
    ok(t, "set", "region", "voice/eu", "weight", "90")
    out = ok(t, "set", "region", "voice/us", "weight", "10")
    assert "voice/us weight 10 (was 50; configured 50)" in out, out
    c = count(t.port, 300)
    assert near(c["pod-a"], 270, 300) and near(c["pod-b"], 30, 300), c
    text = ok(t, "show", "regions")
    assert re.search(r"^voice/eu 0 90\* 50 1 1 90\.0$", text, re.M), text
    assert re.search(r"^voice/us 0 10\* 50 1 1 10\.0$", text, re.M), text
    ok(t, "set", "region", "voice/eu", "weight", "default")
    ok(t, "set", "region", "voice/us", "weight", "default")
    assert count(t.port, 200) == {"pod-a": 100, "pod-b": 100}
    t.stop()


def test_show_info_stat_and_json():
    t, _, _ = start()
    count(t.port, 30)
    info = ok(t, "show", "info")
    for line in ["generation: 1", "workers: 1", "redis: off", "reloads_ok: 0",
                 "pid: %d" % t.pid, "config: " + t.conf_path]:
        assert line + "\n" in info, (line, info)
    assert re.search(r"^requests: 30$", info, re.M), info
    st = json.loads(ok(t, "show", "stat", "json"))
    by = {s["server"]: s for s in st["servers"]}
    assert by["pod-a"]["requests"] == 15 and by["pod-b"]["requests"] == 15, by
    assert by["pod-a"]["status"]["2xx"] == 15 and by["pod-a"]["state"] == "ready", by
    assert st["process"]["requests"] == 30, st["process"]
    text = ok(t, "show", "stat")
    assert re.search(r"^voice/pod-a 15 0 15 0 0 0 ", text, re.M), text
    assert "servers" in json.loads(ok(t, "show", "servers", "voice", "json"))
    t.stop()


def test_show_sessions():
    t, a, b = start()
    ids = {}
    for _ in range(2):
        r = h.get(t.port, "/session")
        ids[r.json()["session_id"]] = r.header("X-Pod")
    out = ok(t, "show", "sessions")
    assert out.startswith("# 2 learned sessions, showing 2\n# id server expires_in_s\n"), out
    for sid, pod in ids.items():
        assert re.search(r"^%s voice/%s \d+$" % (re.escape(sid), pod), out, re.M), (sid, out)
    assert ok(t, "show", "sessions", "1").startswith("# 2 learned sessions, showing 1\n")
    t.stop()


BAD = [
    (["bogus"], 'error: unknown command "bogus" ("help" lists the commands)'),
    (["shwo", "info"], 'error: unknown command "shwo"; did you mean "show"?'),
    (["show"], 'error: incomplete or unknown command; expected "show info" or '),
    (["show", "servers", "nope"], 'error: unknown upstream "nope"; upstreams: voice'),
    (["show", "stat", "xml"], 'error: unexpected "xml"'),
    (["show", "info", "now"], "error: too many arguments; usage: show info"),
    (["set", "server", "voice/pod-z", "weight", "2"],
     'error: unknown server "voice/pod-z"; servers of voice: pod-a, pod-b'),
    (["set", "server", "vioce/pod-a", "weight", "2"],
     'error: unknown upstream "vioce"; upstreams: voice'),
    (["set", "server", "pod-a", "weight", "2"],
     'error: expected UPSTREAM/SERVER, got "pod-a"; did you mean "voice/pod-a"?'),
    (["set", "server", "voice/pod-a", "weight", "x"],
     'error: invalid weight "x"; expected 0..1000 or "default"'),
    (["set", "server", "voice/pod-a", "weight", "-1"], 'error: invalid weight "-1"'),
    (["set", "server", "voice/pod-a", "weight", "1001"], 'error: invalid weight "1001"'),
    (["set", "server", "voice/pod-a", "weight"],
     "error: missing value; usage: set server UPSTREAM/SERVER weight N|default"),
    (["set", "server", "voice/pod-a", "weight", "1", "2"], "error: too many arguments"),
    (["set", "server", "voice/pod-a", "state", "sleeping"],
     'error: invalid state "sleeping"; expected ready, drain or maint'),
    (["set", "server", "voice/pod-a", "colour", "red"],
     'error: incomplete or unknown command; expected "set server UPSTREAM/SERVER weight'),
    (["set", "region", "voice/mars", "weight", "5"],
     'error: unknown region "voice/mars"; regions of voice: default'),
    (["show", "sessions", "0"], 'error: invalid count "0"; expected 1..10000'),
]


def test_bad_commands_give_errors_and_change_nothing():
    t, _, _ = start()
    for args, msg in BAD:
        rc, out, err = ctl(t, *args)
        assert rc == 1, (args, rc, out, err)
        assert out == "" and err.startswith(msg) and err.count("\n") == 1, (args, msg, err)
    # The raw protocol: same errors, in order, on one connection, then still usable.
    ans = admin(t, "bogus", "set server voice/pod-a weight x", "show info")
    assert len(ans) == 3, ans
    assert ans[0].startswith("error: unknown command") and ans[1].startswith("error: invalid")
    assert ans[2].startswith("version: ")
    s = servers(t)
    assert all(x["weight"] == 1 and x["state"] == "ready" for x in s.values()), s
    assert count(t.port, 100) == {"pod-a": 50, "pod-b": 50}
    # tetherctl itself: usage and connection errors exit 2.
    rc, _, err = ctl(t, "help", path=t.admin_sock + ".nope")
    assert rc == 2 and "cannot connect" in err, err
    t.stop()


def test_protocol_lines_and_clients():
    t, _, _ = start()
    # Blank lines and comments get no answer; CRLF is fine; no newline at EOF is fine.
    parts = h.admin_raw(t.admin_sock, b"\n# comment\r\nshow info\r\nhelp").split("\n\n")
    assert len(parts) == 3 and parts[0].startswith("version:") and \
        parts[1].startswith("Commands") and parts[2] == "", parts
    # A line longer than 4 KiB: one error answer; the next line works again.
    ans = admin(t, "show " + "x" * 5000, "help " + "y" * 9000, "show info")
    assert ans[:2] == ["error: line too long (at most 4095 bytes)\n"] * 2, ans
    assert len(ans) == 3 and ans[2].startswith("version:"), ans
    # Many clients at once, each answered in order; past the limit, a clear error.
    socks = []
    for _ in range(40):
        c = socket.socket(socket.AF_UNIX)
        c.connect(t.admin_sock)  # blocking: waits for the backlog
        c.settimeout(5 * h.SLOW)
        socks.append(c)
    busy = 0
    for c in socks:
        try:
            c.sendall(b"show info\n")
            d = c.recv(65536)
            while d and not d.endswith(b"\n\n"):
                more = c.recv(65536)
                if not more:
                    break
                d += more
        except (BrokenPipeError, ConnectionResetError):
            d = b"error: too many admin connections\n\n"
        busy += d.startswith(b"error: too many admin connections")
        assert d.startswith(b"version:") or d.startswith(b"error: too many"), d
    assert busy == 8, busy
    for c in socks:
        c.close()
    h.wait_until(lambda: "admin_clients: 1\n" in ctl(t, "show", "info")[1], what="clients closed")
    # "quit" (no answer) closes the connection after the answers before it.
    ans = admin(t, "show info", "quit", "help")
    assert len(ans) == 1 and ans[0].startswith("version:"), ans
    t.stop()


def test_socket_mode_and_changes_logged_with_peer():
    t, _, _ = start()
    assert stat.S_IMODE(os.stat(t.admin_sock).st_mode) == 0o600
    admin(t, "set server voice/pod-a weight 2")
    line = "admin (uid %d pid %d): set server voice/pod-a weight 2" % (os.getuid(), os.getpid())
    h.wait_until(lambda: line in t.stderr(), what="log line")
    t.stop()


def test_reload_through_the_socket():
    t, a, b = start()
    ok(t, "set", "server", "voice/pod-b", "weight", "3")
    # A changed config takes effect; the weight override survives the reload.
    t.write_conf(CONF.replace("{wa}", "2"))
    out = ok(t, "reload")
    assert out == "reloaded: generation 2 from %s\n" % t.conf_path, out
    c = count(t.port, 250)
    assert c == {"pod-a": 100, "pod-b": 150}, c
    s = servers(t)
    assert s["voice/pod-a"]["weight_config"] == 2 and s["voice/pod-b"]["weight"] == 3, s
    # A broken config: an error answer, and the running one keeps serving.
    t.write_conf(CONF.replace("balance round_robin;", "balance fastest;"))
    rc, out, err = ctl(t, "reload")
    assert rc == 1 and out == "", (rc, out, err)
    assert err.startswith("error: reload failed, still serving generation 2: ") and \
        'unknown balance "fastest"' in err and re.search(r"tether\.conf:\d+:\d+: ", err), err
    assert count(t.port, 250) == {"pod-a": 100, "pod-b": 150}
    info = ok(t, "show", "info")
    assert "reloads_ok: 1\nreloads_failed: 1\n" in info and "last_reload_error: " in info, info
    t.stop()


def test_admin_socket_moves_and_closes_on_reload():
    t, _, _ = start()
    new = os.path.join(t.dir, "admin2.sock")
    t.write_conf(CONF.replace("{admin_sock}", new))
    assert ok(t, "reload").startswith("reloaded: generation 2")
    h.wait_until(lambda: not os.path.exists(t.admin_sock), what="old socket removed")
    rc, out, _ = ctl(t, "show", "info", path=new)
    assert rc == 0 and "generation: 2\n" in out, out
    t.write_conf(CONF.replace("admin { listen unix:{admin_sock}; mode 0600; }", ""))
    rc, out, _ = ctl(t, "reload", path=new)
    assert rc == 0 and out.startswith("reloaded: generation 3"), out
    h.wait_until(lambda: not os.path.exists(new), what="socket closed")
    t.stop()


def fresh_requests(port, n):
    """<n> requests, each on a new connection (spread over the workers)."""
    c = collections.Counter()
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * h.SLOW)
        conn.request("GET", "/", headers={"Connection": "close"})
        r = conn.getresponse()
        r.read()
        conn.close()
        c[r.getheader("X-Pod")] += 1
    return c


def test_change_seen_by_every_worker_at_once():
    t, _, b = start(workers=2)
    c = fresh_requests(t.port, 60)
    assert c["pod-a"] > 0 and c["pod-b"] > 0, c
    for _ in range(3):
        ok(t, "set", "server", "voice/pod-b", "state", "maint")
        before = len(b.requests())
        c = fresh_requests(t.port, 100)
        assert c == {"pod-a": 100}, c
        assert len(b.requests()) == before
        ok(t, "set", "server", "voice/pod-b", "state", "ready")
        c = fresh_requests(t.port, 40)
        assert c["pod-b"] > 0, c
    t.stop()


if __name__ == "__main__":
    h.main(globals())
