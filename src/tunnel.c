/* SPDX-License-Identifier: MIT */
/* WebSocket tunnels: two sockets, bytes copied both ways through a buffer taken
 * only while a write is pending, idle timeout, half-close, back-pressure. */
#include "config.h"

#include <tether/client.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/ratelimit.h>
#include <tether/request.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/upstream.h>
#include <tether/upstream_conn.h>
#include <tether/worker.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tun_flag {
    TUN_A_EOF = 1u << 0,  /* client sent FIN */
    TUN_B_EOF = 1u << 1,  /* pod sent FIN */
    TUN_A_SHUT = 1u << 2, /* FIN sent to the client */
    TUN_B_SHUT = 1u << 3, /* FIN sent to the pod */
};

/* One direction: bytes read from <from> are written to <to>. */
struct pipe_end {
    struct conn c;
    struct buf *pending; /* bytes read from the other side, not yet written here */
};

struct tunnel {
    struct pipe_end a; /* client side */
    struct pipe_end b; /* pod side */
    ev_timer idle;
    ev_tstamp last; /* last byte moved */
    double idle_secs;
    struct worker *w;
    struct server_rt *rt;    /* counters and the tunnels gauge */
    struct conn_slot *limit; /* limit_conn slot of the client */
    struct list link;
    uint64_t bytes_ab, bytes_ba;
    ev_tstamp started;
    uint8_t flags;
    uint8_t rid_len, ip_len;
    char rid[40];
    char ip[48];
};

static void tun_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void tun_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void tun_idle_cb(struct ev_loop *loop, ev_timer *t, int revents);

static void
tunnel_close(struct tunnel *t, unsigned term)
{
    struct worker *w = t->w;
    ev_tstamp now = ev_now(w->loop);
    ev_timer_stop(w->loop, &t->idle);
    conn_close(w->loop, &t->a.c, false);
    conn_close(w->loop, &t->b.c, false);
    buf_put(&w->bufs, t->a.pending);
    buf_put(&w->bufs, t->b.pending);
    if (atomic_load_explicit(&access_log_fd, memory_order_relaxed) >= 0) {
        char *line = access_buf_reserve(&w->alog, 512);
        char ts[32];
        log_time_iso(ts, sizeof(ts), time_wall_ms());
        if (line) {
            int n = snprintf(line, 512,
                             "{\"time\":\"%s\",\"client\":\"%.*s\",\"event\":\"tunnel_end\","
                             "\"server\":\"%s\",\"status\":101,\"bytes_in\":%llu,"
                             "\"bytes_out\":%llu,\"duration_ms\":%.3f,\"request_id\":\"%.*s\","
                             "\"term\":\"%s\"}\n",
                             ts, t->ip_len, t->ip, t->rt->key, (unsigned long long)t->bytes_ab,
                             (unsigned long long)t->bytes_ba, (now - t->started) * 1e3, t->rid_len,
                             t->rid, term_name(term));
            if (n > 0 && n < 512)
                access_buf_commit(&w->alog, (size_t)n);
        }
    }
    atomic_fetch_sub(&t->rt->tunnels, 1);
    server_rt_unref(t->rt);
    if (t->limit)
        conn_slot_release(t->limit);
    gstat_add(w->id, GS_TUNNELS_ACTIVE, -1);
    gstat_add(w->id, GS_CONN_ACTIVE, -1);
    atomic_fetch_sub(&conns_open, 1);
    list_remove(&t->link);
    w->ntunnels--;
    free(t);
    worker_client_gone(w);
}

void
tunnel_close_all(struct worker *w)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->tunnels)
    {
        tunnel_close(container_of(pos, struct tunnel, link), TERM_SHUTDOWN);
    }
}

static void
tun_touch(struct tunnel *t)
{
    t->last = ev_now(t->w->loop);
}

/* Write what <to> has pending. 1 drained, 0 blocked, -1 error. */
static int
tun_flush(struct tunnel *t, struct pipe_end *to)
{
    struct buf *b = to->pending;
    while (b && buf_len(b)) {
        struct iovec iov = {.iov_base = buf_head(b), .iov_len = buf_len(b)};
        ssize_t r = conn_writev(&to->c, &iov, 1);
        if (r == IO_AGAIN) {
            conn_write_want(t->w->loop, &to->c);
            return 0;
        }
        if (r <= 0)
            return -1;
        b->start += (uint32_t)r;
        tun_touch(t);
    }
    conn_write_done(t->w->loop, &to->c);
    buf_put(&t->w->bufs, b);
    to->pending = NULL;
    return 1;
}

static struct pipe_end *
other(struct tunnel *t, struct pipe_end *e)
{
    return e == &t->a ? &t->b : &t->a;
}

/* <from> reached EOF and everything it sent was written: pass the FIN on. */
static void
tun_half_close(struct tunnel *t, struct pipe_end *from)
{
    struct pipe_end *to = other(t, from);
    uint8_t shut = to == &t->a ? TUN_A_SHUT : TUN_B_SHUT;
    if (!(t->flags & shut)) {
        to->c.ops->shutdown_write(&to->c);
        t->flags |= shut;
    }
    if ((t->flags & (TUN_A_EOF | TUN_B_EOF)) == (TUN_A_EOF | TUN_B_EOF))
        tunnel_close(t, TERM_TUNNEL_CLOSED);
}

/* Bytes are readable on <from>: read once, write to the other side. */
static void
tun_pump(struct tunnel *t, struct pipe_end *from)
{
    struct worker *w = t->w;
    struct pipe_end *to = other(t, from);
    uint8_t eof = from == &t->a ? TUN_A_EOF : TUN_B_EOF;
    if (to->pending)
        return; /* back-pressure: the read side is paused until it drains */
    struct buf *b = buf_get(&w->bufs);
    if (!b) {
        tunnel_close(t, TERM_INTERNAL);
        return;
    }
    ssize_t r = conn_read(&from->c, buf_tail(b), buf_room(b));
    if (r == IO_AGAIN) {
        buf_put(&w->bufs, b);
        return;
    }
    if (r == IO_CLOSED || r == IO_ERROR) {
        buf_put(&w->bufs, b);
        if (r == IO_ERROR) {
            tunnel_close(t, from == &t->a ? TERM_CLIENT_ABORT : TERM_SERVER_RESET);
            return;
        }
        t->flags |= eof;
        conn_read_pause(w->loop, &from->c);
        tun_half_close(t, from);
        return;
    }
    b->end += (uint32_t)r;
    if (from == &t->a)
        t->bytes_ab += (uint64_t)r;
    else
        t->bytes_ba += (uint64_t)r;
    tun_touch(t);
    to->pending = b;
    int rc = tun_flush(t, to);
    if (rc < 0) {
        tunnel_close(t, to == &t->a ? TERM_CLIENT_ABORT : TERM_SERVER_RESET);
        return;
    }
    if (rc == 0)
        conn_read_pause(w->loop, &from->c);
}

static void
tun_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct pipe_end *e = container_of(io, struct pipe_end, c.rio);
    (void)loop;
    (void)revents;
    tun_pump(io->data, e);
}

static void
tun_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct pipe_end *to = container_of(io, struct pipe_end, c.wio);
    struct tunnel *t = io->data;
    (void)loop;
    (void)revents;
    int rc = tun_flush(t, to);
    if (rc < 0) {
        tunnel_close(t, to == &t->a ? TERM_CLIENT_ABORT : TERM_SERVER_RESET);
        return;
    }
    if (rc == 0)
        return;
    struct pipe_end *from = other(t, to);
    uint8_t eof = from == &t->a ? TUN_A_EOF : TUN_B_EOF;
    if (t->flags & eof)
        tun_half_close(t, from);
    else
        conn_read_start(t->w->loop, &from->c);
}

static void
tun_idle_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
    struct tunnel *t = container_of(timer, struct tunnel, idle);
    ev_tstamp now = ev_now(loop);
    (void)revents;
    ev_tstamp due = t->last + t->idle_secs;
    if (due > now + 0.0005) {
        ev_timer_set(timer, due - now, 0);
        ev_timer_start(loop, timer);
        return;
    }
    tunnel_close(t, TERM_TUNNEL_TIMEOUT);
}

/* Take over a socket from a client or upconn. */
static void
adopt(struct tunnel *t, struct pipe_end *e, struct conn *src, struct ev_loop *loop)
{
    ev_io_stop(loop, &src->rio);
    ev_io_stop(loop, &src->wio);
    conn_init(&e->c, src->fd, tun_read_cb, tun_write_cb);
    e->c.ops = src->ops;
    e->c.ssl = src->ssl;
    e->c.flags = 0;
    e->c.rio.data = t;
    e->c.wio.data = t;
    src->fd = -1;
    src->ssl = NULL;
    src->ops = &conn_plain_ops;
}

/* Copy pending bytes into a pool buffer (they fit: each is at most one buffer). */
static struct buf *
take_bytes(struct worker *w, struct buf *pending, const char *p, uint32_t n)
{
    if (!n)
        return pending;
    if (!pending && !(pending = buf_get(&w->bufs)))
        return NULL;
    buf_append(pending, p, n);
    return pending;
}

void
tunnel_start(struct request *req)
{
    struct client *cli = req->cli;
    struct upconn *up = req->up;
    struct worker *w = cli->w;
    struct tunnel *t = calloc(1, sizeof(*t));
    if (!t) {
        request_client_gone(req, TERM_INTERNAL);
        return;
    }
    t->w = w;
    t->rt = req->srv->rt;
    server_rt_ref(t->rt);
    atomic_fetch_add(&t->rt->tunnels, 1);
    CTR_ADD(t->rt->t[w->id].tunnels, 1);
    t->idle_secs = (double)req->route->conf->websocket_timeout_ms / 1000.0;
    t->started = ev_now(w->loop);
    t->rid_len = req->req_id_len;
    memcpy(t->rid, req->req_id, req->req_id_len);
    t->ip_len = req->rip_len;
    memcpy(t->ip, req->rip, req->rip_len);
    adopt(t, &t->a, &cli->c, w->loop);
    adopt(t, &t->b, &up->c, w->loop);

    /* The 101 head and any early frames from the pod go to the client; frames
     * the client sent right after its request go to the pod. */
    if (req->chead)
        t->a.pending = take_bytes(w, t->a.pending, buf_head(req->chead), buf_len(req->chead));
    if (up->ibuf)
        t->a.pending = take_bytes(w, t->a.pending, buf_head(up->ibuf), buf_len(up->ibuf));
    if (cli->ibuf && cli->ibuf->end > req->body_end)
        t->b.pending =
            take_bytes(w, NULL, cli->ibuf->data + req->body_end, cli->ibuf->end - req->body_end);
    req->bytes_out += t->a.pending ? buf_len(t->a.pending) : 0;

    /* Hand the client's limit_conn slot and connection count to the tunnel. */
    t->limit = cli->limit;
    cli->limit = NULL;
    cli->counted = false;
    gstat_add(w->id, GS_CONN_ACTIVE, 1); /* client_close subtracts one */
    gstat_add(w->id, GS_TUNNELS_ACTIVE, 1);
    gstat_add(w->id, GS_TUNNELS_TOTAL, 1);

    req->state = RS_DONE;
    request_log(req);
    req->term = TERM_OK;
    /* The upconn and client objects go; their sockets live on in the tunnel. */
    req->up = NULL;
    upconn_close(up, false);
    cli->req = NULL;
    request_free(req);
    client_close(cli, TERM_OK);

    list_append(&w->tunnels, &t->link);
    w->ntunnels++;
    tun_touch(t);
    ev_init(&t->idle, tun_idle_cb);
    ev_timer_set(&t->idle, t->idle_secs, 0);
    ev_timer_start(w->loop, &t->idle);
    conn_read_start(w->loop, &t->a.c);
    conn_read_start(w->loop, &t->b.c);
    if (t->a.pending && tun_flush(t, &t->a) < 0) {
        tunnel_close(t, TERM_CLIENT_ABORT);
        return;
    }
    if (t->b.pending && tun_flush(t, &t->b) < 0) {
        tunnel_close(t, TERM_SERVER_RESET);
        return;
    }
    if (t->a.pending)
        conn_read_pause(w->loop, &t->b.c);
    if (t->b.pending)
        conn_read_pause(w->loop, &t->a.c);
}
