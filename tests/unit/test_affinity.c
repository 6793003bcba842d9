/* SPDX-License-Identifier: MIT */
/* Unit tests for the affinity decision (src/affinity.c): what a request
 * carries (cookie, session id) and the upstream's membership in, a decision
 * out, with no request, socket, session table or Redis. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/conf.h>
#include <tether/session_load.h>
#include <tether/stats.h>

#include <stdio.h>
#include <stdlib.h>

#include "members_fixture.h"
#include "unit.h"

static const char *const THREE = "upstream voice {\n"
                                 "  region r1 weight=100;\n"
                                 "  server pod-a 10.0.0.1:8000 region=r1;\n"
                                 "  server pod-b 10.0.0.2:8000 region=r1;\n"
                                 "  server pod-c 10.0.0.3:8000 region=r1;\n"
                                 "}\n"
                                 "server { listen 127.0.0.1:1; route / { upstream voice; } }\n";

static struct conf *conf;
static struct upstream up;
static struct affinity af;
static struct lb_cursor *cursor;

/* An upstream of three servers built by hand (as test_region.c does), with
 * cookie ids, the id index, a balancer cursor and a plan. */
static void
setup(void)
{
    struct err e;
    conf = conf_parse_text(THREE, strlen(THREE), "test.conf", &e);
    if (!conf) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    memset(&af, 0, sizeof(af));
    cookie_key_derive(&af.key, "0123456789abcdef0123456789abcdef", 32);
    af.max_age_s = 900;
    fixture_members(&up, &conf->upstreams[0], &af.key);
    cursor = aligned_alloc(64, sizeof(*cursor));
    memset(cursor, 0, sizeof(*cursor));
    cursor->server_pos = calloc(up.nregions, sizeof(uint32_t));
    cursor->rng = 0x9e3779b97f4a7c15ull;
    up.cursors = cursor;
}

static void
build(void)
{
    struct lb_plan *p = plan_build(&up, time_mono_ms());
    CHECK(p != NULL);
    plan_free(atomic_exchange(&up.plan, p));
}

static void
teardown(void)
{
    fixture_members_free(&up);
    free(cursor->server_pos);
    free(cursor);
    up.cursors = NULL;
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

/* A decision input for route mode <mode> over what <c> carries. */
static struct aff_input
input(const struct aff_carry *c, unsigned mode, uint32_t now_s)
{
    return (struct aff_input){
        .af = &af, .ups = &up, .c = c, .mode = mode, .now_ms = time_mono_ms(), .now_s = now_s};
}

/* A carry holding the affinity cookie for <s> and session <sess>, expiring at
 * <exp>, read at <now_s>. */
static void
carry_cookie(struct aff_carry *c, const struct server *s, uint64_t sess, uint32_t exp,
             uint32_t now_s)
{
    char v[COOKIE_VALUE_LEN];
    cookie_encode(v, &af.key, s->cookie_id, sess, exp);
    affinity_carry_cookie(&af, c, v, COOKIE_VALUE_LEN, now_s);
}

static void
test_carry(void)
{
    setup();
    struct aff_carry c = {0};
    CHECK(!affinity_carry_sid(&c, "bad id", 6, AFF_OUT_HEADER_LEARNED));
    CHECK_UINT_EQ(c.sid_len, 0);
    CHECK_UINT_EQ(affinity_session_key(&c), 0);
    CHECK(affinity_carry_sid(&c, "call-42", 7, AFF_OUT_PATH_LEARNED));
    CHECK_UINT_EQ(c.sid_src, AFF_OUT_PATH_LEARNED);
    CHECK_UINT_EQ(affinity_session_key(&c), chash_hash("call-42", 7));
    /* Without an id, the session a valid cookie carries is the key. */
    struct aff_carry k = {0};
    carry_cookie(&k, srv("pod-a"), 77, 2000, 1000);
    CHECK_UINT_EQ(k.cookie_state, AFF_COOKIE_VALID);
    CHECK_UINT_EQ(affinity_session_key(&k), 77);
    struct aff_carry x = {0};
    carry_cookie(&x, srv("pod-a"), 77, 999, 1000);
    CHECK_UINT_EQ(x.cookie_state, AFF_COOKIE_EXPIRED);
    struct aff_carry f = {0};
    affinity_carry_cookie(&af, &f, "garbage", 7, 1000);
    CHECK_UINT_EQ(f.cookie_state, AFF_COOKIE_FORGED);
    teardown();
}

static void
test_cookie_pins(void)
{
    setup();
    build();
    struct aff_carry c = {0};
    struct aff_decision d;
    carry_cookie(&c, srv("pod-b"), 5, 1000 + 900, 1000);
    struct aff_input in = input(&c, AFFINITY_COOKIE, 1000);
    for (int i = 0; i < 5; i++) {
        affinity_decide(&in, &d);
        CHECK(d.srv == srv("pod-b"));
        CHECK_UINT_EQ(d.outcome, AFF_OUT_COOKIE);
        CHECK(!d.set_cookie && !d.place && !d.pin && !d.moved);
    }
    /* Past half its lifetime: re-issued. */
    in.now_s = 1000 + 500;
    affinity_decide(&in, &d);
    CHECK(d.srv == srv("pod-b") && d.set_cookie);
    teardown();
}

static void
test_cookie_to_down_server_redispatches(void)
{
    setup();
    build();
    struct aff_carry c = {0};
    struct aff_decision d, again;
    carry_cookie(&c, srv("pod-b"), 5, 1900, 1000);
    atomic_store(&srv("pod-b")->rt->health, HEALTH_DOWN);
    build();
    struct aff_input in = input(&c, AFFINITY_COOKIE, 1000);
    affinity_decide(&in, &d);
    CHECK(d.srv != NULL && d.srv != srv("pod-b"));
    CHECK(d.moved == srv("pod-b"));
    CHECK_UINT_EQ(d.outcome, AFF_OUT_REDISPATCH);
    CHECK(d.pin && d.set_cookie && !d.place);
    /* Every replica (every call) makes the same choice. */
    affinity_decide(&in, &again);
    CHECK(again.srv == d.srv);
    teardown();
}

static void
test_unusable_cookie_is_noted(void)
{
    setup();
    build();
    struct aff_carry c = {0};
    struct aff_decision d;
    affinity_carry_cookie(&af, &c, "garbage", 7, 1000);
    struct aff_input in = input(&c, AFFINITY_COOKIE, 1000);
    affinity_decide(&in, &d);
    CHECK_UINT_EQ(d.note, AFF_NOTE_INVALID);
    CHECK(d.srv != NULL);
    CHECK_UINT_EQ(d.outcome, AFF_OUT_NEW);
    CHECK(d.place && d.set_cookie && !d.pin);
    /* A valid cookie for a server the upstream does not have. */
    struct aff_carry u = {0};
    char v[COOKIE_VALUE_LEN];
    cookie_encode(v, &af.key, 12345, 5, 1900);
    affinity_carry_cookie(&af, &u, v, COOKIE_VALUE_LEN, 1000);
    in.c = &u;
    affinity_decide(&in, &d);
    CHECK_UINT_EQ(d.note, AFF_NOTE_UNKNOWN);
    CHECK_UINT_EQ(d.outcome, AFF_OUT_NEW);
    /* No affinity: the balancer, no cookie, nothing placed. */
    struct aff_carry none = {0};
    in = input(&none, AFFINITY_NONE, 1000);
    affinity_decide(&in, &d);
    CHECK(d.srv != NULL);
    CHECK_UINT_EQ(d.outcome, AFF_OUT_NONE);
    CHECK(!d.set_cookie && !d.place && !d.pin && !d.note);
    teardown();
}

static void
test_learned_session(void)
{
    setup();
    build();
    struct aff_carry c = {0};
    struct aff_decision d;
    CHECK(affinity_carry_sid(&c, "call-42", 7, AFF_OUT_HEADER_LEARNED));
    c.learned_srv = srv("pod-c")->cookie_id; /* what the session store knew */
    struct aff_input in = input(&c, AFFINITY_COOKIE, 1000);
    affinity_decide(&in, &d);
    CHECK(d.srv == srv("pod-c"));
    CHECK_UINT_EQ(d.outcome, AFF_OUT_HEADER_LEARNED);
    CHECK(d.set_cookie); /* no cookie names pod-c yet */
    /* A cookie for another server wins over the learned id, and re-pins it
     * when the route learns. */
    carry_cookie(&c, srv("pod-a"), chash_hash("call-42", 7), 1900, 1000);
    in.learn = true;
    affinity_decide(&in, &d);
    CHECK(d.srv == srv("pod-a"));
    CHECK_UINT_EQ(d.outcome, AFF_OUT_COOKIE);
    CHECK(d.pin);
    teardown();
}

static void
test_repick_and_redispatch(void)
{
    setup();
    build();
    struct aff_carry c = {0};
    struct aff_decision d;
    carry_cookie(&c, srv("pod-a"), 9, 1900, 1000);
    struct server *tried[2] = {srv("pod-a"), NULL};
    struct aff_input in = input(&c, AFFINITY_COOKIE, 1000);
    in.tried = tried;
    in.ntried = 1;
    in.outcome = AFF_OUT_COOKIE;
    in.cur = srv("pod-a");
    struct server *next = affinity_repick(&in);
    CHECK(next != NULL && next != srv("pod-a"));
    CHECK(affinity_repick(&in) == next); /* pinned: the session's hash decides */
    tried[1] = next;
    in.ntried = 2;
    struct server *third = affinity_repick(&in);
    CHECK(third != NULL && third != next && third != srv("pod-a"));
    affinity_redispatch(&in, next, &d);
    CHECK(d.srv == next && d.moved == srv("pod-a") && d.pin && d.set_cookie);
    CHECK_UINT_EQ(d.outcome, AFF_OUT_REDISPATCH);
    /* A request that was not pinned just goes on: no pin, no redispatch. */
    in.outcome = AFF_OUT_NONE;
    in.mode = AFFINITY_NONE;
    affinity_redispatch(&in, next, &d);
    CHECK(d.srv == next && !d.moved && !d.pin && !d.set_cookie);
    CHECK_UINT_EQ(d.outcome, AFF_OUT_NONE);
    teardown();
}

int
main(void)
{
    stats_init(2);
    RUN(test_carry);
    RUN(test_cookie_pins);
    RUN(test_cookie_to_down_server_redispatches);
    RUN(test_unusable_cookie_is_noted);
    RUN(test_learned_session);
    RUN(test_repick_and_redispatch);
    return unit_summary();
}
