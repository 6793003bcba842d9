/* SPDX-License-Identifier: MIT */
/* Precomputed weighted schedules: nginx's smooth weighted round-robin sequence and
 * a Walker/Vose alias table, so workers pick in O(1) without locks. */
#include "config.h"

#include <tether/lb.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Schedule length used when the caller passes max_len 0. */
#define WRR_DEFAULT_MAX_LEN 65536u

static uint64_t
gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* Divide the non-zero weights by their gcd: the smooth WRR sequence is invariant
 * under scaling, so this only shortens its period. Returns the new sum. */
static uint64_t
reduce_gcd(uint64_t *w, size_t n)
{
    uint64_t g = 0, sum = 0;
    for (size_t i = 0; i < n; i++)
        g = gcd64(g, w[i]);
    for (size_t i = 0; i < n; i++) {
        w[i] /= g;
        sum += w[i];
    }
    return sum;
}

/* Scale weights so their sum is at most <max_len> (or the number of non-zero
 * weights, if that is larger), each non-zero weight staying >= 1. The floor of
 * each scaled weight can be bumped to 1, so shrink the target until it fits. */
static uint64_t
scale_down(uint64_t *w, size_t n, uint64_t sum, uint64_t max_len)
{
    uint64_t *orig = malloc(n * sizeof(*orig));
    if (!orig)
        return 0;
    memcpy(orig, w, n * sizeof(*orig));
    uint64_t target = max_len, out = 0;
    for (;;) {
        out = 0;
        for (size_t i = 0; i < n; i++) {
            if (!orig[i]) {
                w[i] = 0;
                continue;
            }
            uint64_t v = (uint64_t)(((unsigned __int128)orig[i] * target) / sum);
            w[i] = v ? v : 1;
            out += w[i];
        }
        if (out <= max_len || target <= 1)
            break;
        uint64_t over = out - max_len;
        target = target > over ? target - over : 1;
    }
    free(orig);
    return reduce_gcd(w, n);
}

/* Are the non-zero weights all 1 (equal weights, reduced by their gcd)? */
static bool
all_ones(const uint64_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (w[i] > 1)
            return false;
    return true;
}

struct wrr_schedule *
wrr_build(const uint32_t *weights, size_t n, uint32_t max_len)
{
    struct wrr_schedule *s = NULL;
    uint64_t *w = NULL;
    int64_t *cur = NULL;

    if (max_len == 0)
        max_len = WRR_DEFAULT_MAX_LEN;
    w = malloc((n ? n : 1) * sizeof(*w));
    cur = calloc(n ? n : 1, sizeof(*cur));
    if (!w || !cur)
        goto fail;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        w[i] = weights[i];
        sum += w[i];
    }
    if (sum == 0)
        goto fail;
    sum = reduce_gcd(w, n);
    if (sum > max_len) {
        sum = scale_down(w, n, sum, max_len);
        if (sum == 0)
            goto fail;
    }
    if (sum > UINT32_MAX)
        goto fail;

    s = calloc(1, sizeof(*s));
    if (!s)
        goto fail;
    s->seq = malloc((size_t)sum * sizeof(*s->seq));
    if (!s->seq)
        goto fail;
    s->len = (uint32_t)sum;

    /* nginx's smooth WRR: every step each member gains its weight, the largest
     * current value wins (first index on ties) and pays back the total. After
     * <sum> steps every current value is back to 0, so this is the full period.
     * O(sum * n), done once per build; with equal weights (every discovered A
     * record) it is each member once, in index order: O(n). */
    if (all_ones(w, n)) {
        uint32_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (w[i])
                s->seq[k++] = (uint32_t)i;
        goto done;
    }
    for (uint32_t k = 0; k < s->len; k++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            if (!w[i])
                continue;
            cur[i] += (int64_t)w[i];
            if (best == SIZE_MAX || cur[i] > cur[best])
                best = i;
        }
        cur[best] -= (int64_t)sum;
        s->seq[k] = (uint32_t)best;
    }
done:
    free(w);
    free(cur);
    return s;

fail:
    if (s)
        free(s->seq);
    free(s);
    free(w);
    free(cur);
    return NULL;
}

void
wrr_free(struct wrr_schedule *s)
{
    if (!s)
        return;
    free(s->seq);
    free(s);
}

struct alias_table *
alias_build(const uint32_t *weights, size_t n)
{
    struct alias_table *t = NULL;
    unsigned __int128 *mass = NULL;
    uint32_t *small = NULL, *large = NULL;

    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    if (total == 0 || n > UINT32_MAX)
        return NULL;

    t = calloc(1, sizeof(*t));
    mass = malloc(n * sizeof(*mass));
    small = malloc(n * sizeof(*small));
    large = malloc(n * sizeof(*large));
    if (!t || !mass || !small || !large)
        goto fail;
    t->alias = malloc(n * sizeof(*t->alias));
    t->prob = malloc(n * sizeof(*t->prob));
    if (!t->alias || !t->prob)
        goto fail;
    t->n = (uint32_t)n;

    /* Vose's method in exact integers: every column has capacity <total>, and
     * member i brings mass weight_i * n, so the masses fill the n columns exactly.
     * No floating point means no column loses or gains mass to rounding (beyond
     * the final 2^-32 quantisation of prob). */
    size_t ns = 0, nl = 0;
    for (size_t i = 0; i < n; i++) {
        mass[i] = (unsigned __int128)weights[i] * n;
        if (mass[i] < total)
            small[ns++] = (uint32_t)i;
        else
            large[nl++] = (uint32_t)i;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[nl - 1];
        t->prob[s] = (uint32_t)((mass[s] << 32) / total);
        t->alias[s] = l;
        mass[l] -= total - mass[s];
        if (mass[l] < total) {
            nl--;
            small[ns++] = l;
        }
    }
    /* Leftovers are full columns (exactly, or up to rounding in the ones above):
     * keep them always; the alias only matters for the one value in 2^32 that
     * is not below UINT32_MAX, so it points to the column itself. */
    while (nl) {
        uint32_t l = large[--nl];
        t->prob[l] = UINT32_MAX;
        t->alias[l] = l;
    }
    while (ns) {
        uint32_t s = small[--ns];
        t->prob[s] = UINT32_MAX;
        t->alias[s] = s;
    }
    free(mass);
    free(small);
    free(large);
    return t;

fail:
    alias_free(t);
    free(mass);
    free(small);
    free(large);
    return NULL;
}

void
alias_free(struct alias_table *t)
{
    if (!t)
        return;
    free(t->alias);
    free(t->prob);
    free(t);
}
