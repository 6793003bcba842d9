# SPDX-License-Identifier: MIT
"""Request smuggling and desync: crafted raw requests (CL.TE, TE.CL, Transfer-Encoding
obfuscations, bad Content-Length, bad chunks, bare CR/LF, obs-fold, NUL/CTL, space
before the colon, request-line and target forms, Host conflicts, HTTP/1.0 with chunked,
bytes after Connection: close, refused or bogus upgrades followed by a smuggled request).

Every case ends with a pipelined canary request. Each asserts the exact outcome:
  Reject(status): one reply with that status and "Connection: close", the connection
      closed by tether, and nothing (not even the canary) reaching the pod;
  Forward(...): exactly the listed requests reach the pod, normalised (one Host, never
      both Content-Length and Transfer-Encoding, no hop-by-hop fields, tether's
      X-Forwarded-For / X-Request-Id), with the expected bodies, followed by the canary
      when the connection stays open; tether's reply count and statuses are exact.
The pod's request log is cut per case with a sentinel request on a fresh connection."""
import socket
import time

import harness as h


CONF = """
workers 1;
error_log {dir}/error.log info;
access_log {access_log} json;
upstream voice {
    server pod-a {a};
    connect_timeout 1s;
    retries 0;
}
server {
    listen 127.0.0.1:{port};
    client_header_timeout 1500ms;
    client_body_timeout 1500ms;
    keepalive_timeout 3s;
    max_header_size 8k;
    max_headers 50;
    client_max_body_size 64k;
    route /t { upstream voice; }
    route /ws { upstream voice; }
    route = /sentinel { upstream voice; }
}
"""

HOP = {"connection", "keep-alive", "proxy-connection", "te", "upgrade", "proxy-authorization",
       "trailer"}


class Reject:
    def __init__(self, status):
        self.status = status


class Forward:
    """<reqs>: what the pod must see, in order: (method, path, body_bytes) tuples;
    <statuses>: tether's replies in order (default: 200 per request, plus the canary's);
    <canary>: whether the pipelined canary is answered (the connection stays open);
    <check>: an extra predicate on the list of logged requests."""

    def __init__(self, reqs, statuses=None, canary=True, check=None):
        self.reqs = reqs
        self.statuses = statuses
        self.canary = canary
        self.check = check


def hdrs(r, name):
    return [v for k, v in r["headers"] if k.lower() == name.lower()]


def host_is(value):
    return lambda reqs: hdrs(reqs[0], "Host") == [value]


def no_header(name):
    return lambda reqs: all(not hdrs(r, name) for r in reqs)


def P(method, path, body=0):
    return (method, path, body)


def head(first, *fields):
    return (first + "\r\n" + "".join(f + "\r\n" for f in fields) + "\r\n").encode("latin1")


GET_OK = P("GET", "/t")
CHUNKED_HELLO = b"5\r\nhello\r\n0\r\n\r\n"
SMUGGLED = b"GET /t/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
WS = ("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")

# (name, bytes, expected outcome). Paths are /t (routed), /t/smuggled (must never be
# seen as a request of its own unless a case says so) and /secret (no route: 404).
CASES = [
    # ---- CL.TE and TE.CL ----
    ("cl_te", head("POST /t HTTP/1.1", "Host: x", "Content-Length: 6",
                   "Transfer-Encoding: chunked") + b"0\r\n\r\nG", Reject(400)),
    ("te_cl", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked",
                   "Content-Length: 4") + b"5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n", Reject(400)),
    ("cl0_te_smuggle", head("POST /t HTTP/1.1", "Host: x", "Content-Length: 0",
                            "Transfer-Encoding: chunked") + b"27\r\n" + SMUGGLED + b"\r\n0\r\n\r\n",
     Reject(400)),
    ("te_cl_lowercase", head("POST /t HTTP/1.1", "host: x", "transfer-encoding: chunked",
                             "content-length: 3") + CHUNKED_HELLO, Reject(400)),
    ("cl_in_trailer_te", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5\r\nhello\r\n0\r\nContent-Length: 40\r\n\r\n", Forward([P("POST", "/t", 5)])),
    # ---- Transfer-Encoding obfuscations ----
    ("te_xchunked", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: xchunked")
     + CHUNKED_HELLO, Reject(501)),
    ("te_chunked_suffix", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunkedx")
     + CHUNKED_HELLO, Reject(501)),
    ("te_space_before_colon", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding : chunked")
     + CHUNKED_HELLO, Reject(400)),
    ("te_tab_ows", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding:\tchunked")
     + CHUNKED_HELLO, Forward([P("POST", "/t", 5)])),
    ("te_trailing_ows", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked \t")
     + CHUNKED_HELLO, Forward([P("POST", "/t", 5)])),
    ("te_mixed_case", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: ChUnKeD")
     + CHUNKED_HELLO, Forward([P("POST", "/t", 5)])),
    ("te_chunked_then_identity", head("POST /t HTTP/1.1", "Host: x",
                                      "Transfer-Encoding: chunked, identity") + CHUNKED_HELLO,
     Reject(501)),  # an unknown coding (RFC 9112 6.1); 400 would do as well
    ("te_chunked_twice_list", head("POST /t HTTP/1.1", "Host: x",
                                   "Transfer-Encoding: chunked, chunked") + CHUNKED_HELLO,
     Reject(400)),
    ("te_chunked_two_fields", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked",
                                   "Transfer-Encoding: chunked") + CHUNKED_HELLO, Reject(400)),
    ("te_identity", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: identity")
     + CHUNKED_HELLO, Reject(501)),
    ("te_empty", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding:") + CHUNKED_HELLO,
     Reject(400)),
    ("te_comma_only", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: ,")
     + CHUNKED_HELLO, Reject(400)),
    ("te_obs_fold", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding:", " chunked")
     + CHUNKED_HELLO, Reject(400)),
    ("te_vtab", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: \x0bchunked")
     + CHUNKED_HELLO, Reject(400)),
    ("te_nul_in_name", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding\x00: chunked")
     + CHUNKED_HELLO, Reject(400)),
    ("te_quoted", head("POST /t HTTP/1.1", "Host: x", 'Transfer-Encoding: "chunked"')
     + CHUNKED_HELLO, Reject(400)),  # not a token
    ("te_leading_space_name", head("POST /t HTTP/1.1", "Host: x", " Transfer-Encoding: chunked")
     + CHUNKED_HELLO, Reject(400)),
    # An underscore spelling is another field: no body, so the chunk bytes that follow
    # are a malformed next request (400), never a body.
    ("te_underscore_name", head("POST /t HTTP/1.1", "Host: x", "Transfer_Encoding: chunked")
     + CHUNKED_HELLO, Forward([P("POST", "/t", 0)], statuses=[200, 400], canary=False)),
    ("te_in_connection", head("POST /t HTTP/1.1", "Host: x", "Connection: Transfer-Encoding",
                              "Transfer-Encoding: chunked") + CHUNKED_HELLO,
     Forward([P("POST", "/t", 5)], check=lambda rs: hdrs(rs[0], "Transfer-Encoding") == ["chunked"])),
    # ---- Content-Length ----
    ("cl_differing", head("POST /t HTTP/1.1", "Host: x", "Content-Length: 5",
                          "content-length: 50") + b"hello", Reject(400)),
    ("cl_list_differing", head("POST /t HTTP/1.1", "Host: x", "Content-Length: 5, 6")
     + b"hello!", Reject(400)),
    ("cl_plus", head("POST /t HTTP/1.1", "Host: x", "Content-Length: +5") + b"hello", Reject(400)),
    ("cl_minus", head("POST /t HTTP/1.1", "Host: x", "Content-Length: -1") + b"hello", Reject(400)),
    ("cl_hex", head("POST /t HTTP/1.1", "Host: x", "Content-Length: 0x5") + b"hello", Reject(400)),
    ("cl_suffix", head("POST /t HTTP/1.1", "Host: x", "Content-Length: 5a") + b"hello", Reject(400)),
    ("cl_exponent", head("POST /t HTTP/1.1", "Host: x", "Content-Length: 1e1") + b"hello",
     Reject(400)),
    ("cl_empty", head("POST /t HTTP/1.1", "Host: x", "Content-Length:") + b"hello", Reject(400)),
    ("cl_inner_space", head("POST /t HTTP/1.1", "Host: x", "Content-Length: 1 0") + b"hello",
     Reject(400)),
    ("cl_overflow", head("POST /t HTTP/1.1", "Host: x",
                         "Content-Length: 184467440737095516160") + b"hello", Reject(400)),
    ("cl_space_before_colon", head("POST /t HTTP/1.1", "Host: x", "Content-Length : 5")
     + b"hello", Reject(400)),
    ("cl_obs_fold", head("POST /t HTTP/1.1", "Host: x", "Content-Length:", " 5") + b"hello",
     Reject(400)),
    ("cl_leading_zeros", head("POST /t HTTP/1.1", "Host: x", "Content-Length: 005") + b"hello",
     Forward([P("POST", "/t", 5)])),
    ("cl_ows", head("POST /t HTTP/1.1", "Host: x", "Content-Length: \t5 ") + b"hello",
     Forward([P("POST", "/t", 5)])),
    ("cl_identical_twice", head("POST /t HTTP/1.1", "Host: x", "Content-Length: 5",
                                "Content-Length: 5") + b"hello",
     Forward([P("POST", "/t", 5)], check=lambda rs: hdrs(rs[0], "Content-Length") == ["5"])),
    ("cl_body_is_request", head("POST /t HTTP/1.1", "Host: x", "Content-Length: %d" % len(SMUGGLED))
     + SMUGGLED, Forward([P("POST", "/t", len(SMUGGLED))])),
    ("get_with_cl_body", head("GET /t HTTP/1.1", "Host: x", "Content-Length: 5") + b"GET /",
     Forward([P("GET", "/t", 5)])),
    ("cl_in_connection", head("POST /t HTTP/1.1", "Host: x", "Connection: Content-Length",
                              "Content-Length: 5") + b"hello",
     Forward([P("POST", "/t", 5)], check=lambda rs: hdrs(rs[0], "Content-Length") == ["5"])),
    # ---- chunk sizes and extensions ----
    ("chunk_size_0x", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"0x5\r\nhello\r\n0\r\n\r\n", Reject(400)),
    ("chunk_size_negative", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"-5\r\nhello\r\n0\r\n\r\n", Reject(400)),
    ("chunk_size_leading_space", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b" 5\r\nhello\r\n0\r\n\r\n", Reject(400)),
    ("chunk_size_trailing_space", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5 \r\nhello\r\n0\r\n\r\n", Reject(400)),
    ("chunk_size_overflow", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"10000000000000005\r\nhello\r\n0\r\n\r\n", Reject(400)),
    ("chunk_size_empty", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"\r\nhello\r\n0\r\n\r\n", Reject(400)),
    ("chunk_size_huge_over_limit", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"fffffffffff\r\nhello", Reject(413)),
    ("chunk_data_too_long", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5\r\nhelloEXTRA\r\n0\r\n\r\n", Reject(400)),
    ("chunk_data_too_short", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5\r\nhel\r\n0\r\n\r\n", Reject(400)),
    ("chunk_bare_lf", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5\nhello\n0\n\n", Reject(400)),
    ("chunk_ext_ok", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n", Forward([P("POST", "/t", 5)])),
    ("chunk_ext_bare_lf", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5;a\nb\r\nhello\r\n0\r\n\r\n", Reject(400)),
    ("chunk_ext_bare_cr", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5;a\rb\r\nhello\r\n0\r\n\r\n", Reject(400)),
    ("chunk_ext_unterminated_quote", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5;a=\"b\r\nhello\r\n0\r\n\r\n", Reject(400)),
    ("chunk_ext_nul", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5;a=\x00\r\nhello\r\n0\r\n\r\n", Reject(400)),
    ("chunk_no_final_crlf", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5\r\nhello\r\n0\r\n", Reject(400)),  # the canary becomes a bad trailer line
    ("chunk_trailer_obs_fold", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n", Reject(400)),
    ("chunk_body_is_request", head("POST /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")
     + b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n",
     Forward([P("POST", "/t", len(SMUGGLED))])),
    # ---- bare CR / LF ----
    ("bare_lf_all", b"GET /t HTTP/1.1\nHost: x\n\n", Reject(400)),
    ("bare_lf_one_field", b"GET /t HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", Reject(400)),
    ("bare_lf_request_line", b"GET /t HTTP/1.1\nHost: x\r\n\r\n", Reject(400)),
    ("bare_cr_value", b"GET /t HTTP/1.1\r\nHost: x\r\nX-A: a\rX-B: b\r\n\r\n", Reject(400)),
    ("bare_cr_target", b"GET /t\rX HTTP/1.1\r\nHost: x\r\n\r\n", Reject(400)),
    ("cr_cr_lf", b"GET /t HTTP/1.1\r\r\nHost: x\r\n\r\n", Reject(400)),
    ("lf_cr_end", b"GET /t HTTP/1.1\r\nHost: x\r\n\n\r", Reject(400)),
    # ---- obs-fold ----
    ("obs_fold_space", head("GET /t HTTP/1.1", "Host: x", "X-A: a", " b"), Reject(400)),
    ("obs_fold_tab", head("GET /t HTTP/1.1", "Host: x", "X-A: a", "\tb"), Reject(400)),
    ("ws_before_first_field", head("GET /t HTTP/1.1", " Host: x"), Reject(400)),
    # ---- NUL and CTL ----
    ("nul_in_name", head("GET /t HTTP/1.1", "Host: x", "X-\x00A: b"), Reject(400)),
    ("nul_in_value", head("GET /t HTTP/1.1", "Host: x", "X-A: a\x00b"), Reject(400)),
    ("del_in_value", head("GET /t HTTP/1.1", "Host: x", "X-A: a\x7fb"), Reject(400)),
    ("ctl_in_value", head("GET /t HTTP/1.1", "Host: x", "X-A: a\x01b"), Reject(400)),
    ("ctl_in_target", head("GET /t\x01 HTTP/1.1", "Host: x"), Reject(400)),
    ("nul_in_method", head("G\x00ET /t HTTP/1.1", "Host: x"), Reject(400)),
    ("nul_before_request", b"\x00" + head("GET /t HTTP/1.1", "Host: x"), Reject(400)),
    ("obs_text_value", head("GET /t HTTP/1.1", "Host: x", "X-A: caf\xe9"),
     Forward([GET_OK], check=lambda rs: hdrs(rs[0], "X-A") == ["caf\xe9"] or
             len(hdrs(rs[0], "X-A")) == 1)),
    # ---- space before the colon, bad names ----
    ("space_before_colon", head("GET /t HTTP/1.1", "Host: x", "X-A : b"), Reject(400)),
    ("tab_before_colon", head("GET /t HTTP/1.1", "Host\t: x"), Reject(400)),
    ("empty_field_name", head("GET /t HTTP/1.1", "Host: x", ": b"), Reject(400)),
    ("no_colon", head("GET /t HTTP/1.1", "Host: x", "X-A b"), Reject(400)),
    ("separator_in_name", head("GET /t HTTP/1.1", "Host: x", "X(A): b"), Reject(400)),
    # ---- request line ----
    ("double_space", head("GET  /t HTTP/1.1", "Host: x"), Reject(400)),
    ("trailing_space_version", head("GET /t HTTP/1.1 ", "Host: x"), Reject(400)),
    ("lowercase_version", head("GET /t http/1.1", "Host: x"), Reject(400)),
    ("version_two_digits", head("GET /t HTTP/1.10", "Host: x"), Reject(400)),
    ("http09", b"GET /t\r\n\r\n", Reject(400)),
    ("bad_method_char", head("G@T /t HTTP/1.1", "Host: x"), Reject(400)),
    ("fragment_in_target", head("GET /t#frag HTTP/1.1", "Host: x"), Reject(400)),
    ("space_in_target", head("GET /t /x HTTP/1.1", "Host: x"), Reject(400)),
    # ---- target forms ----
    ("absolute_form", head("GET http://x/t?a=1 HTTP/1.1", "Host: x"),
     Forward([P("GET", "/t?a=1")], check=host_is("x"))),
    # RFC 9112 3.2.2 lets a server use the authority; tether (like HAProxy) refuses.
    ("absolute_form_host_conflict", head("GET http://a.example/t HTTP/1.1", "Host: b.example"),
     Reject(400)),
    ("absolute_form_userinfo", head("GET http://user:pw@x/t HTTP/1.1", "Host: x"), Reject(400)),
    ("absolute_form_bad_scheme", head("GET gopher://x/t HTTP/1.1", "Host: x"), Reject(400)),
    ("authority_form_get", head("GET x:80 HTTP/1.1", "Host: x"), Reject(400)),
    ("connect_method", head("CONNECT x:443 HTTP/1.1", "Host: x:443"), Reject(405)),
    ("asterisk_get", head("GET * HTTP/1.1", "Host: x"), Reject(400)),
    # ---- Host conflicts ----
    ("host_missing", head("GET /t HTTP/1.1", "X-A: b"), Reject(400)),
    ("host_twice_same", head("GET /t HTTP/1.1", "Host: x", "host: x"), Reject(400)),
    ("host_twice_differing", head("GET /t HTTP/1.1", "Host: x", "Host: y"), Reject(400)),
    ("host_list", head("GET /t HTTP/1.1", "Host: x, y"), Reject(400)),
    ("host_space", head("GET /t HTTP/1.1", "Host: x y"), Reject(400)),
    ("host_slash", head("GET /t HTTP/1.1", "Host: x/t"), Reject(400)),
    ("host_at", head("GET /t HTTP/1.1", "Host: u@x"), Reject(400)),
    ("host_port_ok", head("GET /t HTTP/1.1", "Host: x:8080"), Forward([GET_OK], check=host_is("x:8080"))),
    # ---- HTTP/1.0 ----
    ("http10_chunked", head("POST /t HTTP/1.0", "Host: x", "Transfer-Encoding: chunked")
     + CHUNKED_HELLO, Reject(400)),
    ("http10_chunked_and_cl", head("POST /t HTTP/1.0", "Host: x", "Content-Length: 5",
                                   "Transfer-Encoding: chunked") + b"hello", Reject(400)),
    ("http10_keepalive_cl", head("POST /t HTTP/1.0", "Host: x", "Connection: keep-alive",
                                 "Content-Length: 5") + b"hello", Forward([P("POST", "/t", 5)])),
    ("http10_closes", head("GET /t HTTP/1.0", "Host: x"), Forward([GET_OK], canary=False)),
    ("http10_no_host", head("GET /t HTTP/1.0"), Forward([GET_OK], canary=False)),
    # ---- bytes after Connection: close ----
    ("after_close_get", head("GET /t HTTP/1.1", "Host: x", "Connection: close") + SMUGGLED,
     Forward([GET_OK], canary=False)),
    ("after_close_post", head("POST /t HTTP/1.1", "Host: x", "Connection: close",
                              "Content-Length: 5") + b"hello" + SMUGGLED,
     Forward([P("POST", "/t", 5)], canary=False)),
    ("after_close_token_list", head("GET /t HTTP/1.1", "Host: x", "Connection: keep-alive, close")
     + SMUGGLED, Forward([GET_OK], canary=False)),
    # tether's own replies (404 here) honour the close too
    ("after_close_error_reply", head("GET /secret HTTP/1.1", "Host: x", "Connection: close")
     + SMUGGLED, Forward([], statuses=[404], canary=False)),
    ("http10_error_reply_closes", head("GET /secret HTTP/1.0", "Host: x") + SMUGGLED,
     Forward([], statuses=[404], canary=False)),
    # ---- upgrades ----
    # The pod refuses the upgrade (403): tether stays in HTTP, so the bytes that follow
    # are a request of their own, parsed and routed by tether (/secret has no route: 404
    # from tether, never seen by the pod).
    ("ws_refused_then_secret", head("GET /ws?ws_refuse=1 HTTP/1.1", "Host: x", *WS)
     + head("GET /secret HTTP/1.1", "Host: x"),
     Forward([P("GET", "/ws?ws_refuse=1")], statuses=[403, 404, 200])),
    ("ws_refused_then_smuggled", head("GET /ws?ws_refuse=1 HTTP/1.1", "Host: x", *WS) + SMUGGLED,
     Forward([P("GET", "/ws?ws_refuse=1"), P("GET", "/t/smuggled")], statuses=[403, 200, 200],
             check=lambda rs: all(len(hdrs(r, "X-Request-Id")) == 1 for r in rs))),
    # A 101 to a request that asked for no upgrade is a bad response: no tunnel.
    ("status101_without_upgrade", head("GET /t?status=101 HTTP/1.1", "Host: x")
     + head("GET /secret HTTP/1.1", "Host: x"),
     # a 101 nobody asked for is a broken answer: 502 and the connection closes
     Forward([P("GET", "/t?status=101")], statuses=[502], canary=False)),
    ("upgrade_h2c", head("GET /t HTTP/1.1", "Host: x", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings",
                         "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA")
     + head("GET /secret HTTP/1.1", "Host: x"),
     Forward([GET_OK], statuses=[200, 404, 200], check=no_header("Upgrade"))),
    ("upgrade_without_connection", head("GET /t HTTP/1.1", "Host: x", "Upgrade: websocket",
                                        "Sec-WebSocket-Version: 13",
                                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
     + head("GET /secret HTTP/1.1", "Host: x"),
     Forward([GET_OK], statuses=[200, 404, 200], check=no_header("Upgrade"))),
    # ---- pipelining sanity ----
    ("pipelined_three", head("GET /t HTTP/1.1", "Host: x") + head("POST /t HTTP/1.1", "Host: x",
                                                                    "Content-Length: 3") + b"abc"
     + head("PUT /t HTTP/1.1", "Host: x", "Transfer-Encoding: chunked") + CHUNKED_HELLO,
     Forward([GET_OK, P("POST", "/t", 3), P("PUT", "/t", 5)])),
]

CANARY = b"GET /t/canary HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def exchange(port, data, timeout=4.0):
    """Send <data>, read until tether closes. Returns (bytes, closed_by_peer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * h.SLOW)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = b""
    closed = False
    deadline = time.time() + timeout * h.SLOW
    try:
        while time.time() < deadline:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            out += d
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    s.close()
    return out, closed


def statuses_of(data):
    """Status codes of the replies in <data>, with the Connection field of the last."""
    out = []
    try:
        for st, hd, _ in h.parse_responses(data):
            out.append((st, hd.get("connection", "")))
    except Exception:
        out.append((-1, ""))
    return out


def normalised(r):
    """Problems with a request the pod saw (empty when it is well-formed)."""
    bad = []
    names = [k.lower() for k, _ in r["headers"]]
    if names.count("host") > 1:
        bad.append("several Host fields")
    if "content-length" in names and "transfer-encoding" in names:
        bad.append("both Content-Length and Transfer-Encoding")
    if names.count("content-length") > 1:
        bad.append("several Content-Length fields")
    for n in names:
        if n in HOP and not (n in ("connection", "upgrade") and r["path"].startswith("/ws")):
            bad.append("hop-by-hop field " + n)
    if hdrs(r, "X-Forwarded-For") != ["127.0.0.1"]:
        bad.append("X-Forwarded-For %r" % hdrs(r, "X-Forwarded-For"))
    if len(hdrs(r, "X-Request-Id")) != 1:
        bad.append("X-Request-Id")
    if r["version"] != "HTTP/1.1":
        bad.append("version " + r["version"])
    return bad


class Run:
    def __init__(self):
        self.pod = h.Mockpod("pod-a")
        self.t = h.Tether(CONF, a=self.pod.addr)
        self.n = 0

    def cut(self):
        """Requests the pod logged since the last cut (a sentinel marks the cut)."""
        self.n += 1
        tag = "/sentinel?n=%d" % self.n
        r = h.get(self.t.port, tag)
        assert r.status == 200, ("sentinel", r)
        logged = h.wait_until(lambda: [x for x in self.pod.requests()] if any(
            x["path"] == tag for x in self.pod.requests()) else None, what="sentinel " + tag)
        i = [x["path"] for x in logged].index(tag)
        j = max([k for k, x in enumerate(logged[:i]) if x["path"].startswith("/sentinel")],
                default=-1)
        return logged[j + 1:i]

    def check(self, name, data, want):
        out, closed = exchange(self.t.port, data + CANARY)
        seen = self.cut()
        st = statuses_of(out)
        why = []
        if isinstance(want, Reject):
            if [s for s, _ in st] != [want.status]:
                why.append("replies %r, want [%d]" % (st, want.status))
            elif st[0][1].lower() != "close":
                why.append("no Connection: close on the %d" % want.status)
            if not closed:
                why.append("connection left open")
            if seen:
                why.append("pod saw %r" % [(r["method"], r["path"]) for r in seen])
        else:
            reqs = list(want.reqs) + ([P("GET", "/t/canary")] if want.canary else [])
            got = [(r["method"], r["path"], r["body_bytes"]) for r in seen]
            if got != reqs:
                why.append("pod saw %r, want %r" % (got, reqs))
            statuses = want.statuses or [200] * len(reqs)
            if [s for s, _ in st] != statuses:
                why.append("replies %r, want %r" % ([s for s, _ in st], statuses))
            if not closed:
                why.append("connection left open")
            for r in seen:
                bad = normalised(r)
                if bad:
                    why.append("%s %s not normalised: %s" % (r["method"], r["path"], bad))
            if want.check and seen and not want.check(seen):
                why.append("check failed on %r" % seen)
        return why


def test_smuggling_cases():
    assert len(CASES) >= 50, len(CASES)
    names = [c[0] for c in CASES]
    assert len(set(names)) == len(names), "duplicate case names"
    run = Run()
    failures = []
    for name, data, want in CASES:
        why = run.check(name, data, want)
        if why:
            failures.append("%s: %s" % (name, "; ".join(why)))
        if not run.t.alive():
            failures.append("%s: tether died" % name)
            break
    print("%d cases, %d failed" % (len(CASES), len(failures)))
    for f in failures:
        print("  " + f)
    assert not failures, "%d of %d smuggling cases failed" % (len(failures), len(CASES))
    h.stop_clean(run.t)


def test_split_delivery_same_outcome():
    """The same attack bytes trickled one byte at a time: same outcome as in one piece
    (the parser is resumable and never decides on a partial line)."""
    run = Run()
    picks = ["cl_te", "te_space_before_colon", "chunk_size_overflow", "bare_cr_value",
             "obs_fold_space", "chunk_body_is_request", "cl_body_is_request", "pipelined_three"]
    failures = []
    for name, data, want in [c for c in CASES if c[0] in picks]:
        s = socket.create_connection(("127.0.0.1", run.t.port), timeout=4 * h.SLOW)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = b""
        try:
            for i in range(len(data)):
                s.sendall(data[i:i + 1])
                time.sleep(0.0005)
            s.sendall(CANARY)
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass
        s.close()
        seen = run.cut()
        st = [x for x, _ in statuses_of(out)]
        if isinstance(want, Reject):
            ok = st == [want.status] and not seen
        else:
            reqs = list(want.reqs) + ([P("GET", "/t/canary")] if want.canary else [])
            ok = [(r["method"], r["path"], r["body_bytes"]) for r in seen] == reqs
        if not ok:
            failures.append("%s: replies %r, pod saw %r" % (
                name, st, [(r["method"], r["path"], r["body_bytes"]) for r in seen]))
    assert not failures, failures
    h.stop_clean(run.t)


def test_early_response_rest_of_body_never_a_request():
    """The pod answers before the body is in (and closes): whatever body bytes come
    later are never parsed as a request of their own."""
    run = Run()
    s = socket.create_connection(("127.0.0.1", run.t.port), timeout=4 * h.SLOW)
    s.sendall(head("POST /t?early=1 HTTP/1.1", "Host: x", "Content-Length: %d" % (len(SMUGGLED) + 5)))
    first = b""
    while b"\r\n\r\n" not in first:
        d = s.recv(65536)
        assert d, "closed before the early reply"
        first += d
    assert first.startswith(b"HTTP/1.1 200 "), first[:80]
    time.sleep(0.1)
    rest = b""
    try:
        s.sendall(b"hello" + SMUGGLED)
        s.settimeout(2 * h.SLOW)
        while True:
            d = s.recv(65536)
            if not d:
                break
            rest += d
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    seen = run.cut()
    assert not any("smuggled" in r["path"] for r in seen), seen
    replies = statuses_of(first + rest)
    assert [x for x, _ in replies] == [200], replies
    h.stop_clean(run.t)


def test_keepalive_requests_last_reply_says_close():
    """At keepalive_requests the last reply says "Connection: close" before tether
    closes; otherwise a client sends its next request into a closing connection."""
    pod = h.Mockpod("pod-a")
    t = h.Tether(CONF.replace("keepalive_timeout 3s;", "keepalive_timeout 3s; keepalive_requests 3;"),
                 a=pod.addr)
    out, closed = exchange(t.port, b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n" * 3, timeout=3)
    st = statuses_of(out)
    assert [x for x, _ in st] == [200, 200, 200] and closed, st
    assert [c for _, c in st] == ["", "", "close"], st
    h.stop_clean(t)


if __name__ == "__main__":
    h.main(globals())
