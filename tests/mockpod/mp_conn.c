/* SPDX-License-Identifier: MIT */
/* mockpod connections: accept, buffers from per-thread free lists, plain and TLS I/O, the
 * event driver (read once, process, write once) and closing (lingering or reset). */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>

#include <openssl/err.h>

#include "mockpod.h"

/*
 * A connection's life (one worker thread, one state at a time):
 *
 *   accept -> [CS_TLS_HS] -> CS_HEAD -> CS_BODY -> [CS_DELAY] -> answer --+
 *                              ^                                         |
 *                              +--------------- keep-alive --------------+
 *
 *   answer: fixed body | CS_RESP (generated body) | CS_ECHO | CS_WS | CS_HANG
 *   end:    CS_FLUSH_CLOSE -> CS_LINGER -> closed
 *           CS_FLUSH_RESET -> [CS_RESET_WAIT] -> RST
 *
 * Each event: read once, run the state handlers over the input, write once. The write
 * watcher is armed only while output is pending; the read watcher stays armed while the
 * input buffer has room, so a keep-alive exchange costs no epoll_ctl.
 */

#define MAX_FREE_BUFS  512  /* spare buffers kept per worker */
#define MAX_FREE_CONNS 4096 /* spare connection structs kept per worker */
#define RUN_ROUNDS     16   /* process+flush rounds per event, then yield to others */
#define ACCEPT_BATCH   64   /* connections accepted per listener event */

static char *
buf_get(struct worker *w)
{
    char *b = w->free_bufs;

    if (!b)
        return xmalloc(MP_BUF_SIZE);
    memcpy(&w->free_bufs, b, sizeof(void *));
    w->n_free_bufs--;
    return b;
}

static void
buf_put(struct worker *w, char *b)
{
    if (w->n_free_bufs >= MAX_FREE_BUFS) {
        free(b);
        return;
    }
    memcpy(b, &w->free_bufs, sizeof(void *));
    w->free_bufs = b;
    w->n_free_bufs++;
}

static struct conn *
conn_get(struct worker *w)
{
    struct conn *c = w->free_conns;

    if (!c)
        return xmalloc(sizeof(*c));
    w->free_conns = c->next_free;
    w->n_free_conns--;
    return c;
}

static void
conn_put(struct worker *w, struct conn *c)
{
    if (w->n_free_conns >= MAX_FREE_CONNS) {
        free(c);
        return;
    }
    c->next_free = w->free_conns;
    w->free_conns = c;
    w->n_free_conns++;
}

/* Returns the output buffer, taking one from the pool when the connection has none. */
struct sbuf *
conn_out(struct conn *c)
{
    if (!c->out.p) {
        c->out.p = buf_get(c->w);
        c->out.cap = MP_BUF_SIZE;
        c->out.len = 0;
        c->out_sent = 0;
    }
    return &c->out;
}

/* Free bytes at the end of the output buffer (sent bytes reclaimed); streaming producers
 * write at most this much, so the buffer never grows for them. */
size_t
conn_out_room(struct conn *c)
{
    struct sbuf *o = conn_out(c);

    if (c->out_sent == o->len) {
        o->len = 0;
        c->out_sent = 0;
    } else if (c->out_sent > 0 && o->cap - o->len < o->cap / 2) {
        memmove(o->p, o->p + c->out_sent, o->len - c->out_sent);
        o->len -= c->out_sent;
        c->out_sent = 0;
    }
    return o->cap - o->len;
}

static void
out_release(struct conn *c)
{
    if (!c->out.p)
        return;
    if (c->out.cap == MP_BUF_SIZE)
        buf_put(c->w, c->out.p);
    else
        free(c->out.p); /* grown for one large answer: do not keep it */
    c->out.p = NULL;
    c->out.len = c->out.cap = 0;
    c->out_sent = 0;
}

const char *
conn_head(const struct conn *c)
{
    return c->in.p + c->in.start;
}

void
conn_drop_head(struct conn *c)
{
    c->req.head_len = 0;
    c->in.start = c->in.pos;
}

/* Bytes the input buffer can still take (after compaction). */
static uint32_t
in_room(const struct conn *c)
{
    if (!c->in.p)
        return MP_BUF_SIZE;
    return MP_BUF_SIZE - c->req.head_len - (c->in.end - c->in.pos);
}

/* Moves the pinned head to offset 0 and the unparsed bytes right after it. */
static void
in_compact(struct conn *c)
{
    struct inbuf *in = &c->in;
    uint32_t hl = c->req.head_len, rest = in->end - in->pos;

    if (in->start == 0 && in->pos == hl)
        return;
    if (hl && in->start)
        memmove(in->p, in->p + in->start, hl);
    if (rest)
        memmove(in->p + hl, in->p + in->pos, rest);
    in->start = 0;
    in->pos = hl;
    in->end = hl + rest;
}

/* Returns the input buffer to the pool once everything in it is consumed. */
static void
in_trim(struct conn *c)
{
    struct inbuf *in = &c->in;

    if (!in->p || in->pos != in->end)
        return;
    if (c->req.head_len) {
        in->pos = in->end = in->start + c->req.head_len;
        return;
    }
    buf_put(c->w, in->p);
    in->p = NULL;
    in->start = in->pos = in->end = 0;
}

static int
tls_read(struct conn *c, size_t room)
{
    int n;

    c->tls_rww = 0;
    ERR_clear_error();
    n = SSL_read(c->ssl, c->in.p + c->in.end, (int)room);
    if (n > 0) {
        c->in.end += (uint32_t)n;
        return 0;
    }
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_WANT_WRITE:
        c->tls_rww = 1;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        c->rd_eof = 1;
        return 0;
    default:
        return -1;
    }
}

/* Reads once into the input buffer. Returns 0, or -1 when the connection failed. */
static int
conn_read(struct conn *c)
{
    struct inbuf *in = &c->in;
    size_t room;
    ssize_t n;

    if (!in->p) {
        in->p = buf_get(c->w);
        in->start = in->pos = in->end = 0;
    }
    if (MP_BUF_SIZE - in->end < MP_BUF_SIZE / 4)
        in_compact(c);
    room = MP_BUF_SIZE - in->end;
    if (room == 0)
        return 0;
    if (c->ssl)
        return tls_read(c, room);
    n = recv(c->fd, in->p + in->end, room, 0);
    if (n > 0) {
        in->end += (uint32_t)n;
        return 0;
    }
    if (n == 0) {
        c->rd_eof = 1;
        return 0;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

static ssize_t
tls_write(struct conn *c, const char *p, size_t n)
{
    int r;

    c->tls_wwr = 0;
    ERR_clear_error();
    r = SSL_write(c->ssl, p, (int)n);
    if (r > 0)
        return r;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        c->tls_wwr = 1;
        /* fall through */
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    default:
        errno = EPIPE;
        return -1;
    }
}

/* Writes the pending output once. Returns 1 when all is sent, 0 when the socket is full,
 * -1 on error. A short write means the socket buffer is full: no second try. */
static int
conn_flush(struct conn *c)
{
    struct sbuf *o = &c->out;
    size_t n = o->len - c->out_sent;
    ssize_t k;

    do {
        if (c->ssl)
            k = tls_write(c, o->p + c->out_sent, n);
        else
            k = send(c->fd, o->p + c->out_sent, n, MSG_NOSIGNAL);
    } while (k < 0 && errno == EINTR);
    if (k < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    c->out_sent += (size_t)k;
    if (c->out_sent < o->len)
        return 0;
    o->len = 0;
    c->out_sent = 0;
    return 1;
}

static void
watch_set(struct conn *c, ev_io *io, int on)
{
    if (on)
        ev_io_start(c->w->loop, io);
    else
        ev_io_stop(c->w->loop, io);
}

/* Arms exactly the watchers the state needs; no epoll_ctl when nothing changes. */
static void
conn_watch(struct conn *c)
{
    int r, w;

    if (c->state == CS_TLS_HS) {
        r = c->hs_r;
        w = c->hs_w;
    } else {
        r = !c->rd_eof && c->state != CS_RESET_WAIT && in_room(c) > 0;
        w = c->out.len > c->out_sent || c->more || c->tls_rww;
        if (c->tls_wwr)
            r = 1;
        if (c->ssl && r && SSL_pending(c->ssl) > 0) {
            /* decrypted bytes wait inside OpenSSL: epoll will not tell, come back now */
            c->more = 1;
            w = 1;
        }
    }
    if (r != (int)c->rd_on) {
        watch_set(c, &c->rio, r);
        c->rd_on = (unsigned)r;
    }
    if (w != (int)c->wr_on) {
        watch_set(c, &c->wio, w);
        c->wr_on = (unsigned)w;
    }
    if (c->out.p && c->out.len == c->out_sent)
        out_release(c);
}

void
conn_timer_start(struct conn *c, uint64_t ms, int repeat)
{
    ev_tstamp t = (ev_tstamp)ms / 1000.0;

    ev_timer_stop(c->w->loop, &c->timer);
    ev_timer_set(&c->timer, t, repeat ? t : 0.0);
    ev_timer_start(c->w->loop, &c->timer);
}

void
conn_close(struct conn *c)
{
    struct worker *w = c->w;

    ev_io_stop(w->loop, &c->rio);
    ev_io_stop(w->loop, &c->wio);
    ev_timer_stop(w->loop, &c->timer);
    if (c->ssl)
        SSL_free(c->ssl);
    close(c->fd);
    if (c->in.p)
        buf_put(w, c->in.p);
    out_release(c);
    stat_add(&w->st.open, -1);
    if (c->is_ws)
        stat_add(&w->st.ws_open, -1);
    conn_put(w, c);
}

/* Closes with an RST instead of a FIN (SO_LINGER {1, 0}). */
void
conn_reset(struct conn *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    conn_close(c);
}

/* Resets once the kernel has sent (and the peer acknowledged) what we wrote, so the peer
 * sees those bytes before the RST; gives up waiting after about a second. */
static int
reset_check(struct conn *c)
{
    int q = 0;

    if (c->waits < 1000 && ioctl(c->fd, SIOCOUTQ, &q) == 0 && q > 0) {
        if (c->state != CS_RESET_WAIT) {
            c->state = CS_RESET_WAIT;
            conn_timer_start(c, 1, 1);
        }
        c->waits++;
        return PROC_WAIT;
    }
    conn_reset(c);
    return PROC_CLOSED;
}

/* Shuts our side and drains the peer's bytes until it closes, so unread input (an
 * unconsumed body, pipelined requests) does not turn our FIN into an RST. */
static int
conn_linger(struct conn *c)
{
    c->req.head_len = 0;
    c->in.start = c->in.pos = c->in.end;
    if (c->rd_eof) {
        conn_close(c);
        return PROC_CLOSED;
    }
    if (c->ssl) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);
    }
    shutdown(c->fd, SHUT_WR);
    c->state = CS_LINGER;
    conn_timer_start(c, MP_LINGER_MS, 0);
    return PROC_WAIT;
}

static int
conn_discard(struct conn *c)
{
    c->in.pos = c->in.end;
    if (c->rd_eof) {
        conn_close(c);
        return PROC_CLOSED;
    }
    return PROC_WAIT;
}

/* Runs the state handlers until one waits for something. */
static int
conn_process(struct conn *c)
{
    int r;

    do {
        switch (c->state) {
        case CS_HEAD:
            r = http_on_head(c);
            break;
        case CS_BODY:
            r = http_on_body(c);
            break;
        case CS_ECHO:
            r = http_on_echo(c);
            break;
        case CS_RESP:
            r = http_on_resp(c);
            break;
        case CS_WS:
            r = ws_on_data(c);
            break;
        case CS_HANG:
        case CS_LINGER:
            r = conn_discard(c);
            break;
        case CS_FLUSH_CLOSE:
            r = c->out.len > c->out_sent ? PROC_OUT_FULL : conn_linger(c);
            break;
        case CS_FLUSH_RESET:
            r = c->out.len > c->out_sent ? PROC_OUT_FULL : reset_check(c);
            break;
        default: /* CS_TLS_HS, CS_DELAY, CS_RESET_WAIT: a watcher or timer moves them */
            r = PROC_WAIT;
            break;
        }
    } while (r == PROC_AGAIN);
    return r;
}

/* Returns 1 when the handshake is done, 0 while it waits, -1 when the connection closed. */
static int
tls_handshake(struct conn *c)
{
    int r;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->state = CS_HEAD;
        c->hs_r = c->hs_w = 0;
        return 1;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        c->hs_r = 1;
        c->hs_w = 0;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        c->hs_r = 0;
        c->hs_w = 1;
        return 0;
    default:
        conn_close(c);
        return -1;
    }
}

static int
conn_on_timer(struct conn *c)
{
    switch (c->state) {
    case CS_DELAY:
        return http_answer(c);
    case CS_LINGER:
        conn_close(c);
        return PROC_CLOSED;
    case CS_RESET_WAIT:
        return reset_check(c);
    default:
        return PROC_WAIT;
    }
}

/* One event on <c>: read once, process, write once, re-arm. */
static void
conn_run(struct conn *c, int revents)
{
    int r, f, i;

    c->more = 0;
    if (c->state == CS_TLS_HS) {
        r = tls_handshake(c);
        if (r < 0)
            return;
        if (r == 0) {
            conn_watch(c);
            return;
        }
        revents |= EV_READ; /* application bytes may have come with the handshake */
    }
    if ((revents & EV_READ) || (c->ssl && (c->tls_rww || SSL_pending(c->ssl) > 0))) {
        if (!c->rd_eof && c->state != CS_RESET_WAIT && in_room(c) > 0 && conn_read(c) < 0) {
            conn_close(c);
            return;
        }
    }
    if ((revents & EV_TIMER) && conn_on_timer(c) == PROC_CLOSED)
        return;
    for (i = 0; i < RUN_ROUNDS; i++) {
        r = conn_process(c);
        if (r == PROC_CLOSED)
            return;
        if (c->out.len > c->out_sent) {
            f = conn_flush(c);
            if (f < 0) {
                conn_close(c);
                return;
            }
            if (f == 0)
                break;
        }
        if (r != PROC_OUT_FULL)
            break;
    }
    if (i == RUN_ROUNDS)
        c->more = 1;
    in_trim(c);
    conn_watch(c);
}

static void
on_read(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    conn_run((struct conn *)(void *)((char *)io - offsetof(struct conn, rio)), revents);
}

static void
on_write(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    conn_run((struct conn *)(void *)((char *)io - offsetof(struct conn, wio)), revents);
}

static void
on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    conn_run((struct conn *)(void *)((char *)t - offsetof(struct conn, timer)), revents);
}

static void
conn_new(struct worker *w, int fd, int tls)
{
    struct conn *c = conn_get(w);
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->fd = fd;
    ev_io_init(&c->rio, on_read, fd, EV_READ);
    ev_io_init(&c->wio, on_write, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    stat_add(&w->st.accepted, 1);
    stat_add(&w->st.open, 1);
    c->state = CS_HEAD;
    if (tls) {
        c->ssl = SSL_new(mp_conf.tls);
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
            conn_close(c);
            return;
        }
        SSL_set_accept_state(c->ssl);
        c->state = CS_TLS_HS;
        c->hs_r = 1;
    }
    conn_watch(c);
}

static void
on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    struct listener *l = (struct listener *)(void *)((char *)io - offsetof(struct listener, io));
    int i, fd;

    (void)revents;
    for (i = 0; i < ACCEPT_BATCH; i++) {
        fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: pause this listener instead of spinning on it */
                ev_io_stop(loop, &l->io);
                ev_timer_start(loop, &l->retry);
            }
            return;
        }
        conn_new(l->w, fd, l->tls);
    }
}

static void
on_accept_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct listener *l = (struct listener *)(void *)((char *)t - offsetof(struct listener, retry));

    (void)revents;
    ev_io_start(loop, &l->io);
}

/* Creates <w>'s loop and watchers for its listeners (w->ls set by main). */
void
worker_init(struct worker *w)
{
    struct listener *l;
    int i;

    w->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!w->loop)
        w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!w->loop) {
        perror("mockpod: ev_loop_new");
        exit(1);
    }
    for (i = 0; i < w->nls; i++) {
        l = &w->ls[i];
        l->w = w;
        ev_io_init(&l->io, on_accept, l->fd, EV_READ);
        ev_timer_init(&l->retry, on_accept_retry, 0.1, 0.0);
        ev_io_start(w->loop, &l->io);
    }
}

void *
worker_run(void *arg)
{
    struct worker *w = arg;

    ev_run(w->loop, 0);
    return NULL;
}
