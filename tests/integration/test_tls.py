# SPDX-License-Identifier: MIT
"""TLS termination and TLS to pods, with real clients (curl, openssl s_client,
Python ssl, python3-websockets): SNI certificates and the default, ALPN,
protocol versions and cipher policy, X-Forwarded-Proto and the Secure cookie,
session resumption across instances sharing tls_ticket_key_file (and key
rotation), certificates reloaded on SIGHUP without dropping connections,
handshake failures counted and logged rate-limited, wss:// echo, and TLS to
pods with verification, CA and SNI."""
import asyncio
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request

import websockets.client

import harness as h

CERTS = None


def certs():
    """Throwaway CA and certificates (tests/tls/gen-certs.sh), made once."""
    global CERTS
    if CERTS is None:
        d = tempfile.mkdtemp(prefix="tether-certs-")
        subprocess.run(["bash", os.path.join(h.SRCDIR, "tests", "tls", "gen-certs.sh"), d],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        CERTS = d
    return CERTS


def s_client(port, *args, until_file=None):
    """openssl s_client to tether. With <until_file> the connection stays open
    until s_client has written that file (-sess_out: TLS 1.3 session tickets
    arrive after the handshake), at most 10 s."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        if until_file:
            deadline = time.time() + 10 * h.SLOW
            while time.time() < deadline and p.poll() is None:
                if os.path.exists(until_file) and os.path.getsize(until_file) > 0:
                    time.sleep(0.05)
                    break
                time.sleep(0.02)
        out, _ = p.communicate(b"", timeout=10 * h.SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return p.returncode, out.decode("utf-8", "replace")


def subject_cn(out):
    m = re.search(r"^subject=.*?CN ?= ?([^,\n]+)", out, re.M)
    return m.group(1).strip() if m else None


def curl(url, *args):
    r = subprocess.run(["curl", "-sS", "-v", "--max-time", str(10 * h.SLOW)] + list(args) + [url],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


async def recv(ws):
    """The next message, or a failure after 30 s: a stalled tunnel fails the test."""
    return await asyncio.wait_for(ws.recv(), 30 * h.SLOW)


def metric(t, name):
    """A global counter from /metrics, or None while /metrics is not served."""
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % t.kw["sport"],
                                      timeout=2).read().decode()
    except OSError:
        return None
    m = re.search(r"^%s(?:\{\})? (\d+)" % name, body, re.M)
    return int(m.group(1)) if m else None


CONF = """
workers 2;
error_log {dir}/error.log info;
access_log {access_log} json;
stats { listen 127.0.0.1:{sport}; }
upstream voice { server pod-a {a}; }
affinity { cookie VOICE_AFFINITY; }
server {
    listen 127.0.0.1:{port} tls;
    listen 127.0.0.1:{plain};
    tls_certificate {cert} {key};
    tls_certificate {certs}/a.test.pem {certs}/a.test.key;
    tls_certificate {certs}/b.test.pem {certs}/b.test.key;
    tls_ticket_key_file {ticket};
    route = /sdp { upstream voice; affinity cookie; }
    route / { upstream voice; }
}
"""


def setup(ticket=None, cert=None, key=None, pod=None):
    c = certs()
    pod = pod or h.Mockpod("pod-a")
    t = h.Tether(CONF, a=pod.addr, certs=c, cert=cert or c + "/server.pem",
                 key=key or c + "/server.key", ticket=ticket or c + "/ticket.key",
                 plain=h.free_port(), sport=h.free_port())
    return pod, t


def test_sni_selects_certificate():
    _, t = setup()
    c = certs()
    for name, cn in (("a.test", "a.test"), ("b.test", "b.test"), ("x.b.test", "b.test"),
                     ("localhost", "localhost")):
        rc, body, err = curl("https://%s:%d/sdp" % (name, t.port), "--cacert", c + "/ca.pem",
                             "--resolve", "%s:%d:127.0.0.1" % (name, t.port))
        assert rc == 0, (name, err[-600:])
        assert re.search(r"subject: CN ?= ?%s\b" % re.escape(cn), err), (name, err)
        assert '"pod":"pod-a"' in body, body
    # Unknown name and no name at all: the first certificate.
    for args in (["-servername", "nobody.test"], ["-noservername"]):
        rc, out = s_client(t.port, *args)
        assert subject_cn(out) == "localhost", (args, out[-800:])
    t.stop()


def test_alpn_versions_and_ciphers():
    _, t = setup()
    c = certs()
    rc, _, err = curl("https://localhost:%d/sdp" % t.port, "--cacert", c + "/ca.pem",
                      "--http1.1")
    assert rc == 0 and "ALPN: server accepted http/1.1" in err, err[-800:]
    # HTTP/2 is offered by default on tls listens (test_http2.py has the rest).
    rc, out = s_client(t.port, "-servername", "localhost", "-alpn", "h2,http/1.1")
    assert "ALPN protocol: h2" in out, out[-800:]
    rc, out = s_client(t.port, "-servername", "localhost", "-alpn", "http/1.1")
    assert "ALPN protocol: http/1.1" in out, out[-800:]
    rc, out = s_client(t.port, "-tls1_3")
    assert re.search(r"Protocol\s*: TLSv1.3|New, TLSv1.3", out), out[-800:]
    rc, out = s_client(t.port, "-tls1_2")
    assert re.search(r"Protocol\s*: TLSv1.2", out), out[-800:]
    assert re.search(r"Cipher\s*: ECDHE-(ECDSA|RSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)", out), \
        out[-800:]
    # TLS 1.1 and 1.0 are refused; so are RSA key exchange and CBC suites.
    for args in (["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                 ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
                 ["-tls1_2", "-cipher", "AES128-SHA:AES256-GCM-SHA384"],
                 ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA"]):
        rc, out = s_client(t.port, "-servername", "a.test", *args)
        assert "Cipher is (NONE)" in out or "alert" in out or rc != 0, (args, out[-800:])
        assert "BEGIN CERTIFICATE" not in out, (args, out[-800:])
    t.stop()


def test_forwarded_proto_and_secure_cookie():
    _, t = setup()
    c = certs()
    ctx = ssl.create_default_context(cafile=c + "/ca.pem")
    conn = http.client.HTTPSConnection("localhost", t.port, context=ctx, timeout=10 * h.SLOW)
    conn.request("GET", "/echo")
    r = conn.getresponse()
    got = {k.lower(): v for k, v in json.loads(r.read())["headers"]}
    assert got["x-forwarded-proto"] == "https", got
    conn.request("GET", "/sdp")
    r = conn.getresponse()
    r.read()
    cookie = r.getheader("Set-Cookie")
    assert cookie and "; Secure" in cookie and "HttpOnly" in cookie, cookie
    conn.close()
    # The plain listen of the same server: http, and no Secure.
    r = h.get(t.kw["plain"], "/echo")
    got = {k.lower(): v for k, v in r.json()["headers"]}
    assert got["x-forwarded-proto"] == "http", got
    r = h.get(t.kw["plain"], "/sdp")
    assert "Secure" not in r.header("Set-Cookie"), r.header("Set-Cookie")
    h.wait_until(lambda: len(t.access()) >= 4, what="access lines")
    assert sorted(l["tls"] for l in t.access()) == [False, False, True, True], t.access()
    t.stop()


def _resume(port_a, port_b, *args):
    sess = tempfile.mktemp(prefix="tether-sess-")
    try:
        rc, out = s_client(port_a, "-servername", "localhost", "-sess_out", sess, *args,
                           until_file=sess)
        assert "New," in out and os.path.exists(sess), out[-800:]
        rc, out = s_client(port_b, "-servername", "localhost", "-sess_in", sess, *args)
        return "Reused," in out
    finally:
        if os.path.exists(sess):
            os.unlink(sess)


def test_session_resumption_across_instances():
    c = certs()
    pod = h.Mockpod("pod-a")
    d = tempfile.mkdtemp(prefix="tether-keys-")
    k1, k2, k3 = (os.urandom(80) for _ in range(3))

    def keyfile(name, *keys):
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(b"".join(keys))
        return p

    _, a = setup(pod=pod, ticket=keyfile("a", k1, k2))
    _, b = setup(pod=pod, ticket=keyfile("b", k1, k2))        # a replica: same keys
    _, other = setup(pod=pod, ticket=keyfile("o", k3))        # another key
    _, rotated = setup(pod=pod, ticket=keyfile("r", k3, k1))  # k1 now decrypt-only
    for ver in ("-tls1_3", "-tls1_2"):
        assert _resume(a.port, b.port, ver), ver
        assert _resume(a.port, a.port, ver), ver
        assert not _resume(a.port, other.port, ver), ver
        assert _resume(a.port, rotated.port, ver), ver
    # The resumed handshakes are counted.
    n = metric(b, "tether_tls_resumed_total")
    assert n is None or n >= 2, n
    for t in (a, b, other, rotated):
        t.stop()


def _make_cert(c, d, cn):
    """A new localhost certificate with subject CN=<cn>, signed by the test CA."""
    key, csr, pem, ext = (os.path.join(d, cn + x) for x in (".key", ".csr", ".pem", ".ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", key], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", c + "/ca.pem", "-CAkey",
                    c + "/ca.key", "-CAcreateserial", "-CAserial", os.path.join(d, "ca.srl"),
                    "-days", "2", "-extfile", ext, "-out", pem], check=True, capture_output=True)
    return pem, key


def test_certificate_reload_keeps_connections():
    c = certs()
    d = tempfile.mkdtemp(prefix="tether-reload-")
    cur_pem, cur_key = os.path.join(d, "cur.pem"), os.path.join(d, "cur.key")
    shutil.copy(c + "/server.pem", cur_pem)
    shutil.copy(c + "/server.key", cur_key)
    pod, t = setup(cert=cur_pem, key=cur_key)
    ctx = ssl.create_default_context(cafile=c + "/ca.pem")
    old = http.client.HTTPSConnection("localhost", t.port, context=ctx, timeout=10 * h.SLOW)
    old.request("GET", "/sdp?n=1")
    assert old.getresponse().read()
    old_cn = dict(x[0] for x in old.sock.getpeercert()["subject"])["commonName"]
    assert old_cn == "localhost"

    pem, key = _make_cert(c, d, "localhost-v2")
    shutil.copy(pem, cur_pem)
    shutil.copy(key, cur_key)
    t.reload()
    h.wait_until(lambda: open(t.dir + "/error.log").read().count("configuration reloaded") >= 1,
                 what="reload")
    rc, out = s_client(t.port, "-servername", "localhost")
    assert subject_cn(out) == "localhost-v2", out[-800:]
    # The connection opened before the reload goes on with its session.
    for i in range(3):
        old.request("GET", "/sdp?n=%d" % (i + 2))
        r = old.getresponse()
        assert r.status == 200 and b"pod-a" in r.read()
    # A broken certificate on reload is refused; the running one keeps serving.
    with open(cur_key, "w") as f:
        f.write("not a key\n")
    t.reload()
    h.wait_until(lambda: "cannot load certificate" in open(t.dir + "/error.log").read(),
                 what="reload refused")
    rc, out = s_client(t.port, "-servername", "localhost")
    assert subject_cn(out) == "localhost-v2", out[-800:]
    old.request("GET", "/sdp?n=9")
    assert old.getresponse().status == 200
    old.close()
    t.stop()


def test_handshake_failures_counted_and_rate_limited():
    _, t = setup()
    N = 60
    for i in range(N):
        # Plain HTTP on the TLS port, and TLS 1.1: both fail the handshake.
        if i % 2:
            h.raw(t.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2)
        else:
            s_client(t.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    time.sleep(0.3)
    log = open(t.dir + "/error.log").read()
    lines = [l for l in log.splitlines() if "TLS handshake" in l]
    assert 1 <= len(lines) <= 3, lines
    assert re.search(r"TLS handshake with 127\.0\.0\.1 failed: \S", lines[0]), lines
    n = metric(t, "tether_tls_handshake_failures_total")
    assert n is None or n >= N, n
    # And the listener still serves.
    rc, body, err = curl("https://localhost:%d/sdp" % t.port, "--cacert", certs() + "/ca.pem")
    assert rc == 0, err[-500:]
    t.stop()


def test_wss_echo_10000_and_large():
    _, t = setup()
    ctx = ssl.create_default_context(cafile=certs() + "/ca.pem")

    async def go():
        async with websockets.client.connect("wss://localhost:%d/ws" % t.port, ssl=ctx,
                                             max_size=None, ping_interval=None) as ws:
            t0 = time.time()
            for i in range(10000):
                msg = "w%d" % i
                await ws.send(msg)
                assert await recv(ws) == msg
            secs = time.time() - t0
            for size in (16384, 16385, 1 << 20, 8 << 20):
                msg = os.urandom(size)
                await ws.send(msg)
                assert await recv(ws) == msg, size
            return secs

    secs = asyncio.run(go())
    print("10000 wss:// echoes in %.2fs (%.0f msg/s)" % (secs, 10000 / secs))
    h.wait_until(lambda: [l for l in t.access() if l.get("event") == "tunnel_end"],
                 what="tunnel_end")
    end = [l for l in t.access() if l.get("event") == "tunnel_end"][0]
    assert end["tls"] is True and end["term"] == "tunnel_closed", end
    t.stop()


POD_CONF = """
workers 1;
error_log {dir}/error.log info;
upstream voice { retries 0; server pod-t 127.0.0.1:{tp} {params}; }
server {
    listen 127.0.0.1:{port};
    route / { upstream voice; }
}
"""


def tls_pod():
    """The test CA's directory, a second CA's (which the pod's certificate does
    not chain to), and a mock pod with a TLS port (returned too)."""
    c = certs()
    other = tempfile.mkdtemp(prefix="tether-othercerts-")
    subprocess.run(["bash", os.path.join(h.SRCDIR, "tests", "tls", "gen-certs.sh"), other],
                   check=True, capture_output=True)
    tp = h.free_port()
    pod = h.Mockpod("pod-t", args=["--tls-listen", "127.0.0.1:%d" % tp, "--cert",
                                   c + "/server.pem", "--key", c + "/server.key"])
    h.wait_port(tp)
    return c, other, pod, tp


def test_tls_to_pods():
    c, other, pod, tp = tls_pod()
    good = ["tls verify=on ca=%s/ca.pem sni=localhost" % c,
            "tls verify=on ca=%s/ca.pem" % c,       # no name: the chain is checked
            "tls verify=off"]
    for params in good:
        t = h.Tether(POD_CONF, tp=tp, params=params)
        for i in range(3):
            r = h.get(t.port, "/echo?i=%d" % i)
            assert r.status == 200 and r.header("X-Pod") == "pod-t", (params, r)
        # WebSocket over a TLS pod connection: both ends of the tunnel use TLS ops.
        async def ws_echo():
            async with websockets.client.connect("ws://127.0.0.1:%d/ws" % t.port,
                                                 max_size=None, ping_interval=None) as ws:
                for n in (10, 100000, 3 << 20):
                    msg = os.urandom(n)
                    await ws.send(msg)
                    assert await recv(ws) == msg

        asyncio.run(ws_echo())
        t.stop()
    bad = [("tls verify=on ca=%s/ca.pem sni=localhost" % other, "certificate verify failed"),
           ("tls verify=on ca=%s/ca.pem sni=wrong.test" % c, "certificate verify failed")]
    for params, why in bad:
        t = h.Tether(POD_CONF, tp=tp, params=params)
        r = h.get(t.port, "/echo")
        assert r.status == 502, (params, r)
        h.wait_until(lambda: why in open(t.dir + "/error.log").read(), what=why)
        t.stop()
    # The pod's plain port never answers a ClientHello: the handshake is bounded
    # by connect_timeout (504), it does not hang the request.
    conf = POD_CONF.replace("retries 0;", "retries 0; connect_timeout 500ms;")
    t = h.Tether(conf, tp=pod.port, params="tls verify=off")
    t0 = time.time()
    assert h.get(t.port, "/echo").status == 504
    assert time.time() - t0 < 3 * h.SLOW
    t.stop()


HC_CONF = """
workers 1;
error_log {dir}/error.log info;
upstream voice {
    retries 0;
    server pod-t 127.0.0.1:{tp} {params};
    health_check { path /health; interval 100ms; timeout 1s; rise 1; fall 1; {extra} }
}
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def test_health_checks_over_tls():
    """A `tls` server is checked over TLS, verified like its traffic; a
    health_check port of its own is plain HTTP."""
    c, other, pod, tp = tls_pod()
    log = lambda t: open(t.dir + "/error.log").read()
    cases = [("tls verify=on ca=%s/ca.pem sni=localhost" % c, "", "UP"),
             ("tls verify=off", "", "UP"),
             ("tls verify=on ca=%s/ca.pem sni=localhost" % other, "", "DOWN"),
             # Plain HTTP to the pod's plain port (TLS there would fail).
             ("tls verify=on ca=%s/ca.pem sni=localhost" % c, "port %d;" % pod.port, "UP")]
    for params, extra, want in cases:
        # Start in the other state: the checks must move it.
        initial = "initial down;" if want == "UP" else "initial up;"
        t = h.Tether(HC_CONF, tp=tp, params=params, extra=extra + initial)
        if want == "UP":
            h.wait_until(lambda: "voice/pod-t is UP" in log(t), what="UP: %s %s" % (params, extra))
            # The plan follows the transition within a few ms.
            h.wait_until(lambda: h.get(t.port, "/echo").status == 200, what="served")
            assert h.get(t.port, "/echo").header("X-Pod") == "pod-t"
            # Kept-alive check connections: many checks, few handshakes.
            n0 = len([q for q in pod.requests() if q["path"] == "/health"])
            time.sleep(0.6)
            n1 = len([q for q in pod.requests() if q["path"] == "/health"])
            assert n1 - n0 >= 3, (n0, n1)
        else:
            h.wait_until(lambda: "voice/pod-t is DOWN" in log(t), what="DOWN")
            down = [l for l in log(t).splitlines() if "is DOWN" in l][0]
            assert "TLS:" in down and "certificate verify failed" in down, down
            h.wait_until(lambda: h.get(t.port, "/echo").status == 503, what="not served")
        t.stop()
    pod.stop()


if __name__ == "__main__":
    h.main(globals(), tmp_prefix="tether-test-tls-")
