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

#include <tether/exchange.h>
#include <tether/proxy-types.h>

/* The downstream-facing functions (new, free, start, readable, writable,
 * gone, log) are in exchange.h; the steps between them are private to the
 * request*.c files (request_int.h). */

#endif
