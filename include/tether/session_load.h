/* SPDX-License-Identifier: MIT */
/* Sessions as the unit of load (DESIGN §8): a server's load is what its pod last
 * reported (health_check { report json; }) plus what tether placed on it since
 * the check that produced the report was sent; without reports, tether's own
 * count (learned sessions alive in the table, open tunnels) plus what it placed
 * since that count. Capacity: admin override > reported max_sessions > the
 * server's max_sessions= > the upstream's max_sessions (0: no limit). */
#ifndef TETHER_SESSION_LOAD_H
#define TETHER_SESSION_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/upstream.h>

struct gen;

/* Capacity used in load comparisons for a server without a limit. */
#define SESSIONS_UNLIMITED (1u << 24)

/* Capacity of <s> in sessions, 0 when it has no limit. */
static inline uint32_t
server_capacity(const struct server *s)
{
    int32_t v = atomic_load_explicit(&s->rt->max_admin, memory_order_relaxed);
    if (v >= 0)
        return (uint32_t)v;
    v = atomic_load_explicit(&s->rt->rep_max, memory_order_relaxed);
    if (v >= 0)
        return (uint32_t)v;
    return s->conf->max_sessions ? s->conf->max_sessions : s->up->conf->max_sessions;
}

/* Does <s> have a session limit at all (some figure could make it full)? */
static inline bool
server_capacity_known(const struct server *s)
{
    return atomic_load_explicit(&s->rt->max_admin, memory_order_relaxed) >= 0 ||
           atomic_load_explicit(&s->rt->rep_max, memory_order_relaxed) >= 0 ||
           s->conf->max_sessions || s->up->conf->max_sessions;
}

/* Sessions on <s> now: the last figure (report or own count) plus placements
 * since it was taken, this replica's and (with Redis) the others'. */
static inline uint32_t
server_sessions(const struct server *s)
{
    const struct server_rt *rt = s->rt;
    int32_t since = (int32_t)(atomic_load_explicit(&rt->placed, memory_order_relaxed) -
                              atomic_load_explicit(&rt->placed_base, memory_order_relaxed));
    int32_t others = (int32_t)(atomic_load_explicit(&rt->others, memory_order_relaxed) -
                               atomic_load_explicit(&rt->others_base, memory_order_relaxed));
    int32_t base = atomic_load_explicit(&rt->rep_active, memory_order_relaxed);
    if (base < 0)
        base = atomic_load_explicit(&rt->own_live, memory_order_relaxed) +
               atomic_load_explicit(&rt->tunnels, memory_order_relaxed);
    int64_t n = (int64_t)base + (since > 0 ? since : 0) + (others > 0 ? others : 0);
    return n > 0 ? (uint32_t)(n > (int64_t)UINT32_MAX ? UINT32_MAX : n) : 0;
}

/* May <s> take one more new session (its load is below its capacity)? */
static inline bool
server_has_room(const struct server *s)
{
    return !server_capacity_known(s) || server_sessions(s) < server_capacity(s);
}

/* tether placed a new session on <s> (a new affinity cookie or learned id), or
 * took one back (<delta> -1: the request moved to another server). Workers. */
void session_placed(struct server *s, int delta);

/* A session placed on <s> is settled: the pod answered its request, or the
 * request ended. Only settled placements are taken as included in a report
 * (or an own count) that starts later; the others stay counted on top of it,
 * so a placement still in flight when the pod answers a check is never
 * forgotten. Workers. */
void session_settled(struct server *s);

/* A health check of <rt> is being sent (control thread). */
void session_load_check_sent(struct server_rt *rt);

/* The body of a check answer of server <rt> of <u> (complete or its first bytes;
 * <status> the HTTP status): read the report when <u> asks for one. Returns true
 * when the plan must be rebuilt (drain/degraded changed). Control thread. */
bool session_load_report(const struct upstream *u, struct server_rt *rt, const char *body, size_t n,
                         unsigned status);

/* Once per control tick: recount tether's own live sessions per server for
 * servers without reports (at most once a second). Control thread. */
void session_load_tick(struct gen *g, uint64_t now_ms);

/* An operator set <rt>'s state: drain/maint are theirs (a pod's report does not
 * undo them), ready gives control back to the pod's reports. */
void session_load_admin_state(struct server_rt *rt, unsigned state);

/* ---- counters for the metrics (shared by workers, kept across reloads) ---- */

/* A new session of upstream <u> was refused: every server is full. */
void session_shed_count(const struct upstream *u);
/* A new session spilled from full region <from> to region <to> of <u>. */
void session_spill_count(const struct upstream *u, const struct region *from,
                         const struct region *to);

/* Visit the counters: <fn>(ctx, upstream, from, to, n); <from>/<to> are NULL
 * for the shed counter of <upstream>. */
void session_counters_each(void (*fn)(void *ctx, const char *upstream, const char *from,
                                      const char *to, uint64_t n),
                           void *ctx);

#endif
