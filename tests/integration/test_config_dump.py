# SPDX-License-Identifier: MIT
"""The effective configuration: tether -T prints it (includes expanded, each
file marked) after checking it, `show conf` prints the running generation's,
and its SHA-256 is in `show info` and tether_config_info{hash,generation}."""
import hashlib
import os
import re
import subprocess
import tempfile

import harness as h

MAIN = """workers 1;
admin { listen unix:{admin_sock}; }
stats { listen 127.0.0.1:{stats_port}; }
include {inc}conf.d/*.conf;   # upstreams
server {
    listen 127.0.0.1:{port};
    route / { upstream voice; include {inc}routes/extra.conf; }
}
"""
UPSTREAM = """# the voice pods
upstream voice {
    server pod-a {a} weight=2;
}
"""
EXTRA = "timeout 30s;\n"


def write(d, name, text):
    path = os.path.join(d, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def dump(path):
    p = subprocess.run([h.TETHER, "-T", "-c", path], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout, p.stderr


def admin(path, line):
    text = h.admin_raw(path, (line + "\n").encode())
    assert text.endswith("\n\n"), repr(text)
    return text[:-1]


def test_dump_includes_marked():
    d = tempfile.mkdtemp(prefix="tether-dump-")
    main = write(d, "tether.conf", MAIN.replace("{admin_sock}", d + "/a.sock")
                 .replace("{stats_port}", "9").replace("{port}", "8").replace("{inc}", ""))
    up = write(d, "conf.d/10-voice.conf", UPSTREAM.replace("{a}", "127.0.0.1:1"))
    extra = write(d, "routes/extra.conf", EXTRA)
    rc, out, err = dump(main)
    assert rc == 0, err
    want = ("# configuration file {main}\n"
            "workers 1;\n"
            "admin {{\n    listen unix:{d}/a.sock;\n}}\n"
            "stats {{\n    listen 127.0.0.1:9;\n}}\n"
            "# configuration file {up}\n"
            "upstream voice {{\n    server pod-a 127.0.0.1:1 weight=2;\n}}\n"
            "# configuration file {main}\n"
            "server {{\n    listen 127.0.0.1:8;\n    route / {{\n        upstream voice;\n"
            "        # configuration file {extra}\n        timeout 30s;\n"
            "        # configuration file {main}\n    }}\n}}\n").format(
                main=main, up=up, extra=extra, d=d)
    assert out == want, out
    digest = hashlib.sha256(out.encode()).hexdigest()
    assert err.strip() == "tether: configuration %s ok (sha256 %s)" % (main, digest), err
    # The dump is a configuration that reads back to the same statements.
    again = write(d, "again.conf", out)
    rc, out2, err = dump(again)
    assert rc == 0, err
    strip = lambda t: [l for l in t.splitlines() if not l.lstrip().startswith("#")]
    assert strip(out2) == strip(out)


def test_dump_quotes_what_needs_quotes():
    d = tempfile.mkdtemp(prefix="tether-dump-")
    conf = ('access_log "%s/a b;c.log" json;\n'
            "upstream voice { server a 127.0.0.1:1; "
            "health_check { path /health; expect_body 'say \"ok\"\\n'; } }\n"
            "server { listen 127.0.0.1:8; route / { upstream voice; } }\n" % d)
    main = write(d, "tether.conf", conf)
    rc, out, err = dump(main)
    assert rc == 0, err
    assert 'access_log "%s/a b;c.log" json;\n' % d in out, out
    assert 'expect_body "say \\"ok\\"\\n";' in out, out
    rc, out2, err = dump(write(d, "again.conf", out))
    assert rc == 0 and out2.splitlines()[1:] == out.splitlines()[1:], (err, out2)


def test_dump_of_a_broken_config():
    d = tempfile.mkdtemp(prefix="tether-dump-")
    main = write(d, "tether.conf", "workers 2\nserver { listen 127.0.0.1:8; }\n")
    rc, out, err = dump(main)
    assert rc == 1 and out == "", out
    assert "%s:1:10: missing ';'?" % main in err, err


def info(sock):
    return dict(l.split(": ", 1) for l in admin(sock, "show info").splitlines() if ": " in l)


def config_info(port):
    body = h.get(port, "/metrics").body
    return re.findall(r'^tether_config_info\{hash="([0-9a-f]{64})",generation="(\d+)"\} 1$',
                      body, re.M)


def test_running_config_and_hash():
    pod = h.Mockpod("pod-a")
    sp = h.free_port()
    inc = tempfile.mkdtemp(prefix="tether-inc-")
    write(inc, "conf.d/10-voice.conf", UPSTREAM.replace("{a}", pod.addr))
    write(inc, "routes/extra.conf", EXTRA)
    t = h.Tether(MAIN, a=pod.addr, stats_port=sp, inc=inc + "/")
    h.wait_admin(t.admin_sock)
    rc, text, err = dump(t.conf_path)
    assert rc == 0, err
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert admin(t.admin_sock, "show conf") == text
    i = info(t.admin_sock)
    assert i["config_sha256"] == digest and i["generation"] == "1", i
    h.wait_port(sp)
    assert config_info(sp) == [(digest, "1")]
    # A reload with another config: new generation, new hash, new text.
    write(inc, "routes/extra.conf", "timeout 20s;\n")
    t.reload()
    h.wait_until(lambda: info(t.admin_sock)["generation"] == "2", what="generation 2")
    rc, text2, err = dump(t.conf_path)
    digest2 = hashlib.sha256(text2.encode()).hexdigest()
    assert digest2 != digest and "timeout 20s;" in text2
    assert admin(t.admin_sock, "show conf") == text2
    assert info(t.admin_sock)["config_sha256"] == digest2
    assert config_info(sp) == [(digest2, "2")]
    # A failed reload keeps serving (and showing) generation 2.
    write(inc, "routes/extra.conf", "timeout 20s\n")
    t.reload()
    h.wait_until(lambda: info(t.admin_sock).get("reloads_failed") == "1", what="reload failed")
    assert admin(t.admin_sock, "show conf") == text2
    assert config_info(sp) == [(digest2, "2")]
    h.stop_clean(t)
    pod.stop()


if __name__ == "__main__":
    h.main(globals())
