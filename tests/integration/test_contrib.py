# SPDX-License-Identifier: MIT
"""The deploy kit in contrib/: alert rules pass promtool (check and unit tests),
the Grafana dashboard and the rules only use metrics a running tether exports
and every dashboard query returns data from a real Prometheus scraping tether,
the Kubernetes manifests parse and agree with their tether.conf, the configs
shipped for Docker and Kubernetes load, and the systemd unit is sound. And
the kit works as written: every command the docs run inside the image exists
in it and the documented tetherctl commands work, the alert rules select the
job the shipped scrape configuration produces, the dashboard's panels measure
what their titles say, the docs agree about host names, and the doc links
resolve."""
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
    for want in ("Open WebSocket tunnels", "Request rate", "Error rate", "Latency p50 / p95 / p99",
                 "per server", "per region", "Region share"):
        assert want in titles, (want, titles)
    # Titles say what the queries measure: a "sessions" panel is not made of
    # tunnel or connection counts only, a "tunnels" panel counts tunnels.
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        exprs = [t["expr"] for t in p["targets"]]
        metrics = referenced_metrics(exprs)
        title = p["title"].lower()
        if "session" in title:
            assert not all(re.search(r"tunnels|connections", m) for m in metrics), \
                (p["title"], metrics)
        if "tunnel" in title:
            assert any("tunnels" in m for m in metrics), (p["title"], metrics)
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
    # The Secret as shipped is refused (a key readable in the repository makes
    # cookies forgeable); the configuration loads with a key of one's own.
    d = tempfile.mkdtemp(prefix="tether-k8s-")
    key_file = os.path.join(d, "affinity.key")
    path = os.path.join(d, "tether.conf")
    with open(path, "w") as f:
        f.write(conf.replace(key_path, key_file))
    with open(key_file, "w") as f:
        f.write(secret["stringData"][key_name])
    p = subprocess.run([h.TETHER, "-t", "-c", path], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "placeholder key" in p.stderr, p.stderr
    with open(key_file, "w") as f:
        f.write(os.urandom(32).hex())
    p = subprocess.run([h.TETHER, "-t", "-c", path], capture_output=True, text=True, timeout=30)
    shutil.rmtree(d, ignore_errors=True)
    assert p.returncode == 0, p.stderr


# ---- Prometheus scrape job and alert selectors ----

def test_alerts_select_the_shipped_scrape_job():
    """The rules' job selectors name the job of contrib/prometheus/prometheus.yml,
    and that job keeps exactly the pods and port the manifests define."""
    text = open(ALERTS).read()
    jobs = set(re.findall(r'\bjob\s*=~?\s*"([^"]*)"', text))
    assert jobs == {"tether"}, jobs
    if yaml is None:
        return skip("python3-yaml not installed: scrape configuration not parsed")
    prom = yaml.safe_load(open(os.path.join(CONTRIB, "prometheus", "prometheus.yml")))
    assert prom["rule_files"] == ["alerts.yml"]
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "tether"]
    assert job["metrics_path"] == "/metrics"
    sd = job["kubernetes_sd_configs"][0]
    dep = [d for d in yaml.safe_load_all(open(os.path.join(K8S, "deployment.yaml")))
           if d and d["kind"] == "Deployment"][0]
    tmpl = dep["spec"]["template"]
    assert sd["role"] == "pod" and sd["namespaces"]["names"] == [dep["metadata"]["namespace"]]
    keep = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"]
            if r.get("action") == "keep"}
    label = keep[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)]
    assert re.fullmatch(label, tmpl["metadata"]["labels"]["app.kubernetes.io/name"])
    port = keep[("__meta_kubernetes_pod_container_port_name",)]
    ports = {p["name"]: p["containerPort"] for p in tmpl["spec"]["containers"][0]["ports"]}
    assert [n for n in ports if re.fullmatch(port, n)] == ["stats"], ports
    conf = [d for d in yaml.safe_load_all(open(os.path.join(K8S, "configmap.yaml")))
            if d][0]["data"]["tether.conf"]
    assert "stats { listen 0.0.0.0:%d; }" % ports["stats"] in conf
    # No second, differently named scrape through prometheus.io annotations.
    assert not any(k.startswith("prometheus.io/") for k in
                   tmpl["metadata"].get("annotations") or {}), tmpl["metadata"]
    if PROMTOOL:
        p = subprocess.run([PROMTOOL, "check", "config",
                            os.path.join(CONTRIB, "prometheus", "prometheus.yml")],
                           capture_output=True, text=True, timeout=60)
        if "kubernetes_sd_configs not found" in p.stdout + p.stderr:
            return skip("promtool built without Kubernetes discovery (Debian): structure only")
        assert p.returncode == 0, (p.stdout, p.stderr)


# ---- the commands the docs run ----

DOCS = [os.path.join(CONTRIB, "README.md"), os.path.join(CONTRIB, "docker", "Dockerfile")] + \
    [os.path.join(K8S, f) for f in sorted(os.listdir(K8S))]


def in_image_commands():
    """(file, argv) of every command the docs run inside the tether container:
    `kubectl ... exec POD -- CMD...`, `docker exec CONTAINER CMD...`, and the
    Deployment's exec hooks."""
    out = []
    for path in DOCS:
        for line in open(path):
            line = line.strip().lstrip("#").strip()
            m = re.search(r"\bkubectl\b.*?\bexec\b.*?\s--\s+(.*)$", line)
            if not m:
                m = re.search(r"\bdocker exec\s+(?:-\S+\s+)*\S+\s+(.*)$", line)
            if m:
                argv = re.split(r"\s+", re.sub(r"[;`()].*$", "", m.group(1)).strip())
                out.append((os.path.basename(path), argv))
    if yaml:
        for d in yaml.safe_load_all(open(os.path.join(K8S, "deployment.yaml"))):
            if d and d["kind"] == "Deployment":
                for c in d["spec"]["template"]["spec"]["containers"]:
                    for hook in (c.get("lifecycle") or {}).values():
                        if "exec" in hook:
                            out.append(("deployment.yaml", hook["exec"]["command"]))
    return out


def image_files():
    """The executables of the runtime image: its base (debian:12-slim is the
    packages of priority "required", read from this Debian 12 machine's dpkg
    database), the packages the Dockerfile installs, and the files it copies
    to /usr/bin. None without dpkg."""
    if not shutil.which("dpkg-query"):
        return None
    df = open(os.path.join(CONTRIB, "docker", "Dockerfile")).read()
    runtime = df[df.rindex("\nFROM "):]
    q = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Priority}\n"],
                       capture_output=True, text=True, timeout=60).stdout
    pkgs = {l.split()[0] for l in q.splitlines() if l.endswith(" required")}
    m = re.search(r"apt-get install[^\\\n]*\\\n((?:.*\\\n)*?.*)&&", runtime)
    if m:
        pkgs |= {w for w in re.findall(r"[a-z0-9][a-z0-9.+-]+", m.group(1))
                 if w not in ("rm", "rf", "var", "lib", "apt", "lists")}
    files = set()
    for pkg in sorted(pkgs):
        p = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True, timeout=60)
        files.update(l.strip() for l in p.stdout.splitlines())
    for copy in re.findall(r"^COPY --from=build (.+)$", runtime, re.M):
        parts = copy.split()
        dest = parts[-1]
        for src in parts[:-1]:
            files.add(os.path.join(dest, os.path.basename(src)) if dest.endswith("/") else dest)
    # Debian 12 images merge /bin into /usr/bin.
    for f in list(files):
        for a, b in (("/bin/", "/usr/bin/"), ("/sbin/", "/usr/sbin/")):
            if f.startswith(a):
                files.add(b + f[len(a):])
            elif f.startswith(b):
                files.add(a + f[len(b):])
    return files


def test_documented_commands_exist_in_image():
    cmds = in_image_commands()
    progs = {argv[0] for _, argv in cmds}
    assert "tetherctl" in progs, cmds  # the documented way to reload
    files = image_files()
    if files is None:
        return skip("no dpkg: the image's file list cannot be built")
    path = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    for where, argv in cmds:
        prog = argv[0]
        found = prog in files if prog.startswith("/") else \
            any(os.path.join(d, prog) in files for d in path)
        assert found, "%s runs %r, which the image does not contain" % (where, argv)


def test_documented_tetherctl_commands_work():
    """Every tetherctl command the docs run in the container works against a
    tether started with the image's configuration (ports and the admin socket
    moved to this test's)."""
    cmds = [argv for _, argv in in_image_commands() if argv[0] == "tetherctl"]
    assert ["tetherctl", "reload"] in cmds, cmds
    pod = h.Mockpod("app-1")
    conf = open(os.path.join(CONTRIB, "docker", "tether.conf")).read()
    sp = h.free_port()
    conf = (conf.replace("127.0.0.1:8000", pod.addr).replace("0.0.0.0:9100", "127.0.0.1:{sp}")
            .replace("0.0.0.0:8080", "127.0.0.1:{port}")
            .replace("unix:/run/tether/admin.sock", "unix:{admin_sock}"))
    t = h.Tether(conf, sp=sp)
    h.wait_admin(t.admin_sock)
    env = dict(os.environ, TETHER_ADMIN_SOCKET=t.admin_sock)
    for argv in cmds:
        p = subprocess.run([h.TETHERCTL] + argv[1:], capture_output=True, text=True, env=env,
                           timeout=30)
        assert p.returncode == 0 and not p.stderr, (argv, p.stdout, p.stderr)
    info = subprocess.run([h.TETHERCTL, "show", "info"], capture_output=True, text=True, env=env,
                          timeout=30).stdout
    assert "generation: %d\n" % (1 + cmds.count(["tetherctl", "reload"])) in info, info
    assert re.search(r"^config_sha256: [0-9a-f]{64}$", info, re.M), info
    h.stop_clean(t)
    pod.stop()


# ---- the docs agree ----

def test_docs_agree_about_host_names():
    man = open(os.path.join(h.SRCDIR, "doc", "tether.conf.5")).read()
    assert "A host name is resolved once, when the configuration is read" in man
    wrong = re.compile(r"not host names|does not resolve host names|IP addresses only|"
                       r"addresses are IPs|every address is\s+(?:#\s*)?an IP", re.I)
    for path in DOCS + [os.path.join(CONTRIB, "prometheus", "prometheus.yml")]:
        text = open(path).read()
        m = wrong.search(text)
        assert not m, "%s says %r, tether.conf(5) says host names are resolved at load" % (
            path, m.group(0))


def test_doc_links_resolve():
    """Relative links and named documents in the docs exist in the repository."""
    docs = [os.path.join(h.SRCDIR, "README.md"), os.path.join(CONTRIB, "README.md")] + \
        [os.path.join(h.SRCDIR, "doc", f) for f in os.listdir(os.path.join(h.SRCDIR, "doc"))
         if f.endswith(".md")]
    for path in docs:
        text = open(path).read()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            assert os.path.exists(os.path.join(os.path.dirname(path), target)), (path, target)
        for name in re.findall(r"\b([A-Z][A-Z_]+\.md)\b", text):
            assert os.path.exists(os.path.join(h.SRCDIR, name)) or \
                os.path.exists(os.path.join(os.path.dirname(path), name)), (path, name)


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
    # notify + NotifyAccess=all: systemd follows the new main process of a
    # binary upgrade (MAINPID=) instead of stopping the unit when the old exits.
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["all"]
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
