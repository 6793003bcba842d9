/* SPDX-License-Identifier: MIT */
/* Active health checks from the control thread: HTTP requests on nonblocking
 * sockets spread over the interval, rise/fall, expected status and body, every
 * transition logged once and counted, plans rebuilt on change. */
#ifndef TETHER_HEALTH_H
#define TETHER_HEALTH_H

struct gen;

/* Check the servers of <g> (carrying state over from the previous generation). */
void health_sync(struct gen *g);
void health_stop(void);

#endif
