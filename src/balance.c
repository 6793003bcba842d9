/* SPDX-License-Identifier: MIT */
/* Picking a server for a new session from the published plan: region by smooth
 * weighted round-robin over region shares, then the upstream's balancer inside
 * the region (round_robin, least_conn, random_two, hash). O(1) per pick;
 * least_conn compares at most LC_SCAN servers of one region. */
#include "config.h"

#include <tether/balance.h>
#include <tether/qsbr.h>
#include <tether/session_load.h>

#include <stdint.h>
#include <stdlib.h>

/* least_conn looks at this many servers from a rotating start: exact for
 * regions up to this size, a bounded sample beyond (cost stays O(1)). */
#define LC_SCAN 32

/* Round-robin schedules from this length on prefetch their next servers. */
#define RR_PREFETCH_MIN 64

void
balance_cursors_init(struct upstream *u, uint32_t nw, struct arena *a)
{
    /* Cursors are cache-line aligned (one writer each); the arena aligns for
     * ordinary types only, so take one line more and round up. */
    size_t n = nw ? nw : 1;
    char *raw = arena_alloc(a, n * sizeof(*u->cursors) + CACHELINE);
    u->cursors =
        (struct lb_cursor *)(((uintptr_t)raw + CACHELINE - 1) & ~(uintptr_t)(CACHELINE - 1));
    for (uint32_t i = 0; i < n; i++) {
        struct lb_cursor *c = &u->cursors[i];
        c->server_pos = arena_calloc(a, u->nregions ? u->nregions : 1, sizeof(uint32_t));
        /* Spread the workers over the schedules so they do not move in step. */
        c->region_pos = i * 7919u;
        for (uint32_t r = 0; r < u->nregions; r++)
            c->server_pos[r] = i * 104729u;
        random_bytes(&c->rng, sizeof(c->rng));
        c->rng |= 1;
    }
}

static void
plan_free_cb(void *p)
{
    plan_free(p);
}

int
balance_rebuild(struct upstream *u, uint64_t now_ms)
{
    struct lb_plan *p = plan_build(u, now_ms);
    if (!p)
        return -1; /* out of memory: keep the old plan */
    struct lb_plan *old = atomic_exchange(&u->plan, p);
    atomic_store(&u->plan_dirty, 0);
    qsbr_retire(old, plan_free_cb);
    return 0;
}

/* Weighted load comparison: is (a_active+1)/a_w below (b_active+1)/b_w? */
/* Load of a server: requests in flight plus live WebSocket tunnels (a pod with
 * a thousand open calls is not idle). */
static inline uint64_t
server_load(const struct server *s)
{
    return (uint64_t)atomic_load_explicit(&s->rt->active, memory_order_relaxed) +
           (uint64_t)atomic_load_explicit(&s->rt->tunnels, memory_order_relaxed);
}

static inline bool
lighter(const struct server *a, uint32_t aw, const struct server *b, uint32_t bw)
{
    return (server_load(a) + 1) * bw < (server_load(b) + 1) * aw;
}

static bool
excluded(const struct server *s, const struct server *const *ex, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (ex[i] == s)
            return true;
    return false;
}

/* May <s> take this new session? <panic>: its tier ignores health; <room>: the
 * request creates a session, which a full server does not take. */
static inline bool
pick_ok(bool panic, const struct server *s, uint64_t now_ms, const struct server *const *ex,
        unsigned nex, bool room)
{
    uint32_t maxc = s->max_conns;
    if (maxc && server_load(s) >= maxc)
        return false;
    if (room && !server_has_room(s))
        return false;
    if (nex && excluded(s, ex, nex))
        return false;
    if (panic)
        return !s->leaving &&
               atomic_load_explicit(&s->rt->admin, memory_order_relaxed) == SRV_READY;
    return server_usable_new(s, now_ms);
}

static inline bool
tier_panic(const struct lb_plan *p, const struct upstream *u, const struct server *s)
{
    return p->panic && ((p->panic_tiers >> u->regions[s->region].conf->priority) & 1u);
}

/* Round-robin knows its next picks: start loading them now. With many servers
 * each one's lines are cold by its turn, and a pick reads two that depend on
 * each other (the server, then its runtime state): fetch the server two picks
 * ahead, and the state of the next one, whose server the previous pick
 * fetched. A region of a few servers stays in cache anyway. (A macro: gcc
 * deletes a call to a static function that only prefetches.) */
#define RR_PREFETCH(m, pr, k)                                                                      \
    do {                                                                                           \
        uint32_t len_ = (pr)->wrr->len;                                                            \
        if (len_ >= RR_PREFETCH_MIN) {                                                             \
            uint32_t k1_ = (k) + 1 < len_ ? (k) + 1 : 0, k2_ = k1_ + 1 < len_ ? k1_ + 1 : 0;       \
            __builtin_prefetch((m)->servers[(pr)->servers[(pr)->wrr->seq[k1_]]]->rt);              \
            __builtin_prefetch((m)->servers[(pr)->servers[(pr)->wrr->seq[k2_]]]);                  \
        }                                                                                          \
    } while (0)

static struct server *
pick_in_region(struct upstream *u, const struct members *m, const struct plan_region *pr,
               struct lb_cursor *c, bool room)
{
    uint32_t *pos = &c->server_pos[pr->region];
    switch (u->conf->balance) {
    case BALANCE_LEAST_SESSIONS:
        return lb_least_sessions_pick(m, pr, c, room);
    case BALANCE_LEAST_CONN: {
        uint32_t start = (*pos)++ % pr->nservers, best = start;
        uint32_t scan = pr->nservers < LC_SCAN ? pr->nservers : LC_SCAN;
        for (uint32_t k = 1; k < scan; k++) {
            uint32_t i = (start + k) % pr->nservers;
            if (lighter(m->servers[pr->servers[i]], pr->weights[i], m->servers[pr->servers[best]],
                        pr->weights[best]))
                best = i;
        }
        return m->servers[pr->servers[best]];
    }
    case BALANCE_RANDOM_TWO: {
        uint32_t a = alias_pick(pr->alias, rng_next(&c->rng));
        uint32_t b = alias_pick(pr->alias, rng_next(&c->rng));
        if (lighter(m->servers[pr->servers[b]], pr->weights[b], m->servers[pr->servers[a]],
                    pr->weights[a]))
            a = b;
        return m->servers[pr->servers[a]];
    }
    default: {
        uint32_t k = (*pos)++ % pr->wrr->len;
        RR_PREFETCH(m, pr, k);
        return m->servers[pr->servers[pr->wrr->seq[k]]];
    }
    }
}

/* Is <a> a better fallback than <b>: sessions for a new session, else requests. */
static inline bool
better(bool room, const struct server *a, uint32_t aw, const struct server *b, uint32_t bw)
{
    return room ? lb_sessions_lighter(a, aw, b, bw) : lighter(a, aw, b, bw);
}

struct hash_ctx {
    const struct lb_plan *p;
    uint64_t now_ms;
};

/* May <s> keep a hashed (pinned) key now? */
static bool
hash_ok(const struct server *s, void *ctx)
{
    const struct hash_ctx *h = ctx;
    if (tier_panic(h->p, s->up, s))
        return atomic_load_explicit(&s->rt->admin, memory_order_relaxed) != SRV_MAINT;
    return server_usable_pinned(s, h->now_ms);
}

/* Count a new session placed outside the region first chosen for it. */
static struct server *
spilled(const struct upstream *u, const struct plan_region *first, struct server *s)
{
    if (first && s->region != first->region)
        session_spill_count(u, &u->regions[first->region], &u->regions[s->region]);
    return s;
}

static struct server *
pick(struct upstream *u, uint32_t worker, uint64_t now_ms, uint64_t key_hash, bool has_key,
     const struct server *const *exclude, unsigned nexclude, bool room)
{
    struct lb_plan *p = atomic_load_explicit(&u->plan, memory_order_seq_cst);
    struct lb_cursor *c = &u->cursors[worker];
    struct server *best = NULL;

    if (!p || p->nregions == 0)
        return NULL;
    if (u->conf->balance == BALANCE_HASH && has_key && p->hash) {
        struct server *s = p->m->servers[chash_lookup(p->hash, key_hash)];
        if (u->conf->hash_balance_pct) {
            struct hash_ctx h = {p, now_ms};
            s = lb_bounded_hash(u, p->m, p->hash, key_hash, hash_ok, &h);
        }
        if (s && pick_ok(tier_panic(p, u, s), s, now_ms, exclude, nexclude, room))
            return s;
    }
    const struct plan_region *first = NULL; /* a new session's region, if it had no room */
    for (int attempt = 0; attempt < 4; attempt++) {
        const struct plan_region *pr = &p->regions[0];
        if (p->nregions > 1)
            pr = &p->regions[p->region_wrr->seq[c->region_pos++ % p->region_wrr->len]];
        struct server *s = pick_in_region(u, p->m, pr, c, room);
        if (s && pick_ok(pr->panic, s, now_ms, exclude, nexclude, room))
            return spilled(u, first, s);
        if (attempt == 0 && room)
            first = pr;
    }
    /* The plan is older than a state change (an ejection, a retry exclusion),
     * or the regions picked are full: take the least loaded server that is
     * still fine, in the best tier that has one (a new session spills from a
     * full region to the others of its tier, then to the next tier). */
    uint32_t best_w = 1, best_tier = 0;
    for (uint32_t r = 0; r < p->nregions + (room ? p->nspill : 0); r++) {
        const struct plan_region *pr = &p->regions[r];
        if (best && pr->tier != best_tier)
            break;
        for (uint32_t i = 0; i < pr->nservers; i++) {
            struct server *s = p->m->servers[pr->servers[i]];
            if (pick_ok(pr->panic, s, now_ms, exclude, nexclude, room) &&
                (!best || better(room, s, pr->weights[i], best, best_w))) {
                best = s;
                best_w = pr->weights[i];
                best_tier = pr->tier;
            }
        }
    }
    return best ? spilled(u, first, best) : NULL;
}

struct server *
balance_pick(struct upstream *u, uint32_t worker, uint64_t now_ms, uint64_t key_hash, bool has_key,
             const struct server *const *exclude, unsigned nexclude)
{
    return pick(u, worker, now_ms, key_hash, has_key, exclude, nexclude, false);
}

struct server *
balance_pick_session(struct upstream *u, uint32_t worker, uint64_t now_ms, uint64_t key_hash,
                     bool has_key, const struct server *const *exclude, unsigned nexclude)
{
    return pick(u, worker, now_ms, key_hash, has_key, exclude, nexclude, true);
}

struct server *
balance_hash_lookup(struct upstream *u, uint64_t key_hash, uint64_t now_ms)
{
    struct lb_plan *p = atomic_load_explicit(&u->plan, memory_order_seq_cst);
    struct hash_ctx h = {p, now_ms};
    if (!p || !p->hash)
        return NULL;
    if (u->conf->hash_balance_pct)
        return lb_bounded_hash(u, p->m, p->hash, key_hash, hash_ok, &h);
    struct server *s = p->m->servers[chash_lookup(p->hash, key_hash)];
    return hash_ok(s, &h) ? s : NULL;
}
