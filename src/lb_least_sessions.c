/* SPDX-License-Identifier: MIT */
/* balance least_sessions: a new session goes to the server with the lowest
 * load (sessions / capacity, include/tether/session_load.h), weighted.
 *
 * Why a bounded scan and not a heap: the load of a server changes with every
 * placement on any worker, with every pod report and on every other replica,
 * so a heap would need a lock or a rebuild per placement. Scanning at most
 * LS_SCAN servers of one region from a random start reads one cache line of
 * atomics per server: O(1) per pick, exact for regions up to LS_SCAN servers
 * (so 15 sessions over 3 pods of 5 are never more than one apart), and for
 * larger regions the lightest of a random window of LS_SCAN, which keeps the
 * spread within a few sessions (bench/capacity_spread.py). A window whose
 * servers are all full is followed by a full scan of the region, so a region
 * is never called full while one of its servers has room. */
#include "config.h"

#include <tether/balance.h>
#include <tether/session_load.h>

#define LS_SCAN 32
/* Slots a bounded-load lookup looks at before giving up on the bound. */
#define BH_PROBES 4096

bool
lb_sessions_lighter(const struct server *a, uint32_t aw, const struct server *b, uint32_t bw)
{
    uint64_t ca = server_capacity(a), cb = server_capacity(b);
    ca = ca ? ca : SESSIONS_UNLIMITED;
    cb = cb ? cb : SESSIONS_UNLIMITED;
    /* (sa + 1) / (ca aw) < (sb + 1) / (cb bw), without division: the +1 is the
     * session being placed, so an empty big pod beats an empty small one. */
    unsigned __int128 l = (unsigned __int128)((uint64_t)server_sessions(a) + 1) * cb * bw;
    unsigned __int128 r = (unsigned __int128)((uint64_t)server_sessions(b) + 1) * ca * aw;
    return l < r;
}

static struct server *
scan(const struct members *m, const struct plan_region *pr, uint32_t start, uint32_t count,
     bool room)
{
    struct server *best = NULL;
    uint32_t best_w = 1;
    for (uint32_t k = 0; k < count; k++) {
        uint32_t i = start + k;
        if (i >= pr->nservers)
            i -= pr->nservers;
        struct server *s = m->servers[pr->servers[i]];
        if (room && !server_has_room(s))
            continue;
        if (!best || lb_sessions_lighter(s, pr->weights[i], best, best_w)) {
            best = s;
            best_w = pr->weights[i];
        }
    }
    return best;
}

struct server *
lb_least_sessions_pick(const struct members *m, const struct plan_region *pr, struct lb_cursor *c,
                       bool room)
{
    uint32_t n = pr->nservers;
    uint32_t start = (uint32_t)(((rng_next(&c->rng) >> 32) * (uint64_t)n) >> 32);
    if (n <= LS_SCAN)
        return scan(m, pr, start, n, room);
    struct server *s = scan(m, pr, start, LS_SCAN, room);
    if (s || !room)
        return s;
    return scan(m, pr, start, n, room);
}

struct server *
lb_bounded_hash(struct upstream *u, const struct members *ms, const struct chash_table *t,
                uint64_t key_hash, bool (*ok)(const struct server *s, void *ctx), void *ctx)
{
    /* The tick's sum plus the keys placed since: replicas that saw the same
     * keys compute the same bound whenever their ticks ran. */
    uint64_t total = atomic_load_explicit(&u->hash_load_total, memory_order_relaxed) +
                     (uint32_t)(atomic_load_explicit(&u->hash_placed, memory_order_relaxed) -
                                atomic_load_explicit(&u->hash_placed_tick, memory_order_relaxed));
    uint64_t n = t->nmembers;
    uint64_t pct = u->conf->hash_balance_pct;
    /* HAProxy's bound: ceil((total + 1) x factor / servers), at least 1. */
    uint64_t bound = n ? ((total + 1) * pct + 100 * n - 1) / (100 * n) : UINT64_MAX;
    uint32_t slot = (uint32_t)(((unsigned __int128)key_hash * t->size) >> 64);
    uint32_t probes = t->size < BH_PROBES ? t->size : BH_PROBES, last = UINT32_MAX;
    for (uint32_t k = 0; k < probes; k++) {
        uint32_t m = t->slots[(slot + k) % t->size];
        if (m == last)
            continue; /* runs of one member: look at the next one */
        last = m;
        struct server *s = ms->servers[m];
        if ((uint64_t)server_sessions(s) < bound && ok(s, ctx))
            return s;
    }
    return NULL;
}
