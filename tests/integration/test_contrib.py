# SPDX-License-Identifier: MIT
"""The deploy kit in contrib/: alert rules pass promtool (check and unit tests),
the Grafana dashboard and the rules only use metrics a running tether exports
and every dashboard query returns data from a real Prometheus scraping tether,
the Kubernetes manifests parse and agree with their tether.conf, the configs
shipped for Docker and Kubernetes load, and the systemd unit is sound."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import harness as h

CONTRIB = os.path.join(h.SRCDIR, "contrib")
ALERTS = os.path.join(CONTRIB, "prometheus", "alerts.yml")
ALERTS_TEST = os.path.join(CONTRIB, "prometheus", "alerts_test.yml")
DASHBOARD = os.path.join(CONTRIB, "grafana", "tether-dashboard.json")
K8S = os.path.join(CONTRIB, "kubernetes")
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")

try:
    import yaml
except ImportError:  # Debian: python3-yaml
    yaml = None

# A config that makes every kind of metric appear: two upstreams, regions, a
# rate-limit zone, health checks.
CONF = """
workers 2;
stats { listen 127.0.0.1:{stats_port}; }
rate_limit_zone per_ip key=$remote_addr rate=1000r/s burst=100 nodelay;
upstream voice {
    region eu weight=70;
    region me weight=30;
    server pod-a {a} region=eu;
    server pod-b {b} region=me;
    health_check { path /health; interval 200ms; timeout 150ms; }
}
upstream static { server cdn {c}; }
server {
    listen 127.0.0.1:{port};
    limit_req per_ip;
    route = /session { upstream voice; }
    route /tools/ { upstream voice; }
    route / { upstream static; }
}
"""


def skip(why):
    print("SKIP " + why)


def start_tether():
    pods = [h.Mockpod(n) for n in ("pod-a", "pod-b", "cdn")]
    sp = h.free_port()
    t = h.Tether(CONF, a=pods[0].addr, b=pods[1].addr, c=pods[2].addr, stats_port=sp)
    h.wait_port(sp)
    t.stats_port = sp
    return pods, t


def traffic(t, n=20):
    for i in range(n):
        h.get(t.port, "/session")
        h.get(t.port, "/tools/x")
        h.get(t.port, "/static/%d" % i)
        h.get(t.port, "/x?status=503")


def exported_families(t):
    """{family: type} from a live scrape."""
    body = h.get(t.stats_port, "/metrics").body
    return dict(l.split()[2:4] for l in body.splitlines() if l.startswith("# TYPE "))


def referenced_metrics(exprs):
    names = set()
    for e in exprs:
        # Drop label matchers and strings, then take every tether_* identifier.
        e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)
        names.update(re.findall(r"\btether_[a-z0-9_]+", e))
    return names


def known(name, fams):
    if name in fams:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and fams.get(name[:-len(suffix)]) == "histogram":
            return True
    return False


def dashboard_exprs(d):
    out = []

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "expr":
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(d)
    return out


def alert_exprs():
    text = open(ALERTS).read()
    if yaml:
        return [r["expr"] for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
    # Without PyYAML: the block scalars after "expr: |" and one-line exprs.
    out, cur = [], None
    for line in text.splitlines():
        m = re.match(r"\s+expr: (.*)$", line)
        if m:
            if cur is not None:
                out.append("\n".join(cur))
            cur = [] if m.group(1).strip() == "|" else None
            if cur is None:
                out.append(m.group(1))
        elif cur is not None:
            if re.match(r"\s+(for|labels|annotations):", line):
                out.append("\n".join(cur))
                cur = None
            else:
                cur.append(line)
    return out


def grafana_vars(e, rate="30s"):
    return (e.replace("$__rate_interval", rate).replace("$instance", ".*")
            .replace("$upstream", ".*").replace("$route", ".*"))


# ---- Prometheus rules ----

def test_alert_rules_check():
    if not PROMTOOL:
        return skip("promtool not installed (apt-get install prometheus)")
    p = subprocess.run([PROMTOOL, "check", "rules", ALERTS], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "SUCCESS: 8 rules found" in p.stdout, (p.stdout, p.stderr)
    names = [l.split(":", 1)[1].strip() for l in open(ALERTS) if l.strip().startswith("- alert:")]
    for want in ("TetherAvailabilityLow", "TetherLatencyP95High", "TetherRegionDown",
                 "TetherServerFlapping"):
        assert want in names, names


def test_alert_rules_unit_tests():
    if not PROMTOOL:
        return skip("promtool not installed (apt-get install prometheus)")
    p = subprocess.run([PROMTOOL, "test", "rules", ALERTS_TEST], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, (p.stdout, p.stderr)


# ---- the dashboard ----

def test_dashboard_uses_exported_metrics():
    d = json.load(open(DASHBOARD))
    assert d["title"] == "tether" and d["uid"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    titles = " | ".join(p["title"] for p in d["panels"])
    for want in ("Active sessions", "Request rate", "Error rate", "Latency p50 / p95 / p99",
                 "per server", "per region", "Region share"):
        assert want in titles, (want, titles)
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]
    exprs = dashboard_exprs(d)
    used = referenced_metrics(exprs) | referenced_metrics(alert_exprs())
    assert len(used) > 20, used
    pods, t = start_tether()
    traffic(t, 2)
    fams = exported_families(t)
    t.stop()
    missing = sorted(n for n in used if not known(n, fams))
    assert not missing, "not exported by tether: %s" % missing
    if PROMTOOL:
        # Every query is valid PromQL: checked as recording rules.
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": "dashboard:q%d" % i, "expr": grafana_vars(e)} for i, e in enumerate(exprs)]}]}
        d = tempfile.mkdtemp(prefix="tether-dash-")
        path = os.path.join(d, "rules.json")
        with open(path, "w") as f:
            json.dump(rules, f)
        p = subprocess.run([PROMTOOL, "check", "rules", path], capture_output=True, text=True,
                           timeout=60)
        shutil.rmtree(d, ignore_errors=True)
        assert p.returncode == 0, (p.stdout, p.stderr)


def prom_query(port, expr):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": expr}))
    with urllib.request.urlopen(url, timeout=10 * h.SLOW) as r:
        out = json.loads(r.read())
    assert out["status"] == "success", (expr, out)
    return out["data"]["result"]


def ready(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=2) as r:
            return r.status == 200
    except OSError:  # refused, or 503 while starting
        return False


def test_dashboard_queries_return_data():
    """A real Prometheus scrapes tether; every dashboard query and every alert
    expression evaluates without error, and every dashboard query has data."""
    if not PROMETHEUS:
        return skip("prometheus not installed (apt-get install prometheus)")
    pods, t = start_tether()
    d = tempfile.mkdtemp(prefix="tether-prom-")
    port = h.free_port()
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                "scrape_configs:\n  - job_name: tether\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % t.stats_port)
    prom = h.Proc([PROMETHEUS, "--config.file=" + os.path.join(d, "prometheus.yml"),
                   "--storage.tsdb.path=" + os.path.join(d, "data"),
                   "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"])
    try:
        h.wait_until(lambda: ready(port), timeout=30, what="prometheus ready")
        h.wait_until(lambda: prom_query(port, 'up{job="tether"} == 1'), timeout=30,
                     what="first scrape")
        traffic(t)
        t.reload()  # the dashboard's reload annotation needs one
        deadline = time.time() + 20 * h.SLOW
        while time.time() < deadline:
            traffic(t, 2)
            if prom_query(port, "count_over_time(tether_info[30s]) >= 6") and \
                    prom_query(port, "changes(tether_config_generation[2m]) > 0"):
                break
            time.sleep(0.5)
        exprs = dashboard_exprs(json.load(open(DASHBOARD)))
        empty = [e for e in exprs if not prom_query(port, grafana_vars(e))]
        assert not empty, "dashboard queries without data: %s" % empty
        for e in alert_exprs():
            prom_query(port, e)  # evaluates (empty is fine: nothing is wrong)
    finally:
        prom.stop()
        shutil.rmtree(d, ignore_errors=True)
    t.stop()


# ---- Kubernetes ----

def test_kubernetes_manifests():
    if yaml is None:
        return skip("python3-yaml not installed: Kubernetes manifests not parsed")
    docs = {}
    files = sorted(f for f in os.listdir(K8S) if f.endswith(".yaml"))
    for f in files:
        for doc in yaml.safe_load_all(open(os.path.join(K8S, f))):
            if doc:
                docs[(doc["kind"], doc.get("metadata", {}).get("name"))] = doc
    kust = docs.pop(("Kustomization", None))
    assert sorted(kust["resources"]) == sorted(f for f in files if f != "kustomization.yaml")
    dep = docs[("Deployment", "tether")]
    spec = dep["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] >= 2
    c = spec["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        g = c[probe]["httpGet"]
        assert g["path"] == "/health" and g["port"] == "stats", c[probe]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["terminationGracePeriodSeconds"] > 30
    conf = docs[("ConfigMap", "tether-config")]["data"]["tether.conf"]
    assert "stats { listen 0.0.0.0:%d; }" % ports["stats"] in conf
    assert "listen 0.0.0.0:%d;" % ports["http"] in conf
    # The Secret is mounted where secret_file points.
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    key_mount = [n for n, v in vols.items() if v.get("secret", {}).get("secretName") ==
                 "tether-affinity"][0]
    secret = docs[("Secret", "tether-affinity")]
    key_name = list(secret["stringData"])[0]
    key_path = mounts[key_mount] + "/" + key_name
    assert "secret_file=" + key_path in conf, key_path
    assert vols[[n for n, v in vols.items() if "configMap" in v][0]]["configMap"]["name"] == \
        "tether-config"
    assert mounts["config"] == "/etc/tether" and c["args"] == ["-c", "/etc/tether/tether.conf"]
    # Services: clients on the http port; Redis and the pods at the addresses
    # the configuration names.
    svc = docs[("Service", "tether")]
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    redis = docs[("Service", "redis")]
    assert "server %s:6379;" % redis["spec"]["clusterIP"] in conf
    assert docs[("Deployment", "redis")]["spec"]["template"]["metadata"]["labels"][
        "app.kubernetes.io/name"] == redis["spec"]["selector"]["app.kubernetes.io/name"]
    # The pods: one headless Service per region, found with discover.
    found = re.findall(r"discover ([a-z-]+)\.([a-z-]+)\.svc\.cluster\.local port=(\d+) "
                       r"region=([a-z-]+);", conf)
    assert len(found) == 3, found
    for name, ns, port, region in found:
        s = docs[("Service", name)]
        assert s["metadata"]["namespace"] == ns and s["spec"]["clusterIP"] == "None", name
        assert s["spec"]["ports"][0]["port"] == int(port), name
        if "selector" in s["spec"]:
            assert s["spec"]["selector"]["voice.example/region"] == region, name
    # The configuration itself loads (with a stand-in key file).
    d = tempfile.mkdtemp(prefix="tether-k8s-")
    with open(os.path.join(d, "affinity.key"), "w") as f:
        f.write(secret["stringData"][key_name])
    path = os.path.join(d, "tether.conf")
    with open(path, "w") as f:
        f.write(conf.replace(key_path, os.path.join(d, "affinity.key")))
    p = subprocess.run([h.TETHER, "-t", "-c", path], capture_output=True, text=True, timeout=30)
    shutil.rmtree(d, ignore_errors=True)
    assert p.returncode == 0, p.stderr


# ---- Docker and systemd ----

def test_docker_files():
    df = open(os.path.join(CONTRIB, "docker", "Dockerfile")).read()
    froms = re.findall(r"^FROM (\S+)", df, re.M)
    assert froms and all(f.startswith("debian:12") for f in froms), froms
    user = re.findall(r"^USER (\S+)", df, re.M)
    assert user and not user[-1].startswith(("root", "0")), user
    for src in re.findall(r"^COPY (?!--from)(\S+) ", df, re.M):
        if src != ".":
            assert os.path.exists(os.path.join(h.SRCDIR, src)), src
    p = subprocess.run([h.TETHER, "-t", "-c", os.path.join(CONTRIB, "docker", "tether.conf")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def test_systemd_unit():
    path = os.path.join(CONTRIB, "systemd", "tether.service")
    unit = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            unit.setdefault(k, []).append(v)
    assert unit["Type"] == ["simple"]
    assert unit["ExecReload"][-1] == "/bin/kill -HUP $MAINPID", unit["ExecReload"]
    assert unit["User"] != ["root"] and unit["NoNewPrivileges"] == ["yes"]
    assert int(unit["TimeoutStopSec"][0]) > 30
    for k in ("ProtectSystem", "PrivateTmp", "CapabilityBoundingSet", "SystemCallFilter",
              "RestrictAddressFamilies"):
        assert k in unit, k
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        return skip("systemd-analyze not installed: unit not verified")
    d = tempfile.mkdtemp(prefix="tether-unit-")
    with open(os.path.join(d, "tether.service"), "w") as f:
        f.write(open(path).read().replace("/usr/local/bin/tether", h.TETHER))
    p = subprocess.run([analyze, "verify", os.path.join(d, "tether.service")], capture_output=True,
                       text=True, timeout=60)
    shutil.rmtree(d, ignore_errors=True)
    # Man pages that are not installed here are the only complaint allowed.
    problems = [l for l in (p.stdout + p.stderr).splitlines() if l.strip() and "man " not in l]
    assert not problems, problems


if __name__ == "__main__":
    h.main(globals())
