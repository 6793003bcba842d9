/* SPDX-License-Identifier: MIT */
/* Client connections: accept, TLS handshake, PROXY header, head parsing,
 * keep-alive and pipelining, timeouts, tether's own replies, close. */
#include "config.h"

#include <tether/client.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/h2.h>
#include <tether/proxy_proto.h>
#include <tether/ratelimit.h>
#include <tether/exchange.h>
#include <tether/stats.h>
#include <tether/tls.h>
#include <tether/worker.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void client_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void client_tmo_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void client_parse_head(struct client *cli);

_Static_assert(PROXY_PROTO_MAX <= 4096, "a PROXY header fits in the smallest buffer (bufsize 4k)");

static struct log_limit tls_fail_limit;
static struct log_limit proxy_fail_limit;

/* ---- generation references ---- */

static void
client_take_gen(struct client *cli, struct gen *g)
{
    cli->gen = g;
    g->wrefs[cli->w->id].n++;
}

static void
client_drop_gen(struct client *cli)
{
    struct gen *g = cli->gen;
    if (!g)
        return;
    cli->gen = NULL;
    if (--g->wrefs[cli->w->id].n == 0 && g != cli->w->gen)
        gen_unref_worker(g);
}

void
client_follow_gen(struct client *cli)
{
    struct gen *g = cli->w->gen;
    if (cli->gen == g)
        return;
    for (uint32_t i = 0; i < g->nlistens; i++) {
        if (g->listens[i].socks == cli->socks) {
            client_drop_gen(cli);
            client_take_gen(cli, g);
            cli->vs = g->listens[i].vs;
            return;
        }
    }
    /* The listen is gone from the new config: this connection keeps the config
     * it was accepted with and closes after the current request. */
    cli->close_after = true;
}

/* ---- deadlines (one lazy timer per connection) ---- */

void
client_deadline(struct client *cli, unsigned kind, double secs)
{
    struct ev_loop *loop = cli->w->loop;
    ev_tstamp at = ev_now(loop) + secs;
    cli->tmo_kind = (uint8_t)kind;
    if (kind == CT_NONE) {
        cli->deadline = 0;
        return;
    }
    cli->deadline = at;
    /* Later than the armed time: the timer fires early and re-arms itself, no
     * heap operation now. Earlier: re-arm. */
    if (!ev_is_active(&cli->tmo) || at < ev_now(loop) + ev_timer_remaining(loop, &cli->tmo)) {
        ev_timer_stop(loop, &cli->tmo);
        ev_timer_set(&cli->tmo, secs, 0);
        ev_timer_start(loop, &cli->tmo);
    }
}

static double
ms_to_s(uint64_t ms)
{
    return (double)ms / 1000.0;
}

/* ---- allocation ---- */

static struct client *
client_alloc(struct worker *w)
{
    struct client *cli = w->free_clients;
    if (cli)
        w->free_clients = cli->next_free;
    else if (!(cli = malloc(sizeof(*cli))))
        return NULL;
    memset(cli, 0, sizeof(*cli));
    cli->w = w;
    return cli;
}

void
client_free_all(struct worker *w)
{
    while (w->free_clients) {
        struct client *c = w->free_clients;
        w->free_clients = c->next_free;
        free(c);
    }
}

/* ---- the state machine's one door ---- */

#define CS_BIT(s) (1u << (s))
#ifndef NDEBUG
/* Legal next states of each state (a new client starts in CS_HANDSHAKE, 0). */
#define CS_ENDS (CS_BIT(CS_ERROR_REPLY) | CS_BIT(CS_REPLY) | CS_BIT(CS_CLOSED))
static const uint8_t client_next[] = {
    [CS_HANDSHAKE] = CS_BIT(CS_PROXY_HDR) | CS_BIT(CS_HANDSHAKE) | CS_BIT(CS_IDLE) | CS_ENDS,
    [CS_PROXY_HDR] = CS_BIT(CS_HANDSHAKE) | CS_BIT(CS_IDLE) | CS_ENDS,
    [CS_IDLE] = CS_BIT(CS_HEAD) | CS_ENDS,
    [CS_HEAD] = CS_BIT(CS_BUSY) | CS_ENDS,
    [CS_BUSY] = CS_BIT(CS_IDLE) | CS_ENDS,
    [CS_ERROR_REPLY] = CS_BIT(CS_IDLE) | CS_BIT(CS_HEAD) | CS_ENDS,
    [CS_REPLY] = CS_BIT(CS_IDLE) | CS_BIT(CS_HEAD) | CS_ENDS,
};
#endif
static const char *const client_state_names[] = {"HANDSHAKE", "PROXY_HDR",   "IDLE",  "HEAD",
                                                 "BUSY",      "ERROR_REPLY", "REPLY", "CLOSED"};

/* Every transition of a client goes through here (doc/internals/
 * state-machines.md): debug builds assert it is legal; the debug log shows it. */
static void
client_set_state(struct client *cli, enum client_state to)
{
    assert(cli->state < ARRAY_SIZE(client_next) && (client_next[cli->state] & CS_BIT(to)));
    log_debug("client %p: %s -> %s", (void *)cli, client_state_names[cli->state],
              client_state_names[to]);
    cli->state = (uint8_t)to;
}

/* ---- close ---- */

void
client_close(struct client *cli, unsigned term)
{
    struct worker *w = cli->w;
    if (cli->state == CS_CLOSED)
        return;
    if (cli->req) {
        struct request *req = cli->req;
        if (req->state != RS_HEAD || req->bytes_in > 0) {
            if (!req->term)
                req->term = (uint8_t)term;
            request_log(req);
        }
        exchange_free(req);
        cli->req = NULL;
    }
    client_set_state(cli, CS_CLOSED);
    ev_timer_stop(w->loop, &cli->tmo);
    conn_close(w->loop, &cli->c, false);
    buf_put(&w->bufs, cli->ibuf);
    buf_put(&w->bufs, cli->obuf);
    cli->ibuf = cli->obuf = NULL;
    if (cli->limit)
        conn_slot_release(cli->limit);
    client_drop_gen(cli);
    list_remove(&cli->link);
    w->nclients--;
    if (cli->counted)
        atomic_fetch_sub(&conns_open, 1);
    gstat_add(w->id, GS_CONN_ACTIVE, -1);
    cli->next_free = w->free_clients;
    w->free_clients = cli;
    worker_client_gone(w);
}

/* ---- accept ---- */

void
client_accept(struct worker *w, struct wlisten *wl, int fd, const struct sock_addr *peer)
{
    struct client *cli = client_alloc(w);
    const struct conf_listen *cl = wl->gl->conf;
    if (!cli) {
        close(fd);
        return;
    }
    atomic_fetch_add(&conns_open, 1);
    cli->counted = true;
    conn_init(&cli->c, fd, client_read_cb, client_write_cb);
    ev_init(&cli->tmo, client_tmo_cb);
    client_take_gen(cli, w->gen);
    cli->vs = wl->gl->vs;
    cli->socks = wl->socks;
    cli->tcp_peer = *peer;
    cli->peer = *peer;
    cli->peer_ip_len = (uint8_t)sock_addr_ip(peer, cli->peer_ip, sizeof(cli->peer_ip));
    cli->tls = cl->tls;
    cli->proxy_protocol = cl->proxy_protocol;
    cli->h2c = cl->h2c;
    list_append(&w->clients, &cli->link);
    w->nclients++;
    gstat_add(w->id, GS_CONN_ACCEPTED, 1);
    gstat_add(w->id, GS_CONN_ACTIVE, 1);

    if (cli->tls && tls_accept_attach(&cli->c, cli->vs->tls) < 0) {
        client_close(cli, TERM_INTERNAL);
        return;
    }
    if (cli->tls && (cl->http2 || cli->vs->conf->http2))
        tls_offer_h2(&cli->c);
    if (cli->proxy_protocol)
        client_set_state(cli, CS_PROXY_HDR);
    else if (cli->tls)
        client_set_state(cli, CS_HANDSHAKE);
    else if (cli->h2c) {
        h2_adopt(cli);
        return;
    } else
        client_set_state(cli, CS_IDLE);
    client_deadline(cli, CT_HEADER, ms_to_s(cli->vs->conf->client_header_timeout_ms));
    conn_read_start(w->loop, &cli->c);
    /* TCP_DEFER_ACCEPT: the first bytes are usually here already. */
    client_read_cb(w->loop, &cli->c.rio, EV_READ);
}

/* ---- PROXY header and TLS handshake ---- */

/* The PROXY header is consumed as it arrives, so the watcher never fires
 * again for bytes already seen: while the header is incomplete every byte
 * received belongs to it and is read into ibuf (at most PROXY_PROTO_MAX); the
 * next call only peeks past them; once the header is complete its last bytes
 * are read exactly, and what follows (a TLS ClientHello, a request) stays in
 * the socket for the next stage. */
static void
client_read_proxy(struct client *cli)
{
    struct buf *b = cli->ibuf;
    struct sock_addr src;
    if (!b && !(b = cli->ibuf = buf_get(&cli->w->bufs))) {
        client_close(cli, TERM_INTERNAL);
        return;
    }
    size_t have = buf_len(b); /* start is 0: nothing else uses ibuf yet */
    char *p = buf_head(b);
    ssize_t r = recv(cli->c.fd, p + have, PROXY_PROTO_MAX - have, MSG_PEEK);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        client_close(cli, TERM_CLIENT_ABORT);
        return;
    }
    size_t len = have + (size_t)r;
    int n = proxy_proto_parse(p, len, &src);
    if (n == 0 && len < PROXY_PROTO_MAX) {
        /* Incomplete: take what came, wait for more. */
        if (recv(cli->c.fd, p + have, (size_t)r, 0) != r) {
            client_close(cli, TERM_CLIENT_ABORT);
            return;
        }
        b->end += (uint32_t)r;
        return;
    }
    if (n <= 0 || (size_t)n <= have) {
        log_limited(&proxy_fail_limit, 10000, LOG_LVL_WARN,
                    "client %s: invalid PROXY protocol header", cli->peer_ip);
        client_close(cli, TERM_BAD_REQUEST);
        return;
    }
    /* Consume exactly the rest of the header. */
    size_t rest = (size_t)n - have;
    if (recv(cli->c.fd, p + have, rest, 0) != (ssize_t)rest) {
        client_close(cli, TERM_CLIENT_ABORT);
        return;
    }
    buf_put(&cli->w->bufs, b);
    cli->ibuf = NULL;
    if (src.len) {
        cli->peer = src;
        cli->peer_ip_len = (uint8_t)sock_addr_ip(&src, cli->peer_ip, sizeof(cli->peer_ip));
    }
    client_set_state(cli, cli->tls ? CS_HANDSHAKE : CS_IDLE);
    if (cli->h2c) {
        h2_adopt(cli);
        return;
    }
    client_read_cb(cli->w->loop, &cli->c.rio, EV_READ);
}

static void
client_handshake(struct client *cli)
{
    struct worker *w = cli->w;
    int rc = tls_handshake(&cli->c);
    if (rc == -2) {
        /* Connected and closed without a byte: a TCP probe, not a failure. */
        client_close(cli, TERM_CLIENT_ABORT);
        return;
    }
    if (rc < 0) {
        gstat_add(w->id, GS_TLS_FAILURES, 1);
        log_limited(&tls_fail_limit, 10000, LOG_LVL_NOTICE, "TLS handshake with %s failed: %s",
                    cli->peer_ip, tls_last_error());
        client_close(cli, TERM_CLIENT_ABORT);
        return;
    }
    if (rc == 0) {
        if (cli->c.flags & CONN_TLS_READ_WANTS_WRITE)
            conn_write_want(w->loop, &cli->c);
        else
            conn_write_done(w->loop, &cli->c);
        return;
    }
    conn_write_done(w->loop, &cli->c);
    gstat_add(w->id, GS_TLS_HANDSHAKES, 1);
    if (tls_session_reused(&cli->c))
        gstat_add(w->id, GS_TLS_RESUMED, 1);
    client_set_state(cli, CS_IDLE);
    if (tls_alpn_h2(&cli->c)) {
        h2_adopt(cli);
        return;
    }
    client_read_cb(w->loop, &cli->c.rio, EV_READ);
}

/* ---- reading heads ---- */

ssize_t
client_fill(struct client *cli)
{
    struct buf *b = cli->ibuf;
    if (!b) {
        b = cli->ibuf = buf_get(&cli->w->bufs);
        if (!b)
            return IO_ERROR;
    }
    if (buf_room(b) == 0) {
        if (cli->state == CS_BUSY || b->start == 0)
            return IO_NOROOM;
        buf_compact(b);
    }
    ssize_t r = conn_read(&cli->c, buf_tail(b), buf_room(b));
    if (r > 0)
        b->end += (uint32_t)r;
    return r;
}

static void
client_release_ibuf_if_empty(struct client *cli)
{
    if (cli->ibuf && buf_len(cli->ibuf) == 0) {
        buf_put(&cli->w->bufs, cli->ibuf);
        cli->ibuf = NULL;
    }
}

static void
client_read_head(struct client *cli)
{
    ssize_t r = client_fill(cli);
    if (r == IO_AGAIN) {
        client_release_ibuf_if_empty(cli);
        return;
    }
    if (r == IO_NOROOM) {
        client_parse_head(cli); /* full buffer: the parser decides (431) */
        return;
    }
    if (r == IO_CLOSED || r == IO_ERROR) {
        /* A close between requests is the normal end of keep-alive. */
        client_close(cli, (cli->ibuf && buf_len(cli->ibuf)) ? TERM_CLIENT_ABORT : TERM_OK);
        return;
    }
    client_parse_head(cli);
}

static void
client_parse_head(struct client *cli)
{
    struct worker *w = cli->w;
    struct buf *b = cli->ibuf;
    struct request *req = cli->req;

    if (!b || buf_len(b) == 0)
        return;
    if (!req) {
        client_follow_gen(cli);
        req = cli->req = client_exchange_new(cli);
        if (!req) {
            client_close(cli, TERM_INTERNAL);
            return;
        }
        client_set_state(cli, CS_HEAD);
        if (cli->nrequests > 0)
            client_deadline(cli, CT_HEADER, ms_to_s(cli->vs->conf->client_header_timeout_ms));
    }
    const struct conf_vserver *cv = cli->vs->conf;
    struct http1_limits lim = {.max_head_bytes = (uint32_t)cv->max_head_bytes,
                               .max_fields = (uint16_t)cv->max_headers};
    int n = http1_parse_request(&req->h, buf_head(b), buf_len(b), &lim);
    if (n == HTTP1_NEED_MORE) {
        if (buf_room(b) == 0 && b->start == 0)
            client_reply(cli, 431, TERM_BAD_REQUEST, NULL, true);
        return;
    }
    if (n < 0) {
        gstat_add(w->id, GS_BAD_REQUESTS, 1);
        req->method = req->h.method;
        client_reply(cli, http1_error_status(n), TERM_BAD_REQUEST, NULL, true);
        return;
    }
    client_set_state(cli, CS_BUSY);
    cli->nrequests++;
    /* The last request keepalive_requests allows: its reply says close. */
    if (cli->nrequests >= cv->keepalive_requests)
        cli->close_after = true;
    /* A client that asked to close (Connection: close, HTTP/1.0 without
     * keep-alive) sends nothing after this request. */
    if (req->h.version_minor == 0
            ? !(req->h.flags & HTTP_F_CONN_KEEPALIVE) || (req->h.flags & HTTP_F_CONN_CLOSE)
            : (req->h.flags & HTTP_F_CONN_CLOSE))
        cli->peer_close = true;
    exchange_start(req, (uint32_t)n);
}

/* ---- tether's own replies ---- */

static int
client_flush_obuf(struct client *cli)
{
    struct buf *o = cli->obuf;
    while (o && buf_len(o)) {
        struct iovec iov = {.iov_base = buf_head(o), .iov_len = buf_len(o)};
        ssize_t r = conn_writev(&cli->c, &iov, 1);
        if (r == IO_AGAIN) {
            conn_write_want(cli->w->loop, &cli->c);
            return 0;
        }
        if (r <= 0)
            return -1;
        o->start += (uint32_t)r;
    }
    conn_write_done(cli->w->loop, &cli->c);
    buf_put(&cli->w->bufs, o);
    cli->obuf = NULL;
    return 1;
}

/* After a final reply on a connection that closes: send FIN, read and drop
 * what the client still sends for a moment (so it sees the reply instead of a
 * reset), then close. */
static void
client_linger(struct client *cli)
{
    client_set_state(cli, CS_ERROR_REPLY);
    buf_put(&cli->w->bufs, cli->ibuf);
    cli->ibuf = NULL;
    cli->c.ops->shutdown_write(&cli->c);
    cli->c.flags |= CONN_WRITE_SHUT;
    conn_read_start(cli->w->loop, &cli->c);
    client_deadline(cli, CT_LINGER, 2.0);
}

static void
client_reply_sent(struct client *cli)
{
    if (cli->close_after)
        client_linger(cli);
    else
        client_request_done(cli);
}

/* Write tether's own reply (<status>, <extra> header lines) into a fresh
 * cli->obuf, for <req> (may be NULL). false when there is no buffer or it does
 * not fit (the caller closes). */
static bool
client_reply_write(struct client *cli, const struct request *req, unsigned status,
                   const char *extra)
{
    buf_put(&cli->w->bufs, cli->obuf);
    cli->obuf = buf_get(&cli->w->bufs);
    if (!cli->obuf)
        return false;
    struct buf *o = cli->obuf;
    size_t n = http1_reply_write(buf_tail(o), buf_room(o), status, cli->close_after,
                                 req ? req->req_id : NULL, req ? req->req_id_len : 0, extra,
                                 req && req->method == HTTP_M_HEAD);
    o->end += (uint32_t)n;
    return n > 0;
}

/* Send the reply in cli->obuf: done, or wait for the socket. */
static void
client_reply_flush(struct client *cli)
{
    /* Only a reply that closes may drop what the client sends meanwhile. */
    client_set_state(cli, cli->close_after ? CS_ERROR_REPLY : CS_REPLY);
    int rc = client_flush_obuf(cli);
    if (rc < 0) {
        client_close(cli, TERM_CLIENT_ABORT);
    } else if (rc > 0) {
        client_reply_sent(cli);
    } else {
        /* The socket is full. The connection stays open: stop reading until
         * the reply is out (back-pressure), the bytes after it are the next
         * requests. (Unless TLS needs a read to go on writing.) */
        if (cli->state == CS_REPLY && !(cli->c.flags & CONN_TLS_WRITE_WANTS_READ))
            conn_read_pause(cli->w->loop, &cli->c);
        client_deadline(cli, CT_SEND, 30.0);
    }
}

/* write -> end the exchange -> flush. */
void
client_reply(struct client *cli, unsigned status, unsigned term, const char *extra, bool close)
{
    struct request *req = cli->req;
    if (req && !close) {
        /* Keep the connection only when the request was parsed (body_end set)
         * and its body, if any, is fully here and can be skipped; otherwise its
         * bytes would be taken for the next request. */
        if (!req->body_end || !req->req_body_done)
            close = true;
    }
    /* The client asked for the close: bytes after its request are not read. */
    if (close || cli->close_after || cli->peer_close)
        cli->close_after = true;
    if (!client_reply_write(cli, req, status, extra)) {
        client_close(cli, TERM_INTERNAL);
        return;
    }
    if (req) { /* the reply ends it: account, log, skip its bytes, free it */
        req->status = (uint16_t)status;
        if (!req->term)
            req->term = (uint8_t)term;
        req->bytes_out += buf_len(cli->obuf);
        request_log(req);
        /* The next request starts right after the head and a fully received body. */
        if (!cli->close_after && cli->ibuf)
            cli->ibuf->start = req->body_end;
        exchange_free(req);
        cli->req = NULL;
    }
    client_reply_flush(cli);
}

/* ---- between requests ---- */

void
client_request_done(struct client *cli)
{
    struct worker *w = cli->w;
    cli->req = NULL;
    if (w->draining || cli->nrequests >= cli->vs->conf->keepalive_requests)
        cli->close_after = true;
    if (cli->c.flags & CONN_READ_EOF) {
        client_close(cli, TERM_OK);
        return;
    }
    if (cli->close_after) {
        /* The client asked for the close: it sends nothing more, close now.
         * Otherwise it may have pipelined more: linger so it reads our reply. */
        if (cli->peer_close && !(cli->ibuf && buf_len(cli->ibuf)))
            client_close(cli, TERM_OK);
        else
            client_linger(cli);
        return;
    }
    client_set_state(cli, CS_IDLE);
    conn_read_start(w->loop, &cli->c);
    if (cli->ibuf && buf_len(cli->ibuf)) {
        /* A pipelined request is already here: answer in order, from the
         * event loop (a deadline of now), never from inside the handling of
         * the request that just ended: the stack stays flat however many
         * requests the buffer holds. */
        client_deadline(cli, CT_NEXT, 0);
        return;
    }
    client_release_ibuf_if_empty(cli);
    client_deadline(cli, CT_IDLE, ms_to_s(cli->vs->conf->keepalive_timeout_ms));
}

void
client_drain(struct client *cli)
{
    if (cli->state == CS_IDLE || cli->state == CS_HANDSHAKE || cli->state == CS_PROXY_HDR ||
        (cli->state == CS_HEAD && (!cli->ibuf || buf_len(cli->ibuf) == 0)))
        client_close(cli, TERM_SHUTDOWN);
    else
        cli->close_after = true;
}

/* ---- callbacks ---- */

/* After a reply that closes: read and drop input until EOF. Its own frame
 * (not inlined), so the buffer is on the stack only while lingering. */
static __attribute__((noinline)) void
client_read_discard(struct client *cli)
{
    char sink[1024];
    ssize_t r = conn_read(&cli->c, sink, sizeof(sink));
    if (r == IO_CLOSED || r == IO_ERROR)
        client_close(cli, TERM_OK);
}

static void
client_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct client *cli = container_of(io, struct client, c.rio);
    (void)loop;
    (void)revents;
    switch (cli->state) {
    case CS_PROXY_HDR:
        client_read_proxy(cli);
        return;
    case CS_HANDSHAKE:
        client_handshake(cli);
        return;
    case CS_IDLE:
    case CS_HEAD:
        if (cli->state == CS_IDLE && !client_limit_conn(cli)) {
            gstat_add(cli->w->id, GS_CONN_LIMITED, 1);
            cli->req = client_exchange_new(cli);
            if (cli->req)
                cli->req->term = TERM_CONN_LIMITED;
            client_reply(cli, 429, TERM_CONN_LIMITED, "Retry-After: 1\r\n", true);
            return;
        }
        client_read_head(cli);
        return;
    case CS_BUSY:
        if (cli->req)
            exchange_readable(cli->req);
        else
            conn_read_pause(cli->w->loop, &cli->c);
        return;
    case CS_REPLY:
        /* Not reading while the reply waits; TLS may need a read to write. */
        if (cli->c.flags & CONN_TLS_WRITE_WANTS_READ)
            client_write_cb(loop, &cli->c.wio, EV_WRITE);
        else
            conn_read_pause(cli->w->loop, &cli->c);
        return;
    case CS_ERROR_REPLY:
        client_read_discard(cli);
        return;
    default:
        return;
    }
}

static void
client_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct client *cli = container_of(io, struct client, c.wio);
    (void)loop;
    (void)revents;
    switch (cli->state) {
    case CS_HANDSHAKE:
        client_handshake(cli);
        return;
    case CS_REPLY:
    case CS_ERROR_REPLY: {
        int rc = client_flush_obuf(cli);
        if (rc < 0)
            client_close(cli, TERM_CLIENT_ABORT);
        else if (rc > 0)
            client_reply_sent(cli);
        return;
    }
    case CS_BUSY:
        if (cli->req)
            exchange_writable(cli->req);
        else
            conn_write_done(cli->w->loop, &cli->c);
        return;
    default:
        conn_write_done(cli->w->loop, &cli->c);
        return;
    }
}

static void
client_tmo_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct client *cli = container_of(t, struct client, tmo);
    ev_tstamp now = ev_now(loop);
    (void)revents;
    if (cli->tmo_kind == CT_NONE)
        return;
    if (cli->deadline > now + 0.0005) {
        ev_timer_set(t, cli->deadline - now, 0);
        ev_timer_start(loop, t);
        return;
    }
    switch (cli->tmo_kind) {
    case CT_HEADER:
        if (cli->state == CS_HEAD && cli->req && cli->ibuf && buf_len(cli->ibuf)) {
            client_reply(cli, 408, TERM_CLIENT_TIMEOUT, NULL, true);
            return;
        }
        client_close(cli, TERM_CLIENT_TIMEOUT);
        return;
    case CT_IDLE:
        if (cli->state == CS_IDLE) {
            client_close(cli, TERM_OK);
            return;
        }
        break;
    case CT_BODY:
    case CT_SEND:
        if (cli->req) {
            exchange_gone(cli->req, TERM_CLIENT_TIMEOUT);
            return;
        }
        client_close(cli, TERM_CLIENT_TIMEOUT);
        return;
    case CT_LINGER:
        client_close(cli, TERM_OK);
        return;
    case CT_NEXT:
        cli->tmo_kind = CT_NONE;
        if (cli->state == CS_IDLE && cli->ibuf && buf_len(cli->ibuf))
            client_parse_head(cli);
        else if (cli->state == CS_IDLE)
            client_deadline(cli, CT_IDLE, ms_to_s(cli->vs->conf->keepalive_timeout_ms));
        return;
    default:
        break;
    }
}
