# SPDX-License-Identifier: MIT
"""The live status page (/ on the stats listener): a self-contained document
that headless Chromium renders into upstreams -> regions -> servers, showing
every server with its state and health (a dead pod as down or ejected, live
ones as up). A screenshot is kept under $TETHER_ARTIFACTS."""
import html.parser
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import harness as h

CONF = """
workers 2;
stats { listen 127.0.0.1:{stats_port}; }
upstream voice {
    balance least_conn;
    region eu-west weight=70 priority=0;
    region me-central weight=30 priority=0;
    region us-west weight=100 priority=1;
    server pod-a {a} region=eu-west;
    server pod-b {b} region=me-central;
    server pod-dead {dead} region=eu-west weight=2;
    server pod-dr {dr} region=us-west;
    retries 2;
    health_check { path /health; interval 200ms; timeout 150ms; rise 1; fall 1; }
    outlier { consecutive_errors 1; base_ejection 60s; max_ejected 50%; }
}
upstream static { server cdn {cdn}; }
server {
    listen 127.0.0.1:{port};
    route /v/ { upstream voice; }
    route / { upstream static; }
}
"""

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--virtual-time-budget=5000"]


def chromium(args, url):
    """Run headless Chromium with a throw-away profile; returns stdout."""
    d = tempfile.mkdtemp(prefix="tether-chromium-")
    env = dict(os.environ, HOME=d)
    try:
        p = subprocess.Popen([CHROMIUM] + FLAGS + ["--user-data-dir=" + os.path.join(d, "profile")]
                             + args + [url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             env=env, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=90 * h.SLOW)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise AssertionError("chromium did not finish")
        assert p.returncode == 0, "chromium exit %d" % p.returncode
        return out.decode("utf-8", "replace")
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Dom(html.parser.HTMLParser):
    """Rows (<tr>) with their attributes and text, and elements with data-* attributes."""

    def __init__(self):
        super().__init__()
        self.rows = []
        self.sections = []
        self._row = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self._row = {"attrs": a, "text": [], "badges": []}
            self.rows.append(self._row)
        elif tag == "section" and "data-upstream" in a:
            self.sections.append(a["data-upstream"])
        elif tag == "span" and self._row is not None and "badge" in a.get("class", ""):
            self._row["badges"].append(a["class"])

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._row is not None and data.strip():
            self._row["text"].append(data.strip())


def setup():
    pods = {n: h.Mockpod(n) for n in ("pod-a", "pod-b", "pod-dr", "cdn")}
    sp = h.free_port()
    t = h.Tether(CONF, a=pods["pod-a"].addr, b=pods["pod-b"].addr, dr=pods["pod-dr"].addr,
                 cdn=pods["cdn"].addr, dead="127.0.0.1:%d" % h.free_port(), stats_port=sp)
    h.wait_port(sp)
    t.stats_port = sp
    return pods, t


def server_health(st):
    out = {}
    for u in st["upstreams"]:
        for r in u["regions"]:
            for s in r["servers"]:
                out[u["name"] + "/" + s["name"]] = (s["state"],
                                                    "ejected" if s["ejected"] else s["health"])
    return out


def test_page_is_self_contained():
    pods, t = setup()
    r = h.get(t.stats_port, "/")
    assert r.status == 200 and r.header("Content-Type").startswith("text/html"), r
    csp = r.header("Content-Security-Policy")
    assert csp and "default-src 'none'" in csp, csp
    low = r.body.lower()
    for bad in ("http://", "https://", "<link", " src="):
        assert bad not in low, "external reference %r in the page" % bad
    assert "fetch('stats'" in r.body and "<script>" in low and "<style>" in low
    h.stop_clean(t)


def test_page_shows_every_server_with_state():
    if CHROMIUM is None:
        print("SKIP status page rendering: chromium is not installed (apt-get install chromium)")
        return
    pods, t = setup()
    # Traffic so the dead pod is seen failing (active checks and passive ejection
    # both mark it) and the page has rates to show.
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                h.get(t.port, "/v/x", timeout=5)
                h.get(t.port, "/v/missing?status=404", timeout=5)
                h.get(t.port, "/static/logo.png", timeout=5)
            except Exception:
                pass
            time.sleep(0.02)

    th = threading.Thread(target=load, daemon=True)
    th.start()
    try:
        h.wait_until(lambda: server_health(h.get(t.stats_port, "/stats").json())["voice/pod-dead"][1]
                     in ("down", "ejected"), timeout=10, what="dead pod marked")
        st = h.get(t.stats_port, "/stats").json()
        want = server_health(st)
        assert len(want) == 5, want
        url = "http://127.0.0.1:%d/" % t.stats_port
        dom = chromium(["--dump-dom"], url)
        os.makedirs(h.ARTIFACTS, exist_ok=True)
        with open(os.path.join(h.ARTIFACTS, "status_page.html"), "w") as f:
            f.write(dom)
        shot = os.path.join(h.ARTIFACTS, "status_page.png")
        if os.path.exists(shot):
            os.unlink(shot)
        chromium(["--screenshot=" + shot, "--window-size=1280,900", "--hide-scrollbars"], url)
    finally:
        stop.set()
        th.join(10)

    p = Dom()
    p.feed(dom)
    assert p.sections == ["voice", "static"], p.sections
    servers = {r["attrs"]["data-server"]: r for r in p.rows if "data-server" in r["attrs"]}
    assert sorted(servers) == sorted(want), (sorted(servers), sorted(want))
    for key, row in servers.items():
        name = key.split("/", 1)[1]
        state, health = row["attrs"]["data-state"], row["attrs"]["data-health"]
        # What the page shows is what the text says, in badges of that kind.
        assert row["text"][0] == name, row["text"]
        assert state in row["text"] and health in row["text"], (key, row["text"])
        assert "badge " + state in row["badges"] and "badge " + health in row["badges"], row
        assert state == "ready", (key, state)
        if name == "pod-dead":
            assert health in ("down", "ejected"), (key, health)
        else:
            assert health == "up", (key, health)
    regions = [r["attrs"]["data-region"] for r in p.rows if "data-region" in r["attrs"]]
    assert regions == ["voice/eu-west", "voice/me-central", "voice/us-west", "static/default"], \
        regions
    eu = [r for r in p.rows if r["attrs"].get("data-region") == "voice/eu-west"][0]
    assert "1/2 up" in eu["text"], eu["text"]
    # Servers are listed under their region, in order.
    order = [r["attrs"].get("data-region") or r["attrs"].get("data-server") for r in p.rows
             if "data-region" in r["attrs"] or "data-server" in r["attrs"]]
    assert order[:3] == ["voice/eu-west", "voice/pod-a", "voice/pod-dead"], order
    assert "live" in dom and "generation 1" in dom
    with open(shot, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000, len(png)
    h.stop_clean(t)


if __name__ == "__main__":
    h.main(globals())
