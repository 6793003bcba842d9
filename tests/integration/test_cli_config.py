# SPDX-License-Identifier: MIT
"""The tether program and its config parser: -t, -v, -h, exit codes, and broken
configs reported as file:line:col with exit 1."""
import os
import subprocess
import tempfile

import harness as h

GOOD = """
workers 1;
upstream voice { server pod-a 127.0.0.1:1; }
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def run(args, conf=None):
    d = tempfile.mkdtemp(prefix="tether-cli-")
    path = os.path.join(d, "t.conf")
    if conf is not None:
        with open(path, "w") as f:
            f.write(conf)
    p = subprocess.run([h.TETHER] + [a.replace("{conf}", path) for a in args],
                       capture_output=True, text=True, timeout=20)
    return p, path


def test_version_and_help():
    p, _ = run(["-v"])
    assert p.returncode == 0 and p.stdout.startswith("tether "), p
    p, _ = run(["-h"])
    assert p.returncode == 0 and "-c FILE" in p.stdout and "-t" in p.stdout, p
    p, _ = run(["-x"])
    assert p.returncode != 0


def test_check_good_config():
    p, path = run(["-t", "-c", "{conf}"], GOOD.replace("{port}", "8080"))
    assert p.returncode == 0, p.stderr
    assert "configuration" in p.stdout and "ok" in p.stdout, p.stdout


def test_missing_file():
    p, _ = run(["-t", "-c", "/nonexistent/tether.conf"])
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open" in lines[0] and "/nonexistent/tether.conf" in lines[0], p.stderr


def test_port_in_use():
    busy = h.Mockpod("busy")
    p, _ = run(["-c", "{conf}"], GOOD.replace("{port}", str(busy.port)))
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "cannot listen on 127.0.0.1:%d" % busy.port in lines[0], p.stderr
    assert "Address already in use" in lines[0]
    busy.stop()


# (config text, expected "line:col: message" fragment). Ten different mistakes.
BROKEN = [
    ("wokers 2;\n", "1:1: unknown directive \"wokers\" in the main context; did you mean \"workers\"?"),
    ("workers 0;\n", "1:9: 0 is out of range; expected 1..256"),
    ("upstream voice { server a 127.0.0.1:80; }\nworkers 2\n", "3:1: unexpected end of file, expecting ';' or '{'"),
    ("upstream voice {\n  server pod-a 127.0.0.1:99999;\n}\n", "2:16: invalid port in \"127.0.0.1:99999\""),
    ("upstream voice {\n  server pod-a 127.0.0.1:80;\n  balance fastest;\n}\n",
     "3:11: unknown balance \"fastest\"; expected round_robin, least_conn, random_two, hash or least_sessions"),
    ("upstream voice { server a 127.0.0.1:80; }\nserver {\n  listen 127.0.0.1:8080;\n"
     "  route / { upstream vioce; }\n}\n", "4:22: unknown upstream \"vioce\"; did you mean \"voice\"?"),
    ("upstream voice { server a 127.0.0.1:80; connect_timeout 2 s; }\n",
     "1:41: \"connect_timeout\" takes 1 argument"),
    ("upstream voice { server a 127.0.0.1:80; connect_timeout 2x; }\n",
     "1:57: invalid duration \"2x\""),
    ("upstream voice { server a 127.0.0.1:80; }\nserver {\n  listen 127.0.0.1:8080;\n"
     "  route /x { upstream voice; affinity sticky; }\n}\n", "4:39: unknown affinity \"sticky\""),
    ("server {\n  listen 127.0.0.1:8080;\n  keepalive 5;\n}\n",
     "3:3: \"keepalive\" is not allowed in the server context; it belongs in: upstream"),
    ("upstream voice { server a 127.0.0.1:80; region eu weight=70 priority=x; }\n",
     "1:70: invalid number \"x\""),
    ("upstream voice {\n  server a 127.0.0.1:80 region=mars;\n}\n",
     "2:3: server \"a\" names unknown region \"mars\""),
    ("rate_limit_zone z key=$remote_addr rate=10r/x;\n", "1:36: invalid rate \"10r/x\""),
    ("upstream voice { server a 127.0.0.1:80; }\nupstream voice { server b 127.0.0.1:81; }\n",
     "2:10: duplicate upstream \"voice\""),
    ("server {\n  listen 127.0.0.1:8080;\n  route / { upstream voice;\n", "4:1: unexpected end of file, expecting '}' to close the block opened at line 3"),
    # A missing ';' is reported where it was expected, not at the directive.
    ("workers 2\nserver {\n  listen 127.0.0.1:8080;\n}\n",
     "1:10: missing ';'? expected ';' here to end \"workers\"; the statement goes on at line 2 "
     "with \"server\""),
    ("error_log stderr   # to the console\nupstream voice { server a 127.0.0.1:80; }\n",
     "1:17: missing ';'? expected ';' here to end \"error_log\"; the statement goes on at line 2 "
     "with \"upstream\""),
    ("upstream voice {\n  server a 127.0.0.1:80\n  retries 2;\n}\n",
     "2:24: missing ';'? expected ';' here to end \"server\"; the statement goes on at line 3 "
     "with \"retries\""),
]


def test_broken_configs_report_position():
    for text, want in BROKEN:
        p, path = run(["-t", "-c", "{conf}"], text)
        assert p.returncode == 1, (text, p.returncode, p.stderr)
        assert want in p.stderr, "expected %r in %r" % (want, p.stderr)
        assert path + ":" in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def write_tree(files):
    d = tempfile.mkdtemp(prefix="tether-clash-")
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return d


def check(path):
    p = subprocess.run([h.TETHER, "-t", "-c", path], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stderr.strip()


def test_clashes_name_both_places():
    """Every clash names both places with their file and line, across includes."""
    d = write_tree({
        "tether.conf": "include servers.conf;\nupstream voice { server a 127.0.0.1:80; }\n"
                       "stats {\n    listen 127.0.0.1:9180;\n}\n",
        "servers.conf": "# client traffic\nserver {\n  listen 127.0.0.1:9180;\n"
                        "  route / { upstream voice; }\n}\n"})
    main, inc = os.path.join(d, "tether.conf"), os.path.join(d, "servers.conf")
    rc, err = check(main)
    assert rc == 1 and err == ("tether: %s:4:12: stats listen address 127.0.0.1:9180 is also used "
                               "by the listen at %s:3" % (main, inc)), err
    # Duplicates name the first place.
    with open(main, "w") as f:
        f.write("include servers.conf;\nupstream voice { server a 127.0.0.1:80; }\n"
                "upstream voice { server b 127.0.0.1:81; }\n")
    rc, err = check(main)
    assert rc == 1 and err == ('tether: %s:3:10: duplicate upstream "voice" (first at %s:2)'
                               % (main, main)), err
    with open(inc, "w") as f:
        f.write("server {\n  listen 127.0.0.1:9180;\n  route / { upstream voice; }\n}\n")
    with open(main, "w") as f:
        f.write("upstream voice { server a 127.0.0.1:80; }\nserver {\n  listen 127.0.0.1:9181;\n"
                "  route / { upstream voice; }\n  include routes.conf;\n}\n")
    with open(os.path.join(d, "routes.conf"), "w") as f:
        f.write("\nroute / { upstream voice; }\n")
    rc, err = check(main)
    assert rc == 1 and err == ('tether: %s:2:7: duplicate route "/" (first at %s:4)'
                               % (os.path.join(d, "routes.conf"), main)), err
    with open(main, "w") as f:
        f.write("upstream voice { server a 127.0.0.1:80; }\nstats { listen 127.0.0.1:9182; }\n"
                "admin {\n  listen 127.0.0.1:9182;\n}\n"
                "server {\n  listen 127.0.0.1:9181;\n  route / { upstream voice; }\n}\n")
    rc, err = check(main)
    assert rc == 1 and err == ("tether: %s:4:10: admin listen address is also used by the stats "
                               "listen at %s:2" % (main, main)), err


SECRET_CONF = """affinity {{ cookie VOICE_AFFINITY secret_file={key}; }}
upstream voice {{ server a 127.0.0.1:80; }}
server {{ listen 127.0.0.1:9181; route / {{ upstream voice; affinity cookie; }} }}
"""


def test_secret_file_placeholder_and_short_keys_refused():
    """The deploy kit's placeholder key and keys under 32 bytes are refused by -t
    and at start; a random 32-byte key is accepted."""
    kit = open(os.path.join(h.SRCDIR, "contrib", "kubernetes", "secret.yaml")).read()
    placeholder = [l.split(":", 1)[1].strip().strip('"') for l in kit.splitlines()
                   if l.strip().startswith("affinity.key:")][0]
    keyfile = lambda d: os.path.join(d, "affinity.key")
    d = write_tree({"tether.conf": "", "affinity.key": ""})
    with open(os.path.join(d, "tether.conf"), "w") as f:
        f.write(SECRET_CONF.format(key=keyfile(d)))
    main = os.path.join(d, "tether.conf")
    for key, want in (
            (placeholder + "\n", 'tether: %s:1:46: affinity secret_file "%s" holds the deploy '
             "kit's placeholder key; put a random key there (openssl rand -hex 32)"),
            ("0123456789abcdef0123456789abcde\n", 'tether: %s:1:46: affinity secret_file "%s" is '
             "too short: 31 bytes, need at least 32 (openssl rand -hex 32)")):
        with open(keyfile(d), "w") as f:
            f.write(key)
        rc, err = check(main)
        assert rc == 1 and err == want % (main, keyfile(d)), err
        # At start too: the same message, exit 1, nothing served.
        p = subprocess.run([h.TETHER, "-c", main], capture_output=True, text=True, timeout=20)
        assert p.returncode == 1 and p.stderr.strip() == want % (main, keyfile(d)), p.stderr
    with open(keyfile(d), "w") as f:
        f.write(os.urandom(16).hex() + "\n")
    rc, err = check(main)
    assert rc == 0, err


def test_include_and_units():
    d = tempfile.mkdtemp(prefix="tether-inc-")
    os.makedirs(os.path.join(d, "conf.d"))
    with open(os.path.join(d, "conf.d", "10-up.conf"), "w") as f:
        f.write("upstream voice { server a 127.0.0.1:80; connect_timeout 250ms; keepalive_timeout 1m; }\n")
    with open(os.path.join(d, "conf.d", "20-bad.conf"), "w") as f:
        f.write("# a comment\nupstream other { server b 127.0.0.1:81 weight=1001; }\n")
    main = os.path.join(d, "tether.conf")
    with open(main, "w") as f:
        f.write('include "conf.d/*.conf";\nserver { listen 127.0.0.1:8080; '
                'client_max_body_size 10m; route / { upstream voice; timeout 1h; } }\n')
    p = subprocess.run([h.TETHER, "-t", "-c", main], capture_output=True, text=True)
    assert p.returncode == 1
    assert "20-bad.conf:2:" in p.stderr and "1001 is out of range" in p.stderr, p.stderr
    os.unlink(os.path.join(d, "conf.d", "20-bad.conf"))
    p = subprocess.run([h.TETHER, "-t", "-c", main], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_bad_config_on_reload_keeps_serving():
    pod = h.Mockpod("pod-a")
    conf = GOOD.replace("127.0.0.1:1", pod.addr)
    t = h.Tether(conf.replace("{port}", "{port}") + "error_log {dir}/error.log info;\n")
    assert h.get(t.port, "/sdp").status == 200
    t.reload("workers 1;\nupstream voice { server pod-a %s }\n" % pod.addr)
    h.wait_until(lambda: "reload failed" in open(t.error_log).read(), what="reload failure logged")
    log = open(t.error_log).read()
    assert "tether.conf:2:" in log, log
    assert t.alive()
    assert h.get(t.port, "/sdp").status == 200
    t.stop()
    pod.stop()


def loopback_name():
    """A host name /etc/hosts maps to 127.0.0.1 (other than "localhost", which
    tether knows without a lookup), or None."""
    try:
        with open("/etc/hosts") as f:
            for line in f:
                words = line.split("#")[0].split()
                if len(words) > 1 and words[0] == "127.0.0.1":
                    for name in words[1:]:
                        if name != "localhost":
                            return name
    except OSError:
        pass
    return None


def test_server_host_name():
    """A server given by host name is resolved when the config is read."""
    pod = h.Mockpod("pod-a")
    name, wrap = loopback_name(), []
    if name is None:
        # No such name: give tether a private /etc/hosts in its own mount namespace.
        name = "pod-a.tether.test"
        hosts = os.path.join(tempfile.mkdtemp(prefix="tether-hosts-"), "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost %s\n" % name)
        if not os.path.exists("/etc/hosts") or subprocess.run(
                ["unshare", "-m", "true"], capture_output=True).returncode != 0:
            print("skip test_server_host_name: no loopback name in /etc/hosts and no unshare -m")
            pod.stop()
            return
        wrap = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts]
    port = h.free_port()
    conf = GOOD.replace("127.0.0.1:1", "%s:%d" % (name, pod.port)).replace("{port}", str(port))
    d = tempfile.mkdtemp(prefix="tether-name-")
    with open(os.path.join(d, "t.conf"), "w") as f:
        f.write(conf)
    t = h.Proc(wrap + [h.TETHER, "-c", os.path.join(d, "t.conf")])
    h.wait_port(port)
    r = h.get(port, "/sdp")
    assert r.status == 200 and r.header("x-pod") == "pod-a", (r.status, r.headers)
    t.stop()
    pod.stop()
    # A dotted quad that is not one is an address error, never a lookup.
    p, _ = run(["-t", "-c", "{conf}"], GOOD.replace("127.0.0.1:1", "127.0.1:80").replace("{port}", "8080"))
    assert p.returncode == 1 and 'invalid IPv4 address "127.0.1"' in p.stderr, p.stderr


if __name__ == "__main__":
    h.main(globals())
