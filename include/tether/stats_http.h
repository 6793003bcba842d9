/* SPDX-License-Identifier: MIT */
/* The stats listener: /metrics (Prometheus text), /stats (JSON) and / (the live
 * status page), served by the control thread. stats_http.c takes one snapshot
 * of the counters per request; metrics.c writes it in both formats (every
 * metric declared there once); status_page.c holds the page. */
#ifndef TETHER_STATS_HTTP_H
#define TETHER_STATS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/balance.h>
#include <tether/ratelimit.h>
#include <tether/redis.h>
#include <tether/stats.h>

struct gen;

/* Open, keep or move the stats listener for <g>'s settings. */
void stats_http_sync(struct gen *g);
void stats_http_stop(void);
/* The listening socket (handed over by a binary upgrade), or -1. */
int stats_http_listen_fd(void);

/* A growable output buffer. On allocation failure <oom> is set and later
 * appends are ignored, so writers check once at the end. */
struct strbuf {
    char *p;    /* heap bytes, not NUL-terminated (NULL until the first append) */
    size_t len; /* bytes written */
    size_t cap; /* bytes allocated */
    bool oom;   /* an append failed: the content is incomplete */
};

void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_free(struct strbuf *b);
/* Append a string literal (its length known at compile time). */
#define strbuf_lit(b, lit) strbuf_add((b), "" lit, sizeof(lit) - 1)

/* ---- a snapshot of everything exported (stats_http.c) ---- */

/* Per-server values written by the generic code of metrics.c. */
enum snap_sv {
    SV_BYTES_IN = 0,
    SV_BYTES_OUT,
    SV_CONNECT_ERRORS,
    SV_TIMEOUTS,
    SV_RESETS,
    SV_RETRIES,
    SV_REDISPATCHES,
    SV_TUNNELS_TOTAL,
    SV_UP, /* health up and not ejected */
    SV_EJECTED,
    SV_WEIGHT,
    SV_ACTIVE,
    SV_TUNNELS,
    SV_TRANSITIONS,
    SV_HC_MS,
    SV_HC_STATUS,
    SV_SESSIONS, /* session load (session_load.h) */
    SV_CAPACITY, /* session capacity, 0 = no limit */
    SV__COUNT
};

/* Traffic counters summed over the worker slots, as plain numbers. */
struct snap_traffic {
    uint64_t requests;
    uint64_t status[6];                 /* [0] other, [1] 1xx .. [5] 5xx */
    uint64_t bucket[STATS_LAT_BUCKETS]; /* non-cumulative latency counts */
    uint64_t count;                     /* sum of the buckets (so always consistent) */
    uint64_t sum_us;                    /* total latency */
};

struct snap_server {
    const struct server *s; /* in the snapshot's generation */
    struct snap_traffic t;
    int64_t v[SV__COUNT];     /* enum snap_sv */
    unsigned admin;           /* enum srv_admin */
    bool health_up;           /* active checks (ignoring ejection) */
    uint64_t hc_ok;           /* health checks passed */
    uint64_t hc_failed;       /* health checks failed */
    uint64_t ejected_left_ms; /* 0 when not ejected */
    uint64_t last_change_ms;  /* wall clock of the last health change, 0 none */
};

struct snap_region {
    const struct region *r;
    const struct region_members *rm; /* its servers in the snapshot's membership */
    const struct upstream *u;        /* its upstream */
    double weight;                   /* effective */
    double share;                    /* of new sessions in the current plan, 0 when not in it */
    double nservers;                 /* servers in the region */
    double nup;                      /* health up and not ejected */
    double nusable;                  /* taking new sessions now */
    double sessions;                 /* session load of its servers */
    double capacity;                 /* session capacity of those with a limit */
};

struct snap_upstream {
    const struct upstream *u;
    struct members *m;   /* the membership snapped (referenced) */
    uint32_t srv0;       /* index of its first server in snap.srvs (server order) */
    uint32_t reg0;       /* index of its first region in snap.regs */
    bool panic;          /* plan in panic mode */
    uint32_t tiers_used; /* bit per priority tier that has regions */
    double tier_load[PLAN_MAX_TIERS];
};

struct snap_route {
    const void *key; /* its route_stats: identity only, not dereferenced later */
    char *name;      /* route label, e.g. "=/session" (owned) */
    struct snap_traffic t;
};

struct snap_zone {
    char *name; /* owned */
    bool global;
    double rate;
    uint32_t burst;
    struct rl_zone_stats st;
};

struct snap {
    struct gen *g;         /* referenced; NULL before the first generation */
    uint64_t wall_ms;      /* when taken */
    int64_t gs[GS__COUNT]; /* enum gstat sums */
    struct snap_upstream *ups;
    uint32_t nups;
    struct snap_region *regs;
    uint32_t nregs;
    struct snap_server *srvs;
    uint32_t nsrvs;
    struct snap_route *routes;
    uint32_t nroutes, routes_cap;
    struct snap_zone *zones;
    uint32_t nzones, zones_cap;
    struct redis_stats redis;             /* every Redis connection's totals */
    uint64_t sessions, session_evictions; /* learned-session table */
    bool failed;                          /* out of memory while taking it */
};

/* Take a snapshot (control thread). 0, or -1 when out of memory. */
int snap_take(struct snap *s);
void snap_release(struct snap *s);

/* ---- documents ---- */

/* Append <s> to <out>: Prometheus text format 0.0.4, or one JSON object. */
void metrics_write_prometheus(struct strbuf *out, const struct snap *s);
/* Label values escape backslash, double quote and newline (exposition format). */
void prom_esc(struct strbuf *o, const char *s);
/* The membership and discovery families (metrics_membership.c). */
void metrics_membership_prometheus(struct strbuf *out, const struct snap *s);
void metrics_write_json(struct strbuf *out, const struct snap *s);

/* Append the self-contained HTML status page to <out>. */
void status_page_write(struct strbuf *out);

/* ---- the short window the page shows (status_page.c) ---- */

/* Sample every server's and route's counters once a second (control thread)
 * while the stats listener is open, keeping RECENT_SECONDS of history. */
#define RECENT_SECONDS 10
void recent_start(void);
void recent_stop(void);

/* Traffic of <key> (a server_rt or route_stats) in the window: <now> minus the
 * oldest sample, over <*seconds>. false when there is no usable sample yet. */
bool recent_traffic(const void *key, const struct snap_traffic *now, struct snap_traffic *delta,
                    double *seconds);
/* The same for a process-wide count (requests answered). */
bool recent_requests(int64_t now, int64_t *delta, double *seconds);

#endif
