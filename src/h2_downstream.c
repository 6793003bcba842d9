/* SPDX-License-Identifier: MIT */
/* An ordinary HTTP/2 stream as a downstream (downstream.h): at END_HEADERS the
 * checked request becomes HTTP/1.1 head bytes in the stream's input buffer,
 * parsed into the exchange's head (the parser sets flags and content_length
 * as for any HTTP/1.1 client), and the exchange runs. DATA goes into the same
 * buffer (as chunks when the request has no content-length) and the window is
 * given back only as the exchange makes room. The response comes as HTTP/1.1
 * head bytes and body spans: the head is parsed once and submitted as
 * HEADERS, the body (de-chunked) is copied into a stream buffer that the data
 * provider turns into DATA frames. Exchanges are notified, and frames flushed,
 * once per loop turn (h2_conn.c). */
#include "config.h"

#include "h2_int.h"

#include <tether/exchange.h>
#include <tether/gen.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/worker.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHUNK_FRAMING 8 /* "%x\r\n" + "\r\n" around one DATA payload (<= 16 MB) */
#define CHUNK_LAST    5 /* "0\r\n\r\n" */

static const struct downstream_ops h2x_ops;

/* ---- generation reference (as a client connection holds one) ---- */

static void
stream_take_gen(struct h2_stream *st)
{
    struct worker *w = st->h->w;
    st->gen = w->gen;
    st->gen->wrefs[w->id].n++;
}

static void
stream_drop_gen(struct h2_stream *st)
{
    struct worker *w = st->h->w;
    struct gen *g = st->gen;
    if (!g)
        return;
    st->gen = NULL;
    if (--g->wrefs[w->id].n == 0 && g != w->gen)
        gen_unref_worker(g);
}

/* ---- the request head ---- */

static struct buf *
ib_alloc(struct h2_stream *st, uint32_t size)
{
    struct worker *w = st->h->w;
    if (size <= w->bufs.bufsize)
        return buf_get(&w->bufs);
    struct buf *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->size = size;
    b->start = b->end = 0;
    b->next = NULL;
    st->ib_own = true;
    return b;
}

static void
ib_put(struct buf *b, const char *p, size_t n)
{
    memcpy(b->data + b->end, p, n);
    b->end += (uint32_t)n;
}

static void
ib_puts(struct buf *b, const char *s)
{
    ib_put(b, s, strlen(s));
}

/* A random Sec-WebSocket-Key for the pod (the client's HTTP/2 request has none). */
static void
ws_key(struct worker *w, char out[25])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t raw[18];
    for (int i = 0; i < 18; i++) {
        w->rng ^= w->rng << 13;
        w->rng ^= w->rng >> 7;
        w->rng ^= w->rng << 17;
        raw[i] = (uint8_t)(w->rng >> 24);
    }
    for (int i = 0; i < 6; i++) {
        uint32_t v = (uint32_t)raw[3 * i] << 16 | (uint32_t)raw[3 * i + 1] << 8 | raw[3 * i + 2];
        out[4 * i] = b64[(v >> 18) & 63];
        out[4 * i + 1] = b64[(v >> 12) & 63];
        out[4 * i + 2] = b64[(v >> 6) & 63];
        out[4 * i + 3] = b64[v & 63];
    }
    out[22] = out[23] = '='; /* 16 bytes encode to 22 characters and "==" */
    out[24] = 0;
}

/* true when the client sent sec-websocket-version (names are lowercase). */
static bool
has_ws_version(const struct h2_stream *st)
{
    static const char n[] = "sec-websocket-version:";
    for (uint32_t i = 0; i + sizeof(n) - 1 <= st->hdr_len; i++)
        if ((i == 0 || st->hdr[i - 1] == '\n') && memcmp(st->hdr + i, n, sizeof(n) - 1) == 0)
            return true;
    return false;
}

/* Extended CONNECT (RFC 8441): the HTTP/1.1 Upgrade request lines. */
static void
ws_lines(struct h2_stream *st, struct buf *b)
{
    char key[25];
    ws_key(st->h->w, key);
    ib_puts(b, "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ");
    ib_puts(b, key);
    ib_put(b, "\r\n", 2);
    if (!has_ws_version(st))
        ib_puts(b, "Sec-WebSocket-Version: 13\r\n");
}

/* The request as HTTP/1.1 head bytes: request line, Host from :authority (or
 * host), the regular fields, the cookie fields joined, Transfer-Encoding:
 * chunked for a body without content-length. Room for the body follows. */
static int
head_build(struct h2_stream *st, bool end_stream)
{
    const char *host = st->authority ? st->authority : st->host;
    const char *method = st->ws ? "GET" : st->method; /* extended CONNECT: an Upgrade */
    uint32_t window = st->h->lim.stream_window;
    size_t len = strlen(method) + strlen(st->path) + 13 + st->hdr_len + 2;
    if (host)
        len += strlen(host) + 8;
    if (st->cookie_len)
        len += st->cookie_len + 10;
    st->chunked = !end_stream && !st->has_cl && !st->ws;
    if (st->ws)
        len += 128; /* ws_lines; early DATA fits in the body room */
    if (st->chunked) {
        len += 28;
        st->reserve = window / 2 + CHUNK_LAST;
    }
    /* A body of known length smaller than the window needs no more room. */
    uint32_t body = end_stream ? 0 : window + st->reserve;
    if (!end_stream && st->has_cl && st->cl < window)
        body = (uint32_t)st->cl;
    if (!(st->ib = ib_alloc(st, (uint32_t)len + body)))
        return -1;
    struct buf *b = st->ib;
    ib_puts(b, method);
    ib_put(b, " ", 1);
    ib_puts(b, st->path);
    ib_put(b, " HTTP/1.1\r\n", 11);
    if (host) {
        ib_put(b, "Host: ", 6);
        ib_puts(b, host);
        ib_put(b, "\r\n", 2);
    }
    if (st->hdr_len)
        ib_put(b, st->hdr, st->hdr_len);
    if (st->cookie_len) {
        ib_put(b, "Cookie: ", 8);
        ib_put(b, st->cookie, st->cookie_len);
        ib_put(b, "\r\n", 2);
    }
    if (st->chunked)
        ib_put(b, "Transfer-Encoding: chunked\r\n", 28);
    if (st->ws)
        ws_lines(st, b);
    ib_put(b, "\r\n", 2);
    return 0;
}

/* END_HEADERS of an ordinary request that passed the checks: it becomes an
 * exchange. */
void
h2x_start(struct h2_stream *st, bool end_stream)
{
    struct h2_conn *h = st->h;
    struct vserver *vs = h2_stream_vserver(h);
    if (!vs || head_build(st, end_stream) < 0) {
        nghttp2_submit_rst_stream(h->sess, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
        return;
    }
    stream_take_gen(st);
    struct downstream ds = {.ops = &h2x_ops, .ctx = st};
    struct exchange_origin o = {.gen = st->gen,
                                .vs = vs,
                                .peer = &h->peer,
                                .ip = h->peer_ip,
                                .ip_len = h->peer_ip_len,
                                .tls = h->tls,
                                .proto = 2};
    st->x = exchange_new(h->w, &ds, &o);
    if (!st->x) {
        stream_drop_gen(st);
        h2s_answer(st, 503);
        return;
    }
    gstat_add(h->w->id, GS_H2_STREAMS, 1);
    const struct conf_vserver *cv = vs->conf;
    struct http1_limits lim = {.max_head_bytes = (uint32_t)cv->max_head_bytes,
                               .max_fields = (uint16_t)cv->max_headers};
    struct http_head *hd = exchange_head(st->x);
    int n = http1_parse_request(hd, buf_head(st->ib), buf_len(st->ib), &lim);
    if (n <= 0) {
        gstat_add(h->w->id, GS_BAD_REQUESTS, 1);
        st->x->method = hd->method;
        h2x_ops.reply(st, http1_error_status(n ? n : HTTP1_ERR_TOO_LARGE), TERM_BAD_REQUEST, NULL,
                      true);
        return;
    }
    exchange_start(st->x, (uint32_t)n);
}

/* ---- the request body ---- */

/* Give the window back for what the exchange took out of ib, keeping the
 * window open no wider than the room left (minus the framing reserve). */
static void
window_give_back(struct h2_stream *st)
{
    struct h2_conn *h = st->h;
    if (!st->ib || st->closed || !st->unconsumed)
        return;
    uint32_t room = buf_room(st->ib);
    uint32_t open_max = room > st->reserve ? room - st->reserve : 0;
    size_t keep = h->lim.stream_window > open_max ? h->lim.stream_window - open_max : 0;
    if (st->unconsumed <= keep)
        return;
    size_t give = st->unconsumed - keep;
    nghttp2_session_consume(h->sess, st->id, give);
    st->unconsumed -= give;
    h2_want_turn(h);
}

static void
kick(struct h2_stream *st, bool *flag)
{
    if (!*flag) {
        *flag = true;
        st->h->nkick++;
    }
    h2_want_turn(st->h);
}

/* DATA for a stream with an exchange: into ib (as a chunk when chunked). 0, or
 * -1 when it does not fit (a client ignoring the window or sending tiny
 * frames into a chunked body faster than the pod takes them). */
int
h2x_on_data(struct h2_stream *st, const uint8_t *data, size_t len)
{
    struct buf *b = st->ib;
    size_t need = len + (st->chunked ? CHUNK_FRAMING : 0);
    st->unconsumed += len;
    if (!b || st->req_end || buf_room(b) < need + (st->chunked ? CHUNK_LAST : 0))
        return -1;
    if (st->chunked) {
        int n = snprintf(b->data + b->end, 12, "%zx\r\n", len);
        b->end += (uint32_t)n;
        ib_put(b, (const char *)data, len);
        ib_put(b, "\r\n", 2);
        st->fresh += (uint32_t)(len + (size_t)n + 2);
    } else {
        ib_put(b, (const char *)data, len);
        st->fresh += (uint32_t)len;
    }
    kick(st, &st->kick_read);
    return 0;
}

/* END_STREAM after the head: the last chunk of a chunked body. */
void
h2x_body_end(struct h2_stream *st)
{
    if (!st->x || !st->chunked || !st->ib || buf_room(st->ib) < CHUNK_LAST)
        return;
    ib_put(st->ib, "0\r\n\r\n", CHUNK_LAST);
    st->fresh += CHUNK_LAST;
    kick(st, &st->kick_read);
}

void
h2x_run_kicks(struct h2_conn *h)
{
    struct list *pos, *tmp;
    h->nkick = 0;
    list_for_each_safe(pos, tmp, &h->streams)
    {
        struct h2_stream *st = container_of(pos, struct h2_stream, link);
        bool r = st->kick_read, wr = st->kick_write;
        st->kick_read = st->kick_write = false;
        if (r && st->x)
            exchange_readable(st->x);
        if (wr && st->x)
            exchange_writable(st->x);
    }
}

/* ---- the response ---- */

static bool
hop_by_hop(const char *n, size_t l)
{
    static const char *const names[] = {"connection",        "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade",    "te"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == l && strncasecmp(names[i], n, l) == 0)
            return true;
    return false;
}

static ssize_t
data_cb(nghttp2_session *s, int32_t id, uint8_t *out, size_t length, uint32_t *flags,
        nghttp2_data_source *src, void *ud)
{
    struct h2_stream *st = src->ptr;
    size_t avail = st->ob ? buf_len(st->ob) : 0;
    size_t n = buf_take(st->ob, out, length);
    (void)s, (void)id, (void)ud;
    if (n) {
        h2_progress(st->h);
        if (st->wblocked) {
            st->wblocked = false;
            kick(st, &st->kick_write);
        }
    }
    if (avail == n && st->resp_eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        st->ended = true;
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static void
data_resume(struct h2_stream *st)
{
    if (st->deferred && !st->closed) {
        st->deferred = false;
        nghttp2_session_resume_data(st->h->sess, st->id);
    }
    h2_want_turn(st->h);
}

/* The field list of a parsed HTTP/1 head: hop-by-hop fields dropped, names
 * lowercased into <lower> (room for every name). Returns the count. */
static size_t
head_nv(const struct http_head *rh, const char *base, char *lower, nghttp2_nv *nv, size_t n)
{
    size_t used = 0;
    for (uint16_t i = 0; i < rh->nfields; i++) {
        const struct http_field *fl = &rh->fields[i];
        const char *name = base + fl->name_off;
        if (hop_by_hop(name, fl->name_len))
            continue;
        for (uint16_t k = 0; k < fl->name_len; k++) {
            char c = name[k];
            lower[used + k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        nv[n++] = (nghttp2_nv){(uint8_t *)lower + used, (uint8_t *)base + fl->value_off,
                               fl->name_len, fl->value_len, NGHTTP2_NV_FLAG_NONE};
        used += fl->name_len;
    }
    return n;
}

/* One response head at <p> (the exchange's head bytes): interim ones go out
 * as HEADERS without END_STREAM, the final one with the data provider when a
 * body follows. Returns the head's length, or -1. */
static int
resp_head(struct h2_stream *st, const char *p, size_t len)
{
    static _Thread_local struct http_head rh;
    static _Thread_local nghttp2_nv nv[HTTP_MAX_FIELDS + 1];
    struct http1_limits lim = {.max_head_bytes = (uint32_t)len, .max_fields = HTTP_MAX_FIELDS};
    char code[8];
    http_head_init(&rh);
    int n = http1_parse_response(&rh, p, len, &lim);
    if (n <= 0 || rh.status == 101)
        return -1;
    snprintf(code, sizeof(code), "%03u", (unsigned)rh.status % 1000);
    nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
    size_t nn = head_nv(&rh, p, st->h->w->scratch, nv, 1);
    if (rh.status < 200)
        return nghttp2_submit_headers(st->h->sess, NGHTTP2_FLAG_NONE, st->id, NULL, nv, nn, NULL) ==
                       0
                   ? n
                   : -1;
    st->rbody = (uint8_t)http1_response_body(&rh, st->is_head ? HTTP_M_HEAD : HTTP_M_GET);
    if (st->rbody == HTTP1_BODY_CHUNKED)
        http1_chunked_init(&st->ck);
    bool body =
        st->rbody != HTTP1_BODY_NONE && !(st->rbody == HTTP1_BODY_LENGTH && rh.content_length == 0);
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_cb};
    st->submitted = true;
    if (!body)
        st->ended = true;
    return nghttp2_submit_response(st->h->sess, st->id, nv, nn, body ? &prd : NULL) == 0 ? n : -1;
}

static void
ob_data(void *ctx, const char *p, size_t n)
{
    ib_put(ctx, p, n);
}

/* Take body bytes into ob (de-chunked). Returns the raw bytes taken. */
static size_t
body_take(struct h2_stream *st, const char *p, size_t n)
{
    static const struct http1_chunk_limits lim = {4096, 16384, 0};
    struct buf *b = st->ob;
    if (st->ended)
        return n; /* no body (HEAD, 204, 304): nothing goes out */
    if (!b && !(b = st->ob = buf_get(&st->h->w->bufs)))
        return 0;
    if (buf_room(b) < 1024)
        buf_compact(b);
    size_t k = n < buf_room(b) ? n : buf_room(b);
    if (st->rbody != HTTP1_BODY_CHUNKED) {
        ib_put(b, p, k);
        return k;
    }
    int64_t r = http1_chunked_scan(&st->ck, p, k, &lim, ob_data, b);
    return r < 0 ? 0 : (size_t)r;
}

static ssize_t
h2x_write(void *ctx, const struct iovec *iov, int n)
{
    struct h2_stream *st = ctx;
    size_t taken = 0, off = 0;
    int i = 0;
    if (st->closed)
        return IO_ERROR;
    if (!st->submitted) {
        int hl = resp_head(st, iov[0].iov_base, iov[0].iov_len);
        if (hl < 0)
            return IO_ERROR;
        taken = off = (size_t)hl;
        h2_want_turn(st->h);
        if (!st->submitted)
            return (ssize_t)taken; /* an interim head: the exchange goes on */
    }
    for (; i < n; i++, off = 0) {
        if (off >= iov[i].iov_len)
            continue;
        size_t want = iov[i].iov_len - off;
        size_t k = body_take(st, (const char *)iov[i].iov_base + off, want);
        taken += k;
        if (k < want)
            break;
    }
    if (taken == 0) {
        st->wblocked = true;
        return IO_AGAIN;
    }
    data_resume(st);
    return (ssize_t)taken;
}

/* ---- the exchange's end ---- */

/* The exchange is over (logged and freed): drop what the stream held for it. */
static void
exchange_over(struct h2_stream *st)
{
    st->x = NULL;
    st->dl = 0;
    stream_drop_gen(st);
    if (!st->req_end && !st->ws)
        st->rst_after = true; /* the body is not read any more */
    if (!st->closed && st->unconsumed) {
        nghttp2_session_consume(st->h->sess, st->id, st->unconsumed);
        st->unconsumed = 0;
        h2_want_turn(st->h);
    }
}

/* tether's own reply: :status, text body, x-request-id and <extra> lines. */
static void
reply_submit(struct h2_stream *st, unsigned status, const char *rid, size_t rid_len,
             const char *extra, bool head_only)
{
    nghttp2_nv nv[16];
    char code[8], clen[16], body[96], lower[256];
    size_t n = 0, used = 0;
    int blen = snprintf(body, sizeof(body), "%u %s\n", status, http_reason(status));
    snprintf(code, sizeof(code), "%03u", status % 1000);
    snprintf(clen, sizeof(clen), "%d", blen);
#define NV(a, al, b, bl) (nghttp2_nv){(uint8_t *)(a), (uint8_t *)(b), al, bl, NGHTTP2_NV_FLAG_NONE}
    nv[n++] = NV(":status", 7, code, 3);
    nv[n++] = NV("content-type", 12, "text/plain", 10);
    nv[n++] = NV("content-length", 14, clen, strlen(clen));
    if (rid_len)
        nv[n++] = NV("x-request-id", 12, rid, rid_len);
    for (const char *p = extra; p && *p && n < 16;) {
        const char *colon = strchr(p, ':'), *eol = strstr(p, "\r\n");
        if (!colon || !eol || colon > eol || used + (size_t)(colon - p) > sizeof(lower))
            break;
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        for (const char *q = p; q < colon; q++)
            lower[used + (size_t)(q - p)] = (*q >= 'A' && *q <= 'Z') ? (char)(*q + 32) : *q;
        nv[n++] = NV(lower + used, (size_t)(colon - p), v, (size_t)(eol - v));
        used += (size_t)(colon - p);
        p = eol + 2;
    }
#undef NV
    st->rbody = HTTP1_BODY_LENGTH;
    st->resp_eof = true;
    st->submitted = true;
    if (!head_only && (st->ob || (st->ob = buf_get(&st->h->w->bufs)))) {
        st->ob->start = st->ob->end = 0;
        ib_put(st->ob, body, (size_t)blen);
        nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_cb};
        nghttp2_submit_response(st->h->sess, st->id, nv, n, &prd);
    } else {
        st->ended = true;
        nghttp2_submit_response(st->h->sess, st->id, nv, n, NULL);
    }
    h2_want_turn(st->h);
}

static void
h2x_reply(void *ctx, unsigned status, unsigned term, const char *extra, bool close)
{
    struct h2_stream *st = ctx;
    struct request *x = st->x;
    char rid[REQUEST_ID_MAX];
    size_t rid_len = x->req_id_len;
    bool head_only = x->method == HTTP_M_HEAD;
    (void)close; /* the stream ends with the reply; the connection stays */
    memcpy(rid, x->req_id, rid_len);
    x->status = (uint16_t)status;
    if (!x->term)
        x->term = (uint8_t)term;
    x->bytes_out += (uint64_t)snprintf(NULL, 0, "%u %s\n", status, http_reason(status));
    request_log(x);
    exchange_free(x);
    exchange_over(st);
    if (st->closed || st->submitted) {
        if (!st->closed)
            nghttp2_submit_rst_stream(st->h->sess, NGHTTP2_FLAG_NONE, st->id,
                                      NGHTTP2_INTERNAL_ERROR);
        return;
    }
    reply_submit(st, status, rid, rid_len, extra, head_only);
}

static void
h2x_done(void *ctx, uint32_t next, bool close)
{
    struct h2_stream *st = ctx;
    (void)next, (void)close; /* the stream ends; the connection goes on */
    exchange_over(st);
    st->resp_eof = true;
    data_resume(st);
}

static void
h2x_reset(void *ctx, unsigned term)
{
    struct h2_stream *st = ctx;
    struct request *x = st->x;
    if (x->state != RS_HEAD || x->bytes_in > 0) {
        if (!x->term)
            x->term = (uint8_t)term;
        request_log(x);
    }
    exchange_free(x);
    exchange_over(st);
    if (!st->closed) {
        bool client = term == TERM_CLIENT_ABORT || term == TERM_CLIENT_TIMEOUT;
        nghttp2_submit_rst_stream(st->h->sess, NGHTTP2_FLAG_NONE, st->id,
                                  client ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR);
        h2_want_turn(st->h);
    }
}

void
h2x_release(struct h2_stream *st, unsigned term)
{
    st->closed = true;
    if (st->x)
        exchange_gone(st->x, term);
    stream_drop_gen(st);
    if (st->ib_own)
        free(st->ib);
    else
        buf_put(&st->h->w->bufs, st->ib);
    buf_put(&st->h->w->bufs, st->ob);
    st->ib = st->ob = NULL;
}

void
h2x_tick(struct h2_stream *st, double now)
{
    if (st->x && st->dl > 0 && now >= st->dl)
        exchange_gone(st->x, TERM_CLIENT_TIMEOUT);
}

void
h2x_frame_sent(struct h2_stream *st, const nghttp2_frame *f)
{
    if (st->rst_after && !st->req_end && !st->closed && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS)) {
        st->rst_after = false;
        nghttp2_submit_rst_stream(st->h->sess, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    }
}

/* ---- the other operations ---- */

static struct buf *
h2x_input(void *ctx)
{
    return ((struct h2_stream *)ctx)->ib;
}

static ssize_t
h2x_read(void *ctx)
{
    struct h2_stream *st = ctx;
    uint32_t n = st->fresh;
    st->fresh = 0;
    window_give_back(st);
    return n ? (ssize_t)n : IO_AGAIN;
}

static void
h2x_pause(void *ctx)
{
    (void)ctx; /* the window only opens as room is made (window_give_back) */
}

static void
h2x_resume(void *ctx)
{
    window_give_back(ctx);
}

static void
h2x_write_done(void *ctx)
{
    ((struct h2_stream *)ctx)->wblocked = false;
}

static bool
h2x_write_blocked(void *ctx)
{
    return ((struct h2_stream *)ctx)->wblocked;
}

static bool
h2x_closing(void *ctx)
{
    return ((struct h2_stream *)ctx)->h->goaway;
}

static void
h2x_deadline(void *ctx, unsigned kind, double secs)
{
    struct h2_stream *st = ctx;
    st->dl = kind == DS_TMO_NONE ? 0 : ev_now(st->h->w->loop) + secs;
    if (st->dl)
        h2_tick_fast(st->h);
}

static bool
h2x_admit(void *ctx, const char *rip, size_t rip_len, const char *base, const struct http_head *h,
          const char *route)
{
    (void)ctx, (void)rip, (void)rip_len, (void)base, (void)h, (void)route;
    return true; /* limit_conn counts the HTTP/2 connection, not its streams */
}

/* The pod's 101 (rewritten as for a client, in <a_head>) becomes a 200 for
 * the extended CONNECT: its fields but the hop-by-hop ones and
 * sec-websocket-accept. Returns the count, 0 when it does not parse. */
static size_t
upgrade_nv(struct h2_stream *st, struct buf *a_head, nghttp2_nv *nv)
{
    static _Thread_local struct http_head rh;
    uint32_t len = a_head ? buf_len(a_head) : 0;
    struct http1_limits lim = {.max_head_bytes = len, .max_fields = HTTP_MAX_FIELDS};
    http_head_init(&rh);
    if (!len || http1_parse_response(&rh, buf_head(a_head), len, &lim) <= 0)
        return 0;
    nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE};
    size_t n = head_nv(&rh, buf_head(a_head), st->h->w->scratch, nv, 1), k = 1;
    for (size_t i = 1; i < n; i++)
        if (!(nv[i].namelen == 20 && memcmp(nv[i].name, "sec-websocket-accept", 20) == 0))
            nv[k++] = nv[i];
    return k;
}

/* A 101 to an extended CONNECT: the stream answers 200 and carries the tunnel
 * itself (h2_tunnel.c); the exchange starts no socket tunnel (ta->carried). */
static bool
h2x_upgrade(void *ctx, struct tunnel_args *ta, uint32_t next)
{
    static _Thread_local nghttp2_nv nv[HTTP_MAX_FIELDS + 1];
    struct h2_stream *st = ctx;
    struct buf *ib = st->ib;
    if (!st->ws || st->closed || st->submitted)
        return false;
    size_t nn = upgrade_nv(st, ta->a_head, nv);
    const char *early = ib && ib->end > next ? ib->data + next : NULL;
    size_t early_len = early ? ib->end - next : 0;
    ta->a_tls = st->h->tls;
    if (!nn || h2t_open(st, ta, nv, nn, early, early_len) < 0)
        return false;
    buf_put(&st->h->w->bufs, ta->a_head); /* the 101 head went out as HEADERS */
    ta->a_head = NULL;
    ta->carried = true;
    return true;
}

/* After upgrade(): the exchange was logged and freed, the stream goes on as
 * the tunnel without a generation. */
static void
h2x_release_op(void *ctx)
{
    struct h2_stream *st = ctx;
    st->x = NULL;
    st->dl = 0;
    stream_drop_gen(st);
    if (st->ib_own)
        free(st->ib);
    else
        buf_put(&st->h->w->bufs, st->ib);
    st->ib = NULL;
    st->fresh = 0;
}

static const struct downstream_ops h2x_ops = {
    .proto = "h2",
    .input = h2x_input,
    .read = h2x_read,
    .pause = h2x_pause,
    .resume = h2x_resume,
    .write = h2x_write,
    .write_done = h2x_write_done,
    .write_blocked = h2x_write_blocked,
    .closing = h2x_closing,
    .deadline = h2x_deadline,
    .admit = h2x_admit,
    .reply = h2x_reply,
    .done = h2x_done,
    .reset = h2x_reset,
    .upgrade = h2x_upgrade,
    .release = h2x_release_op,
};
