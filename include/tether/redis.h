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

struct request;
struct server;
struct worker;
struct conf_redis;
struct rl_zone;

/* ---- worker side (called on the worker's thread) ---- */

/* (Re)connect the worker's client for the Redis settings of its generation;
 * no-op when unchanged; disconnects when Redis is no longer configured. */
void redis_worker_sync(struct worker *w);
void redis_worker_stop(struct worker *w);

/* Look up req->sid in Redis. 0: started; the answer sets req->learned_srv (when
 * the stored server is in the request's upstream), clears req->aff_pending and
 * calls request_resume(). -1: Redis not usable now (caller goes on). */
int redis_session_lookup(struct request *req);
/* Write req->sid -> <s> with the affinity TTL (fire and forget). */
void redis_session_store(struct request *req, const struct server *s);
/* As redis_session_store, for a session learned from a response: 0 when the
 * write is on its way and the response should wait for it (the answer, or the
 * Redis timeout, clears req->store_pending and calls
 * request_client_writable()), so a client that takes the session to another
 * replica at once finds it there. -1: Redis not usable, nothing to wait for. */
int redis_session_store_ack(struct request *req, const struct server *s);

/* Extend the session's expiry in Redis (a long session in active use stays
 * known to every replica). Fire and forget. */
void redis_session_touch(struct request *req);

/* Forget the request's operation in flight (its reply will be ignored). */
void redis_request_cancel(struct request *req);

/* Decide one request of global zone <z> for <key> in Redis: one EVALSHA of the
 * GCRA script (loaded once per connection). 0: started; the answer (or, after
 * the Redis timeout, the zone's on_redis_error fallback) calls
 * request_zone_answer(req, z, &decision). -1: Redis unusable right now (the
 * caller applies on_redis_error itself). */
int redis_zone_check(struct request *req, struct rl_zone *z, const char *key, size_t klen);

/* Is the worker's Redis connection up? */
bool redis_worker_up(const struct worker *w);

/* ---- control side ---- */

/* Start/stop the control thread's client (pub/sub for admin changes). */
void redis_control_sync(void);
void redis_control_stop(void);
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
/* A new session was placed on <s> by <req>'s worker (<delta> 1), or taken
 * back (-1): update this replica's count in Redis (fire and forget). Worker. */
void redis_load_placed(struct request *req, const struct server *s, int delta);
/* Read the other replicas' placements for the upstreams that place sessions
 * (one HGETALL per upstream, at most one round in flight). Control tick. */
void redis_load_refresh(struct gen *g);

/* Connection state and counters for metrics: the workers' figures summed, plus
 * the control connection's (redis_stats_add_control). */
struct redis_stats {
    bool configured;
    bool up;                 /* control connection (any worker's until it reports) */
    uint32_t workers_up;     /* worker connections up */
    uint64_t errors;         /* failed commands and connections */
    uint64_t timeouts;       /* operations answered by their timeout */
    uint64_t reconnects;     /* connection attempts after a loss */
    uint64_t zone_fallbacks; /* global-zone decisions made without Redis */
    uint64_t admin_received;
    uint64_t malformed; /* replies refused by their shape (redis_guard.c) */
};
void redis_stats_get(struct redis_stats *out);

/* The control connection's figures (redis_admin.c, any thread): <up> is its
 * state now; <errors>, <reconnects> and <admin_received> are added to the
 * totals (pass the increments since the last call). */
void redis_stats_add_control(bool up, uint64_t errors, uint64_t reconnects,
                             uint64_t admin_received);

#endif
