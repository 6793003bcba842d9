/* SPDX-License-Identifier: MIT */
/* The downstream interface: what an exchange needs from the client side that
 * carries it, whatever the protocol. The HTTP/1 client connection (client.c)
 * implements it today; an HTTP/2 stream implements it next. The exchange
 * (exchange.h) reaches its client only through these operations, and the
 * downstream reaches the exchange only through exchange.h.
 *
 *   downstream (HTTP/1 connection, HTTP/2 stream)
 *        | exchange_start / _body / _writable / _gone      (exchange.h)
 *        v                                ^
 *     exchange  --- ops->reply/done/reset/pause/... ---+   (this header)
 *
 * Every operation takes the <ctx> given with the ops table (the client
 * connection, the stream). None of them frees the exchange on the caller's
 * stack except where its contract says "ends the exchange": after such a call
 * the caller must not touch the exchange again. */
#ifndef TETHER_DOWNSTREAM_H
#define TETHER_DOWNSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct buf;
struct http_head;
struct tunnel_args;

/* Which deadline the downstream should run while the exchange is in a phase
 * (the values are the HTTP/1 client's enum client_tmo). */
enum ds_tmo {
    DS_TMO_NONE = 0, /* no client-side deadline (the exchange's own run) */
    DS_TMO_BODY = 3, /* client_body_timeout: between request body reads */
    DS_TMO_SEND = 4, /* the client does not take what is sent */
};

struct downstream_ops {
    /* Protocol name for logs and metrics ("http/1.1", "h2"). */
    const char *proto;

    /* The buffer holding request body bytes received from the client (NULL
     * when none is held). The exchange's body state (body_start, body_off,
     * body_end) is a set of offsets into it; it stays attached until done(). */
    struct buf *(*input)(void *ctx);

    /* Read more request bytes into input(). Returns > 0 (bytes read),
     * IO_AGAIN, IO_CLOSED, IO_ERROR (conn.h) or IO_NOROOM (input full). */
    ssize_t (*read)(void *ctx);

    /* Back-pressure on the request body: stop / restart reading from the
     * client (HTTP/2: stop / restart opening the stream's window). */
    void (*pause)(void *ctx);
    void (*resume)(void *ctx);

    /* Send the response head bytes and body spans in <iov> (the exchange keeps
     * ownership and calls again with what is left). Returns the bytes taken
     * (> 0), IO_AGAIN (write readiness is armed: exchange_writable() follows)
     * or <= 0 when the client is gone. */
    ssize_t (*write)(void *ctx, const struct iovec *iov, int n);

    /* Everything given to write() was taken: stop watching write readiness. */
    void (*write_done)(void *ctx);

    /* true while a write is waiting for the client to take bytes (the pod's
     * silence is then the client's fault, judged by the send deadline). */
    bool (*write_blocked)(void *ctx);

    /* true when the carrier will close after this exchange (draining,
     * keepalive_requests reached): the response says so to the client. */
    bool (*closing)(void *ctx);

    /* Run the downstream deadline <kind> (enum ds_tmo) for <secs> from now. */
    void (*deadline)(void *ctx, unsigned kind, double secs);

    /* Count the exchange against limit_conn keys that need the request (its
     * headers over <base>, the route label, the address <rip>). false when a
     * key is at its limit (the exchange answers 429 and closes). */
    bool (*admit)(void *ctx, const char *rip, size_t rip_len, const char *base,
                  const struct http_head *h, const char *route);

    /* Answer with tether's own small reply <status> (text body, X-Request-Id,
     * <extra> header lines each ending CRLF, or NULL) accounted with <term>.
     * With <close> the carrier closes after it (HTTP/1: the connection, after
     * draining input briefly; HTTP/2: the stream). Ends the exchange: the
     * downstream sets its status and term, logs it (request_log) and frees it
     * (exchange_free). */
    void (*reply)(void *ctx, unsigned status, unsigned term, const char *extra, bool close);

    /* The exchange ended normally (logged, counted and freed by the caller
     * just before: do not touch it). <next>: input offset where the next pipelined request starts
     * (HTTP/1); <close>: the carrier must close after it. HTTP/1 goes on with
     * the next request, idles or closes; HTTP/2 ends the stream. */
    void (*done)(void *ctx, uint32_t next, bool close);

    /* Abort the carrier with <term> (HTTP/1: close the connection; HTTP/2:
     * RST_STREAM). The caller released the upstream connection; the
     * downstream logs the exchange (when it received anything) and frees it. */
    void (*reset)(void *ctx, unsigned term);

    /* A 101 was answered: fill the client side of <ta> (the byte carrier, TLS
     * flag, input bytes after offset <next>, limit_conn slot) so the exchange
     * can start a tunnel, and give them up. false: cannot (the exchange fails
     * with TERM_INTERNAL). HTTP/2 streams answer 200 to an extended CONNECT
     * and carry the tunnel in DATA frames instead: they take the pod side
     * (ta->b, ta->b_in, ta->a_head) and set ta->carried (no tunnel_start). */
    bool (*upgrade)(void *ctx, struct tunnel_args *ta, uint32_t next);

    /* After upgrade() and a started tunnel (the exchange was logged and freed
     * just before): the carrier object goes away, its socket, limit_conn slot
     * and connection count live on in the tunnel (HTTP/1); the stream drops
     * what it held for the exchange and goes on as the tunnel (HTTP/2). */
    void (*release)(void *ctx);
};

/* A downstream as the exchange holds it: an ops table and its context. */
struct downstream {
    const struct downstream_ops *ops; /* the protocol's operations */
    void *ctx;                        /* the connection or stream */
};

/* Calls through a downstream, as the exchange makes them. */
static inline struct buf *
ds_input(const struct downstream *d)
{
    return d->ops->input(d->ctx);
}

static inline ssize_t
ds_read(const struct downstream *d)
{
    return d->ops->read(d->ctx);
}

static inline void
ds_pause(const struct downstream *d)
{
    d->ops->pause(d->ctx);
}

static inline void
ds_resume(const struct downstream *d)
{
    d->ops->resume(d->ctx);
}

static inline ssize_t
ds_write(const struct downstream *d, const struct iovec *iov, int n)
{
    return d->ops->write(d->ctx, iov, n);
}

static inline void
ds_deadline(const struct downstream *d, unsigned kind, double secs)
{
    d->ops->deadline(d->ctx, kind, secs);
}

static inline void
ds_reply(const struct downstream *d, unsigned status, unsigned term, const char *extra, bool close)
{
    d->ops->reply(d->ctx, status, term, extra, close);
}

static inline void
ds_reset(const struct downstream *d, unsigned term)
{
    d->ops->reset(d->ctx, term);
}

#endif
