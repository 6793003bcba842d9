/* SPDX-License-Identifier: MIT */
/* Rate limiting: zones of GCRA state in a sharded table shared by every worker
 * (one atomic compare-and-swap per decision, so a limit holds across threads),
 * bounded in memory by the zone's size with lossless eviction of idle keys;
 * connection-count zones (limit_conn); request keys built from variables.
 * Zones outlive generations: a reload keeps their state when the zone's
 * parameters stay compatible. Global zones (Redis) are in redis_share.c. */
#ifndef TETHER_RATELIMIT_H
#define TETHER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/conf.h>
#include <tether/gcra.h>
#include <tether/http_head.h>

/* Longest key kept (longer keys are hashed down to this). */
#define RL_KEY_MAX 256

struct rl_zone;
struct conn_zone;
struct conn_slot;

/* What a key is built from. */
struct rl_keyctx {
    const char *remote_ip; /* client address as text */
    size_t remote_ip_len;
    const char *route; /* route label */
    size_t route_len;
    const char *buf;           /* request head bytes */
    const struct http_head *h; /* parsed request head */
};

/* Build the key of <k> for a request into <out> (cap >= RL_KEY_MAX); returns
 * its length, or 0 when a part is missing (header/cookie absent): such requests
 * are not limited by that zone. */
size_t rl_key_build(const struct key_spec *k, const struct rl_keyctx *ctx, char *out, size_t cap);

/* Find or create the runtime zone for <cz> (by name; a zone whose rate, burst or
 * size changed gets fresh state). Reference taken. NULL with <e>. */
struct rl_zone *rl_zone_get(const struct conf_zone *cz, struct err *e);
void rl_zone_put(struct rl_zone *z);
const struct conf_zone *rl_zone_conf(const struct rl_zone *z);

struct rl_decision {
    bool allowed;
    uint32_t limit;         /* RateLimit-Limit: burst + 1 */
    uint32_t remaining;     /* RateLimit-Remaining */
    uint32_t reset_s;       /* RateLimit-Reset: seconds until fully reset (rounded up) */
    uint32_t retry_after_s; /* Retry-After when denied (rounded up, >= 1) */
    uint64_t delay_ns;      /* when allowed without nodelay: how long to hold it */
};

/* Decide one request with key <key> at <now_ns> against the local table. */
void rl_check(struct rl_zone *z, const char *key, size_t klen, uint64_t now_ns,
              struct rl_decision *d);

/* Counters of a zone (summed): allowed, limited (local), delayed. */
struct rl_zone_stats {
    uint64_t allowed;
    uint64_t limited;
    uint64_t delayed;
    uint64_t keys;      /* keys currently tracked */
    uint64_t evictions; /* keys dropped to stay within size */
    uint64_t capacity;  /* max keys */
};
void rl_zone_stats(struct rl_zone *z, struct rl_zone_stats *out);
/* Count a decision not made by rl_check() (global zones decided by Redis, or
 * by their on_redis_error policy). rl_check() counts its own. */
void rl_zone_count_limited(struct rl_zone *z);
void rl_zone_count_allowed(struct rl_zone *z);
/* Call <fn> for every live zone (metrics). */
void rl_zone_each(void (*fn)(void *ctx, struct rl_zone *z), void *ctx);

/* ---- limit_conn ---- */

/* Connection zone of a server block: limit_conn N (per $remote_addr) or
 * limit_conn ZONE N. Reference taken. */
struct conn_zone *conn_zone_get(const struct conf *c, const struct conf_vserver *vs, struct err *e);
void conn_zone_put(struct conn_zone *z);

/* Count one connection for <key>; NULL when the key is at its limit (or out of
 * memory). The slot must be released when the connection closes. */
struct conn_slot *conn_zone_acquire(struct conn_zone *z, const char *key, size_t klen);
void conn_slot_release(struct conn_slot *s);
/* The zone's key spec (to build the key) and limit. */
const struct key_spec *conn_zone_key(const struct conn_zone *z);

#endif
