/* SPDX-License-Identifier: MIT */
/* Counter storage: per-slot (per-worker) cache-line-aligned blocks, summed on
 * read; latency histograms; per-route counters that outlive generations. */
#include "config.h"

#include <tether/stats.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const uint64_t stats_lat_bounds_us[STATS_LAT_BUCKETS - 1] = {
    1000,   2500,    5000,    10000,   25000,    50000,    100000,   250000,
    500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

uint32_t stats_nslots;
struct worker_counters *stats_global;

int
stats_init(uint32_t nslots)
{
    stats_global = aligned_alloc(CACHELINE, sizeof(*stats_global) * nslots);
    if (!stats_global)
        return -1;
    memset(stats_global, 0, sizeof(*stats_global) * nslots);
    stats_nslots = nslots;
    return 0;
}

int64_t
gstat_sum(enum gstat s)
{
    int64_t v = 0;
    for (uint32_t i = 0; i < stats_nslots; i++)
        v += atomic_load_explicit(&stats_global[i].g[s], memory_order_relaxed);
    return v;
}

struct traffic_counters *
traffic_counters_new(void)
{
    uint32_t n = stats_nslots ? stats_nslots : 1;
    struct traffic_counters *t = aligned_alloc(CACHELINE, sizeof(*t) * n);
    if (t)
        memset(t, 0, sizeof(*t) * n);
    return t;
}

void
traffic_counters_free(struct traffic_counters *t)
{
    free(t);
}

#define BUMP(field, v)                                                                             \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (v),    \
                          memory_order_relaxed)

void
traffic_record(struct traffic_counters *t, unsigned status, uint64_t bytes_in, uint64_t bytes_out,
               uint64_t latency_us)
{
    unsigned cls = status / 100;
    unsigned b = 0;
    BUMP(t->requests, 1);
    BUMP(t->status[cls <= 5 ? cls : 0], 1);
    BUMP(t->bytes_in, bytes_in);
    BUMP(t->bytes_out, bytes_out);
    while (b < STATS_LAT_BUCKETS - 1 && latency_us > stats_lat_bounds_us[b])
        b++;
    BUMP(t->latency.bucket[b], 1);
    BUMP(t->latency.sum_us, latency_us);
    BUMP(t->latency.count, 1);
}

#define SUMF(f) atomic_store(&out->f, atomic_load(&out->f) + atomic_load(&t[i].f))

void
traffic_sum(const struct traffic_counters *t, struct traffic_counters *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < (stats_nslots ? stats_nslots : 1); i++) {
        SUMF(requests);
        for (int k = 0; k < 6; k++)
            SUMF(status[k]);
        SUMF(bytes_in);
        SUMF(bytes_out);
        SUMF(connect_errors);
        SUMF(timeouts);
        SUMF(resets);
        SUMF(retries);
        SUMF(redispatches);
        SUMF(tunnels);
        for (int k = 0; k < STATS_LAT_BUCKETS; k++)
            SUMF(latency.bucket[k]);
        SUMF(latency.sum_us);
        SUMF(latency.count);
    }
}

uint64_t
stats_quantile_us(const uint64_t *bucket, double q)
{
    uint64_t total = 0, seen = 0;
    for (int i = 0; i < STATS_LAT_BUCKETS; i++)
        total += bucket[i];
    if (total == 0)
        return 0;
    double rank = q * (double)total;
    for (int i = 0; i < STATS_LAT_BUCKETS; i++) {
        uint64_t c = bucket[i];
        if (c && (double)(seen + c) >= rank) {
            uint64_t lo = i ? stats_lat_bounds_us[i - 1] : 0;
            uint64_t hi = i < STATS_LAT_BUCKETS - 1 ? stats_lat_bounds_us[i] : lo * 2;
            double frac = (rank - (double)seen) / (double)c;
            return lo + (uint64_t)(frac * (double)(hi - lo));
        }
        seen += c;
    }
    return stats_lat_bounds_us[STATS_LAT_BUCKETS - 2];
}

uint64_t
stats_hist_quantile(const struct stats_hist *h, double q)
{
    uint64_t b[STATS_LAT_BUCKETS];
    for (int i = 0; i < STATS_LAT_BUCKETS; i++)
        b[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    return stats_quantile_us(b, q);
}

/* ---- per-route counters ---- */

static pthread_mutex_t routes_lock = PTHREAD_MUTEX_INITIALIZER;
static struct route_stats *routes;

struct route_stats *
route_stats_get(const char *label)
{
    struct route_stats *rs;
    pthread_mutex_lock(&routes_lock);
    for (rs = routes; rs; rs = rs->next) {
        if (strcmp(rs->label, label) == 0) {
            atomic_fetch_add(&rs->refs, 1);
            goto out;
        }
    }
    rs = calloc(1, sizeof(*rs));
    if (!rs || !(rs->label = strdup(label)) || !(rs->t = traffic_counters_new())) {
        if (rs)
            free(rs->label);
        free(rs);
        rs = NULL;
        goto out;
    }
    atomic_init(&rs->refs, 1);
    rs->next = routes;
    routes = rs;
out:
    pthread_mutex_unlock(&routes_lock);
    return rs;
}

void
route_stats_put(struct route_stats *rs)
{
    if (!rs)
        return;
    pthread_mutex_lock(&routes_lock);
    if (atomic_fetch_sub(&rs->refs, 1) == 1) {
        struct route_stats **pp = &routes;
        while (*pp && *pp != rs)
            pp = &(*pp)->next;
        if (*pp)
            *pp = rs->next;
        free(rs->label);
        traffic_counters_free(rs->t);
        free(rs);
    }
    pthread_mutex_unlock(&routes_lock);
}

void
route_stats_each(void (*fn)(void *ctx, struct route_stats *rs), void *ctx)
{
    pthread_mutex_lock(&routes_lock);
    for (struct route_stats *rs = routes; rs; rs = rs->next)
        fn(ctx, rs);
    pthread_mutex_unlock(&routes_lock);
}
