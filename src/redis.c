/* SPDX-License-Identifier: MIT */
/* Worker-side Redis: one hiredis async connection per worker loop (libev
 * adapter) with AUTH/SELECT/SCRIPT LOAD, reconnect back-off and per-operation
 * timeouts; learned sessions read on a local miss and written through. */
#include "config.h"

#include <tether/gen.h>
#include <tether/log.h>
#include <tether/redis.h>
#include <tether/session.h>
#include <tether/stats.h>
#include <tether/upstream.h>
#include <tether/worker.h>

#include "redis_guard.h"
#include "redis_int.h"

#include <hiredis/adapters/libev.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 *            sync / back-off timer            SCRIPT LOAD reply
 *   RC_DOWN ------------------> RC_CONNECTING ------------------> RC_UP
 *      ^                             |                              |
 *      +-- refused, deadline, -------+------ EOF, error, stall -----+
 *          AUTH/SELECT error
 *
 * Requests use the connection only in RC_UP; otherwise they go on from local
 * state at once. Each operation carries its own timer, set a hair under the
 * configured timeout so it answers before request.c's hold timer would.
 */

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* Commands in flight on one connection beyond which requests stop waiting for
 * it: a stuck Redis must not grow memory without bound. */
#define INFLIGHT_MAX 8192

/* Handshake steps, passed as hiredis privdata. */
static const char hs_auth[] = "AUTH", hs_select[] = "SELECT", hs_script[] = "SCRIPT LOAD";

static pthread_once_t stats_once = PTHREAD_ONCE_INIT;
static struct redis_wstats *_Atomic wstats; /* nworkers slots */
static _Atomic bool configured;
/* Control connection figures (redis_admin.c). */
static _Atomic bool ctl_seen, ctl_up;
static _Atomic uint64_t ctl_errors, ctl_reconnects, ctl_admin;

static void rconn_start(struct redis_client *rc);

/* ---- counters ---- */

static void
stats_alloc(void)
{
    /* Cache-line aligned slots (one writer each): calloc aligns to 16 only. */
    size_t size = (nworkers ? nworkers : 1) * sizeof(struct redis_wstats);
    void *p = NULL;
    if (posix_memalign(&p, CACHELINE, size) != 0)
        return;
    memset(p, 0, size);
    atomic_store(&wstats, p);
}

void
redis_count_error(struct redis_client *rc)
{
    CTR_ADD(rc->st->errors, 1);
    gstat_add(rc->w->id, GS_REDIS_ERRORS, 1);
}

void
redis_count_fallback(struct redis_client *rc)
{
    CTR_ADD(rc->st->fallbacks, 1);
}

static void
count_timeout(struct redis_client *rc)
{
    CTR_ADD(rc->st->timeouts, 1);
    gstat_add(rc->w->id, GS_REDIS_TIMEOUTS, 1);
}

void
redis_stats_add_control(bool up, uint64_t errors, uint64_t reconnects, uint64_t admin_received)
{
    atomic_store(&ctl_up, up);
    atomic_store(&ctl_seen, true);
    atomic_fetch_add(&ctl_errors, errors);
    atomic_fetch_add(&ctl_reconnects, reconnects);
    atomic_fetch_add(&ctl_admin, admin_received);
}

void
redis_stats_get(struct redis_stats *out)
{
    struct redis_primary p;
    memset(out, 0, sizeof(*out));
    redis_primary_get(&p);
    out->configured = atomic_load(&configured);
    struct redis_wstats *ws = atomic_load(&wstats);
    for (uint32_t i = 0; ws && i < nworkers; i++) {
        out->errors += atomic_load_explicit(&ws[i].errors, memory_order_relaxed);
        out->timeouts += atomic_load_explicit(&ws[i].timeouts, memory_order_relaxed);
        out->reconnects += atomic_load_explicit(&ws[i].reconnects, memory_order_relaxed);
        out->zone_fallbacks += atomic_load_explicit(&ws[i].fallbacks, memory_order_relaxed);
        out->workers_up += atomic_load_explicit(&ws[i].up, memory_order_relaxed) &&
                           atomic_load_explicit(&ws[i].epoch, memory_order_relaxed) == p.epoch;
    }
    out->errors += atomic_load(&ctl_errors);
    out->reconnects += atomic_load(&ctl_reconnects);
    out->admin_received = atomic_load(&ctl_admin);
    out->malformed = redis_guard_refused();
    out->up = atomic_load(&ctl_seen) ? atomic_load(&ctl_up) : out->workers_up > 0;
    redis_queue_stats(&out->q);
    redis_ha_info_get(&out->ha); /* control thread (admin, stats listener) */
}

/* ---- the connection ---- */

static void
set_state(struct redis_client *rc, unsigned state)
{
    rc->state = (uint8_t)state;
    atomic_store_explicit(&rc->st->epoch, rc->epoch, memory_order_relaxed);
    atomic_store_explicit(&rc->st->up, state == RC_UP, memory_order_relaxed);
}

static void
schedule_retry(struct redis_client *rc)
{
    struct ev_loop *loop = rc->w->loop;
    /* +-20% so workers and replicas do not come back to a restarted Redis in step. */
    double jitter = 0.8 + 0.4 * (double)(rng_next(&rc->w->rng) >> 11) / (double)(1ull << 53);
    ev_timer_stop(loop, &rc->timer);
    ev_timer_set(&rc->timer, (double)rc->backoff_ms * jitter / 1000.0, 0);
    ev_timer_start(loop, &rc->timer);
    rc->backoff_ms = MIN(rc->backoff_ms * 2, BACKOFF_MAX_MS);
}

/* The connection is gone (hiredis frees it, or the caller does): down, log the
 * change once, retry later. */
static void
rconn_lost(struct redis_client *rc, const char *why)
{
    bool was_up = rc->state == RC_UP;
    rc->ac = NULL;
    set_state(rc, RC_DOWN);
    redis_count_error(rc);
    if (was_up || !rc->down_logged) {
        log_warn("redis %s down: %s (worker %u); requests go on from local state, retrying",
                 rc->addr_text, why && *why ? why : "connection lost", rc->w->id);
        rc->down_logged = true;
    }
    schedule_retry(rc);
}

/* Give up on the current connection ourselves. Its callbacks run now (or right
 * after the hiredis callback we are in), with NULL replies. */
static void
rconn_drop(struct redis_client *rc, const char *why)
{
    redisAsyncContext *ac = rc->ac;
    rconn_lost(rc, why);
    if (ac)
        redisAsyncFree(ac);
}

/* Close without a "down" (settings changed, stopping). */
static void
rconn_close(struct redis_client *rc)
{
    redisAsyncContext *ac = rc->ac;
    rc->ac = NULL;
    set_state(rc, RC_DOWN);
    ev_timer_stop(rc->w->loop, &rc->timer);
    if (ac)
        redisAsyncFree(ac);
}

static void
rconn_up(struct redis_client *rc)
{
    ev_timer_stop(rc->w->loop, &rc->timer);
    set_state(rc, RC_UP);
    rc->was_up = true;
    rc->backoff_ms = BACKOFF_MIN_MS;
    rc->down_logged = false;
    log_notice("redis %s up (worker %u)", rc->addr_text, rc->w->id);
}

/* Book-keeping common to every reply callback; false when <ac> is no longer
 * the client's connection (a reply flushed by a close). */
static bool
reply_begin(struct redis_client *rc, redisAsyncContext *ac, const redisReply *r)
{
    if (rc->inflight)
        rc->inflight--;
    rc->progress = ev_now(rc->w->loop);
    if (ac != rc->ac)
        return false;
    if (!r) {
        rconn_lost(rc, ac->errstr);
        return false;
    }
    if (redis_reply_failover(r)) /* the control thread looks for the primary again */
        redis_ha_suspect(rc->epoch, r->str);
    return true;
}

/* Send one command; counts it in flight. 0 or -1. */
static int
command(struct redis_client *rc, redisCallbackFn *fn, void *priv, int argc, const char **argv,
        const size_t *lens)
{
    if (!rc->ac || redisAsyncCommandArgv(rc->ac, fn, priv, argc, argv, lens) != REDIS_OK)
        return -1;
    if (rc->inflight++ == 0)
        rc->progress = ev_now(rc->w->loop);
    return 0;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_client *rc = ac->data;
    if (ac == rc->ac && status != REDIS_OK)
        rconn_lost(rc, ac->errstr); /* hiredis frees it after we return */
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_client *rc = ac->data;
    if (ac == rc->ac)
        rconn_lost(rc, status == REDIS_OK ? "closed" : ac->errstr);
}

static void
handshake_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_client *rc = ac->data;
    const redisReply *r = reply;
    char why[256];
    if (!reply_begin(rc, ac, r))
        return;
    /* (no request code runs from here: in_cb is not needed) */
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "%s: %s", (const char *)priv, r->str);
        rconn_drop(rc, why);
        return;
    }
    if (priv != hs_script)
        return;
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        rconn_drop(rc, "SCRIPT LOAD: unexpected reply");
        return;
    }
    memcpy(rc->sha, r->str, 40);
    rc->sha[40] = '\0';
    rconn_up(rc);
}

/* Connect and queue the handshake; hiredis sends it once connected. */
static void
rconn_start(struct redis_client *rc)
{
    struct ev_loop *loop = rc->w->loop;
    redisAsyncContext *ac;
    char why[160];
    if (rc->addr.u.sa.sa_family == AF_UNIX) {
        ac = redisAsyncConnectUnix(rc->addr.u.un.sun_path);
    } else {
        char ip[64];
        sock_addr_ip(&rc->addr, ip, sizeof(ip));
        int port = ntohs(rc->addr.u.sa.sa_family == AF_INET6 ? rc->addr.u.in6.sin6_port
                                                             : rc->addr.u.in.sin_port);
        ac = redisAsyncConnect(ip, port);
    }
    if (!ac || ac->err) {
        snprintf(why, sizeof(why), "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        rconn_lost(rc, why);
        return;
    }
    ac->data = rc;
    if (redisLibevAttach(loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        rconn_lost(rc, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redis_guard_attach(ac);
    rc->ac = ac;
    set_state(rc, RC_CONNECTING);

    const char *argv[3];
    size_t lens[3];
    int rcs = 0, n = 1;
    if (rc->password) {
        argv[0] = "AUTH", lens[0] = 4;
        if (rc->user)
            argv[n] = rc->user, lens[n] = strlen(rc->user), n++;
        argv[n] = rc->password, lens[n] = strlen(rc->password), n++;
        rcs |= command(rc, handshake_cb, (void *)hs_auth, n, argv, lens);
    }
    if (rc->db) {
        char db[16];
        argv[0] = "SELECT", lens[0] = 6;
        argv[1] = db, lens[1] = (size_t)snprintf(db, sizeof(db), "%u", rc->db);
        rcs |= command(rc, handshake_cb, (void *)hs_select, 2, argv, lens);
    }
    argv[0] = "SCRIPT", lens[0] = 6;
    argv[1] = "LOAD", lens[1] = 4;
    argv[2] = redis_gcra_script, lens[2] = strlen(redis_gcra_script);
    rcs |= command(rc, handshake_cb, (void *)hs_script, 3, argv, lens);
    if (rcs) {
        rconn_drop(rc, "cannot queue the handshake");
        return;
    }
    /* Connect and handshake together get a deadline: a black-holed address
     * would otherwise hang in connect for minutes. */
    double deadline = (double)MAX(1000, 5 * rc->timeout_ms) / 1000.0;
    ev_timer_stop(loop, &rc->timer);
    ev_timer_set(&rc->timer, deadline, 0);
    ev_timer_start(loop, &rc->timer);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct redis_client *rc = container_of(t, struct redis_client, timer);
    (void)loop;
    (void)revents;
    if (rc->state == RC_CONNECTING) {
        rconn_drop(rc, "connect timeout");
        return;
    }
    if (rc->state == RC_DOWN) {
        CTR_ADD(rc->st->reconnects, 1);
        rconn_start(rc);
    }
}

static bool
str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void
rclient_free(struct redis_client *rc)
{
    rconn_close(rc); /* pending ops get their NULL replies and come back */
    while (rc->free_ops) {
        struct redis_op *op = rc->free_ops;
        rc->free_ops = op->next;
        free(op);
    }
    free(rc->password);
    free(rc->user);
    free(rc);
}

void
redis_worker_sync(struct worker *w)
{
    const struct conf_redis *cr = &w->gen->conf->redis;
    struct redis_client *rc = w->redis;
    atomic_store(&configured, cr->enabled);
    if (!cr->enabled) {
        if (rc)
            rclient_free(rc);
        w->redis = NULL;
        return;
    }
    pthread_once(&stats_once, stats_alloc);
    if (!rc) {
        if (!(rc = calloc(1, sizeof(*rc)))) {
            log_error("redis: out of memory (worker %u)", w->id);
            return;
        }
        static struct redis_wstats dummy; /* out of memory: counts go nowhere */
        struct redis_wstats *ws = atomic_load(&wstats);
        rc->w = w;
        rc->st = ws ? &ws[w->id] : &dummy;
        ev_init(&rc->timer, timer_cb);
        w->redis = rc;
    }
    const char *prefix = cr->prefix ? cr->prefix : "";
    size_t plen = strlen(prefix);
    if (plen >= sizeof(rc->prefix)) {
        log_warn("redis prefix longer than %zu bytes: truncated", sizeof(rc->prefix) - 1);
        plen = sizeof(rc->prefix) - 1;
    }
    memcpy(rc->prefix, prefix, plen);
    rc->prefix[plen] = '\0';
    rc->prefix_len = plen;
    rc->timeout_ms = cr->timeout_ms ? cr->timeout_ms : 200;
    /* Every worker follows the primary the control thread publishes (redis_ha.c). */
    struct redis_primary p;
    redis_primary_get(&p);
    if (rc->epoch == p.epoch && str_eq(rc->password, cr->password) && str_eq(rc->user, cr->user) &&
        rc->db == cr->db)
        return;
    /* New primary or credentials: start over at once. */
    if (rc->state == RC_UP && !p.known) /* the control thread lost the primary */
        rconn_drop(rc, "no usable primary");
    CTR_ADD(rc->st->reconnects, rc->was_up && p.known); /* a new primary: a reconnect */
    rconn_close(rc);
    rc->epoch = p.epoch;
    rc->addr = p.addr;
    snprintf(rc->addr_text, sizeof(rc->addr_text), "%s", p.known ? p.text : "(no primary)");
    free(rc->password);
    free(rc->user);
    rc->password = cr->password ? strdup(cr->password) : NULL;
    rc->user = cr->user ? strdup(cr->user) : NULL;
    rc->db = cr->db;
    rc->backoff_ms = BACKOFF_MIN_MS;
    rc->down_logged = false;
    if (p.known)
        rconn_start(rc);
}

void
redis_worker_stop(struct worker *w)
{
    if (w->redis)
        rclient_free(w->redis);
    w->redis = NULL;
}

bool
redis_worker_up(const struct worker *w)
{
    const struct redis_client *rc = w->redis;
    return rc && rc->state == RC_UP;
}

struct redis_client *
redis_client_usable(struct worker *w)
{
    struct redis_client *rc = w->redis;
    if (!rc || rc->state != RC_UP || !rc->ac)
        return NULL;
    return rc->inflight < INFLIGHT_MAX ? rc : NULL;
}

/* ---- operations ---- */

struct redis_op *
redis_op_get(struct redis_client *rc, struct redis_waiter *wt, unsigned kind)
{
    struct redis_op *op = rc->free_ops;
    if (op)
        rc->free_ops = op->next;
    else if (!(op = malloc(sizeof(*op))))
        return NULL;
    op->rc = rc;
    op->wt = wt;
    op->next = NULL;
    op->kind = (uint8_t)kind;
    op->resent = false;
    op->zone = NULL;
    op->qe = NULL;
    op->klen = 0;
    return op;
}

static void
op_put(struct redis_op *op)
{
    struct redis_client *rc = op->rc;
    op->next = rc->free_ops;
    rc->free_ops = op;
}

void
redis_op_unlink(struct redis_op *op)
{
    struct redis_waiter *wt = op->wt;
    if (!wt)
        return;
    for (struct redis_op **pp = &wt->ops; *pp; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    }
    op->next = NULL;
    op->wt = NULL;
    ev_timer_stop(op->rc->w->loop, &op->timer);
}

static void session_answer(struct redis_op *op, const redisReply *r);
static void store_answer(struct redis_op *op);

static void
op_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_op *op = priv;
    struct redis_client *rc = op->rc;
    const redisReply *r = reply;
    /* Down first, so nothing the answer triggers sends on a dying connection. */
    reply_begin(rc, ac, r);
    /* A lost connection is counted once, by rconn_lost(). */
    if (r && r->type == REDIS_REPLY_ERROR)
        redis_count_error(rc);
    rc->in_cb++;
    bool resent = false;
    if (op->wt) {
        if (op->kind == ROP_ZONE)
            resent = redis_zone_reply(op, r);
        else if (op->kind == ROP_STORE)
            store_answer(op);
        else
            session_answer(op, r);
    }
    rc->in_cb--;
    if (op->qe && !resent) { /* a learned session: queued again unless written */
        redis_queue_done(op->qe, r && r->type != REDIS_REPLY_ERROR);
        op->qe = NULL;
    }
    if (!resent)
        op_put(op);
}

/* The answer is due: go on without Redis. The op stays with hiredis. */
static void
op_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct redis_op *op = container_of(t, struct redis_op, timer);
    struct redis_client *rc = op->rc;
    (void)revents;
    count_timeout(rc);
    if (op->kind == ROP_ZONE)
        redis_zone_timeout(op);
    else if (op->kind == ROP_STORE)
        store_answer(op);
    else
        session_answer(op, NULL);
    /* Replies stopped altogether (Redis stopped, a network black hole): a
     * fresh connection beats timing out every request. */
    double stall = (double)MAX(2000, 10 * rc->timeout_ms) / 1000.0;
    if (rc->state == RC_UP && rc->inflight && ev_now(loop) - rc->progress > stall) {
        char why[64];
        snprintf(why, sizeof(why), "no reply for %.0f ms", (ev_now(loop) - rc->progress) * 1e3);
        rconn_drop(rc, why);
    }
}

static int
op_send(struct redis_op *op, int argc, const char **argv, const size_t *lens)
{
    return command(op->rc, op_reply_cb, op, argc, argv, lens);
}

int
redis_op_start(struct redis_op *op, int argc, const char **argv, const size_t *lens)
{
    struct redis_client *rc = op->rc;
    struct redis_waiter *wt = op->wt;
    if (op_send(op, argc, argv, lens) < 0) {
        redis_count_error(rc);
        op_put(op);
        return -1;
    }
    op->next = wt->ops;
    wt->ops = op;
    /* A hair under the configured timeout: the request's own hold timer (same
     * timeout, started later) then never fires first. */
    double t = (double)rc->timeout_ms / 1000.0;
    ev_timer_init(&op->timer, op_timeout_cb, t > 0.002 ? t - 0.0005 : t * 0.75, 0);
    ev_timer_start(rc->w->loop, &op->timer);
    return 0;
}

int
redis_op_resend(struct redis_op *op, int argc, const char **argv, const size_t *lens)
{
    return op_send(op, argc, argv, lens);
}

void
redis_waiter_cancel(struct redis_waiter *wt)
{
    struct redis_op *op = wt->ops;
    while (op) {
        struct redis_op *next = op->next;
        ev_timer_stop(op->rc->w->loop, &op->timer);
        op->wt = NULL;
        op->next = NULL;
        op = next;
    }
    wt->ops = NULL;
}

/* ---- learned sessions ---- */

/* PREFIX "session:" + the session key in hex into <out>; its length. Keyed by
 * the hash of the session id (as the local table is), so a request that only
 * carries the affinity cookie can re-pin the session too. */
static size_t
session_key(const struct redis_client *rc, uint64_t k, char *out)
{
    memcpy(out, rc->prefix, rc->prefix_len);
    memcpy(out + rc->prefix_len, "session:", 8);
    for (int i = 0; i < 16; i++)
        out[rc->prefix_len + 8 + i] = "0123456789abcdef"[(k >> (60 - 4 * i)) & 15];
    return rc->prefix_len + 8 + 16;
}

/* The lookup's answer (<r> NULL: none, the owner goes on without it). */
static void
session_answer(struct redis_op *op, const redisReply *r)
{
    struct redis_waiter *wt = op->wt;
    if (!wt)
        return;
    redis_op_unlink(op);
    if (r && r->type == REDIS_REPLY_STRING)
        wt->cb->session(wt->owner, r->str, r->len);
    else
        wt->cb->session(wt->owner, NULL, 0);
}

int
redis_session_lookup(struct worker *w, struct redis_waiter *wt, uint64_t key)
{
    struct redis_client *rc = redis_client_usable(w);
    if (!rc || !key)
        return -1;
    char kbuf[REDIS_KEY_MAX];
    const char *argv[2] = {"GET", kbuf};
    size_t lens[2] = {3, session_key(rc, key, kbuf)};
    struct redis_op *op = redis_op_get(rc, wt, ROP_SESSION);
    if (!op)
        return -1;
    return redis_op_start(op, 2, argv, lens);
}

static void
store_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_client *rc = ac->data;
    const redisReply *r = reply;
    reply_begin(rc, ac, r);
    if (r && r->type == REDIS_REPLY_ERROR)
        redis_count_error(rc);
    if (priv) /* a learned session: queued unless written */
        redis_queue_done(priv, r && r->type != REDIS_REPLY_ERROR);
}

int
redis_send_forget(struct redis_client *rc, int argc, const char **argv, const size_t *lens)
{
    if (command(rc, store_cb, NULL, argc, argv, lens) < 0) {
        redis_count_error(rc);
        return -1;
    }
    return 0;
}

/* The arguments of SET PREFIXsession:HASH "upstream/server SID" PX TTL. */
struct session_set {
    char key[REDIS_KEY_MAX], ttl[24];
    const char *argv[5];
    size_t lens[5];
};

/* The session TTL in milliseconds as text into buf[24]; its length. */
static size_t
session_ttl_arg(uint64_t ttl_ms, char *buf)
{
    return (size_t)snprintf(buf, 24, "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
}

static void
session_set_build(struct session_set *c, struct redis_client *rc, uint64_t key, const char *val,
                  size_t n, uint64_t ttl_ms)
{
    c->argv[0] = "SET";
    c->argv[1] = c->key;
    c->argv[2] = val;
    c->argv[3] = "PX";
    c->argv[4] = c->ttl;
    c->lens[0] = 3;
    c->lens[1] = session_key(rc, key, c->key);
    c->lens[2] = n;
    c->lens[3] = 2;
    c->lens[4] = session_ttl_arg(ttl_ms, c->ttl);
}

/* The SET as a write that can wait for a primary (its PX recomputed then). */
static struct redis_qent *
session_qent(const struct session_set *c, uint64_t ttl_ms)
{
    return redis_qent_new(5, c->argv, c->lens, 4, time_wall_ms() + (ttl_ms ? ttl_ms : 1));
}

void
redis_session_store(struct worker *w, uint64_t key, const char *val, size_t n, uint64_t ttl_ms)
{
    struct redis_client *rc = w->redis;
    if (!rc || !key)
        return;
    struct session_set c;
    session_set_build(&c, rc, key, val, n, ttl_ms);
    struct redis_qent *e = session_qent(&c, ttl_ms);
    if (!(rc = redis_client_usable(w)) || command(rc, store_cb, e, 5, c.argv, c.lens)) {
        if (rc)
            redis_count_error(rc);
        redis_queue_put(e); /* written to the primary once one is up */
        return;
    }
    /* Write it now rather than on the next loop turn: the client may take the
     * session to another replica as soon as it has the response, and that
     * replica's GET should find it. Not from inside a hiredis callback, where
     * a write error would free the context under hiredis's feet. */
    if (!rc->in_cb)
        redisAsyncHandleWrite(rc->ac);
}

void
redis_session_touch(struct worker *w, uint64_t key, uint64_t ttl_ms)
{
    struct redis_client *rc = redis_client_usable(w);
    if (!rc || !key)
        return;
    char kbuf[REDIS_KEY_MAX], ttl[24];
    const char *argv[3] = {"PEXPIRE", kbuf, ttl};
    size_t lens[3] = {7, session_key(rc, key, kbuf), session_ttl_arg(ttl_ms, ttl)};
    if (command(rc, store_cb, NULL, 3, argv, lens) < 0)
        redis_count_error(rc);
}

/* The learned session is in Redis (or the wait timed out): the response that
 * taught it may go to the client. */
static void
store_answer(struct redis_op *op)
{
    struct redis_waiter *wt = op->wt;
    if (!wt)
        return;
    redis_op_unlink(op);
    wt->cb->stored(wt->owner);
}

int
redis_session_store_ack(struct worker *w, struct redis_waiter *wt, uint64_t key, const char *val,
                        size_t n, uint64_t ttl_ms)
{
    struct redis_client *rc = w->redis;
    if (!rc || !key)
        return -1;
    struct session_set c;
    session_set_build(&c, rc, key, val, n, ttl_ms);
    struct redis_qent *e = session_qent(&c, ttl_ms);
    struct redis_op *op = (rc = redis_client_usable(w)) ? redis_op_get(rc, wt, ROP_STORE) : NULL;
    if (op) {
        op->qe = e;
        if (redis_op_start(op, 5, c.argv, c.lens) == 0)
            return 0;
    }
    redis_queue_put(e); /* no wait: written once a primary is up */
    return -1;
}
