/* SPDX-License-Identifier: MIT */
/* GCRA (generic cell rate algorithm), pure: one decision from a theoretical
 * arrival time. Used by local zones (with an atomic CAS) and mirrored by the
 * Redis script of global zones. */
#ifndef TETHER_GCRA_H
#define TETHER_GCRA_H

#include <stdbool.h>
#include <stdint.h>

struct gcra_params {
    uint64_t interval_ns;  /* emission interval T = 1 s / rate */
    uint64_t tolerance_ns; /* burst tolerance = burst * T */
    uint32_t limit;        /* burst + 1: requests admitted at once from a fresh state */
};

struct gcra_result {
    bool allowed;
    uint32_t remaining;      /* requests still admissible right now */
    uint64_t retry_after_ns; /* when denied: time until one more would be admitted */
    uint64_t reset_ns;       /* time until the state is fresh again (full burst) */
    uint64_t delay_ns;       /* when allowed: how far ahead of the rate this request is */
};

/* Fill <p> for <rate_per_sec> (> 0) and <burst> (>= 0). */
void gcra_params_init(struct gcra_params *p, double rate_per_sec, uint32_t burst);

/* Decide one request arriving at <now_ns> against state <tat> (0 = fresh).
 * Admitted when max(tat, now) + T - now <= tolerance + T; then *new_tat is that
 * new value; when denied *new_tat = tat. From a fresh state this admits burst + 1
 * at once, then one per T: rate * t + burst + 1 over t. */
void gcra_decide(uint64_t tat, uint64_t now_ns, const struct gcra_params *p, uint64_t *new_tat,
                 struct gcra_result *r);

#endif
