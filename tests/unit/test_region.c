/* SPDX-License-Identifier: MIT */
/* Unit tests for plan building (src/region.c): tier loads, spill-over, region
 * shares scaled by healthy fraction, panic, slow start, server weights, and the
 * shared hash table; the numbers are the worked examples of doc/failover.md. */
#include "config.h"

#include <tether/balance.h>
#include <tether/conf.h>
#include <tether/session_load.h>
#include <tether/stats.h>

#include <stdio.h>
#include <stdlib.h>

#include "members_fixture.h"
#include "unit.h"

/* DESIGN section 4: eu-west 70 (2 pods), me-central 30 (1 pod), us-west 100
 * priority 1 (1 pod). %s adds upstream directives. */
static const char *const DESIGN4 = "upstream voice {\n"
                                   "  region eu-west weight=70; region me-central weight=30;\n"
                                   "  region us-west weight=100 priority=1;\n"
                                   "  server pod-a 10.0.0.1:8000 region=eu-west weight=%u;\n"
                                   "  server pod-b 10.0.0.2:8000 region=eu-west;\n"
                                   "  server pod-c 10.0.1.1:8000 region=me-central;\n"
                                   "  server pod-d 10.0.2.1:8000 region=us-west;\n"
                                   "  %s\n"
                                   "}\n"
                                   "server { listen 127.0.0.1:1; route / { upstream voice; } }\n";

static const char *const TWO_REGIONS =
    "upstream voice {\n"
    "  region eu-west weight=70; region me-central weight=30;\n"
    "  server pod-a 10.0.0.1:8000 region=eu-west weight=%u;\n"
    "  server pod-b 10.0.0.2:8000 region=eu-west;\n"
    "  server pod-c 10.0.1.1:8000 region=me-central;\n"
    "  %s\n"
    "}\n"
    "server { listen 127.0.0.1:1; route / { upstream voice; } }\n";

static struct conf *conf;
static struct upstream up;

/* An upstream built by hand from the config text (gen_build would bind). The
 * worked examples of doc/failover.md sections 2-3 are the Envoy model, so it is
 * asked for unless <extra> says otherwise; section 3a's are the strict default. */
static void
setup(const char *fmt, unsigned weight_a, const char *extra)
{
    char text[2048], ex[512];
    struct err e;
    snprintf(ex, sizeof(ex), "%s%s", extra,
             strstr(extra, "overprovisioning") ? "" : " overprovisioning 1.4;");
    snprintf(text, sizeof(text), fmt, weight_a, ex);
    conf = conf_parse_text(text, strlen(text), "test.conf", &e);
    if (!conf) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    fixture_members(&up, &conf->upstreams[0], NULL);
}

static void
teardown(void)
{
    fixture_members_free(&up);
    conf_free(conf);
}

static struct server *
srv(const char *name)
{
    for (uint32_t i = 0; i < up.members->nservers; i++)
        if (strcmp(up.members->servers[i]->conf->name, name) == 0)
            return up.members->servers[i];
    return NULL;
}

static void
set_down(const char *name)
{
    atomic_store(&srv(name)->rt->health, HEALTH_DOWN);
}

/* Share of new sessions that <name> gets in <p>. */
static double
server_share(const struct lb_plan *p, const char *name)
{
    const struct server *s = srv(name);
    for (uint32_t i = 0; i < p->nregions; i++) {
        const struct plan_region *pr = &p->regions[i];
        uint64_t sum = 0, mine = 0;
        for (uint32_t k = 0; k < pr->nservers; k++) {
            sum += pr->weights[k];
            if (pr->servers[k] == s->index)
                mine = pr->weights[k];
        }
        if (mine)
            return pr->share * (double)mine / (double)sum;
    }
    return 0;
}

static double
region_share(const struct lb_plan *p, const char *name)
{
    const struct region *r = upstream_region_by_name(&up, name);
    for (uint32_t i = 0; i < p->nregions; i++)
        if (&up.regions[p->regions[i].region] == r)
            return p->regions[i].share;
    return 0;
}

#define SHARES(p, a, b, c, d)                                                                      \
    do {                                                                                           \
        CHECK_NEAR(server_share(p, "pod-a"), a, 1e-3);                                             \
        CHECK_NEAR(server_share(p, "pod-b"), b, 1e-3);                                             \
        CHECK_NEAR(server_share(p, "pod-c"), c, 1e-3);                                             \
        if (srv("pod-d"))                                                                          \
            CHECK_NEAR(server_share(p, "pod-d"), d, 1e-3);                                         \
    } while (0)

/* Build a plan for the current state, keep it as the upstream's current one. */
static struct lb_plan *
build(void)
{
    struct lb_plan *p = plan_build(&up, time_mono_ms());
    CHECK(p != NULL);
    plan_free(atomic_exchange(&up.plan, p));
    return p;
}

static void
test_design_examples_1_to_5(void)
{
    setup(DESIGN4, 1, "");
    struct lb_plan *p = build(); /* 1: all up */
    SHARES(p, 0.35, 0.35, 0.30, 0);
    CHECK_NEAR(p->tier_load[0], 1.0, 1e-9);
    CHECK(!p->panic);
    set_down("pod-a"); /* 2: eu-west 0.7 available, 21 % spill to DR */
    p = build();
    SHARES(p, 0, 0.49, 0.30, 0.21);
    CHECK_NEAR(p->tier_load[0], 0.79, 1e-9);
    CHECK_NEAR(p->tier_load[1], 0.21, 1e-9);
    atomic_store(&srv("pod-a")->rt->health, HEALTH_UP);
    set_down("pod-c"); /* 3: me-central out */
    p = build();
    SHARES(p, 0.35, 0.35, 0, 0.30);
    atomic_store(&srv("pod-c")->rt->health, HEALTH_UP);
    set_down("pod-a"); /* 4: eu-west out */
    set_down("pod-b");
    p = build();
    SHARES(p, 0, 0, 0.30, 0.70);
    set_down("pod-c"); /* 5: tier 0 out */
    p = build();
    SHARES(p, 0, 0, 0, 1.0);
    CHECK_NEAR(region_share(p, "us-west"), 1.0, 1e-9);
    teardown();
}

static void
test_panic_threshold(void)
{
    setup(DESIGN4, 1, ""); /* 6: everything down, no panic: no server */
    set_down("pod-a");
    set_down("pod-b");
    set_down("pod-c");
    set_down("pod-d");
    struct lb_plan *p = build();
    CHECK_UINT_EQ(p->nregions, 0);
    CHECK(!p->panic);
    teardown();
    setup(DESIGN4, 1, "panic_threshold 50%;"); /* 7: panic in tier 0 */
    set_down("pod-a");
    set_down("pod-b");
    set_down("pod-c");
    set_down("pod-d");
    p = build();
    CHECK(p->panic);
    CHECK_UINT_EQ(p->panic_tiers, 1);
    SHARES(p, 0.35, 0.35, 0.30, 0);
    /* A drained server takes nothing, not even in panic. */
    atomic_store(&srv("pod-b")->rt->admin, SRV_DRAIN);
    p = build();
    SHARES(p, 0.70, 0, 0.30, 0);
    teardown();
}

static void
test_without_dr_tier(void)
{
    setup(TWO_REGIONS, 1, "");
    set_down("pod-a"); /* 8: normalised, 49/79 */
    struct lb_plan *p = build();
    CHECK_NEAR(region_share(p, "eu-west"), 49.0 / 79.0, 1e-3);
    CHECK_NEAR(region_share(p, "me-central"), 30.0 / 79.0, 1e-3);
    set_down("pod-b"); /* 9: all to me-central */
    p = build();
    SHARES(p, 0, 0, 1.0, 0);
    teardown();
    setup(TWO_REGIONS, 1, "panic_threshold 50%;");
    set_down("pod-a"); /* 11: 65 % usable, no panic */
    struct lb_plan *q = build();
    CHECK(!q->panic);
    CHECK_NEAR(region_share(q, "eu-west"), 49.0 / 79.0, 1e-3);
    set_down("pod-b"); /* 10: 30 % usable, panic */
    q = build();
    CHECK(q->panic);
    SHARES(q, 0.35, 0.35, 0.30, 0);
    teardown();
}

static void
test_server_weights_count(void)
{
    /* pod-a has weight 3: losing it leaves eu-west 1/4 of its capacity. */
    setup(DESIGN4, 3, "");
    struct lb_plan *p = build();
    SHARES(p, 0.525, 0.175, 0.30, 0);
    set_down("pod-a");
    p = build();
    double a = 1.4 * 0.25; /* eu-west availability */
    double t0 = (70 * a + 30) / 100;
    CHECK_NEAR(region_share(p, "eu-west"), t0 * 70 * a / (70 * a + 30), 1e-3);
    CHECK_NEAR(region_share(p, "us-west"), 1 - t0, 1e-3);
    teardown();
}

static void
test_slow_start_ramps_region(void)
{
    setup(TWO_REGIONS, 1, "slow_start 3s;");
    uint64_t now = time_mono_ms();
    /* eu-west back for 1 s of 3: f = 1/3, a = 1.4/3. */
    atomic_store(&srv("pod-a")->rt->usable_since_ms, now - 1000);
    atomic_store(&srv("pod-b")->rt->usable_since_ms, now - 1000);
    struct lb_plan *p = build();
    double a = 1.4 / 3.0;
    CHECK_NEAR(region_share(p, "eu-west"), 70 * a / (70 * a + 30), 5e-3);
    CHECK(p->ramping);
    atomic_store(&srv("pod-a")->rt->usable_since_ms, now - 3000);
    atomic_store(&srv("pod-b")->rt->usable_since_ms, now - 3000);
    p = build();
    CHECK_NEAR(region_share(p, "eu-west"), 0.70, 1e-9);
    CHECK(!p->ramping);
    teardown();
}

static void
test_ejected_and_maint_excluded(void)
{
    setup(DESIGN4, 1, "");
    atomic_store(&srv("pod-a")->rt->ejected_until_ms, time_mono_ms() + 60000);
    struct lb_plan *p = build();
    SHARES(p, 0, 0.49, 0.30, 0.21);
    atomic_store(&srv("pod-a")->rt->ejected_until_ms, 0);
    atomic_store(&srv("pod-c")->rt->admin, SRV_MAINT);
    p = build();
    SHARES(p, 0.35, 0.35, 0, 0.30);
    teardown();
}

/* The default (doc/failover.md 3a): strict tiers; the DR tier only when tier 0
 * has no healthy server, and then as spill regions for full ones. */
static void
test_strict_tiers_default(void)
{
    setup(DESIGN4, 1, "overprovisioning off;");
    struct lb_plan *p = build(); /* all up */
    SHARES(p, 0.35, 0.35, 0.30, 0);
    CHECK_UINT_EQ(p->nspill, 1); /* us-west, for sessions tier 0 has no room for */
    set_down("pod-a");           /* one eu-west pod down: nothing to DR */
    p = build();
    SHARES(p, 0, 35.0 / 65.0, 30.0 / 65.0, 0);
    CHECK_NEAR(p->tier_load[0], 1.0, 1e-9);
    CHECK_NEAR(p->tier_load[1], 0.0, 1e-9);
    set_down("pod-b"); /* eu-west down entirely: all to me-central */
    p = build();
    SHARES(p, 0, 0, 1.0, 0);
    CHECK_UINT_EQ(p->nspill, 1);
    set_down("pod-c"); /* tier 0 down: DR */
    p = build();
    SHARES(p, 0, 0, 0, 1.0);
    CHECK_UINT_EQ(p->nspill, 0);
    teardown();
    /* Panic looks at the tier that carries the load. */
    setup(TWO_REGIONS, 1, "overprovisioning off; panic_threshold 50%;");
    set_down("pod-a");
    p = build();
    CHECK(!p->panic);
    set_down("pod-b");
    p = build();
    CHECK(p->panic);
    SHARES(p, 0.35, 0.35, 0.30, 0);
    teardown();
}

/* least_sessions with capacity (issue 15): three pods of 5 in tier 0 fill
 * evenly, never more than one apart; the 16th goes to tier 1; then nothing. */
static const char *const FILL = "upstream voice {\n"
                                "  region a weight=100; region b weight=100 priority=1;\n"
                                "  server a1 10.0.0.1:8000 region=a weight=%u;\n"
                                "  server a2 10.0.0.2:8000 region=a;\n"
                                "  server a3 10.0.0.3:8000 region=a;\n"
                                "  server b1 10.0.1.1:8000 region=b;\n"
                                "  server b2 10.0.1.2:8000 region=b;\n"
                                "  balance least_sessions; max_sessions 5; %s\n"
                                "}\n"
                                "server { listen 127.0.0.1:1; route / { upstream voice; } }\n";

static void
test_least_sessions_fill_spill_shed(void)
{
    setup(FILL, 1, "overprovisioning off;");
    struct lb_cursor *c = aligned_alloc(64, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->server_pos = calloc(up.nregions, sizeof(uint32_t));
    c->rng = 0x9e3779b97f4a7c15ull;
    up.cursors = c;
    build();
    uint64_t now = time_mono_ms();
    for (int i = 0; i < 15; i++) {
        struct server *s = balance_pick_session(&up, 0, now, 0, false, NULL, 0);
        CHECK(s != NULL && s->region == 0);
        if (!s)
            break;
        session_placed(s, 1);
        uint32_t lo = 99, hi = 0;
        for (int k = 0; k < 3; k++) {
            uint32_t n = server_sessions(up.members->servers[k]);
            lo = n < lo ? n : lo;
            hi = n > hi ? n : hi;
        }
        CHECK(hi - lo <= 1);
    }
    for (int k = 0; k < 3; k++)
        CHECK_UINT_EQ(server_sessions(up.members->servers[k]), 5);
    /* Full servers still take requests that create no session. */
    CHECK(balance_pick(&up, 0, now, 0, false, NULL, 0) != NULL);
    for (int i = 0; i < 10; i++) {
        struct server *s = balance_pick_session(&up, 0, now, 0, false, NULL, 0);
        CHECK(s != NULL && s->region == 1);
        if (s)
            session_placed(s, 1);
    }
    CHECK(balance_pick_session(&up, 0, now, 0, false, NULL, 0) == NULL);
    /* A pod's report makes room: 3 sessions on a2 now. */
    struct server *a2 = up.members->servers[1];
    atomic_store(&a2->rt->rep_active, 3);
    atomic_store(&a2->rt->placed_base, atomic_load(&a2->rt->placed));
    CHECK(balance_pick_session(&up, 0, now, 0, false, NULL, 0) == a2);
    free(c->server_pos);
    free(c);
    up.cursors = NULL;
    teardown();
}

static void
test_hash_table_shared_while_members_stay(void)
{
    setup(TWO_REGIONS, 1, "slow_start 3s;");
    struct lb_plan *p1 = build();
    CHECK(p1->hash != NULL);
    /* A ramp changes weights and shares, not the hash members. */
    atomic_store(&srv("pod-a")->rt->usable_since_ms, time_mono_ms() - 1000);
    struct lb_plan *p2 = plan_build(&up, time_mono_ms());
    CHECK(p2->hash == p1->hash);
    plan_free(atomic_exchange(&up.plan, p2)); /* the table outlives p1 */
    CHECK(p2->hash->nmembers == 3);
    set_down("pod-b"); /* a member leaves: a new table */
    struct lb_plan *p3 = plan_build(&up, time_mono_ms());
    CHECK(p3->hash != p2->hash);
    CHECK_UINT_EQ(p3->hash->nmembers, 2);
    plan_free(p3);
    teardown();
}

int
main(void)
{
    stats_init(2);
    RUN(test_design_examples_1_to_5);
    RUN(test_panic_threshold);
    RUN(test_without_dr_tier);
    RUN(test_server_weights_count);
    RUN(test_slow_start_ramps_region);
    RUN(test_ejected_and_maint_excluded);
    RUN(test_strict_tiers_default);
    RUN(test_least_sessions_fill_spill_shed);
    RUN(test_hash_table_shared_while_members_stay);
    return unit_summary();
}
