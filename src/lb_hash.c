/* SPDX-License-Identifier: MIT */
/* Consistent hashing: a weighted hash ring, flattened into a lookup table so a pick
 * is one multiply and one load. Built off the hot path by the control thread. */
#include "config.h"

#include <tether/lb.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Seeds are part of the on-the-wire contract between replicas: changing one
 * remaps every session, so they are fixed forever. */
#define CHASH_KEY_SEED  0x7465746865722d6bULL /* "tether-k": session keys */
#define CHASH_RING_SEED 0x7465746865722d72ULL /* "tether-r": ring points */

/* A member of average weight gets about this many ring points. The share of the
 * ring a member owns deviates from its weight by about 1/sqrt(points), so many
 * points are needed for shares within a few percent (32768 points: ~0.6%). */
#define CHASH_POINTS_AVG 32768u
/* Bound on the whole ring (before rounding the scale), so building stays cheap
 * (one hash per point) with hundreds of members. */
#define CHASH_POINTS_MAX (1u << 20)

#define CHASH_MIN_SIZE 65537u

/* A ring point seen from one slot: the smallest (position, ordinal) so far. */
struct ring_point {
    uint64_t pos; /* position on the ring: hash(member key, point number) */
    uint32_t ord; /* member ordinal in the canonical (key, index) order; NONE: empty */
};

#define NONE UINT32_MAX

uint64_t
chash_hash(const void *p, size_t n)
{
    return XXH3_64bits_withSeed(p, n, CHASH_KEY_SEED);
}

/* Position of point <j> of the member with <key>. Serialised little-endian so
 * every replica, whatever its byte order, places the point at the same spot. */
static uint64_t
point_pos(uint64_t key, uint32_t j)
{
    uint8_t b[12];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(key >> (8 * i));
    for (int i = 0; i < 4; i++)
        b[8 + i] = (uint8_t)(j >> (8 * i));
    return XXH3_64bits_withSeed(b, sizeof(b), CHASH_RING_SEED);
}

static int
cmp_member(const void *a, const void *b)
{
    const struct chash_member *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return 0;
}

/* Ties between equal positions (a 2^-64 event) go to the lower ordinal, which
 * depends only on the members' keys and indices: the table stays canonical. */
static inline bool
point_less(uint64_t pos, uint32_t ord, const struct ring_point *b)
{
    return pos < b->pos || (pos == b->pos && ord < b->ord);
}

static bool
is_prime(uint32_t v)
{
    if (v < 2)
        return false;
    if (v % 2 == 0)
        return v == 2;
    for (uint32_t d = 3; (uint64_t)d * d <= v; d += 2)
        if (v % d == 0)
            return false;
    return true;
}

static uint32_t
default_size(size_t n)
{
    uint64_t want = (uint64_t)n * 100;
    if (want < CHASH_MIN_SIZE)
        want = CHASH_MIN_SIZE;
    if (want > 4294967291u) /* largest 32-bit prime */
        return 4294967291u;
    uint32_t v = (uint32_t)want;
    while (!is_prime(v))
        v++;
    return v;
}

/* The scale (ring points per unit of weight) is a power of two 2^shift chosen so
 * the ring holds about min(CHASH_POINTS_AVG * n, CHASH_POINTS_MAX) points. Being a
 * power of two (rounded in log scale) it does not move when the average weight
 * changes a little, and with equal weights it never depends on the member count
 * (below the bound): a member joining or leaving leaves every other member's
 * points exactly where they were, which is what makes remapping minimal. Integer
 * arithmetic only, so all replicas agree. Returns shift, negative to divide. */
static int
scale_shift(uint64_t total_weight, size_t n)
{
    unsigned __int128 target = (unsigned __int128)CHASH_POINTS_AVG * n;
    if (target > CHASH_POINTS_MAX)
        target = CHASH_POINTS_MAX;
    unsigned __int128 w = total_weight;
    int shift = 0;
    if (w <= target) {
        while ((w << (shift + 1)) <= target)
            shift++;
        /* round up when target / (w * 2^shift) >= sqrt(2) */
        unsigned __int128 v = w << shift;
        if (target * target >= 2 * v * v)
            shift++;
    } else {
        int j = 0;
        while ((target << (j + 1)) <= w)
            j++;
        unsigned __int128 v = target << j;
        if (w * w >= 2 * v * v)
            j++;
        shift = -j;
    }
    return shift;
}

static uint64_t
member_points(uint32_t weight, int shift)
{
    if (weight == 0)
        return 0;
    if (shift >= 0)
        return (uint64_t)weight << shift;
    uint64_t p = ((uint64_t)weight + (1ULL << (-shift - 1))) >> -shift;
    return p ? p : 1;
}

struct chash_table *
chash_build(const struct chash_member *m, size_t n, uint32_t size)
{
    struct chash_table *t = NULL;
    struct chash_member *mem = NULL;
    struct ring_point *upper = NULL, *lowest = NULL;

    if (n == 0 || n >= NONE)
        return NULL;
    if (size == 0)
        size = default_size(n);

    /* Canonical order makes the tie-break between equal positions (and so the
     * whole table) independent of the order the caller lists members in. */
    mem = malloc(n * sizeof(*mem));
    if (!mem)
        goto fail;
    memcpy(mem, m, n * sizeof(*mem));
    qsort(mem, n, sizeof(*mem), cmp_member);

    /* Weight 0 is outside the contract; such members get no points, unless all
     * are 0, in which case all count as 1 so the table is never empty. */
    uint64_t total_weight = 0;
    for (size_t i = 0; i < n; i++)
        total_weight += mem[i].weight;
    bool all_zero = total_weight == 0;
    if (all_zero) {
        for (size_t i = 0; i < n; i++)
            mem[i].weight = 1;
        total_weight = n;
    }
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++)
        nonzero += mem[i].weight > 0;
    int shift = scale_shift(total_weight, nonzero);

    t = calloc(1, sizeof(*t));
    if (!t)
        goto fail;
    t->slots = malloc((size_t)size * sizeof(*t->slots));
    upper = malloc((size_t)size * sizeof(*upper));
    lowest = malloc((size_t)size * sizeof(*lowest));
    if (!t->slots || !upper || !lowest)
        goto fail;
    t->size = size;
    t->nmembers = (uint32_t)n;
    for (uint32_t i = 0; i < size; i++) {
        upper[i] = (struct ring_point){UINT64_MAX, NONE};
        lowest[i] = (struct ring_point){UINT64_MAX, NONE};
    }

    /* chash_lookup sends hash h to slot floor(h * size / 2^64): slot i holds the
     * keys of [i * 2^64 / size, (i + 1) * 2^64 / size). Slot i takes the owner of
     * the ring at the middle of that range: the first point p, wrapping, with
     * p * size >= (i + 1/2) * 2^64. So the table is the ring itself at slot
     * resolution, without the noise that sampling at hash(i) would add.
     * No sort is needed: each point falls in slot floor(p * size / 2^64), in its
     * upper half when the low word of p * size has its top bit set. Per slot keep
     * the lowest point of the upper half and the lowest point overall; then one
     * backward walk gives every slot the lowest upper-half point, or else the
     * lowest point of the next non-empty slot. O(points + size). */
    for (size_t i = 0; i < n; i++) {
        uint64_t np = member_points(mem[i].weight, shift);
        for (uint64_t j = 0; j < np; j++) {
            uint64_t pos = point_pos(mem[i].key, (uint32_t)j);
            unsigned __int128 r = (unsigned __int128)pos * size;
            uint32_t slot = (uint32_t)(r >> 64);
            if (point_less(pos, (uint32_t)i, &lowest[slot]))
                lowest[slot] = (struct ring_point){pos, (uint32_t)i};
            if (((uint64_t)r >> 63) && point_less(pos, (uint32_t)i, &upper[slot]))
                upper[slot] = (struct ring_point){pos, (uint32_t)i};
        }
    }
    /* the wrap-around successor of the last slots: the lowest point on the ring */
    uint32_t next = NONE;
    for (uint32_t i = 0; i < size && next == NONE; i++)
        next = lowest[i].ord;
    for (uint32_t i = size; i-- > 0;) {
        uint32_t ord = upper[i].ord != NONE ? upper[i].ord : next;
        t->slots[i] = mem[ord].index;
        if (lowest[i].ord != NONE)
            next = lowest[i].ord;
    }
    free(upper);
    free(lowest);
    free(mem);
    return t;

fail:
    if (t)
        free(t->slots);
    free(t);
    free(upper);
    free(lowest);
    free(mem);
    return NULL;
}

void
chash_free(struct chash_table *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}
