/* SPDX-License-Identifier: MIT */
/* Writes waiting for a Redis primary: a bounded FIFO shared by the threads
 * (workers put, the control thread drains it once a primary is confirmed).
 * Full: the oldest write is dropped and counted. Any module with a write that
 * must reach Redis eventually (learned sessions, placed-session counters,
 * replicated membership changes) puts it here when Redis cannot take it now. */
#include "config.h"

#include <tether/log.h>
#include <tether/redis.h>
#include <tether/util.h>

#include "redis_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static struct redis_qent *qhead, *qtail;
static uint32_t qlen, qcap = 10000;
/* Writes acknowledged in the last RECENT_MS, oldest first: a primary that
 * dies may not have passed them to its replica yet (replication is
 * asynchronous), so they are written again to the next primary. */
#define RECENT_MS  1000
#define RECENT_MAX 4096
static struct redis_qent *rhead, *rtail;
static uint32_t rlen;
static _Atomic uint64_t queued, dropped, written, expired;
static _Atomic bool drop_logged;

struct redis_qent *
redis_qent_new(int argc, const char *const *argv, const size_t *lens, int ttl_arg,
               uint64_t expire_wall_ms)
{
    size_t bytes = 0;
    if (argc <= 0 || argc > REDIS_QENT_ARGS)
        return NULL;
    for (int i = 0; i < argc; i++)
        bytes += lens[i] + 1;
    struct redis_qent *e = malloc(sizeof(*e) + bytes);
    if (!e)
        return NULL;
    e->next = NULL;
    e->was_queued = false;
    e->done_ms = 0;
    e->argc = argc;
    e->ttl_arg = ttl_arg < argc ? ttl_arg : -1;
    e->expire_wall_ms = expire_wall_ms;
    char *d = e->data;
    for (int i = 0; i < argc; i++) {
        memcpy(d, argv[i], lens[i]);
        d[lens[i]] = '\0';
        e->argv[i] = d;
        e->lens[i] = lens[i];
        d += lens[i] + 1;
    }
    return e;
}

void
redis_qent_free(struct redis_qent *e)
{
    free(e);
}

/* Prepare <e> for sending now: its TTL argument becomes the time left. false
 * when it expired (nothing to write any more). */
bool
redis_qent_ready(struct redis_qent *e, uint64_t now_wall_ms)
{
    if (!e->expire_wall_ms)
        return true;
    if (now_wall_ms + 1 >= e->expire_wall_ms)
        return false;
    if (e->ttl_arg >= 0) {
        int n = snprintf(e->ttl, sizeof(e->ttl), "%llu",
                         (unsigned long long)(e->expire_wall_ms - now_wall_ms));
        e->argv[e->ttl_arg] = e->ttl;
        e->lens[e->ttl_arg] = (size_t)n;
    }
    return true;
}

void
redis_queue_put(struct redis_qent *e)
{
    struct redis_qent *old = NULL;
    if (!e)
        return;
    pthread_mutex_lock(&qlock);
    if (qcap == 0) {
        old = e;
    } else {
        if (qlen >= qcap) { /* drop the oldest: it is the nearest to expiry */
            old = qhead;
            qhead = old->next;
            if (!qhead)
                qtail = NULL;
            qlen--;
        }
        if (qtail)
            qtail->next = e;
        else
            qhead = e;
        qtail = e;
        e->next = NULL;
        e->was_queued = true;
        qlen++;
        atomic_fetch_add(&queued, 1);
    }
    pthread_mutex_unlock(&qlock);
    if (old) {
        free(old);
        atomic_fetch_add(&dropped, 1);
        if (!atomic_exchange(&drop_logged, true))
            log_warn("redis: the queue of writes waiting for a primary is full (queue_size %u); "
                     "dropping the oldest (counted in tether_redis_writes_dropped_total)",
                     qcap);
    }
}

static void
redis_queue_putback(struct redis_qent *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&qlock);
    bool room = qlen < qcap;
    if (room) {
        if (!e->was_queued)
            atomic_fetch_add(&queued, 1);
        e->was_queued = true;
        e->next = qhead;
        qhead = e;
        if (!qtail)
            qtail = e;
        qlen++;
    }
    pthread_mutex_unlock(&qlock);
    if (!room) {
        free(e);
        atomic_fetch_add(&dropped, 1);
    }
}

struct redis_qent *
redis_queue_take(void)
{
    pthread_mutex_lock(&qlock);
    struct redis_qent *e = qhead;
    if (e) {
        qhead = e->next;
        if (!qhead)
            qtail = NULL;
        qlen--;
        e->next = NULL;
    }
    pthread_mutex_unlock(&qlock);
    return e;
}

/* Written more than RECENT_MS before <now> (signed: another thread's clock
 * reading may be a hair later than ours). */
static bool
too_old(const struct redis_qent *e, uint64_t now)
{
    return (int64_t)(now - e->done_ms) > RECENT_MS;
}

/* Keep <e> among the recent writes; drop those older than RECENT_MS. */
static void
recent_add(struct redis_qent *e)
{
    uint64_t now = time_mono_ms();
    struct redis_qent *old = NULL;
    e->done_ms = now;
    e->next = NULL;
    pthread_mutex_lock(&qlock);
    if (rtail)
        rtail->next = e;
    else
        rhead = e;
    rtail = e;
    rlen++;
    while (rhead && (rlen > RECENT_MAX || too_old(rhead, now))) {
        struct redis_qent *x = rhead;
        rhead = x->next;
        rlen--;
        x->next = old;
        old = x;
    }
    if (!rhead)
        rtail = NULL;
    pthread_mutex_unlock(&qlock);
    while (old) {
        struct redis_qent *x = old;
        old = x->next;
        free(x);
    }
}

void
redis_queue_done(struct redis_qent *e, bool ok)
{
    if (ok) {
        if (e->was_queued)
            atomic_fetch_add(&written, 1);
        recent_add(e);
    } else {
        redis_queue_putback(e);
    }
}

uint32_t
redis_queue_replay_recent(void)
{
    uint64_t now = time_mono_ms();
    uint32_t n = 0;
    pthread_mutex_lock(&qlock);
    /* Skip what is too old, then put the rest before the queued writes (they
     * are older), in their order. */
    while (rhead && too_old(rhead, now)) {
        struct redis_qent *x = rhead;
        rhead = x->next;
        rlen--;
        free(x);
    }
    if (!rhead)
        rtail = NULL;
    if (rhead && qcap) {
        for (struct redis_qent *x = rhead; x; x = x->next) {
            x->was_queued = true;
            n++;
        }
        rtail->next = qhead;
        if (!qhead)
            qtail = rtail;
        qhead = rhead;
        qlen += n;
        rhead = rtail = NULL;
        rlen = 0;
    }
    pthread_mutex_unlock(&qlock);
    atomic_fetch_add(&queued, n);
    /* Over the bound now: the oldest go, as for any put. */
    if (n && qlen > qcap)
        redis_queue_set_size(qcap);
    return n;
}

void
redis_queue_drop(struct redis_qent *e)
{
    free(e);
    atomic_fetch_add(&dropped, 1);
}

void
redis_queue_count_expired(void)
{
    atomic_fetch_add(&expired, 1);
}

void
redis_queue_count_admin(bool kept)
{
    atomic_fetch_add(kept ? &queued : &dropped, 1);
}

void
redis_queue_set_size(uint32_t cap)
{
    struct redis_qent *drop = NULL;
    uint32_t n = 0;
    pthread_mutex_lock(&qlock);
    qcap = cap;
    while (qlen > qcap) {
        struct redis_qent *e = qhead;
        qhead = e->next;
        e->next = drop;
        drop = e;
        qlen--;
        n++;
    }
    if (!qhead)
        qtail = NULL;
    pthread_mutex_unlock(&qlock);
    while (drop) {
        struct redis_qent *e = drop;
        drop = e->next;
        free(e);
    }
    if (n)
        atomic_fetch_add(&dropped, n);
}

static void
list_free(struct redis_qent *e)
{
    while (e) {
        struct redis_qent *next = e->next;
        free(e);
        e = next;
    }
}

void
redis_queue_clear(void)
{
    pthread_mutex_lock(&qlock);
    struct redis_qent *e = qhead, *r = rhead;
    qhead = qtail = rhead = rtail = NULL;
    qlen = rlen = 0;
    pthread_mutex_unlock(&qlock);
    list_free(e);
    list_free(r);
}

void
redis_queue_stats(struct redis_queue_stats *out)
{
    pthread_mutex_lock(&qlock);
    out->len = qlen;
    out->cap = qcap;
    pthread_mutex_unlock(&qlock);
    out->queued = atomic_load(&queued);
    out->dropped = atomic_load(&dropped);
    out->written = atomic_load(&written);
    out->expired = atomic_load(&expired);
    if (out->len == 0)
        atomic_store(&drop_logged, false);
}
