/* SPDX-License-Identifier: MIT */
/* The oracle of the whole-path fuzzer: it reads what the client sent and got and
 * what each pod got, and checks the three things a proxy owes a client whatever
 * the bytes:
 *   - what tether writes is HTTP: every response to the client and every request
 *     to a pod parses under the strict parser (a NUL or a bare LF in a head tether
 *     built is a corrupted copy, as with a too long X-Request-Id);
 *   - answers come in order: the j-th final response answers the j-th request, as
 *     the X-Request-Id tether echoes shows whenever the client chose the id;
 *   - nothing vanishes: while the connection stays open and the loop is idle,
 *     every complete request the client sent was answered, or the first one that
 *     was not is at a pod waiting for its answer (one exchange at a time).
 * A violation prints what was seen and aborts, so libFuzzer keeps the input. */
#include "config.h"

#include <tether/http1.h>
#include <tether/http_rewrite.h>
#include <tether/proxy_proto.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exchange.h"

void
ex_bytes_add(struct ex_bytes *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            abort();
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void
ex_bytes_free(struct ex_bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* One message as the oracle sees it. */
struct msg {
    uint8_t method;  /* requests: enum http_method */
    uint16_t status; /* responses */
    uint8_t id_len;  /* 0: no id (requests: none tether would keep) */
    char id[EX_ID_MAX];
};

/* The head parser keeps 256 fields inline: one, reused (single thread). */
static struct http_head hd;

static const struct http1_chunk_limits chunk_lim = {
    .max_line_bytes = 4096, .max_trailer_bytes = 16384, .max_chunk_size = 0};

static __attribute__((noreturn)) void
fail(const char *what, const struct ex_view *v, size_t nreq, size_t nresp)
{
    fprintf(stderr,
            "fuzz_exchange: ORACLE: %s\n  client sent %zu bytes (%zu complete requests), "
            "got %zu bytes (%zu final responses); %u pod connections\n",
            what, v->client_sent->len, nreq, v->client_got->len, nresp, v->npods);
    abort();
}

/* The first X-Request-Id of the head at <base> into <m> (truncated at EX_ID_MAX,
 * which no valid id reaches). <valid_only>: only an id tether would keep. */
static void
take_id(struct msg *m, const char *base, bool valid_only)
{
    int i = http_head_find(&hd, base, "X-Request-Id", 12);
    m->id_len = 0;
    if (i < 0)
        return;
    const struct http_field *f = &hd.fields[i];
    if (valid_only && !request_id_valid(base + f->value_off, f->value_len))
        return;
    size_t n = f->value_len < EX_ID_MAX ? f->value_len : EX_ID_MAX - 1;
    memcpy(m->id, base + f->value_off, n);
    m->id_len = (uint8_t)(n ? n : 1);
    if (n == 0)
        m->id[0] = '\0';
}

static bool
same_id(const struct msg *a, const struct msg *b)
{
    return a->id_len && a->id_len == b->id_len && memcmp(a->id, b->id, a->id_len) == 0;
}

/* Length of the body at p[0..n) framed as <kind> (LENGTH: <cl>), or -1 when it
 * is incomplete, -2 when its chunked framing is broken. */
static long long
body_len(unsigned kind, long long cl, const char *p, size_t n)
{
    if (kind == HTTP1_BODY_LENGTH)
        return (unsigned long long)cl <= n ? cl : -1;
    if (kind == HTTP1_BODY_CHUNKED) {
        struct http1_chunked c;
        http1_chunked_init(&c);
        int64_t r = http1_chunked_scan(&c, p, n, &chunk_lim, NULL, NULL);
        if (r < 0)
            return -2;
        return c.done ? (long long)r : -1;
    }
    return 0;
}

/* The complete requests of the client's stream, in order, up to the first one
 * after which tether owes nothing more on this connection (close, CONNECT). *tail: bytes follow
 * that are not a complete request (tether may answer them once, with an error). */
static size_t
client_requests(const struct ex_view *v, struct msg *out, size_t max, bool *tail)
{
    const char *p = v->client_sent->p;
    size_t n = v->client_sent->len, off = 0, k = 0;
    struct http1_limits lim = {v->max_head_bytes, (uint16_t)v->max_headers};
    *tail = false;
    if (v->proxy_protocol) {
        struct sock_addr src;
        int h = proxy_proto_parse(p, n < PROXY_PROTO_MAX ? n : PROXY_PROTO_MAX, &src);
        if (h <= 0)
            return 0;
        off = (size_t)h;
    }
    while (off < n && k < max) {
        http_head_init(&hd);
        int rc = http1_parse_request(&hd, p + off, n - off, &lim);
        if (rc <= 0) {
            *tail = true;
            break;
        }
        const char *base = p + off;
        long long bl = body_len(http1_request_body(&hd), hd.content_length, p + off + rc,
                                n - off - (size_t)rc);
        if (bl < 0) {
            *tail = true;
            break;
        }
        struct msg *m = &out[k++];
        m->method = hd.method;
        take_id(m, base, true);
        off += (size_t)rc + (size_t)bl;
        bool keep = hd.version_minor == 1
                        ? !(hd.flags & HTTP_F_CONN_CLOSE)
                        : (hd.flags & HTTP_F_CONN_KEEPALIVE) && !(hd.flags & HTTP_F_CONN_CLOSE);
        /* An upgrade answered 101 ends the HTTP part; the responses show that. */
        if (!keep || hd.method == HTTP_M_CONNECT)
            break;
    }
    return k;
}

/* The complete final responses the client got. A head tether wrote that does not
 * parse is a finding. *upgraded: a 101 came (raw tunnel bytes follow). */
static size_t
client_responses(const struct ex_view *v, const struct msg *req, size_t nreq, struct msg *out,
                 size_t max, bool *upgraded)
{
    const char *p = v->client_got->p;
    size_t n = v->client_got->len, off = 0, k = 0;
    struct http1_limits lim = {1u << 24, HTTP_MAX_FIELDS};
    *upgraded = false;
    while (off < n && k < max) {
        http_head_init(&hd);
        int rc = http1_parse_response(&hd, p + off, n - off, &lim);
        if (rc == HTTP1_ERR_BAD || rc == HTTP1_ERR_VERSION)
            fail("tether sent the client a response head that does not parse", v, nreq, k);
        if (rc <= 0)
            break; /* incomplete, or more fields than the parser takes: stop here */
        const char *base = p + off;
        if (hd.status == 101) {
            *upgraded = true;
            break;
        }
        if (hd.status < 200) {
            off += (size_t)rc;
            continue;
        }
        unsigned method = k < nreq ? req[k].method : HTTP_M_GET;
        unsigned kind = http1_response_body(&hd, method);
        long long bl;
        if (kind == HTTP1_BODY_CLOSE) {
            if (!v->client_eof)
                break;
            bl = (long long)(n - off - (size_t)rc);
        } else {
            bl = body_len(kind, hd.content_length, p + off + rc, n - off - (size_t)rc);
        }
        if (bl == -2)
            fail("tether sent the client a chunked body whose framing is broken", v, nreq, k);
        if (bl < 0)
            break;
        struct msg *m = &out[k++];
        m->status = hd.status;
        take_id(m, base, false);
        off += (size_t)rc + (size_t)bl;
    }
    return k;
}

/* Parse a head a pod got, strictly: every request tether sends is HTTP/1.1
 * with exactly one Host (an HTTP/1.0 request without one gets the upstream's
 * name), so the strict parser must accept it. */
static int
pod_parse(const char *p, size_t n)
{
    struct http1_limits lim = {1u << 24, HTTP_MAX_FIELDS};
    http_head_init(&hd);
    return http1_parse_request(&hd, p, n, &lim);
}

/* The ids of every request the pods got (tether always sends one). */
static size_t
pod_requests(const struct ex_view *v, struct msg *out, size_t max, size_t nreq, size_t nresp)
{
    size_t k = 0;
    for (uint32_t i = 0; i < v->npods; i++) {
        const char *p = v->pod_got[i]->p;
        size_t n = v->pod_got[i]->len, off = 0;
        bool maybe_tunnel = false;
        while (off < n && k < max) {
            int rc = pod_parse(p + off, n - off);
            if (rc < 0 && !maybe_tunnel)
                fail("tether sent a pod a request head that does not parse", v, nreq, nresp);
            if (rc <= 0)
                break;
            const char *base = p + off;
            long long bl = body_len(http1_request_body(&hd), hd.content_length, p + off + rc,
                                    n - off - (size_t)rc);
            struct msg *m = &out[k++];
            take_id(m, base, false);
            if (!m->id_len)
                fail("tether sent a pod a request without X-Request-Id", v, nreq, nresp);
            if (bl == -2 && !maybe_tunnel)
                fail("tether sent a pod a chunked body whose framing is broken", v, nreq, nresp);
            if (bl < 0)
                break;
            if ((hd.flags & HTTP_F_UPGRADE_WS) && (hd.flags & HTTP_F_CONN_UPGRADE))
                maybe_tunnel = true; /* after a 101 the bytes are the client's own */
            off += (size_t)rc + (size_t)bl;
        }
    }
    return k;
}

/* Messages with an id, sorted by it, to look ids up in O(log n). */
static int
cmp_id(const void *a, const void *b)
{
    const struct msg *x = *(const struct msg *const *)a, *y = *(const struct msg *const *)b;
    if (x->id_len != y->id_len)
        return x->id_len < y->id_len ? -1 : 1;
    return memcmp(x->id, y->id, x->id_len);
}

static const struct msg **
index_ids(const struct msg *m, size_t n, size_t *out_n)
{
    const struct msg **ix = calloc(n + 1, sizeof(*ix));
    size_t k = 0;
    if (!ix)
        abort();
    for (size_t i = 0; i < n; i++)
        if (m[i].id_len)
            ix[k++] = &m[i];
    qsort(ix, k, sizeof(*ix), cmp_id);
    *out_n = k;
    return ix;
}

/* The first message of <ix> with the id of <m>, or NULL. */
static const struct msg *
find_id(const struct msg **ix, size_t n, const struct msg *m)
{
    const struct msg *const *hit = bsearch(&m, ix, n, sizeof(*ix), cmp_id);
    while (hit && hit > ix && cmp_id(hit - 1, &m) == 0)
        hit--;
    return hit ? *hit : NULL;
}

void
ex_oracle_check(const struct ex_view *v)
{
    size_t cap_req = v->client_sent->len / 16 + 2, cap_resp = v->client_got->len / 16 + 2;
    size_t cap_pod = 2;
    for (uint32_t i = 0; i < v->npods; i++)
        cap_pod += v->pod_got[i]->len / 16 + 1;
    struct msg *req = calloc(cap_req, sizeof(*req));
    struct msg *resp = calloc(cap_resp, sizeof(*resp));
    struct msg *pod = calloc(cap_pod, sizeof(*pod));
    bool tail, upgraded;
    char what[256];
    if (!req || !resp || !pod)
        abort();
    size_t nreq = client_requests(v, req, cap_req, &tail);
    size_t nresp = client_responses(v, req, nreq, resp, cap_resp, &upgraded);
    size_t npod = pod_requests(v, pod, cap_pod, nreq, nresp);
    size_t nreq_ix, nresp_ix;
    const struct msg **req_ix = index_ids(req, nreq, &nreq_ix);
    const struct msg **resp_ix = index_ids(resp, nresp, &nresp_ix);

    /* In order, one answer each (plus one for a broken or cut last request). */
    if (nresp > nreq + (tail ? 1 : 0))
        fail("more final responses than requests", v, nreq, nresp);
    for (size_t j = 0; j < nresp; j++) {
        if (!resp[j].id_len)
            continue; /* tether's own answer to a head it could not parse */
        if (j < nreq && req[j].id_len) {
            if (!same_id(&resp[j], &req[j])) {
                snprintf(what, sizeof(what),
                         "response %zu carries X-Request-Id \"%.*s\", request %zu sent \"%.*s\"",
                         j + 1, resp[j].id_len, resp[j].id, j + 1, req[j].id_len, req[j].id);
                fail(what, v, nreq, nresp);
            }
            continue;
        }
        /* The request had no id of its own: its answer must not carry another's. */
        const struct msg *other = find_id(req_ix, nreq_ix, &resp[j]);
        if (other) {
            snprintf(what, sizeof(what),
                     "response %zu carries the X-Request-Id of request %zu (\"%.*s\")", j + 1,
                     (size_t)(other - req) + 1, other->id_len, other->id);
            fail(what, v, nreq, nresp);
        }
    }
    /* Nothing vanished: the connection is open, the loop idle, requests remain
     * unanswered: the first of them must be at a pod. */
    if (v->quiet && !v->client_eof && !v->client_shut && !upgraded && nresp < nreq) {
        bool at_pod = false;
        for (size_t i = 0; i < npod && !at_pod; i++)
            at_pod = !find_id(resp_ix, nresp_ix, &pod[i]);
        if (!at_pod) {
            snprintf(what, sizeof(what),
                     "request %zu of %zu was neither answered nor forwarded, the connection is "
                     "open and tether idle (bytes vanished)",
                     nresp + 1, nreq);
            fail(what, v, nreq, nresp);
        }
    }
    free(req_ix);
    free(resp_ix);
    free(req);
    free(resp);
    free(pod);
}
