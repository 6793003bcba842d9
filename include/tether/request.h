/* SPDX-License-Identifier: MIT */
/* One request's life:
 *
 *   head parsed -> checks (method, path, size) -> route -> rate limits
 *     -> affinity chain / balancer -> head rewritten for the pod (kept for retry)
 *     -> upstream connection (pool or connect) -> head + body streamed
 *     -> response head parsed -> learn session, cookie -> head rewritten for the
 *        client -> body streamed with back-pressure -> access log, counters
 *     -> 101: tunnel
 *
 * A connect failure, refusal or a reset before any response byte is retried on
 * another server while retries, the retry budget and idempotency allow. */
#ifndef TETHER_REQUEST_H
#define TETHER_REQUEST_H

#include <stdbool.h>

#include <tether/proxy-types.h>

struct request *request_new(struct worker *w, struct client *cli);
/* Return to the worker's free list (buffers released, upconn detached). */
void request_free(struct request *req);
/* The server this request goes to: holds a reference on <s> (NULL drops it),
 * so a membership change cannot free it under the request. */
void request_set_server(struct request *req, struct server *s);

/* The request head is complete in cli->ibuf: run the request. */
void request_start(struct request *req, uint32_t head_len);

/* Client side events for the request in progress. */
void request_client_readable(struct request *req);
void request_client_writable(struct request *req);
/* The client went away (EOF on a request still sending, reset, timeout). */
void request_client_gone(struct request *req, unsigned term);

/* Upstream side events (from upstream_conn.c). */
void request_up_connected(struct request *req);
void request_up_failed(struct request *req, unsigned term, int err);
void request_up_readable(struct request *req);
void request_up_writable(struct request *req);
void request_up_timeout(struct request *req);

/* The answer of a global zone (Redis, or its fallback). */
void request_zone_answer(struct request *req, struct rl_zone *z, const struct rl_decision *d);

/* A held request (rate-limit pacing, Redis answer) may go on. */
void request_resume(struct request *req);

/* Write the access log line and count the request. */
void request_log(struct request *req);

/* Human name of a termination reason ("server_reset"). */
const char *term_name(unsigned term);
const char *aff_outcome_name(unsigned aff);

#endif
