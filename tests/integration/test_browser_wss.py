# SPDX-License-Identifier: MIT
"""A real browser through a wss:// tunnel: headless Chromium (Debian chromium)
loads a page that opens wss://localhost:PORT/ws through tether's TLS listen,
sends messages and writes the echoes into the DOM, read back with --dump-dom.
The test CA's server key is trusted for that run only, by its SPKI hash; a
control run without it must fail. Skips (and says so) where Chromium is not
installed."""
import base64
import hashlib
import os
import shutil
import subprocess
import tempfile

import harness as h
from test_tls import certs

CONF = """
workers 2;
error_log {dir}/error.log info;
access_log {access_log} json;
upstream voice { server pod-a {a}; }
server {
    listen 127.0.0.1:{port} tls;
    tls_certificate {certs}/server.pem {certs}/server.key;
    route / { upstream voice; }
}
"""

PAGE = """<!doctype html><html><body><div id="out">pending</div><script>
const out = document.getElementById("out");
const base = "wss://localhost:%d";
const big = "x".repeat(200000);
let done = false, step = 0;
// Headless virtual time does not wait for WebSocket traffic, only for pending
// fetches: keep one short, delayed request to the pod (through tether) in
// flight until the exchange is over (at most 100 of them).
function hold(n) {
    if (done || n <= 0) return;
    fetch(base.replace("wss:", "https:") + "/hold?delay=%d", {mode: "no-cors", cache: "no-store"})
        .catch(() => {}).finally(() => hold(n - 1));
}
hold(100);
const ws = new WebSocket(base + "/ws?from=browser");
ws.onopen = () => ws.send("hello from chromium");
ws.onmessage = (e) => {
    if (step === 0) { out.textContent = "first:" + e.data; step = 1; ws.send(big); return; }
    out.textContent += "|big:" + (e.data === big ? "same" : "differs " + e.data.length);
    done = true;
    ws.close();
};
ws.onerror = () => { out.textContent = "error"; done = true; };
</script></body></html>
"""

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def spki_hash(pem):
    """base64 SHA-256 of the certificate's SubjectPublicKeyInfo (DER)."""
    pub = subprocess.run(["openssl", "x509", "-in", pem, "-pubkey", "-noout"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         check=True, capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def dump_dom(url, extra):
    """The page's DOM after up to 20 s of virtual time; one retry when Chromium
    produced nothing at all (a start-up hiccup, not a page result)."""
    for attempt in range(2):
        profile = tempfile.mkdtemp(prefix="tether-chromium-")
        try:
            r = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--user-data-dir=" + profile, "--virtual-time-budget=20000"] + extra +
                ["--dump-dom", url],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90 * h.SLOW,
                env=dict(os.environ, HOME=profile))
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        out = r.stdout.decode("utf-8", "replace")
        if '<div id="out">' in out:
            return out
    raise AssertionError("chromium gave no DOM: rc=%d %s" % (r.returncode,
                                                             r.stderr.decode()[-800:]))


def test_chromium_wss_echo():
    if not CHROMIUM:
        print("SKIP: chromium is not installed (apt-get install chromium); browser test not run")
        return
    c = certs()
    pod = h.Mockpod("pod-a")
    t = h.Tether(CONF, a=pod.addr, certs=c)
    d = tempfile.mkdtemp(prefix="tether-page-")
    page = os.path.join(d, "page.html")
    with open(page, "w") as f:
        f.write(PAGE % (t.port, int(100 * h.SLOW)))
    url = "file://" + page

    dom = dump_dom(url, ["--ignore-certificate-errors-spki-list=" + spki_hash(c + "/server.pem")])
    assert '<div id="out">first:hello from chromium|big:same</div>' in dom, dom[:600]
    # The browser's handshake reached the pod through tether.
    ups = [r for r in pod.requests() if r["path"] == "/ws?from=browser"]
    assert len(ups) == 1, pod.requests()
    hdrs = {k.lower(): v for k, v in ups[0]["headers"]}
    assert "HeadlessChrome" in hdrs["user-agent"], hdrs
    assert hdrs["x-forwarded-proto"] == "https" and hdrs["upgrade"] == "websocket", hdrs
    h.wait_until(lambda: [l for l in t.access() if l.get("event") == "tunnel_end"],
                 what="tunnel_end")
    end = [l for l in t.access() if l.get("event") == "tunnel_end"][0]
    assert end["tls"] is True and end["bytes_in"] > 200000 and end["bytes_out"] > 200000, end

    # Control: without trusting the test key, the browser refuses the tunnel.
    dom = dump_dom(url, [])
    assert '<div id="out">error</div>' in dom, dom[:600]
    t.stop()
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals(), tmp_prefix="tether-test-browser-")
