#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Stress the stop path: start tether (2-4 workers, Redis configured on a closed
port), send SIGTERM 0-50 ms after it has blocked the
signal, repeat; count exits other than 0.

    bench/stop_race.py [TETHER_BINARY] [RUNS]   (default build/tether, 200)

Each process is stopped by its pid (SIGKILL after 10 s if SIGTERM did not end it)."""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CONF = """
workers {workers};
error_log {dir}/error.log info;
redis {{ server 127.0.0.1:{rport}; prefix "t:"; timeout 1s; }}
rate_limit_zone g key=$remote_addr rate=10r/s burst=4 nodelay global on_redis_error=local;
upstream voice {{ server pod-a 127.0.0.1:{rport}; }}
server {{
    listen 127.0.0.1:{port};
    route / {{ upstream voice; limit_req g; }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def blocked_wait(p):
    """Until tether has blocked SIGTERM (main(), before any thread starts): a
    signal before that ends the process with the default action (-15), which
    is not the stop path under test."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and p.poll() is None:
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    if line.startswith("SigBlk:") and int(line.split()[1], 16) & (1 << 14):
                        return
        except OSError:
            return
        time.sleep(0.0005)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "build",
                                                                  "tether")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rng = random.Random(int(os.environ.get("SEED", "1")))
    codes = {}
    for i in range(runs):
        d = tempfile.mkdtemp(prefix="stoprace-")
        conf = os.path.join(d, "tether.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(workers=rng.randint(2, 4), dir=d, rport=free_port(),
                                port=free_port()))
        with open(os.path.join(d, "stderr.log"), "wb") as err:
            p = subprocess.Popen([binary, "-c", conf], stdout=err, stderr=err)
            blocked_wait(p)
            # Skewed towards 0: the race window is the first few ms.
            time.sleep(rng.random()**4 * float(os.environ.get("MAX_DELAY_MS", "50")) / 1000)
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "hung"
                p.wait()
        codes[rc] = codes.get(rc, 0) + 1
        if rc != 0:
            with open(os.path.join(d, "stderr.log"), errors="replace") as f:
                tail = f.read()[-400:]
            print("run %d: exit %s %s" % (i, rc, tail.strip().replace("\n", " | ")[-300:]))
        shutil.rmtree(d, ignore_errors=True)
    bad = runs - codes.get(0, 0)
    print("runs %d, exits != 0: %d, by code: %s" % (runs, bad, codes))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
