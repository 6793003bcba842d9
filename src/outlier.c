/* SPDX-License-Identifier: MIT */
/* Passive ejection of failing servers: a streak of failures seen by any
 * worker ejects the server for base_ejection x (number of recent ejections),
 * capped by max_ejection, never more than max_ejected of an upstream at once. */
#include "config.h"

#include <tether/balance.h>
#include <tether/log.h>
#include <tether/outlier.h>
#include <tether/stats.h>
#include <tether/upstream.h>

#include <stdbool.h>

void
outlier_success(struct server *s, unsigned status)
{
    /* Read first: the common case writes nothing to the shared line. */
    if (status < 500 && atomic_load_explicit(&s->rt->consec_errors, memory_order_relaxed))
        atomic_store_explicit(&s->rt->consec_errors, 0, memory_order_relaxed);
}

/* Ejections are rare: one lock for all of them makes the max_ejected count and
 * the ejection itself one step, so two workers cannot both take the last slot. */
static atomic_flag eject_lock = ATOMIC_FLAG_INIT;

static uint32_t
ejected_count(const struct upstream *u, uint64_t now_ms)
{
    const struct members *m = upstream_members(u);
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->nservers; i++)
        if (atomic_load(&m->servers[i]->rt->ejected_until_ms) > now_ms)
            n++;
    return n;
}

void
outlier_failure(struct server *s, uint32_t worker)
{
    struct server_rt *rt = s->rt;
    const struct conf_outlier *co = &s->up->conf->outlier;
    uint32_t errs = atomic_fetch_add(&rt->consec_errors, 1) + 1;
    uint64_t now = time_mono_ms();
    if (!co->enabled || errs < co->consecutive_errors)
        return;
    uint64_t until = atomic_load(&rt->ejected_until_ms);
    if (until > now)
        return;
    /* Never eject more than max_ejected percent (at least one server may go). */
    uint32_t cap = upstream_members(s->up)->nservers * co->max_ejected_pct / 100;
    if (cap == 0)
        cap = 1;
    while (atomic_flag_test_and_set_explicit(&eject_lock, memory_order_acquire))
        ;
    if (ejected_count(s->up, now) >= cap) {
        atomic_flag_clear_explicit(&eject_lock, memory_order_release);
        return;
    }
    /* The period grows with the ejections the server had lately. */
    uint32_t k = atomic_load(&rt->ejections) + 1;
    uint64_t dur = co->base_ejection_ms * k;
    if (dur > co->max_ejection_ms || dur / k != co->base_ejection_ms)
        dur = co->max_ejection_ms;
    bool won = atomic_compare_exchange_strong(&rt->ejected_until_ms, &until, now + dur);
    if (won)
        atomic_store(&rt->ejections, k);
    atomic_flag_clear_explicit(&eject_lock, memory_order_release);
    if (!won)
        return;
    atomic_store(&rt->consec_errors, 0);
    atomic_store(&s->up->plan_dirty, 1);
    gstat_add(worker, GS_EJECTIONS, 1);
    log_warn("outlier: server %s ejected for %llums after %u consecutive errors", rt->key,
             (unsigned long long)dur, errs);
}

int
outlier_tick(struct upstream *u, uint64_t now_ms)
{
    const struct members *m = upstream_members(u);
    int changed = 0;
    for (uint32_t i = 0; i < m->nservers; i++) {
        struct server_rt *rt = m->servers[i]->rt;
        uint64_t until = atomic_load(&rt->ejected_until_ms);
        if (until && until <= now_ms &&
            atomic_compare_exchange_strong(&rt->ejected_until_ms, &until, 0)) {
            atomic_store(&rt->usable_since_ms, now_ms);
            log_notice("outlier: server %s re-admitted after ejection", rt->key);
            changed = 1;
        } else if (!until && atomic_load(&rt->ejections) &&
                   now_ms > atomic_load(&rt->usable_since_ms) + u->conf->outlier.max_ejection_ms) {
            /* A long healthy stretch forgets earlier ejections. */
            atomic_store(&rt->ejections, 0);
        }
    }
    return changed;
}

bool
outlier_health_pass(const struct upstream *u, struct server_rt *rt, uint64_t now_ms)
{
    uint64_t until = atomic_load(&rt->ejected_until_ms);
    if (!u->conf->outlier.uneject_on_health_pass || until <= now_ms ||
        !atomic_compare_exchange_strong(&rt->ejected_until_ms, &until, 0))
        return false;
    atomic_store(&rt->consec_errors, 0);
    atomic_store(&rt->usable_since_ms, now_ms);
    log_notice("outlier: server %s re-admitted: an active health check passed", rt->key);
    return true;
}
