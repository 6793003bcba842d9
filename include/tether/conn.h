/* SPDX-License-Identifier: MIT */
/* One socket: its fd, read and write watchers, and the I/O operations (plain or
 * TLS). The read watcher stays armed for the connection's life except under
 * back-pressure; the write watcher is armed only while output would block. */
#ifndef TETHER_CONN_H
#define TETHER_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <ev.h>

/* I/O results (negative), or a byte count > 0. */
enum io_result {
    IO_CLOSED = 0,  /* orderly EOF */
    IO_AGAIN = -1,  /* would block */
    IO_ERROR = -2,  /* reset or other error (errno kept) */
    IO_NOROOM = -3, /* the caller's buffer is full: nothing was read */
};

struct conn;

/* The seam between plain TCP and TLS. */
struct io_ops {
    ssize_t (*read)(struct conn *c, void *buf, size_t n);
    ssize_t (*writev)(struct conn *c, const struct iovec *iov, int iovcnt);
    void (*shutdown_write)(struct conn *c);
    void (*free)(struct conn *c); /* release TLS state (not the fd) */
};

enum conn_flag {
    CONN_READ_EOF = 1u << 0,             /* peer sent FIN */
    CONN_WRITE_SHUT = 1u << 1,           /* we sent FIN */
    CONN_READ_PAUSED = 1u << 2,          /* read watcher stopped for back-pressure */
    CONN_WANT_WRITE = 1u << 3,           /* write watcher armed */
    CONN_TLS_READ_WANTS_WRITE = 1u << 4, /* TLS read needs the socket writable */
    CONN_TLS_WRITE_WANTS_READ = 1u << 5, /* TLS write needs the socket readable */
};

struct conn {
    int fd;
    uint32_t flags; /* enum conn_flag */
    ev_io rio;      /* readable */
    ev_io wio;      /* writable */
    const struct io_ops *ops;
    void *ssl; /* SSL * when TLS */
};

extern const struct io_ops conn_plain_ops;

/* Set up watchers on <fd> with callbacks; nothing started. */
void conn_init(struct conn *c, int fd, void (*rcb)(struct ev_loop *, ev_io *, int),
               void (*wcb)(struct ev_loop *, ev_io *, int));

static inline void
conn_read_start(struct ev_loop *loop, struct conn *c)
{
    /* TLS may hold decrypted bytes the socket no longer signals: after a pause,
     * look once without waiting for readiness (an empty read is IO_AGAIN). */
    if ((c->flags & CONN_READ_PAUSED) && c->ssl)
        ev_feed_event(loop, &c->rio, EV_READ);
    c->flags &= ~CONN_READ_PAUSED;
    ev_io_start(loop, &c->rio);
}

/* Back-pressure: stop reading until conn_read_start(). */
static inline void
conn_read_pause(struct ev_loop *loop, struct conn *c)
{
    if (!(c->flags & CONN_READ_PAUSED)) {
        c->flags |= CONN_READ_PAUSED;
        ev_io_stop(loop, &c->rio);
    }
}

static inline void
conn_write_want(struct ev_loop *loop, struct conn *c)
{
    if (!(c->flags & CONN_WANT_WRITE)) {
        c->flags |= CONN_WANT_WRITE;
        ev_io_start(loop, &c->wio);
    }
}

static inline void
conn_write_done(struct ev_loop *loop, struct conn *c)
{
    if (c->flags & CONN_WANT_WRITE) {
        c->flags &= ~CONN_WANT_WRITE;
        ev_io_stop(loop, &c->wio);
    }
}

static inline ssize_t
conn_read(struct conn *c, void *buf, size_t n)
{
    return c->ops->read(c, buf, n);
}

static inline ssize_t
conn_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    return c->ops->writev(c, iov, iovcnt);
}

/* Stop watchers, release TLS state and close the fd (with an RST when <reset>). */
void conn_close(struct ev_loop *loop, struct conn *c, bool reset);

/* Write every byte now or fail: for small replies on a fresh socket. Returns
 * bytes written (may be short when the socket would block). */
ssize_t conn_write_all(struct conn *c, const void *p, size_t n);

#endif
