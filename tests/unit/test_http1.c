/* SPDX-License-Identifier: MIT */
/* Unit tests for the HTTP/1.x head parser and body framing: valid heads, every
 * rejection rule, limits, trickled input against one-shot parses, resumption, the
 * chunked scanner split at every byte, and the small lookups. */
#include "config.h"

#include <tether/http1.h>

#include <stdlib.h>

#include "unit.h"

/* A literal with its length, NULs included. */
#define LIT(s) s, sizeof(s) - 1

static const struct http1_limits lim_default = {8192, 100};

/* Parse <n> bytes of <s> from a heap copy of exactly <n> bytes, so that ASan
 * catches any read past the end. */
static int
parse_copy(struct http_head *h, const char *s, size_t n, const struct http1_limits *lim, bool resp)
{
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    int rc = resp ? http1_parse_response(h, b, n, lim) : http1_parse_request(h, b, n, lim);
    free(b);
    return rc;
}

static int
req(struct http_head *h, const char *s, size_t n)
{
    http_head_init(h);
    return parse_copy(h, s, n, &lim_default, false);
}

static int
resp(struct http_head *h, const char *s, size_t n)
{
    http_head_init(h);
    return parse_copy(h, s, n, &lim_default, true);
}

/* Same outcome: result, error position, and every result field on success. */
static bool
head_same(int ra, const struct http_head *a, int rb, const struct http_head *b)
{
    if (ra != rb)
        return false;
    if (ra < 0)
        return a->err_off == b->err_off;
    if (ra == 0)
        return true;
    if (a->head_len != b->head_len || a->start_off != b->start_off || a->method != b->method ||
        a->version_minor != b->version_minor || a->status != b->status ||
        a->method_len != b->method_len || a->target_off != b->target_off ||
        a->target_len != b->target_len || a->path_off != b->path_off ||
        a->path_len != b->path_len || a->authority_off != b->authority_off ||
        a->authority_len != b->authority_len || a->reason_off != b->reason_off ||
        a->reason_len != b->reason_len || a->flags != b->flags ||
        a->content_length != b->content_length || a->host_idx != b->host_idx ||
        a->nfields != b->nfields)
        return false;
    return memcmp(a->fields, b->fields, a->nfields * sizeof(a->fields[0])) == 0;
}

/* Feed <s> one more byte at a time into one head, as a socket would; every
 * prefix before the end must ask for more. The result must equal the one-shot
 * parse. Returns the result. */
static int
trickle_check(const char *s, size_t n, const struct http1_limits *lim, bool is_resp)
{
    static struct http_head one, tr;
    int r1, rt = 0;
    http_head_init(&one);
    r1 = parse_copy(&one, s, n, lim, is_resp);
    http_head_init(&tr);
    uint32_t last_scanned = 0;
    for (size_t k = 1; k <= n; k++) {
        rt = parse_copy(&tr, s, k, lim, is_resp);
        if (tr.scanned < last_scanned)
            UNIT_FAIL("scanned went back at %zu", k);
        last_scanned = tr.scanned;
        if (rt != 0)
            break;
    }
    if (!head_same(r1, &one, rt, &tr))
        UNIT_FAIL("trickled != one-shot for \"%.*s\": %d/%u vs %d/%u", (int)n, s, rt, tr.err_off,
                  r1, one.err_off);
    return r1;
}

/* ---- requests: valid ---- */

static void
test_request_simple(void)
{
    static struct http_head h;
    const char r[] = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n"
                     "User-Agent: t/1\r\nAccept: */*\r\n\r\nNEXT";
    int rc = req(&h, LIT(r));
    CHECK_INT_EQ(rc, sizeof(r) - 1 - 4);
    CHECK_UINT_EQ(h.head_len, rc);
    CHECK_UINT_EQ(h.method, HTTP_M_GET);
    CHECK_UINT_EQ(h.method_len, 3);
    CHECK_UINT_EQ(h.start_off, 0);
    CHECK_MEM_EQ(r + h.target_off, h.target_len, "/index.html?q=1");
    CHECK_MEM_EQ(r + h.path_off, h.path_len, "/index.html?q=1");
    CHECK_UINT_EQ(h.authority_len, 0);
    CHECK_UINT_EQ(h.version_minor, 1);
    CHECK_UINT_EQ(h.nfields, 3);
    CHECK_INT_EQ(h.host_idx, 0);
    CHECK_UINT_EQ(h.fields[0].id, HTTP_H_HOST);
    CHECK_MEM_EQ(r + h.fields[0].name_off, h.fields[0].name_len, "Host");
    CHECK_MEM_EQ(r + h.fields[0].value_off, h.fields[0].value_len, "example.com");
    CHECK_UINT_EQ(h.fields[1].id, HTTP_H_OTHER);
    CHECK_MEM_EQ(r + h.fields[2].value_off, h.fields[2].value_len, "*/*");
    CHECK_INT_EQ(h.content_length, -1);
    CHECK_UINT_EQ(h.flags, 0);
    CHECK_UINT_EQ(http1_request_body(&h), HTTP1_BODY_NONE);
    /* every proper prefix needs more */
    for (size_t k = 0; k < (size_t)rc; k++)
        CHECK_INT_EQ(req(&h, r, k), HTTP1_NEED_MORE);
}

static void
test_request_methods(void)
{
    static struct http_head h;
    static const struct {
        const char *m;
        unsigned id;
    } ms[] = {{"GET", HTTP_M_GET},
              {"HEAD", HTTP_M_HEAD},
              {"POST", HTTP_M_POST},
              {"PUT", HTTP_M_PUT},
              {"DELETE", HTTP_M_DELETE},
              {"PATCH", HTTP_M_PATCH},
              {"TRACE", HTTP_M_TRACE},
              {"OPTIONS", HTTP_M_OPTIONS},
              {"get", HTTP_M_OTHER},
              {"PROPFIND", HTTP_M_OTHER},
              {"M-SEARCH", HTTP_M_OTHER},
              {"GETS", HTTP_M_OTHER},
              {"!#$%&'*+-.^_`|~", HTTP_M_OTHER}};
    char buf[128];
    for (size_t i = 0; i < ARRAY_SIZE(ms); i++) {
        int n = snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\nHost: a\r\n\r\n", ms[i].m);
        CHECK_INT_EQ(req(&h, buf, (size_t)n), n);
        CHECK_UINT_EQ(h.method, ms[i].id);
        CHECK_UINT_EQ(h.method_len, strlen(ms[i].m));
        if (ms[i].id != HTTP_M_OTHER)
            CHECK_STR_EQ(http_method_name(ms[i].id), ms[i].m);
    }
    CHECK(http_method_name(HTTP_M_OTHER) == NULL);
    CHECK(http_method_name(99) == NULL);
}

static void
test_request_leading_crlf(void)
{
    static struct http_head h;
    const char r[] = "\r\n\r\nGET / HTTP/1.0\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(r)), sizeof(r) - 1);
    CHECK_UINT_EQ(h.start_off, 4);
    CHECK_UINT_EQ(h.target_off, 8);
    CHECK_UINT_EQ(h.version_minor, 0);
    CHECK_INT_EQ(h.host_idx, -1); /* HTTP/1.0 may omit Host */
    CHECK_INT_EQ(req(&h, LIT("\r\n")), 0);
    CHECK_INT_EQ(req(&h, LIT("\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("\r\nX")), HTTP1_NEED_MORE);
    CHECK_INT_EQ(req(&h, LIT("\r\n\rX")), HTTP1_ERR_BAD);
    /* leading lines count toward the limit */
    struct http1_limits lim = {20, 10};
    http_head_init(&h);
    CHECK_INT_EQ(http1_parse_request(&h, LIT("\r\n\r\nGET / HTTP/1.0\r\n\r\n"), &lim),
                 HTTP1_ERR_TOO_LARGE);
}

static void
test_request_fields(void)
{
    static struct http_head h;
    const char r[] = "POST /u HTTP/1.1\r\nhOsT:a.b\r\nX-Empty:\r\nX-Ws: \t  v a l \t \r\n"
                     "X-Obs: caf\xc3\xa9\x80\xff\r\nContent-Length: 12\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(r)), sizeof(r) - 1);
    CHECK_UINT_EQ(h.nfields, 5);
    CHECK_MEM_EQ(r + h.fields[0].value_off, h.fields[0].value_len, "a.b");
    CHECK_UINT_EQ(h.fields[1].value_len, 0);
    CHECK_MEM_EQ(r + h.fields[2].value_off, h.fields[2].value_len, "v a l");
    CHECK_MEM_EQ(r + h.fields[3].value_off, h.fields[3].value_len, "caf\xc3\xa9\x80\xff");
    CHECK(h.flags & HTTP_F_HAS_CL);
    CHECK_INT_EQ(h.content_length, 12);
    CHECK_UINT_EQ(http1_request_body(&h), HTTP1_BODY_LENGTH);
    CHECK_INT_EQ(req(&h, LIT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")), 47);
    CHECK_UINT_EQ(http1_request_body(&h), HTTP1_BODY_NONE);
}

static void
test_field_ids(void)
{
    static struct http_head h;
    static const struct {
        const char *name;
        unsigned id;
    } ids[] = {{"content-length", HTTP_H_CONTENT_LENGTH},
               {"TRANSFER-ENCODING", HTTP_H_TRANSFER_ENCODING},
               {"Connection", HTTP_H_CONNECTION},
               {"Keep-Alive", HTTP_H_KEEP_ALIVE},
               {"Proxy-Connection", HTTP_H_PROXY_CONNECTION},
               {"te", HTTP_H_TE},
               {"Trailer", HTTP_H_TRAILER},
               {"upgrade", HTTP_H_UPGRADE},
               {"Expect", HTTP_H_EXPECT},
               {"Cookie", HTTP_H_COOKIE},
               {"Set-Cookie", HTTP_H_SET_COOKIE},
               {"x-forwarded-for", HTTP_H_X_FORWARDED_FOR},
               {"X-Forwarded-Proto", HTTP_H_X_FORWARDED_PROTO},
               {"X-Forwarded-Host", HTTP_H_X_FORWARDED_HOST},
               {"X-Request-ID", HTTP_H_X_REQUEST_ID},
               {"Forwarded", HTTP_H_FORWARDED},
               {"Proxy-Authorization", HTTP_H_PROXY_AUTHORIZATION},
               {"Proxy-Authenticate", HTTP_H_PROXY_AUTHENTICATE},
               {"Sec-WebSocket-Key", HTTP_H_SEC_WEBSOCKET_KEY},
               {"sec-websocket-accept", HTTP_H_SEC_WEBSOCKET_ACCEPT},
               {"Hosts", HTTP_H_OTHER},
               {"Cookie2", HTTP_H_OTHER},
               {"X-Forwarded-Fo", HTTP_H_OTHER},
               {"Content_Length", HTTP_H_OTHER},
               {"Tf", HTTP_H_OTHER}};
    char buf[256];
    for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
        /* values chosen to be valid for every known name */
        const char *v = ids[i].id == HTTP_H_CONTENT_LENGTH      ? "0"
                        : ids[i].id == HTTP_H_TRANSFER_ENCODING ? "chunked"
                                                                : "x";
        int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\n%s: %s\r\n\r\n",
                         ids[i].name, v);
        CHECK_INT_EQ(req(&h, buf, (size_t)n), n);
        CHECK_UINT_EQ(h.fields[1].id, ids[i].id);
        CHECK_INT_EQ(http_head_find(&h, buf, ids[i].name, strlen(ids[i].name)), 1);
    }
}

static void
test_find(void)
{
    static struct http_head h;
    const char r[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nCookie: c=1\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(r)), sizeof(r) - 1);
    CHECK_INT_EQ(http_head_find(&h, r, LIT("x-A")), 1);
    CHECK_INT_EQ(http_head_find(&h, r, LIT("HOST")), 0);
    CHECK_INT_EQ(http_head_find(&h, r, LIT("cookie")), 3);
    CHECK_INT_EQ(http_head_find(&h, r, LIT("X-B")), -1);
    CHECK_INT_EQ(http_head_find(&h, r, LIT("X-")), -1);
    CHECK_INT_EQ(http_head_find(&h, r, LIT("Content-Length")), -1);
    CHECK_INT_EQ(http_head_find(&h, r, "", 0), -1);
    const char r2[] = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(r2)), sizeof(r2) - 1);
    CHECK_INT_EQ(http_head_find(&h, r2, LIT("content-length")), 1);
    CHECK_INT_EQ(http_head_find(&h, r2, LIT("content\rlength")), -1); /* '\r' | 0x20 == '-' */
}

static void
test_absolute_form(void)
{
    static struct http_head h;
    const char r1[] =
        "GET http://Example.com:8080/p/a?x=1 HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(r1)), sizeof(r1) - 1);
    CHECK(h.flags & HTTP_F_ABSOLUTE_FORM);
    CHECK_MEM_EQ(r1 + h.authority_off, h.authority_len, "Example.com:8080");
    CHECK_MEM_EQ(r1 + h.path_off, h.path_len, "/p/a?x=1");
    const char r2[] = "GET HTTPS://a.b HTTP/1.1\r\nHost: a.b\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(r2)), sizeof(r2) - 1);
    CHECK_MEM_EQ(r2 + h.authority_off, h.authority_len, "a.b");
    CHECK_UINT_EQ(h.path_len, 0); /* the caller sends "/" */
    const char r3[] = "GET http://a.b?q HTTP/1.1\r\nHost: a.b\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(r3)), sizeof(r3) - 1);
    CHECK_MEM_EQ(r3 + h.path_off, h.path_len, "?q");
    const char r4[] = "GET http://[::1]:80/ HTTP/1.0\r\n\r\n"; /* 1.0: no Host to match */
    CHECK_INT_EQ(req(&h, LIT(r4)), sizeof(r4) - 1);
    CHECK_MEM_EQ(r4 + h.authority_off, h.authority_len, "[::1]:80");
    CHECK_INT_EQ(req(&h, LIT("GET http://a.b/ HTTP/1.1\r\nHost: evil\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET http://a.b:80/ HTTP/1.1\r\nHost: a.b\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET http://u@a.b/ HTTP/1.1\r\nHost: a.b\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET http:/a/ HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP1_ERR_BAD);
}

static void
test_asterisk_connect(void)
{
    static struct http_head h;
    const char r1[] = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(r1)), sizeof(r1) - 1);
    CHECK_MEM_EQ(r1 + h.path_off, h.path_len, "*");
    CHECK_INT_EQ(req(&h, LIT("GET * HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP1_ERR_BAD);
    const char r2[] = "CONNECT db.local:5432 HTTP/1.1\r\nHost: db.local:5432\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(r2)), sizeof(r2) - 1);
    CHECK_UINT_EQ(h.method, HTTP_M_CONNECT);
    CHECK_MEM_EQ(r2 + h.target_off, h.target_len, "db.local:5432");
    CHECK_UINT_EQ(h.path_len, 0);
    CHECK_INT_EQ(req(&h, LIT("CONNECT [::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n")), 39);
    CHECK_INT_EQ(req(&h, LIT("CONNECT db.local HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET db.local:5432 HTTP/1.1\r\nHost: a\r\n\r\n")), HTTP1_ERR_BAD);
}

static void
test_connection_flags(void)
{
    static struct http_head h;
    static const struct {
        const char *hdrs;
        uint32_t flags;
    } cs[] = {
        {"Connection: close", HTTP_F_CONN_CLOSE},
        {"Connection: Keep-Alive", HTTP_F_CONN_KEEPALIVE},
        {"Connection: UPGRADE\r\nUpgrade: WebSocket", HTTP_F_CONN_UPGRADE | HTTP_F_UPGRADE_WS},
        {"Connection: x-foo,  close ,,", HTTP_F_CONN_OTHER | HTTP_F_CONN_CLOSE},
        {"Connection: te\r\nConnection: keep-alive", HTTP_F_CONN_OTHER | HTTP_F_CONN_KEEPALIVE},
        {"Upgrade: h2c, websocket/13", HTTP_F_UPGRADE_WS},
        {"Upgrade: websockets", 0},
        {"Upgrade: h2c", 0},
        {"Expect: 100-Continue", HTTP_F_EXPECT_CONTINUE},
        {"Expect: 100-continue-x", HTTP_F_EXPECT_OTHER},
        {"Expect:", HTTP_F_EXPECT_OTHER},
        {"Keep-Alive: timeout=5", 0},
    };
    char buf[256];
    for (size_t i = 0; i < ARRAY_SIZE(cs); i++) {
        int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n\r\n", cs[i].hdrs);
        CHECK_INT_EQ(req(&h, buf, (size_t)n), n);
        CHECK_UINT_EQ(h.flags, cs[i].flags);
    }
    const char e10[] = "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(e10)), sizeof(e10) - 1);
    CHECK_UINT_EQ(h.flags, 0); /* ignored in HTTP/1.0 */
    CHECK_INT_EQ(req(&h, LIT("GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n")),
                 HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET / HTTP/1.1\r\nHost: a\r\nConnection: close;x\r\n\r\n")),
                 HTTP1_ERR_BAD);
}

static void
test_content_length(void)
{
    static struct http_head h;
    static const struct {
        const char *v;
        int64_t cl; /* -2: rejected */
    } cs[] = {{"5", 5},
              {"007", 7},
              {"5, 5", 5},
              {"5,5,\t5", 5},
              {"4611686018427387904", INT64_C(4611686018427387904)},
              {"4611686018427387905", -2},
              {"99999999999999999999999", -2},
              {"5, 6", -2},
              {"+5", -2},
              {"-1", -2},
              {"5 5", -2},
              {"0x5", -2},
              {"5,", -2},
              {",5", -2},
              {"5,,5", -2},
              {"", -2},
              {"5;", -2},
              {"1e3", -2}};
    char buf[256];
    for (size_t i = 0; i < ARRAY_SIZE(cs); i++) {
        int n = snprintf(buf, sizeof(buf),
                         "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", cs[i].v);
        int rc = req(&h, buf, (size_t)n);
        if (cs[i].cl == -2) {
            CHECK_INT_EQ(rc, HTTP1_ERR_BAD);
        } else {
            CHECK_INT_EQ(rc, n);
            CHECK_INT_EQ(h.content_length, cs[i].cl);
        }
    }
    const char two[] =
        "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 03\r\n\r\n";
    CHECK_INT_EQ(req(&h, LIT(two)), sizeof(two) - 1);
    CHECK_INT_EQ(h.content_length, 3);
    CHECK_UINT_EQ(h.cl_count, 2);
    CHECK_INT_EQ(req(&h, LIT("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                             "Content-Length: 4\r\n\r\n")),
                 HTTP1_ERR_BAD);
}

static void
test_transfer_encoding(void)
{
    static struct http_head h;
    static const struct {
        const char *hdrs;
        int rc; /* 1: accepted as chunked */
    } cs[] = {
        {"Transfer-Encoding: chunked", 1},
        {"transfer-encoding: CHUNKED", 1},
        {"Transfer-Encoding:  chunked \t", 1},
        {"Transfer-Encoding: gzip, chunked", HTTP1_ERR_NOT_IMPL},
        {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked", HTTP1_ERR_NOT_IMPL},
        {"Transfer-Encoding: identity", HTTP1_ERR_NOT_IMPL},
        {"Transfer-Encoding: chunked, gzip", HTTP1_ERR_NOT_IMPL},
        {"Transfer-Encoding: chunked, chunked", HTTP1_ERR_BAD},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", HTTP1_ERR_BAD},
        {"Transfer-Encoding: chunked;x", HTTP1_ERR_BAD},
        {"Transfer-Encoding: \"chunked\"", HTTP1_ERR_BAD},
        {"Transfer-Encoding: chunked\x0b", HTTP1_ERR_BAD},
        {"Transfer-Encoding: chunked,", HTTP1_ERR_BAD},
        {"Transfer-Encoding: , chunked", HTTP1_ERR_BAD},
        {"Transfer-Encoding:", HTTP1_ERR_BAD},
        {"Transfer-Encoding: x chunked", HTTP1_ERR_BAD},
        {"Transfer-Encoding: chunk", HTTP1_ERR_NOT_IMPL},
        {"Transfer-Encoding: chunked\r\nContent-Length: 5", HTTP1_ERR_BAD},
        {"Content-Length: 5\r\nTransfer-Encoding: chunked", HTTP1_ERR_BAD},
        {"Content-Length: 5\r\nTransfer-Encoding: gzip", HTTP1_ERR_BAD},
        {"Transfer-Encoding : chunked", HTTP1_ERR_BAD},
        {"Transfer-Encoding\t: chunked", HTTP1_ERR_BAD},
        {"Transfer-Encoding:\x0c"
         "chunked",
         HTTP1_ERR_BAD},
        {"Transfer-Encoding: xchunked", HTTP1_ERR_NOT_IMPL},
        {"X: y\r\n Transfer-Encoding: chunked", HTTP1_ERR_BAD},
        {"Transfer_Encoding: chunked", 0},
    };
    char buf[256];
    for (size_t i = 0; i < ARRAY_SIZE(cs); i++) {
        int n = snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: a\r\n%s\r\n\r\n", cs[i].hdrs);
        int rc = req(&h, buf, (size_t)n);
        if (cs[i].rc == 1) {
            CHECK_INT_EQ(rc, n);
            CHECK_UINT_EQ(h.flags, HTTP_F_CHUNKED);
            CHECK_UINT_EQ(http1_request_body(&h), HTTP1_BODY_CHUNKED);
        } else if (cs[i].rc == 0) {
            CHECK_INT_EQ(rc, n);
            CHECK_UINT_EQ(http1_request_body(&h), HTTP1_BODY_NONE);
        } else {
            if (rc != cs[i].rc)
                UNIT_FAIL("case %zu \"%s\": %d != %d", i, cs[i].hdrs, rc, cs[i].rc);
        }
        trickle_check(buf, (size_t)n, &lim_default, false);
    }
    /* HTTP/1.0 with TE is faulty framing */
    CHECK_INT_EQ(req(&h, LIT("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")),
                 HTTP1_ERR_BAD);
}

static void
test_host(void)
{
    static struct http_head h;
    static const struct {
        const char *v;
        bool ok;
    } cs[] = {{"example.com", true},
              {"EXAMPLE.com:8080", true},
              {"[::1]", true},
              {"[2001:db8::1]:443", true},
              {"1.2.3.4:0", true},
              {"ex%41mple", true},
              {"a_b-c~d!$&'()*+;=", true},
              {"a:65535", true},
              {"a:65536", false},
              {"a:123456", false},
              {"a:", false},
              {":80", false},
              {"a b", false},
              {"a@b", false},
              {"a,b", false},
              {"a/b", false},
              {"[::1", false},
              {"[]", false},
              {"[x]", false},
              {"a:8x", false},
              {"%zz", false},
              {"a%4", false},
              {"a\x80", false},
              {"[::1]x", false}};
    char buf[256];
    for (size_t i = 0; i < ARRAY_SIZE(cs); i++) {
        int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", cs[i].v);
        int rc = req(&h, buf, (size_t)n);
        if (cs[i].ok != (rc == n))
            UNIT_FAIL("host \"%s\": %d", cs[i].v, rc);
    }
    CHECK_INT_EQ(req(&h, LIT("GET / HTTP/1.1\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET / HTTP/1.1\r\nHost:\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET / HTTP/1.1\r\nX: 1\r\nhost: a\r\n\r\n")), 33);
    CHECK_INT_EQ(h.host_idx, 1);
}

/* ---- requests: rejections, each also trickled ---- */

static const struct {
    const char *s;
    size_t len;
    int rc;
} bad_requests[] = {
    {LIT("GET / HTTP/1.1\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\n\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nX: \rb\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\rHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), HTTP1_ERR_BAD},
    {LIT("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\n"), HTTP1_NEED_MORE},
    {LIT("GET /\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("/ HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET a HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / http/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), HTTP1_ERR_VERSION},
    {LIT("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), HTTP1_ERR_VERSION},
    {LIT("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), HTTP1_ERR_VERSION},
    {LIT("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTPS/1.1\r\nHost: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tfolded\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nX(: x\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: x\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nX\0: x\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
     HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), HTTP1_ERR_NOT_IMPL},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nX: 1\r\n\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
     HTTP1_ERR_BAD},
    {LIT("\r\n\n"), HTTP1_ERR_BAD},
    {LIT("\r\r\n"), HTTP1_ERR_BAD},
    {LIT("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\n"), 27},
};

static void
test_request_rejections(void)
{
    static struct http_head h;
    for (size_t i = 0; i < ARRAY_SIZE(bad_requests); i++) {
        int rc = req(&h, bad_requests[i].s, bad_requests[i].len);
        if (rc != bad_requests[i].rc)
            UNIT_FAIL("case %zu \"%s\": %d != %d", i, bad_requests[i].s, rc, bad_requests[i].rc);
        trickle_check(bad_requests[i].s, bad_requests[i].len, &lim_default, false);
    }
}

static void
test_early_detection(void)
{
    static struct http_head h;
    /* a lone CR or a bare LF fails at once, without waiting for the line end */
    CHECK_INT_EQ(req(&h, LIT("GET / HTTP/1.1\r\nHost: a\rX")), HTTP1_ERR_BAD);
    CHECK_UINT_EQ(h.err_off, 23);
    CHECK_INT_EQ(req(&h, LIT("GET / HTTP/1.1\r\nHost: a\r")), HTTP1_NEED_MORE);
    CHECK_INT_EQ(req(&h, LIT("GET / HTTP/1.1\r\nHost: a\nX")), HTTP1_ERR_BAD);
    CHECK_INT_EQ(req(&h, LIT("GET / HTT\0")), HTTP1_ERR_BAD);
    CHECK_UINT_EQ(h.err_off, 9);
}

static void
test_limits(void)
{
    static struct http_head h;
    const char r[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\n";
    size_t n = sizeof(r) - 1;
    struct http1_limits lim = {(uint32_t)n, 10};
    CHECK_INT_EQ(parse_copy((http_head_init(&h), &h), r, n, &lim, false), (int)n);
    lim.max_head_bytes = (uint32_t)n - 1;
    CHECK_INT_EQ(parse_copy((http_head_init(&h), &h), r, n, &lim, false), HTTP1_ERR_TOO_LARGE);
    trickle_check(r, n, &lim, false);
    /* no end yet but already as long as the limit: no point waiting */
    CHECK_INT_EQ(parse_copy((http_head_init(&h), &h), r, n - 1, &lim, false), HTTP1_ERR_TOO_LARGE);
    CHECK_INT_EQ(parse_copy((http_head_init(&h), &h), r, n - 2, &lim, false), HTTP1_NEED_MORE);
    /* a huge line with no CRLF */
    char big[9000];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    CHECK_INT_EQ(req(&h, big, sizeof(big)), HTTP1_ERR_TOO_LARGE);
    /* max_fields */
    lim.max_head_bytes = 8192;
    lim.max_fields = 3;
    const char f3[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    const char f4[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    CHECK_INT_EQ(parse_copy((http_head_init(&h), &h), LIT(f3), &lim, false), sizeof(f3) - 1);
    CHECK_INT_EQ(parse_copy((http_head_init(&h), &h), LIT(f4), &lim, false), HTTP1_ERR_TOO_MANY);
    trickle_check(LIT(f4), &lim, false);
    /* the hard cap applies when the limit asks for more */
    lim.max_fields = 1000;
    char many[8192];
    size_t m = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < HTTP_MAX_FIELDS; i++)
        m += (size_t)snprintf(many + m, sizeof(many) - m, "X%d: v\r\n", i);
    m += (size_t)snprintf(many + m, sizeof(many) - m, "\r\n");
    CHECK_INT_EQ(parse_copy((http_head_init(&h), &h), many, m, &lim, false), HTTP1_ERR_TOO_MANY);
    /* NULL limits: defaults */
    http_head_init(&h);
    CHECK_INT_EQ(http1_parse_request(&h, LIT(f4), NULL), sizeof(f4) - 1);
}

/* Lines already parsed are not read again: overwrite them between calls. */
static void
test_resume(void)
{
    static struct http_head h;
    char b[] = "GET /a HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-B: 2\r\n\r\n";
    size_t n = sizeof(b) - 1;
    http_head_init(&h);
    CHECK_INT_EQ(http1_parse_request(&h, b, 30, &lim_default), 0);
    CHECK_UINT_EQ(h.scanned, 26); /* start of "X-A: 1" */
    CHECK_UINT_EQ(h.nfields, 1);
    memset(b, '\0', 26); /* garbage the parsed lines */
    CHECK_INT_EQ(http1_parse_request(&h, b, n, &lim_default), (int)n);
    CHECK_UINT_EQ(h.nfields, 3);
    CHECK_MEM_EQ(b + h.fields[2].value_off, h.fields[2].value_len, "2");
    /* once complete, the result stays */
    CHECK_INT_EQ(http1_parse_request(&h, b, n, &lim_default), (int)n);
}

/* A set of valid heads trickled. */
static void
test_trickle_valid(void)
{
    static const char *const rs[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\n\r\nPOST /x?y HTTP/1.1\r\nHost: h:1\r\nContent-Length: 5, 5\r\nConnection: "
        "close\r\n\r\n",
        "PUT http://h/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue"
        "\r\nX-Very-Long-Header-Name-To-Cross-Words: a value that is long enough\t\r\n\r\n",
        "OPTIONS * HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(rs); i++)
        CHECK_INT_EQ(trickle_check(rs[i], strlen(rs[i]), &lim_default, false), strlen(rs[i]));
}

/* ---- responses ---- */

static void
test_response_valid(void)
{
    static struct http_head h;
    const char r1[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\n\r\nhello";
    CHECK_INT_EQ(resp(&h, LIT(r1)), sizeof(r1) - 1 - 5);
    CHECK_UINT_EQ(h.status, 200);
    CHECK_UINT_EQ(h.version_minor, 1);
    CHECK_MEM_EQ(r1 + h.reason_off, h.reason_len, "OK");
    CHECK_INT_EQ(h.content_length, 5);
    CHECK_UINT_EQ(h.fields[1].id, HTTP_H_SET_COOKIE);
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_GET), HTTP1_BODY_LENGTH);
    const char r2[] = "HTTP/1.0 404 Not \t Found \xe9\r\n\r\n";
    CHECK_INT_EQ(resp(&h, LIT(r2)), sizeof(r2) - 1);
    CHECK_UINT_EQ(h.version_minor, 0);
    CHECK_MEM_EQ(r2 + h.reason_off, h.reason_len, "Not \t Found \xe9");
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_GET), HTTP1_BODY_CLOSE);
    CHECK_INT_EQ(resp(&h, LIT("HTTP/1.1 204 \r\n\r\n")), 17);
    CHECK_UINT_EQ(h.reason_len, 0);
    CHECK_INT_EQ(resp(&h, LIT("HTTP/1.1 304\r\n\r\n")), 16);
    CHECK_UINT_EQ(h.reason_len, 0);
    CHECK_UINT_EQ(h.status, 304);
    /* Host means nothing in a response; duplicates are fine */
    CHECK_INT_EQ(resp(&h, LIT("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b b\r\n\r\n")), 39);
    CHECK_INT_EQ(h.host_idx, -1);
    const char r3[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: x=\r\n\r\n";
    CHECK_INT_EQ(resp(&h, LIT(r3)), sizeof(r3) - 1);
    CHECK_UINT_EQ(h.flags, HTTP_F_UPGRADE_WS | HTTP_F_CONN_UPGRADE);
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_GET), HTTP1_BODY_NONE);
    trickle_check(LIT(r1), &lim_default, true);
    trickle_check(LIT(r3), &lim_default, true);
}

static void
test_response_te(void)
{
    static struct http_head h;
    static const struct {
        const char *hdrs;
        int rc;         /* 0: accepted */
        uint32_t flags; /* when accepted */
    } cs[] = {
        {"Transfer-Encoding: chunked", 0, HTTP_F_CHUNKED},
        {"Transfer-Encoding: gzip, chunked", 0, HTTP_F_CHUNKED},
        {"Transfer-Encoding: gzip\r\nTransfer-Encoding: Chunked", 0, HTTP_F_CHUNKED},
        {"Transfer-Encoding: gzip", 0, HTTP_F_TE_OTHER},
        {"Transfer-Encoding: chunked, gzip", 0, HTTP_F_TE_OTHER},
        {"Transfer-Encoding: chunked, chunked", HTTP1_ERR_BAD, 0},
        {"Transfer-Encoding: chunked;q=1", HTTP1_ERR_BAD, 0},
        {"Transfer-Encoding: chunked\r\nContent-Length: 3", HTTP1_ERR_BAD, 0},
        {"Content-Length: 3\r\nContent-Length: 4", HTTP1_ERR_BAD, 0},
        {"Content-Length: 3, 4", HTTP1_ERR_BAD, 0},
        {"Content-Length: 3, 3", 0, HTTP_F_HAS_CL},
    };
    char buf[256];
    for (size_t i = 0; i < ARRAY_SIZE(cs); i++) {
        int n = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\n%s\r\n\r\n", cs[i].hdrs);
        int rc = resp(&h, buf, (size_t)n);
        if (cs[i].rc == 0) {
            CHECK_INT_EQ(rc, n);
            CHECK_UINT_EQ(h.flags, cs[i].flags);
        } else {
            CHECK_INT_EQ(rc, cs[i].rc);
        }
        trickle_check(buf, (size_t)n, &lim_default, true);
    }
    CHECK_INT_EQ(resp(&h, LIT("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")),
                 HTTP1_ERR_BAD);
}

static void
test_response_rejections(void)
{
    static const struct {
        const char *s;
        size_t len;
        int rc;
    } cs[] = {
        {LIT("HTTP/1.1 099 X\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 600 X\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 20 X\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 2000 X\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 2x0 X\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1  200 X\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1\t200 X\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 200\tX\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/2.0 200 OK\r\n\r\n"), HTTP1_ERR_VERSION},
        {LIT("HTTP/2 200 OK\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("http/1.1 200 OK\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("\r\nHTTP/1.1 200 OK\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 200 O\x01K\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 200 OK\nX: y\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 200 OK\r\nX : y\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 200 OK\r\nX: \0\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 200 OK\r\nConnection: a;b\r\n\r\n"), HTTP1_ERR_BAD},
        {LIT("HTTP/2.0 200 OK\rX"), HTTP1_ERR_BAD},
        {LIT("HTTP/1.1 200 OK\r\n"), HTTP1_NEED_MORE},
    };
    static struct http_head h;
    for (size_t i = 0; i < ARRAY_SIZE(cs); i++) {
        int rc = resp(&h, cs[i].s, cs[i].len);
        if (rc != cs[i].rc)
            UNIT_FAIL("case %zu \"%s\": %d != %d", i, cs[i].s, rc, cs[i].rc);
        trickle_check(cs[i].s, cs[i].len, &lim_default, true);
    }
}

static void
test_response_body_kinds(void)
{
    static struct http_head h;
    CHECK_INT_EQ(resp(&h, LIT("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")), 39);
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_GET), HTTP1_BODY_LENGTH);
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_HEAD), HTTP1_BODY_NONE);
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_CONNECT), HTTP1_BODY_NONE);
    h.status = 304;
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_GET), HTTP1_BODY_NONE);
    h.status = 204;
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_GET), HTTP1_BODY_NONE);
    h.status = 100;
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_GET), HTTP1_BODY_NONE);
    h.status = 404;
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_CONNECT), HTTP1_BODY_LENGTH);
    CHECK_INT_EQ(resp(&h, LIT("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")), 38);
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_GET), HTTP1_BODY_NONE);
    CHECK_INT_EQ(resp(&h, LIT("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")), 47);
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_POST), HTTP1_BODY_CHUNKED);
    CHECK_INT_EQ(resp(&h, LIT("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")), 44);
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_GET), HTTP1_BODY_CLOSE);
    CHECK_INT_EQ(resp(&h, LIT("HTTP/1.1 200 OK\r\n\r\n")), 19);
    CHECK_UINT_EQ(http1_response_body(&h, HTTP_M_GET), HTTP1_BODY_CLOSE);
}

/* ---- lookups ---- */

static void
test_cookie_get(void)
{
    struct slice v;
    const char c[] = "a=1; sid=\"q v\";b=2;  c = 3 ;empty=; noeq; SID=upper; x=\"";
    CHECK(http_cookie_get(LIT(c), LIT("a"), &v));
    CHECK_MEM_EQ(v.p, v.len, "1");
    CHECK(http_cookie_get(LIT(c), LIT("sid"), &v));
    CHECK_MEM_EQ(v.p, v.len, "q v");
    CHECK(http_cookie_get(LIT(c), LIT("b"), &v));
    CHECK_MEM_EQ(v.p, v.len, "2");
    CHECK(http_cookie_get(LIT(c), LIT("c"), &v));
    CHECK_MEM_EQ(v.p, v.len, "3");
    CHECK(http_cookie_get(LIT(c), LIT("empty"), &v));
    CHECK_UINT_EQ(v.len, 0);
    CHECK(http_cookie_get(LIT(c), LIT("SID"), &v));
    CHECK_MEM_EQ(v.p, v.len, "upper");
    CHECK(http_cookie_get(LIT(c), LIT("x"), &v));
    CHECK_MEM_EQ(v.p, v.len, "\"");
    CHECK(!http_cookie_get(LIT(c), LIT("noeq"), &v));
    CHECK(!http_cookie_get(LIT(c), LIT("si"), &v));
    CHECK(!http_cookie_get(LIT(c), LIT("1"), &v));
    CHECK(!http_cookie_get(LIT(c), "", 0, &v));
    CHECK(!http_cookie_get("", 0, LIT("a"), &v));
    CHECK(http_cookie_get(LIT("k=v=w"), LIT("k"), &v));
    CHECK_MEM_EQ(v.p, v.len, "v=w");
}

static void
test_reason(void)
{
    CHECK_STR_EQ(http_reason(200), "OK");
    CHECK_STR_EQ(http_reason(400), "Bad Request");
    CHECK_STR_EQ(http_reason(431), "Request Header Fields Too Large");
    CHECK_STR_EQ(http_reason(502), "Bad Gateway");
    CHECK_STR_EQ(http_reason(505), "HTTP Version Not Supported");
    CHECK_STR_EQ(http_reason(101), "Switching Protocols");
    CHECK_STR_EQ(http_reason(308), "Permanent Redirect");
    CHECK_STR_EQ(http_reason(402), "Unknown");
    CHECK_STR_EQ(http_reason(599), "Unknown");
    CHECK_STR_EQ(http_reason(0), "Unknown");
    CHECK_STR_EQ(http_reason(1000), "Unknown");
}

/* ---- chunked ---- */

struct sink {
    char data[256]; /* data bytes received, in order */
    size_t n;       /* bytes in data */
    unsigned calls; /* callback invocations */
};

static void
sink_add(void *ctx, const char *p, size_t n)
{
    struct sink *k = ctx;
    if (n == 0)
        UNIT_FAIL("%s", "empty data span");
    if (k->n + n <= sizeof(k->data))
        memcpy(k->data + k->n, p, n);
    k->n += n;
    k->calls++;
}

/* Scan <s> in one call; returns the result, fills <c>. */
static int64_t
scan_all(struct http1_chunked *c, const char *s, size_t n, const struct http1_chunk_limits *lim,
         struct sink *k)
{
    http1_chunked_init(c);
    memset(k, 0, sizeof(*k));
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    int64_t r = http1_chunked_scan(c, b, n, lim, sink_add, k);
    free(b);
    return r;
}

/* Scan <s> in pieces cut at <cuts> (ascending); the sum of results or the error. */
static int64_t
scan_split(struct http1_chunked *c, const char *s, size_t n, const size_t *cuts, size_t ncuts,
           struct sink *k)
{
    size_t at = 0, used = 0;
    http1_chunked_init(c);
    memset(k, 0, sizeof(*k));
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        if (used < at) /* stopped early: the body ended */
            break;
        char *b = malloc(to - at ? to - at : 1);
        memcpy(b, s + at, to - at);
        int64_t r = http1_chunked_scan(c, b, to - at, NULL, sink_add, k);
        free(b);
        if (r < 0)
            return r;
        used += (size_t)r;
        at = to;
    }
    return (int64_t)used;
}

static void
test_chunked_basic(void)
{
    struct http1_chunked c;
    struct sink k;
    const char b[] = "5\r\nhello\r\nA;name=val\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    int64_t body = (int64_t)(sizeof(b) - 1 - 16);
    CHECK_INT_EQ(scan_all(&c, LIT(b), NULL, &k), body);
    CHECK(c.done);
    CHECK_UINT_EQ(c.total, 15);
    CHECK_UINT_EQ(k.n, 15);
    CHECK_MEM_EQ(k.data, k.n, "hello0123456789");
    CHECK_INT_EQ(http1_chunked_scan(&c, "x", 1, NULL, NULL, NULL), 0); /* done */
    /* the next message's bytes are not consumed, even one byte at a time */
    http1_chunked_init(&c);
    int64_t used = 0;
    for (size_t i = 0; i < sizeof(b) - 1 && !c.done; i++) {
        int64_t r = http1_chunked_scan(&c, b + i, 1, NULL, NULL, NULL);
        CHECK(r == 1);
        used += r;
    }
    CHECK_INT_EQ(used, body);
    CHECK_UINT_EQ(c.total, 15);
    /* empty body, trailers, NULL on_data */
    CHECK_INT_EQ(scan_all(&c, LIT("0\r\n\r\n"), NULL, &k), 5);
    CHECK(c.done);
    CHECK_UINT_EQ(c.total, 0);
    const char t[] = "1\r\nx\r\n0;last\r\nX-Sum: abc\t d\r\nX-B:\r\n\r\n";
    CHECK_INT_EQ(scan_all(&c, LIT(t), NULL, &k), sizeof(t) - 1);
    CHECK_UINT_EQ(c.trailer_bytes, 21);
    http1_chunked_init(&c);
    CHECK_INT_EQ(http1_chunked_scan(&c, LIT(t), NULL, NULL, NULL), sizeof(t) - 1);
    /* need more: nothing lost */
    CHECK_INT_EQ(scan_all(&c, LIT("5\r\nhel"), NULL, &k), 6);
    CHECK(!c.done);
    CHECK_UINT_EQ(c.chunk_left, 2);
    CHECK_INT_EQ(http1_chunked_scan(&c, LIT("lo\r\n0\r\n\r"), NULL, sink_add, &k), 8);
    CHECK(!c.done);
    CHECK_INT_EQ(http1_chunked_scan(&c, LIT("\nX"), NULL, sink_add, &k), 1);
    CHECK(c.done);
    CHECK_MEM_EQ(k.data, k.n, "hello");
}

static void
test_chunked_sizes_and_exts(void)
{
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cs[] = {
        {LIT("0000000000000001\r\nx\r\n0\r\n\r\n"), true},
        {LIT("00000000000000001\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"), true},
        {LIT("1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"), true},
        {LIT("1;a\r\nx\r\n0\r\n\r\n"), true},
        {LIT("1 ;a\r\nx\r\n0\r\n\r\n"), true},
        {LIT("1\t; a = b ;c;d=\"q \\\" ;\"\r\nx\r\n0\r\n\r\n"), true},
        {LIT("1;a=\"\"\r\nx\r\n0\r\n\r\n"), true},
        {LIT("1;a=b;c\r\nx\r\n0\r\n\r\n"), true},
        {LIT("1\r\nx\rx\r\n0\r\n\r\n"), false},
        {LIT("1;a=\"\xff\"\r\nx\r\n0\r\n\r\n"), true},
        {LIT("0;a=b\r\n\r\n"), true},
        {LIT("1 \r\nx\r\n0\r\n\r\n"), false},
        {LIT(" 1\r\nx\r\n0\r\n\r\n"), false},
        {LIT("0x1\r\nx\r\n0\r\n\r\n"), false},
        {LIT("-1\r\nx\r\n0\r\n\r\n"), false},
        {LIT("+1\r\nx\r\n0\r\n\r\n"), false},
        {LIT("\r\nx\r\n0\r\n\r\n"), false},
        {LIT("g\r\n"), false},
        {LIT("1;\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1;a=\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1;a \r\nx\r\n0\r\n\r\n"), false},
        {LIT("1;a=b \r\nx\r\n0\r\n\r\n"), false},
        {LIT("1;a b\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1;=b\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1;a=\"b\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1;a=\"b\"c\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1;a=b(\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1;a=\"\\\x01\"\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1;a=\"\x7f\"\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1\nx\r\n0\r\n\r\n"), false},
        {LIT("1\rx\r\n0\r\n\r\n"), false},
        {LIT("1\r\nx\n0\r\n\r\n"), false},
        {LIT("1\r\nxy\r\n0\r\n\r\n"), false},
        {LIT("2\r\nx\r\n0\r\n\r\n"), false},
        {LIT("1\r\nx\r\n0\r\n\n"), false},
        {LIT("1\r\nx\r\n0\n\r\n"), false},
        {LIT("1\r\nx\r\n0\r\n\r\r"), false},
        {LIT("0\r\nX-T: v\r\n\r\n"), true},
        {LIT("0\r\nX-T: v\r\n w\r\n\r\n"), false},
        {LIT("0\r\n X-T: v\r\n\r\n"), false},
        {LIT("0\r\nX-T : v\r\n\r\n"), false},
        {LIT("0\r\n: v\r\n\r\n"), false},
        {LIT("0\r\nX-T v\r\n\r\n"), false},
        {LIT("0\r\nX-T: v\n\r\n"), false},
        {LIT("0\r\nX-T: v\0\r\n\r\n"), false},
        {LIT("0\r\nX-T: v\rx\r\n\r\n"), false},
        {LIT("0\r\nX-T: v\r\n\n"), false},
    };
    struct http1_chunked c;
    struct sink k;
    for (size_t i = 0; i < ARRAY_SIZE(cs); i++) {
        int64_t r = scan_all(&c, cs[i].s, cs[i].len, NULL, &k);
        bool ok = r == (int64_t)cs[i].len && c.done;
        if (ok != cs[i].ok || (!cs[i].ok && r != HTTP1_ERR_BAD))
            UNIT_FAIL("case %zu \"%s\": %lld done=%d", i, cs[i].s, (long long)r, c.done);
        /* one byte at a time gives the same answer */
        size_t cuts[512];
        for (size_t j = 0; j + 1 < cs[i].len && j < ARRAY_SIZE(cuts); j++)
            cuts[j] = j + 1;
        size_t nc = cs[i].len ? cs[i].len - 1 : 0;
        int64_t r2 = scan_split(&c, cs[i].s, cs[i].len, cuts, nc < 512 ? nc : 512, &k);
        if (r2 != r)
            UNIT_FAIL("case %zu trickled: %lld != %lld", i, (long long)r2, (long long)r);
        /* a failed scanner stays failed */
        if (r < 0 && http1_chunked_scan(&c, "0\r\n\r\n", 5, NULL, NULL, NULL) != HTTP1_ERR_BAD)
            UNIT_FAIL("case %zu: error not sticky", i);
    }
}

static void
test_chunked_limits(void)
{
    struct http1_chunked c;
    struct sink k;
    struct http1_chunk_limits lim = {10, 12, 0x100};
    CHECK_INT_EQ(scan_all(&c, LIT("100\r\n"), &lim, &k), 5);
    CHECK_INT_EQ(scan_all(&c, LIT("101\r\n"), &lim, &k), HTTP1_ERR_BAD);
    CHECK_INT_EQ(scan_all(&c, LIT("0000000101"), &lim, &k), HTTP1_ERR_BAD);
    CHECK_INT_EQ(scan_all(&c, LIT("1;abcdefgh\r\n"), &lim, &k), 12); /* 10 bytes: fits */
    CHECK_INT_EQ(scan_all(&c, LIT("1;abcdefghi\r\n"), &lim, &k), HTTP1_ERR_BAD);
    CHECK_INT_EQ(scan_all(&c, LIT("0\r\nA: 1234567\r\n\r\n"), &lim, &k), 17); /* 12 bytes */
    CHECK_INT_EQ(scan_all(&c, LIT("0\r\nA: 12345678\r\n\r\n"), &lim, &k), HTTP1_ERR_BAD);
    CHECK_INT_EQ(scan_all(&c, LIT("0\r\nA: 1\r\nB: 23\r\n\r\n"), &lim, &k), HTTP1_ERR_BAD);
    CHECK_INT_EQ(scan_all(&c, LIT("0\r\nA: 1\r\nB:\r\n\r\n"), &lim, &k), 15);
    CHECK_INT_EQ(scan_all(&c, LIT("0\r\nABCDEFGHIJKLM: 1\r\n\r\n"), &lim, &k), HTTP1_ERR_BAD);
    /* defaults: 2^62 largest chunk, 4096-byte lines */
    CHECK_INT_EQ(scan_all(&c, LIT("4000000000000000\r\n"), NULL, &k), 18);
    CHECK_UINT_EQ(c.chunk_left, UINT64_C(1) << 62);
    CHECK_INT_EQ(scan_all(&c, LIT("4000000000000001\r\n"), NULL, &k), HTTP1_ERR_BAD);
    CHECK_INT_EQ(scan_all(&c, LIT("FFFFFFFFFFFFFFFF\r\n"), NULL, &k), HTTP1_ERR_BAD);
    static char line[5000];
    memset(line, 'a', sizeof(line));
    memcpy(line, "1;", 2);
    CHECK_INT_EQ(scan_all(&c, line, 4096, NULL, &k), 4096);
    CHECK_INT_EQ(scan_all(&c, line, 4097, NULL, &k), HTTP1_ERR_BAD);
    /* a large chunk over many calls */
    http1_chunked_init(&c);
    memset(&k, 0, sizeof(k));
    CHECK_INT_EQ(http1_chunked_scan(&c, LIT("2710\r\n"), NULL, sink_add, &k), 6);
    for (int i = 0; i < 100; i++)
        CHECK_INT_EQ(http1_chunked_scan(&c, line, 100, NULL, sink_add, &k), 100);
    CHECK_INT_EQ(http1_chunked_scan(&c, LIT("\r\n0\r\n\r\n"), NULL, sink_add, &k), 7);
    CHECK(c.done);
    CHECK_UINT_EQ(c.total, 10000);
    CHECK_UINT_EQ(k.n, 10000);
    CHECK_UINT_EQ(k.calls, 100);
}

/* Every split into two and three pieces gives the result of one call. */
static void
test_chunked_splits(void)
{
    const char b[] = "3;x=\"y\"\r\nabc\r\n10 ; q\r\n0123456789abcdef\r\n1\r\nZ\r\n0\r\nT: 1\r\n\r\n"
                     "NEXT";
    size_t n = sizeof(b) - 1;
    struct http1_chunked c1, c2;
    struct sink k1, k2;
    int64_t r1 = scan_all(&c1, b, n, NULL, &k1);
    CHECK_INT_EQ(r1, n - 4);
    CHECK_UINT_EQ(c1.total, 20);
    CHECK_MEM_EQ(k1.data, k1.n, "abc0123456789abcdefZ");
    unsigned bad = 0;
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            size_t cuts[2] = {i, j};
            int64_t r2 = scan_split(&c2, b, n, cuts, 2, &k2);
            if (r2 != r1 || !c2.done || c2.total != c1.total || k2.n != k1.n ||
                memcmp(k2.data, k1.data, k1.n) != 0)
                bad++;
        }
    }
    CHECK_UINT_EQ(bad, 0);
}

/* tether's own replies (client_reply): head, request id, extra lines, body
 * (not for HEAD), and 0 when the head does not fit. */
static void
test_reply_write(void)
{
    char out[512];
    size_t n =
        http1_reply_write(out, sizeof(out), 429, true, "abc", 3, "Retry-After: 1\r\n", false);
    CHECK_MEM_EQ(out, n,
                 "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 22\r\nConnection: close\r\nX-Request-Id: abc\r\n"
                 "Retry-After: 1\r\n\r\n429 Too Many Requests\n");
    n = http1_reply_write(out, sizeof(out), 404, false, NULL, 0, NULL, true);
    CHECK_MEM_EQ(
        out, n, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n");
    CHECK_UINT_EQ(http1_reply_write(out, 40, 404, false, NULL, 0, NULL, false), 0);
}

static void
test_error_status(void)
{
    CHECK_UINT_EQ(http1_error_status(HTTP1_ERR_TOO_LARGE), 431);
    CHECK_UINT_EQ(http1_error_status(HTTP1_ERR_TOO_MANY), 431);
    CHECK_UINT_EQ(http1_error_status(HTTP1_ERR_NOT_IMPL), 501);
    CHECK_UINT_EQ(http1_error_status(HTTP1_ERR_VERSION), 505);
    CHECK_UINT_EQ(http1_error_status(HTTP1_ERR_BAD), 400);
}

int
main(void)
{
    RUN(test_request_simple);
    RUN(test_request_methods);
    RUN(test_request_leading_crlf);
    RUN(test_request_fields);
    RUN(test_field_ids);
    RUN(test_find);
    RUN(test_absolute_form);
    RUN(test_asterisk_connect);
    RUN(test_connection_flags);
    RUN(test_content_length);
    RUN(test_transfer_encoding);
    RUN(test_host);
    RUN(test_request_rejections);
    RUN(test_early_detection);
    RUN(test_limits);
    RUN(test_resume);
    RUN(test_trickle_valid);
    RUN(test_response_valid);
    RUN(test_response_te);
    RUN(test_response_rejections);
    RUN(test_response_body_kinds);
    RUN(test_cookie_get);
    RUN(test_reason);
    RUN(test_chunked_basic);
    RUN(test_chunked_sizes_and_exts);
    RUN(test_chunked_limits);
    RUN(test_chunked_splits);
    RUN(test_reply_write);
    RUN(test_error_status);
    return unit_summary();
}
