/* SPDX-License-Identifier: MIT */
/* Pure balancing building blocks: the consistent-hash lookup table, the smooth
 * weighted round-robin schedule and the weighted alias table. Built off the hot
 * path (control thread), read lock-free by workers; O(1) per pick. */
#ifndef TETHER_LB_H
#define TETHER_LB_H

#include <stddef.h>
#include <stdint.h>

/* ---- consistent hash (lb_hash.c) ----
 * A Maglev-style lookup table of <size> slots (O(1) lookup), filled from a
 * weighted hash ring whose points derive only from each member's stable key, so
 * the table is the same on every replica, whatever the member order, and removing
 * a member moves only the keys that member owned. */

struct chash_member {
    uint64_t key;    /* stable identity of the server (hash of "upstream/server") */
    uint32_t weight; /* relative weight, > 0 */
    uint32_t index;  /* the caller's index for this member, returned by lookups */
};

struct chash_table {
    uint32_t size; /* number of slots */
    uint32_t nmembers;
    uint32_t *slots; /* slot -> member index (chash_member.index) */
};

/* Build a table over <n> members (n >= 1). <size> 0 picks a prime >= 100 * n
 * (at least 65537). Returns NULL on allocation failure or n == 0. */
struct chash_table *chash_build(const struct chash_member *m, size_t n, uint32_t size);
void chash_free(struct chash_table *t);
/* Hash a key (session id) with xxHash (XXH3 64-bit, fixed seed). */
uint64_t chash_hash(const void *p, size_t n);

/* Member index for a key hash. */
static inline uint32_t
chash_lookup(const struct chash_table *t, uint64_t hash)
{
    /* Lemire's multiply-shift range reduction, no division. */
    return t->slots[(uint32_t)(((unsigned __int128)hash * t->size) >> 64)];
}

/* ---- smooth weighted round-robin schedule (lb_schedule.c) ----
 * The sequence nginx's smooth weighted round-robin would produce, precomputed once;
 * a picker keeps its own cursor, so a pick is O(1) and lock-free. */

struct wrr_schedule {
    uint32_t len;  /* entries in seq */
    uint32_t *seq; /* member indices (0..n-1 of the weights array) */
};

/* Build the schedule for <n> weights (zero weights never appear). Weights are
 * divided by their gcd; when the sum exceeds <max_len> they are scaled down
 * proportionally (each non-zero weight stays >= 1). NULL when all are zero. */
struct wrr_schedule *wrr_build(const uint32_t *weights, size_t n, uint32_t max_len);
void wrr_free(struct wrr_schedule *s);

/* ---- weighted random choice (lb_schedule.c) ----
 * Walker/Vose alias table: O(1) weighted pick from one 64-bit random number. */

struct alias_table {
    uint32_t n;
    uint32_t *alias; /* per column: the other member */
    uint32_t *prob;  /* per column: threshold in 1/2^32 units to keep the column */
};

struct alias_table *alias_build(const uint32_t *weights, size_t n); /* NULL if all zero */
void alias_free(struct alias_table *t);

/* Pick an index 0..n-1 with probability weight/sum using random bits <rnd>. */
static inline uint32_t
alias_pick(const struct alias_table *t, uint64_t rnd)
{
    uint32_t col = (uint32_t)(((rnd >> 32) * (uint64_t)t->n) >> 32);
    return ((uint32_t)rnd < t->prob[col]) ? col : t->alias[col];
}

#endif
