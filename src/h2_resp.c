/* SPDX-License-Identifier: MIT */
/* HTTP/2 responses over a lane (extended CONNECT only; ordinary streams are
 * exchanges, h2_downstream.c): the HTTP/1.1 response a lane carries back is parsed, its
 * hop-by-hop fields dropped, and sent as HEADERS; the body (de-chunked in
 * place) goes out as DATA through an nghttp2 data provider, the lane paused
 * while the client's window holds it back. A 101 to an extended CONNECT
 * becomes 200 and the stream a tunnel. */
#include "config.h"

#include "h2_int.h"

#include <tether/worker.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the response, from the lane ---- */

static bool
body_complete(const struct h2_stream *st)
{
    if (st->rstate == H2R_DONE)
        return true;
    if (st->rstate != H2R_BODY || (st->rb && buf_len(st->rb) > 0))
        return false;
    switch (st->rbody) {
    case HTTP1_BODY_LENGTH:
        return st->left == 0;
    case HTTP1_BODY_CHUNKED:
        return st->ck.done != 0;
    default:
        return st->lane_eof;
    }
}

static ssize_t
data_read_cb(nghttp2_session *s, int32_t id, uint8_t *out, size_t length, uint32_t *flags,
             nghttp2_data_source *src, void *ud)
{
    struct h2_stream *st = src->ptr;
    struct buf *b = st->rb;
    size_t avail = b ? buf_len(b) : 0;
    (void)s, (void)id, (void)ud;
    if (st->rbody == HTTP1_BODY_LENGTH && (int64_t)avail > st->left)
        avail = (size_t)st->left;
    size_t n = avail < length ? avail : length;
    if (n) {
        memcpy(out, buf_head(b), n);
        b->start += (uint32_t)n;
        if (st->rbody == HTTP1_BODY_LENGTH)
            st->left -= (int64_t)n;
        if (buf_len(b) == 0)
            b->start = b->end = st->dec = 0;
        h2_progress(st->h);
        if (st->lane && (st->lc.flags & CONN_READ_PAUSED))
            conn_read_start(st->h->w->loop, &st->lc);
    }
    if (st->rbody == HTTP1_BODY_LENGTH && st->left == 0 && b)
        b->start = b->end = st->dec = 0; /* bytes past the length are not ours */
    if (body_complete(st)) {
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

static bool
hop_by_hop(const char *n, size_t l)
{
    static const char *const names[] = {"connection",          "keep-alive", "proxy-connection",
                                        "transfer-encoding",   "upgrade",    "te",
                                        "sec-websocket-accept"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == l && strncasecmp(names[i], n, l) == 0)
            return true;
    return false;
}

/* Submit the response HEADERS from the parsed HTTP/1.1 head (status 200 for a
 * WebSocket's 101). */
static int
submit_head(struct h2_stream *st, bool has_body)
{
    struct http1_head *rh = st->rh;
    const char *base = st->rb->data + st->rb->start;
    char *lower = st->h->w->scratch;
    size_t used = 0;
    nghttp2_nv nv[HTTP1_MAX_FIELDS + 1];
    size_t n = 0;
    char code[8];
    snprintf(code, sizeof(code), "%03u", st->tunnel ? 200u : (unsigned)rh->status % 1000);
    nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (uint16_t i = 0; i < rh->nfields; i++) {
        const struct http1_field *fl = &rh->fields[i];
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
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read_cb};
    st->submitted = true;
    return nghttp2_submit_response(st->h->sess, st->id, nv, n, has_body ? &prd : NULL);
}

/* A complete response head is in rb: answer the stream. 1 go on, 0 need more,
 * -1 reset the stream. */
static int
resp_head(struct h2_stream *st)
{
    struct buf *b = st->rb;
    struct http1_limits lim = {.max_head_bytes = b->size, .max_fields = HTTP1_MAX_FIELDS};
    if (!st->rh) {
        if (!(st->rh = malloc(sizeof(*st->rh))))
            return -1;
        http1_head_init(st->rh);
    }
    int n = http1_parse_response(st->rh, buf_head(b), buf_len(b), &lim);
    if (n == HTTP1_NEED_MORE)
        return (buf_room(b) == 0 || st->lane_eof) ? -1 : 0;
    if (n < 0)
        return -1;
    unsigned status = st->rh->status;
    if (status >= 100 && status < 200 && !(status == 101 && st->ws)) {
        b->start += (uint32_t)n; /* interim: not relayed */
        http1_head_init(st->rh);
        return 1;
    }
    if (status == 101) {
        st->tunnel = true;
        st->rbody = HTTP1_BODY_CLOSE;
    } else {
        st->rbody = (uint8_t)http1_response_body(st->rh, st->is_head ? HTTP1_M_HEAD : HTTP1_M_GET);
        st->left = st->rh->content_length;
        if (st->rbody == HTTP1_BODY_CHUNKED)
            http1_chunked_init(&st->ck);
    }
    bool has_body =
        st->rbody != HTTP1_BODY_NONE && !(st->rbody == HTTP1_BODY_LENGTH && st->left == 0);
    int rc = submit_head(st, has_body);
    b->start += (uint32_t)n;
    free(st->rh);
    st->rh = NULL;
    if (rc != 0)
        return -1;
    st->rstate = has_body ? H2R_BODY : H2R_DONE;
    if (!has_body)
        st->ended = true;
    if (st->rbody == HTTP1_BODY_CHUNKED) {
        buf_compact(b);
        st->dec = 0;
    }
    return 1;
}

struct dechunk {
    char *base;
    uint32_t w;
};

static void
dechunk_data(void *ctx, const char *p, size_t n)
{
    struct dechunk *d = ctx;
    memmove(d->base + d->w, p, n);
    d->w += (uint32_t)n;
}

/* Chunked: decode the new raw bytes [dec, end) in place. */
static int
resp_dechunk(struct h2_stream *st)
{
    static const struct http1_chunk_limits lim = {4096, 8192, UINT64_MAX >> 4};
    struct buf *b = st->rb;
    struct dechunk d = {b->data, st->dec};
    if (st->ck.done || b->end == st->dec)
        return 0;
    int64_t r =
        http1_chunked_scan(&st->ck, b->data + st->dec, b->end - st->dec, &lim, dechunk_data, &d);
    if (r < 0)
        return -1;
    b->end = st->dec = d.w;
    return 0;
}

static void
lane_pump(struct h2_stream *st)
{
    struct h2_conn *h = st->h;
    struct worker *w = h->w;
    if (!st->rb && !(st->rb = buf_get(&w->bufs))) {
        nghttp2_submit_rst_stream(h->sess, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    struct buf *b = st->rb;
    if (buf_room(b) == 0 && b->start > 0 && st->rbody != HTTP1_BODY_CHUNKED) {
        buf_compact(b);
    } else if (buf_room(b) == 0 && b->start > 0) {
        uint32_t s0 = b->start;
        buf_compact(b);
        st->dec -= s0;
    }
    if (buf_room(b) == 0 && st->rstate != H2R_HEAD) {
        conn_read_pause(w->loop, &st->lc); /* the client reads slower than the pod */
        return;
    }
    ssize_t r = conn_read(&st->lc, buf_tail(b), buf_room(b));
    if (r == IO_AGAIN)
        return;
    if (r <= 0) {
        st->lane_eof = true;
        conn_read_pause(w->loop, &st->lc);
    } else {
        b->end += (uint32_t)r;
    }
    int rc = 1;
    while (rc == 1 && st->rstate == H2R_HEAD)
        rc = resp_head(st);
    if (rc >= 0 && st->rstate == H2R_BODY && st->rbody == HTTP1_BODY_CHUNKED)
        rc = resp_dechunk(st);
    bool broken = rc < 0 || (st->lane_eof && st->rstate == H2R_BODY &&
                             ((st->rbody == HTTP1_BODY_LENGTH && st->left > (int64_t)buf_len(b)) ||
                              (st->rbody == HTTP1_BODY_CHUNKED && !st->ck.done)));
    if (broken || (st->lane_eof && st->rstate == H2R_HEAD)) {
        nghttp2_submit_rst_stream(h->sess, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        conn_read_pause(w->loop, &st->lc);
        return;
    }
    if (st->deferred && st->submitted) {
        st->deferred = false;
        nghttp2_session_resume_data(h->sess, st->id);
    }
}

void
h2s_lane_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct h2_stream *st = io->data;
    struct h2_conn *h = st->h;
    (void)loop, (void)revents;
    h2_event_enter(h);
    lane_pump(st);
    h2_event_leave(h);
}
