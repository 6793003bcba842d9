/* SPDX-License-Identifier: MIT */
/* Where the Redis primary is, decided on the control thread and published
 * (address + epoch) for the workers and the admin connection to follow: the
 * first "server" whose ROLE is master, or the address the sentinels give
 * (checked with ROLE, followed through +switch-master). The connection that
 * confirmed the primary stays open as the monitor: a ROLE check every
 * check_interval, and the writes queued while no primary was known. */
#include "config.h"

#include <tether/conf.h>
#include <tether/control.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/redis.h>
#include <tether/worker.h>

#include "redis_guard.h"
#include "redis_int.h"

#include <hiredis/adapters/libev.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 *  start_round -> [ASK sentinel i -> ] PROBE candidate (AUTH, SELECT, ROLE)
 *       ^             | nil/error/timeout: i+1     | master
 *       |             v                            v
 *     WAIT <----- round failed                    UP (monitor: ROLE every
 *  (back-off)                                        check_interval, queue flush)
 *       ^                                            |
 *       +---- ROLE not master, lost, READONLY -------+   +switch-master: PROBE new
 */

enum ha_mode { HA_ONE = 0, HA_SERVERS, HA_SENTINEL };
enum ha_step { ST_IDLE = 0, ST_ASK, ST_PROBE, ST_UP, ST_WAIT };
static const char *const step_names[] = {"off", "asking sentinels", "checking role", "up",
                                         "no primary"};
static const char *const mode_names[] = {"server", "servers", "sentinel"};
#define FLUSH_BATCH    256
#define BACKOFF_MIN_MS 100
#define TICK_MS        250 /* the monitor's timer: ROLE deadline, queue */

static pthread_mutex_t plock = PTHREAD_MUTEX_INITIALIZER;
static struct redis_primary published; /* under plock */
static char suspect_why[128];          /* under plock */
static _Atomic uint64_t suspect_epoch;
static _Atomic bool wake_ready;

static struct {
    bool on;
    uint8_t mode, step;
    struct conf_redis_ep servers[REDIS_EP_MAX], sentinels[REDIS_EP_MAX];
    uint32_t nservers, nsentinels;
    char *master, *user, *password;
    uint32_t db;
    uint64_t timeout_ms, check_ms;
    uint32_t idx;              /* sentinel or server tried in this round */
    uint32_t sentinel_idx;     /* sentinel that answered last */
    bool direct;               /* probing an address from +switch-master */
    bool suspected;            /* the next primary found is republished even if unchanged */
    struct conf_redis_ep cand; /* the address being probed / the primary */
    redisAsyncContext *ctx;    /* the discovery step's connection, then the monitor */
    redisAsyncContext *sub;    /* sentinel subscriber */
    bool sub_up;
    uint32_t sub_idx;
    uint32_t role_inflight;
    uint64_t role_sent_ms;
    uint32_t flushing; /* queued writes in flight */
    ev_timer timer;    /* step deadline, next ROLE check, or retry */
    ev_async wake;     /* a worker's suspicion */
    uint64_t backoff_ms;
    char role[16], last_error[160];
    uint64_t failovers, last_failover_ms;
    struct conf_redis_ep last; /* the last primary published */
    bool have_last;
} ha;

static void start_round(void);
static void next_try(void);
static void probe(const struct conf_redis_ep *ep);
static void sub_open(void);

/* ---- publication ---- */

void
redis_primary_get(struct redis_primary *out)
{
    pthread_mutex_lock(&plock);
    *out = published;
    pthread_mutex_unlock(&plock);
}

/* Publish <ep> as the primary (NULL: none usable now, connections close and
 * writes queue). <force>: publish even when unchanged, so every connection
 * starts over (a failover signal on the same address). */
static void
publish(const struct conf_redis_ep *ep, bool force)
{
    pthread_mutex_lock(&plock);
    bool changed =
        force || !ep != !published.known || (ep && !sock_addr_equal(&published.addr, &ep->addr));
    if (changed) {
        published.epoch++;
        published.known = ep != NULL;
        if (ep) {
            published.addr = ep->addr;
            memcpy(published.text, ep->text, sizeof(published.text));
        } else {
            memset(&published.addr, 0, sizeof(published.addr));
            published.text[0] = '\0';
        }
    }
    pthread_mutex_unlock(&plock);
    if (!changed)
        return;
    if (ep && ha.have_last && (force || !sock_addr_equal(&ha.last.addr, &ep->addr))) {
        ha.failovers++;
        ha.last_failover_ms = time_wall_ms();
        if (!sock_addr_equal(&ha.last.addr, &ep->addr))
            log_notice("redis: failover: primary is now %s (was %s); moving every connection",
                       ep->text, ha.last.text);
        else
            log_notice("redis: primary %s confirmed after a failover signal; reconnecting",
                       ep->text);
    } else if (ep) {
        log_notice("redis: primary %s", ep->text);
    } else if (ha.have_last) {
        log_warn("redis: no usable primary (was %s); connections closed, serving from local "
                 "state and queueing writes until one is found",
                 ha.last.text);
    }
    if (ep) {
        ha.last = *ep;
        ha.have_last = true;
    }
    if (workers)
        workers_post(WMSG_REDIS);
    redis_admin_follow();
}

/* ---- helpers ---- */
bool
redis_reply_failover(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ERROR || !r->str)
        return false;
    return strncmp(r->str, "READONLY", 8) == 0 || strncmp(r->str, "LOADING", 7) == 0 ||
           strncmp(r->str, "MASTERDOWN", 10) == 0;
}

static __attribute__((format(printf, 1, 2))) void
set_error(const char *fmt, ...)
{
    char msg[sizeof(ha.last_error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (strcmp(msg, ha.last_error) != 0)
        log_error("redis: %s; tether keeps serving from local state", msg);
    memcpy(ha.last_error, msg, sizeof(msg));
}

static void
timer_in(uint64_t ms)
{
    ev_timer_stop(ctl.loop, &ha.timer);
    ev_timer_set(&ha.timer, (double)ms / 1000.0, 0);
    ev_timer_start(ctl.loop, &ha.timer);
}

static uint64_t
deadline_ms(void)
{
    return MAX(500, 5 * ha.timeout_ms);
}

/* A primary in use that does not answer ROLE for this long is given up (more
 * patient than discovery: a slow command must not cause a switch). */
static uint64_t
monitor_deadline_ms(void)
{
    return MAX(1000, 5 * ha.timeout_ms);
}

static void
ctx_close(redisAsyncContext **slot)
{
    redisAsyncContext *ac = *slot;
    *slot = NULL; /* its callbacks, run by the free, see it is gone */
    if (ac)
        redisAsyncFree(ac);
}

/* The step on <ha.ctx> failed: go on with the next candidate. */
static void
step_fail(void)
{
    ctx_close(&ha.ctx);
    ha.role_inflight = 0;
    if (ha.step == ST_UP) {
        /* Lost, hung or demoted: every connection stops using it now rather
         * than each finding out by its own timeouts. */
        publish(NULL, false);
        uint32_t n = redis_queue_replay_recent();
        if (n)
            log_info("redis: %u write%s of the last second queued again for the next primary", n,
                     n > 1 ? "s" : "");
        start_round();
    } else if (ha.direct) {
        ha.direct = false;
        start_round();
    } else {
        ha.idx++;
        next_try();
    }
}

static void
connect_cb(const redisAsyncContext *ac, int status)
{
    if (status == REDIS_OK || ac != ha.ctx)
        return;
    ha.ctx = NULL; /* hiredis frees it */
    if (ha.step == ST_ASK)
        set_error("sentinel %s does not answer (%s); trying the next", ha.sentinels[ha.idx].text,
                  ac->errstr);
    else if (ha.step == ST_UP)
        set_error("primary %s lost: %s", ha.cand.text, ac->errstr);
    else
        set_error("cannot connect to %s: %s", ha.cand.text, ac->errstr);
    step_fail();
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
    (void)status;
    if (ac == ha.sub) {
        ha.sub = NULL;
        ha.sub_up = false;
        return;
    }
    if (ac != ha.ctx)
        return;
    ha.ctx = NULL;
    if (ha.step == ST_ASK)
        set_error("sentinel %s: %s", ha.sentinels[ha.idx].text,
                  ac->err ? ac->errstr : "connection closed");
    else
        set_error("%s %s: %s", ha.step == ST_UP ? "primary" : "endpoint", ha.cand.text,
                  ac->err ? ac->errstr : "connection closed");
    step_fail();
}

static redisAsyncContext *
ctx_open(const struct sock_addr *a)
{
    redisAsyncContext *ac;
    if (a->u.sa.sa_family == AF_UNIX) {
        ac = redisAsyncConnectUnix(a->u.un.sun_path);
    } else {
        char ip[64];
        sock_addr_ip(a, ip, sizeof(ip));
        uint16_t port = a->u.sa.sa_family == AF_INET6 ? a->u.in6.sin6_port : a->u.in.sin_port;
        ac = redisAsyncConnect(ip, ntohs(port));
    }
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    if (redisLibevAttach(ctl.loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    redis_guard_attach(ac);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    return ac;
}

/* ---- the queue ---- */
static void flush(void);

static void
flush_cb(redisAsyncContext *ac, void *r, void *priv)
{
    const redisReply *reply = r;
    struct redis_qent *e = priv;
    ha.flushing--;
    if (reply && reply->type == REDIS_REPLY_ERROR && !redis_reply_failover(reply)) {
        /* Refused by a working primary (OOM, ACL...): retrying would loop. */
        set_error("a queued write was refused by %s and dropped: %s", ha.cand.text, reply->str);
        redis_queue_drop(e);
    } else { /* no reply (connection gone) or READONLY & co: kept for the next primary */
        redis_queue_done(e, reply && reply->type != REDIS_REPLY_ERROR);
    }
    if (ac != ha.ctx)
        return;
    if (redis_reply_failover(reply)) {
        set_error("primary %s answered %s", ha.cand.text, reply->str);
        ha.suspected = true;
        step_fail();
        return;
    }
    if (ha.flushing == 0)
        flush();
}

/* Write the queued writes to the primary, FLUSH_BATCH at a time. */
static void
flush(void)
{
    uint64_t now = time_wall_ms();
    uint32_t sent = 0;
    struct redis_qent *e;
    while (ha.ctx && ha.step == ST_UP && ha.flushing < FLUSH_BATCH && (e = redis_queue_take())) {
        if (!redis_qent_ready(e, now)) {
            redis_queue_count_expired();
            redis_qent_free(e);
            continue;
        }
        if (redisAsyncCommandArgv(ha.ctx, flush_cb, e, e->argc, e->argv, e->lens) != REDIS_OK) {
            redis_queue_done(e, false);
            break;
        }
        ha.flushing++;
        sent++;
    }
    if (sent)
        log_info("redis: writing %u queued write%s to %s", sent, sent > 1 ? "s" : "", ha.cand.text);
}

/* ---- the monitor (UP) ---- */

static void
role_name(const redisReply *r, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(out, cap, "%.*s", (int)MIN(r->element[0]->len, cap - 1), r->element[0]->str);
}

static void
monitor_role_cb(redisAsyncContext *ac, void *r, void *priv)
{
    const redisReply *reply = r;
    (void)priv;
    if (ac != ha.ctx || !reply)
        return;
    ha.role_inflight = 0;
    role_name(reply, ha.role, sizeof(ha.role));
    if (strcmp(ha.role, "master") == 0)
        return;
    if (ha.mode == HA_ONE) { /* nothing else to choose: say so, keep using it */
        set_error("%s answers ROLE with \"%s\", not master; writes will fail", ha.cand.text,
                  reply->type == REDIS_REPLY_ERROR ? reply->str : ha.role);
        return;
    }
    set_error("primary %s now answers ROLE with \"%s\": failover, looking for the new primary",
              ha.cand.text, reply->type == REDIS_REPLY_ERROR ? reply->str : ha.role);
    ha.suspected = true;
    step_fail();
}

static void
found(void)
{
    bool force = ha.suspected;
    ha.step = ST_UP;
    ha.direct = ha.suspected = false;
    ha.backoff_ms = BACKOFF_MIN_MS;
    ha.last_error[0] = '\0';
    ha.role_inflight = 0;
    ha.role_sent_ms = time_mono_ms();
    publish(&ha.cand, force);
    if (ha.mode == HA_SENTINEL && !ha.sub)
        sub_open();
    flush();
    timer_in(MIN(ha.check_ms, TICK_MS));
}

/* ---- discovery ---- */

static void
probe_role_cb(redisAsyncContext *ac, void *r, void *priv)
{
    const redisReply *reply = r;
    (void)priv;
    if (ac != ha.ctx || !reply)
        return;
    role_name(reply, ha.role, sizeof(ha.role));
    /* ROLE refused (an ACL without it, a managed service): with one endpoint
     * there is nothing to choose, so it is used unverified. */
    if (reply->type == REDIS_REPLY_ERROR && ha.mode == HA_ONE)
        snprintf(ha.role, sizeof(ha.role), "unchecked");
    if (strcmp(ha.role, "master") == 0 || strcmp(ha.role, "unchecked") == 0) {
        found();
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR)
        set_error("%s answers ROLE with an error: %s", ha.cand.text, reply->str);
    else if (reply->type != REDIS_REPLY_ARRAY)
        set_error("%s answers ROLE with something that is not a role (reply type %d)", ha.cand.text,
                  reply->type);
    else if (ha.mode == HA_ONE)
        set_error("%s is a %s, not a primary; writes will fail", ha.cand.text, ha.role);
    if (ha.mode == HA_ONE) {
        found(); /* the only endpoint: workers use it anyway */
        return;
    }
    step_fail();
}

static void
probe_auth_cb(redisAsyncContext *ac, void *r, void *priv)
{
    const redisReply *reply = r;
    const char *what = priv;
    if (ac != ha.ctx || !reply || reply->type != REDIS_REPLY_ERROR)
        return;
    /* The reply names the problem (WRONGPASS, NOAUTH...), never the secret. */
    set_error("%s to %s failed: %s", what, ha.cand.text, reply->str);
    step_fail();
}

static void
probe(const struct conf_redis_ep *ep)
{
    ha.step = ST_PROBE;
    ha.cand = *ep;
    ha.role[0] = '\0';
    ctx_close(&ha.ctx);
    if (!(ha.ctx = ctx_open(&ep->addr))) {
        set_error("cannot connect to %s", ep->text);
        step_fail();
        return;
    }
    if (ha.password && ha.user)
        redisAsyncCommand(ha.ctx, probe_auth_cb, (void *)"AUTH", "AUTH %s %s", ha.user,
                          ha.password);
    else if (ha.password)
        redisAsyncCommand(ha.ctx, probe_auth_cb, (void *)"AUTH", "AUTH %s", ha.password);
    if (ha.db)
        redisAsyncCommand(ha.ctx, probe_auth_cb, (void *)"SELECT", "SELECT %u", ha.db);
    redisAsyncCommand(ha.ctx, probe_role_cb, NULL, "ROLE");
    timer_in(deadline_ms());
}

static void
ask_cb(redisAsyncContext *ac, void *r, void *priv)
{
    const redisReply *reply = r;
    const struct conf_redis_ep *s = &ha.sentinels[ha.idx];
    (void)priv;
    if (ac != ha.ctx || !reply)
        return;
    if (reply->type == REDIS_REPLY_NIL) {
        set_error("sentinel %s does not know a master named \"%s\"", s->text, ha.master);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        set_error("sentinel %s: %s", s->text, reply->str);
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
               reply->element[0]->type != REDIS_REPLY_STRING ||
               reply->element[1]->type != REDIS_REPLY_STRING) {
        set_error("sentinel %s answers get-master-addr-by-name with something else than an "
                  "address",
                  s->text);
    } else {
        char text[SOCK_ADDR_STRLEN];
        struct conf_redis_ep ep;
        struct err e = {0};
        bool v6 = memchr(reply->element[0]->str, ':', reply->element[0]->len) != NULL;
        snprintf(text, sizeof(text), v6 ? "[%.*s]:%.*s" : "%.*s:%.*s",
                 (int)MIN(reply->element[0]->len, 64), reply->element[0]->str,
                 (int)MIN(reply->element[1]->len, 8), reply->element[1]->str);
        if (sock_addr_parse(&ep.addr, text, 0, &e) < 0) {
            set_error("sentinel %s gives an address that does not parse", s->text);
        } else {
            sock_addr_format(&ep.addr, ep.text, sizeof(ep.text));
            ha.sentinel_idx = ha.idx;
            probe(&ep);
            return;
        }
    }
    ctx_close(&ha.ctx);
    ha.idx++;
    next_try();
}

static void
ask(uint32_t i)
{
    ha.step = ST_ASK;
    ctx_close(&ha.ctx);
    if (!(ha.ctx = ctx_open(&ha.sentinels[i].addr))) {
        set_error("cannot connect to sentinel %s", ha.sentinels[i].text);
        ha.idx++;
        next_try();
        return;
    }
    redisAsyncCommand(ha.ctx, ask_cb, NULL, "SENTINEL get-master-addr-by-name %s", ha.master);
    timer_in(deadline_ms());
}

static void
next_try(void)
{
    if (ha.mode == HA_SENTINEL && ha.idx < ha.nsentinels) {
        ask(ha.idx);
    } else if (ha.mode != HA_SENTINEL && ha.idx < ha.nservers) {
        probe(&ha.servers[ha.idx]);
    } else {
        /* Nobody gave a primary this round: try again after a back-off. */
        ha.step = ST_WAIT;
        if (!ha.last_error[0])
            set_error("no primary found among the %s",
                      ha.mode == HA_SENTINEL ? "sentinels" : "servers");
        timer_in(ha.backoff_ms);
        ha.backoff_ms = MIN(ha.backoff_ms * 2, MAX(ha.check_ms, BACKOFF_MIN_MS));
    }
}

static void
start_round(void)
{
    ctx_close(&ha.ctx);
    ha.idx = 0;
    ha.direct = false;
    next_try();
}

/* ---- the sentinel subscriber ---- */

static void
switch_master(const char *msg, size_t len)
{
    /* "<name> <old-ip> <old-port> <new-ip> <new-port>" */
    char buf[256], *f[5], *save = NULL;
    int n = 0;
    if (len >= sizeof(buf))
        return;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    for (char *t = strtok_r(buf, " ", &save); t && n < 5; t = strtok_r(NULL, " ", &save))
        f[n++] = t;
    if (n != 5 || strcmp(f[0], ha.master) != 0)
        return;
    char text[SOCK_ADDR_STRLEN];
    struct conf_redis_ep ep;
    struct err e = {0};
    snprintf(text, sizeof(text), strchr(f[3], ':') ? "[%s]:%s" : "%s:%s", f[3], f[4]);
    if (sock_addr_parse(&ep.addr, text, 0, &e) < 0)
        return;
    sock_addr_format(&ep.addr, ep.text, sizeof(ep.text));
    log_notice("redis: sentinel %s: +switch-master %s %s:%s -> %s", ha.sentinels[ha.sub_idx].text,
               f[0], f[1], f[2], ep.text);
    if (ha.step == ST_UP && sock_addr_equal(&ep.addr, &ha.cand.addr))
        return;
    ha.suspected = true;
    ha.direct = true;
    probe(&ep);
}

static void
sub_cb(redisAsyncContext *ac, void *r, void *priv)
{
    const redisReply *reply = r;
    (void)priv;
    if (ac != ha.sub || !reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        set_error("sentinel %s refuses SUBSCRIBE: %s", ha.sentinels[ha.sub_idx].text, reply->str);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *kind = reply->element[0], *data = reply->element[2];
    if (strcmp(kind->str, "subscribe") == 0)
        ha.sub_up = true;
    else if (strcmp(kind->str, "message") == 0 && data->type == REDIS_REPLY_STRING)
        switch_master(data->str, data->len);
}

static void
sub_open(void)
{
    ctx_close(&ha.sub);
    ha.sub_up = false;
    ha.sub_idx = ha.sentinel_idx;
    if (!(ha.sub = ctx_open(&ha.sentinels[ha.sub_idx].addr)))
        return;
    redisAsyncCommand(ha.sub, sub_cb, NULL, "SUBSCRIBE +switch-master");
}

/* ---- timers and wake-ups ---- */

static void
timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    if (ha.step == ST_ASK || ha.step == ST_PROBE) { /* the step's deadline */
        set_error("%s %s: no answer in %llu ms", ha.step == ST_ASK ? "sentinel" : "endpoint",
                  ha.step == ST_ASK ? ha.sentinels[ha.idx].text : ha.cand.text,
                  (unsigned long long)deadline_ms());
        step_fail();
        return;
    }
    if (ha.step == ST_WAIT)
        start_round();
    if (ha.step != ST_UP)
        return;
    uint64_t now = time_mono_ms();
    if (ha.role_inflight && now - ha.role_sent_ms > monitor_deadline_ms()) {
        set_error("primary %s: no answer to ROLE in %llu ms", ha.cand.text,
                  (unsigned long long)monitor_deadline_ms());
        step_fail();
        return;
    }
    if (!ha.role_inflight && ha.ctx && now - ha.role_sent_ms >= ha.check_ms) {
        redisAsyncCommand(ha.ctx, monitor_role_cb, NULL, "ROLE");
        ha.role_inflight = 1;
        ha.role_sent_ms = now;
    }
    if (ha.mode == HA_SENTINEL && !ha.sub) {
        ha.sentinel_idx = (ha.sub_idx + 1) % ha.nsentinels;
        sub_open();
    }
    if (ha.flushing == 0)
        flush();
    timer_in(MIN(ha.check_ms, TICK_MS)); /* deadlines, and writes queued meanwhile */
}

static void
wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    char why[sizeof(suspect_why)];
    (void)loop;
    (void)a;
    (void)revents;
    pthread_mutex_lock(&plock);
    uint64_t epoch = published.epoch;
    memcpy(why, suspect_why, sizeof(why));
    pthread_mutex_unlock(&plock);
    if (atomic_exchange(&suspect_epoch, 0) != epoch || ha.step != ST_UP)
        return;              /* an old connection's news, or discovery is running already */
    if (ha.mode == HA_ONE) { /* nothing else to choose: check its role now */
        if (!ha.role_inflight && ha.ctx) {
            redisAsyncCommand(ha.ctx, monitor_role_cb, NULL, "ROLE");
            ha.role_inflight = 1;
            ha.role_sent_ms = time_mono_ms();
        }
        return;
    }
    set_error("primary %s answered \"%s\": failover, looking for the primary", ha.cand.text, why);
    ha.suspected = true;
    step_fail();
}

void
redis_ha_suspect(uint64_t epoch, const char *why)
{
    if (!atomic_load(&wake_ready))
        return;
    pthread_mutex_lock(&plock);
    snprintf(suspect_why, sizeof(suspect_why), "%s", why ? why : "");
    pthread_mutex_unlock(&plock);
    atomic_store(&suspect_epoch, epoch);
    ev_async_send(ctl.loop, &ha.wake);
}

/* ---- settings ---- */

static bool
str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool
same_settings(const struct conf_redis *r)
{
    if (!ha.on || ha.nservers != r->nservers || ha.nsentinels != r->nsentinels)
        return false;
    for (uint32_t i = 0; i < r->nservers; i++)
        if (!sock_addr_equal(&ha.servers[i].addr, &r->servers[i].addr))
            return false;
    for (uint32_t i = 0; i < r->nsentinels; i++)
        if (!sock_addr_equal(&ha.sentinels[i].addr, &r->sentinels[i].addr))
            return false;
    return str_eq(ha.master, r->master) && str_eq(ha.user, r->user) &&
           str_eq(ha.password, r->password) && ha.db == r->db && ha.timeout_ms == r->timeout_ms &&
           ha.check_ms == r->check_interval_ms;
}

static void
settings_free(void)
{
    free(ha.master);
    free(ha.user);
    if (ha.password)
        memset(ha.password, 0, strlen(ha.password));
    free(ha.password);
    ha.master = ha.user = ha.password = NULL;
}

void
redis_ha_stop(void)
{
    if (atomic_load(&wake_ready)) {
        ev_timer_stop(ctl.loop, &ha.timer);
        ctx_close(&ha.ctx);
        ctx_close(&ha.sub);
    }
    ha.sub_up = false;
    ha.step = ST_IDLE;
    ha.on = false;
    settings_free();
}

void
redis_ha_sync(void)
{
    struct gen *g = atomic_load(&gen_current);
    const struct conf_redis *r = g ? &g->conf->redis : NULL;
    if (!atomic_load(&wake_ready)) {
        ev_init(&ha.timer, timer_cb);
        ev_async_init(&ha.wake, wake_cb);
        ev_async_start(ctl.loop, &ha.wake);
        ev_unref(ctl.loop); /* the wake-up alone does not keep the loop running */
        atomic_store(&wake_ready, true);
    }
    if (!r || !r->enabled) {
        if (ha.on) {
            redis_ha_stop();
            publish(NULL, false);
            redis_queue_clear();
        }
        return;
    }
    redis_queue_set_size(r->queue_size);
    if (same_settings(r))
        return;
    redis_ha_stop();
    memcpy(ha.servers, r->servers, sizeof(ha.servers));
    memcpy(ha.sentinels, r->sentinels, sizeof(ha.sentinels));
    ha.nservers = r->nservers;
    ha.nsentinels = r->nsentinels;
    ha.master = r->master ? strdup(r->master) : NULL;
    ha.user = r->user ? strdup(r->user) : NULL;
    ha.password = r->password ? strdup(r->password) : NULL;
    ha.db = r->db;
    ha.timeout_ms = r->timeout_ms;
    ha.check_ms = r->check_interval_ms ? r->check_interval_ms : 1000;
    ha.mode = r->nsentinels ? HA_SENTINEL : r->nservers > 1 ? HA_SERVERS : HA_ONE;
    ha.backoff_ms = BACKOFF_MIN_MS;
    ha.last_error[0] = '\0';
    ha.suspected = false;
    ha.have_last = false;
    ha.on = true;
    /* One endpoint: it is the primary, nothing to discover (the monitor still
     * checks its role and writes the queue). Otherwise nothing is known until
     * discovery says so. */
    publish(ha.mode == HA_ONE ? &ha.servers[0] : NULL, true);
    start_round();
}

void
redis_ha_info_get(struct redis_ha_info *out)
{
    struct redis_primary p;
    memset(out, 0, sizeof(*out));
    redis_primary_get(&p);
    if (!ha.on) {
        snprintf(out->state, sizeof(out->state), "off");
        return;
    }
    snprintf(out->mode, sizeof(out->mode), "%s", mode_names[ha.mode]);
    snprintf(out->primary, sizeof(out->primary), "%s", p.known ? p.text : "");
    snprintf(out->role, sizeof(out->role), "%s", ha.role);
    snprintf(out->state, sizeof(out->state), "%s", step_names[ha.step]);
    if (ha.mode == HA_SENTINEL) {
        snprintf(out->sentinel, sizeof(out->sentinel), "%s", ha.sentinels[ha.sub_idx].text);
        snprintf(out->master, sizeof(out->master), "%s", ha.master ? ha.master : "");
    }
    out->sentinel_subscribed = ha.sub_up;
    snprintf(out->last_error, sizeof(out->last_error), "%s", ha.last_error);
    out->epoch = p.epoch;
    out->failovers = ha.failovers;
    out->last_failover_ms = ha.last_failover_ms;
}
