/* SPDX-License-Identifier: MIT */
/* The HTTP/1 client connection as a downstream (downstream.h): the operations
 * an exchange calls to read its body, write its response, pause, answer,
 * end or become a tunnel. The exchange never sees struct client. */
#include "config.h"

#include <tether/client.h>
#include <tether/exchange.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/worker.h>

#include <stdint.h>

/* The exchange names the client's deadlines by enum ds_tmo: the same values. */
_Static_assert((int)DS_TMO_NONE == (int)CT_NONE && (int)DS_TMO_BODY == (int)CT_BODY &&
                   (int)DS_TMO_SEND == (int)CT_SEND,
               "enum ds_tmo must match enum client_tmo");

static struct buf *
h1_input(void *ctx)
{
    return ((struct client *)ctx)->ibuf;
}

static ssize_t
h1_read(void *ctx)
{
    struct client *cli = ctx;
    ssize_t r = client_fill(cli);
    if (r == IO_CLOSED) {
        cli->c.flags |= CONN_READ_EOF;
        conn_read_pause(cli->w->loop, &cli->c);
    }
    return r;
}

static void
h1_pause(void *ctx)
{
    struct client *cli = ctx;
    conn_read_pause(cli->w->loop, &cli->c);
}

static void
h1_resume(void *ctx)
{
    struct client *cli = ctx;
    if (!(cli->c.flags & CONN_READ_EOF))
        conn_read_start(cli->w->loop, &cli->c);
}

static ssize_t
h1_write(void *ctx, const struct iovec *iov, int n)
{
    struct client *cli = ctx;
    ssize_t r = conn_writev(&cli->c, iov, n);
    if (r == IO_AGAIN)
        conn_write_want(cli->w->loop, &cli->c);
    return r;
}

static void
h1_write_done(void *ctx)
{
    struct client *cli = ctx;
    conn_write_done(cli->w->loop, &cli->c);
}

static bool
h1_write_blocked(void *ctx)
{
    return (((struct client *)ctx)->c.flags & CONN_WANT_WRITE) != 0;
}

static bool
h1_closing(void *ctx)
{
    return ((struct client *)ctx)->close_after;
}

static void
h1_deadline(void *ctx, unsigned kind, double secs)
{
    client_deadline(ctx, kind, secs);
}

static bool
h1_admit(void *ctx, const char *rip, size_t rip_len, const char *base, const struct http_head *h,
         const char *route)
{
    return client_limit_conn_request(ctx, rip, rip_len, base, h, route);
}

static void
h1_reply(void *ctx, unsigned status, unsigned term, const char *extra, bool close)
{
    client_reply(ctx, status, term, extra, close);
}

static void
h1_done(void *ctx, uint32_t next, bool close)
{
    struct client *cli = ctx;
    if (cli->ibuf && next != UINT32_MAX)
        cli->ibuf->start = next;
    if (close)
        cli->close_after = true;
    client_request_done(cli);
}

static void
h1_reset(void *ctx, unsigned term)
{
    client_close(ctx, term);
}

/* A tunnel that carried a client connection closed: the worker may resume
 * accepting or finish draining (the tunnel reports here, not to the worker). */
static void
h1_tunnel_gone(void *owner)
{
    worker_client_gone(owner);
}

static bool
h1_upgrade(void *ctx, struct tunnel_args *ta, uint32_t next)
{
    struct client *cli = ctx;
    ta->gone = h1_tunnel_gone;
    ta->owner = cli->w;
    ta->a = &cli->c;
    ta->a_tls = cli->tls;
    ta->limit = cli->limit;
    if (cli->ibuf && cli->ibuf->end > next) {
        cli->ibuf->start = next;
        ta->a_in = cli->ibuf;
        cli->ibuf = NULL;
    }
    return true;
}

static void
h1_release(void *ctx)
{
    struct client *cli = ctx;
    /* The limit_conn slot and the connection count went to the tunnel. */
    cli->limit = NULL;
    cli->counted = false;
    gstat_add(cli->w->id, GS_CONN_ACTIVE, 1); /* client_close subtracts one */
    cli->req = NULL;
    client_close(cli, TERM_OK);
}

static const struct downstream_ops h1_ops = {
    .proto = "http/1.1",
    .input = h1_input,
    .read = h1_read,
    .pause = h1_pause,
    .resume = h1_resume,
    .write = h1_write,
    .write_done = h1_write_done,
    .write_blocked = h1_write_blocked,
    .closing = h1_closing,
    .deadline = h1_deadline,
    .admit = h1_admit,
    .reply = h1_reply,
    .done = h1_done,
    .reset = h1_reset,
    .upgrade = h1_upgrade,
    .release = h1_release,
};

struct request *
client_exchange_new(struct client *cli)
{
    struct downstream ds = {.ops = &h1_ops, .ctx = cli};
    struct exchange_origin o = {
        .gen = cli->gen,
        .vs = cli->vs,
        .peer = &cli->peer,
        .ip = cli->peer_ip,
        .ip_len = cli->peer_ip_len,
        .tls = cli->tls,
        .proto = 1,
    };
    return exchange_new(cli->w, &ds, &o);
}
