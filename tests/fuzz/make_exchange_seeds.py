#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of the whole-path fuzzer (tests/fuzz/corpus/exchange).

The input format is described at the top of tests/fuzz/fuzz_exchange.c: a header
(flags, client address byte), then steps "\\xfe\\xfd" OP DATA. The seeds are the
ordinary shapes of the issue-12 defect cases (a WebSocket upgrade with a request
id, pipelined requests tether answers itself with big buffers, a slow client
pipelining behind a download), the affinity, learning, rate-limit and PROXY
protocol paths, and every payload of the smuggling suite
(tests/integration/test_smuggling.py) followed by pod answers. None of them
crashes on a correct tether; the crashing variants the fuzzer found are kept
apart in tests/fuzz/regress/exchange/.
Usage: tests/fuzz/make_exchange_seeds.py [OUTDIR]"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import test_smuggling  # noqa: E402  (the payloads only; nothing runs on import)

SEP = b"\xfe\xfd"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def inp(flags, *steps, addr=1):
    return bytes([flags, addr]) + b"".join(SEP + s for s in steps)


def rep(op, times, data):
    return op + bytes([(times - 1) >> 8, (times - 1) & 255]) + data


def get(path, *fields, version="1.1"):
    return ("GET %s HTTP/%s\r\nHost: a\r\n" % (path, version)
            + "".join(f + "\r\n" for f in fields) + "\r\n").encode()


WS_REQ = get("/ws/room", "Connection: Upgrade", "Upgrade: websocket",
             "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "X-Request-Id: 7d1c2a90b4e34f0e9a51c3d2e8f6a7b1")
WS_101 = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
          b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")

SEEDS = {
    "get_ok": inp(0, b"C" + get("/ok"), b"P" + OK),
    "get_ok_split": inp(0, b"C" + get("/ok")[:9], b"C" + get("/ok")[9:], b"P" + OK[:20],
                        b"P" + OK[20:]),
    "pipelined_404": inp(0, b"C" + get("/missing") * 3),
    "pipelined_mixed": inp(0, b"C" + get("/ok") + get("/missing") + get("/ok", "Connection: close"),
                           b"P" + OK, b"P" + OK),
    "request_ids": inp(0, b"C" + get("/ok", "X-Request-Id: abc-1") + get("/nope", "X-Request-Id: abc-2")
                       + get("/ok", "X-Request-Id: abc-3"), b"P" + OK, b"P" + OK),
    # Defect 1's shape: an upgrade with a request id, frames both ways.
    "ws_upgrade": inp(0, b"C" + WS_REQ, b"P" + WS_101, b"C\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
                      b"P\x81\x05hello", b"S", b"Q"),
    "ws_refused": inp(0, b"C" + WS_REQ, b"PHTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
                      b"C" + get("/ok"), b"P" + OK),
    # Defect 2's shape: big buffers, a client pipelining requests tether answers.
    "bulk_404_big": inp(0x03, rep(b"X", 64, get("/x"))),
    "bulk_404_big_2000": inp(0x03, rep(b"X", 2000, get("/x"))),
    "bulk_429_big": inp(0x03, b"C" + get("/rl/a"), b"P" + OK, rep(b"X", 64, get("/rl/a"))),
    # Defect 3's shape: a slow client behind a download, small socket buffers.
    "slow_client_download": inp(0x18, b"C" + get("/ok"), rep(b"X", 60, get("/missing")),
                                b"PHTTP/1.1 200 OK\r\nContent-Length: 6000\r\n\r\n",
                                rep(b"Y", 60, b"x" * 100)),
    "slow_pod_upload": inp(0x60, b"CPOST /t/up HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n\r\n",
                           rep(b"X", 200, b"y" * 100), b"T", b"P" + OK),
    "rate_limited": inp(0, b"C" + get("/rl/a"), b"P" + OK, b"C" + get("/rl/a") * 6, b"P" + OK,
                        b"P" + OK, b"P" + OK),
    "proxy_v1": inp(0x04, b"CPROXY TCP4 198.51.100.7 203.0.113.9 5000 80\r\n" + get("/ok"),
                    b"P" + OK),
    "proxy_v1_then_request": inp(0x04, b"CPROXY TCP4 198.51.100.7 203.0.113.9 5000 80\r\n",
                                 b"C" + get("/session"), b"P" + OK),
    "proxy_v2": inp(0x04, b"C\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc6\x33\x64\x07\xcb\x00\x71\x09"
                    b"\x13\x88\x00\x50" + get("/ok"), b"P" + OK),
    "learn_session": inp(0, b"C" + get("/session"),
                         b"PHTTP/1.1 200 OK\r\nX-Voice-Session-Id: sess-42\r\nContent-Length: 2\r\n\r\nok",
                         b"C" + get("/webhook/sess-42/event", "X-Voice-Session-Id: sess-42"),
                         b"P" + OK, b"C" + get("/webhook/sess-42/x"), b"P" + OK),
    "learn_cookie": inp(0, b"C" + get("/session"),
                        b"PHTTP/1.1 200 OK\r\nSet-Cookie: app_session=s77; Path=/\r\nContent-Length: 2"
                        b"\r\n\r\nok", b"C" + get("/tools/a", "Cookie: app_session=s77"), b"P" + OK),
    "affinity_cookie": inp(0, b"C" + get("/tools/x", "Cookie: VOICE_AFFINITY=1-AAAAAAAAAAAAAAAAAAAAAAAAA"
                                         "AAAAAAAAAAAAAAAAAAAAAAAAA; other=1"), b"P" + OK),
    "hash_header": inp(0, b"C" + get("/h/a", "X-Voice-Session-Id: abc"), b"P" + OK,
                       b"C" + get("/h/b", "X-Voice-Session-Id: abd"), b"P" + OK),
    "chunked_both": inp(0, b"CPOST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n0\r\n\r\n",
                        b"PHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                        b"C" + get("/ok"), b"P" + OK),
    "expect_continue": inp(0, b"CPOST /t HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                           b"Content-Length: 5\r\n\r\n", b"PHTTP/1.1 100 Continue\r\n\r\n",
                           b"Chello", b"P" + OK),
    "head_and_204": inp(0, b"CHEAD /ok HTTP/1.1\r\nHost: a\r\n\r\n" + get("/t/n"),
                        b"PHTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
                        b"PHTTP/1.1 204 No Content\r\n\r\n"),
    "http10": inp(0, b"C" + get("/ok", version="1.0"),
                  b"PHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    "body_until_close": inp(0, b"C" + get("/ok"), b"PHTTP/1.1 200 OK\r\n\r\nstream", b"Q"),
    "pod_reset_retry": inp(0, b"C" + get("/ok"), b"Q", b"P" + OK),
    "pod_refused": inp(0, b"N", b"C" + get("/ok"), b"P" + OK, b"N", b"N", b"C" + get("/ok")),
    "pod_dead": inp(0, b"D", b"C" + get("/ok"), b"P" + OK),
    "pod_502_retry": inp(0, b"C" + get("/ok"), b"PHTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
                         b"P" + OK),
    "pooled_reuse": inp(0, b"C" + get("/ok"), b"P" + OK, b"C" + get("/ok"), b"P" + OK, b"H",
                        b"C" + get("/ok"), b"P" + OK),
    "client_halfclose": inp(0, b"C" + get("/ok") + get("/ok"), b"S", b"P" + OK, b"P" + OK),
    "bad_response": inp(0, b"C" + get("/ok"), b"PHTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\nok"),
    "ipv6_client": inp(0x80, b"C" + get("/rl/v6"), b"P" + OK),
}

for name, data, _outcome in test_smuggling.CASES:
    SEEDS["smuggling_" + name] = inp(0, b"C" + data + test_smuggling.CANARY, b"P" + OK, b"P" + OK)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus", "exchange")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(SEEDS), out))


if __name__ == "__main__":
    main()
