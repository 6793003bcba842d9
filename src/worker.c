/* SPDX-License-Identifier: MIT */
/* Worker threads: loop set-up, listeners that follow generations, accept with
 * back-off, the inbox, housekeeping, graceful drain. */
#include "config.h"

#include <tether/client.h>
#include <tether/gen.h>
#include <tether/h2.h>
#include <tether/qsbr.h>
#include <tether/redis.h>
#include <tether/request.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/upstream_conn.h>
#include <tether/worker.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct worker *workers;
uint32_t nworkers;
_Atomic uint32_t conns_open;
__thread struct worker *worker_self;

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents);
void control_worker_done(void);

/* ---- listeners ---- */

static struct wlisten *
wlisten_find(struct worker *w, const struct listen_fds *socks, int fd)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->listens)
    {
        struct wlisten *wl = container_of(pos, struct wlisten, link);
        if (wl->socks == socks && wl->io.fd == fd)
            return wl;
    }
    return NULL;
}

static void
wlisten_stop(struct worker *w, struct wlisten *wl)
{
    ev_io_stop(w->loop, &wl->io);
    list_remove(&wl->link);
    listen_fds_unref(wl->socks);
    free(wl);
}

/* Watch exactly the sockets of <g>: keep the ones still there, start new ones,
 * stop the ones gone. */
static void
listeners_sync(struct worker *w, struct gen *g)
{
    struct list *pos, *tmp;
    /* The control side may be letting go of g's sockets right now (a stop
     * just after start, a publish): read them and take references under the
     * lock it releases them under (gen_listens_release). */
    gen_listens_lock();
    list_for_each_safe(pos, tmp, &w->listens)
    {
        struct wlisten *wl = container_of(pos, struct wlisten, link);
        bool keep = false;
        for (uint32_t i = 0; i < g->nlistens && !w->draining; i++)
            if (g->listens[i].socks == wl->socks)
                keep = true;
        if (!keep)
            wlisten_stop(w, wl);
    }
    for (uint32_t i = 0; i < g->nlistens && !w->draining; i++) {
        struct gen_listen *gl = &g->listens[i];
        /* A stop that came before this worker's first pick-up has let go of
         * the sockets already (control_stop): nothing to watch. */
        if (!gl->socks)
            continue;
        /* One socket per worker; more after an upgrade from a process with
         * more workers: worker k also watches sockets k + n, k + 2n... */
        for (uint32_t j = w->id; j < gl->socks->nfds; j += nworkers) {
            struct wlisten *wl = wlisten_find(w, gl->socks, gl->socks->fds[j]);
            if (!wl) {
                wl = calloc(1, sizeof(*wl));
                if (!wl)
                    continue;
                wl->w = w;
                wl->socks = gl->socks;
                atomic_fetch_add(&gl->socks->refs, 1);
                ev_io_init(&wl->io, accept_cb, gl->socks->fds[j], EV_READ);
                list_append(&w->listens, &wl->link);
                if (!w->accept_paused)
                    ev_io_start(w->loop, &wl->io);
            }
            wl->gl = gl;
        }
    }
    gen_listens_unlock();
}

static void
accept_pause(struct worker *w, double secs)
{
    struct list *pos, *tmp;
    w->accept_paused = true;
    list_for_each_safe(pos, tmp, &w->listens)
    {
        ev_io_stop(w->loop, &container_of(pos, struct wlisten, link)->io);
    }
    ev_timer_stop(w->loop, &w->accept_retry);
    ev_timer_set(&w->accept_retry, secs, 0);
    ev_timer_start(w->loop, &w->accept_retry);
}

static void
accept_resume(struct worker *w)
{
    struct list *pos, *tmp;
    if (!w->accept_paused || w->draining)
        return;
    w->accept_paused = false;
    list_for_each_safe(pos, tmp, &w->listens)
    {
        ev_io_start(w->loop, &container_of(pos, struct wlisten, link)->io);
    }
}

static void
accept_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, accept_retry);
    (void)loop;
    (void)revents;
    struct gen *g = w->gen;
    if (atomic_load(&conns_open) >= g->conf->max_connections) {
        ev_timer_set(t, 0.05, 0);
        ev_timer_start(w->loop, t);
        return;
    }
    accept_resume(w);
}

static struct log_limit emfile_limit;

static void
accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct wlisten *wl = container_of(io, struct wlisten, io);
    struct worker *w = wl->w;
    uint32_t maxc = w->gen->conf->max_connections;
    (void)loop;
    (void)revents;
    /* A bounded batch per event keeps one busy listener from starving the rest. */
    for (int i = 0; i < 64; i++) {
        struct sock_addr peer;
        if (atomic_load_explicit(&conns_open, memory_order_relaxed) >= maxc) {
            gstat_add(w->id, GS_CONN_REJECTED, 1); /* accepting paused at max_connections */
            accept_pause(w, 0.05);
            return;
        }
        peer.len = sizeof(peer.u);
        int fd = accept4(io->fd, &peer.u.sa, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment instead of
                 * spinning on a readable listener we cannot serve. */
                log_limited(&emfile_limit, 5000, LOG_LVL_ERROR,
                            "accept: %s; pausing accepts for 100ms", strerror(errno));
                accept_pause(w, 0.1);
            }
            return;
        }
        client_accept(w, wl, fd, &peer);
    }
}

/* ---- generations ---- */

static void
worker_pick_gen(struct worker *w)
{
    struct gen *old = w->gen;
    struct gen *g = gen_acquire_current();
    if (!g)
        return;
    if (g == old) {
        gen_unref_worker(g);
        return;
    }
    w->gen = g;
    listeners_sync(w, g);
    if (old)
        h2_goaway_all(w); /* HTTP/2 clients reconnect to the new configuration */
    if (old && old->wrefs[w->id].n == 0)
        gen_unref_worker(old);
    upconn_pools_sweep(w);
    redis_worker_sync(w);
}

struct upconn_pool *
worker_pool(struct worker *w, uint32_t slot)
{
    if (slot >= w->npools) {
        uint32_t n = slot + 16;
        struct upconn_pool *p = realloc(w->pools, sizeof(*p) * n);
        if (!p)
            return NULL;
        for (uint32_t i = w->npools; i < n; i++) {
            list_init(&p[i].idle);
            p[i].nidle = 0;
        }
        /* Lists point at their heads: fix the moved ones. */
        for (uint32_t i = 0; i < w->npools; i++) {
            if (p[i].nidle == 0) {
                list_init(&p[i].idle);
            } else {
                p[i].idle.next->prev = &p[i].idle;
                p[i].idle.prev->next = &p[i].idle;
            }
        }
        w->pools = p;
        w->npools = n;
    }
    return &w->pools[slot];
}

/* ---- drain and stop ---- */

static void
worker_check_drained(struct worker *w)
{
    if (w->draining && w->nclients == 0 && w->ntunnels == 0 && w->nh2 == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

void
worker_client_gone(struct worker *w)
{
    if (w->accept_paused && !ev_is_active(&w->accept_retry))
        accept_resume(w);
    worker_check_drained(w);
}

static void
worker_drain(struct worker *w)
{
    struct list *pos, *tmp;
    if (w->draining)
        return;
    w->draining = true;
    list_for_each_safe(pos, tmp, &w->listens)
    {
        wlisten_stop(w, container_of(pos, struct wlisten, link));
    }
    list_for_each_safe(pos, tmp, &w->clients)
    {
        client_drain(container_of(pos, struct client, link));
    }
    h2_goaway_all(w);
    upconn_pools_close(w);
    worker_check_drained(w);
}

static void
inbox_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = container_of(a, struct worker, wake);
    uint32_t msg = atomic_exchange(&w->inbox, 0);
    (void)loop;
    (void)revents;
    if (msg & WMSG_GEN)
        worker_pick_gen(w);
    if (msg & WMSG_REOPEN)
        access_buf_flush(&w->alog);
    if ((msg & WMSG_REDIS) && w->gen)
        redis_worker_sync(w);
    if (msg & WMSG_DRAIN)
        worker_drain(w);
    if (msg & WMSG_STOP) {
        struct list *pos, *tmp;
        worker_drain(w);
        list_for_each_safe(pos, tmp, &w->clients)
        {
            client_close(container_of(pos, struct client, link), TERM_SHUTDOWN);
        }
        tunnel_close_all(w);
        h2_close_all(w);
        ev_break(w->loop, EVBREAK_ALL);
    }
}

static void
tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, tick);
    (void)revents;
    /* access_log flush=DURATION: lines reach the file at least this often. */
    double every = w->gen ? (double)w->gen->conf->access_flush_ms / 1000.0 : 0.1;
    if (ev_now(loop) - w->alog_flushed >= every - 0.001) {
        access_buf_flush(&w->alog);
        w->alog_flushed = ev_now(loop);
    }
    /* Give buffers back after a burst, keep a few hot ones. */
    if (w->bufs.nfree > 64)
        buf_pool_trim(&w->bufs, 64);
}

static void
prepare_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct worker *w = container_of(p, struct worker, prep);
    (void)loop;
    (void)revents;
    qsbr_offline(w->id);
}

static void
check_cb(struct ev_loop *loop, ev_check *c, int revents)
{
    struct worker *w = container_of(c, struct worker, chk);
    (void)loop;
    (void)revents;
    qsbr_online(w->id);
    w->now_ms = time_mono_ms();
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    worker_self = w;
    qsbr_online(w->id);
    w->now_ms = time_mono_ms();
    worker_pick_gen(w);
    ev_run(w->loop, 0);
    /* Stopped: nothing of ours may outlive the loop. */
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->clients)
    {
        client_close(container_of(pos, struct client, link), TERM_SHUTDOWN);
    }
    tunnel_close_all(w);
    h2_close_all(w);
    upconn_pools_close(w);
    redis_worker_stop(w);
    list_for_each_safe(pos, tmp, &w->listens)
    {
        wlisten_stop(w, container_of(pos, struct wlisten, link));
    }
    access_buf_fini(&w->alog);
    qsbr_offline(w->id);
    control_worker_done();
    return NULL;
}

int
workers_create(uint32_t n, uint32_t bufsize)
{
    workers = calloc(n, sizeof(*workers));
    if (!workers)
        return -1;
    nworkers = n;
    for (uint32_t i = 0; i < n; i++) {
        struct worker *w = &workers[i];
        w->id = i;
        w->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
        if (!w->loop)
            return -1;
        ev_async_init(&w->wake, inbox_cb);
        ev_async_start(w->loop, &w->wake);
        ev_prepare_init(&w->prep, prepare_cb);
        ev_prepare_start(w->loop, &w->prep);
        ev_check_init(&w->chk, check_cb);
        ev_check_start(w->loop, &w->chk);
        ev_timer_init(&w->tick, tick_cb, 0.1, 0.1);
        ev_timer_start(w->loop, &w->tick);
        ev_timer_init(&w->accept_retry, accept_retry_cb, 0.1, 0);
        list_init(&w->listens);
        list_init(&w->clients);
        list_init(&w->tunnels);
        list_init(&w->h2conns);
        buf_pool_init(&w->bufs, bufsize, 256);
        access_buf_init(&w->alog, 64 * 1024);
        random_bytes(&w->rng, sizeof(w->rng));
        w->rng |= 1;
        w->scratch = malloc(bufsize);
        if (!w->scratch)
            return -1;
    }
    return 0;
}

int
workers_start(void)
{
    for (uint32_t i = 0; i < nworkers; i++)
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
            return -1;
    return 0;
}

void
workers_post(uint32_t msg)
{
    for (uint32_t i = 0; i < nworkers; i++) {
        atomic_fetch_or(&workers[i].inbox, msg);
        ev_async_send(workers[i].loop, &workers[i].wake);
    }
}

void
workers_join(void)
{
    for (uint32_t i = 0; i < nworkers; i++)
        pthread_join(workers[i].thread, NULL);
}

void
workers_destroy(void)
{
    for (uint32_t i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        client_free_all(w);
        upconn_free_all(w);
        while (w->free_requests) {
            struct request *r = w->free_requests;
            w->free_requests = r->next_free;
            free(r);
        }
        free(w->pools);
        buf_pool_fini(&w->bufs);
        free(w->scratch);
        if (w->gen)
            gen_unref(w->gen);
        ev_loop_destroy(w->loop);
    }
    free(workers);
    workers = NULL;
    nworkers = 0;
}
