/* SPDX-License-Identifier: MIT */
/* Worker-side Redis: one hiredis async connection per worker loop (libev
 * adapter) with AUTH/SELECT/SCRIPT LOAD, reconnect back-off and per-operation
 * timeouts; learned sessions read on a local miss and written through. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/redis.h>
#include <tether/request.h>
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
    memset(out, 0, sizeof(*out));
    out->configured = atomic_load(&configured);
    struct redis_wstats *ws = atomic_load(&wstats);
    for (uint32_t i = 0; ws && i < nworkers; i++) {
        out->errors += atomic_load_explicit(&ws[i].errors, memory_order_relaxed);
        out->timeouts += atomic_load_explicit(&ws[i].timeouts, memory_order_relaxed);
        out->reconnects += atomic_load_explicit(&ws[i].reconnects, memory_order_relaxed);
        out->zone_fallbacks += atomic_load_explicit(&ws[i].fallbacks, memory_order_relaxed);
        out->workers_up += atomic_load_explicit(&ws[i].up, memory_order_relaxed);
    }
    out->errors += atomic_load(&ctl_errors);
    out->reconnects += atomic_load(&ctl_reconnects);
    out->admin_received = atomic_load(&ctl_admin);
    out->malformed = redis_guard_refused();
    out->up = atomic_load(&ctl_seen) ? atomic_load(&ctl_up) : out->workers_up > 0;
}

/* ---- the connection ---- */

static void
set_state(struct redis_client *rc, unsigned state)
{
    rc->state = (uint8_t)state;
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
    int rcs = 0;
    if (rc->password) {
        argv[0] = "AUTH", lens[0] = 4;
        argv[1] = rc->password, lens[1] = strlen(rc->password);
        rcs |= command(rc, handshake_cb, (void *)hs_auth, 2, argv, lens);
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
    if (rc->addr.len && sock_addr_equal(&rc->addr, &cr->addr) &&
        str_eq(rc->password, cr->password) && rc->db == cr->db)
        return;
    /* New server or credentials: start over at once. */
    rconn_close(rc);
    rc->addr = cr->addr;
    snprintf(rc->addr_text, sizeof(rc->addr_text), "%s", cr->addr_text);
    free(rc->password);
    rc->password = cr->password ? strdup(cr->password) : NULL;
    rc->db = cr->db;
    rc->backoff_ms = BACKOFF_MIN_MS;
    rc->down_logged = false;
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
redis_op_get(struct redis_client *rc, struct request *req, unsigned kind)
{
    struct redis_op *op = rc->free_ops;
    if (op)
        rc->free_ops = op->next;
    else if (!(op = malloc(sizeof(*op))))
        return NULL;
    op->rc = rc;
    op->req = req;
    op->next = NULL;
    op->kind = (uint8_t)kind;
    op->resent = false;
    op->zone = NULL;
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
    struct request *req = op->req;
    if (!req)
        return;
    for (struct redis_op **pp = (struct redis_op **)&req->redis_op; *pp; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    }
    op->next = NULL;
    op->req = NULL;
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
    if (op->req) {
        if (op->kind == ROP_ZONE)
            resent = redis_zone_reply(op, r);
        else if (op->kind == ROP_STORE)
            store_answer(op);
        else
            session_answer(op, r);
    }
    rc->in_cb--;
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
    struct request *req = op->req;
    if (op_send(op, argc, argv, lens) < 0) {
        redis_count_error(rc);
        op_put(op);
        return -1;
    }
    op->next = req->redis_op;
    req->redis_op = op;
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
redis_request_cancel(struct request *req)
{
    struct redis_op *op = req->redis_op;
    while (op) {
        struct redis_op *next = op->next;
        ev_timer_stop(op->rc->w->loop, &op->timer);
        op->req = NULL;
        op->next = NULL;
        op = next;
    }
    req->redis_op = NULL;
}

/* ---- learned sessions ---- */

/* PREFIX "session:" + the session key in hex into <out>; its length. Keyed by
 * the hash of the session id (as the local table is), so a request that only
 * carries the affinity cookie can re-pin the session too. */
static size_t
session_key(const struct redis_client *rc, const struct request *req, char *out)
{
    uint64_t k = affinity_session_key(req);
    memcpy(out, rc->prefix, rc->prefix_len);
    memcpy(out + rc->prefix_len, "session:", 8);
    for (int i = 0; i < 16; i++)
        out[rc->prefix_len + 8 + i] = "0123456789abcdef"[(k >> (60 - 4 * i)) & 15];
    return rc->prefix_len + 8 + 16;
}

/* "upstream/server" read from Redis: learn it when it names a server of the
 * request's upstream (another upstream, or a server since removed: ignored). */
static void
session_learn(struct request *req, const char *v, size_t n)
{
    /* "upstream/server" then, after a space, the session id (for operators). */
    const char *sp = memchr(v, ' ', n);
    if (sp)
        n = (size_t)(sp - v);
    const char *slash = memchr(v, '/', n);
    const char *uname = req->ups->conf->name;
    char sname[256];
    if (!slash || (size_t)(slash - v) != strlen(uname) || memcmp(v, uname, strlen(uname)) != 0)
        return;
    size_t sl = n - (size_t)(slash + 1 - v);
    if (sl == 0 || sl >= sizeof(sname))
        return;
    memcpy(sname, slash + 1, sl);
    sname[sl] = '\0';
    const struct server *s = upstream_server_by_name(req->ups, sname);
    if (!s)
        return;
    const struct affinity *af = req->cli->gen->aff;
    uint64_t now_ms = worker_now_ms(req->cli->w);
    req->learned_srv = s->cookie_id;
    /* The next request for this session hits locally. */
    session_table_insert(af->table, affinity_session_key(req), req->sid, req->sid_len, s->cookie_id,
                         now_ms + af->ttl_ms);
}

/* The lookup's answer (<r> NULL: none, the request goes on without it). */
static void
session_answer(struct redis_op *op, const redisReply *r)
{
    struct request *req = op->req;
    if (!req)
        return;
    redis_op_unlink(op);
    if (r && r->type == REDIS_REPLY_STRING)
        session_learn(req, r->str, r->len);
    req->aff_pending = false;
    request_resume(req);
}

int
redis_session_lookup(struct request *req)
{
    struct redis_client *rc = redis_client_usable(req->cli->w);
    if (!rc || !affinity_session_key(req))
        return -1;
    char key[REDIS_KEY_MAX];
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, session_key(rc, req, key)};
    struct redis_op *op = redis_op_get(rc, req, ROP_SESSION);
    if (!op)
        return -1;
    return redis_op_start(op, 2, argv, lens);
}

static void
store_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_client *rc = ac->data;
    const redisReply *r = reply;
    (void)priv;
    reply_begin(rc, ac, r);
    if (r && r->type == REDIS_REPLY_ERROR)
        redis_count_error(rc);
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
    char key[REDIS_KEY_MAX], ttl[24], val[512];
    const char *argv[5];
    size_t lens[5];
};

/* The session TTL in milliseconds as text into buf[24]; its length. */
static size_t
session_ttl_arg(const struct request *req, char *buf)
{
    uint64_t ttl_ms = req->cli->gen->aff->ttl_ms;
    return (size_t)snprintf(buf, 24, "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
}

static void
session_set_build(struct session_set *c, struct redis_client *rc, struct request *req,
                  const struct server *s)
{
    int vl = snprintf(c->val, sizeof(c->val), "%s%s%.*s", s->rt->key, req->sid_len ? " " : "",
                      (int)req->sid_len, req->sid);
    c->argv[0] = "SET";
    c->argv[1] = c->key;
    c->argv[2] = c->val;
    c->argv[3] = "PX";
    c->argv[4] = c->ttl;
    c->lens[0] = 3;
    c->lens[1] = session_key(rc, req, c->key);
    c->lens[2] = vl > 0 && (size_t)vl < sizeof(c->val) ? (size_t)vl : 0;
    c->lens[3] = 2;
    c->lens[4] = session_ttl_arg(req, c->ttl);
}

void
redis_session_store(struct request *req, const struct server *s)
{
    struct redis_client *rc = redis_client_usable(req->cli->w);
    if (!rc || !affinity_session_key(req))
        return; /* down: the outage is counted and logged already */
    struct session_set c;
    session_set_build(&c, rc, req, s);
    if (command(rc, store_cb, NULL, 5, c.argv, c.lens) < 0) {
        redis_count_error(rc);
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
redis_session_touch(struct request *req)
{
    struct redis_client *rc = redis_client_usable(req->cli->w);
    if (!rc || !affinity_session_key(req))
        return;
    char key[REDIS_KEY_MAX], ttl[24];
    const char *argv[3] = {"PEXPIRE", key, ttl};
    size_t lens[3] = {7, session_key(rc, req, key), session_ttl_arg(req, ttl)};
    if (command(rc, store_cb, NULL, 3, argv, lens) < 0)
        redis_count_error(rc);
}

/* The learned session is in Redis (or the wait timed out): the response that
 * taught it may go to the client. */
static void
store_answer(struct redis_op *op)
{
    struct request *req = op->req;
    if (!req)
        return;
    redis_op_unlink(op);
    req->store_pending = false;
    request_client_writable(req);
}

int
redis_session_store_ack(struct request *req, const struct server *s)
{
    struct redis_client *rc = redis_client_usable(req->cli->w);
    if (!rc || !affinity_session_key(req))
        return -1;
    struct session_set c;
    session_set_build(&c, rc, req, s);
    struct redis_op *op = redis_op_get(rc, req, ROP_STORE);
    if (!op)
        return -1;
    return redis_op_start(op, 5, c.argv, c.lens);
}
