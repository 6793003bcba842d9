#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Parsing and reporting for tether's bench/ scripts (stdlib only).

  report.py wrk FILE        wrk --latency output -> "rate p50_us p99_us ops errors non2xx"
  report.py loadgen FILE    bench/loadgen output  -> the same six fields
  report.py h2load FILE     h2load output -> the same six fields (h2load gives no
                            percentiles: p50 is the mean time per request, p99 its max)
  report.py profile DIR SYSTEM...   the tables of bench/profile.sh from its files
  report.py summary TSV [--ratio A:B ...] [--unit req/s] [--json OUT] [--title T]
                            one markdown table per test: medians over rounds per system,
                            then ratios A/B as the median of the per-round ratios.

TSV columns: test round system rate p50_us p99_us ops errors non2xx cpu_ticks secs
[other_cpu_pct [load_cpu_pct]] (cpu_ticks: user+system ticks of the system under test during the round; CLK_TCK from
the environment, default 100)."""
import json
import os
import re
import statistics
import sys

UNITS = {"us": 1.0, "ms": 1000.0, "s": 1e6, "m": 60e6}


def dur_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError("bad duration %r" % text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(path):
    text = open(path, errors="replace").read()
    rate = p50 = p99 = None
    ops = errors = non2xx = 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        rate = float(m.group(1))
    m = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    if m:
        p50 = dur_us(m.group(1))
    m = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if m:
        p99 = dur_us(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        ops = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        non2xx = int(m.group(1))
    if rate is None or p50 is None or p99 is None:
        raise SystemExit("report.py: cannot parse wrk output in %s:\n%s" % (path, text))
    return rate, p50, p99, ops, errors, non2xx


def parse_loadgen(path):
    text = open(path, errors="replace").read()
    kv = dict(re.findall(r"(\w+)=(\S+)", text))
    if "rate" not in kv:
        raise SystemExit("report.py: cannot parse loadgen output in %s:\n%s" % (path, text))
    return (float(kv["rate"]), float(kv["p50_us"]), float(kv["p99_us"]), int(kv["ops"]),
            int(kv["errors"]), int(kv.get("bad_status", 0)))


def parse_h2load(path):
    text = open(path, errors="replace").read()
    m = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text)
    r = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    t = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    c = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not (m and r and t and c):
        raise SystemExit("report.py: cannot parse h2load output in %s:\n%s" % (path, text))
    non2xx = int(c.group(3)) + int(c.group(4))
    return (float(m.group(1)), dur_us(t.group(3)), dur_us(t.group(2)), int(r.group(2)),
            int(r.group(3)) + int(r.group(4)) + int(r.group(5)), non2xx)


def fmt_num(x):
    if x is None:
        return "-"
    if x >= 100:
        return "{:,.0f}".format(x)
    if x >= 10:
        return "%.1f" % x
    return "%.2f" % x


def fmt_us(x):
    if x is None:
        return "-"
    if x >= 10000:
        return "%.1f ms" % (x / 1000)
    if x >= 1000:
        return "%.2f ms" % (x / 1000)
    return "%.0f µs" % x


def summary(args):
    tsv = args[0]
    ratios, unit, json_out, title = [], "req/s", None, None
    i = 1
    while i < len(args):
        if args[i] == "--ratio":
            ratios.append(tuple(args[i + 1].split(":")))
            i += 2
        elif args[i] == "--unit":
            unit = args[i + 1]
            i += 2
        elif args[i] == "--json":
            json_out = args[i + 1]
            i += 2
        elif args[i] == "--title":
            title = args[i + 1]
            i += 2
        else:
            raise SystemExit("report.py summary: unknown argument %s" % args[i])
    tck = float(os.environ.get("CLK_TCK", "100"))
    rows = []
    for line in open(tsv):
        f = line.rstrip("\n").split("\t")
        if len(f) < 11 or f[0] == "test":
            continue
        rows.append({"test": f[0], "round": int(f[1]), "system": f[2], "rate": float(f[3]),
                     "p50_us": float(f[4]), "p99_us": float(f[5]), "ops": int(f[6]),
                     "errors": int(f[7]), "non2xx": int(f[8]), "cpu_ticks": int(f[9]),
                     "secs": float(f[10]),
                     "other_pct": float(f[11]) if len(f) > 11 and f[11] else None,
                     "load_pct": float(f[12]) if len(f) > 12 and f[12] else None})
    for r in rows:
        # CPU time of the system under test per operation, in µs
        r["cpu_us_per_op"] = (r["cpu_ticks"] / tck * 1e6 / r["ops"]) if r["ops"] else None
    tests = []
    for r in rows:
        if r["test"] not in tests:
            tests.append(r["test"])
    out = {"tests": {}, "rows": rows}
    if title:
        print("### " + title)
        print()
    for t in tests:
        tr = [r for r in rows if r["test"] == t]
        systems = []
        for r in tr:
            if r["system"] not in systems:
                systems.append(r["system"])
        nrounds = len({r["round"] for r in tr})
        print("**%s** (%d round%s, medians)" % (t, nrounds, "" if nrounds == 1 else "s"))
        print()
        print("| system | %s | min–max | p50 | p99 | CPU µs/op | errors | load gen CPU | other load |" % unit)
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        res = {}
        for s in systems:
            sr = [r for r in tr if r["system"] == s]
            med = lambda k: statistics.median([r[k] for r in sr if r[k] is not None]) \
                if any(r[k] is not None for r in sr) else None
            rates = [r["rate"] for r in sr]
            res[s] = {"rate": med("rate"), "rate_min": min(rates), "rate_max": max(rates),
                      "p50_us": med("p50_us"), "p99_us": med("p99_us"),
                      "cpu_us_per_op": med("cpu_us_per_op"),
                      "errors": sum(r["errors"] + r["non2xx"] for r in sr), "rounds": len(sr),
                      "other_pct": med("other_pct"), "load_pct": med("load_pct")}
            x = res[s]
            pct = lambda v: "-" if v is None else "%.0f%%" % v
            print("| %s | %s | %s–%s | %s | %s | %s | %d | %s | %s |" % (
                s, fmt_num(x["rate"]), fmt_num(x["rate_min"]), fmt_num(x["rate_max"]),
                fmt_us(x["p50_us"]), fmt_us(x["p99_us"]), fmt_num(x["cpu_us_per_op"]),
                x["errors"], pct(x["load_pct"]), pct(x["other_pct"])))
        print()
        rat = {}
        lines = []
        for a, b in ratios:
            if a not in systems or b not in systems:
                continue
            per = {"rate": [], "p50_us": [], "p99_us": [], "cpu_us_per_op": []}
            for rnd in sorted({r["round"] for r in tr}):
                ra = [r for r in tr if r["round"] == rnd and r["system"] == a]
                rb = [r for r in tr if r["round"] == rnd and r["system"] == b]
                if not ra or not rb:
                    continue
                for k in per:
                    if ra[0][k] and rb[0][k]:
                        per[k].append(ra[0][k] / rb[0][k])
            med = {k: (statistics.median(v) if v else None) for k, v in per.items()}
            rat["%s/%s" % (a, b)] = med
            lines.append("| %s/%s | %s | %s | %s | %s |" % (
                a, b, *["%.2f" % med[k] if med[k] else "-"
                        for k in ("rate", "p50_us", "p99_us", "cpu_us_per_op")]))
        if lines:
            print("| ratio (median of per-round ratios) | %s | p50 | p99 | CPU/op |" % unit)
            print("|---|---:|---:|---:|---:|")
            print("\n".join(lines))
            print()
        out["tests"][t] = {"systems": res, "ratios": rat}
    if json_out:
        with open(json_out, "w") as f:
            json.dump(out, f, indent=1)


def read_window(path):
    try:
        req, secs, ut, st = open(path).read().split()
        return int(req), float(secs), int(ut), int(st)
    except (OSError, ValueError):
        return None


def read_perfstat(path):
    counts = {}
    try:
        for line in open(path):
            f = line.strip().split(",")
            if len(f) < 3 or line.startswith("#"):
                continue
            try:
                v = float(f[0])
            except ValueError:
                v = 0.0  # <not counted>, <not supported>
            counts[f[2]] = counts.get(f[2], 0.0) + v
    except OSError:
        pass
    return counts


def read_strace(path):
    calls, errs = {}, {}
    try:
        for line in open(path):
            f = line.split()
            if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                name = f[-1]
                calls[name] = int(f[3])
                errs[name] = int(f[4]) if len(f) == 6 else 0
    except OSError:
        pass
    return calls, errs


def profile(args):
    d, systems = args[0], args[1:]
    tck = float(os.environ.get("CLK_TCK", "100"))
    stat = {}
    print("### CPU and system calls per request (perf stat window)")
    print()
    print("| system | req/s | CPU µs/req | user µs/req | sys µs/req | syscalls/req | "
          "context switches/req | malloc/req |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in systems:
        w = read_window(os.path.join(d, s + ".stat.window"))
        if not w or w[0] <= 0:
            print("| %s | (no data) | | | | | | |" % s)
            continue
        req, secs, ut, st = w
        c = read_perfstat(os.path.join(d, s + ".perfstat"))
        stat[s] = (req, c)
        per = lambda k: ("%.2f" % (c[k] / req)) if k in c and c[k] else "-"
        # CPU: perf's task-clock when there, else /proc ticks; the user/system split is
        # the /proc tick ratio (tick sampling: approximate) applied to it
        cpu_us = c["task-clock"] * 1000 / req if c.get("task-clock") else (ut + st) / tck * 1e6 / req
        ushare = ut / (ut + st) if ut + st else 0
        print("| %s | %s | %.2f | %.2f | %.2f | %s | %s | %s |" % (
            s, "{:,.0f}".format(req / secs), cpu_us, cpu_us * ushare, cpu_us * (1 - ushare),
            per("raw_syscalls:sys_enter"), per("context-switches"), per("probe_libc:malloc")))
    print()
    names = sorted({k.split("sys_enter_")[1] for s in stat for k in stat[s][1]
                    if "sys_enter_" in k and stat[s][1][k] > 0})
    if names:
        print("System calls per request by name (tracepoints, same window):")
        print()
        print("| syscall | " + " | ".join(stat) + " |")
        print("|---|" + "---:|" * len(stat))
        for n in names:
            print("| %s | %s |" % (n, " | ".join(
                "%.3f" % (stat[s][1].get("syscalls:sys_enter_" + n, 0) / stat[s][0]) for s in stat)))
        print()
    st = {}
    for s in systems:
        w = read_window(os.path.join(d, s + ".strace.window"))
        calls, errs = read_strace(os.path.join(d, s + ".strace"))
        if w and w[0] > 0 and calls:
            st[s] = (w[0], w[1], calls, errs)
    if st:
        print("### strace -c -f: calls per request (strace slows the process: req/s under strace shown)")
        print()
        print("| syscall | " + " | ".join("%s (%s req/s)" % (s, "{:,.0f}".format(st[s][0] / st[s][1]))
                                        for s in st) + " |")
        print("|---|" + "---:|" * len(st))
        allnames = sorted({n for s in st for n in st[s][2]},
                          key=lambda n: -max(st[s][2].get(n, 0) / st[s][0] for s in st))
        for n in allnames:
            if max(st[s][2].get(n, 0) / st[s][0] for s in st) < 0.001:
                continue
            cells = []
            for s in st:
                v = st[s][2].get(n, 0) / st[s][0]
                e = st[s][3].get(n, 0) / st[s][0]
                cells.append(("%.3f" % v) + (" (%.3f errors)" % e if e >= 0.001 else ""))
            print("| %s | %s |" % (n, " | ".join(cells)))
        print("| **total** | %s |" % " | ".join(
            "**%.2f**" % (sum(st[s][2].values()) / st[s][0]) for s in st))
        print()
    for s in systems:
        for tag, what in (("dso", "share of samples by object"),
                          ("top", "top symbols (self)"), ("children", "inclusive (children), >= 3%")):
            path = os.path.join(d, "%s.%s" % (s, tag))
            if os.path.exists(path) and os.path.getsize(path):
                lines = open(path).read().splitlines()[:40]
                print("%s — perf record, %s:" % (s, what))
                print()
                print("```")
                print("\n".join(l.rstrip() for l in lines))
                print("```")
                print()


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    cmd = sys.argv[1]
    if cmd in ("wrk", "loadgen", "h2load"):
        vals = {"wrk": parse_wrk, "loadgen": parse_loadgen, "h2load": parse_h2load}[cmd](sys.argv[2])
        print("\t".join(str(v) for v in vals))
    elif cmd == "summary":
        summary(sys.argv[2:])
    elif cmd == "profile":
        profile(sys.argv[2:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
