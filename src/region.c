/* SPDX-License-Identifier: MIT */
/* Plan building: tiers, regions scaled by their healthy fraction, strict tiers
 * (the next tier only when the better one has no healthy server; Envoy-style
 * overprovisioning on request), spill regions, per-tier panic, slow start.
 * Control thread only; doc/failover.md has the formulas and worked examples. */
#include "config.h"

#include <tether/balance.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Weight fraction of a server that has just come back (slow start floor). */
#define SLOW_START_MIN 0.05
/* Bound on schedule entries x servers for one region's smooth WRR build, which
 * is O(entries x servers): large regions get a coarser (shorter) schedule. */
#define WRR_WORK_MAX (4u << 20)
#define WRR_LEN_MAX  65536u
#define WRR_LEN_MIN  1024u
/* Loads are compared with a little slack against rounding. */
#define EPS 1e-9

/* Fraction of full weight a server gets while slow start is in progress. */
static double
slow_start_factor(const struct server *s, uint64_t slow_start_ms, uint64_t now_ms, bool *ramping)
{
    uint64_t since = atomic_load(&s->rt->usable_since_ms);
    if (!slow_start_ms || since == 0 || now_ms >= since + slow_start_ms)
        return 1.0;
    *ramping = true;
    double f = (double)(now_ms - since) / (double)slow_start_ms;
    return f < SLOW_START_MIN ? SLOW_START_MIN : f;
}

/* The consistent-hash table of a plan, shared by consecutive plans of one
 * upstream while its members do not change: slow start and share changes
 * rebuild plans every tick, and a table costs up to ~100 ms to build. */
struct plan_hash {
    _Atomic uint32_t refs;  /* plans using it (freed on the control thread or by gen_free) */
    uint32_t n;             /* members */
    struct chash_member *m; /* the members it was built from */
    struct chash_table *t;
};

static void
plan_hash_unref(struct plan_hash *h)
{
    if (!h || atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    chash_free(h->t);
    free(h->m);
    free(h);
}

void
plan_free(struct lb_plan *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->nregions + p->nspill; i++) {
        free(p->regions[i].servers);
        free(p->regions[i].weights);
        wrr_free(p->regions[i].wrr);
        alias_free(p->regions[i].alias);
    }
    free(p->regions);
    wrr_free(p->region_wrr);
    plan_hash_unref(p->hash_ref);
    members_unref(p->m);
    free(p);
}

/* What plan_build learns about one region. Server weights count, so a region
 * that loses its biggest server loses that share of its capacity. */
struct rinfo {
    uint32_t weight; /* region weight; 0 takes nothing */
    double cap;      /* sum of server weights (servers with weight > 0) */
    double healthy;  /* weights of servers taking new sessions, slow-start scaled */
    double usable;   /* the same without slow start (the panic test) */
    bool ready;      /* some server is ready (not drain/maint): panic may use it */
    double avail;    /* min(1, overprovisioning * healthy / cap); healthy / cap when strict */
};

/* Add region <r> with <share>: its servers that take new sessions, or in a
 * panic tier every ready server (health and ejection ignored). */
static int
plan_add_region(struct lb_plan *p, struct upstream *u, uint32_t r, uint32_t tier, double share,
                const struct rinfo *ri, uint64_t now_ms, bool panic, bool *ramping)
{
    const struct members *m = u->members;
    const struct region_members *rm = &m->regions[r];
    struct plan_region *pr = &p->regions[p->nregions];
    uint32_t n = rm->nservers ? rm->nservers : 1;
    pr->servers = calloc(n, sizeof(uint32_t));
    pr->weights = calloc(n, sizeof(uint32_t));
    if (!pr->servers || !pr->weights) {
        free(pr->servers);
        free(pr->weights);
        memset(pr, 0, sizeof(*pr));
        return -1;
    }
    for (uint32_t i = 0; i < rm->nservers; i++) {
        const struct server *s = m->servers[rm->servers[i]];
        int32_t w = server_weight(s);
        bool take = panic ? !s->leaving && atomic_load(&s->rt->admin) == SRV_READY
                          : server_usable_new(s, now_ms);
        if (w <= 0 || !take)
            continue;
        double f = slow_start_factor(s, u->conf->slow_start_ms, now_ms, ramping);
        uint32_t ew = (uint32_t)lround((double)w * 100.0 * f);
        pr->servers[pr->nservers] = s->index;
        pr->weights[pr->nservers] = ew ? ew : 1;
        pr->nservers++;
    }
    if (pr->nservers == 0) {
        free(pr->servers);
        free(pr->weights);
        memset(pr, 0, sizeof(*pr));
        return 0;
    }
    pr->region = r;
    pr->tier = tier;
    pr->share = share;
    pr->panic = panic;
    pr->availability = ri->avail;
    pr->healthy = ri->cap > 0 ? ri->healthy / ri->cap : 0.0;
    pr->total = rm->nservers;
    uint32_t len = WRR_WORK_MAX / pr->nservers;
    len = len > WRR_LEN_MAX ? WRR_LEN_MAX : len < WRR_LEN_MIN ? WRR_LEN_MIN : len;
    pr->wrr = wrr_build(pr->weights, pr->nservers, len);
    pr->alias = alias_build(pr->weights, pr->nservers);
    p->nregions++; /* counted even on failure, so plan_free releases it */
    if (!pr->wrr || !pr->alias)
        return -1;
    return 0;
}

static bool
members_equal(const struct plan_hash *h, const struct chash_member *m, uint32_t n)
{
    return h && h->n == n && memcmp(h->m, m, n * sizeof(*m)) == 0;
}

/* The consistent-hash table over the servers that may keep pinned sessions in
 * the tiers that take traffic. Weights ignore health, so a server going down
 * moves only its own keys. Reused from <prev> when the members are the same. */
static int
plan_build_hash(struct lb_plan *p, const struct lb_plan *prev, struct upstream *u,
                const bool *tier_used, uint64_t now_ms)
{
    const struct members *ms = u->members;
    struct chash_member *m = calloc(ms->nservers ? ms->nservers : 1, sizeof(*m));
    uint32_t n = 0;
    if (!m)
        return -1;
    for (uint32_t r = 0; r < u->nregions; r++) {
        const struct region *reg = &u->regions[r];
        const struct region_members *rm = &ms->regions[r];
        uint32_t tier = reg->conf->priority;
        int32_t rw = region_weight(reg);
        bool panic = (p->panic_tiers >> tier) & 1u;
        uint64_t sum = 0;
        if (!tier_used[tier] || rw <= 0)
            continue;
        for (uint32_t i = 0; i < rm->nservers; i++) {
            int32_t w = server_weight(ms->servers[rm->servers[i]]);
            sum += w > 0 ? (uint64_t)w : 0;
        }
        for (uint32_t i = 0; i < rm->nservers && sum; i++) {
            const struct server *s = ms->servers[rm->servers[i]];
            int32_t w = server_weight(s);
            bool ok =
                panic ? atomic_load(&s->rt->admin) != SRV_MAINT : server_usable_pinned(s, now_ms);
            if (w <= 0 || !ok)
                continue;
            double share = (double)rw * (double)w / (double)sum;
            uint32_t hw = (uint32_t)lround(share * 100.0);
            m[n].key = s->hash_key;
            m[n].weight = hw ? hw : 1;
            m[n].index = s->index;
            n++;
        }
    }
    if (n == 0) {
        free(m);
        return 0;
    }
    if (prev && members_equal(prev->hash_ref, m, n)) {
        free(m);
        atomic_fetch_add(&prev->hash_ref->refs, 1);
        p->hash_ref = prev->hash_ref;
        p->hash = p->hash_ref->t;
        return 0;
    }
    struct plan_hash *h = calloc(1, sizeof(*h));
    if (!h || !(h->t = chash_build(m, n, 0))) {
        free(h);
        free(m);
        return -1;
    }
    atomic_init(&h->refs, 1);
    h->m = m;
    h->n = n;
    p->hash_ref = h;
    p->hash = h->t;
    return 0;
}

/* Tier loads (Envoy's priority load): each tier takes what its availability
 * allows and the rest spills to the next; when all tiers together cannot carry
 * everything, every tier's load is its availability over their sum. Returns
 * that sum. */
static double
tier_loads(double *load, const double *avail)
{
    double total = 0, remaining = 1.0;
    for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++)
        total += avail[t];
    for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++) {
        if (total >= 1.0 - EPS) {
            load[t] = fmin(remaining, avail[t]);
            remaining -= load[t];
        } else {
            load[t] = total > 0 ? avail[t] / total : 0.0;
        }
    }
    return total;
}

/* Add the regions of tier <t> with its load. */
static int
plan_add_tier(struct lb_plan *p, struct upstream *u, uint32_t t, const struct rinfo *ri,
              uint64_t now_ms, bool *ramping)
{
    bool panic = (p->panic_tiers >> t) & 1u;
    double sum = 0;
    for (uint32_t r = 0; r < u->nregions; r++) {
        const struct rinfo *x = &ri[r];
        if (u->regions[r].conf->priority == t && x->weight && x->cap > 0)
            sum += panic ? (x->ready ? x->weight : 0) : x->weight * x->avail;
    }
    if (sum <= 0)
        return 0;
    for (uint32_t r = 0; r < u->nregions; r++) {
        const struct rinfo *x = &ri[r];
        if (u->regions[r].conf->priority != t || !x->weight || x->cap <= 0)
            continue;
        double part = panic ? (x->ready ? x->weight : 0) : x->weight * x->avail;
        if (part > 0 && plan_add_region(p, u, r, t, p->tier_load[t] * part / sum, x, now_ms, panic,
                                        ramping) < 0)
            return -1;
    }
    return 0;
}

struct lb_plan *
plan_build(struct upstream *u, uint64_t now_ms)
{
    const struct conf_upstream *cu = u->conf;
    const struct lb_plan *prev = atomic_load(&u->plan);
    struct lb_plan *p = calloc(1, sizeof(*p));
    struct rinfo *ri = calloc(u->nregions ? u->nregions : 1, sizeof(*ri));
    double avail[PLAN_MAX_TIERS] = {0}, raw[PLAN_MAX_TIERS] = {0}, wsum[PLAN_MAX_TIERS] = {0};
    bool tier_used[PLAN_MAX_TIERS] = {0}, tier_ready[PLAN_MAX_TIERS] = {0};
    bool ramping = false;

    if (!p || !ri)
        goto fail;
    p->built_ms = now_ms;
    p->m = u->members;
    members_ref(p->m);
    p->regions = calloc(u->nregions ? u->nregions : 1, sizeof(*p->regions));
    if (!p->regions)
        goto fail;

    /* 1. Per region: capacity, healthy capacity, availability. */
    const struct members *m = u->members;
    for (uint32_t r = 0; r < u->nregions; r++) {
        const struct region *reg = &u->regions[r];
        const struct region_members *rm = &m->regions[r];
        struct rinfo *x = &ri[r];
        int32_t rw = region_weight(reg);
        x->weight = rw > 0 ? (uint32_t)rw : 0;
        for (uint32_t i = 0; i < rm->nservers; i++) {
            const struct server *s = m->servers[rm->servers[i]];
            int32_t w = server_weight(s);
            if (w <= 0)
                continue;
            x->cap += w;
            if (!s->leaving && atomic_load(&s->rt->admin) == SRV_READY)
                x->ready = true;
            if (server_usable_new(s, now_ms)) {
                x->usable += w;
                x->healthy += w * slow_start_factor(s, cu->slow_start_ms, now_ms, &ramping);
            }
        }
        double o = cu->overprovisioning > 0 ? cu->overprovisioning : 1.0;
        x->avail = x->cap > 0 ? fmin(1.0, o * x->healthy / x->cap) : 0.0;
        if (x->weight && x->cap > 0) {
            uint32_t t = reg->conf->priority;
            wsum[t] += x->weight;
            avail[t] += x->weight * x->avail;
            raw[t] += x->weight * x->usable / x->cap;
            tier_ready[t] |= x->ready;
        }
    }
    for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++) {
        if (wsum[t] > 0) {
            avail[t] /= wsum[t];
            raw[t] /= wsum[t];
        }
        /* Strict tiers (the default): a tier with any healthy server takes
         * every new session; the next one is a cold standby. */
        if (cu->overprovisioning <= 0)
            avail[t] = avail[t] > 0 ? 1.0 : 0.0;
    }

    /* 2. Tier loads, spill-over, panic. Panic only when the tiers together
     * cannot carry the load: a tier whose usable fraction is below the
     * threshold then sends its load to all its servers, health ignored (the
     * checks may be what is wrong). Threshold 0 never panics: nothing healthy
     * means no server (503) rather than sending to servers known to be down. */
    double total = tier_loads(p->tier_load, avail);
    double thr = (double)cu->panic_threshold_pct / 100.0;
    if (thr > 0 && total >= 1.0 - EPS && cu->overprovisioning <= 0) {
        /* Strict tiers: the tier carrying the load panics when too little of
         * it is usable (its healthy servers would take everything). */
        for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++)
            if (p->tier_load[t] > 0 && raw[t] < thr - EPS && tier_ready[t])
                p->panic_tiers |= 1u << t;
    } else if (thr > 0 && total < 1.0 - EPS) {
        if (total <= 0) {
            for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++) {
                if (tier_ready[t]) {
                    p->tier_load[t] = 1.0;
                    p->panic_tiers |= 1u << t;
                    break;
                }
            }
        } else {
            for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++)
                if (p->tier_load[t] > 0 && raw[t] < thr - EPS && tier_ready[t])
                    p->panic_tiers |= 1u << t;
        }
    }
    p->panic = p->panic_tiers != 0;

    /* 3. Regions of every tier with a load, by weight x availability. */
    for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++) {
        if (p->tier_load[t] <= 0)
            continue;
        tier_used[t] = true;
        if (plan_add_tier(p, u, t, ri, now_ms, &ramping) < 0)
            goto fail;
    }
    if (p->nregions > 1) {
        uint32_t *w = calloc(p->nregions, sizeof(*w));
        if (!w)
            goto fail;
        for (uint32_t i = 0; i < p->nregions; i++) {
            uint32_t v = (uint32_t)lround(p->regions[i].share * 10000.0);
            w[i] = v ? v : 1;
        }
        p->region_wrr = wrr_build(w, p->nregions, WRR_LEN_MAX);
        free(w);
        if (!p->region_wrr)
            goto fail;
    }
    /* 4. Spill regions: lower tiers without load, for new sessions the plan's
     * regions have no room for (balance.c walks them best tier first). */
    uint32_t main_regions = p->nregions, last_used = 0;
    for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++)
        if (tier_used[t])
            last_used = t;
    for (uint32_t t = last_used + 1; t < PLAN_MAX_TIERS && main_regions; t++) {
        if (plan_add_tier(p, u, t, ri, now_ms, &ramping) < 0) {
            p->nspill = p->nregions - main_regions;
            p->nregions = main_regions;
            goto fail;
        }
    }
    p->nspill = p->nregions - main_regions;
    p->nregions = main_regions;
    if (plan_build_hash(p, prev, u, tier_used, now_ms) < 0)
        goto fail;
    p->ramping = ramping;
    free(ri);
    return p;
fail:
    free(ri);
    plan_free(p);
    return NULL;
}
