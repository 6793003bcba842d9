/* SPDX-License-Identifier: MIT */
/* Private glue between metrics.c (the metric table, Prometheus text) and
 * metrics_json.c (the /stats JSON): table walk and shared label names. */
#ifndef TETHER_METRICS_INT_H
#define TETHER_METRICS_INT_H

#include <stddef.h>

/* Where a simple metric's value comes from: a process-wide counter (enum
 * gstat), a per-server value (enum snap_sv), or code written for it. */
enum metric_src {
    SRC_CODE = 0,
    SRC_GLOBAL,
    SRC_SERVER,
};

/* The next metric with source <src> (SRC_GLOBAL or SRC_SERVER) at or after table
 * position *pos: returns its key in /stats, sets *idx (enum gstat or enum
 * snap_sv) and moves *pos past it; NULL at the end of the table. */
const char *metrics_json_next(enum metric_src src, size_t *pos, unsigned *idx);

/* Status code classes, index = status / 100 (0 = other). */
extern const char *const metrics_code_classes[6];
/* Server admin states, index = enum admin state. */
extern const char *const metrics_admin_states[3];
/* Affinity outcomes, in the order of GS_AFF_COOKIE .. GS_AFF_COOKIE_UNKNOWN. */
#define METRICS_AFF_OUTCOMES 9
extern const char *const metrics_affinity_outcomes[METRICS_AFF_OUTCOMES];

#endif
