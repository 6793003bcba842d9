/* SPDX-License-Identifier: MIT */
/* Upstreams, regions and servers of a generation, and their runtime state:
 * per-server atomics (weight, admin state, health, ejection, active counts,
 * counters) that outlive generations, so a reload never flaps health or forgets
 * a drain, and an admin change is seen by every worker at once without locks. */
#ifndef TETHER_UPSTREAM_H
#define TETHER_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <tether/conf.h>
#include <tether/health_report.h>
#include <tether/stats.h>

struct gen;
struct lb_plan;
struct lb_cursor;

enum srv_admin {
    SRV_READY = 0, /* takes new sessions */
    SRV_DRAIN,     /* keeps pinned sessions and tunnels, gets no new ones */
    SRV_MAINT,     /* gets nothing; pinned sessions are redispatched */
};

enum srv_health {
    HEALTH_UP = 0,
    HEALTH_DOWN,
};

/* Runtime state of one server, keyed by "upstream/server", shared by every
 * generation that has the server. Fields are atomics written by the control
 * thread (admin, health) or by workers (ejection, active counts). */
struct server_rt {
    /* What a pick and a request read or write, in the first cache line (the
     * struct is line-aligned): with a thousand servers each is cold. Workers
     * write <active> (and, rarely, the ejection fields) here. */
    _Atomic uint8_t admin;             /* enum srv_admin */
    _Atomic uint8_t health;            /* enum srv_health (active checks) */
    uint32_t slot;                     /* dense id for per-worker tables (keep-alive pools) */
    _Atomic int32_t active;            /* requests in flight (least_conn) */
    _Atomic int32_t tunnels;           /* WebSocket tunnels open */
    _Atomic uint32_t consec_errors;    /* consecutive failures seen by workers */
    _Atomic uint32_t ejections;        /* consecutive ejections (back-off growth) */
    _Atomic uint64_t ejected_until_ms; /* passive ejection end (monotonic), 0 none */
    struct traffic_counters *t;        /* per-slot counters */
    _Atomic uint32_t addr_version;     /* bumped when its address changes on reload */
    /* From here on: what the control thread writes when it publishes a
     * membership (every server's, each time), off the workers' line. */
    _Alignas(CACHELINE) char *key;    /* "upstream/server" */
    _Atomic uint32_t refs;            /* generations and tunnels holding it */
    _Atomic int32_t weight_admin;     /* admin override, -1 none */
    _Atomic int32_t weight_conf;      /* weight in the newest generation */
    _Atomic uint64_t usable_since_ms; /* when it last became usable (slow start) */
    _Atomic uint64_t gen_id;          /* newest generation that has it */
    /* Health-check bookkeeping, control thread only. */
    uint32_t hc_rise;                  /* consecutive successes while down */
    uint32_t hc_fall;                  /* consecutive failures while up */
    _Atomic uint16_t hc_last_status;   /* last HTTP status, 0 on connect failure/timeout */
    _Atomic uint32_t hc_last_ms;       /* duration of the last check */
    _Atomic uint64_t hc_ok, hc_failed; /* check results */
    _Atomic uint64_t transitions;      /* up/down changes */
    _Atomic uint64_t last_change_ms;   /* wall clock of the last up/down change */
    _Atomic bool hc_unchecked;         /* new, down until its first passing check */
    /* Session load and capacity (session_load.c; include/tether/session_load.h). */
    _Atomic int32_t rep_active;      /* active sessions the pod last reported, -1 none */
    _Atomic int32_t rep_max;         /* max_sessions it last reported, -1 none */
    _Atomic uint8_t rep_status;      /* enum hrep_status of the last report */
    _Atomic uint8_t admin_set;       /* an operator set drain/maint (pods do not undo it) */
    _Atomic uint8_t pod_drain;       /* in drain because the pod reported draining */
    _Atomic uint32_t placed;         /* sessions placed on it by tether (wraps) */
    _Atomic uint32_t placed_base;    /* <settled> when the figure's check was sent */
    _Atomic uint32_t settled;        /* of <placed>: answered by the pod, or ended (wraps) */
    _Atomic int32_t own_live;        /* without reports: live learned sessions, last count */
    _Atomic int32_t max_admin;       /* admin max_sessions override, -1 none */
    _Atomic uint64_t reports_ok;     /* reports read */
    _Atomic uint64_t reports_bad;    /* reports missing or malformed (figures kept) */
    _Atomic uint32_t placed_at_send; /* control thread: <settled> when the running check was sent */
    _Atomic uint32_t others;         /* sessions other replicas placed on it (Redis, wraps) */
    _Atomic uint32_t others_base;    /* <others> when the figure's check was sent */
    _Atomic uint32_t others_at_send; /* control thread: <others> when the running check was sent */
} __attribute__((aligned(CACHELINE)));

/* Runtime state of one region ("upstream/region"). */
struct region_rt {
    char *key;
    _Atomic uint32_t refs;
    _Atomic int32_t weight_admin; /* admin override, -1 none */
};

struct upstream;

/* Where a server comes from. */
enum srv_source {
    SRV_SRC_CONFIG = 0, /* a server line of the configuration */
    SRV_SRC_DNS,        /* discover */
    SRV_SRC_ADMIN,      /* add server */
};

/* One server of one membership. Immutable once published; a request that
 * keeps it across loop iterations holds a reference (server_hold), so a
 * membership swap never frees a server a request still uses. */
struct server {
    /* A pick reads the first cache line only (the struct is line-aligned). */
    _Atomic uint32_t refs; /* its membership + requests using it */
    uint32_t index;        /* in its membership's servers */
    uint32_t region;       /* index in up->regions */
    uint32_t max_conns;    /* conf->max_conns, here for the pick */
    uint8_t source;        /* enum srv_source */
    bool leaving;          /* dropped from DNS or deleted: pinned sessions only */
    struct server_rt *rt;
    struct upstream *up;
    const struct conf_server *conf; /* the configuration's, or <own> */
    void *tls_ctx;          /* SSL_CTX for TLS to the pod (owned by the generation), or NULL */
    uint64_t cookie_id;     /* keyed stable identity (cookies, Redis) */
    uint64_t hash_key;      /* stable key for the consistent hash */
    struct conf_server own; /* settings of a discovered or admin-added server */
} __attribute__((aligned(CACHELINE)));

/* A server list of one region inside a membership. */
struct region_members {
    uint32_t *servers; /* indices in the membership's servers */
    uint32_t nservers;
};

/* An upstream's current set of servers, published with its balancer plan
 * (plan->m) by one atomic swap and retired with it through QSBR, so a change
 * of membership builds no generation and never touches what a worker reads. */
struct members {
    _Atomic uint32_t refs; /* plans and the upstream holding it */
    uint32_t nservers;
    struct server **servers;
    struct region_members *regions; /* [up->nregions] */
    uint64_t *id_sorted;            /* cookie ids, sorted, for lookups */
    uint32_t *id_index;             /* server index of id_sorted[i] */
};

struct region {
    const struct conf_region *conf;
    struct region_rt *rt;
};

struct upstream {
    const struct conf_upstream *conf;
    struct gen *gen;
    uint32_t index;
    struct members *members; /* the control thread's current membership (workers
                              * read upstream_members(): the plan's) */
    struct region *regions;
    uint32_t nregions;
    _Atomic(struct lb_plan *) plan; /* published by the control thread */
    _Atomic uint32_t plan_dirty;    /* a worker saw a change: rebuild soon */
    struct lb_cursor *cursors;      /* one per worker */
    const char *cookie_name;        /* its affinity cookie (affinity_cookie, else the
                                     * affinity block's): one per upstream when named */
    size_t cookie_name_len;
    void **tls_ctx; /* per configured server: SSL_CTX for TLS to the pod, or NULL */
    /* hash_balance_factor: session load of the servers that may take hashed
     * keys, summed by the control tick (session_load.c). */
    _Atomic uint32_t hash_load_total;
    _Atomic uint32_t hash_placed;      /* keys placed by bounded-load hashing (wraps) */
    _Atomic uint32_t hash_placed_tick; /* hash_placed when the total was summed */
};

/* ---- runtime registry (thread-safe) ---- */

/* Find or create the runtime state for <key>, taking a reference. New entries
 * start healthy (or down when <initial_up> is false) and ready. */
struct server_rt *server_rt_get(const char *key, bool initial_up);
/* The one rule for a server that appears (a generation, DNS, the admin socket):
 * find or create its runtime state, taking a reference. An existing entry keeps
 * its state. A new one is up when <h> checks nothing; at the first generation
 * (<at_start>) it starts as h->initial_up says; later it starts unchecked: down,
 * until its first passing check brings it up. */
struct server_rt *server_rt_join(const char *key, const struct conf_health *h, bool at_start);
void server_rt_ref(struct server_rt *rt);
void server_rt_unref(struct server_rt *rt);
/* Existing entry for <key> (no reference taken), or NULL. Control thread. */
struct server_rt *server_rt_find(const char *key);
/* Highest slot ever handed out + 1 (sizes per-worker tables). */
uint32_t server_rt_slots(void);

struct region_rt *region_rt_get(const char *key);
void region_rt_unref(struct region_rt *rt);

/* ---- usability ---- */

/* May take new sessions now. */
static inline bool
server_usable_new(const struct server *s, uint64_t now_ms)
{
    const struct server_rt *rt = s->rt;
    return !s->leaving && atomic_load_explicit(&rt->admin, memory_order_relaxed) == SRV_READY &&
           atomic_load_explicit(&rt->health, memory_order_relaxed) == HEALTH_UP &&
           atomic_load_explicit(&rt->ejected_until_ms, memory_order_relaxed) <= now_ms;
}

/* May keep a pinned session now (drain is fine, maint/down/ejected are not). */
static inline bool
server_usable_pinned(const struct server *s, uint64_t now_ms)
{
    const struct server_rt *rt = s->rt;
    return atomic_load_explicit(&rt->admin, memory_order_relaxed) != SRV_MAINT &&
           atomic_load_explicit(&rt->health, memory_order_relaxed) == HEALTH_UP &&
           atomic_load_explicit(&rt->ejected_until_ms, memory_order_relaxed) <= now_ms;
}

/* Effective weight: the admin override, else the configured weight. */
static inline int32_t
server_weight(const struct server *s)
{
    int32_t w = atomic_load_explicit(&s->rt->weight_admin, memory_order_relaxed);
    w = w >= 0 ? w : (int32_t)s->conf->weight;
    /* A pod reporting "degraded" takes degraded_weight of its share. */
    if (w > 0 && atomic_load_explicit(&s->rt->rep_status, memory_order_relaxed) == HREP_DEGRADED) {
        int32_t d = (int32_t)(((int64_t)w * s->up->conf->degraded_weight_pct + 50) / 100);
        w = d > 0 ? d : 1;
    }
    return w;
}

static inline int32_t
region_weight(const struct region *r)
{
    int32_t w = atomic_load_explicit(&r->rt->weight_admin, memory_order_relaxed);
    return w >= 0 ? w : (int32_t)r->conf->weight;
}

/* ---- membership ---- */

/* Take / drop a reference on a server (request, retry). */
static inline void
server_hold(struct server *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}
void server_release(struct server *s);

void members_ref(struct members *m);
void members_unref(struct members *m);

const char *srv_source_name(unsigned source);

/* Server by cookie id (binary search), or NULL. */
struct server *upstream_server_by_id(const struct upstream *u, uint64_t cookie_id);
/* Server by name, or NULL. */
struct server *upstream_server_by_name(const struct upstream *u, const char *name);
struct region *upstream_region_by_name(const struct upstream *u, const char *name);

const char *srv_admin_name(unsigned admin);

#endif
