/* SPDX-License-Identifier: MIT */
/* Session load per server: the pod's report read from its health answer, the
 * placements tether made since that check was sent, its own count of live
 * sessions when the pod does not report, and the pod-driven drain and degraded
 * states. Workers only add placements; everything else is the control thread. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/gen.h>
#include <tether/health_report.h>
#include <tether/log.h>
#include <tether/session.h>
#include <tether/session_load.h>
#include <tether/session_store.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tether's own count of live sessions is taken at most this often. */
#define OWN_COUNT_MS 1000

void
session_placed(struct server *s, int delta)
{
    atomic_fetch_add_explicit(&s->rt->placed, (uint32_t)delta, memory_order_relaxed);
}

void
session_settled(struct server *s)
{
    atomic_fetch_add_explicit(&s->rt->settled, 1, memory_order_relaxed);
}

void
session_load_check_sent(struct server_rt *rt)
{
    /* Placements not yet settled may reach the pod after it answers: they
     * stay counted on top of the report (briefly twice if it has them). */
    atomic_store_explicit(&rt->placed_at_send, atomic_load(&rt->settled), memory_order_relaxed);
    atomic_store_explicit(&rt->others_at_send, atomic_load(&rt->others), memory_order_relaxed);
}

void
session_load_admin_state(struct server_rt *rt, unsigned state)
{
    atomic_store(&rt->admin_set, state != SRV_READY);
    atomic_store(&rt->pod_drain, 0);
}

/* The pod asks for drain (or no longer does): follow it unless an operator set
 * the state. Returns true on a change. */
static bool
pod_drain_apply(struct server_rt *rt, bool drain)
{
    if (atomic_load(&rt->admin_set))
        return false;
    if (drain && !atomic_load(&rt->pod_drain)) {
        uint8_t ready = SRV_READY;
        if (!atomic_compare_exchange_strong(&rt->admin, &ready, SRV_DRAIN))
            return false;
        atomic_store(&rt->pod_drain, 1);
        log_notice("health: server %s reports draining: no new sessions, pinned ones stay",
                   rt->key);
        return true;
    }
    if (!drain && atomic_load(&rt->pod_drain)) {
        uint8_t dr = SRV_DRAIN;
        atomic_store(&rt->pod_drain, 0);
        if (!atomic_compare_exchange_strong(&rt->admin, &dr, SRV_READY))
            return false;
        atomic_store(&rt->usable_since_ms, time_mono_ms()); /* slow start */
        log_notice("health: server %s no longer reports draining: takes new sessions", rt->key);
        return true;
    }
    return false;
}

bool
session_load_report(const struct upstream *u, struct server_rt *rt, const char *body, size_t n,
                    unsigned status)
{
    const struct conf_health *h = &u->conf->health;
    struct health_report r;
    size_t off = 0;
    (void)status;

    if (!h->report)
        return false;
    struct hrep_fields f = {h->report_status, strlen(h->report_status),
                            h->report_active, strlen(h->report_active),
                            h->report_max,    strlen(h->report_max)};
    int rc = health_report_parse(body, n, &f, &r, &off);
    if (rc < 0) {
        /* Not a failure of the check: the last figures stay. */
        uint64_t k = atomic_fetch_add(&rt->reports_bad, 1);
        if (k == 0 || (k & (k + 1)) == 0) /* 1st, 2nd, 4th, 8th, ... */
            log_info("health: %s sent no usable load report (%s at byte %zu); keeping its last "
                     "figures (%llu such reports)",
                     rt->key, health_report_strerror(rc), off, (unsigned long long)k + 1);
        return false;
    }
    atomic_fetch_add(&rt->reports_ok, 1);
    atomic_store(&rt->placed_base, rt->placed_at_send);
    atomic_store(&rt->others_base, rt->others_at_send);
    atomic_store(&rt->rep_active, (int32_t)r.active);
    atomic_store(&rt->rep_max, r.has_max ? (int32_t)r.max : -1);
    uint8_t was = atomic_exchange(&rt->rep_status, r.status);
    bool changed = pod_drain_apply(rt, r.status == HREP_DRAINING);
    if ((was == HREP_DEGRADED) != (r.status == HREP_DEGRADED)) {
        log_notice("health: server %s reports %s", rt->key,
                   r.status == HREP_DEGRADED ? "degraded: its weight is scaled by degraded_weight"
                                             : "no longer degraded: full weight");
        changed = true;
    }
    return changed;
}

/* ---- tether's own count, for servers whose pods do not report ---- */

struct own_count {
    struct gen *g;
    int32_t *by_slot; /* live learned sessions per server_rt slot */
    uint32_t nslots;
};

static void
own_count_one(void *ctx, uint64_t server_id)
{
    struct own_count *oc = ctx;
    for (uint32_t i = 0; i < oc->g->nupstreams; i++) {
        const struct server *s = upstream_server_by_id(&oc->g->upstreams[i], server_id);
        if (s && s->rt->slot < oc->nslots)
            oc->by_slot[s->rt->slot]++;
    }
}

/* An upstream whose load tether must count itself: it places by sessions or
 * limits them, and its pods do not report. */
static bool
needs_own_count(const struct upstream *u)
{
    if (u->conf->health.enabled && u->conf->health.report)
        return false;
    if (u->conf->balance == BALANCE_LEAST_SESSIONS || u->conf->max_sessions ||
        u->conf->hash_balance_pct)
        return true;
    for (uint32_t i = 0; i < u->members->nservers; i++)
        if (u->members->servers[i]->conf->max_sessions ||
            atomic_load(&u->members->servers[i]->rt->max_admin) >= 0)
            return true;
    return false;
}

/* hash_balance_factor: the load the bound is taken from, every tick. */
static void
hash_load_sum(struct upstream *u, uint64_t now_ms)
{
    uint64_t total = 0;
    atomic_store(&u->hash_placed_tick, atomic_load(&u->hash_placed));
    for (uint32_t j = 0; j < u->members->nservers; j++) {
        const struct server *s = u->members->servers[j];
        if (server_weight(s) <= 0 || !server_usable_pinned(s, now_ms))
            continue;
        total += server_sessions(s);
    }
    atomic_store(&u->hash_load_total, (uint32_t)(total > UINT32_MAX ? UINT32_MAX : total));
}

/* Upstreams that no longer read reports (reload) forget the last ones. */
static void
reports_forget(struct gen *g)
{
    for (uint32_t i = 0; i < g->nupstreams; i++) {
        struct upstream *u = &g->upstreams[i];
        if (u->conf->health.enabled && u->conf->health.report)
            continue;
        for (uint32_t j = 0; j < u->members->nservers; j++) {
            struct server_rt *rt = u->members->servers[j]->rt;
            if (atomic_load(&rt->rep_active) < 0 && !atomic_load(&rt->rep_status) &&
                !atomic_load(&rt->pod_drain))
                continue;
            atomic_store(&rt->rep_active, -1);
            atomic_store(&rt->rep_max, -1);
            atomic_store(&rt->rep_status, HREP_NONE);
            pod_drain_apply(rt, false);
            atomic_store(&u->plan_dirty, 1);
        }
    }
}

/* Count the live sessions of table <t> per server of the upstreams that
 * need it, and publish them with the base they were counted against. */
static void
own_count_run(struct gen *g, struct session_table *t, uint64_t now_ms)
{
    struct own_count oc = {g, NULL, server_rt_slots()};
    if (!(oc.by_slot = calloc(oc.nslots ? oc.nslots : 1, sizeof(*oc.by_slot))))
        return;
    /* The base (settled placements) is taken before the count: a session
     * placed during the count, or not yet learned, may be counted twice (once
     * here, once as placed since), never forgotten. */
    for (uint32_t i = 0; i < g->nupstreams; i++) {
        struct upstream *u = &g->upstreams[i];
        for (uint32_t j = 0; needs_own_count(u) && j < u->members->nservers; j++) {
            u->members->servers[j]->rt->placed_at_send =
                atomic_load(&u->members->servers[j]->rt->settled);
            u->members->servers[j]->rt->others_at_send =
                atomic_load(&u->members->servers[j]->rt->others);
        }
    }
    session_table_foreach(t, now_ms, own_count_one, &oc);
    for (uint32_t i = 0; i < g->nupstreams; i++) {
        struct upstream *u = &g->upstreams[i];
        if (!needs_own_count(u))
            continue;
        for (uint32_t j = 0; j < u->members->nservers; j++) {
            struct server_rt *rt = u->members->servers[j]->rt;
            atomic_store(&rt->own_live, oc.by_slot[rt->slot]);
            atomic_store(&rt->placed_base, rt->placed_at_send);
            atomic_store(&rt->others_base, rt->others_at_send);
        }
    }
    free(oc.by_slot);
}

void
session_load_tick(struct gen *g, uint64_t now_ms)
{
    static uint64_t last_ms;
    struct session_table *t = session_store_table();
    bool any = false;

    for (uint32_t i = 0; g && i < g->nupstreams; i++)
        if (g->upstreams[i].conf->hash_balance_pct)
            hash_load_sum(&g->upstreams[i], now_ms);
    if (!g || now_ms < last_ms + OWN_COUNT_MS)
        return;
    last_ms = now_ms;
    reports_forget(g);
    if (!t)
        return;
    for (uint32_t i = 0; i < g->nupstreams && !any; i++)
        any = needs_own_count(&g->upstreams[i]);
    if (any)
        own_count_run(g, t, now_ms);
}

/* ---- shed and spill counters ----
 * A small table of named counters, found by a lock-free scan and added under a
 * lock: shedding and spilling are rare next to placing, and the names (upstream
 * and region pairs) are few and fixed by the config. */

#define COUNTERS_MAX 256

struct named_counter {
    char name[3][64];   /* upstream, from region, to region ("" for shed) */
    _Atomic uint64_t n; /* events */
};

static struct named_counter counters[COUNTERS_MAX];
static _Atomic uint32_t ncounters;
static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;

static void
counter_add(const char *up, const char *from, const char *to)
{
    uint32_t n = atomic_load_explicit(&ncounters, memory_order_acquire);
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < n; i++) {
            struct named_counter *c = &counters[i];
            if (strcmp(c->name[0], up) == 0 && strcmp(c->name[1], from) == 0 &&
                strcmp(c->name[2], to) == 0) {
                atomic_fetch_add_explicit(&c->n, 1, memory_order_relaxed);
                return;
            }
        }
        if (pass == 1)
            break;
        pthread_mutex_lock(&counters_lock);
        uint32_t now = atomic_load(&ncounters);
        if (now == n && n < COUNTERS_MAX) {
            snprintf(counters[n].name[0], sizeof(counters[n].name[0]), "%s", up);
            snprintf(counters[n].name[1], sizeof(counters[n].name[1]), "%s", from);
            snprintf(counters[n].name[2], sizeof(counters[n].name[2]), "%s", to);
            atomic_store_explicit(&ncounters, n + 1, memory_order_release);
        }
        pthread_mutex_unlock(&counters_lock);
        n = atomic_load_explicit(&ncounters, memory_order_acquire);
    }
}

void
session_shed_count(const struct upstream *u)
{
    counter_add(u->conf->name, "", "");
}

void
session_spill_count(const struct upstream *u, const struct region *from, const struct region *to)
{
    counter_add(u->conf->name, from->conf->name, to->conf->name);
}

void
session_counters_each(void (*fn)(void *ctx, const char *upstream, const char *from, const char *to,
                                 uint64_t n),
                      void *ctx)
{
    uint32_t n = atomic_load_explicit(&ncounters, memory_order_acquire);
    for (uint32_t i = 0; i < n; i++) {
        const struct named_counter *c = &counters[i];
        fn(ctx, c->name[0], c->name[1][0] ? c->name[1] : NULL, c->name[2][0] ? c->name[2] : NULL,
           atomic_load_explicit(&c->n, memory_order_relaxed));
    }
}
