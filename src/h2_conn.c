/* SPDX-License-Identifier: MIT */
/* HTTP/2 connections: one nghttp2 server session per client socket, fed from
 * the socket's reads and written through a bounded output buffer; the
 * settings, the flood guards (control frames, resets, CONTINUATION), the
 * idle/header/send timeouts and GOAWAY on reload and shutdown. */
#include "config.h"

#include "h2_int.h"

#include <tether/client.h>
#include <tether/gen.h>
#include <tether/h2.h>
#include <tether/log.h>
#include <tether/ratelimit.h>
#include <tether/stats.h>
#include <tether/worker.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct log_limit flood_limit;

static void h2_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void h2_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void h2_tick_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void h2_turn_cb(struct ev_loop *loop, ev_prepare *p, int revents);

bool
h2_bucket_take(struct h2_bucket *b, double now, uint32_t burst, uint32_t rate)
{
    b->tokens += (now - b->at) * rate;
    b->at = now;
    if (b->tokens > burst)
        b->tokens = burst;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

/* ---- close ---- */

static void
h2_free(struct h2_conn *h)
{
    struct worker *w = h->w;
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &h->streams)
    {
        h2s_free(container_of(pos, struct h2_stream, link));
    }
    nghttp2_session_del(h->sess);
    ev_timer_stop(w->loop, &h->tick);
    ev_prepare_stop(w->loop, &h->turn);
    conn_close(w->loop, &h->c, false);
    buf_put(&w->bufs, h->obuf);
    if (h->limit)
        conn_slot_release(h->limit);
    if (h->socks)
        listen_fds_unref(h->socks);
    list_remove(&h->link);
    w->nh2--;
    atomic_fetch_sub(&conns_open, 1);
    gstat_add(w->id, GS_CONN_ACTIVE, -1);
    free(h);
    worker_client_gone(w);
}

/* Close now, or at the end of the current I/O handler. */
static void
h2_close(struct h2_conn *h)
{
    if (h->freed)
        return;
    h->dead = true;
    if (!h->in_io) {
        h->freed = true;
        h2_free(h);
    }
}

/* End the connection for abuse or a protocol error: GOAWAY, then close. */
static void
h2_terminate(struct h2_conn *h, uint32_t code, const char *why)
{
    log_limited(&flood_limit, 10000, LOG_LVL_NOTICE, "http2 client %s: %s, connection ended",
                h->peer_ip, why);
    gstat_add(h->w->id, GS_H2_ABUSE, 1);
    nghttp2_session_terminate_session(h->sess, code);
    h->goaway = true;
}

void
h2_abuse(struct h2_conn *h, const char *why)
{
    if (!h->goaway || !h->finish)
        h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM, why);
    h->finish = true;
}

/* ---- output ---- */

void
h2_progress(struct h2_conn *h)
{
    h->last_progress = ev_now(h->w->loop);
}

/* Write what obuf holds. 1 all written, 0 would block, -1 error. */
static int
h2_write_obuf(struct h2_conn *h)
{
    struct buf *b = h->obuf;
    while (b && buf_len(b) > 0) {
        struct iovec iov = {buf_head(b), buf_len(b)};
        ssize_t r = conn_writev(&h->c, &iov, 1);
        if (r == IO_AGAIN) {
            conn_write_want(h->w->loop, &h->c);
            return 0;
        }
        if (r <= 0)
            return -1;
        b->start += (uint32_t)r;
        h2_progress(h);
    }
    if (b) {
        buf_put(&h->w->bufs, b);
        h->obuf = NULL;
    }
    return 1;
}

/* Move frames from nghttp2 into obuf and the socket until nghttp2 has nothing
 * more or the socket would block (then the rest waits: back-pressure; nghttp2
 * keeps at most one chunk, its own queue bounded by the streams' windows). */
void
h2_flush(struct h2_conn *h)
{
    for (;;) {
        if (!h->spend_len) {
            ssize_t n = nghttp2_session_mem_send(h->sess, &h->spend);
            if (n < 0) {
                h2_close(h);
                return;
            }
            h->spend_len = (size_t)n;
            if (n == 0)
                break;
        }
        if (!h->obuf && !(h->obuf = buf_get(&h->w->bufs))) {
            h2_close(h);
            return;
        }
        uint32_t room = buf_room(h->obuf);
        if (room == 0) {
            int rc = h2_write_obuf(h);
            if (rc < 0) {
                h2_close(h);
                return;
            }
            if (rc == 0)
                return;
            continue;
        }
        uint32_t k = h->spend_len < room ? (uint32_t)h->spend_len : room;
        buf_append(h->obuf, h->spend, k);
        h->spend += k;
        h->spend_len -= k;
    }
    int rc = h2_write_obuf(h);
    if (rc < 0) {
        h2_close(h);
        return;
    }
    if (rc == 1) {
        conn_write_done(h->w->loop, &h->c);
        if (!nghttp2_session_want_read(h->sess) && !nghttp2_session_want_write(h->sess))
            h2_close(h);
    }
}

/* ---- entry points: every event handler brackets its work with these ---- */

static void
h2_enter(struct h2_conn *h)
{
    h->in_io = true;
}

/* Notify the exchanges (bytes came, room opened), then move every frame
 * they and the input produced into the socket: one pass per loop turn. */
static void
h2_run_turn(struct h2_conn *h)
{
    /* Each pass moves bytes (a drained stream buffer lets its exchange write
     * more): it ends when no stream has anything new to report. A re-armed
     * prepare watcher would only run after the next poll, so no kick may be
     * left behind; the bound is a guard, not a limit a client can reach. */
    for (int i = 0; i < 1024 && !h->dead; i++) {
        if (h->nkick)
            h2x_run_kicks(h);
        if (!h->dead)
            h2_flush(h); /* still inside: a close there only marks it */
        if (!h->nkick)
            break;
    }
}

void
h2_want_turn(struct h2_conn *h)
{
    if (!h->freed && !ev_is_active(&h->turn))
        ev_prepare_start(h->w->loop, &h->turn);
}

/* The end of an event: a finished connection is dead, a dead one is freed.
 * false when <h> was freed. */
static bool
h2_settle(struct h2_conn *h)
{
    h->in_io = false;
    if (h->finish)
        h->dead = true;
    if (h->dead && !h->freed) {
        h->freed = true;
        h2_free(h);
        return false;
    }
    return true;
}

static void
h2_leave(struct h2_conn *h)
{
    if (!h->dead && h->finish)
        h2_run_turn(h); /* the GOAWAY out before the close (best effort) */
    if (h2_settle(h))
        h2_want_turn(h);
}

static void
h2_turn_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct h2_conn *h = container_of(p, struct h2_conn, turn);
    (void)revents;
    ev_prepare_stop(loop, p);
    h2_enter(h);
    h2_run_turn(h);
    if (!h2_settle(h))
        return;
    if (h->nkick)
        h2_want_turn(h);
}

void
h2_event_enter(struct h2_conn *h)
{
    h2_enter(h);
}

void
h2_event_leave(struct h2_conn *h)
{
    h2_leave(h);
}

/* ---- input ---- */

static void
h2_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct h2_conn *h = io->data;
    struct worker *w = h->w;
    (void)loop;
    (void)revents;
    struct buf *b = buf_get(&w->bufs);
    if (!b) {
        h2_close(h);
        return;
    }
    h2_enter(h);
    ssize_t r = conn_read(&h->c, buf_tail(b), buf_room(b));
    if (r > 0) {
        h->last_frame = ev_now(w->loop);
        ssize_t n = nghttp2_session_mem_recv(h->sess, (const uint8_t *)buf_tail(b), (size_t)r);
        if (n < 0) {
            /* Bad frames or a flood: a GOAWAY is queued; send it, then close. */
            if (n == NGHTTP2_ERR_FLOODED)
                gstat_add(w->id, GS_H2_ABUSE, 1);
            nghttp2_session_terminate_session(h->sess, NGHTTP2_PROTOCOL_ERROR);
            h->goaway = true;
            h->finish = true;
        }
        /* A full read over TLS may leave decrypted bytes in OpenSSL. */
        if (h->c.ssl && (uint32_t)r == buf_room(b))
            ev_feed_event(w->loop, &h->c.rio, EV_READ);
    } else if (r == IO_AGAIN) {
        if (h->c.flags & CONN_TLS_READ_WANTS_WRITE)
            conn_write_want(w->loop, &h->c);
    } else {
        h->dead = true;
    }
    buf_put(&w->bufs, b);
    h2_leave(h);
}

static void
h2_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct h2_conn *h = io->data;
    (void)revents;
    if (h->c.flags & CONN_TLS_READ_WANTS_WRITE) {
        h->c.flags &= ~CONN_TLS_READ_WANTS_WRITE;
        ev_feed_event(loop, &h->c.rio, EV_READ);
    }
    h2_enter(h);
    h2_leave(h);
}

/* ---- nghttp2 callbacks for the connection ---- */

static int
on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *ud)
{
    struct h2_conn *h = ud;
    (void)s;
    if (hd->type == NGHTTP2_HEADERS)
        h->ncont = 0;
    else if (hd->type == NGHTTP2_CONTINUATION && ++h->ncont > h->lim.max_continuations) {
        h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM, "CONTINUATION flood");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static bool
is_control(const nghttp2_frame *f)
{
    switch (f->hd.type) {
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
        return !(f->hd.flags & NGHTTP2_FLAG_ACK);
    case NGHTTP2_PRIORITY:
    case NGHTTP2_WINDOW_UPDATE:
        return true;
    case NGHTTP2_DATA: /* empty DATA without END_STREAM: nothing but cost */
        return f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM);
    default:
        return false;
    }
}

static int
on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct h2_conn *h = ud;
    double now = ev_now(h->w->loop);
    (void)s;
    if (h->dead)
        return 0;
    if (f->hd.type == NGHTTP2_WINDOW_UPDATE && h->wu_credit > 0) {
        h->wu_credit--; /* acknowledges DATA tether sent: not a control frame */
    } else if (is_control(f) &&
               !h2_bucket_take(&h->control, now, h->lim.max_control, h->lim.control_rate)) {
        h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM, "control frame flood");
        return 0;
    }
    if (f->hd.type == NGHTTP2_RST_STREAM &&
        !h2_bucket_take(&h->resets, now, h->lim.max_resets, h->lim.reset_rate)) {
        h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM, "stream reset flood");
        return 0;
    }
    return h2s_on_frame_recv(h, f);
}

/* Streams tether resets count too (a client provoking resets, "MadeYouReset"). */
static int
on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct h2_conn *h = ud;
    if (f->hd.type == NGHTTP2_DATA && f->hd.length > 0 && h->wu_credit < H2_WU_CREDIT_MAX)
        h->wu_credit += 2;
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        struct h2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (st)
            h2x_frame_sent(st, f);
    }
    if (f->hd.type == NGHTTP2_RST_STREAM && !h->dead &&
        !h2_bucket_take(&h->resets, ev_now(h->w->loop), h->lim.max_resets, h->lim.reset_rate))
        h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM, "stream errors provoked too fast");
    return 0;
}

static int
on_invalid_frame(nghttp2_session *s, const nghttp2_frame *f, int err, void *ud)
{
    struct h2_conn *h = ud;
    (void)s, (void)f, (void)err;
    if (!h->dead &&
        !h2_bucket_take(&h->resets, ev_now(h->w->loop), h->lim.max_resets, h->lim.reset_rate))
        h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM, "invalid frames too fast");
    return 0;
}

static nghttp2_session_callbacks *h2_callbacks;
static nghttp2_option *h2_options;
static pthread_once_t h2_once = PTHREAD_ONCE_INIT;

static void
h2_init_once(void)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return;
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2s_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2s_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2s_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2s_on_close);
    h2_callbacks = cb;
    if (nghttp2_option_new(&h2_options) != 0)
        return;
    /* The window opens as the exchange or the tunnel takes the bytes
     * (bounded buffering). */
    nghttp2_option_set_no_auto_window_update(h2_options, 1);
    nghttp2_option_set_no_closed_streams(h2_options, 1);
    nghttp2_option_set_max_outbound_ack(h2_options, 100);
    nghttp2_option_set_max_settings(h2_options, 32);
    nghttp2_option_set_max_deflate_dynamic_table_size(h2_options, 4096);
}

/* ---- adoption ---- */

static void
h2_limits_from(struct h2_limits *l, const struct conf_vserver *cv)
{
    l->max_streams = cv->h2_max_streams;
    l->max_header_list = (uint32_t)cv->h2_max_header_list;
    l->stream_window = (uint32_t)cv->h2_stream_window;
    l->conn_window = (uint32_t)cv->h2_conn_window;
    l->idle_secs = (double)cv->h2_idle_timeout_ms / 1000.0;
    l->header_secs = (double)cv->h2_header_timeout_ms / 1000.0;
    l->send_secs = (double)cv->h2_send_timeout_ms / 1000.0;
    l->max_resets = cv->h2_max_resets;
    l->reset_rate = cv->h2_reset_rate;
    l->max_control = cv->h2_max_control;
    l->control_rate = cv->h2_control_rate;
    l->max_continuations = cv->h2_max_continuations;
}

static int
h2_session_start(struct h2_conn *h)
{
    pthread_once(&h2_once, h2_init_once);
    if (!h2_callbacks || !h2_options)
        return -1;
    if (nghttp2_session_server_new2(&h->sess, h2_callbacks, h, h2_options) != 0)
        return -1;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h->lim.max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h->lim.stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, h->lim.max_header_list},
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
    };
    if (nghttp2_submit_settings(h->sess, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0)
        return -1;
    if (h->lim.conn_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE &&
        nghttp2_session_set_local_window_size(h->sess, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)h->lim.conn_window) != 0)
        return -1;
    return 0;
}

/* A new connection on <fd> (its io ops and SSL already set in <c>). */
static struct h2_conn *
h2_conn_new(struct worker *w, const struct conf_vserver *cv, struct listen_fds *socks)
{
    struct h2_conn *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->w = w;
    list_init(&h->streams);
    h2_limits_from(&h->lim, cv);
    h->socks = socks;
    if (socks)
        atomic_fetch_add(&socks->refs, 1);
    double now = ev_now(w->loop);
    h->started = h->last_frame = h->last_progress = now;
    h->resets.tokens = h->lim.max_resets;
    h->resets.at = now;
    h->control.tokens = h->lim.max_control;
    h->control.at = now;
    atomic_fetch_add(&conns_open, 1);
    gstat_add(w->id, GS_CONN_ACTIVE, 1);
    gstat_add(w->id, GS_H2_CONNS, 1);
    list_append(&w->h2conns, &h->link);
    w->nh2++;
    return h;
}

/* Start the session and the timer, then read what is already there. */
static void
h2_conn_run(struct h2_conn *h)
{
    struct worker *w = h->w;
    h->c.rio.data = h;
    h->c.wio.data = h;
    ev_init(&h->tick, h2_tick_cb);
    ev_prepare_init(&h->turn, h2_turn_cb);
    if (h2_session_start(h) < 0) {
        h2_close(h);
        return;
    }
    h->tick.repeat = 1.0;
    ev_timer_again(w->loop, &h->tick);
    conn_read_start(w->loop, &h->c);
    h2_read_cb(w->loop, &h->c.rio, EV_READ);
}

void
h2_adopt(struct client *cli)
{
    struct worker *w = cli->w;
    struct h2_conn *h = h2_conn_new(w, cli->vs->conf, cli->socks);
    if (!h) {
        client_close(cli, TERM_INTERNAL);
        return;
    }
    h->vs = cli->vs;
    h->peer = cli->peer;
    memcpy(h->peer_ip, cli->peer_ip, sizeof(h->peer_ip));
    h->peer_ip_len = cli->peer_ip_len;
    h->tls = cli->tls;

    /* The socket and its TLS state move here (the client object goes). */
    ev_io_stop(w->loop, &cli->c.rio);
    ev_io_stop(w->loop, &cli->c.wio);
    conn_init(&h->c, cli->c.fd, h2_read_cb, h2_write_cb);
    h->c.ops = cli->c.ops;
    h->c.ssl = cli->c.ssl;
    cli->c.fd = -1;
    cli->c.ssl = NULL;
    cli->c.ops = &conn_plain_ops;
    h->limit = cli->limit;
    cli->limit = NULL;
    if (cli->counted)
        atomic_fetch_sub(&conns_open, 1); /* counted once, by the h2 connection */
    cli->counted = false;
    client_close(cli, TERM_OK);
    h2_conn_run(h);
}

void
h2_adopt_fd(struct worker *w, struct vserver *vs, int fd, const struct sock_addr *peer)
{
    struct h2_conn *h = h2_conn_new(w, vs->conf, NULL);
    if (!h) {
        close(fd);
        return;
    }
    h->vs = vs;
    h->peer = *peer;
    h->peer_ip_len = (uint8_t)sock_addr_ip(peer, h->peer_ip, sizeof(h->peer_ip));
    conn_init(&h->c, fd, h2_read_cb, h2_write_cb);
    h2_conn_run(h);
}

/* ---- timeouts ---- */

static void
h2_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct h2_conn *h = container_of(t, struct h2_conn, tick);
    double now = ev_now(loop);
    struct list *pos, *tmp;
    bool sending = h->obuf && buf_len(h->obuf) > 0;
    (void)revents;
    h2_enter(h);
    list_for_each_safe(pos, tmp, &h->streams)
    {
        struct h2_stream *st = container_of(pos, struct h2_stream, link);
        h2x_tick(st, now);
        if (h2s_header_overdue(st, now, h->lim.header_secs)) {
            h2_terminate(h, NGHTTP2_NO_ERROR, "request headers too slow");
            break;
        }
        sending |= h2s_send_pending(st);
    }
    if (sending && now - h->last_progress > h->lim.send_secs)
        h2_terminate(h, NGHTTP2_NO_ERROR, "client not reading");
    else if (h->nrequests == 0 && h->nstreams == 0 && now - h->started > h->lim.header_secs)
        h->finish = true; /* no request in time (as client_header_timeout) */
    else if (h->nstreams == 0 && now - h->last_frame > h->lim.idle_secs && !h->goaway) {
        nghttp2_submit_goaway(h->sess, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h->sess), NGHTTP2_NO_ERROR,
                              NULL, 0);
        h->goaway = true;
    } else if (h->goaway && h->nstreams == 0 && now - h->last_progress > 2.0)
        h->finish = true; /* GOAWAY sent, nothing left: do not wait for the peer */
    /* Idle between requests: one wake-up when the idle timeout is due, not one
     * a second (a new stream brings the 1 s tick back, h2_tick_fast). */
    double next = 1.0;
    if (h->nstreams == 0 && h->nrequests > 0 && !h->goaway && !sending &&
        h->lim.idle_secs - (now - h->last_frame) > next)
        next = h->lim.idle_secs - (now - h->last_frame);
    if (next != t->repeat) {
        t->repeat = next;
        ev_timer_again(loop, t);
    }
    h2_leave(h);
}

void
h2_tick_fast(struct h2_conn *h)
{
    if (h->tick.repeat > 1.0) {
        h->tick.repeat = 1.0;
        ev_timer_again(h->w->loop, &h->tick);
    }
}

/* ---- worker-wide ---- */

void
h2_goaway_all(struct worker *w)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->h2conns)
    {
        struct h2_conn *h = container_of(pos, struct h2_conn, link);
        if (h->goaway || h->dead)
            continue;
        h2_enter(h);
        nghttp2_submit_goaway(h->sess, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h->sess), NGHTTP2_NO_ERROR,
                              NULL, 0);
        h->goaway = true;
        if (h->nstreams == 0)
            h->finish = true;
        h2_leave(h);
    }
}

void
h2_close_all(struct worker *w)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->h2conns)
    {
        h2_close(container_of(pos, struct h2_conn, link));
    }
}
