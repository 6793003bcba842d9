/* SPDX-License-Identifier: MIT */
/* WebSocket tunnels: two sockets, bytes copied both ways through a buffer taken
 * only while a write is pending, idle timeout, half-close, back-pressure. */
#include "config.h"

#include <tether/buf.h>
#include <tether/gen.h>
#include <tether/http_rewrite.h>
#include <tether/list.h>
#include <tether/log.h>
#include <tether/ratelimit.h>
#include <tether/stats.h>
#include <tether/term.h>
#include <tether/tunnel.h>
#include <tether/upstream.h>
#include <tether/worker.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 *   client --a.c--> [ read into a pool buffer ] --b.c--> pod
 *   client <--a.c-- [ read into a pool buffer ] <--b.c-- pod
 *
 * Each event reads once from the readable side into a fresh buffer and writes
 * it to the other side at once. Only when that write would block does the
 * buffer stay (as the other side's <pending>), and the reading side is paused
 * until it drains: at most one buffer per direction, and none while idle.
 */

enum tun_flag {
    TUN_A_EOF = 1u << 0,  /* client sent FIN */
    TUN_B_EOF = 1u << 1,  /* pod sent FIN */
    TUN_A_SHUT = 1u << 2, /* FIN sent to the client */
    TUN_B_SHUT = 1u << 3, /* FIN sent to the pod */
};

/* One side of the tunnel and the bytes waiting to be written to it. */
struct pipe_end {
    struct conn c;
    struct buf *pending; /* read from the other side, not yet written here */
    struct buf *more;    /* queued behind <pending>: only at the start, when the
                          * 101 head and the pod's first bytes are two buffers */
};

struct tunnel {
    struct pipe_end a; /* client side */
    struct pipe_end b; /* pod side */
    ev_timer idle;     /* fires at last + idle_secs (lazily re-armed) */
    ev_tstamp last;    /* last byte moved */
    double idle_secs;  /* the route's websocket_timeout */
    double fin_secs;   /* its websocket_fin_timeout: the idle limit once half-closed */
    struct worker *w;
    struct conn_slot *limit;   /* limit_conn slot of the client */
    struct list link;          /* in worker.tunnels */
    struct tunnel_acct acct;   /* counters, bytes and ids (tunnel_account_open) */
    void (*gone)(void *owner); /* told when the tunnel is closed (tunnel_args) */
    void *owner;               /* its argument */
    uint8_t flags;             /* enum tun_flag */
};

static void tun_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void tun_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void tun_idle_cb(struct ev_loop *loop, ev_timer *t, int revents);

static void
tunnel_log(struct worker *w, const struct tunnel_acct *t, unsigned term, ev_tstamp now)
{
    char ts[32];
    char *line = access_buf_reserve(&w->alog, 600);
    if (!line)
        return;
    /* rt->key is "upstream/server": logged as two fields, as request lines do. */
    const char *key = t->rt->key, *slash = strchr(key, '/');
    int ulen = slash ? (int)(slash - key) : 0;
    const char *srv = slash ? slash + 1 : key;
    log_time_iso(ts, sizeof(ts), time_wall_ms());
    int n = snprintf(line, 600,
                     "{\"time\":\"%s\",\"client\":\"%.*s\",\"event\":\"tunnel_end\","
                     "\"upstream\":\"%.*s\",\"server\":\"%s\",\"status\":101,\"bytes_in\":%llu,"
                     "\"bytes_out\":%llu,\"duration_ms\":%.3f,\"request_id\":\"%.*s\","
                     "\"term\":\"%s\",\"tls\":%s}\n",
                     ts, t->ip_len, t->ip, ulen, key, srv, (unsigned long long)t->bytes_ab,
                     (unsigned long long)t->bytes_ba, (now - t->started) * 1e3, t->rid_len, t->rid,
                     term_name(term), t->tls ? "true" : "false");
    if (n > 0 && n < 600)
        access_buf_commit(&w->alog, (size_t)n);
}

void
tunnel_account_open(struct worker *w, struct tunnel_acct *a, const struct tunnel_args *ta)
{
    a->rt = ta->rt;
    server_rt_ref(a->rt);
    atomic_fetch_add(&a->rt->tunnels, 1);
    CTR_ADD(a->rt->t[w->id].tunnels, 1);
    a->started = ev_now(w->loop);
    a->rid_len = (uint8_t)copy_bounded(a->rid, sizeof(a->rid), ta->rid, ta->rid_len);
    a->ip_len = (uint8_t)copy_bounded(a->ip, sizeof(a->ip), ta->ip, ta->ip_len);
    a->tls = ta->a_tls;
    gstat_add(w->id, GS_TUNNELS_ACTIVE, 1);
    gstat_add(w->id, GS_TUNNELS_TOTAL, 1);
}

void
tunnel_account_close(struct worker *w, struct tunnel_acct *a, unsigned term)
{
    if (atomic_load_explicit(&access_log_fd, memory_order_relaxed) >= 0)
        tunnel_log(w, a, term, ev_now(w->loop));
    atomic_fetch_sub(&a->rt->tunnels, 1);
    server_rt_unref(a->rt);
    a->rt = NULL;
    gstat_add(w->id, GS_TUNNELS_ACTIVE, -1);
}

static void
tunnel_close(struct tunnel *t, unsigned term)
{
    struct worker *w = t->w;
    ev_timer_stop(w->loop, &t->idle);
    conn_close(w->loop, &t->a.c, false);
    conn_close(w->loop, &t->b.c, false);
    buf_put(&w->bufs, t->a.pending);
    buf_put(&w->bufs, t->a.more);
    buf_put(&w->bufs, t->b.pending);
    buf_put(&w->bufs, t->b.more);
    tunnel_account_close(w, &t->acct, term);
    if (t->limit)
        conn_slot_release(t->limit);
    gstat_add(w->id, GS_CONN_ACTIVE, -1);
    atomic_fetch_sub(&conns_open, 1);
    list_remove(&t->link);
    w->ntunnels--;
    void (*gone)(void *) = t->gone;
    void *owner = t->owner;
    free(t);
    if (gone)
        gone(owner);
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

static struct pipe_end *
other(struct tunnel *t, struct pipe_end *e)
{
    return e == &t->a ? &t->b : &t->a;
}

/* The term for a failure on side <e>. */
static unsigned
term_of(struct tunnel *t, struct pipe_end *e)
{
    return e == &t->a ? TERM_CLIENT_ABORT : TERM_SERVER_RESET;
}

/* Write what <to> has pending. 1 drained, 0 blocked, -1 error. */
static int
tun_flush(struct tunnel *t, struct pipe_end *to)
{
    struct worker *w = t->w;
    while (to->pending) {
        struct iovec iov[2];
        int n = 0;
        iov[n++] =
            (struct iovec){.iov_base = buf_head(to->pending), .iov_len = buf_len(to->pending)};
        if (to->more)
            iov[n++] = (struct iovec){.iov_base = buf_head(to->more), .iov_len = buf_len(to->more)};
        ssize_t r = conn_writev(&to->c, iov, n);
        if (r == IO_AGAIN) {
            conn_write_want(w->loop, &to->c);
            return 0;
        }
        if (r <= 0)
            return -1;
        t->last = ev_now(w->loop);
        /* Advance over what was written; a drained first buffer goes back. */
        uint32_t done = (uint32_t)r, first = buf_len(to->pending);
        if (done < first) {
            to->pending->start += done;
            continue;
        }
        buf_put(&w->bufs, to->pending);
        to->pending = to->more;
        to->more = NULL;
        if (to->pending) {
            to->pending->start += done - first;
            if (buf_len(to->pending) == 0) {
                buf_put(&w->bufs, to->pending);
                to->pending = NULL;
            }
        }
    }
    conn_write_done(w->loop, &to->c);
    return 1;
}

/* <from> reached EOF and everything it sent was written: pass the FIN on.
 * Returns false when that ended the tunnel (<t> is gone). */
static bool
tun_half_close(struct tunnel *t, struct pipe_end *from)
{
    struct pipe_end *to = other(t, from);
    uint8_t shut = to == &t->a ? TUN_A_SHUT : TUN_B_SHUT;
    if (!(t->flags & shut)) {
        to->c.ops->shutdown_write(&to->c);
        to->c.flags |= CONN_WRITE_SHUT;
        t->flags |= shut;
    }
    if ((t->flags & (TUN_A_EOF | TUN_B_EOF)) == (TUN_A_EOF | TUN_B_EOF)) {
        tunnel_close(t, TERM_TUNNEL_CLOSED);
        return false;
    }
    /* Half-closed: the side still open gets the shorter fin timeout, so a peer
     * that never closes does not hold the tunnel for the whole idle timeout. */
    if (t->fin_secs < t->idle_secs) {
        struct ev_loop *loop = t->w->loop;
        ev_tstamp left = t->last + t->fin_secs - ev_now(loop);
        t->idle_secs = t->fin_secs;
        ev_timer_stop(loop, &t->idle);
        ev_timer_set(&t->idle, left > 0 ? left : 0, 0);
        ev_timer_start(loop, &t->idle);
    }
    return true;
}

/* Bytes are readable on <from>: read once, write to the other side. */
static void
tun_pump(struct tunnel *t, struct pipe_end *from)
{
    struct worker *w = t->w;
    struct pipe_end *to = other(t, from);
    uint8_t eof = from == &t->a ? TUN_A_EOF : TUN_B_EOF;
    if (to->pending || (t->flags & eof)) {
        conn_read_pause(w->loop, &from->c); /* back-pressure, or nothing more to read */
        return;
    }
    struct buf *b = buf_get(&w->bufs);
    if (!b) {
        tunnel_close(t, TERM_INTERNAL);
        return;
    }
    uint32_t room = buf_room(b);
    ssize_t r = conn_read(&from->c, buf_tail(b), room);
    if (r == IO_AGAIN) {
        buf_put(&w->bufs, b);
        /* TLS: the read needs the socket writable first (a key update to answer). */
        if (from->c.flags & CONN_TLS_READ_WANTS_WRITE)
            conn_write_want(w->loop, &from->c);
        return;
    }
    if (r == IO_CLOSED || r == IO_ERROR) {
        buf_put(&w->bufs, b);
        if (r == IO_ERROR) {
            tunnel_close(t, term_of(t, from));
            return;
        }
        t->flags |= eof;
        from->c.flags |= CONN_READ_EOF;
        conn_read_pause(w->loop, &from->c);
        tun_half_close(t, from);
        return;
    }
    b->end += (uint32_t)r;
    if (from == &t->a)
        t->acct.bytes_ab += (uint64_t)r;
    else
        t->acct.bytes_ba += (uint64_t)r;
    t->last = ev_now(w->loop);
    to->pending = b;
    int rc = tun_flush(t, to);
    if (rc < 0) {
        tunnel_close(t, term_of(t, to));
        return;
    }
    if (rc == 0) {
        conn_read_pause(w->loop, &from->c);
        return;
    }
    /* A full read over TLS may leave decrypted bytes in OpenSSL that will not
     * make the socket readable again: look once more on the next loop pass. */
    if (from->c.ssl && (uint32_t)r == room)
        ev_feed_event(w->loop, &from->c.rio, EV_READ);
}

static void
tun_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct pipe_end *e = container_of(io, struct pipe_end, c.rio);
    (void)loop;
    (void)revents;
    tun_pump(io->data, e);
}

/* After <to> drained: resume reading the other side, or pass its FIN on. */
static void
tun_drained(struct tunnel *t, struct pipe_end *to)
{
    struct pipe_end *from = other(t, to);
    uint8_t eof = from == &t->a ? TUN_A_EOF : TUN_B_EOF;
    if (t->flags & eof)
        tun_half_close(t, from);
    else
        conn_read_start(t->w->loop, &from->c);
}

static void
tun_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct pipe_end *to = container_of(io, struct pipe_end, c.wio);
    struct tunnel *t = io->data;
    (void)revents;
    /* A TLS read that waited for writability goes on now. */
    if (to->c.flags & CONN_TLS_READ_WANTS_WRITE) {
        to->c.flags &= ~CONN_TLS_READ_WANTS_WRITE;
        ev_feed_event(loop, &to->c.rio, EV_READ);
    }
    if (!to->pending) {
        conn_write_done(loop, &to->c);
        return;
    }
    int rc = tun_flush(t, to);
    if (rc < 0) {
        tunnel_close(t, term_of(t, to));
        return;
    }
    if (rc > 0)
        tun_drained(t, to);
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

/* Take over a socket from a client or upconn; true when it had seen EOF. */
static bool
adopt(struct tunnel *t, struct pipe_end *e, struct conn *src, struct ev_loop *loop)
{
    bool eof = (src->flags & CONN_READ_EOF) != 0;
    ev_io_stop(loop, &src->rio);
    ev_io_stop(loop, &src->wio);
    conn_init(&e->c, src->fd, tun_read_cb, tun_write_cb);
    e->c.ops = src->ops;
    e->c.ssl = src->ssl;
    e->c.flags = eof ? CONN_READ_EOF : 0;
    e->c.rio.data = t;
    e->c.wio.data = t;
    src->fd = -1;
    src->ssl = NULL;
    src->ops = &conn_plain_ops;
    return eof;
}

/* Queue <b> (bytes from <b->start>) for writing to <e>; an empty one goes back. */
static void
queue_buf(struct worker *w, struct pipe_end *e, struct buf *b)
{
    if (!b)
        return;
    if (buf_len(b) == 0)
        buf_put(&w->bufs, b);
    else if (!e->pending)
        e->pending = b;
    else
        e->more = b;
}

/* First writes and reads of a new tunnel, as if each side had just become
 * readable and writable. */
static void
tunnel_kick(struct tunnel *t)
{
    struct ev_loop *loop = t->w->loop;
    struct pipe_end *ends[2] = {&t->a, &t->b};
    for (int i = 0; i < 2; i++) {
        struct pipe_end *to = ends[i], *from = other(t, to);
        uint8_t eof = from == &t->a ? TUN_A_EOF : TUN_B_EOF;
        if (to->pending) {
            int rc = tun_flush(t, to);
            if (rc < 0) {
                tunnel_close(t, term_of(t, to));
                return;
            }
            if (rc == 0) {
                conn_read_pause(loop, &from->c);
                continue;
            }
        }
        if ((t->flags & eof) && !tun_half_close(t, from))
            return;
    }
    for (int i = 0; i < 2; i++) {
        struct pipe_end *e = ends[i];
        uint8_t eof = e == &t->a ? TUN_A_EOF : TUN_B_EOF;
        if ((t->flags & eof) || other(t, e)->pending)
            continue;
        conn_read_start(loop, &e->c);
        /* OpenSSL may already hold decrypted bytes (read while the head was). */
        if (e->c.ssl)
            ev_feed_event(loop, &e->c.rio, EV_READ);
    }
}

int
tunnel_start(struct worker *w, struct tunnel_args *ta)
{
    struct tunnel *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    t->w = w;
    tunnel_account_open(w, &t->acct, ta);
    t->idle_secs = ta->idle_secs;
    t->fin_secs = ta->fin_secs;
    t->gone = ta->gone;
    t->owner = ta->owner;
    if (adopt(t, &t->a, ta->a, w->loop))
        t->flags |= TUN_A_EOF;
    if (adopt(t, &t->b, ta->b, w->loop))
        t->flags |= TUN_B_EOF;

    /* The 101 head, then any early bytes from the pod, go to the client; the
     * bytes the client sent after its request go to the pod. The buffers are
     * taken over, not copied: the head and the pod's bytes may each fill one. */
    queue_buf(w, &t->a, ta->a_head);
    if (ta->b_in)
        t->acct.bytes_ba = buf_len(ta->b_in);
    queue_buf(w, &t->a, ta->b_in);
    if (ta->a_in) {
        t->acct.bytes_ab = buf_len(ta->a_in);
        queue_buf(w, &t->b, ta->a_in);
    }
    ta->a_head = ta->b_in = ta->a_in = NULL;

    /* The client's limit_conn slot and connection count are the tunnel's now. */
    t->limit = ta->limit;
    ta->limit = NULL;

    list_append(&w->tunnels, &t->link);
    w->ntunnels++;
    t->last = ev_now(w->loop);
    ev_init(&t->idle, tun_idle_cb);
    ev_timer_set(&t->idle, t->idle_secs, 0);
    ev_timer_start(w->loop, &t->idle);
    tunnel_kick(t);
    return 0;
}
