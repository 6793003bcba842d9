/* SPDX-License-Identifier: MIT */
/* GCRA: a rate limit as one timestamp (the theoretical arrival time) per key.
 * Integer nanoseconds only in the decision, so local zones and the Redis script
 * of global zones compute the same answers. */
#include "config.h"

#include <tether/gcra.h>

void
gcra_params_init(struct gcra_params *p, double rate_per_sec, uint32_t burst)
{
    double t = rate_per_sec > 0 ? 1e9 / rate_per_sec : 1e18;
    if (t < 1)
        t = 1;
    if (t > 1e18) /* keep interval * (burst + 1) far from overflowing */
        t = 1e18;
    p->interval_ns = (uint64_t)(t + 0.5);
    /* saturate rather than wrap for absurd bursts */
    if (burst && p->interval_ns > UINT64_MAX / 4 / burst)
        p->tolerance_ns = UINT64_MAX / 4;
    else
        p->tolerance_ns = (uint64_t)burst * p->interval_ns;
    p->limit = burst == UINT32_MAX ? UINT32_MAX : burst + 1;
}

void
gcra_decide(uint64_t tat, uint64_t now_ns, const struct gcra_params *p, uint64_t *new_tat,
            struct gcra_result *r)
{
    const uint64_t T = p->interval_ns ? p->interval_ns : 1;
    /* base - now is how far the state runs ahead of the clock: the backlog of
     * admitted-but-not-yet-earned requests, in time. */
    const uint64_t base = tat > now_ns ? tat : now_ns;
    const uint64_t ahead = base - now_ns;

    /* Admitted when max(tat, now) + T - now <= tolerance + T, i.e. ahead <=
     * tolerance: written without the "+ T" on both sides so it cannot overflow. */
    if (ahead <= p->tolerance_ns) {
        uint64_t room = (p->tolerance_ns - ahead) / T; /* floor((tol + T - (new_tat - now)) / T) */
        *new_tat = base + T;
        r->allowed = true;
        r->remaining = room > UINT32_MAX ? UINT32_MAX : (uint32_t)room;
        r->retry_after_ns = 0;
        r->reset_ns = ahead + T;
        r->delay_ns = ahead;
        return;
    }
    *new_tat = tat;
    r->allowed = false;
    r->remaining = 0;
    /* (base + T - now) - (tolerance + T): when the backlog has drained enough
     * for one more to fit. Always > 0 here; at least 1 ns so "retry now" is never
     * told to a denied client. */
    uint64_t wait = ahead - p->tolerance_ns;
    r->retry_after_ns = wait ? wait : 1;
    r->reset_ns = ahead;
    r->delay_ns = 0;
}
