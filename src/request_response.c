/* SPDX-License-Identifier: MIT */
/* The response side of a request: interim and final heads, learning, the
 * head rewritten for the client, body streaming, WebSocket upgrade. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/forward.h>
#include <tether/gen.h>
#include <tether/http_rewrite.h>
#include <tether/outlier.h>
#include <tether/ratelimit.h>
#include <tether/redis.h>
#include <tether/request.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/upstream_conn.h>
#include <tether/worker.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request_int.h"

static void
up_compact(struct request *req)
{
    struct buf *b = req->up->ibuf;
    if (!b || buf_room(b) || b->start == 0)
        return;
    uint32_t shift = b->start;
    buf_compact(b);
    if (req->state == RS_RESP) {
        req->resp_out -= shift;
        req->resp_scan -= shift;
    }
}

void
request_up_readable(struct request *req)
{
    struct upconn *up = req->up;
    struct worker *w = req->w;
    up_compact(req);
    ssize_t r = upconn_fill(up);
    if (r == IO_AGAIN)
        return;
    if (r == IO_NOROOM) {
        conn_read_pause(w->loop, &up->c);
        return;
    }
    if (req->per_try && r > 0) {
        /* The pod started answering: from here the route's timeout bounds it. */
        req->per_try = false;
        upconn_deadline(up, ms_to_s(req->route->conf->timeout_ms));
    }
    if (r == IO_CLOSED || r == IO_ERROR) {
        if (req->state == RS_RESP) {
            if (req->resp_body == HTTP1_BODY_CLOSE && r == IO_CLOSED) {
                req->resp_done = true;
                req->server_close = true;
                conn_read_pause(w->loop, &up->c);
                exchange_writable(req);
                return;
            }
            /* Cut mid-response: the client cannot be told with a status. */
            CTR_ADD(req->srv->rt->t[w->id].resets, 1);
            outlier_failure(req->srv, w->id);
            req->term = TERM_SERVER_RESET;
            exchange_gone(req, TERM_SERVER_RESET);
            return;
        }
        request_up_failed(req, TERM_SERVER_RESET, r == IO_CLOSED ? ECONNRESET : errno);
        return;
    }
    if (req->state == RS_RESP) {
        if (fwd_resp_scan(req) < 0) {
            req->term = TERM_BAD_RESPONSE;
            exchange_gone(req, TERM_BAD_RESPONSE);
            return;
        }
        upconn_deadline(up, ms_to_s(req->route->conf->timeout_ms));
        exchange_writable(req);
        return;
    }
    request_on_response(req);
}

/* Build the head for the client from the parsed response head in up->ibuf. */
static int
response_head_out(struct request *req, const char *base, bool interim)
{
    struct worker *w = req->w;
    char cookie[320];
    size_t clen = 0;
    if (!interim && req->set_cookie && req->srv)
        clen = affinity_cookie_header(req->gen->aff, req->srv, affinity_session_key(&req->ac),
                                      req->cli_tls, (uint32_t)(time_wall_ms() / 1000), cookie,
                                      sizeof(cookie));
    struct rewrite_resp rw = {
        .buf = base,
        .h = &req->h,
        .keepalive = interim || req->keepalive,
        .client_http10 = req->version_minor == 0,
        .set_cookie = clen ? cookie : NULL,
        .set_cookie_len = clen,
        .req_id = interim ? NULL : req->req_id,
        .req_id_len = interim ? 0 : req->req_id_len,
        .upgrade = req->h.status == 101,
        .drop_te = req->dechunk,
    };
    if (!req->chead && !(req->chead = buf_get(&w->bufs)))
        return -1;
    int n = rewrite_response_head(buf_tail(req->chead), buf_room(req->chead), &rw);
    if (n < 0)
        return -1;
    req->chead->end += (uint32_t)n;
    return 0;
}

/* 101: the client and pod sides become a tunnel; the exchange ends here. */
static void
request_upgrade(struct request *req)
{
    struct worker *w = req->w;
    struct upconn *up = req->up;
    const struct conf_route *rc = req->route->conf;
    uint32_t head_len = req->chead ? buf_len(req->chead) : 0;
    struct tunnel_args ta = {
        .a_head = req->chead,
        .b = &up->c,
        .b_in = up->ibuf,
        .rt = req->srv->rt,
        .idle_secs = ms_to_s(rc->websocket_timeout_ms),
        .fin_secs = ms_to_s(rc->websocket_fin_timeout_ms),
        .rid = req->req_id,
        .rid_len = req->req_id_len,
        .ip = req->rip,
        .ip_len = req->rip_len,
    };
    if (!req->ds.ops->upgrade(req->ds.ctx, &ta, req->body_end) ||
        (!ta.carried && tunnel_start(w, &ta) < 0)) {
        buf_put(&w->bufs, ta.a_in);
        exchange_gone(req, TERM_INTERNAL);
        return;
    }
    req->chead = NULL;
    up->ibuf = NULL;
    req->bytes_out += head_len;
    request_set_state(req, RS_DONE);
    request_log(req);
    req->term = TERM_OK;
    /* The upconn and client objects go; their sockets live on in the tunnel. */
    req->up = NULL;
    upconn_close(up, false);
    struct downstream ds = req->ds;
    exchange_free(req);
    ds.ops->release(ds.ctx);
}

/* The final response head <st> is parsed: note how its body is framed and
 * whether either connection can be kept. */
static void
resp_framing(struct request *req, unsigned st)
{
    req->t_resp = ev_now(req->w->loop);
    req->status = (uint16_t)st;
    req->resp_body = (uint8_t)http1_response_body(&req->h, req->method);
    if (st == 101)
        req->resp_body = HTTP1_BODY_NONE;
    if (req->h.flags & HTTP_F_CONN_CLOSE)
        req->server_close = true;
    if (req->resp_body == HTTP1_BODY_CLOSE) {
        req->server_close = true;
        req->keepalive = false;
    }
    if (req->resp_body == HTTP1_BODY_CHUNKED) {
        http1_chunked_init(&req->resp_chunk);
        if (req->version_minor == 0) {
            req->dechunk = true;
            req->keepalive = false;
        }
    }
    if (req->resp_body == HTTP1_BODY_LENGTH)
        req->resp_body_left = (uint64_t)req->h.content_length;
    /* A response before the whole request body: the rest cannot be skipped
     * reliably, so neither connection is reused. */
    if (!req->req_body_done) {
        req->keepalive = false;
        req->server_close = true;
    }
    if (req->ds.ops->closing(req->ds.ctx))
        req->keepalive = false;
}

/* An unparsable response head: 502 (counted against the pod). */
static void
resp_bad(struct request *req)
{
    CTR_ADD(req->srv->rt->t[req->w->id].resets, 1);
    outlier_failure(req->srv, req->w->id);
    request_fail(req, TERM_BAD_RESPONSE, 502);
}

/* Bad body framing right after the head. */
static void
resp_bad_body(struct request *req)
{
    struct worker *w = req->w;
    /* Nothing reached the client yet: it can still get a clean 502. */
    if (req->chead && req->bytes_out == 0) {
        buf_put(&w->bufs, req->chead);
        req->chead = NULL;
        req->resp_head_sent = false;
        CTR_ADD(req->srv->rt->t[w->id].resets, 1);
        req->server_close = true;
        request_fail(req, TERM_BAD_RESPONSE, 502);
        return;
    }
    req->term = TERM_BAD_RESPONSE;
    exchange_gone(req, TERM_BAD_RESPONSE);
}

/* The final head is parsed (<n> bytes over <base>): learn, send it on, and
 * start the body (or the tunnel). */
static void
resp_start(struct request *req, const char *base, int n, unsigned st)
{
    struct upconn *up = req->up;
    struct buf *b = up->ibuf;
    resp_framing(req, st);
    request_affinity_response(req, base);
    if (response_head_out(req, base, false) < 0) {
        resp_bad(req);
        return;
    }
    b->start += (uint32_t)n;
    req->resp_out = req->resp_scan = b->start;
    request_set_state(req, RS_RESP);
    req->resp_head_sent = true;
    req->replayable = false;
    fwd_req_reclaim(req);
    outlier_success(req->srv, st);
    if (st >= 500)
        outlier_failure(req->srv, req->w->id);
    if (st == 101) {
        request_upgrade(req);
        return;
    }
    if (fwd_resp_scan(req) < 0) {
        resp_bad_body(req);
        return;
    }
    upconn_deadline(up, ms_to_s(req->route->conf->timeout_ms));
    exchange_writable(req);
}

void
request_on_response(struct request *req)
{
    struct buf *b = req->up->ibuf;
    struct http1_limits lim = {.max_head_bytes = b->size, .max_fields = HTTP_MAX_FIELDS};

    for (;;) {
        if (buf_len(b) == 0)
            return;
        const char *base = buf_head(b);
        int n = http1_parse_response(&req->h, base, buf_len(b), &lim);
        if (n == HTTP1_NEED_MORE) {
            if (buf_room(b) == 0 && b->start == 0)
                resp_bad(req);
            return;
        }
        if (n < 0) {
            resp_bad(req);
            return;
        }
        unsigned st = req->h.status;
        if (st >= 100 && st < 200 && st != 101) {
            /* Interim (100 Continue, 103): relay to HTTP/1.1 clients, keep waiting. */
            if (req->version_minor == 1 && response_head_out(req, base, true) < 0) {
                resp_bad(req);
                return;
            }
            b->start += (uint32_t)n;
            http_head_init(&req->h);
            if (fwd_resp_send(req) == FWD_ERROR) {
                exchange_gone(req, TERM_CLIENT_ABORT);
                return;
            }
            continue;
        }
        if (st >= 502 && st <= 504 && request_retry_status(req, st))
            return;
        if (st == 101 && !req->ws_upgrade) {
            resp_bad(req);
            return;
        }
        resp_start(req, base, n, st);
        return;
    }
}

void
exchange_writable(struct request *req)
{
    struct worker *w = req->w;
    if (req->store_pending)
        return; /* a learned session is on its way to Redis: the answer resumes */
    if (req->state != RS_RESP) {
        /* Interim responses only; nothing else to write yet. */
        if (fwd_resp_send(req) == FWD_ERROR)
            exchange_gone(req, TERM_CLIENT_ABORT);
        return;
    }
    int rc = fwd_resp_send(req);
    if (rc == FWD_ERROR) {
        exchange_gone(req, TERM_CLIENT_ABORT);
        return;
    }
    struct upconn *up = req->up;
    if (rc == FWD_AGAIN) {
        ds_deadline(&req->ds, DS_TMO_SEND, ms_to_s(req->route->conf->timeout_ms));
        if (up && up->ibuf && buf_room(up->ibuf) == 0 && up->ibuf->start == 0)
            conn_read_pause(w->loop, &up->c);
        return;
    }
    if (req->resp_done && !req->chead && (!up || !up->ibuf || up->ibuf->start >= req->resp_out)) {
        request_complete(req);
        return;
    }
    ds_deadline(&req->ds, DS_TMO_NONE, 0);
    if (up && !(up->c.flags & CONN_READ_EOF))
        conn_read_start(w->loop, &up->c);
}
