/* SPDX-License-Identifier: MIT */
/* Body streaming: request bodies from the client buffer to the pod, response
 * bodies from the pod's buffer to the client, each with the pending head in the
 * same writev, bounded by the buffers (back-pressure pauses the reader). */
#include "config.h"

#include <tether/affinity.h>
#include <tether/buf.h>
#include <tether/forward.h>
#include <tether/gen.h>
#include <tether/worker.h>

#include "request_int.h"

static const struct http1_chunk_limits chunk_limits = {
    .max_line_bytes = 4096,
    .max_trailer_bytes = 16384,
    .max_chunk_size = 0,
};

int
fwd_req_scan(struct request *req)
{
    struct buf *b = ds_input(&req->ds);
    if (req->req_body_done || !b)
        return 0;
    uint32_t avail = b->end - req->body_end;
    if (req->req_body == HTTP1_BODY_LENGTH) {
        uint32_t take = avail < req->req_body_left ? avail : (uint32_t)req->req_body_left;
        req->body_end += take;
        req->req_body_left -= take;
        req->req_body_bytes += take;
        if (req->req_body_left == 0)
            req->req_body_done = true;
        return 0;
    }
    /* Chunked: validate framing; bytes after the final CRLF are the next request. */
    int64_t n = http1_chunked_scan(&req->req_chunk, b->data + req->body_end, avail, &chunk_limits,
                                   NULL, NULL);
    if (n < 0)
        return -1;
    req->body_end += (uint32_t)n;
    req->req_body_bytes = req->req_chunk.total;
    /* A chunk announced bigger than what is left of the limit is refused as soon
     * as its size line is complete, not after its bytes trickled in. */
    if (req->req_chunk.total +
            (http1_chunked_in_data(&req->req_chunk) ? req->req_chunk.chunk_left : 0) >
        req->route->conf->max_body_bytes)
        return -2;
    if (req->req_chunk.done)
        req->req_body_done = true;
    return 0;
}

void
fwd_req_reclaim(struct request *req)
{
    struct buf *b = ds_input(&req->ds);
    if (!b || req->replayable)
        return;
    if (req->body_off == b->end) {
        /* Everything received was sent: start over at the front. */
        b->start = b->end = 0;
        req->body_off = req->body_end = req->body_start = 0;
    } else if (buf_room(b) == 0 && req->body_off > 0) {
        uint32_t shift = req->body_off;
        b->start = req->body_off;
        buf_compact(b);
        req->body_off -= shift;
        req->body_end -= shift;
        req->body_start = 0;
    }
}

int
fwd_req_send(struct request *req)
{
    struct upconn *up = req->up;
    struct buf *b = ds_input(&req->ds);
    struct worker *w = req->w;
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        uint32_t hlen = buf_len(req->uhead) - req->uhead_off;
        uint32_t blen = b ? req->body_end - req->body_off : 0;
        if (hlen) {
            iov[n].iov_base = buf_head(req->uhead) + req->uhead_off;
            iov[n++].iov_len = hlen;
        }
        if (blen) {
            iov[n].iov_base = b->data + req->body_off;
            iov[n++].iov_len = blen;
        }
        if (n == 0)
            break;
        ssize_t r = conn_writev(&up->c, iov, n);
        if (r == IO_AGAIN) {
            conn_write_want(w->loop, &up->c);
            return FWD_AGAIN;
        }
        if (r <= 0)
            return FWD_ERROR;
        req->sent_any = true;
        uint32_t k = (uint32_t)r;
        uint32_t h = k < hlen ? k : hlen;
        req->uhead_off += h;
        req->body_off += k - h;
    }
    conn_write_done(w->loop, &up->c);
    fwd_req_reclaim(req);
    return FWD_DONE;
}

/* JSON learning sees the first data bytes of the body. */
static void
learn_data(void *ctx, const char *p, size_t n)
{
    struct request *req = ctx;
    if (req->learn && request_affinity_learn_body(req, p, n))
        req->learn = false;
}

/* De-chunking for HTTP/1.0 clients: data spans are moved down to resp_out. */
struct dechunk_ctx {
    struct request *req;
    char *base;
};

static void
dechunk_data(void *ctx, const char *p, size_t n)
{
    struct dechunk_ctx *d = ctx;
    char *dst = d->base + d->req->resp_out;
    if (dst != p)
        memmove(dst, p, n);
    d->req->resp_out += (uint32_t)n;
    learn_data(d->req, dst, n);
}

int
fwd_resp_scan(struct request *req)
{
    struct buf *b = req->up->ibuf;
    if (!b)
        return 0;
    uint32_t avail = b->end - req->resp_scan;
    if (req->resp_done) {
        /* Bytes after the end of the response: the pod is confused. */
        if (avail)
            req->server_close = true;
        return 0;
    }
    switch (req->resp_body) {
    case HTTP1_BODY_LENGTH: {
        uint32_t take = avail < req->resp_body_left ? avail : (uint32_t)req->resp_body_left;
        if (req->learn && take)
            learn_data(req, b->data + req->resp_scan, take);
        req->resp_scan += take;
        req->resp_out = req->resp_scan;
        req->resp_body_left -= take;
        if (req->resp_body_left == 0)
            req->resp_done = true;
        break;
    }
    case HTTP1_BODY_CHUNKED: {
        int64_t n;
        if (req->dechunk) {
            struct dechunk_ctx d = {req, b->data};
            n = http1_chunked_scan(&req->resp_chunk, b->data + req->resp_scan, avail, &chunk_limits,
                                   dechunk_data, &d);
        } else {
            n = http1_chunked_scan(&req->resp_chunk, b->data + req->resp_scan, avail, &chunk_limits,
                                   req->learn ? learn_data : NULL, req);
        }
        if (n < 0)
            return -1;
        req->resp_scan += (uint32_t)n;
        if (!req->dechunk)
            req->resp_out = req->resp_scan;
        if (req->resp_chunk.done)
            req->resp_done = true;
        break;
    }
    case HTTP1_BODY_CLOSE:
        if (req->learn && avail)
            learn_data(req, b->data + req->resp_scan, avail);
        req->resp_scan += avail;
        req->resp_out = req->resp_scan;
        break;
    default:
        req->resp_done = true;
        break;
    }
    if (req->resp_done && b->end > req->resp_scan)
        req->server_close = true;
    return 0;
}

int
fwd_resp_send(struct request *req)
{
    struct upconn *up = req->up;
    struct worker *w = req->w;
    struct buf *b = up ? up->ibuf : NULL;
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        uint32_t hlen = req->chead ? buf_len(req->chead) : 0;
        /* Body bytes only once the final head was parsed (not after a 1xx). */
        uint32_t blen =
            (b && req->state == RS_RESP && req->resp_out > b->start) ? req->resp_out - b->start : 0;
        if (hlen) {
            iov[n].iov_base = buf_head(req->chead);
            iov[n++].iov_len = hlen;
        }
        if (blen) {
            iov[n].iov_base = buf_head(b);
            iov[n++].iov_len = blen;
        }
        if (n == 0)
            break;
        ssize_t r = ds_write(&req->ds, iov, n);
        if (r == IO_AGAIN)
            return FWD_AGAIN; /* the downstream watches for writability */
        if (r <= 0)
            return FWD_ERROR;
        uint32_t k = (uint32_t)r;
        uint32_t h = k < hlen ? k : hlen;
        req->bytes_out += k;
        if (h) {
            req->chead->start += h;
            if (buf_len(req->chead) == 0) {
                buf_put(&w->bufs, req->chead);
                req->chead = NULL;
            }
        }
        if (k - h)
            b->start += k - h;
    }
    req->ds.ops->write_done(req->ds.ctx);
    if (b && req->state == RS_RESP && b->start == req->resp_out) {
        /* Skip de-chunking leftovers, then start the buffer over when empty. */
        b->start = req->resp_scan;
        if (b->start == b->end) {
            b->start = b->end = 0;
            req->resp_out = req->resp_scan = 0;
        }
    }
    return FWD_DONE;
}
