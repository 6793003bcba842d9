/* SPDX-License-Identifier: MIT */
/* Replica-wide admin changes through Redis, on the control thread: a command
 * connection (local changes as MULTI HSET+PUBLISH, HGETALL of the stored
 * overrides on every connect, an idle PING) and a subscriber connection.
 * Servers added and deleted with the admin socket are stored the same way, so
 * they reach every replica and a restarted one adds them again. */
#include "config.h"

#include <tether/admin.h>
#include <tether/control.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/redis.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "redis_guard.h"
#include "redis_int.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PING_IDLE_MS   2000
#define TIMEOUT_MIN_MS 1000 /* the control connection is not on the request path */
#define PENDING_MAX    256
#define TOUCHED_MAX    64
#define FIELD_MAX      256

/* A local change not yet in Redis (made while it was unreachable). */
struct pending {
    char *field; /* hash field: "server voice/pod-a weight" */
    char *line;  /* the command line */
};

/*
 * Connection life: connect both -> (AUTH, SELECT) -> SUBSCRIBE confirmed ->
 * "up": push pending changes, HGETALL and apply the stored overrides. Any
 * failure closes both and retries after a growing back-off. Changes arriving
 * while HGETALL is in flight are newer than its answer for their fields
 * ("touched"), so the answer does not roll them back.
 */
static struct {
    bool on; /* Redis configured */
    /* settings, copied: the generation they came from may go first */
    struct sock_addr addr;
    char addr_text[SOCK_ADDR_STRLEN];
    char *prefix, *password, *user;
    bool known; /* a primary is published (rc.addr) */
    uint32_t db;
    uint64_t timeout_ms;
    char *channel;                /* PREFIX "admin" */
    char *hash;                   /* PREFIX "admin:overrides" */
    char id[96];                  /* this instance, so it ignores its own messages */
    redisAsyncContext *cmd, *sub; /* NULL when closed */
    bool up;                      /* subscribed: changes go out directly */
    bool down_logged;             /* the current outage was logged */
    bool syncing;                 /* HGETALL in flight */
    bool timers;                  /* timers initialised */
    ev_timer retry;               /* reconnect after the back-off */
    ev_timer watchdog;            /* connect and reply timeouts, idle PING */
    uint64_t backoff_ms;
    uint64_t attempt_ms;  /* start of the current connection attempt */
    uint32_t inflight;    /* replies awaited on cmd */
    uint64_t progress_ms; /* last reply on cmd (or first send) */
    struct pending pending[PENDING_MAX];
    uint32_t npending;
    char *touched[TOUCHED_MAX]; /* fields changed while syncing */
    uint32_t ntouched;
    uint64_t errors, reconnects, received; /* since the last stats push */
} rc;

static void rc_fail(const char *what, const char *detail);

/* Hand the counters to the metrics (redis_stats_add_control, redis.c). */
static void
stats_push(void)
{
    redis_stats_add_control(rc.up, rc.errors, rc.reconnects, rc.received);
    rc.errors = rc.reconnects = rc.received = 0;
}

/* "set server voice/pod-a weight 5" -> "server voice/pod-a weight";
 * "add server voice/pod-c ..." and "del server voice/pod-c [now]" ->
 * "member voice/pod-c" (the last of the two wins). 0 or -1. */
static int
field_of(const char *line, char *out, size_t cap)
{
    if (strncmp(line, "add server ", 11) == 0 || strncmp(line, "del server ", 11) == 0) {
        size_t n = strcspn(line + 11, " ");
        if (n == 0 || n + 8 >= cap)
            return -1;
        snprintf(out, cap, "member %.*s", (int)n, line + 11);
        return 0;
    }
    const char *sp = strrchr(line, ' ');
    if (strncmp(line, "set ", 4) != 0 || !sp || sp <= line + 4 || (size_t)(sp - line - 4) >= cap)
        return -1;
    memcpy(out, line + 4, (size_t)(sp - line - 4));
    out[sp - line - 4] = '\0';
    return 0;
}

static void
touched_add(const char *field)
{
    if (rc.ntouched < TOUCHED_MAX)
        rc.touched[rc.ntouched++] = strdup(field);
}

static bool
touched_has(const char *field)
{
    for (uint32_t i = 0; i < rc.ntouched; i++)
        if (rc.touched[i] && strcmp(rc.touched[i], field) == 0)
            return true;
    /* Past the bound we cannot tell: keep the local state (the stored value
     * will be applied at the next reconnect). */
    return rc.ntouched == TOUCHED_MAX;
}

static void
touched_clear(void)
{
    for (uint32_t i = 0; i < rc.ntouched; i++)
        free(rc.touched[i]);
    rc.ntouched = 0;
}

/* Apply a change received from <who> as a replicated admin command. */
static void
apply(const char *line, const char *who)
{
    struct admin_peer p = {.replica = true};
    struct admin_out out = {0};
    snprintf(p.who, sizeof(p.who), "%s", who);
    admin_exec(line, &out, &p);
    if (out.error)
        log_info("redis: admin change \"%s\" from %s not applied: %.*s", line, who,
                 (int)strcspn(out.data, "\n"), out.data);
    admin_out_free(&out);
}

/* ---- commands on the cmd connection ---- */

static void
reply_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    if (ac != rc.cmd || !reply)
        return; /* a closed connection's leftovers */
    rc.inflight--;
    rc.progress_ms = time_mono_ms();
    if (reply->type == REDIS_REPLY_ERROR) {
        rc.errors++;
        if (priv) { /* AUTH or SELECT: nothing else can work */
            rc_fail((const char *)priv, reply->str);
            return;
        }
        log_warn("redis: admin command failed: %s", reply->str);
        stats_push();
    }
}

static void
cmd_send(redisCallbackFn *fn, void *priv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (redisvAsyncCommand(rc.cmd, fn, priv, fmt, ap) == REDIS_OK && rc.inflight++ == 0)
        rc.progress_ms = time_mono_ms();
    va_end(ap);
}

/* Store and publish one change atomically, so the hash and the messages
 * agree on the order of concurrent changes from several replicas. */
static void
send_change(const char *field, const char *line)
{
    char msg[sizeof(rc.id) + ADMIN_LINE_MAX + 2];
    snprintf(msg, sizeof(msg), "%s %s", rc.id, line);
    cmd_send(reply_cb, NULL, "MULTI");
    cmd_send(reply_cb, NULL, "HSET %s %s %s", rc.hash, field, line);
    cmd_send(reply_cb, NULL, "PUBLISH %s %s", rc.channel, msg);
    cmd_send(reply_cb, NULL, "EXEC");
}

static void
hgetall_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    size_t applied = 0;
    (void)priv;
    if (ac != rc.cmd || !reply)
        return;
    rc.inflight--;
    rc.progress_ms = time_mono_ms();
    rc.syncing = false;
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            redisReply *f = reply->element[i], *v = reply->element[i + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
                touched_has(f->str))
                continue;
            apply(v->str, "stored override");
            applied++;
        }
        log_info("redis: %zu stored admin overrides read from %s", applied, rc.hash);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        rc.errors++;
        log_warn("redis: reading the admin overrides failed: %s", reply->str);
    }
    touched_clear();
}

/* Subscribed: publish what was changed meanwhile, then read every override. */
static void
rc_ready(void)
{
    rc.up = true;
    rc.backoff_ms = BACKOFF_MIN_MS;
    log_notice("redis: admin replication through %s %s (channel %s)", rc.addr_text,
               rc.down_logged ? "restored" : "up", rc.channel);
    rc.down_logged = false;
    if (rc.npending)
        log_notice("redis: publishing %u admin change%s made while Redis was unreachable",
                   rc.npending, rc.npending > 1 ? "s" : "");
    for (uint32_t i = 0; i < rc.npending; i++) {
        send_change(rc.pending[i].field, rc.pending[i].line);
        free(rc.pending[i].field);
        free(rc.pending[i].line);
    }
    rc.npending = 0;
    touched_clear();
    rc.syncing = true;
    cmd_send(hgetall_cb, NULL, "HGETALL %s", rc.hash);
    stats_push();
}

/* ---- the subscriber ---- */

static void
message(const char *p, size_t len)
{
    const char *sp = memchr(p, ' ', len);
    char who[sizeof(rc.id) + 16], field[FIELD_MAX];
    if (!sp || len > sizeof(rc.id) + ADMIN_LINE_MAX)
        return;
    if ((size_t)(sp - p) == strlen(rc.id) && memcmp(p, rc.id, (size_t)(sp - p)) == 0)
        return; /* our own change */
    snprintf(who, sizeof(who), "replica %.*s", (int)MIN((size_t)(sp - p), sizeof(rc.id)), p);
    rc.received++;
    if (rc.syncing && field_of(sp + 1, field, sizeof(field)) == 0)
        touched_add(field);
    apply(sp + 1, who);
    stats_push();
}

static void
sub_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    (void)priv;
    if (ac != rc.sub || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    redisReply *kind = reply->element[0], *data = reply->element[2];
    if (kind->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "subscribe") == 0 && !rc.up)
        rc_ready();
    else if (strcmp(kind->str, "message") == 0 && data->type == REDIS_REPLY_STRING)
        message(data->str, data->len);
}

static void
sub_auth_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    (void)priv;
    if (ac == rc.sub && reply && reply->type == REDIS_REPLY_ERROR)
        rc_fail("AUTH failed", reply->str);
}

/* ---- connections ---- */

/* hiredis frees a context after these two callbacks: forget it first. */
static void
connect_cb(const redisAsyncContext *ac, int status)
{
    redisAsyncContext **slot = ac->data;
    if (status != REDIS_OK && slot && *slot == ac) {
        *slot = NULL;
        rc_fail("cannot connect", ac->errstr);
    }
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
    redisAsyncContext **slot = ac->data;
    (void)status;
    if (slot && *slot == ac) {
        *slot = NULL;
        rc_fail("connection closed", ac->err ? ac->errstr : "by the server");
    }
}

static void
rc_close(redisAsyncContext **slot)
{
    redisAsyncContext *ac = *slot;
    *slot = NULL; /* its callbacks, run by the free, see it is gone */
    if (ac)
        redisAsyncFree(ac);
}

static redisAsyncContext *
rc_open(redisAsyncContext **slot, char *why, size_t cap)
{
    redisAsyncContext *ac;
    if (rc.addr.u.sa.sa_family == AF_UNIX) {
        ac = redisAsyncConnectUnix(rc.addr.u.un.sun_path);
    } else {
        char ip[64];
        sock_addr_ip(&rc.addr, ip, sizeof(ip));
        uint16_t port =
            rc.addr.u.sa.sa_family == AF_INET6 ? rc.addr.u.in6.sin6_port : rc.addr.u.in.sin_port;
        ac = redisAsyncConnect(ip, ntohs(port));
    }
    if (!ac || ac->err) {
        snprintf(why, cap, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    ac->data = slot;
    redis_guard_attach(ac);
    redisLibevAttach(ctl.loop, ac);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    return ac;
}

static void
rc_connect(void)
{
    char why[128] = "";
    rc.attempt_ms = time_mono_ms();
    rc.inflight = 0;
    rc.up = rc.syncing = false;
    rc.cmd = rc_open(&rc.cmd, why, sizeof(why));
    rc.sub = rc.cmd ? rc_open(&rc.sub, why, sizeof(why)) : NULL;
    if (!rc.sub) {
        rc_fail("cannot connect", why);
        return;
    }
    if (rc.password && rc.user) {
        cmd_send(reply_cb, "AUTH failed", "AUTH %s %s", rc.user, rc.password);
        redisAsyncCommand(rc.sub, sub_auth_cb, NULL, "AUTH %s %s", rc.user, rc.password);
    } else if (rc.password) {
        cmd_send(reply_cb, "AUTH failed", "AUTH %s", rc.password);
        redisAsyncCommand(rc.sub, sub_auth_cb, NULL, "AUTH %s", rc.password);
    }
    if (rc.db)
        cmd_send(reply_cb, "SELECT failed", "SELECT %u", rc.db);
    redisAsyncCommand(rc.sub, sub_cb, NULL, "SUBSCRIBE %s", rc.channel);
    ev_timer_again(ctl.loop, &rc.watchdog);
}

static void
rc_fail(const char *what, const char *detail)
{
    bool was_up = rc.up;
    rc_close(&rc.cmd);
    rc_close(&rc.sub);
    rc.up = rc.syncing = false;
    rc.errors++;
    touched_clear();
    ev_timer_stop(ctl.loop, &rc.watchdog);
    if (was_up)
        log_warn("redis: admin replication through %s lost (%s: %s); reconnecting", rc.addr_text,
                 what, detail);
    else if (!rc.down_logged)
        log_warn("redis: admin replication through %s unavailable (%s: %s); retrying in the "
                 "background, admin changes apply locally meanwhile",
                 rc.addr_text, what, detail);
    rc.down_logged = true;
    ev_timer_stop(ctl.loop, &rc.retry);
    ev_timer_set(&rc.retry, (double)rc.backoff_ms / 1000.0, 0);
    ev_timer_start(ctl.loop, &rc.retry);
    rc.backoff_ms = MIN(rc.backoff_ms * 2, BACKOFF_MAX_MS);
    stats_push();
}

static void
retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    rc.reconnects++;
    rc_connect();
}

static void
watchdog_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    uint64_t now = time_mono_ms(), limit = MAX(rc.timeout_ms, TIMEOUT_MIN_MS);
    (void)loop;
    (void)t;
    (void)revents;
    if (!rc.up && now - rc.attempt_ms > limit)
        rc_fail("cannot connect", "timed out");
    else if (rc.up && rc.inflight && now - rc.progress_ms > limit)
        rc_fail("no reply", "timed out");
    else if (rc.up && !rc.inflight && now - rc.progress_ms > PING_IDLE_MS)
        cmd_send(reply_cb, NULL, "PING"); /* finds a silently dead server */
}

/* Close the connections (pending changes are kept for the next server). */
static void
rc_disconnect(void)
{
    if (!rc.timers)
        return;
    ev_timer_stop(ctl.loop, &rc.retry);
    ev_timer_stop(ctl.loop, &rc.watchdog);
    rc_close(&rc.cmd);
    rc_close(&rc.sub);
    rc.up = rc.syncing = false;
    touched_clear();
}

static bool
str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static char *
str_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", a, b);
    return s;
}

static void
settings_free(void)
{
    free(rc.prefix);
    free(rc.password);
    free(rc.user);
    free(rc.channel);
    free(rc.hash);
    rc.prefix = rc.password = rc.user = rc.channel = rc.hash = NULL;
}

void
redis_control_sync(void)
{
    redis_ha_sync(); /* publishes the primary, then calls redis_admin_follow() */
    redis_admin_follow();
}

void
redis_admin_follow(void)
{
    struct gen *g = atomic_load(&gen_current);
    struct redis_primary p;
    const struct conf_redis *r = g ? &g->conf->redis : NULL;
    if (!rc.timers) {
        ev_init(&rc.retry, retry_cb);
        ev_init(&rc.watchdog, watchdog_cb);
        rc.watchdog.repeat = 0.1;
        rc.timers = true;
    }
    if (!r || !r->enabled) {
        if (rc.on)
            log_notice("redis: admin replication off (no redis block)");
        redis_control_stop();
        return;
    }
    /* The primary is redis_ha.c's decision: follow it. */
    redis_primary_get(&p);
    if (rc.on && rc.known == p.known && (!p.known || sock_addr_equal(&rc.addr, &p.addr)) &&
        str_eq(rc.prefix, r->prefix) && str_eq(rc.password, r->password) &&
        str_eq(rc.user, r->user) && rc.db == r->db && rc.timeout_ms == r->timeout_ms)
        return;
    bool was_on = rc.on, was_up = rc.up;
    if (was_up && !p.known)
        log_warn("redis: admin replication through %s lost (no usable primary); admin changes "
                 "apply locally meanwhile",
                 rc.addr_text);
    rc_disconnect();
    settings_free();
    rc.known = p.known;
    rc.addr = p.addr;
    snprintf(rc.addr_text, sizeof(rc.addr_text), "%s", p.known ? p.text : "(no primary)");
    rc.prefix = strdup(r->prefix ? r->prefix : "");
    rc.password = r->password ? strdup(r->password) : NULL;
    rc.user = r->user ? strdup(r->user) : NULL;
    rc.db = r->db;
    rc.timeout_ms = r->timeout_ms;
    rc.channel = str_join(rc.prefix ? rc.prefix : "", "admin");
    rc.hash = str_join(rc.prefix ? rc.prefix : "", "admin:overrides");
    if (!rc.prefix || !rc.channel || !rc.hash || (r->password && !rc.password)) {
        log_error("redis: out of memory; admin replication off");
        settings_free();
        return;
    }
    if (!rc.id[0]) {
        char host[64] = "";
        uint16_t rnd = 0;
        gethostname(host, sizeof(host) - 1);
        random_bytes(&rnd, sizeof(rnd));
        snprintf(rc.id, sizeof(rc.id), "%s:%ld:%04x", host[0] ? host : "tether", (long)getpid(),
                 rnd);
    }
    rc.on = true;
    /* A new primary after an outage: "restored" when it comes up. */
    rc.down_logged = was_on && (rc.down_logged || was_up || !rc.known);
    rc.backoff_ms = BACKOFF_MIN_MS;
    if (rc.known)
        rc_connect();
    stats_push();
}

void
redis_control_stop(void)
{
    redis_ha_stop();
    redis_queue_clear();
    rc_disconnect();
    for (uint32_t i = 0; i < rc.npending; i++) {
        free(rc.pending[i].field);
        free(rc.pending[i].line);
    }
    rc.npending = 0;
    settings_free();
    rc.on = false;
    stats_push();
}

/* A command of another module on the control connection (redis_load.c). */
struct control_call {
    void (*fn)(void *ctx, const void *reply);
    void *ctx;
};

static void
control_call_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct control_call *c = priv;
    if (ac == rc.cmd && r) {
        rc.inflight--;
        rc.progress_ms = time_mono_ms();
    }
    c->fn(c->ctx, ac == rc.cmd ? r : NULL);
    free(c);
}

int
redis_control_command(void (*fn)(void *ctx, const void *reply), void *ctx, int argc,
                      const char **argv, const size_t *lens)
{
    struct control_call *c;
    if (!rc.on || !rc.up || !rc.cmd || !(c = malloc(sizeof(*c))))
        return -1;
    c->fn = fn;
    c->ctx = ctx;
    if (redisAsyncCommandArgv(rc.cmd, control_call_cb, c, argc, argv, lens) != REDIS_OK) {
        free(c);
        return -1;
    }
    if (rc.inflight++ == 0)
        rc.progress_ms = time_mono_ms();
    return 0;
}

int
redis_admin_publish(const char *line)
{
    char field[FIELD_MAX];
    uint32_t i;
    if (!rc.on || field_of(line, field, sizeof(field)) < 0)
        return 1;
    if (rc.up && rc.cmd) {
        if (rc.syncing)
            touched_add(field); /* newer than the HGETALL answer on its way */
        send_change(field, line);
        return 0;
    }
    /* Keep the latest line per field for when Redis is back. */
    for (i = 0; i < rc.npending && strcmp(rc.pending[i].field, field) != 0; i++)
        ;
    if (i == PENDING_MAX) {
        log_warn("redis: too many admin changes waiting for Redis; \"%s\" stays local", line);
        redis_queue_count_admin(false);
        return -1;
    }
    char *f = strdup(field), *l = strdup(line);
    if (!f || !l) {
        free(f);
        free(l);
        return -1;
    }
    if (i < rc.npending) {
        free(rc.pending[i].field);
        free(rc.pending[i].line);
    } else {
        rc.npending++;
    }
    rc.pending[i] = (struct pending){f, l};
    redis_queue_count_admin(true);
    return -1;
}
