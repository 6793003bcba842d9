/* SPDX-License-Identifier: MIT */
/* Counters and histograms. Each worker writes only its own cache-line-aligned
 * slots (single writer, relaxed stores, no lock prefix); readers sum the slots.
 * Every metric is declared once in stats.c with its kind and help text. */
#ifndef TETHER_STATS_H
#define TETHER_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include <tether/util.h>

/* Latency histogram buckets (upper bounds, microseconds); the last is +Inf. */
#define STATS_LAT_BUCKETS 16
extern const uint64_t stats_lat_bounds_us[STATS_LAT_BUCKETS - 1];

struct stats_hist {
    _Atomic uint64_t sum_us;
    _Atomic uint64_t count;
    _Atomic uint64_t bucket[STATS_LAT_BUCKETS]; /* non-cumulative counts */
};

/* Per server (and per route) traffic counters of one worker. */
struct traffic_counters {
    /* Written by every request, in the first two cache lines (with the
     * latency's sum, count and first buckets, up to 5 ms): with a thousand
     * servers each server's counters are cold. */
    _Atomic uint64_t requests;
    _Atomic uint64_t status[6];      /* [0] other/none, [1] 1xx .. [5] 5xx */
    _Atomic uint64_t bytes_in;       /* request bytes received from clients */
    _Atomic uint64_t bytes_out;      /* response bytes sent to clients */
    struct stats_hist latency;       /* total request time */
    _Atomic uint64_t connect_errors; /* failed connects to the server */
    _Atomic uint64_t timeouts;       /* response timeouts */
    _Atomic uint64_t resets;         /* server reset/closed before the response ended */
    _Atomic uint64_t retries;        /* requests retried away from this server */
    _Atomic uint64_t redispatches;   /* pinned sessions moved away from this server */
    _Atomic uint64_t tunnels;        /* WebSocket tunnels opened */
} __attribute__((aligned(CACHELINE)));

/* Process-wide counters (per worker slot). */
enum gstat {
    GS_CONN_ACCEPTED = 0,
    GS_CONN_ACTIVE, /* gauge: +1 accept, -1 close */
    GS_CONN_REJECTED,
    GS_REQUESTS,
    GS_BAD_REQUESTS,
    GS_TUNNELS_ACTIVE, /* gauge */
    GS_TUNNELS_TOTAL,
    GS_TLS_HANDSHAKES,
    GS_TLS_RESUMED,
    GS_TLS_FAILURES,
    GS_AFF_COOKIE,
    GS_AFF_HEADER,
    GS_AFF_LEARNED,
    GS_AFF_HASH,
    GS_AFF_NEW,
    GS_AFF_REDISPATCH,
    GS_AFF_COOKIE_INVALID,
    GS_AFF_COOKIE_EXPIRED,
    GS_AFF_COOKIE_UNKNOWN,
    GS_LEARNED,
    GS_REDIS_ERRORS,
    GS_REDIS_TIMEOUTS,
    GS_RATE_LIMITED,
    GS_CONN_LIMITED,
    GS_RETRIES,
    GS_RETRY_BUDGET_EXHAUSTED,
    GS_RETRY_TIMEOUTS, /* tries resent after per_try_timeout */
    GS_NO_SERVER,
    GS_EJECTIONS,
    GS_H2_CONNS,    /* HTTP/2 connections accepted */
    GS_H2_STREAMS,  /* HTTP/2 streams carried as requests */
    GS_H2_ABUSE,    /* HTTP/2 connections ended by a flood guard or bad frames */
    GS_REQUESTS_H2, /* requests (GS_REQUESTS) that came over HTTP/2 */
    GS__COUNT
};

struct worker_counters {
    _Atomic int64_t g[GS__COUNT];
} __attribute__((aligned(CACHELINE)));

/* Number of worker slots (fixed for the process), and the global slots. */
extern uint32_t stats_nslots;
extern struct worker_counters *stats_global;

/* Allocate global counters for <nslots> writers (workers + control). */
int stats_init(uint32_t nslots);

/* New zeroed per-slot traffic counters (stats_nslots entries). */
struct traffic_counters *traffic_counters_new(void);
void traffic_counters_free(struct traffic_counters *t);

/* Single-writer updates from slot <slot>. */
static inline void
gstat_add(uint32_t slot, enum gstat s, int64_t v)
{
    _Atomic int64_t *c = &stats_global[slot].g[s];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

int64_t gstat_sum(enum gstat s);

/* Record one finished request in <t> (the slot's entry). */
void traffic_record(struct traffic_counters *t, unsigned status, uint64_t bytes_in,
                    uint64_t bytes_out, uint64_t latency_us);

/* Sum of all slots of <t> into <out> (plain values in the same layout). */
void traffic_sum(const struct traffic_counters *t, struct traffic_counters *out);

/* Latency quantile <q> (0..1) in microseconds from histogram <h> (interpolated). */
uint64_t stats_hist_quantile(const struct stats_hist *h, double q);
/* The same from plain non-cumulative bucket counts (STATS_LAT_BUCKETS of them). */
uint64_t stats_quantile_us(const uint64_t *bucket, double q);

/* Per-route counters that outlive generations, keyed by route label. */
struct route_stats {
    char *label;
    _Atomic uint32_t refs;
    struct traffic_counters *t;
    struct route_stats *next;
};

struct route_stats *route_stats_get(const char *label);
void route_stats_put(struct route_stats *rs);
/* Call <fn> for every registered route (control thread). */
void route_stats_each(void (*fn)(void *ctx, struct route_stats *rs), void *ctx);

#endif
