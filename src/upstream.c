/* SPDX-License-Identifier: MIT */
/* Runtime registry of servers and regions (state that outlives generations) and
 * lookups inside an upstream. */
#include "config.h"

#include <tether/balance.h>
#include <tether/strmap.h>
#include <tether/upstream.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The registry is touched only when generations are built or freed and when
 * tunnels start and end (refs), never per request: a mutex is enough. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct server_rt **servers; /* by slot; NULL for free slots */
static uint32_t nslots;
static struct strmap by_key; /* key -> struct server_rt, the live slots */
static struct region_rt **regions;
static uint32_t nregions;

struct server_rt *
server_rt_find(const char *key)
{
    struct server_rt *found = NULL;
    pthread_mutex_lock(&reg_lock);
    found = strmap_get(&by_key, key);
    pthread_mutex_unlock(&reg_lock);
    return found;
}

static struct server_rt *rt_get(const char *key, bool initial_up, bool unchecked);

struct server_rt *
server_rt_get(const char *key, bool initial_up)
{
    return rt_get(key, initial_up, false);
}

struct server_rt *
server_rt_join(const char *key, const struct conf_health *h, bool at_start)
{
    if (!h->enabled)
        return rt_get(key, true, false);
    if (at_start)
        return rt_get(key, h->initial_up, false);
    return rt_get(key, false, true);
}

/* A free slot of the registry (grown by one when none is), or UINT32_MAX. */
static uint32_t
free_slot(void)
{
    for (uint32_t i = 0; i < nslots; i++)
        if (!servers[i])
            return i;
    struct server_rt **n = realloc(servers, sizeof(*n) * (nslots + 1));
    if (!n)
        return UINT32_MAX;
    servers = n;
    servers[nslots] = NULL;
    return nslots++;
}

static void
rt_free(struct server_rt *rt)
{
    free(rt->key);
    traffic_counters_free(rt->t);
    free(rt);
}

static struct server_rt *
rt_get(const char *key, bool initial_up, bool unchecked)
{
    pthread_mutex_lock(&reg_lock);
    struct server_rt *rt = strmap_get(&by_key, key);
    if (rt) {
        atomic_fetch_add(&rt->refs, 1);
        goto out;
    }
    uint32_t slot = free_slot();
    if (slot == UINT32_MAX || !(rt = aligned_alloc(CACHELINE, sizeof(*rt))))
        goto out;
    memset(rt, 0, sizeof(*rt));
    rt->key = strdup(key);
    rt->t = traffic_counters_new();
    if (!rt->key || !rt->t || !strmap_put(&by_key, rt->key, rt)) {
        rt_free(rt);
        rt = NULL;
        goto out;
    }
    atomic_init(&rt->refs, 1);
    atomic_init(&rt->weight_admin, -1);
    atomic_init(&rt->rep_active, -1);
    atomic_init(&rt->rep_max, -1);
    atomic_init(&rt->max_admin, -1);
    atomic_init(&rt->health, initial_up ? HEALTH_UP : HEALTH_DOWN);
    atomic_init(&rt->hc_unchecked, unchecked);
    atomic_init(&rt->usable_since_ms, 0);
    rt->slot = slot;
    servers[slot] = rt;
out:
    pthread_mutex_unlock(&reg_lock);
    return rt;
}

void
server_rt_ref(struct server_rt *rt)
{
    atomic_fetch_add(&rt->refs, 1);
}

void
server_rt_unref(struct server_rt *rt)
{
    if (!rt)
        return;
    /* Decrement under the lock, so a concurrent get cannot revive an entry that
     * is being freed. Unrefs are rare (generation retired, tunnel closed). */
    pthread_mutex_lock(&reg_lock);
    if (atomic_fetch_sub(&rt->refs, 1) == 1) {
        servers[rt->slot] = NULL;
        strmap_del(&by_key, rt->key);
        pthread_mutex_unlock(&reg_lock);
        rt_free(rt);
        return;
    }
    pthread_mutex_unlock(&reg_lock);
}

uint32_t
server_rt_slots(void)
{
    uint32_t n;
    pthread_mutex_lock(&reg_lock);
    n = nslots;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

struct region_rt *
region_rt_get(const char *key)
{
    struct region_rt *rt = NULL;
    pthread_mutex_lock(&reg_lock);
    for (uint32_t i = 0; i < nregions; i++) {
        if (strcmp(regions[i]->key, key) == 0) {
            rt = regions[i];
            atomic_fetch_add(&rt->refs, 1);
            goto out;
        }
    }
    struct region_rt **n = realloc(regions, sizeof(*n) * (nregions + 1));
    if (!n)
        goto out;
    regions = n;
    rt = calloc(1, sizeof(*rt));
    if (!rt || !(rt->key = strdup(key))) {
        free(rt);
        rt = NULL;
        goto out;
    }
    atomic_init(&rt->refs, 1);
    atomic_init(&rt->weight_admin, -1);
    regions[nregions++] = rt;
out:
    pthread_mutex_unlock(&reg_lock);
    return rt;
}

void
region_rt_unref(struct region_rt *rt)
{
    if (!rt)
        return;
    pthread_mutex_lock(&reg_lock);
    if (atomic_fetch_sub(&rt->refs, 1) == 1) {
        for (uint32_t i = 0; i < nregions; i++) {
            if (regions[i] == rt) {
                regions[i] = regions[--nregions];
                break;
            }
        }
        free(rt->key);
        free(rt);
    }
    pthread_mutex_unlock(&reg_lock);
}

void
server_release(struct server *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    server_rt_unref(s->rt);
    free(s->own.name);
    free(s->own.region_name);
    free(s);
}

void
members_ref(struct members *m)
{
    atomic_fetch_add(&m->refs, 1);
}

void
members_unref(struct members *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    for (uint32_t i = 0; i < m->nservers; i++)
        server_release(m->servers[i]);
    free(m);
}

struct server *
upstream_server_by_id(const struct upstream *u, uint64_t cookie_id)
{
    const struct members *m = upstream_members(u);
    uint32_t lo = 0, hi = m->nservers;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (m->id_sorted[mid] < cookie_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->nservers && m->id_sorted[lo] == cookie_id)
        return m->servers[m->id_index[lo]];
    return NULL;
}

struct server *
upstream_server_by_name(const struct upstream *u, const char *name)
{
    const struct members *m = upstream_members(u);
    for (uint32_t i = 0; i < m->nservers; i++)
        if (strcmp(m->servers[i]->conf->name, name) == 0)
            return m->servers[i];
    return NULL;
}

struct region *
upstream_region_by_name(const struct upstream *u, const char *name)
{
    for (uint32_t i = 0; i < u->nregions; i++)
        if (strcmp(u->regions[i].conf->name, name) == 0)
            return &u->regions[i];
    return NULL;
}

const char *
srv_admin_name(unsigned admin)
{
    switch (admin) {
    case SRV_READY:
        return "ready";
    case SRV_DRAIN:
        return "drain";
    case SRV_MAINT:
        return "maint";
    default:
        return "?";
    }
}

const char *
srv_source_name(unsigned source)
{
    switch (source) {
    case SRV_SRC_CONFIG:
        return "config";
    case SRV_SRC_DNS:
        return "dns";
    case SRV_SRC_ADMIN:
        return "admin";
    default:
        return "?";
    }
}
