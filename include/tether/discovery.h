/* SPDX-License-Identifier: MIT */
/* DNS service discovery: the discover names of every upstream resolved with
 * c-ares on the control thread's libev loop (A and AAAA, or SRV), re-resolved
 * when their records expire, the answers handed to the membership. A failed
 * lookup (timeout, SERVFAIL, unreachable resolver) keeps the last good set.
 * Control thread only. */
#ifndef TETHER_DISCOVERY_H
#define TETHER_DISCOVERY_H

#include <stdbool.h>
#include <stdint.h>

struct gen;

/* Follow <g>'s discover lines: resolvers and names are set up again and every
 * name is resolved at once (start and reload). */
void discovery_sync(struct gen *g);

/* Stop every lookup and free everything (shutdown). */
void discovery_stop(void);

/* Counters of one discovered name (by upstream and name), kept across reloads. */
struct discovery_stats {
    const char *upstream;
    const char *name;
    uint64_t ok;           /* answers with addresses */
    uint64_t empty;        /* NXDOMAIN or no records: the set becomes empty */
    uint64_t failed;       /* timeouts, SERVFAIL, unreachable: the set is kept */
    uint64_t last_good_ms; /* wall clock of the last good answer, 0 never */
    uint32_t addresses;    /* in the last good answer */
    bool failing;          /* the last lookup failed */
    char error[96];        /* why, when failing */
};

/* Call <fn> for every name known (stats of names no longer configured stay
 * until restart). */
void discovery_each(void (*fn)(void *ctx, const struct discovery_stats *st), void *ctx);

#endif
