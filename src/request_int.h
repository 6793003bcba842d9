/* SPDX-License-Identifier: MIT */
/* Private to the request_*.c files: the steps of a request's life they call in
 * each other. Not part of the proxy's public interface (request.h). */
#ifndef TETHER_REQUEST_INT_H
#define TETHER_REQUEST_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <tether/exchange.h>
#include <tether/http1.h>
#include <tether/proxy-types.h>

struct upstream;

/* GET, HEAD, OPTIONS, PUT, DELETE, TRACE: safe to send again (RFC 9110 9.2.2). */
static inline bool
method_idempotent(unsigned m)
{
    return m == HTTP_M_GET || m == HTTP_M_HEAD || m == HTTP_M_OPTIONS || m == HTTP_M_PUT ||
           m == HTTP_M_DELETE || m == HTTP_M_TRACE;
}

static inline double
ms_to_s(uint64_t ms)
{
    return (double)ms / 1000.0;
}

/* The one door of the exchange's state machine (doc/internals/
 * state-machines.md): every transition goes through it; debug builds assert
 * that it is one the diagram allows, and the debug log shows it. */
void request_set_state(struct request *req, enum request_state to);

/* request.c: upstream side events (the upconn callbacks). */
void request_up_connected(struct request *req);
void request_up_failed(struct request *req, unsigned term, int err);
void request_up_readable(struct request *req);
void request_up_writable(struct request *req);
void request_up_timeout(struct request *req);
/* The answer of a global zone (Redis, or its fallback). */
void request_zone_answer(struct request *req, struct rl_zone *z, const struct rl_decision *d);
/* A held request (rate-limit pacing, Redis answer) may go on. */
void request_resume(struct request *req);

/* request.c */
void request_connect(struct request *req);
void request_complete(struct request *req);

/* request_limit.c: check the route's zones; false when the request was answered. */
bool request_rate_limit(struct request *req, const char *base);
/* Answer with the zone's status, Retry-After and RateLimit-* headers. */
void request_rate_limited(struct request *req, struct rl_zone *z, const struct rl_decision *d);
/* Every server is full for this new session: the upstream's shed answer. */
void request_shed(struct request *req);

/* request_response.c */
void request_on_response(struct request *req);

/* request_affinity.c: the affinity step (affinity.h decides, the session
 * store remembers, this applies). */
enum { REQ_AFF_GO = 0, REQ_AFF_WAIT };
/* Read what affinity needs from the head at <base> (balance hash key, cookie,
 * session id) before the head is consumed, and look the session up in the
 * store: REQ_AFF_WAIT while Redis is asked (request_affinity_answer, or the
 * hold timer, ends the wait), else REQ_AFF_GO. */
int request_affinity_prepare(struct request *req, const char *base, uint64_t now_ms);
/* The store's Redis lookup answered <v> (<n> bytes), NULL on a miss or timeout. */
void request_affinity_answer(struct request *req, const char *v, size_t n);
/* Choose req->srv (and the outcome, the cookie, placements, pins); false when
 * no server is usable (req->shed: because none has room for a new session). */
bool request_affinity_pick(struct request *req, uint64_t now_ms);
/* The server a retry should try next, or NULL. */
struct server *request_affinity_repick(struct request *req, uint64_t now_ms);
/* The exchange moves to <next> (retry or redispatch): re-pin, re-place, hold it. */
void request_affinity_move(struct request *req, struct server *next);
/* The server the exchange goes to: holds a reference on <s> (NULL drops it), so
 * a membership change cannot free it under the exchange. */
void request_set_server(struct request *req, struct server *s);
/* A placed new session is settled (its response head arrived, or the exchange
 * is being freed): counted and published to the other replicas. Once. */
void request_affinity_settle(struct request *req);
/* The exchange is being freed or gives up waiting: cancel its Redis waits. */
void request_affinity_done(struct request *req);
/* The response head is parsed (<buf> holds it): learn a session id from a
 * header or Set-Cookie (when the route learns), or arm JSON body learning. */
void request_affinity_response(struct request *req, const char *buf);
/* JSON learning: feed the first body bytes; true when done. */
bool request_affinity_learn_body(struct request *req, const char *p, size_t n);

/* request_retry.c */
void request_fail(struct request *req, unsigned term, unsigned status);
bool request_retry(struct request *req, unsigned term, int err);
/* A 502/503/504 answer before anything reached the client: retry it when
 * retry_on lists that status and the request is idempotent. */
bool request_retry_status(struct request *req, unsigned status);
/* This try may be resent after per_try_timeout: the route has one, retry_on
 * lists timeout, and the request is idempotent with no body. */
bool request_per_try_ok(const struct request *req);
void retry_budget_count(struct upstream *u, uint32_t worker, bool retry);
void retry_budget_release(struct request *req);

#endif
