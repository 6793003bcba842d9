/* SPDX-License-Identifier: MIT */
/* Unit tests for the queue of writes waiting for a Redis primary: order,
 * the bound (oldest dropped and counted), a failed write put back first, the
 * TTL argument recomputed when sent late, expiry, and shrinking the bound. */
#include "config.h"

#include <tether/redis.h>

#include <unistd.h>

#include "../../src/redis_int.h"
#include "unit.h"

static struct redis_qent *
set_cmd(const char *key, uint64_t expire_wall_ms)
{
    const char *argv[5] = {"SET", key, "voice/pod-a", "PX", "900000"};
    size_t lens[5] = {3, strlen(key), 11, 2, 6};
    return redis_qent_new(5, argv, lens, 4, expire_wall_ms);
}

static void
drain(void)
{
    struct redis_qent *e;
    while ((e = redis_queue_take()))
        redis_qent_free(e);
}

static void
test_order_and_bound(void)
{
    struct redis_queue_stats a, b;
    redis_queue_set_size(3);
    redis_queue_stats(&a);
    redis_queue_put(set_cmd("k1", 0));
    redis_queue_put(set_cmd("k2", 0));
    redis_queue_put(set_cmd("k3", 0));
    redis_queue_put(set_cmd("k4", 0)); /* full: k1 goes */
    redis_queue_stats(&b);
    CHECK_UINT_EQ(b.len, 3);
    CHECK_UINT_EQ(b.cap, 3);
    CHECK_UINT_EQ(b.queued - a.queued, 4);
    CHECK_UINT_EQ(b.dropped - a.dropped, 1);
    struct redis_qent *e = redis_queue_take();
    CHECK_STR_EQ(e->argv[1], "k2");
    CHECK_UINT_EQ(e->lens[1], 2);
    /* A failed write goes back first and is taken again next. */
    redis_queue_done(e, false);
    e = redis_queue_take();
    CHECK_STR_EQ(e->argv[1], "k2");
    redis_queue_done(e, true);
    redis_queue_stats(&b);
    CHECK_UINT_EQ(b.written - a.written, 1);
    CHECK_UINT_EQ(b.len, 2);
    drain();
}

static void
test_ttl_and_expiry(void)
{
    redis_queue_set_size(10);
    struct redis_qent *e = set_cmd("k", 100000 + 900000);
    CHECK(redis_qent_ready(e, 100000 + 250000)); /* sent 250 s late */
    CHECK_STR_EQ(e->argv[4], "650000");
    CHECK_UINT_EQ(e->lens[4], 6);
    CHECK(!redis_qent_ready(e, 100000 + 900000)); /* expired: not written */
    redis_qent_free(e);
    e = set_cmd("forever", 0);
    CHECK(redis_qent_ready(e, 123));
    CHECK_STR_EQ(e->argv[4], "900000");
    redis_qent_free(e);
    /* Too many arguments: refused, nothing queued. */
    const char *argv[REDIS_QENT_ARGS + 1] = {0};
    size_t lens[REDIS_QENT_ARGS + 1] = {0};
    CHECK(redis_qent_new(REDIS_QENT_ARGS + 1, argv, lens, -1, 0) == NULL);
    redis_queue_put(NULL);
}

static void
test_shrink(void)
{
    struct redis_queue_stats a, b;
    redis_queue_set_size(10);
    for (int i = 0; i < 8; i++)
        redis_queue_put(set_cmd("k", 0));
    redis_queue_stats(&a);
    redis_queue_set_size(5);
    redis_queue_stats(&b);
    CHECK_UINT_EQ(b.len, 5);
    CHECK_UINT_EQ(b.dropped - a.dropped, 3);
    redis_queue_set_size(0); /* no queue: every put is dropped */
    redis_queue_put(set_cmd("k", 0));
    redis_queue_stats(&a);
    CHECK_UINT_EQ(a.len, 0);
    CHECK_UINT_EQ(a.dropped - b.dropped, 6);
    redis_queue_clear();
}

static void
test_replay_recent(void)
{
    struct redis_queue_stats a, b;
    redis_queue_set_size(10);
    redis_queue_stats(&a);
    /* Two writes acknowledged by a primary, then one queued while it is down. */
    redis_queue_put(set_cmd("r1", 0));
    redis_queue_put(set_cmd("r2", 0));
    redis_queue_done(redis_queue_take(), true);
    redis_queue_done(redis_queue_take(), true);
    redis_queue_put(set_cmd("q1", 0));
    /* The primary is lost: the recent ones go first, in their order. */
    CHECK_UINT_EQ(redis_queue_replay_recent(), 2);
    CHECK_UINT_EQ(redis_queue_replay_recent(), 0);
    redis_queue_stats(&b);
    CHECK_UINT_EQ(b.len, 3);
    const char *want[] = {"r1", "r2", "q1"};
    for (int i = 0; i < 3; i++) {
        struct redis_qent *e = redis_queue_take();
        CHECK_STR_EQ(e->argv[1], want[i]);
        redis_qent_free(e);
    }
    CHECK(redis_queue_take() == NULL);
    redis_queue_clear();
}

/* Recent writes that all aged out, then new ones: the list starts over
 * cleanly (a use-after-free here once). */
static void
test_recent_aged_out(void)
{
    redis_queue_set_size(10);
    redis_queue_put(set_cmd("old", 0));
    redis_queue_done(redis_queue_take(), true);
    usleep(1100 * 1000); /* past the one-second window */
    CHECK_UINT_EQ(redis_queue_replay_recent(), 0);
    redis_queue_put(set_cmd("new", 0));
    redis_queue_done(redis_queue_take(), true);
    CHECK_UINT_EQ(redis_queue_replay_recent(), 1);
    struct redis_qent *e = redis_queue_take();
    CHECK_STR_EQ(e->argv[1], "new");
    redis_qent_free(e);
    redis_queue_clear();
}

int
main(void)
{
    RUN(test_order_and_bound);
    RUN(test_ttl_and_expiry);
    RUN(test_shrink);
    RUN(test_replay_recent);
    RUN(test_recent_aged_out);
    return unit_summary();
}
