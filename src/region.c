/* SPDX-License-Identifier: MIT */
/* Plan building: tiers, regions scaled by their healthy fraction (Envoy-style
 * overprovisioning), spill-over to lower tiers, panic, slow start. Control
 * thread only; see doc/failover.md for the formulas. */
#include "config.h"

#include <tether/balance.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fraction of full weight a server gets while slow start is in progress. */
static double
slow_start_factor(const struct server *s, uint64_t slow_start_ms, uint64_t now_ms, bool *ramping)
{
    uint64_t since = atomic_load(&s->rt->usable_since_ms);
    if (!slow_start_ms || since == 0 || now_ms >= since + slow_start_ms)
        return 1.0;
    *ramping = true;
    double f = (double)(now_ms - since) / (double)slow_start_ms;
    return f < 0.05 ? 0.05 : f;
}

void
plan_free(struct lb_plan *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->nregions; i++) {
        free(p->regions[i].servers);
        free(p->regions[i].weights);
        wrr_free(p->regions[i].wrr);
        alias_free(p->regions[i].alias);
    }
    free(p->regions);
    wrr_free(p->region_wrr);
    chash_free(p->hash);
    free(p);
}

struct rinfo {
    double healthy;    /* usable servers, slow-start weighted */
    uint32_t total;    /* servers with weight > 0 */
    uint32_t nonmaint; /* servers with weight > 0 not in maintenance */
    double avail;
    uint32_t weight;
};

/* Add region <r> with <share> to the plan, with the servers that pass <take>. */
static int
plan_add_region(struct lb_plan *p, struct upstream *u, uint32_t r, uint32_t tier, double share,
                const struct rinfo *ri, uint64_t now_ms, bool panic, bool *ramping)
{
    const struct region *reg = &u->regions[r];
    struct plan_region *pr = &p->regions[p->nregions];
    pr->servers = calloc(reg->nservers ? reg->nservers : 1, sizeof(uint32_t));
    pr->weights = calloc(reg->nservers ? reg->nservers : 1, sizeof(uint32_t));
    if (!pr->servers || !pr->weights)
        return -1;
    for (uint32_t i = 0; i < reg->nservers; i++) {
        const struct server *s = &u->servers[reg->servers[i]];
        int32_t w = server_weight(s);
        bool take = panic ? atomic_load(&s->rt->admin) != SRV_MAINT : server_usable_new(s, now_ms);
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
    pr->availability = ri->avail;
    pr->healthy = ri->healthy;
    pr->total = ri->total;
    pr->wrr = wrr_build(pr->weights, pr->nservers, 65536);
    pr->alias = alias_build(pr->weights, pr->nservers);
    p->nregions++; /* counted even on failure, so plan_free releases it */
    if (!pr->wrr || !pr->alias)
        return -1;
    return 0;
}

/* The consistent-hash table over servers that may keep pinned sessions in the
 * tiers that take traffic; weights ignore health so that a server going down
 * moves only its own keys. */
static int
plan_build_hash(struct lb_plan *p, struct upstream *u, const bool *tier_used, uint64_t now_ms)
{
    struct chash_member *m = calloc(u->nservers, sizeof(*m));
    uint32_t n = 0;
    if (!m)
        return -1;
    for (uint32_t r = 0; r < u->nregions; r++) {
        const struct region *reg = &u->regions[r];
        uint32_t tier = reg->conf->priority;
        int32_t rw = region_weight(reg);
        uint64_t sum = 0;
        if (!tier_used[tier] || rw <= 0)
            continue;
        for (uint32_t i = 0; i < reg->nservers; i++) {
            int32_t w = server_weight(&u->servers[reg->servers[i]]);
            sum += w > 0 ? (uint64_t)w : 0;
        }
        for (uint32_t i = 0; i < reg->nservers && sum; i++) {
            const struct server *s = &u->servers[reg->servers[i]];
            int32_t w = server_weight(s);
            if (w <= 0 || !(p->panic || server_usable_pinned(s, now_ms)))
                continue;
            double share = (double)rw * (double)w / (double)sum;
            uint32_t hw = (uint32_t)lround(share * 100.0);
            m[n].key = s->hash_key;
            m[n].weight = hw ? hw : 1;
            m[n].index = s->index;
            n++;
        }
    }
    if (n)
        p->hash = chash_build(m, n, 0);
    free(m);
    return (n && !p->hash) ? -1 : 0;
}

struct lb_plan *
plan_build(struct upstream *u, uint64_t now_ms)
{
    const struct conf_upstream *cu = u->conf;
    struct lb_plan *p = calloc(1, sizeof(*p));
    struct rinfo *ri = calloc(u->nregions ? u->nregions : 1, sizeof(*ri));
    double tier_health[PLAN_MAX_TIERS] = {0}, tier_wsum[PLAN_MAX_TIERS] = {0};
    double tier_avail_w[PLAN_MAX_TIERS] = {0};
    bool tier_used[PLAN_MAX_TIERS] = {0};
    double load_sum = 0, health_sum = 0, remaining = 1.0;
    bool ramping = false;

    if (!p || !ri)
        goto fail;
    p->built_ms = now_ms;
    p->regions = calloc(u->nregions ? u->nregions : 1, sizeof(*p->regions));
    if (!p->regions)
        goto fail;

    for (uint32_t r = 0; r < u->nregions; r++) {
        const struct region *reg = &u->regions[r];
        struct rinfo *x = &ri[r];
        int32_t rw = region_weight(reg);
        x->weight = rw > 0 ? (uint32_t)rw : 0;
        for (uint32_t i = 0; i < reg->nservers; i++) {
            const struct server *s = &u->servers[reg->servers[i]];
            if (server_weight(s) <= 0)
                continue;
            x->total++;
            if (atomic_load(&s->rt->admin) != SRV_MAINT)
                x->nonmaint++;
            if (server_usable_new(s, now_ms))
                x->healthy += slow_start_factor(s, cu->slow_start_ms, now_ms, &ramping);
        }
        x->avail = x->total ? fmin(1.0, cu->overprovisioning * x->healthy / x->total) : 0.0;
        if (x->weight && x->total) {
            uint32_t t = reg->conf->priority;
            tier_wsum[t] += x->weight;
            tier_avail_w[t] += x->weight * x->avail;
        }
    }
    for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++) {
        if (tier_wsum[t] <= 0)
            continue;
        tier_health[t] = tier_avail_w[t] / tier_wsum[t];
        health_sum += tier_health[t];
        p->tier_load[t] = fmin(remaining, tier_health[t]);
        remaining -= p->tier_load[t];
        load_sum += p->tier_load[t];
    }
    if (health_sum > 1.0)
        health_sum = 1.0;

    if (load_sum <= 0 || health_sum * 100.0 < (double)cu->panic_threshold_pct) {
        /* Panic: the best tier with any server not in maintenance takes everything,
         * health ignored (active checks may be wrong; trying beats refusing). */
        p->panic = true;
        memset(p->tier_load, 0, sizeof(p->tier_load));
        for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++) {
            double wsum = 0;
            for (uint32_t r = 0; r < u->nregions; r++)
                if (u->regions[r].conf->priority == t && ri[r].nonmaint && ri[r].weight)
                    wsum += ri[r].weight;
            if (wsum <= 0)
                continue;
            p->tier_load[t] = 1.0;
            tier_used[t] = true;
            for (uint32_t r = 0; r < u->nregions; r++)
                if (u->regions[r].conf->priority == t && ri[r].nonmaint && ri[r].weight &&
                    plan_add_region(p, u, r, t, ri[r].weight / wsum, &ri[r], now_ms, true,
                                    &ramping) < 0)
                    goto fail;
            break;
        }
    } else {
        for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++) {
            p->tier_load[t] /= load_sum;
            if (p->tier_load[t] <= 0 || tier_avail_w[t] <= 0)
                continue;
            tier_used[t] = true;
            for (uint32_t r = 0; r < u->nregions; r++) {
                const struct rinfo *x = &ri[r];
                if (u->regions[r].conf->priority != t || !x->weight || x->avail <= 0)
                    continue;
                double share = p->tier_load[t] * x->weight * x->avail / tier_avail_w[t];
                if (plan_add_region(p, u, r, t, share, x, now_ms, false, &ramping) < 0)
                    goto fail;
            }
        }
    }
    if (p->nregions > 1) {
        uint32_t *w = calloc(p->nregions, sizeof(*w));
        if (!w)
            goto fail;
        for (uint32_t i = 0; i < p->nregions; i++) {
            uint32_t v = (uint32_t)lround(p->regions[i].share * 10000.0);
            w[i] = v ? v : 1;
        }
        p->region_wrr = wrr_build(w, p->nregions, 65536);
        free(w);
        if (!p->region_wrr)
            goto fail;
    }
    if (plan_build_hash(p, u, tier_used, now_ms) < 0)
        goto fail;
    p->ramping = ramping;
    free(ri);
    return p;
fail:
    free(ri);
    plan_free(p);
    return NULL;
}
