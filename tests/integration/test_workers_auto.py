# SPDX-License-Identifier: MIT
"""workers auto: the CPU count lowered to the cgroup CPU limit (v2 cpu.max, v1
CFS quota), rounded up; show info and tether_workers say how many and
show info where the number came from. TETHER_CGROUP_ROOT points tether at a
fake cgroup tree."""
import os
import re
import shutil
import tempfile

import harness as h

CONF = """workers {workers};
admin { listen unix:{admin_sock}; }
stats { listen 127.0.0.1:{stats_port}; }
upstream voice { server pod-a 127.0.0.1:1; }
server { listen 127.0.0.1:{port}; route / { upstream voice; } }
"""


def info(sock):
    text = h.admin_raw(sock, b"show info\n")
    return dict(l.split(": ", 1) for l in text.splitlines() if ": " in l)


def start(workers, tree):
    old = os.environ.get("TETHER_CGROUP_ROOT")
    os.environ["TETHER_CGROUP_ROOT"] = tree
    try:
        sp = h.free_port()
        t = h.Tether(CONF, workers=workers, stats_port=sp)
    finally:
        if old is None:
            del os.environ["TETHER_CGROUP_ROOT"]
        else:
            os.environ["TETHER_CGROUP_ROOT"] = old
    h.wait_admin(t.admin_sock)
    h.wait_port(sp)
    i = info(t.admin_sock)
    m = re.search(r"^tether_workers (\d+)$", h.get(sp, "/metrics").body, re.M)
    h.stop_clean(t)
    assert m and m.group(1) == i["workers"], (m, i)
    return int(i["workers"]), i["workers_from"]


def tree(files):
    d = tempfile.mkdtemp(prefix="tether-cgroup-")
    for name, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return d


CPUS = len(os.sched_getaffinity(0))


def test_cgroup_v2_limit():
    d = tree({"cgroup.controllers": "cpu io memory\n", "cpu.max": "100000 100000\n"})
    n, src = start("auto", d)
    assert (n, src) == ((1, "cgroup v2") if CPUS > 1 else (1, "cpus")), (n, src)
    # 1.5 CPUs round up to 2, never above the CPU count.
    with open(os.path.join(d, "cpu.max"), "w") as f:
        f.write("150000 100000\n")
    n, src = start("auto", d)
    assert n == min(2, CPUS), (n, src)
    with open(os.path.join(d, "cpu.max"), "w") as f:
        f.write("max 100000\n")
    assert start("auto", d) == (CPUS, "cpus")
    # "workers N" is taken as written.
    assert start("3", d) == (3, "config")
    shutil.rmtree(d)


def test_cgroup_v1_quota():
    d = tree({"cpu,cpuacct/cpu.cfs_quota_us": "50000\n",
              "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert start("auto", d) == ((1, "cgroup v1") if CPUS > 1 else (1, "cpus"))
    with open(os.path.join(d, "cpu,cpuacct/cpu.cfs_quota_us"), "w") as f:
        f.write("-1\n")
    assert start("auto", d) == (CPUS, "cpus")
    shutil.rmtree(d)


if __name__ == "__main__":
    h.main(globals())
