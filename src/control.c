/* SPDX-License-Identifier: MIT */
/* The control thread: signals, reloads, the tick, shutdown. */
#include "config.h"

#include <tether/admin.h>
#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/control.h>
#include <tether/discovery.h>
#include <tether/gen.h>
#include <tether/health.h>
#include <tether/log.h>
#include <tether/membership.h>
#include <tether/outlier.h>
#include <tether/qsbr.h>
#include <tether/redis.h>
#include <tether/session_load.h>
#include <tether/session_store.h>
#include <tether/stats_http.h>
#include <tether/upgrade.h>
#include <tether/worker.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

struct control ctl;

int
control_apply_logs(const struct gen *g, struct err *e)
{
    const struct conf *c = g->conf;
    if (log_open(c->error_log, c->error_level, c->error_json, e) < 0)
        return -1;
    if (c->access_log)
        return access_log_open(c->access_log, e);
    access_log_close();
    return 0;
}

void
control_replan(void)
{
    struct gen *g = atomic_load(&gen_current);
    uint64_t now = time_mono_ms();
    if (!g)
        return;
    for (uint32_t i = 0; i < g->nupstreams; i++)
        balance_rebuild(&g->upstreams[i], now);
}

int
control_reload(struct err *e)
{
    struct gen *cur = atomic_load(&gen_current);
    if (ctl.stopping) {
        /* A draining process (after SIGTERM or a binary upgrade) must not bind
         * listeners again: they would join the SO_REUSEPORT group and take
         * connections nobody accepts ("kill -HUP $(pidof tether)" reaches it). */
        err_set(e, "shutting down%s: reload ignored",
                upgrade_handed_over() ? " (handed over to a new process)" : "");
        log_notice("%s", e->msg);
        return -1;
    }
    struct conf *c = conf_load(ctl.conf_path, e);
    ctl.last_reload_ms = time_wall_ms();
    if (!c)
        goto fail;
    if (c->workers && c->workers != nworkers)
        log_warn("reload: \"workers %u\" takes effect after a restart (running %u)", c->workers,
                 nworkers);
    if (c->bufsize != cur->conf->bufsize)
        log_warn("reload: \"tune bufsize\" takes effect after a restart");
    struct gen *g = gen_build(c, cur, nworkers, ctl.next_gen_id, e);
    if (!g)
        goto fail;
    if (control_apply_logs(g, e) < 0) {
        gen_unref(g);
        goto fail;
    }
    ctl.next_gen_id++;
    /* Keep the old generation alive until every module has moved to the new
     * one: a worker may drop its last reference meanwhile, and the modules'
     * sync may still look at objects of the old one (health targets). */
    gen_ref(cur);
    gen_publish(g);
    workers_post(WMSG_GEN);
    membership_sync(g);
    admin_sync(g);
    stats_http_sync(g);
    health_sync(g);
    discovery_sync(g);
    redis_control_sync();
    gen_unref(cur);
    ctl.reloads_ok++;
    ctl.last_reload_error[0] = '\0';
    log_notice("configuration reloaded from %s (generation %llu, sha256 %s)", ctl.conf_path,
               (unsigned long long)g->id, g->conf->hash);
    return 0;
fail:
    ctl.reloads_failed++;
    snprintf(ctl.last_reload_error, sizeof(ctl.last_reload_error), "%s", e->msg);
    log_error("reload failed, still serving the previous configuration: %s", e->msg);
    return -1;
}

static void
sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct err e;
    (void)loop;
    (void)w;
    (void)revents;
    control_reload(&e);
}

static void
sigusr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct gen *g = atomic_load(&gen_current);
    (void)loop;
    (void)w;
    (void)revents;
    log_reopen();
    if (g && g->conf->access_log)
        access_log_reopen(g->conf->access_log);
    workers_post(WMSG_REOPEN);
    log_notice("log files reopened");
}

static _Atomic uint32_t workers_done;

static void
stop_poll_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    uint32_t active = 0;
    for (uint32_t i = 0; i < nworkers; i++)
        active += workers[i].nclients + workers[i].ntunnels;
    (void)active;
    /* Workers end their loops themselves once drained; join does the waiting. */
    if (atomic_load(&workers_done) >= nworkers)
        ev_break(loop, EVBREAK_ALL);
}

static void
stop_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    log_notice("shutdown_timeout reached: closing remaining connections");
    workers_post(WMSG_STOP);
}

void
control_stop(void)
{
    struct gen *g = atomic_load(&gen_current);
    if (ctl.stopping)
        return;
    ctl.stopping = true;
    log_notice("shutting down: no new connections, finishing in-flight requests");
    admin_stop();
    stats_http_stop();
    health_stop();
    discovery_stop();
    workers_post(WMSG_DRAIN);
    /* Close the listening sockets as soon as the workers stop watching them,
     * so new connections are refused instead of queueing. A worker that
     * picks up <g> after this finds no sockets; one that picked them up before
     * holds its own references and drops them on WMSG_DRAIN. */
    gen_listens_release(g);
    ev_timer_set(&ctl.stop_timer, (double)g->conf->shutdown_timeout_ms / 1000.0, 0);
    ev_timer_start(ctl.loop, &ctl.stop_timer);
    ev_timer_start(ctl.loop, &ctl.stop_poll);
}

static void
handed_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    control_stop();
}

int
control_upgrade(const char *path, char *msg, size_t msglen)
{
    if (ctl.stopping) {
        snprintf(msg, msglen, "upgrade refused: this process is shutting down%s",
                 upgrade_handed_over() ? " (it already handed over to a new one)" : "");
        log_warn("%s", msg);
        return -1;
    }
    if (upgrade_start(path, admin_listen_fd(), stats_http_listen_fd(), msg, msglen) < 0) {
        log_error("%s", msg);
        return -1;
    }
    /* The new process owns the admin socket file and the pid file now. Drain
     * on the next loop turn, so an admin answer is written first. */
    admin_keep_file();
    ev_timer_set(&ctl.handed, 0, 0);
    ev_timer_start(ctl.loop, &ctl.handed);
    return 0;
}

static void
sigusr2_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    char msg[1024];
    (void)loop;
    (void)w;
    (void)revents;
    control_upgrade(NULL, msg, sizeof(msg)); /* logged either way */
}

static void
sigterm_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    control_stop();
}

static void
tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct gen *g = atomic_load(&gen_current);
    uint64_t now = time_mono_ms();
    (void)loop;
    (void)t;
    (void)revents;
    session_load_tick(g, now);
    redis_load_refresh(g);
    for (uint32_t i = 0; g && i < g->nupstreams; i++) {
        struct upstream *u = &g->upstreams[i];
        struct lb_plan *p = atomic_load(&u->plan);
        bool rebuild = outlier_tick(u, now) || atomic_load(&u->plan_dirty);
        /* Slow start ramps: refresh the weights every tick while ramping. */
        if (p && p->ramping)
            rebuild = true;
        if (rebuild)
            balance_rebuild(u, now);
    }
    membership_tick(now);
    if (session_store_table())
        session_table_expire(session_store_table(), now, 10000);
    gen_reap();
    qsbr_reclaim();
}

/* Worker threads signal the end of their loop through this. */
void control_worker_done(void);

void
control_worker_done(void)
{
    atomic_fetch_add(&workers_done, 1);
}

int
control_run(const char *conf_path)
{
    struct gen *g = atomic_load(&gen_current);
    /* signalfd: the signals were blocked in main() before any thread started. */
    ctl.loop = ev_default_loop(EVBACKEND_EPOLL | EVFLAG_SIGNALFD);
    ctl.conf_path = conf_path;
    ctl.next_gen_id = g->id + 1;
    ctl.started_ms = time_wall_ms();
    signal(SIGPIPE, SIG_IGN);
    ev_signal_init(&ctl.sighup, sighup_cb, SIGHUP);
    ev_signal_init(&ctl.sigterm, sigterm_cb, SIGTERM);
    ev_signal_init(&ctl.sigint, sigterm_cb, SIGINT);
    ev_signal_init(&ctl.sigusr1, sigusr1_cb, SIGUSR1);
    ev_signal_init(&ctl.sigusr2, sigusr2_cb, SIGUSR2);
    ev_init(&ctl.handed, handed_cb);
    ev_signal_start(ctl.loop, &ctl.sighup);
    ev_signal_start(ctl.loop, &ctl.sigterm);
    ev_signal_start(ctl.loop, &ctl.sigint);
    ev_signal_start(ctl.loop, &ctl.sigusr1);
    ev_signal_start(ctl.loop, &ctl.sigusr2);
    ev_timer_init(&ctl.tick, tick_cb, 0.1, 0.1);
    ev_timer_start(ctl.loop, &ctl.tick);
    ev_timer_init(&ctl.stop_timer, stop_timer_cb, 30, 0);
    ev_timer_init(&ctl.stop_poll, stop_poll_cb, 0.02, 0.02);
    admin_sync(g);
    stats_http_sync(g);
    health_sync(g);
    discovery_sync(g);
    redis_control_sync();
    /* Started by a binary upgrade: serving now, the old process may drain. */
    upgrade_child_ready();
    ev_run(ctl.loop, 0);
    redis_control_stop();
    return 0;
}
