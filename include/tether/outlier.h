/* SPDX-License-Identifier: MIT */
/* Passive health (outlier detection) in the workers: consecutive connect
 * failures, resets, timeouts or 5xx eject a server for a period that grows with
 * each ejection, never more than max_ejected of an upstream at once. The control
 * thread re-admits servers whose ejection ended and rebuilds plans. */
#ifndef TETHER_OUTLIER_H
#define TETHER_OUTLIER_H

#include <stdbool.h>
#include <stdint.h>

struct server;
struct server_rt;
struct upstream;

/* A failure seen by worker <worker> on <s>. */
void outlier_failure(struct server *s, uint32_t worker);
/* A response with <status> from <s> (a non-5xx resets the error streak). */
void outlier_success(struct server *s, unsigned status);
/* Control thread: an active check of <rt> (a server of <u>) passed. Ends its
 * ejection, as Envoy does, unless outlier { uneject_on_health_pass off; };
 * true when it did (the plan must be rebuilt). */
bool outlier_health_pass(const struct upstream *u, struct server_rt *rt, uint64_t now_ms);
/* Control thread: end expired ejections; true when the plan must be rebuilt. */
int outlier_tick(struct upstream *u, uint64_t now_ms);

#endif
