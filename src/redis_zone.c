/* SPDX-License-Identifier: MIT */
/* Global rate-limit zones: one atomic GCRA decision per request in a Redis
 * script (the server's clock, so replicas agree), and the zone's
 * on_redis_error policy when Redis cannot answer in time. */
#include "config.h"

#include <tether/gcra.h>
#include <tether/log.h>
#include <tether/ratelimit.h>
#include <tether/redis.h>
#include <tether/worker.h>

#include "redis_int.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* gcra_decide() in microseconds of the Redis server's clock (TIME), so every
 * replica decides on one timeline whatever its own clock says. Same admitted
 * count as local zones: burst + 1 at once, then one per T. Lua numbers are
 * doubles: microsecond timestamps (~2^51) stay exact. The key expires when the
 * state would be fresh again anyway, so idle keys cost Redis nothing.
 * KEYS[1] state key; ARGV[1] T (us); ARGV[2] tolerance = burst * T (us).
 * Returns {allowed, remaining, retry_after_us, reset_us, delay_us}. */
const char redis_gcra_script[] =
    "if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local T = tonumber(ARGV[1])\n"
    "local tol = tonumber(ARGV[2])\n"
    "local base = tonumber(redis.call('GET', KEYS[1]) or 0) or 0\n"
    "if base < now then base = now end\n"
    "local ahead = base - now\n"
    "if ahead <= tol then\n"
    "  local tat = base + T\n"
    "  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX',\n"
    "             math.ceil((tat - now) / 1000))\n"
    "  return {1, math.floor((tol - ahead) / T), 0, ahead + T, ahead}\n"
    "end\n"
    "return {0, 0, ahead - tol, ahead, 0}\n";

/* ---- fallback state per zone, for one log line per change ---- */

#define ZSTATE_MAX 64

static pthread_mutex_t zs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[64]; /* zone name (truncated) */
    bool down;     /* deciding without Redis */
} zs[ZSTATE_MAX];
static uint32_t nzs;
/* Zones in fallback: while 0 the success path takes no lock. */
static _Atomic uint32_t zs_down;

static int
zs_find(const char *name)
{
    for (uint32_t i = 0; i < nzs; i++)
        if (strncmp(zs[i].name, name, sizeof(zs[i].name) - 1) == 0)
            return (int)i;
    if (nzs == ZSTATE_MAX)
        return -1;
    snprintf(zs[nzs].name, sizeof(zs[nzs].name), "%s", name);
    zs[nzs].down = false;
    return (int)nzs++;
}

static const char *
policy_text(unsigned policy)
{
    return policy == ON_REDIS_ALLOW  ? "allowing every request"
           : policy == ON_REDIS_DENY ? "denying every request"
                                     : "falling back to the local zone";
}

static void
zone_down(const struct conf_zone *cz, const char *why)
{
    pthread_mutex_lock(&zs_lock);
    int i = zs_find(cz->name);
    if (i >= 0 && !zs[i].down) {
        zs[i].down = true;
        atomic_fetch_add(&zs_down, 1);
        log_warn("global zone %s: Redis unreachable (%s), %s", cz->name, why,
                 policy_text(cz->on_redis_error));
    }
    pthread_mutex_unlock(&zs_lock);
}

static void
zone_back(const struct conf_zone *cz)
{
    if (atomic_load_explicit(&zs_down, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&zs_lock);
    int i = zs_find(cz->name);
    if (i >= 0 && zs[i].down) {
        zs[i].down = false;
        atomic_fetch_sub(&zs_down, 1);
        log_notice("global zone %s: Redis back, deciding in Redis again", cz->name);
    }
    pthread_mutex_unlock(&zs_lock);
}

/* ---- decisions ---- */

static uint32_t
zone_limit(const struct conf_zone *cz)
{
    return cz->burst == UINT32_MAX ? UINT32_MAX : cz->burst + 1;
}

static uint32_t
ceil_s_us(long long us)
{
    if (us <= 0)
        return 0;
    unsigned long long s = ((unsigned long long)us + 999999) / 1000000;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* The zone's policy for a decision Redis did not make. */
static void
fallback_decide(struct redis_op *op, const struct conf_zone *cz, const char *why,
                struct rl_decision *d)
{
    zone_down(cz, why);
    redis_count_fallback(op->rc);
    if (cz->on_redis_error == ON_REDIS_ALLOW) {
        *d = (struct rl_decision){.allowed = true, .limit = zone_limit(cz)};
        rl_zone_count_allowed(op->zone);
    } else if (cz->on_redis_error == ON_REDIS_DENY) {
        *d = (struct rl_decision){.limit = zone_limit(cz), .retry_after_s = 1, .reset_s = 1};
        rl_zone_count_limited(op->zone);
    } else {
        rl_check(op->zone, op->key, op->klen, time_mono_ns(), d);
    }
}

/* {allowed, remaining, retry_after_us, reset_us, delay_us} -> <d>. */
static bool
reply_decision(const redisReply *r, const struct conf_zone *cz, struct rl_decision *d)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 5)
        return false;
    long long v[5];
    for (int i = 0; i < 5; i++) {
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
        v[i] = r->element[i]->integer;
    }
    *d = (struct rl_decision){.allowed = v[0] == 1, .limit = zone_limit(cz)};
    d->remaining = v[1] <= 0 ? 0 : v[1] > UINT32_MAX ? UINT32_MAX : (uint32_t)v[1];
    d->reset_s = ceil_s_us(v[3]);
    if (!d->allowed) {
        uint32_t ra = ceil_s_us(v[2]);
        d->retry_after_s = ra ? ra : 1;
        d->remaining = 0;
    } else if (!cz->nodelay && v[4] > 0) {
        d->delay_ns = (uint64_t)v[4] * 1000;
    }
    return true;
}

/* Hand <d> to the owner (which may answer, resume or free itself). */
static void
deliver(struct redis_op *op, const struct rl_decision *d)
{
    struct redis_waiter *wt = op->wt;
    struct rl_zone *z = op->zone;
    redis_op_unlink(op);
    wt->cb->zone(wt->owner, z, d);
}

/* PREFIX "rl:" ZONE ":" KEY into <out> (REDIS_KEY_MAX, checked by
 * redis_zone_check); its length. */
static size_t
zone_key(const struct redis_client *rc, const char *zname, const char *k, size_t klen, char *out)
{
    size_t nl = strlen(zname), kl = 0;
    memcpy(out, rc->prefix, rc->prefix_len);
    kl += rc->prefix_len;
    memcpy(out + kl, "rl:", 3);
    kl += 3;
    memcpy(out + kl, zname, nl);
    kl += nl;
    out[kl++] = ':';
    memcpy(out + kl, k, klen);
    return kl + klen;
}

/* EVALSHA (or EVAL after NOSCRIPT) of the script for <op>: the first send
 * (<start>) links the op to its request. */
static int
zone_send(struct redis_op *op, bool eval, bool start)
{
    struct redis_client *rc = op->rc;
    const struct conf_zone *cz = rl_zone_conf(op->zone);
    char key[REDIS_KEY_MAX], targ[24], tolarg[24];
    size_t kl = zone_key(rc, cz->name, op->key, op->klen, key);

    /* The local zone's parameters, in microseconds. */
    struct gcra_params gp;
    gcra_params_init(&gp, cz->rate, cz->burst);
    uint64_t T = (gp.interval_ns + 500) / 1000;
    if (T == 0)
        T = 1;
    uint64_t tol = cz->burst && T > (UINT64_MAX >> 12) / cz->burst ? (UINT64_MAX >> 12)
                                                                   : (uint64_t)cz->burst * T;
    const char *argv[6] = {
        eval ? "EVAL" : "EVALSHA", eval ? redis_gcra_script : rc->sha, "1", key, targ, tolarg};
    size_t lens[6] = {eval ? 4u : 7u,
                      eval ? strlen(redis_gcra_script) : strlen(rc->sha),
                      1,
                      kl,
                      (size_t)snprintf(targ, sizeof(targ), "%llu", (unsigned long long)T),
                      (size_t)snprintf(tolarg, sizeof(tolarg), "%llu", (unsigned long long)tol)};
    return start ? redis_op_start(op, 6, argv, lens) : redis_op_resend(op, 6, argv, lens);
}

int
redis_zone_check(struct worker *w, struct redis_waiter *wt, struct rl_zone *z, const char *key,
                 size_t klen)
{
    const struct conf_zone *cz = rl_zone_conf(z);
    struct redis_client *rc = redis_client_usable(w);
    if (!rc) {
        /* request.c applies the policy; the change is ours to report. */
        struct redis_client *any = w->redis;
        zone_down(cz, any ? "connection down" : "no redis configured");
        if (any)
            redis_count_fallback(any);
        return -1;
    }
    klen = MIN(klen, RL_KEY_MAX);
    if (rc->prefix_len + 4 + strlen(cz->name) + klen > REDIS_KEY_MAX) {
        zone_down(cz, "key too long");
        redis_count_fallback(rc);
        return -1;
    }
    struct redis_op *op = redis_op_get(rc, wt, ROP_ZONE);
    if (!op)
        return -1;
    op->zone = z;
    op->klen = (uint16_t)klen;
    memcpy(op->key, key, klen);
    if (zone_send(op, false, true) < 0) {
        /* redis_op_start gave the op back */
        zone_down(cz, "command not sent");
        redis_count_fallback(rc);
        return -1;
    }
    return 0;
}

bool
redis_zone_reply(struct redis_op *op, const redisReply *r)
{
    const struct conf_zone *cz = rl_zone_conf(op->zone);
    struct rl_decision d;
    /* The script cache was flushed: EVAL once (it caches the script again). */
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !op->resent) {
        op->resent = true;
        if (zone_send(op, true, false) == 0)
            return true;
    }
    if (reply_decision(r, cz, &d)) {
        zone_back(cz);
        /* Redis decided: count it here (local decisions count in rl_check). */
        if (d.allowed)
            rl_zone_count_allowed(op->zone);
        else
            rl_zone_count_limited(op->zone);
    } else {
        char why[128];
        snprintf(why, sizeof(why), "%s",
                 !r                             ? "connection lost"
                 : r->type == REDIS_REPLY_ERROR ? r->str
                                                : "unexpected reply");
        fallback_decide(op, cz, why, &d);
    }
    deliver(op, &d);
    return false;
}

void
redis_zone_timeout(struct redis_op *op)
{
    struct rl_decision d;
    if (!op->wt)
        return;
    fallback_decide(op, rl_zone_conf(op->zone), "timeout", &d);
    deliver(op, &d);
}
