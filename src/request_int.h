/* SPDX-License-Identifier: MIT */
/* Private to the request_*.c files: the steps of a request's life they call in
 * each other. Not part of the proxy's public interface (request.h). */
#ifndef TETHER_REQUEST_INT_H
#define TETHER_REQUEST_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <tether/proxy-types.h>

struct upstream;

static inline double
ms_to_s(uint64_t ms)
{
    return (double)ms / 1000.0;
}

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
