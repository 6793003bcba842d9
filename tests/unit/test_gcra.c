/* SPDX-License-Identifier: MIT */
/* Unit tests for GCRA: burst from a fresh state, steady rate, the reported
 * remaining / retry-after / reset values, and a simulated overload. */
#include "config.h"

#include <tether/gcra.h>

#include "unit.h"

#define NS_PER_S 1000000000ULL

static void
test_params(void)
{
    struct gcra_params p;
    gcra_params_init(&p, 100, 50);
    CHECK_UINT_EQ(p.interval_ns, 10000000);
    CHECK_UINT_EQ(p.tolerance_ns, 500000000);
    CHECK_UINT_EQ(p.limit, 51);
    gcra_params_init(&p, 3, 0);
    CHECK_UINT_EQ(p.interval_ns, 333333333);
    CHECK_UINT_EQ(p.tolerance_ns, 0);
    CHECK_UINT_EQ(p.limit, 1);
    gcra_params_init(&p, 1.0 / 60, 2); /* 1 r/m */
    CHECK_UINT_EQ(p.interval_ns, 60 * NS_PER_S);
    gcra_params_init(&p, 1e12, 1); /* faster than 1/ns: clamped to 1 ns */
    CHECK_UINT_EQ(p.interval_ns, 1);
}

static void
test_burst_then_rate(void)
{
    struct gcra_params p;
    gcra_params_init(&p, 10, 4); /* T = 100 ms */
    struct gcra_result r;
    uint64_t tat = 0, now = 1000 * NS_PER_S;
    for (uint32_t i = 0; i < 5; i++) {
        gcra_decide(tat, now, &p, &tat, &r);
        CHECK(r.allowed);
        CHECK_UINT_EQ(r.remaining, 4 - i);
    }
    gcra_decide(tat, now, &p, &tat, &r);
    CHECK(!r.allowed);
    /* then exactly one per interval */
    for (int k = 1; k <= 20; k++) {
        uint64_t t = now + (uint64_t)k * p.interval_ns;
        gcra_decide(tat, t - 1, &p, &tat, &r);
        CHECK(!r.allowed);
        CHECK_UINT_EQ(r.retry_after_ns, 1);
        gcra_decide(tat, t, &p, &tat, &r);
        CHECK(r.allowed);
        CHECK_UINT_EQ(r.remaining, 0);
        gcra_decide(tat, t, &p, &tat, &r);
        CHECK(!r.allowed);
        CHECK_UINT_EQ(r.retry_after_ns, p.interval_ns);
    }
}

static void
test_result_values(void)
{
    struct gcra_params p;
    gcra_params_init(&p, 10, 2); /* T = 100 ms, tolerance 200 ms */
    const uint64_t T = p.interval_ns;
    struct gcra_result r;
    uint64_t tat = 0, now = 5 * NS_PER_S;

    gcra_decide(tat, now, &p, &tat, &r); /* fresh */
    CHECK(r.allowed);
    CHECK_UINT_EQ(r.remaining, 2);
    CHECK_UINT_EQ(r.reset_ns, T);
    CHECK_UINT_EQ(r.delay_ns, 0);
    CHECK_UINT_EQ(tat, now + T);

    gcra_decide(tat, now, &p, &tat, &r);
    CHECK(r.allowed);
    CHECK_UINT_EQ(r.remaining, 1);
    CHECK_UINT_EQ(r.reset_ns, 2 * T);
    CHECK_UINT_EQ(r.delay_ns, T);

    gcra_decide(tat, now, &p, &tat, &r);
    CHECK(r.allowed);
    CHECK_UINT_EQ(r.remaining, 0);
    CHECK_UINT_EQ(r.reset_ns, 3 * T);

    uint64_t before = tat;
    gcra_decide(tat, now, &p, &tat, &r);
    CHECK(!r.allowed);
    CHECK_UINT_EQ(tat, before); /* a denial does not consume */
    CHECK_UINT_EQ(r.remaining, 0);
    CHECK_UINT_EQ(r.retry_after_ns, T);
    CHECK_UINT_EQ(r.reset_ns, 3 * T);

    /* 30 ms later: 70 ms to wait, fully fresh 270 ms from now */
    gcra_decide(tat, now + 30000000, &p, &tat, &r);
    CHECK(!r.allowed);
    CHECK_UINT_EQ(r.retry_after_ns, 70000000);
    CHECK_UINT_EQ(r.reset_ns, 270000000);

    /* 150 ms after the burst: one slot back, with 50 ms of the next earned */
    gcra_decide(tat, now + 150000000, &p, &tat, &r);
    CHECK(r.allowed);
    CHECK_UINT_EQ(r.remaining, 0);
    CHECK_UINT_EQ(r.reset_ns, 250000000);
    CHECK_UINT_EQ(r.delay_ns, 150000000);

    /* long idle: fresh again */
    gcra_decide(tat, now + 10 * NS_PER_S, &p, &tat, &r);
    CHECK(r.allowed);
    CHECK_UINT_EQ(r.remaining, 2);
    CHECK_UINT_EQ(r.reset_ns, T);
}

static void
test_no_burst(void)
{
    struct gcra_params p;
    gcra_params_init(&p, 1, 0);
    struct gcra_result r;
    uint64_t tat = 0;
    gcra_decide(tat, NS_PER_S, &p, &tat, &r);
    CHECK(r.allowed);
    CHECK_UINT_EQ(r.remaining, 0);
    gcra_decide(tat, NS_PER_S + 1, &p, &tat, &r);
    CHECK(!r.allowed);
    CHECK_UINT_EQ(r.retry_after_ns, NS_PER_S - 1);
    gcra_decide(tat, 2 * NS_PER_S, &p, &tat, &r);
    CHECK(r.allowed);
}

static void
test_simulated_overload(void)
{
    /* 10 s of 1000 req/s offered against rate 100, burst 50. */
    struct gcra_params p;
    gcra_params_init(&p, 100, 50);
    struct gcra_result r;
    uint64_t tat = 0, admitted = 0, denied = 0;
    const uint64_t start = 123 * NS_PER_S;
    for (uint64_t i = 0; i < 10000; i++) {
        gcra_decide(tat, start + i * 1000000, &p, &tat, &r);
        admitted += r.allowed;
        denied += !r.allowed;
        if (!r.allowed)
            CHECK(r.retry_after_ns >= 1 && r.retry_after_ns <= p.interval_ns);
    }
    printf("     admitted %" PRIu64 " of 10000 (expected 100*10+50+1 = 1051)\n", admitted);
    CHECK_NEAR((double)admitted, 100.0 * 10 + 50 + 1, 1);
    CHECK_UINT_EQ(admitted + denied, 10000);
}

int
main(void)
{
    RUN(test_params);
    RUN(test_burst_then_rate);
    RUN(test_result_values);
    RUN(test_no_burst);
    RUN(test_simulated_overload);
    return unit_summary();
}
