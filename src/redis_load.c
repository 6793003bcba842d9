/* SPDX-License-Identifier: MIT */
/* Session placements shared by replicas through Redis, so two replicas do not
 * both fill the last free slots of one pod. Each replica counts what it places
 * in one hash per upstream, PREFIX "placed:" UPSTREAM, field "SERVER|REPLICA"
 * (HINCRBY, the hash's expiry renewed by every write); the control tick reads
 * the hash and sums the other replicas' fields per server (server_rt.others).
 * session_load.h counts the others' placements since the figure it uses was
 * taken, like its own. */
#include "config.h"

#include <tether/balance.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/redis.h>
#include <tether/session_load.h>
#include <tether/worker.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"

/* The hash outlives its last write by this long (quiet upstreams clean up). */
#define PLACED_TTL_MS "600000"

static char replica[24]; /* this process's field suffix */
static pthread_once_t replica_once = PTHREAD_ONCE_INIT;
static uint32_t refreshing; /* HGETALL answers awaited (control thread) */

static void
replica_init(void)
{
    uint64_t r = 0;
    random_bytes(&r, sizeof(r));
    snprintf(replica, sizeof(replica), "%016llx", (unsigned long long)r);
}

void
redis_load_placed(struct worker *w, const struct server *s, int delta)
{
    struct redis_client *rc = redis_client_usable(w);
    char key[REDIS_KEY_MAX], field[256];
    if (!rc)
        return;
    pthread_once(&replica_once, replica_init);
    int kn = snprintf(key, sizeof(key), "%splaced:%s", rc->prefix, s->up->conf->name);
    int fn = snprintf(field, sizeof(field), "%s|%s", s->conf->name, replica);
    if (kn <= 0 || (size_t)kn >= sizeof(key) || fn <= 0 || (size_t)fn >= sizeof(field))
        return;
    const char *by = delta < 0 ? "-1" : "1";
    const char *incr[4] = {"HINCRBY", key, field, by};
    size_t incr_len[4] = {7, (size_t)kn, (size_t)fn, strlen(by)};
    const char *exp[3] = {"PEXPIRE", key, PLACED_TTL_MS};
    size_t exp_len[3] = {7, (size_t)kn, strlen(PLACED_TTL_MS)};
    if (redis_send_forget(rc, 4, incr, incr_len) == 0)
        redis_send_forget(rc, 3, exp, exp_len);
}

/* The upstreams whose servers' session load matters. */
static bool
places_sessions(const struct upstream *u)
{
    const struct conf_upstream *c = u->conf;
    if (c->balance == BALANCE_LEAST_SESSIONS || c->max_sessions || c->hash_balance_pct)
        return true;
    const struct members *m = upstream_members(u);
    for (uint32_t i = 0; i < m->nservers; i++)
        if (m->servers[i]->conf->max_sessions)
            return true;
    return false;
}

/* One upstream's hash: sum the other replicas' counts per server. <ctx> is the
 * upstream's name (the generation may be gone by the answer). */
static void
refresh_cb(void *ctx, const void *reply)
{
    const redisReply *r = reply;
    char *up = ctx, key[512];
    struct gen *g = atomic_load(&gen_current);
    refreshing--;
    if (!r || r->type != REDIS_REPLY_ARRAY || !g) {
        free(up);
        return;
    }
    int u = conf_upstream_find(g->conf, up);
    struct upstream *ups = u >= 0 ? &g->upstreams[u] : NULL;
    /* Indices are those of the plan's membership, which upstream_server_by_name
     * searches too (the control thread publishes plans: it cannot change
     * between the two). */
    const struct members *m = ups ? upstream_members(ups) : NULL;
    uint64_t *sum = m ? calloc(m->nservers ? m->nservers : 1, sizeof(*sum)) : NULL;
    for (size_t i = 0; sum && i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        const char *bar = memchr(f->str, '|', f->len);
        if (!bar || (size_t)(f->str + f->len - bar - 1) != strlen(replica) ||
            memcmp(bar + 1, replica, strlen(replica)) == 0)
            continue; /* not a placement field, or ours */
        int n = snprintf(key, sizeof(key), "%.*s", (int)(bar - f->str), f->str);
        uint64_t c;
        struct server *s = n > 0 ? upstream_server_by_name(ups, key) : NULL;
        if (s && parse_u64(v->str, v->len, &c) == 0)
            sum[s->index] += c;
    }
    for (uint32_t i = 0; sum && i < m->nservers; i++)
        atomic_store(&m->servers[i]->rt->others,
                     (uint32_t)(sum[i] > UINT32_MAX ? UINT32_MAX : sum[i]));
    free(sum);
    free(up);
}

void
redis_load_refresh(struct gen *g)
{
    char key[REDIS_KEY_MAX];
    if (!g || !g->conf->redis.enabled || refreshing)
        return;
    pthread_once(&replica_once, replica_init);
    const char *prefix = g->conf->redis.prefix ? g->conf->redis.prefix : "";
    for (uint32_t i = 0; i < g->nupstreams; i++) {
        struct upstream *u = &g->upstreams[i];
        if (!places_sessions(u))
            continue;
        int kn = snprintf(key, sizeof(key), "%splaced:%s", prefix, u->conf->name);
        char *name = strdup(u->conf->name);
        if (kn <= 0 || (size_t)kn >= sizeof(key) || !name) {
            free(name);
            continue;
        }
        const char *argv[2] = {"HGETALL", key};
        size_t lens[2] = {7, (size_t)kn};
        if (redis_control_command(refresh_cb, name, 2, argv, lens) < 0) {
            free(name);
            return; /* not up: the last figures stay */
        }
        refreshing++;
    }
}
