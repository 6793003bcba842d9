/* SPDX-License-Identifier: MIT */
/* The stats listener: /metrics (Prometheus text), /stats (JSON) and / (the live
 * status page). Served by the control thread. */
#ifndef TETHER_STATS_HTTP_H
#define TETHER_STATS_HTTP_H

struct gen;

/* Open, keep or move the stats listener for <g>'s settings. */
void stats_http_sync(struct gen *g);
void stats_http_stop(void);

#endif
