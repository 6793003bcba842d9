/* SPDX-License-Identifier: MIT */
/* Unit tests for the pure balancing blocks: consistent-hash table (determinism,
 * measured remapping, weighted shares), smooth WRR schedule, alias table. */
#include "config.h"

#include <tether/lb.h>
#include <tether/util.h>

#include <stdlib.h>

#include "unit.h"

#define NKEYS 1000000

static uint64_t
member_key(unsigned i)
{
    char name[32];
    int n = snprintf(name, sizeof(name), "up/server-%u", i);
    return chash_hash(name, (size_t)n);
}

static void
make_members(struct chash_member *m, unsigned n, const uint32_t *weights)
{
    for (unsigned i = 0; i < n; i++) {
        m[i].key = member_key(i);
        m[i].weight = weights ? weights[i] : 1;
        m[i].index = i;
    }
}

/* Session-id-like keys hashed as the balancer would hash them. */
static uint64_t *
make_keys(size_t n)
{
    uint64_t *k = malloc(n * sizeof(*k)), rng = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng_next(&rng);
        k[i] = chash_hash(&r, sizeof(r));
    }
    return k;
}

static void
test_chash_default_size(void)
{
    struct chash_member m[3];
    make_members(m, 3, NULL);
    struct chash_table *t = chash_build(m, 3, 0);
    CHECK(t != NULL);
    CHECK_UINT_EQ(t->size, 65537);
    CHECK_UINT_EQ(t->nmembers, 3);
    chash_free(t);

    struct chash_member *big = malloc(1000 * sizeof(*big));
    make_members(big, 1000, NULL);
    t = chash_build(big, 1000, 0);
    CHECK(t != NULL);
    CHECK_UINT_EQ(t->size, 100003); /* smallest prime >= 100000 */
    chash_free(t);
    free(big);

    CHECK(chash_build(m, 0, 0) == NULL);
    t = chash_build(m, 1, 101);
    CHECK_UINT_EQ(t->size, 101);
    for (uint32_t i = 0; i < t->size; i++)
        CHECK_UINT_EQ(t->slots[i], 0);
    chash_free(t);
}

static void
test_chash_order_independent(void)
{
    struct chash_member a[8], b[8];
    uint32_t w[8] = {1, 2, 3, 1, 5, 1, 2, 4};
    make_members(a, 8, w);
    for (unsigned i = 0; i < 8; i++)
        b[i] = a[7 - i];
    struct chash_table *ta = chash_build(a, 8, 0), *tb = chash_build(b, 8, 0);
    CHECK(ta && tb);
    CHECK_UINT_EQ(ta->size, tb->size);
    CHECK(memcmp(ta->slots, tb->slots, ta->size * sizeof(uint32_t)) == 0);
    /* and the same again: deterministic across builds */
    struct chash_table *tc = chash_build(a, 8, 0);
    CHECK(memcmp(ta->slots, tc->slots, ta->size * sizeof(uint32_t)) == 0);
    chash_free(ta);
    chash_free(tb);
    chash_free(tc);
}

static void
test_chash_remove_moves_only_its_keys(void)
{
    struct chash_member m[10], rest[9];
    make_members(m, 10, NULL);
    const unsigned gone = 3;
    for (unsigned i = 0, j = 0; i < 10; i++)
        if (i != gone)
            rest[j++] = m[i];
    struct chash_table *t10 = chash_build(m, 10, 0), *t9 = chash_build(rest, 9, 0);
    uint64_t *keys = make_keys(NKEYS);
    size_t owned = 0, moved_other = 0, orphans_ok = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        uint32_t before = chash_lookup(t10, keys[i]), after = chash_lookup(t9, keys[i]);
        if (before == gone) {
            owned++;
            orphans_ok += after != gone;
        } else if (before != after) {
            moved_other++;
        }
    }
    printf("     remove 1 of 10: %.4f%% of keys moved (the removed member's), "
           "%zu others moved\n",
           100.0 * (double)owned / NKEYS, moved_other);
    CHECK_UINT_EQ(moved_other, 0);
    CHECK_UINT_EQ(orphans_ok, owned);
    CHECK_NEAR((double)owned / NKEYS, 0.1, 0.015);
    free(keys);
    chash_free(t10);
    chash_free(t9);
}

static void
test_chash_add_moves_only_to_new(void)
{
    struct chash_member m[11];
    make_members(m, 11, NULL);
    struct chash_table *t10 = chash_build(m, 10, 0), *t11 = chash_build(m, 11, 0);
    uint64_t *keys = make_keys(NKEYS);
    size_t moved = 0, moved_elsewhere = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        uint32_t before = chash_lookup(t10, keys[i]), after = chash_lookup(t11, keys[i]);
        if (before != after) {
            moved++;
            moved_elsewhere += after != 10;
        }
    }
    double frac = (double)moved / NKEYS;
    printf("     add 11th to 10: %.4f%% of keys moved (ideal 1/11 = %.4f%%), "
           "%zu moved elsewhere\n",
           100.0 * frac, 100.0 / 11, moved_elsewhere);
    CHECK_UINT_EQ(moved_elsewhere, 0);
    CHECK_NEAR(frac, 1.0 / 11, 0.015);
    free(keys);
    chash_free(t10);
    chash_free(t11);
}

/* Discovered servers: members keyed by the identity "upstream/host:port", as
 * membership_build does, listed in DNS answer order. A new pod arrives first in
 * the answer, so every member's index shifts; keys still move by identity only,
 * and only to the new pod (about 1/N of them). */
static void
test_chash_identity_add_pod(void)
{
    enum { N = 9 };
    struct chash_member before[N], after[N + 1];
    uint64_t ident[N + 1];
    char name[64];
    for (uint32_t i = 0; i <= N; i++) {
        int n = snprintf(name, sizeof(name), "voice/10.1.0.%u:8000", i + 2);
        ident[i] = chash_hash(name, (size_t)n);
    }
    for (uint32_t i = 0; i < N; i++)
        before[i] = (struct chash_member){.key = ident[i], .weight = 100, .index = i};
    after[0] = (struct chash_member){.key = ident[N], .weight = 100, .index = 0};
    for (uint32_t i = 0; i < N; i++)
        after[i + 1] = (struct chash_member){.key = ident[i], .weight = 100, .index = i + 1};
    struct chash_table *t1 = chash_build(before, N, 0), *t2 = chash_build(after, N + 1, 0);
    uint64_t *keys = make_keys(NKEYS);
    size_t moved = 0, moved_elsewhere = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        uint64_t was = ident[chash_lookup(t1, keys[i])];
        uint64_t now = after[chash_lookup(t2, keys[i])].key;
        if (was != now) {
            moved++;
            moved_elsewhere += now != ident[N];
        }
    }
    double frac = (double)moved / NKEYS;
    printf("     pod added to %d discovered: %.4f%% of keys moved (ideal %.4f%%)\n", N,
           100.0 * frac, 100.0 / (N + 1));
    CHECK_UINT_EQ(moved_elsewhere, 0);
    CHECK_NEAR(frac, 1.0 / (N + 1), 0.015);
    free(keys);
    chash_free(t1);
    chash_free(t2);
}

static void
test_chash_weighted_shares(void)
{
    uint32_t w[4] = {1, 2, 3, 4};
    struct chash_member m[4];
    make_members(m, 4, w);
    struct chash_table *t = chash_build(m, 4, 0);
    size_t count[4] = {0};
    for (uint32_t i = 0; i < t->size; i++)
        count[t->slots[i]]++;
    printf("     slot shares for weights 1:2:3:4:");
    for (int i = 0; i < 4; i++) {
        double share = (double)count[i] / t->size, want = w[i] / 10.0;
        printf(" %.4f", share);
        CHECK_NEAR(share / want, 1.0, 0.03);
    }
    printf("\n");
    /* keys follow the slots */
    uint64_t *keys = make_keys(NKEYS);
    size_t kc[4] = {0};
    for (size_t i = 0; i < NKEYS; i++)
        kc[chash_lookup(t, keys[i])]++;
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(((double)kc[i] / NKEYS) / (w[i] / 10.0), 1.0, 0.03);
    free(keys);
    chash_free(t);
}

static void
test_chash_weight_change_local(void)
{
    /* Raising one member's weight only takes slots towards that member. */
    uint32_t w1[5] = {2, 2, 2, 2, 2}, w2[5] = {2, 2, 3, 2, 2};
    struct chash_member a[5], b[5];
    make_members(a, 5, w1);
    make_members(b, 5, w2);
    struct chash_table *ta = chash_build(a, 5, 0), *tb = chash_build(b, 5, 0);
    size_t changed = 0, wrong = 0;
    for (uint32_t i = 0; i < ta->size; i++) {
        if (ta->slots[i] != tb->slots[i]) {
            changed++;
            wrong += tb->slots[i] != 2;
        }
    }
    CHECK(changed > 0);
    CHECK_UINT_EQ(wrong, 0);
    chash_free(ta);
    chash_free(tb);
}

static void
check_seq(const uint32_t *w, size_t n, const char *want)
{
    struct wrr_schedule *s = wrr_build(w, n, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    char got[64] = {0};
    for (uint32_t i = 0; i < s->len && i < sizeof(got) - 1; i++)
        got[i] = (char)('a' + s->seq[i]);
    CHECK_STR_EQ(got, want);
    wrr_free(s);
}

/* The reference: nginx's algorithm step by step, over <steps> picks. */
static void
nginx_wrr(const uint32_t *w, size_t n, uint32_t steps, uint32_t *out)
{
    int64_t cur[16] = {0}, total = 0;
    for (size_t i = 0; i < n; i++)
        total += w[i];
    for (uint32_t k = 0; k < steps; k++) {
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            cur[i] += w[i];
            if (cur[i] > cur[best])
                best = i;
        }
        cur[best] -= total;
        out[k] = (uint32_t)best;
    }
}

static void
test_wrr_nginx_sequence(void)
{
    check_seq((uint32_t[]){5, 1, 1}, 3, "aabacaa");
    check_seq((uint32_t[]){4, 2, 1}, 3, "abacaba");
    check_seq((uint32_t[]){1, 1, 1}, 3, "abc");
    check_seq((uint32_t[]){0, 3, 0, 1}, 4, "bbdb");

    uint32_t w[5] = {7, 3, 11, 2, 5}, ref[28];
    nginx_wrr(w, 5, 28, ref);
    struct wrr_schedule *s = wrr_build(w, 5, 0);
    CHECK_UINT_EQ(s->len, 28);
    for (uint32_t i = 0; i < 28; i++)
        CHECK_UINT_EQ(s->seq[i], ref[i]);
    wrr_free(s);
    CHECK(wrr_build((uint32_t[]){0, 0}, 2, 0) == NULL);
}

/* Equal weights take a shortcut (each member once, in order): the same
 * sequence as the step-by-step algorithm, zero weights skipped. */
static void
test_wrr_equal_weights(void)
{
    uint32_t w[12] = {6, 6, 0, 6, 6, 6, 0, 0, 6, 6, 6, 6}, ref[18];
    nginx_wrr(w, 12, 18, ref);
    struct wrr_schedule *s = wrr_build(w, 12, 0);
    CHECK_UINT_EQ(s->len, 9);
    for (uint32_t i = 0; i < 18; i++)
        CHECK_UINT_EQ(s->seq[i % s->len], ref[i]);
    wrr_free(s);
}

static void
test_wrr_gcd(void)
{
    struct wrr_schedule *s = wrr_build((uint32_t[]){500, 100, 100}, 3, 0);
    CHECK_UINT_EQ(s->len, 7);
    uint32_t ref[7];
    nginx_wrr((uint32_t[]){500, 100, 100}, 3, 7, ref);
    for (int i = 0; i < 7; i++)
        CHECK_UINT_EQ(s->seq[i], ref[i]);
    wrr_free(s);
}

static void
test_wrr_scale_down(void)
{
    uint32_t w[3] = {1000000, 500001, 1};
    struct wrr_schedule *s = wrr_build(w, 3, 100);
    CHECK(s != NULL);
    CHECK(s->len <= 100);
    uint32_t c[3] = {0};
    for (uint32_t i = 0; i < s->len; i++)
        c[s->seq[i]]++;
    CHECK(c[2] >= 1); /* a tiny weight still appears */
    CHECK_NEAR((double)c[0] / c[1], 2.0, 0.1);
    wrr_free(s);

    /* more non-zero weights than max_len: each still appears once */
    s = wrr_build((uint32_t[]){3, 5, 7, 9}, 4, 2);
    CHECK_UINT_EQ(s->len, 4);
    wrr_free(s);
}

static void
test_alias_distribution(void)
{
    uint32_t w[5] = {1, 2, 3, 4, 0};
    struct alias_table *t = alias_build(w, 5);
    CHECK(t != NULL);
    size_t c[5] = {0};
    uint64_t rng = 42;
    for (int i = 0; i < 1000000; i++)
        c[alias_pick(t, rng_next(&rng))]++;
    printf("     alias picks for weights 1:2:3:4:0:");
    for (int i = 0; i < 4; i++) {
        printf(" %.4f", c[i] / 1e6);
        CHECK_NEAR((c[i] / 1e6) / (w[i] / 10.0), 1.0, 0.01);
    }
    printf("\n");
    CHECK_UINT_EQ(c[4], 0);
    alias_free(t);
    CHECK(alias_build((uint32_t[]){0, 0, 0}, 3) == NULL);

    /* one member */
    t = alias_build((uint32_t[]){7}, 1);
    CHECK_UINT_EQ(alias_pick(t, 0), 0);
    CHECK_UINT_EQ(alias_pick(t, UINT64_MAX), 0);
    alias_free(t);
}

int
main(void)
{
    RUN(test_chash_default_size);
    RUN(test_chash_order_independent);
    RUN(test_chash_remove_moves_only_its_keys);
    RUN(test_chash_add_moves_only_to_new);
    RUN(test_chash_identity_add_pod);
    RUN(test_chash_weighted_shares);
    RUN(test_chash_weight_change_local);
    RUN(test_wrr_nginx_sequence);
    RUN(test_wrr_equal_weights);
    RUN(test_wrr_gcd);
    RUN(test_wrr_scale_down);
    RUN(test_alias_distribution);
    return unit_summary();
}
