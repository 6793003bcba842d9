# SPDX-License-Identifier: MIT
"""Logs where containers want them: access_log and error_log to stdout, stderr
or syslog (RFC 5424 over UDP or a Unix datagram socket), the error log as JSON
lines, and unknown destinations refused as config errors with their position."""
import json
import os
import re
import socket
import subprocess
import tempfile
import time

import harness as h

BASE = """upstream voice {{ server pod-a {pod}; }}
server {{ listen 127.0.0.1:{port}; route / {{ upstream voice; }} }}
"""

# RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
# SP STRUCTURED-DATA [SP MSG]
RFC5424 = re.compile(r"^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ([!-~]{1,255}) "
                     r"([!-~]{1,48}) (\d+) ([!-~]{1,32}) - (.*)$", re.S)


def check(conf):
    d = tempfile.mkdtemp(prefix="tether-logs-")
    path = os.path.join(d, "t.conf")
    with open(path, "w") as f:
        f.write(conf)
    p = subprocess.run([h.TETHER, "-t", "-c", path], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stderr.strip().replace(path + ":", "")


def test_unknown_destinations_are_config_errors():
    base = BASE.format(pod="127.0.0.1:1", port=8)
    cases = [
        ("access_log foo:bar json;",
         '1:12: unknown log destination "foo:bar"; expected stdout, stderr, '
         "syslog:server=ADDR[,facility=F][,tag=T] or a file path (write ./foo:bar for a file)"),
        ("error_log syslog:junk;",
         '1:11: invalid syslog parameter "junk"; expected server=, facility= or tag='),
        ("access_log syslog:;",
         '1:12: "syslog:" needs server=ADDR (syslog:server=HOST[:PORT] or '
         "syslog:server=unix:PATH)"),
        ("error_log syslog:server=127.0.0.1:514,facility=local9;",
         '1:11: unknown syslog facility "local9"; expected kern, user, mail, daemon, auth, '
         "syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock or "
         "local0..local7"),
        ("error_log syslog:server=127.0.0.1:514,colour=red;",
         '1:11: unknown syslog parameter "colour"; expected server, facility or tag'),
        ("error_log syslog:facility=daemon;", '1:11: "syslog:" needs server=ADDR'),
        ("error_log stderr info debug;", '1:23: the error_log level is given twice'),
        ("error_log stderr loud;",
         '1:18: invalid error_log argument "loud"; expected a level (debug, info, notice, warn '
         "or error) or a format (text or json)"),
    ]
    for directive, want in cases:
        rc, err = check(directive + "\n" + base)
        assert rc == 1 and err == "tether: " + want, (directive, err)
    # A file whose name has a colon is still possible, written as a path.
    rc, err = check("access_log ./foo:bar json;\nerror_log stdout info json;\n" + base)
    assert rc == 0, err


def start(conf, pod, **kw):
    """tether with stdout and stderr captured apart."""
    d = tempfile.mkdtemp(prefix="tether-logs-")
    port = h.free_port()
    path = os.path.join(d, "t.conf")
    with open(path, "w") as f:
        f.write(conf.format(**kw) + BASE.format(pod=pod.addr, port=port))
    out = open(os.path.join(d, "stdout"), "wb")
    err = open(os.path.join(d, "stderr"), "wb")
    p = h.Proc([h.TETHER, "-c", path], stdout=out, stderr=err)
    h.wait_port(port)
    p.port, p.dir = port, d
    return p


def read(p, name):
    with open(os.path.join(p.dir, name)) as f:
        return f.read()


def test_stdout_access_and_json_error_log():
    pod = h.Mockpod("pod-a")
    p = start("access_log stdout json flush=50ms;\nerror_log stdout info json;\n", pod)
    for i in range(3):
        assert h.get(p.port, "/x/%d" % i).status == 200
    h.wait_until(lambda: read(p, "stdout").count('"path":"/x/') == 3, what="access lines")
    assert p.stop() == 0
    lines = [json.loads(l) for l in read(p, "stdout").splitlines()]
    access = [l for l in lines if "path" in l]
    errors = [l for l in lines if "msg" in l]
    # Each worker writes its own lines: order across workers is not kept.
    assert sorted(a["path"] for a in access) == ["/x/0", "/x/1", "/x/2"], access
    assert all(a["status"] == 200 for a in access)
    assert any(e["level"] == "notice" and e["msg"].startswith("tether ") and "started" in e["msg"]
               for e in errors), errors
    assert any(e["msg"] == "tether stopped" for e in errors), errors
    for e in errors:
        assert set(e) == {"time", "level", "msg"}, e
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", e["time"]), e
    assert read(p, "stderr") == ""
    # No file named "stdout" next to the configuration or in the working directory.
    assert not os.path.exists("stdout")
    pod.stop()


def test_stderr_text_error_log_and_access_log():
    pod = h.Mockpod("pod-a")
    p = start("access_log stderr combined flush=50ms;\nerror_log stderr notice;\n", pod)
    assert h.get(p.port, "/y").status == 200
    h.wait_until(lambda: '"GET /y HTTP/1.1" 200' in read(p, "stderr"), what="access line")
    assert p.stop() == 0
    err = read(p, "stderr")
    assert re.search(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \[notice\] tether .* started", err, re.M), err
    assert read(p, "stdout") == ""
    pod.stop()


def recv_all(sock, want, what):
    """Datagrams until <want>(list) is true."""
    got = []
    sock.settimeout(0.2)
    deadline = time.time() + 10 * h.SLOW
    while time.time() < deadline and not want(got):
        try:
            got.append(sock.recv(65536).decode())
        except socket.timeout:
            pass
    assert want(got), "%s: %r" % (what, got)
    return got


def parse(dgram):
    m = RFC5424.match(dgram)
    assert m, "not RFC 5424: %r" % dgram
    pri, ts, host, app, pid, msgid, msg = m.groups()
    assert not dgram.endswith("\n"), repr(dgram)  # one line, no terminator
    return dict(fac=int(pri) // 8, sev=int(pri) % 8, ts=ts, host=host, app=app, pid=int(pid),
                msgid=msgid, msg=msg)


def test_syslog_udp():
    pod = h.Mockpod("pod-a")
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    p = start('error_log "syslog:server=127.0.0.1:{sp},facility=local3,tag=tether-test" info;\n'
              "access_log syslog:server=127.0.0.1:{sp} json flush=50ms;\n", pod, sp=port)
    for i in range(2):
        assert h.get(p.port, "/z/%d" % i).status == 200
    got = recv_all(rx, lambda g: sum('"path":"/z/' in d for d in g) == 2 and
                   any("started" in d for d in g), "syslog datagrams")
    recs = [parse(d) for d in got]
    host = "".join(c if 33 <= ord(c) <= 126 else "_" for c in socket.gethostname())
    for r in recs:
        assert r["host"] == host and r["pid"] == p.pid, r
    started = [r for r in recs if "started" in r["msg"]][0]
    # local3 = 19, notice = 5; the text carries neither time nor level.
    assert (started["fac"], started["sev"], started["app"], started["msgid"]) == \
        (19, 5, "tether-test", "error"), started
    assert started["msg"].startswith("tether "), started
    access = [r for r in recs if r["msgid"] == "access"]
    assert len(access) == 2, recs
    for r in access:
        # Defaults: local7 (23), severity info (6), tag "tether".
        assert (r["fac"], r["sev"], r["app"]) == (23, 6, "tether"), r
        assert json.loads(r["msg"])["status"] == 200
    assert p.stop() == 0
    rx.close()
    pod.stop()


def test_syslog_unix_socket_json():
    pod = h.Mockpod("pod-a")
    d = tempfile.mkdtemp(prefix="tether-syslog-")
    path = os.path.join(d, "log.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    p = start("error_log syslog:server=unix:{path},facility=daemon info json;\n", pod, path=path)
    got = recv_all(rx, lambda g: any("started" in x for x in g), "started line")
    r = parse([x for x in got if "started" in x][0])
    assert (r["fac"], r["sev"], r["app"], r["msgid"]) == (3, 5, "tether", "error"), r
    m = json.loads(r["msg"])
    assert m["level"] == "notice" and "started" in m["msg"], m
    # Once tether has exited, its last line is in the socket's queue.
    assert p.stop() == 0
    got = recv_all(rx, lambda g: any("tether stopped" in x for x in g), "stopped line")
    rx.close()
    pod.stop()


def test_syslog_unreachable_at_start():
    """A Unix syslog socket that does not exist: tether says so and exits 1."""
    pod = h.Mockpod("pod-a")
    d = tempfile.mkdtemp(prefix="tether-syslog-")
    conf = os.path.join(d, "t.conf")
    with open(conf, "w") as f:
        f.write("error_log syslog:server=unix:%s/none.sock;\n" % d
                + BASE.format(pod=pod.addr, port=h.free_port()))
    p = subprocess.run([h.TETHER, "-c", conf], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p
    assert p.stderr.strip() == ("tether: cannot reach syslog server unix:%s/none.sock: "
                                "No such file or directory" % d), p.stderr
    pod.stop()


if __name__ == "__main__":
    h.main(globals())
