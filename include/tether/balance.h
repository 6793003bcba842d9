/* SPDX-License-Identifier: MIT */
/* Server choice for new sessions: a per-upstream plan (which regions and servers
 * take new sessions, with what shares) built by the control thread whenever
 * health, admin state or weights change, and O(1) picks from it in the workers.
 *
 *   health/admin/weights --(control: plan_build)--> lb_plan --(atomic swap)-->
 *   workers: region by smooth WRR over shares -> server by the upstream's balancer
 */
#ifndef TETHER_BALANCE_H
#define TETHER_BALANCE_H

#include <stdbool.h>
#include <stdint.h>

#include <tether/lb.h>
#include <tether/upstream.h>

#define PLAN_MAX_TIERS 17

/* One region that takes new sessions in a plan. */
struct plan_region {
    uint32_t region;           /* index in upstream->regions */
    uint32_t tier;             /* its priority */
    double share;              /* fraction of new sessions (all plan regions sum to 1) */
    double availability;       /* min(1, overprovisioning * healthy) */
    double healthy;            /* healthy fraction of its capacity (weights, slow start applied) */
    uint32_t total;            /* servers in the region */
    uint32_t nservers;         /* servers taking new sessions */
    bool panic;                /* its tier is in panic: health and ejection ignored */
    uint32_t *servers;         /* indices in the plan's membership */
    uint32_t *weights;         /* effective weights (slow start applied), parallel to servers */
    struct wrr_schedule *wrr;  /* round_robin */
    struct alias_table *alias; /* random_two */
};

struct plan_hash;

struct lb_plan {
    struct members *m; /* the membership it was built over (referenced) */
    uint64_t built_ms;
    uint32_t nregions;
    uint32_t nspill; /* regions[nregions..+nspill): lower tiers without load,
                      * for sessions the plan's regions have no room for */
    struct plan_region *regions;
    struct wrr_schedule *region_wrr;  /* over regions[] by share */
    struct chash_table *hash;         /* over every plan server (member index = server index) */
    struct plan_hash *hash_ref;       /* owner of <hash>, shared by plans with the same members */
    bool panic;                       /* some tier is in panic (see panic_tiers) */
    uint32_t panic_tiers;             /* bit t: tier t below panic_threshold, health ignored */
    bool ramping;                     /* slow start in progress: rebuild again soon */
    double tier_load[PLAN_MAX_TIERS]; /* share of new sessions per tier */
};

/* The membership a worker reads now: the one of the current plan. Valid until
 * the worker's next quiescent state (the end of its loop iteration); keep a
 * server longer only with server_hold(). The control thread may also read it. */
static inline struct members *
upstream_members(const struct upstream *u)
{
    return atomic_load_explicit(&u->plan, memory_order_acquire)->m;
}

/* Per-worker picking state for one upstream. */
struct lb_cursor {
    uint32_t region_pos;  /* position in plan->region_wrr */
    uint32_t *server_pos; /* per region: position in its wrr, or least_conn rotation */
    uint64_t rng;         /* xorshift state */
    uint32_t budget_reqs; /* requests in the current retry-budget window */
    uint32_t budget_rets; /* retries in the current window */
} __attribute__((aligned(64)));

/* Build a plan over u->members from the current runtime state (control
 * thread). The consistent-hash table of <u>'s current plan is shared when its
 * members did not change. */
struct lb_plan *plan_build(struct upstream *u, uint64_t now_ms);
void plan_free(struct lb_plan *p);

/* Build and publish a new plan for <u> (over u->members); the old one is
 * retired through QSBR. -1 (the old plan stays) when out of memory. */
int balance_rebuild(struct upstream *u, uint64_t now_ms);

/* Allocate cursors for <nworkers> workers (gen build). */
void balance_cursors_init(struct upstream *u, uint32_t nworkers, struct arena *a);

/* Pick a server for a new session. <exclude> (may be NULL) lists servers already
 * tried by this request. <key_hash>/<has_key> feed balance hash. NULL: nothing
 * usable. */
struct server *balance_pick(struct upstream *u, uint32_t worker, uint64_t now_ms, uint64_t key_hash,
                            bool has_key, const struct server *const *exclude, unsigned nexclude);

/* The same for a request that creates a session: full servers are skipped and
 * a full region or tier spills to the next (best tier first). NULL: nothing
 * usable has room. */
struct server *balance_pick_session(struct upstream *u, uint32_t worker, uint64_t now_ms,
                                    uint64_t key_hash, bool has_key,
                                    const struct server *const *exclude, unsigned nexclude);

/* least_sessions inside plan region <pr> (lb_least_sessions.c): the server with
 * the lowest sessions / (capacity x weight) among the region's servers (at most
 * LS_SCAN of them from a random start), skipping full ones when <room>; ties
 * go to the first seen, so a random start breaks them at random. NULL: none
 * has room. */
struct server *lb_least_sessions_pick(const struct members *m, const struct plan_region *pr,
                                      struct lb_cursor *c, bool room);
/* Is <a> (weight <aw>) less loaded in sessions than <b> (weight <bw>)? */
bool lb_sessions_lighter(const struct server *a, uint32_t aw, const struct server *b, uint32_t bw);

/* Bounded-load consistent hashing (hash_balance_factor): the first server (of
 * membership <ms>, the one <t> was built over) in <t>'s slot order from <key_hash>'s slot whose
 * session load is below the bound and that <ok> accepts; the order depends only on the table, so
 * every replica walks the same servers. NULL when none within the probe limit. */
struct server *lb_bounded_hash(struct upstream *u, const struct members *ms,
                               const struct chash_table *t, uint64_t key_hash,
                               bool (*ok)(const struct server *s, void *ctx), void *ctx);

/* The consistent-hash choice for <key_hash> (header affinity), or NULL when the
 * hashed server cannot take it now. */
struct server *balance_hash_lookup(struct upstream *u, uint64_t key_hash, uint64_t now_ms);

#endif
