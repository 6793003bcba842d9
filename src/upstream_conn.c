/* SPDX-License-Identifier: MIT */
/* Connections to pods: connect, optional TLS, keep-alive pools per worker and
 * server (LIFO), deadlines, close. */
#include "config.h"

#include <tether/gen.h>
#include <tether/log.h>
#include <tether/tls.h>
#include <tether/upstream.h>
#include <tether/upstream_conn.h>
#include <tether/worker.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void up_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void up_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void up_tmo_cb(struct ev_loop *loop, ev_timer *t, int revents);

static struct log_limit tls_up_limit;

int (*upconn_open)(const struct sock_addr *a) = sock_connect;

void
upconn_deadline(struct upconn *uc, double secs)
{
    struct ev_loop *loop = uc->w->loop;
    ev_tstamp at = ev_now(loop) + secs;
    uc->deadline = at;
    if (!ev_is_active(&uc->tmo) || at < ev_now(loop) + ev_timer_remaining(loop, &uc->tmo)) {
        ev_timer_stop(loop, &uc->tmo);
        ev_timer_set(&uc->tmo, secs, 0);
        ev_timer_start(loop, &uc->tmo);
    }
}

static struct upconn *
upconn_alloc(struct worker *w)
{
    struct upconn *uc = w->free_upconns;
    if (uc)
        w->free_upconns = uc->next_free;
    else if (!(uc = malloc(sizeof(*uc))))
        return NULL;
    memset(uc, 0, sizeof(*uc));
    uc->w = w;
    list_init(&uc->link);
    return uc;
}

void
upconn_free_all(struct worker *w)
{
    while (w->free_upconns) {
        struct upconn *uc = w->free_upconns;
        w->free_upconns = uc->next_free;
        free(uc);
    }
}

void
upconn_close(struct upconn *uc, bool reset)
{
    struct worker *w = uc->w;
    if (uc->state == UC_IDLE) {
        struct upconn_pool *p = worker_pool(w, uc->rt->slot);
        list_remove(&uc->link);
        if (p)
            p->nidle--;
    }
    ev_timer_stop(w->loop, &uc->tmo);
    conn_close(w->loop, &uc->c, reset);
    buf_put(&w->bufs, uc->ibuf);
    uc->ibuf = NULL;
    server_rt_unref(uc->rt);
    uc->rt = NULL;
    uc->cb = NULL;
    uc->owner = NULL;
    uc->next_free = w->free_upconns;
    w->free_upconns = uc;
}

#define UC_BIT(s) (1u << (s))
#ifndef NDEBUG
/* Legal next states of each state (a new upconn starts in UC_CONNECTING, 0;
 * one taken from the pool goes from UC_IDLE to UC_BUSY). */
static const uint8_t upconn_next[] = {
    [UC_CONNECTING] = UC_BIT(UC_CONNECTING) | UC_BIT(UC_TLS) | UC_BIT(UC_BUSY),
    [UC_TLS] = UC_BIT(UC_BUSY),
    [UC_BUSY] = UC_BIT(UC_IDLE),
    [UC_IDLE] = UC_BIT(UC_BUSY),
};
#endif
static const char *const upconn_state_names[] = {"CONNECTING", "TLS", "BUSY", "IDLE"};

/* Every transition of an upstream connection goes through here: debug builds
 * assert it is legal; the debug log shows it. */
static void
upconn_set_state(struct upconn *uc, enum upconn_state to)
{
    assert(uc->state < ARRAY_SIZE(upconn_next) && (upconn_next[uc->state] & UC_BIT(to)));
    log_debug("upconn %p: %s -> %s", (void *)uc, upconn_state_names[uc->state],
              upconn_state_names[to]);
    uc->state = (uint8_t)to;
}

/* A pooled connection whose pod has gone (killed, restarted) may still be in
 * the pool when its FIN arrived in this very event batch. A request that cannot
 * be retried once sent (not idempotent) pays one MSG_PEEK to find out; the
 * others are retried on another server if the connection turns out dead. */
static bool
upconn_alive(const struct upconn *uc, bool resendable)
{
    if (resendable)
        return true;
    char c;
    ssize_t r = recv(uc->c.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

struct upconn *
upconn_get(struct worker *w, struct server *s, const struct upconn_cbs *cb, void *owner,
           bool resendable)
{
    struct server_rt *rt = s->rt;
    struct upconn_pool *pool = worker_pool(w, rt->slot);
    uint32_t addr_version = atomic_load_explicit(&rt->addr_version, memory_order_relaxed);
    struct upconn *uc;

    while (pool && pool->nidle) {
        uc = container_of(pool->idle.next, struct upconn, link);
        list_remove(&uc->link);
        pool->nidle--;
        upconn_set_state(uc, UC_BUSY); /* out of the pool */
        if (uc->addr_version != addr_version || !upconn_alive(uc, resendable)) {
            upconn_close(uc, false);
            continue;
        }
        uc->cb = cb;
        uc->owner = owner;
        uc->reused = true;
        return uc;
    }
    int fd = upconn_open(&s->conf->addr);
    if (fd < 0)
        return NULL;
    uc = upconn_alloc(w);
    if (!uc) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    conn_init(&uc->c, fd, up_read_cb, up_write_cb);
    ev_init(&uc->tmo, up_tmo_cb);
    server_rt_ref(rt);
    uc->rt = rt;
    uc->addr_version = addr_version;
    uc->cb = cb;
    uc->owner = owner;
    uc->keep_max = s->up->conf->keepalive;
    uc->keep_secs = (double)s->up->conf->keepalive_timeout_ms / 1000.0;
    uc->burst_max = s->up->conf->keepalive_burst;
    uc->burst_secs = (double)s->up->conf->keepalive_burst_timeout_ms / 1000.0;
    if (uc->burst_secs > uc->keep_secs)
        uc->burst_secs = uc->keep_secs;
    upconn_set_state(uc, UC_CONNECTING);
    if (s->tls_ctx && tls_connect_attach(&uc->c, s->tls_ctx) < 0) {
        upconn_close(uc, false);
        errno = ENOMEM;
        return NULL;
    }
    conn_write_want(w->loop, &uc->c);
    upconn_deadline(uc, (double)s->up->conf->connect_timeout_ms / 1000.0);
    return uc;
}

void
upconn_release(struct upconn *uc, bool reusable)
{
    struct worker *w = uc->w;
    struct upconn_pool *pool;
    uc->cb = NULL;
    uc->owner = NULL;
    if (!reusable || w->draining || (uc->c.flags & (CONN_READ_EOF | CONN_WRITE_SHUT)) ||
        (uc->ibuf && buf_len(uc->ibuf)) || uc->keep_max == 0 ||
        !(pool = worker_pool(w, uc->rt->slot)) || pool->nidle >= uc->keep_max + uc->burst_max) {
        upconn_close(uc, !reusable && uc->state == UC_BUSY);
        return;
    }
    /* Beyond keepalive: kept keepalive_burst_timeout only, for the next
     * requests of the same burst (many HTTP/2 streams in flight) rather than
     * closed now and connected again a moment later. */
    bool over = pool->nidle >= uc->keep_max;
    buf_put(&w->bufs, uc->ibuf);
    uc->ibuf = NULL;
    conn_write_done(w->loop, &uc->c);
    conn_read_start(w->loop, &uc->c);
    upconn_set_state(uc, UC_IDLE);
    uc->nreq++;
    uc->idle_since = ev_now(w->loop);
    list_push(&pool->idle, &uc->link);
    pool->nidle++;
    upconn_deadline(uc, over ? uc->burst_secs : uc->keep_secs);
}

ssize_t
upconn_fill(struct upconn *uc)
{
    struct buf *b = uc->ibuf;
    if (!b) {
        b = uc->ibuf = buf_get(&uc->w->bufs);
        if (!b)
            return IO_ERROR;
    }
    if (buf_room(b) == 0)
        return IO_NOROOM;
    ssize_t r = conn_read(&uc->c, buf_tail(b), buf_room(b));
    if (r > 0)
        b->end += (uint32_t)r;
    else if (r == IO_CLOSED)
        uc->c.flags |= CONN_READ_EOF;
    return r;
}

static void
upconn_tls_step(struct upconn *uc)
{
    struct worker *w = uc->w;
    int rc = tls_handshake(&uc->c);
    if (rc < 0) {
        log_limited(&tls_up_limit, 10000, LOG_LVL_WARN, "TLS to %s failed: %s", uc->rt->key,
                    tls_last_error());
        uc->cb->failed(uc->owner, TERM_SERVER_REFUSED, ECONNREFUSED);
        return;
    }
    if (rc == 0) {
        if (uc->c.flags & CONN_TLS_READ_WANTS_WRITE)
            conn_write_want(w->loop, &uc->c);
        else
            conn_write_done(w->loop, &uc->c);
        return;
    }
    conn_write_done(w->loop, &uc->c);
    upconn_set_state(uc, UC_BUSY);
    uc->cb->connected(uc->owner);
}

static void
upconn_connected(struct upconn *uc)
{
    struct worker *w = uc->w;
    int err = sock_error(uc->c.fd);
    if (err) {
        uc->cb->failed(uc->owner, TERM_SERVER_REFUSED, err);
        return;
    }
    conn_read_start(w->loop, &uc->c);
    if (uc->c.ssl) {
        upconn_set_state(uc, UC_TLS);
        upconn_tls_step(uc);
        return;
    }
    upconn_set_state(uc, UC_BUSY);
    conn_write_done(w->loop, &uc->c);
    uc->cb->connected(uc->owner);
}

static void
up_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct upconn *uc = container_of(io, struct upconn, c.rio);
    (void)loop;
    (void)revents;
    switch (uc->state) {
    case UC_TLS:
        upconn_tls_step(uc);
        return;
    case UC_BUSY:
        uc->cb->readable(uc->owner);
        return;
    case UC_IDLE:
        /* A pooled connection spoke: the pod closed it (or misbehaves). */
        upconn_close(uc, false);
        return;
    default:
        return;
    }
}

static void
up_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct upconn *uc = container_of(io, struct upconn, c.wio);
    (void)loop;
    (void)revents;
    switch (uc->state) {
    case UC_CONNECTING:
        upconn_connected(uc);
        return;
    case UC_TLS:
        upconn_tls_step(uc);
        return;
    case UC_BUSY:
        uc->cb->writable(uc->owner);
        return;
    default:
        conn_write_done(uc->w->loop, &uc->c);
        return;
    }
}

static void
up_tmo_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct upconn *uc = container_of(t, struct upconn, tmo);
    ev_tstamp now = ev_now(loop);
    (void)revents;
    if (uc->deadline > now + 0.0005) {
        ev_timer_set(t, uc->deadline - now, 0);
        ev_timer_start(loop, t);
        return;
    }
    if (uc->state == UC_IDLE) {
        upconn_close(uc, false);
        return;
    }
    if (uc->owner)
        uc->cb->timeout(uc->owner);
}

void
upconn_pools_sweep(struct worker *w)
{
    for (uint32_t i = 0; i < w->npools; i++) {
        struct upconn_pool *p = &w->pools[i];
        struct list *pos, *tmp;
        list_for_each_safe(pos, tmp, &p->idle)
        {
            struct upconn *uc = container_of(pos, struct upconn, link);
            if (atomic_load(&uc->rt->gen_id) < w->gen->id ||
                uc->addr_version != atomic_load(&uc->rt->addr_version))
                upconn_close(uc, false);
        }
    }
}

void
upconn_pools_close(struct worker *w)
{
    for (uint32_t i = 0; i < w->npools; i++) {
        struct list *pos, *tmp;
        list_for_each_safe(pos, tmp, &w->pools[i].idle)
        {
            upconn_close(container_of(pos, struct upconn, link), false);
        }
    }
}
