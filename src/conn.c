/* SPDX-License-Identifier: MIT */
/* Plain-socket I/O operations and connection teardown. */
#include "config.h"

#include <tether/conn.h>
#include <tether/sock.h>

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t
plain_read(struct conn *c, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r > 0)
            return r;
        if (r == 0)
            return IO_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return IO_AGAIN;
        return IO_ERROR;
    }
}

static ssize_t
plain_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t r;
        if (iovcnt == 1)
            r = send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        else {
            struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
            r = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        }
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return IO_AGAIN;
        return IO_ERROR;
    }
}

static void
plain_shutdown_write(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
}

static void
plain_free(struct conn *c)
{
    (void)c;
}

const struct io_ops conn_plain_ops = {
    .read = plain_read,
    .writev = plain_writev,
    .shutdown_write = plain_shutdown_write,
    .free = plain_free,
};

void
conn_init(struct conn *c, int fd, void (*rcb)(struct ev_loop *, ev_io *, int),
          void (*wcb)(struct ev_loop *, ev_io *, int))
{
    c->fd = fd;
    c->flags = 0;
    c->ops = &conn_plain_ops;
    c->ssl = NULL;
    ev_io_init(&c->rio, rcb, fd, EV_READ);
    ev_io_init(&c->wio, wcb, fd, EV_WRITE);
}

void
conn_close(struct ev_loop *loop, struct conn *c, bool reset)
{
    if (c->fd < 0)
        return;
    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    c->ops->free(c);
    c->ops = &conn_plain_ops;
    if (reset)
        sock_reset(c->fd);
    close(c->fd);
    c->fd = -1;
    c->flags = 0;
}

ssize_t
conn_write_all(struct conn *c, const void *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    size_t done = 0;
    while (done < n) {
        ssize_t w;
        iov.iov_base = (char *)p + done;
        iov.iov_len = n - done;
        w = c->ops->writev(c, &iov, 1);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    return (ssize_t)done;
}
