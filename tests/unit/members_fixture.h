/* SPDX-License-Identifier: MIT */
/* A membership built by hand for unit tests, as membership_build() makes it
 * (gen_build would bind sockets): the first upstream of a parsed config, every
 * server in its region with runtime state and hash key, and, given a cookie
 * key, cookie ids sorted for lookups. */
#ifndef TETHER_TEST_MEMBERS_FIXTURE_H
#define TETHER_TEST_MEMBERS_FIXTURE_H

#include <tether/balance.h>
#include <tether/cookie.h>
#include <tether/upstream.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void
fixture_members(struct upstream *up, const struct conf_upstream *cu, const struct cookie_key *key)
{
    char name[256];
    memset(up, 0, sizeof(*up));
    up->conf = cu;
    up->nregions = cu->nregions;
    up->regions = calloc(cu->nregions, sizeof(*up->regions));
    struct members *m = calloc(1, sizeof(*m));
    atomic_init(&m->refs, 1);
    m->nservers = cu->nservers;
    m->servers = calloc(cu->nservers, sizeof(*m->servers));
    m->regions = calloc(cu->nregions, sizeof(*m->regions));
    m->id_sorted = calloc(cu->nservers, sizeof(*m->id_sorted));
    m->id_index = calloc(cu->nservers, sizeof(*m->id_index));
    for (uint32_t r = 0; r < cu->nregions; r++) {
        snprintf(name, sizeof(name), "voice/%s", cu->regions[r].name);
        up->regions[r].conf = &cu->regions[r];
        up->regions[r].rt = region_rt_get(name);
        m->regions[r].servers = calloc(cu->nservers, sizeof(uint32_t));
    }
    for (uint32_t i = 0; i < cu->nservers; i++) {
        struct server *s = aligned_alloc(CACHELINE, sizeof(*s));
        memset(s, 0, sizeof(*s));
        int n = snprintf(name, sizeof(name), "voice/%s", cu->servers[i].name);
        atomic_init(&s->refs, 1);
        s->conf = &cu->servers[i];
        s->max_conns = s->conf->max_conns;
        s->up = up;
        s->index = i;
        s->region = (uint32_t)cu->servers[i].region;
        s->rt = server_rt_get(name, true);
        s->hash_key = chash_hash(name, (size_t)n);
        if (key)
            s->cookie_id = cookie_server_id(key, name, (size_t)n);
        m->servers[i] = s;
        struct region_members *rm = &m->regions[s->region];
        rm->servers[rm->nservers++] = i;
        /* Cookie ids sorted for binary search, as membership_build does. */
        uint32_t j = i;
        while (j > 0 && m->id_sorted[j - 1] > s->cookie_id) {
            m->id_sorted[j] = m->id_sorted[j - 1];
            m->id_index[j] = m->id_index[j - 1];
            j--;
        }
        m->id_sorted[j] = s->cookie_id;
        m->id_index[j] = i;
    }
    up->members = m;
}

/* Free what fixture_members() built, with the plan. */
static inline void
fixture_members_free(struct upstream *up)
{
    struct members *m = up->members;
    plan_free(atomic_load(&up->plan));
    up->plan = NULL;
    for (uint32_t r = 0; r < up->nregions; r++) {
        region_rt_unref(up->regions[r].rt);
        free(m->regions[r].servers);
    }
    struct server **servers = m->servers;
    struct region_members *regions = m->regions;
    uint64_t *ids = m->id_sorted;
    uint32_t *idx = m->id_index;
    members_unref(m); /* releases the servers and their runtime state */
    free(servers);
    free(regions);
    free(ids);
    free(idx);
    free(up->regions);
}

#endif
