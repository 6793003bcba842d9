/* SPDX-License-Identifier: MIT */
/* Redis (optional): hiredis async on libev, one connection per worker loop for
 * request-path operations and one on the control thread for pub/sub and admin
 * state. Bounded timeouts, reconnect with back-off, every failure counted, and
 * tether keeps serving from local state while Redis is away. */
#ifndef TETHER_REDIS_H
#define TETHER_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/sock.h>

struct redis_op;
struct rl_decision;
struct server;
struct worker;
struct conf_redis;
struct rl_zone;

/* ---- worker side (called on the worker's thread) ---- */

/* (Re)connect the worker's client for the Redis settings of its generation;
 * no-op when unchanged; disconnects when Redis is no longer configured. */
void redis_worker_sync(struct worker *w);
void redis_worker_stop(struct worker *w);

/* How request-path answers reach their owner (an exchange): Redis never
 * calls the request code by name. Each gets the waiter's <owner>. */
struct redis_waiter_cbs {
    /* A session lookup's answer: the stored value, or NULL with 0 (miss,
     * error, timeout). */
    void (*session)(void *owner, const char *val, size_t n);
    /* An acknowledged store landed, or the wait for it timed out. */
    void (*stored)(void *owner);
    /* A global zone's decision (Redis's, or the on_redis_error fallback). */
    void (*zone)(void *owner, struct rl_zone *z, const struct rl_decision *d);
};

/* What an owner embeds to wait on Redis (zeroed, then cb and owner set). */
struct redis_waiter {
    struct redis_op *ops;              /* operations in flight for the owner */
    const struct redis_waiter_cbs *cb; /* where their answers go */
    void *owner;                       /* the callbacks' first argument */
};

/* Look up session <key> (its hash) in Redis. 0: started; the answer (or the
 * timeout) calls wt->cb->session(). -1: Redis not usable now (caller goes on). */
int redis_session_lookup(struct worker *w, struct redis_waiter *wt, uint64_t key);
/* Write session <key> -> <val> (n bytes: "upstream/server SID") for <ttl_ms>
 * (fire and forget). */
void redis_session_store(struct worker *w, uint64_t key, const char *val, size_t n,
                         uint64_t ttl_ms);
/* As redis_session_store, for a session learned from a response: 0 when the
 * write is on its way and the response should wait for it (the answer, or the
 * Redis timeout, calls wt->cb->stored()), so a client that takes the session
 * to another replica at once finds it there. -1: Redis not usable. */
int redis_session_store_ack(struct worker *w, struct redis_waiter *wt, uint64_t key,
                            const char *val, size_t n, uint64_t ttl_ms);

/* Extend the session's expiry in Redis to <ttl_ms> (a long session in active
 * use stays known to every replica). Fire and forget. */
void redis_session_touch(struct worker *w, uint64_t key, uint64_t ttl_ms);

/* Forget the waiter's operations in flight (their replies will be ignored). */
void redis_waiter_cancel(struct redis_waiter *wt);

/* Decide one request of global zone <z> for <key> in Redis: one EVALSHA of the
 * GCRA script (loaded once per connection). 0: started; the answer (or, after
 * the Redis timeout, the zone's on_redis_error fallback) calls
 * wt->cb->zone(owner, z, &decision). -1: Redis unusable right now (the caller
 * applies on_redis_error itself). */
int redis_zone_check(struct worker *w, struct redis_waiter *wt, struct rl_zone *z, const char *key,
                     size_t klen);

/* Is the worker's Redis connection up? */
bool redis_worker_up(const struct worker *w);

/* ---- control side ---- */

/* Start/stop the control thread's client (pub/sub for admin changes). */
void redis_control_sync(void);
void redis_control_stop(void);
/* Move the admin connections to the primary just published (redis_ha.c). */
void redis_admin_follow(void);
/* Publish an admin change line ("set ...") to the replicas and store it as a
 * persistent override. 1: Redis not configured; 0: sent; -1: Redis is
 * unreachable, the change is kept and published once the connection is back. */
int redis_admin_publish(const char *line);
/* Send a command on the control connection; <fn>(ctx, reply) runs with the
 * redisReply, or NULL when the connection went away. 0, or -1 when Redis is
 * not up (fn is not called). Control thread. */
int redis_control_command(void (*fn)(void *ctx, const void *reply), void *ctx, int argc,
                          const char **argv, const size_t *lens);

/* ---- shared session placements (redis_load.c) ---- */

struct gen;
struct server;
/* A new session was placed on <s> by worker <w> (<delta> 1), or taken back
 * (-1): update this replica's count in Redis (fire and forget). Worker. */
void redis_load_placed(struct worker *w, const struct server *s, int delta);
/* Read the other replicas' placements for the upstreams that place sessions
 * (one HGETALL per upstream, at most one round in flight). Control tick. */
void redis_load_refresh(struct gen *g);

/* ---- the primary and failover (redis_ha.c, control thread) ---- */

/* The primary workers and the admin connection use, published by the control
 * thread: every connection follows the same decision. */
struct redis_primary {
    uint64_t epoch; /* bumps on every change; 0: nothing published yet */
    bool known;     /* false: no primary now (connections stay down) */
    struct sock_addr addr;
    char text[SOCK_ADDR_STRLEN];
};
/* Any thread. */
void redis_primary_get(struct redis_primary *out);
/* Start, restart (settings changed) or stop discovery for the current
 * generation's redis block (control thread). */
void redis_ha_sync(void);
void redis_ha_stop(void);
/* A connection to the primary of <epoch> was told READONLY, LOADING or
 * MASTERDOWN (<why>): look for the primary again. Any thread. */
void redis_ha_suspect(uint64_t epoch, const char *why);
/* Put a replicated admin change in the outage counters (<kept>: queued,
 * otherwise dropped). */
void redis_queue_count_admin(bool kept);

/* The queue of writes waiting for a primary (redis_queue.c). */
struct redis_queue_stats {
    uint32_t len, cap; /* waiting now, queue_size */
    uint64_t queued;   /* writes that had to wait (or were replayed) */
    uint64_t dropped;  /* lost to the bound or refused by a primary */
    uint64_t written;  /* queued writes that reached a primary */
    uint64_t expired;  /* queued writes whose TTL ran out first */
};
/* Any thread. */
void redis_queue_stats(struct redis_queue_stats *out);

/* What "show redis", /stats and the status page say about Redis HA. */
struct redis_ha_info {
    char mode[16];                   /* "server", "servers", "sentinel" */
    char primary[SOCK_ADDR_STRLEN];  /* current primary, "" when none */
    char role[16];                   /* role the primary answered: master, slave, ... */
    char state[24];                  /* "up", "asking sentinels", "checking role", ... */
    char sentinel[SOCK_ADDR_STRLEN]; /* sentinel that answered last, "" */
    bool sentinel_subscribed;        /* +switch-master subscription up */
    char master[64];                 /* sentinel master name */
    char last_error[160];            /* last discovery error, "" */
    uint64_t epoch;                  /* of the published primary */
    uint64_t failovers;              /* changes of primary (or failover signals) */
    uint64_t last_failover_ms;       /* wall clock, 0: never */
};
/* A snapshot (control thread: admin socket, stats listener). */
void redis_ha_info_get(struct redis_ha_info *out);

/* Connection state and counters for metrics: the workers' figures summed, plus
 * the control connection's (redis_stats_add_control). */
struct redis_stats {
    bool configured;
    bool up;                 /* control connection (any worker's until it reports) */
    uint32_t workers_up;     /* worker connections up on the current primary */
    uint64_t errors;         /* failed commands and connections */
    uint64_t timeouts;       /* operations answered by their timeout */
    uint64_t reconnects;     /* connection attempts after a loss */
    uint64_t zone_fallbacks; /* global-zone decisions made without Redis */
    uint64_t admin_received;
    uint64_t malformed;         /* replies refused by their shape (redis_guard.c) */
    struct redis_queue_stats q; /* writes waiting for a primary */
    struct redis_ha_info ha;    /* primary, role, sentinels, failovers */
};
void redis_stats_get(struct redis_stats *out);

/* The control connection's figures (redis_admin.c, any thread): <up> is its
 * state now; <errors>, <reconnects> and <admin_received> are added to the
 * totals (pass the increments since the last call). */
void redis_stats_add_control(bool up, uint64_t errors, uint64_t reconnects,
                             uint64_t admin_received);

#endif
