/* SPDX-License-Identifier: MIT */
/* A WebSocket over HTTP/2 (RFC 8441) after the pod's 101: the stream owns the
 * pod socket and is the tunnel. Pod bytes go into one pool buffer that a data
 * provider turns into DATA frames (the pod is not read while it is full, so
 * the client's window holds the pod back); DATA goes to the pod at once, the
 * rest waits in a buffer and the window is given back only as bytes reach the
 * pod. END_STREAM from the client is a FIN to the pod; the pod's EOF is our
 * END_STREAM; a reset stream or a lost connection closes the pod socket.
 * Accounting (gauges, counters, tunnel_end log line) is tunnel.c's. */
#include "config.h"

#include "h2_int.h"

#include <tether/stats.h>
#include <tether/term.h>
#include <tether/tunnel.h>
#include <tether/worker.h>

#include <stdlib.h>
#include <string.h>

struct h2_tunnel {
    struct h2_stream *st;
    struct conn c;           /* the pod socket */
    struct buf *down;        /* pod bytes for DATA frames (pool buffer), or NULL */
    char *up;                /* DATA bytes not yet written to the pod */
    uint32_t up_len, up_cap; /* up_cap: one stream window and the early bytes */
    ev_timer idle;           /* fires at last + idle_secs (lazily re-armed) */
    double last;             /* last byte moved */
    double idle_secs;        /* the route's websocket_timeout */
    double fin_secs;         /* websocket_fin_timeout: the limit once half-closed */
    struct tunnel_acct acct; /* counters, bytes, ids (tunnel.c) */
    unsigned term;           /* why it ends (0: decided at the end) */
    bool pod_eof;            /* the pod sent FIN */
    bool client_eof;         /* END_STREAM received */
    bool pod_shut;           /* FIN sent to the pod */
    bool deferred;           /* the data provider said DEFERRED */
    bool failed;             /* RST_STREAM submitted: nothing more moves */
};

static void pod_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void pod_write_cb(struct ev_loop *loop, ev_io *io, int revents);

/* End the tunnel: RST_STREAM <code>; the stream's close frees it. */
static void
tun_fail(struct h2_tunnel *t, unsigned term, uint32_t code)
{
    struct h2_stream *st = t->st;
    struct ev_loop *loop = st->h->w->loop;
    if (t->failed)
        return;
    t->failed = true;
    if (!t->term)
        t->term = term;
    conn_read_pause(loop, &t->c);
    conn_write_done(loop, &t->c);
    ev_timer_stop(loop, &t->idle);
    if (!st->closed)
        nghttp2_submit_rst_stream(st->h->sess, NGHTTP2_FLAG_NONE, st->id, code);
    h2_want_turn(st->h);
}

/* One side ended: the other gets the shorter fin timeout. */
static void
tun_half_closed(struct h2_tunnel *t)
{
    struct ev_loop *loop = t->st->h->w->loop;
    if (t->fin_secs >= t->idle_secs)
        return;
    t->idle_secs = t->fin_secs;
    double left = t->last + t->fin_secs - ev_now(loop);
    ev_timer_stop(loop, &t->idle);
    ev_timer_set(&t->idle, left > 0 ? left : 0, 0);
    ev_timer_start(loop, &t->idle);
}

static void
data_resume(struct h2_tunnel *t)
{
    struct h2_stream *st = t->st;
    if (t->deferred && !st->closed) {
        t->deferred = false;
        nghttp2_session_resume_data(st->h->sess, st->id);
    }
    h2_want_turn(st->h);
}

/* ---- pod -> client ---- */

static ssize_t
down_cb(nghttp2_session *s, int32_t id, uint8_t *out, size_t length, uint32_t *flags,
        nghttp2_data_source *src, void *ud)
{
    struct h2_tunnel *t = src->ptr;
    struct buf *b = t->down;
    size_t avail = b ? buf_len(b) : 0;
    size_t n = buf_take(b, out, length);
    (void)s, (void)id, (void)ud;
    if (n) {
        h2_progress(t->st->h);
        if (buf_len(b) == 0) {
            buf_put(&t->st->h->w->bufs, b); /* no buffer while idle */
            t->down = NULL;
        }
        if (!t->pod_eof && !t->failed)
            conn_read_start(t->st->h->w->loop, &t->c); /* room again */
    }
    if (avail == n && t->pod_eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (n == 0) {
        t->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* The pod is readable: one read into the free room of <down>. */
static void
pod_pump(struct h2_tunnel *t)
{
    struct worker *w = t->st->h->w;
    if (t->failed || t->pod_eof)
        return;
    if (!t->down && !(t->down = buf_get(&w->bufs))) {
        tun_fail(t, TERM_INTERNAL, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    struct buf *b = t->down;
    if (buf_room(b) == 0)
        buf_compact(b);
    if (buf_room(b) == 0) {
        conn_read_pause(w->loop, &t->c); /* the client's window holds the pod back */
        return;
    }
    ssize_t r = conn_read(&t->c, buf_tail(b), buf_room(b));
    if (r == IO_AGAIN) {
        if (t->c.flags & CONN_TLS_READ_WANTS_WRITE)
            conn_write_want(w->loop, &t->c);
        return;
    }
    if (r == IO_ERROR) {
        tun_fail(t, TERM_SERVER_RESET, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (r == IO_CLOSED) {
        t->pod_eof = true;
        conn_read_pause(w->loop, &t->c);
        tun_half_closed(t);
    } else {
        b->end += (uint32_t)r;
        t->acct.bytes_ba += (uint64_t)r;
        t->last = ev_now(w->loop);
        if (buf_room(b) == 0)
            conn_read_pause(w->loop, &t->c);
    }
    data_resume(t);
}

/* ---- client -> pod ---- */

/* Give back the window for <n> bytes written to the pod. */
static void
window_back(struct h2_tunnel *t, size_t n)
{
    struct h2_stream *st = t->st;
    if (n > st->unconsumed)
        n = st->unconsumed;
    if (!n || st->closed)
        return;
    nghttp2_session_consume(st->h->sess, st->id, n);
    st->unconsumed -= n;
    h2_want_turn(st->h);
}

/* Write <up> to the pod; FIN once drained after END_STREAM. */
static void
pod_flush(struct h2_tunnel *t)
{
    struct ev_loop *loop = t->st->h->w->loop;
    while (t->up_len && !t->failed) {
        struct iovec iov = {.iov_base = t->up, .iov_len = t->up_len};
        ssize_t r = conn_writev(&t->c, &iov, 1);
        if (r == IO_AGAIN) {
            conn_write_want(loop, &t->c);
            return;
        }
        if (r <= 0) {
            tun_fail(t, TERM_SERVER_RESET, NGHTTP2_INTERNAL_ERROR);
            return;
        }
        memmove(t->up, t->up + r, t->up_len - (size_t)r);
        t->up_len -= (uint32_t)r;
        t->last = ev_now(loop);
        window_back(t, (size_t)r);
    }
    if (t->failed)
        return;
    conn_write_done(loop, &t->c);
    free(t->up); /* no buffer while idle */
    t->up = NULL;
    t->up_cap = 0;
    if (t->client_eof && !t->pod_shut) {
        t->c.ops->shutdown_write(&t->c);
        t->c.flags |= CONN_WRITE_SHUT;
        t->pod_shut = true;
    }
}

/* Queue <len> bytes for the pod. -1: more than the window allows. */
static int
up_put(struct h2_tunnel *t, const uint8_t *data, size_t len)
{
    if (!t->up) {
        t->up_cap = t->st->h->lim.stream_window + t->up_cap;
        if (!(t->up = malloc(t->up_cap)))
            return -1;
    }
    if (len > t->up_cap - t->up_len)
        return -1;
    memcpy(t->up + t->up_len, data, len);
    t->up_len += (uint32_t)len;
    return 0;
}

void
h2t_on_data(struct h2_stream *st, const uint8_t *data, size_t len)
{
    struct h2_tunnel *t = st->tun;
    st->unconsumed += len;
    if (t->failed || t->client_eof)
        return;
    t->acct.bytes_ab += len;
    if (up_put(t, data, len) < 0) {
        tun_fail(t, TERM_CLIENT_ABORT, NGHTTP2_FLOW_CONTROL_ERROR);
        return;
    }
    pod_flush(t);
}

void
h2t_body_end(struct h2_stream *st)
{
    struct h2_tunnel *t = st->tun;
    t->client_eof = true;
    if (t->failed)
        return;
    tun_half_closed(t);
    pod_flush(t);
}

bool
h2t_send_pending(const struct h2_stream *st)
{
    return st->tun && st->tun->down && buf_len(st->tun->down) > 0;
}

/* ---- events ---- */

static void
pod_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct h2_tunnel *t = io->data;
    struct h2_conn *h = t->st->h;
    (void)loop, (void)revents;
    h2_event_enter(h);
    pod_pump(t);
    h2_event_leave(h);
}

static void
pod_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct h2_tunnel *t = io->data;
    struct h2_conn *h = t->st->h;
    (void)revents;
    h2_event_enter(h);
    if (t->c.flags & CONN_TLS_READ_WANTS_WRITE) {
        t->c.flags &= ~CONN_TLS_READ_WANTS_WRITE;
        ev_feed_event(loop, &t->c.rio, EV_READ);
    }
    if (t->up_len)
        pod_flush(t);
    else
        conn_write_done(loop, &t->c);
    h2_event_leave(h);
}

static void
idle_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
    struct h2_tunnel *t = container_of(timer, struct h2_tunnel, idle);
    struct h2_conn *h = t->st->h;
    double now = ev_now(loop), due = t->last + t->idle_secs;
    (void)revents;
    if (due > now + 0.0005) {
        ev_timer_set(timer, due - now, 0);
        ev_timer_start(loop, timer);
        return;
    }
    h2_event_enter(h);
    tun_fail(t, TERM_TUNNEL_TIMEOUT, NGHTTP2_CANCEL);
    h2_event_leave(h);
}

/* ---- start and end ---- */

/* Take the pod socket out of <src> (the upconn goes without it). */
static void
adopt(struct h2_tunnel *t, struct conn *src, struct ev_loop *loop)
{
    t->pod_eof = (src->flags & CONN_READ_EOF) != 0;
    ev_io_stop(loop, &src->rio);
    ev_io_stop(loop, &src->wio);
    conn_init(&t->c, src->fd, pod_read_cb, pod_write_cb);
    t->c.ops = src->ops;
    t->c.ssl = src->ssl;
    t->c.flags = t->pod_eof ? CONN_READ_EOF : 0;
    t->c.rio.data = t;
    t->c.wio.data = t;
    src->fd = -1;
    src->ssl = NULL;
    src->ops = &conn_plain_ops;
}

int
h2t_open(struct h2_stream *st, struct tunnel_args *ta, const nghttp2_nv *nv, size_t nn,
         const char *early, size_t early_len)
{
    struct worker *w = st->h->w;
    struct h2_tunnel *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    nghttp2_data_provider prd = {.source.ptr = t, .read_callback = down_cb};
    if (nghttp2_submit_response(st->h->sess, st->id, nv, nn, &prd) != 0) {
        free(t);
        return -1;
    }
    t->st = st;
    st->tun = t;
    st->submitted = true;
    tunnel_account_open(w, &t->acct, ta);
    t->idle_secs = ta->idle_secs;
    t->fin_secs = ta->fin_secs;
    t->last = ev_now(w->loop);
    adopt(t, ta->b, w->loop);
    if (ta->b_in && buf_len(ta->b_in)) {
        t->down = ta->b_in; /* the pod's first bytes after its 101 */
        t->acct.bytes_ba = buf_len(t->down);
    } else
        buf_put(&w->bufs, ta->b_in);
    ta->b_in = NULL;
    ev_init(&t->idle, idle_cb);
    ev_timer_set(&t->idle, t->idle_secs, 0);
    ev_timer_start(w->loop, &t->idle);
    t->up_cap = (uint32_t)early_len;
    if (early_len) {
        /* DATA that came before the 101 (its window is still held). */
        t->acct.bytes_ab = early_len;
        if (up_put(t, (const uint8_t *)early, early_len) == 0)
            pod_flush(t);
    }
    if (t->pod_eof)
        tun_half_closed(t);
    else
        conn_read_start(w->loop, &t->c);
    if (t->c.ssl) /* OpenSSL may hold decrypted bytes read with the head */
        ev_feed_event(w->loop, &t->c.rio, EV_READ);
    h2_want_turn(st->h);
    return 0;
}

void
h2t_free(struct h2_stream *st)
{
    struct h2_tunnel *t = st->tun;
    struct worker *w = st->h->w;
    if (!t)
        return;
    st->tun = NULL;
    ev_timer_stop(w->loop, &t->idle);
    conn_close(w->loop, &t->c, false);
    if (!t->term)
        t->term = t->pod_eof && t->client_eof ? TERM_TUNNEL_CLOSED : TERM_CLIENT_ABORT;
    tunnel_account_close(w, &t->acct, t->term);
    buf_put(&w->bufs, t->down);
    free(t->up);
    free(t);
}
