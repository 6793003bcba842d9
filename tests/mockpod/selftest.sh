#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Self-check of the mock pod: starts it on loopback ports, exercises its endpoints with
# curl and /usr/bin/python3 (stdlib + python3-websockets), stops it by pid.
# Usage: tests/mockpod/selftest.sh [path/to/mockpod]   (default: next to this script)
set -u

here=$(cd "$(dirname "$0")" && pwd)
MOCKPOD=${1:-${MOCKPOD:-$here/mockpod}}
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/mockpod-selftest.XXXXXX)
pids=()
pass=0
fail=0

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "ok   $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
# check NAME EXPECTED ACTUAL
check() { if [ "$2" = "$3" ]; then ok "$1"; else ko "$1" "expected [$2] got [$3]"; fi; }
# contains NAME NEEDLE HAYSTACK
contains() { case "$3" in *"$2"*) ok "$1" ;; *) ko "$1" "[$2] not in [$3]" ;; esac; }

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_pod OUTFILE ARGS...: starts mockpod, waits for its listening lines, sets $pod_pid
start_pod() {
    local out=$1 n i
    shift
    "$MOCKPOD" "$@" >"$out" 2>"$out.err" &
    pod_pid=$!
    pids+=("$pod_pid")
    n=$(printf '%s\n' "$@" | grep -c -- '-listen')
    for i in $(seq 100); do
        [ "$(grep -c 'listening on' "$out")" -ge "$n" ] && return 0
        sleep 0.05
    done
    echo "mockpod did not start: $(cat "$out" "$out.err")"
    exit 1
}

[ -x "$MOCKPOD" ] || { echo "no mockpod binary at $MOCKPOD"; exit 1; }
port=$(free_port)
U=http://127.0.0.1:$port
start_pod "$tmp/out" --listen "127.0.0.1:$port" --listen "[::1]:$port" --name sp1 \
    --threads 2 --request-log "$tmp/req.log" --pidfile "$tmp/pid" --quiet
pid=$pod_pid
check "listening line" "mockpod sp1 listening on 127.0.0.1:$port" "$(head -1 "$tmp/out")"
check "pidfile" "$pid" "$(cat "$tmp/pid")"
timeout 5 "$MOCKPOD" --listen "127.0.0.1:$port" --name dup --threads 2 >/dev/null 2>&1
check "port in use refused" "1" "$?"

# --- session and plain endpoints ---------------------------------------------------------
h=$(curl -s -D - -o "$tmp/body" "$U/session")
sid=$(printf '%s' "$h" | tr -d '\r' | sed -n 's/^X-Voice-Session-Id: //p')
contains "session status" "HTTP/1.1 200" "$h"
contains "session X-Pod" "X-Pod: sp1" "$h"
check "session body" "{\"session_id\":\"$sid\",\"pod\":\"sp1\"}" "$(cat "$tmp/body")"
[[ $sid =~ ^sp1-[0-9]+-[0-9a-f]{8}$ ]] && ok "session id format" || ko "session id format" "$sid"
check "sdp" '{"pod":"sp1","path":"/sdp","session":"abc"}' \
    "$(curl -s -H 'X-Voice-Session-Id: abc' "$U/sdp?x=1")"
check "tools" '{"pod":"sp1","path":"/tools/a/b","session":""}' "$(curl -s "$U/tools/a/b?q")"
check "ipv6" '{"pod":"sp1","path":"/webhook/x","session":""}' \
    "$(curl -s "http://[::1]:$port/webhook/x")"
check "status=404" "404" "$(curl -s -o /dev/null -w '%{http_code}' "$U/x?status=404")"
check "status=204 no body" "204 0" "$(curl -s -o "$tmp/b" -w '%{http_code} %{size_download}' "$U/x?status=204")"
contains "header=" "X-Test: a b:c" "$(curl -s -D - -o /dev/null "$U/x?header=X-Test%3A+a%20b%3Ac&header=X-Two:2")"
contains "header= twice" "X-Two: 2" "$(curl -s -D - -o /dev/null "$U/x?header=X-Test%3A+a%20b%3Ac&header=X-Two:2")"

# --- health ------------------------------------------------------------------------------
hc() { curl -s -w ' %{http_code}' "$U/health"; }
check "health ok" "ok 200" "$(hc)"
kill -USR1 "$pid"; sleep 0.1
check "health SIGUSR1" "fail 503" "$(hc)"
kill -USR2 "$pid"; sleep 0.1
check "health SIGUSR2" "ok 200" "$(hc)"
curl -s -o /dev/null "$U/control/health/fail"
check "health control fail" "fail 503" "$(hc)"
check "control ok" "ok" "$(curl -s "$U/control/health/ok")"
check "health control ok" "ok 200" "$(hc)"
curl -s -o /dev/null "$U/control/health/draining"
check "health draining" "draining 200" "$(hc)"
curl -s -o /dev/null "$U/control/health/flap?period=150"
seen=""
for i in $(seq 20); do seen="$seen $(hc)"; sleep 0.05; done
contains "flap fail" "fail 503" "$seen"
contains "flap ok" "ok 200" "$seen"
curl -s -o /dev/null "$U/control/health/ok"
seen=""
for i in $(seq 8); do seen="$seen$(hc)"; sleep 0.05; done
check "flap stopped" "$(printf 'ok 200%.0s' $(seq 8))" "$seen"

# --- generated bodies --------------------------------------------------------------------
# pat N: md5 of the first N bytes of the a..z pattern
pat() {
    $PY -c "import sys; n=int(sys.argv[1]); sys.stdout.write(('abcdefghijklmnopqrstuvwxyz'*(n//26+1))[:n])" \
        "$1" | md5sum | cut -d' ' -f1
}
check "bytes=100000" "$(pat 100000)" "$(curl -s "$U/x?bytes=100000" | md5sum | cut -d' ' -f1)"
h=$(curl -s -D - -o "$tmp/b" "$U/x?bytes=70000&chunked=1")
contains "chunked header" "Transfer-Encoding: chunked" "$h"
check "chunked body" "$(pat 70000)" "$(md5sum <"$tmp/b" | cut -d' ' -f1)"
h=$(curl -s -D - -o "$tmp/b" "$U/x?bytes=50000&close=1")
contains "close header" "Connection: close" "$h"
case "$h" in *Content-Length*) ko "close has no length" ;; *) ok "close has no length" ;; esac
check "close body" "$(pat 50000)" "$(md5sum <"$tmp/b" | cut -d' ' -f1)"
h=$(curl -s -I "$U/x?bytes=1234")
contains "HEAD length" "Content-Length: 1234" "$h"
check "bytes=1GiB streamed" "1073741824" "$(curl -s "$U/x?bytes=1073741824" | wc -c)"
rss=$(ps -o rss= -p "$pid" | tr -d ' ')
[ "$rss" -lt 50000 ] && ok "bounded memory (rss ${rss} KiB)" || ko "bounded memory" "rss $rss KiB"

# --- request bodies ----------------------------------------------------------------------
check "upload 100MB chunked" '{"pod":"sp1","bytes":100000000}' \
    "$(head -c 100000000 /dev/zero | curl -s -T - -X POST "$U/upload")"
truncate -s 100000000 "$tmp/big"
check "upload 100MB length+expect" '{"pod":"sp1","bytes":100000000}' \
    "$(curl -s --data-binary @"$tmp/big" "$U/upload")"
head -c 3000000 /dev/urandom >"$tmp/rnd"
sum=$(md5sum <"$tmp/rnd" | cut -d' ' -f1)
check "echo/body length" "$sum" "$(curl -s --data-binary @"$tmp/rnd" "$U/echo/body" | md5sum | cut -d' ' -f1)"
check "echo/body chunked" "$sum" "$(curl -s -T - -X POST "$U/echo/body" <"$tmp/rnd" | md5sum | cut -d' ' -f1)"
t0=$(date +%s%N)
curl -s -o /dev/null "$U/sdp?delay=300"
dt=$((($(date +%s%N) - t0) / 1000000))
[ "$dt" -ge 300 ] && [ "$dt" -lt 1500 ] && ok "delay=300 (${dt} ms)" || ko "delay=300" "$dt ms"

# --- raw socket, WebSocket and log checks in Python --------------------------------------
$PY - "$port" "$tmp/req.log" <<'PYEOF'
import asyncio, json, os, resource, socket, struct, sys, time
port, logpath = int(sys.argv[1]), sys.argv[2]
npass = nfail = 0
def check(name, cond, detail=""):
    global npass, nfail
    if cond:
        npass += 1; print("ok  ", name)
    else:
        nfail += 1; print("FAIL", name, detail)

def conn():
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(3); return s

def read_resp(f):
    """Reads one response from file object f: (status, headers dict, body bytes)."""
    line = f.readline()
    if not line:
        return None, {}, b""
    status = int(line.split()[1])
    hdrs = {}
    while True:
        l = f.readline().rstrip(b"\r\n")
        if not l:
            break
        k, v = l.split(b":", 1)
        hdrs[k.decode().lower()] = v.strip().decode()
    if status in (100, 101, 204, 304):
        return status, hdrs, b""
    if "content-length" in hdrs:
        return status, hdrs, f.read(int(hdrs["content-length"]))
    if hdrs.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            n = int(f.readline().strip(), 16)
            if n == 0:
                f.readline(); break
            body += f.read(n); f.readline()
        return status, hdrs, body
    return status, hdrs, f.read()

def stats():
    s = conn(); s.sendall(b"GET /control/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    st, h, b = read_resp(s.makefile("rb")); s.close(); return json.loads(b)

# pipelining: three requests in one write, answered in order
s = conn(); f = s.makefile("rb")
s.sendall(b"GET /sdp HTTP/1.1\r\nHost: x\r\n\r\n"
          b"POST /echo?p=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Q: \"q\"\r\n\r\nhello"
          b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"5\r\nabcde\r\n3;x=y\r\nfgh\r\n0\r\nT: 1\r\n\r\n"
          b"GET /x?bytes=10 HTTP/1.1\r\nHost: x\r\n\r\n")
r1, r2, r3, r4 = read_resp(f), read_resp(f), read_resp(f), read_resp(f)
check("pipeline 1", json.loads(r1[2])["path"] == "/sdp")
e = json.loads(r2[2])
check("pipeline 2 echo", e["path"] == "/echo?p=2" and e["body_bytes"] == 5 and ["X-Q", '"q"'] in e["headers"], e)
check("pipeline 3 chunked upload", json.loads(r3[2])["bytes"] == 8, r3)
check("pipeline 4 bytes", r4[2] == b"abcdefghij", r4)
# trickled request, one byte at a time
for ch in b"GET /trickle HTTP/1.1\r\nHost: x\r\n\r\n":
    s.send(bytes([ch]))
check("trickled head", json.loads(read_resp(f)[2])["path"] == "/trickle")
s.close()

# HTTP/1.0: closes by default, keep-alive on request
s = conn(); f = s.makefile("rb")
s.sendall(b"GET /a HTTP/1.0\r\n\r\n")
st, h, b = read_resp(f)
check("http/1.0 close", st == 200 and h.get("connection") == "close" and f.read() == b"", h)
s = conn(); f = s.makefile("rb")
s.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
st, h, b = read_resp(f)
s.sendall(b"GET /x?bytes=3&chunked=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
st2, h2, b2 = read_resp(f)
check("http/1.0 keep-alive", h.get("connection") == "keep-alive" and b2 == b"abc"
      and "transfer-encoding" not in h2, (h, h2))
s.close()

# Expect: 100-continue
s = conn(); f = s.makefile("rb")
s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
check("100 continue", f.readline() == b"HTTP/1.1 100 Continue\r\n" and f.readline() == b"\r\n")
s.sendall(b"abcd")
check("after continue", json.loads(read_resp(f)[2])["bytes"] == 4)
s.sendall(b"POST /upload?continue=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
s.settimeout(0.3)
try:
    got = s.recv(100)
except socket.timeout:
    got = b""
check("continue=0", got == b"", got)
s.settimeout(3); s.sendall(b"wxyz")
check("continue=0 answer", json.loads(read_resp(f)[2])["bytes"] == 4)
s.close()

# hang, reset, reset_after, garbage, early
s = conn(); s.sendall(b"GET /x?hang=1 HTTP/1.1\r\nHost: x\r\n\r\n"); s.settimeout(0.4)
try:
    got = s.recv(100)
except socket.timeout:
    got = None
check("hang", got is None, got)
s.close()
s = conn(); s.sendall(b"GET /x?reset=1 HTTP/1.1\r\nHost: x\r\n\r\n")
try:
    got = s.recv(100); check("reset", False, got)
except ConnectionResetError:
    check("reset", True)
s = conn(); s.sendall(b"GET /x?reset_after=1000&bytes=5000 HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    reset = False
except ConnectionResetError:
    reset = True
head, _, body = data.partition(b"\r\n\r\n")
check("reset_after", reset and b"Content-Length: 5000" in head and len(body) == 1000, (reset, head, len(body)))
s = conn(); s.sendall(b"GET /x?garbage=1 HTTP/1.1\r\nHost: x\r\n\r\n")
got = s.makefile("rb").read()
check("garbage", got.startswith(b"\x00\x01garbage"), got)
s = conn(); f = s.makefile("rb")
s.sendall(b"POST /upload?early=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 1000)
st, h, b = read_resp(f)
check("early", st == 200 and h.get("connection") == "close" and json.loads(b)["bytes"] == 0, (st, h, b))
s.close()

# malformed requests get 400 (or 431) and a close; random bytes never kill the pod
for bad in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"GET / HTTP/1.1\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"GET / HTTP/1.1\r\nA: \x00\r\n\r\n"):
    s = conn(); s.sendall(bad)
    st, h, b = read_resp(s.makefile("rb"))
    check("400 for %r" % bad[:30], st == 400 and h.get("connection") == "close", st)
s = conn(); f = s.makefile("rb")
s.sendall(b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
check("400 for bad chunk", read_resp(f)[0] == 400)
s = conn(); s.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 40000 + b"\r\n\r\n")
check("431 for huge head", read_resp(s.makefile("rb"))[0] == 431)
s = conn(); s.sendall(b"GET / HTTP/2.0\r\n\r\n")
check("505 for HTTP/2.0", read_resp(s.makefile("rb"))[0] == 505)
rnd = os.urandom(200000)
for i in range(0, 200000, 2000):
    try:
        s = conn(); s.sendall(rnd[i:i + 2000]); s.close()
    except OSError:
        pass
check("alive after random bytes", stats()["pod"] == "sp1")

# WebSocket with the websockets library (asyncio client: python3-websockets 10.x)
import websockets, websockets.client
async def ws_test():
    async with websockets.client.connect("ws://127.0.0.1:%d/ws" % port, max_size=None) as ws:
        await ws.send("hello")
        check("ws text", await ws.recv() == "hello")
        big = os.urandom(3 * 1024 * 1024)
        await ws.send(big)
        check("ws binary 3 MiB", await ws.recv() == big)
        await asyncio.wait_for(await ws.ping(b"pp"), 2)
        check("ws ping/pong", True)
        check("ws counted", stats()["websockets_open"] == 1)
    await asyncio.sleep(0.2)
    check("ws closed", stats()["websockets_open"] == 0)
    try:
        async with websockets.client.connect("ws://127.0.0.1:%d/ws?ws_refuse=1" % port):
            check("ws_refuse", False)
    except websockets.exceptions.InvalidStatusCode as e:
        check("ws_refuse 403", e.status_code == 403)
asyncio.run(ws_test())

# raw WebSocket: unmasked and masked frames, 16/64-bit lengths, fragments, close echo
def frame(op, payload, fin=True, mask=b"\x01\x02\x03\x04"):
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126: h = struct.pack("!BB", b0, mbit | n)
    elif n < 65536: h = struct.pack("!BBH", b0, mbit | 126, n)
    else: h = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload)) if n < 100000 else \
            (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        h += mask
    return h + payload
def read_frame(f):
    b0, b1 = f.read(2)
    n = b1 & 0x7f
    if n == 126: n = struct.unpack("!H", f.read(2))[0]
    elif n == 127: n = struct.unpack("!Q", f.read(8))[0]
    return b0 & 0x80 != 0, b0 & 0x0f, b1 & 0x80 != 0, f.read(n)
s = conn(); f = s.makefile("rb")
s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
          + frame(1, b"early"))
st, h, b = read_resp(f)
check("ws 101 accept", st == 101 and h.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
      and h.get("x-pod") == "sp1", h)
check("ws frame sent with upgrade", read_frame(f) == (True, 1, False, b"early"))
p300, p70k = os.urandom(300), os.urandom(70000)
s.sendall(frame(2, p300, mask=None) + frame(2, p70k) + frame(1, b"frag", fin=False)
          + frame(0, b"ment") + frame(9, b"png"))
check("ws 16-bit unmasked", read_frame(f) == (True, 2, False, p300))
check("ws 64-bit masked", read_frame(f) == (True, 2, False, p70k))
check("ws fragment 1", read_frame(f) == (False, 1, False, b"frag"))
check("ws continuation", read_frame(f) == (True, 0, False, b"ment"))
check("ws ping -> pong", read_frame(f) == (True, 10, False, b"png"))
s.sendall(frame(8, b"\x03\xe8bye"))
check("ws close echoed", read_frame(f) == (True, 8, False, b"\x03\xe8bye"))
check("ws closed after close", f.read() == b"")
s = conn(); f = s.makefile("rb")
s.sendall(b"GET /ws?ws_refuse=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
st, h, b = read_resp(f)
st2, h2, b2 = read_resp(f)
check("ws_refuse keeps http", st == 403 and st2 == 200 and json.loads(b2)["path"] == "/after", (st, st2))
s.close()

# many idle connections
want = 5000
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
base = stats()["connections_open"]
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(want)]
time.sleep(0.3)
n = stats()["connections_open"] - base
check("%d idle connections" % want, n >= want, n)
for c in idle:
    c.close()
time.sleep(0.3)
st = stats()
check("idle connections closed", st["connections_open"] <= base + 1, st)
check("stats fields", st["requests"] > 20 and st["connections_accepted"] > want, st)

# request log
lines = [json.loads(l) for l in open(logpath)]
check("request log lines", len(lines) > 20, len(lines))
ec = [l for l in lines if l["path"] == "/echo?p=2"]
check("request log echo", ec and ec[0]["body_bytes"] == 5 and ec[0]["method"] == "POST"
      and ec[0]["version"] == "HTTP/1.1", ec)
check("request log upload", any(l["path"] == "/upload" and l["body_bytes"] == 100000000 for l in lines))
check("request log ws", any(l["path"] == "/ws" for l in lines))
print("python: %d passed, %d failed" % (npass, nfail))
sys.exit(1 if nfail else 0)
PYEOF
pyrc=$?
[ $pyrc -eq 0 ] && ok "python checks" || ko "python checks"

# --- options: session header, TLS --------------------------------------------------------
p2=$(free_port)
start_pod "$tmp/out2" --listen "127.0.0.1:$p2" --name sp2 --session-header X-Sid --health-fail
contains "--session-header" "X-Sid: sp2-1-" "$(curl -s -D - -o /dev/null "http://127.0.0.1:$p2/session")"
check "--health-fail" "503" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p2/health")"
kill "$pod_pid"
p3=$(free_port)
start_pod "$tmp/out3" --listen "127.0.0.1:$p3" --name sp3 --no-session-header
h=$(curl -s -D - -o /dev/null "http://127.0.0.1:$p3/session")
case "$h" in *Session-Id*) ko "--no-session-header" ;; *) ok "--no-session-header" ;; esac
kill "$pod_pid"
if command -v openssl >/dev/null; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
        -days 1 -subj /CN=localhost >/dev/null 2>&1
    p4=$(free_port)
    p5=$(free_port)
    start_pod "$tmp/out4" --listen "127.0.0.1:$p4" --tls-listen "127.0.0.1:$p5" --name sp4 \
        --cert "$tmp/cert.pem" --key "$tmp/key.pem" --threads 2
    T=https://127.0.0.1:$p5
    check "tls sdp" '{"pod":"sp4","path":"/sdp","session":""}' "$(curl -sk "$T/sdp")"
    check "tls bytes 5MB" "$(pat 5000000)" "$(curl -sk "$T/x?bytes=5000000" | md5sum | cut -d' ' -f1)"
    check "tls echo/body" "$sum" "$(curl -sk --data-binary @"$tmp/rnd" "$T/echo/body" | md5sum | cut -d' ' -f1)"
    check "tls close-delimited" "$(pat 100000)" "$(curl -sk "$T/x?bytes=100000&close=1" | md5sum | cut -d' ' -f1)"
    check "tls keep-alive" "200:1 200:0 200:0 " \
        "$(curl -sk -o /dev/null -o /dev/null -o /dev/null -w '%{http_code}:%{num_connects} ' "$T/a" "$T/b" "$T/c")"
    kill "$pod_pid"
fi

# --- SIGTERM: prompt exit 0 --------------------------------------------------------------
t0=$(date +%s%N)
kill -TERM "$pid"
wait "$pid"
rc=$?
dt=$((($(date +%s%N) - t0) / 1000000))
check "SIGTERM exit status" "0" "$rc"
[ "$dt" -lt 1000 ] && ok "SIGTERM prompt (${dt} ms)" || ko "SIGTERM prompt" "$dt ms"
[ ! -e "$tmp/pid" ] && ok "pidfile removed" || ko "pidfile removed"

echo "selftest: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
