/* SPDX-License-Identifier: MIT */
/* Upstream membership: configured servers plus the runtime roster (servers
 * from DNS and the admin socket, and configured servers an operator deleted),
 * built into a struct members and published with a new balancer plan. The
 * roster is keyed by upstream name and server identity, so it outlives
 * generations: a reload keeps discovered and admin-added servers. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/cookie.h>
#include <tether/gen.h>
#include <tether/health.h>
#include <tether/log.h>
#include <tether/membership.h>
#include <tether/session.h>
#include <tether/session_store.h>
#include <tether/strmap.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A roster entry: a server that is not (only) a server line of the config. */
struct dyn {
    char *key;    /* "up" US "name": the roster index key */
    char *up;     /* upstream name */
    char *name;   /* identity: the admin name, or host:port from DNS */
    char *tag;    /* DNS: the discover name that gave it; NULL otherwise */
    char *region; /* NULL: the default region */
    struct sock_addr addr;
    uint32_t weight;
    uint8_t source;       /* enum srv_source; CONFIG: a deleted configured server */
    bool leaving;         /* no new sessions; removed at leave_at or when down */
    bool removed;         /* CONFIG only: out of the membership */
    bool held;            /* deleted by an operator: DNS does not bring it back */
    uint64_t seen;        /* DNS: the last answer (membership_dns_set call) that had it */
    uint64_t leave_at_ms; /* monotonic deadline of a leaving server */
    uint32_t idx;         /* position in roster[] */
};

static struct dyn **roster;
static uint32_t nroster;
static struct strmap roster_by_key; /* dyn.key -> dyn */
static uint64_t refused;
static uint64_t answers; /* membership_dns_set calls, stamps dyn.seen */

/* The index key of <up>/<name> (the unit separator cannot occur in either);
 * NULL when out of memory. */
static char *
dyn_key(const char *up, const char *name)
{
    size_t lu = strlen(up), ln = strlen(name);
    char *k = malloc(lu + ln + 2);
    if (k) {
        memcpy(k, up, lu);
        k[lu] = '\x1f';
        memcpy(k + lu + 1, name, ln + 1);
    }
    return k;
}

static struct dyn *
dyn_find(const char *up, const char *name)
{
    char *k = dyn_key(up, name);
    struct dyn *d = NULL;
    if (k)
        d = strmap_get(&roster_by_key, k);
    else /* out of memory: scan */
        for (uint32_t i = 0; i < nroster && !d; i++)
            if (strcmp(roster[i]->up, up) == 0 && strcmp(roster[i]->name, name) == 0)
                d = roster[i];
    free(k);
    return d;
}

static void
dyn_free(struct dyn *d)
{
    free(d->key);
    free(d->up);
    free(d->name);
    free(d->tag);
    free(d->region);
    free(d);
}

static void
dyn_remove(struct dyn *d)
{
    strmap_del(&roster_by_key, d->key);
    roster[d->idx] = roster[--nroster];
    roster[d->idx]->idx = d->idx;
    dyn_free(d);
}

static struct upstream *
current_upstream(const char *name)
{
    struct gen *g = atomic_load(&gen_current);
    for (uint32_t i = 0; g && i < g->nupstreams; i++)
        if (strcmp(g->upstreams[i].conf->name, name) == 0)
            return &g->upstreams[i];
    return NULL;
}

static int32_t
conf_server_index(const struct conf_upstream *cu, const char *name)
{
    for (uint32_t i = 0; i < cu->nservers; i++)
        if (strcmp(cu->servers[i].name, name) == 0)
            return (int32_t)i;
    return -1;
}

static int32_t
region_index(const struct conf_upstream *cu, const char *name)
{
    const char *rn = name ? name : "default";
    for (uint32_t r = 0; r < cu->nregions; r++)
        if (strcmp(cu->regions[r].name, rn) == 0)
            return (int32_t)r;
    /* No region named: "default", else the upstream's only region. */
    return !name && cu->nregions == 1 ? 0 : -1;
}

/* ---- build ---- */

/* A server object for <u>: its runtime state found or created by identity,
 * by the one rule of server_rt_join(): a configured server of the first
 * generation (<at_start>) follows health_check initial_up; any other new
 * server (a reload's, discovered, added by the admin socket) starts
 * unchecked, down until its first passing check (then slow start). */
static struct server *
server_new(struct upstream *u, const struct conf_server *cs, const struct dyn *d, uint32_t region,
           uint32_t index, bool at_start)
{
    const struct conf_upstream *cu = u->conf;
    char key[512];
    struct server *s = aligned_alloc(CACHELINE, sizeof(*s));
    if (!s)
        return NULL;
    memset(s, 0, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->up = u;
    s->index = index;
    s->region = region;
    if (cs) {
        s->conf = cs;
        s->source = SRV_SRC_CONFIG;
        s->tls_ctx = u->tls_ctx[cs - cu->servers];
    } else {
        s->own.name = strdup(d->name);
        s->own.region_name = d->region ? strdup(d->region) : NULL;
        s->own.addr = d->addr;
        sock_addr_format(&d->addr, s->own.addr_text, sizeof(s->own.addr_text));
        s->own.region = (int32_t)region;
        s->own.weight = d->weight;
        s->conf = &s->own;
        s->source = d->source;
        if (!s->own.name || (d->region && !s->own.region_name))
            goto fail;
    }
    s->leaving = d && d->leaving;
    s->max_conns = s->conf->max_conns;
    int n = snprintf(key, sizeof(key), "%s/%s", cu->name, s->conf->name);
    bool fresh = server_rt_find(key) == NULL;
    s->rt = server_rt_join(key, &cu->health, cs && at_start);
    if (!s->rt)
        goto fail;
    if (fresh && !cs)
        atomic_store(&s->rt->usable_since_ms, time_mono_ms()); /* slow start */
    atomic_store(&s->rt->weight_conf, (int32_t)s->conf->weight);
    atomic_store(&s->rt->gen_id, u->gen->id);
    /* Identity, not position: every replica derives the same cookie id and
     * hash point from "upstream/server". */
    s->cookie_id = cookie_server_id(&u->gen->aff->key, key, (size_t)n);
    s->hash_key = chash_hash(key, (size_t)n);
    return s;
fail:
    free(s->own.name);
    free(s->own.region_name);
    free(s);
    return NULL;
}

static struct members *
members_alloc(uint32_t cap, uint32_t nregions)
{
    size_t sz = sizeof(struct members) + cap * sizeof(struct server *) +
                nregions * sizeof(struct region_members) + cap * sizeof(uint32_t) +
                cap * sizeof(uint64_t) + cap * sizeof(uint32_t) + 16;
    struct members *m = calloc(1, sz);
    if (!m)
        return NULL;
    char *p = (char *)(m + 1);
    m->id_sorted = (uint64_t *)p;
    p += cap * sizeof(uint64_t);
    m->servers = (struct server **)p;
    p += cap * sizeof(struct server *);
    m->regions = (struct region_members *)p;
    p += nregions * sizeof(struct region_members);
    m->id_index = (uint32_t *)p;
    p += cap * sizeof(uint32_t);
    /* Region lists share one array: region r's list starts after the lists
     * before it, sized in a first pass by the caller. */
    m->regions[0].servers = nregions ? (uint32_t *)p : NULL;
    atomic_init(&m->refs, 1);
    return m;
}

struct members *
membership_build(struct upstream *u, bool at_start, struct err *e)
{
    const struct conf_upstream *cu = u->conf;
    uint32_t cap = cu->nservers, nr = u->nregions;
    uint32_t *count = calloc(nr ? nr : 1, sizeof(uint32_t));

    for (uint32_t i = 0; i < nroster; i++)
        if (strcmp(roster[i]->up, cu->name) == 0 && roster[i]->source != SRV_SRC_CONFIG)
            cap++;
    struct members *m = members_alloc(cap, nr);
    if (!m || !count) {
        free(count);
        free(m);
        err_set(e, "out of memory building the servers of \"%s\"", cu->name);
        return NULL;
    }
    /* Configured servers first (in file order), then the roster's. */
    for (uint32_t i = 0; i < cu->nservers; i++) {
        const struct conf_server *cs = &cu->servers[i];
        const struct dyn *d = dyn_find(cu->name, cs->name);
        if (d && d->source == SRV_SRC_CONFIG && d->removed)
            continue;
        struct server *s = server_new(u, cs, d && d->source == SRV_SRC_CONFIG ? d : NULL,
                                      (uint32_t)cs->region, m->nservers, at_start);
        if (!s)
            goto oom;
        m->servers[m->nservers++] = s;
    }
    for (uint32_t i = 0; i < nroster; i++) {
        const struct dyn *d = roster[i];
        if (strcmp(d->up, cu->name) != 0 || d->source == SRV_SRC_CONFIG ||
            conf_server_index(cu, d->name) >= 0)
            continue;
        int32_t r = region_index(cu, d->region);
        if (r < 0)
            continue; /* its region is gone from the config: it waits */
        struct server *s = server_new(u, NULL, d, (uint32_t)r, m->nservers, false);
        if (!s)
            goto oom;
        m->servers[m->nservers++] = s;
    }
    for (uint32_t i = 0; i < m->nservers; i++)
        count[m->servers[i]->region]++;
    for (uint32_t r = 1; r < nr; r++)
        m->regions[r].servers = m->regions[r - 1].servers + count[r - 1];
    for (uint32_t i = 0; i < m->nservers; i++) {
        struct region_members *rm = &m->regions[m->servers[i]->region];
        rm->servers[rm->nservers++] = i;
    }
    /* Cookie ids sorted for binary search (ties are astronomically unlikely,
     * and harmless: the first wins). */
    for (uint32_t i = 0; i < m->nservers; i++) {
        uint32_t j = i;
        while (j > 0 && m->id_sorted[j - 1] > m->servers[i]->cookie_id) {
            m->id_sorted[j] = m->id_sorted[j - 1];
            m->id_index[j] = m->id_index[j - 1];
            j--;
        }
        m->id_sorted[j] = m->servers[i]->cookie_id;
        m->id_index[j] = i;
    }
    free(count);
    return m;
oom:
    free(count);
    members_unref(m);
    err_set(e, "out of memory building the servers of \"%s\"", cu->name);
    return NULL;
}

/* Publish a new membership of <u> with its plan; health checks follow
 * (<checks>: once the control loop runs). */
static int
membership_publish(struct upstream *u, bool checks, struct err *e)
{
    struct members *m = membership_build(u, false, e);
    if (!m)
        return -1;
    struct members *old = u->members;
    u->members = m;
    if (balance_rebuild(u, time_mono_ms()) < 0) {
        u->members = old;
        members_unref(m);
        return err_set(e, "out of memory building the balancer plan of \"%s\"", u->conf->name);
    }
    members_unref(old); /* the retired plan still holds it */
    if (checks)
        health_sync(u->gen);
    return 0;
}

static void
republish(const char *up)
{
    struct upstream *u = current_upstream(up);
    struct err e;
    if (u && membership_publish(u, true, &e) < 0)
        log_error("membership: %s", e.msg);
}

/* ---- changes ---- */

static struct dyn *
dyn_new(const char *up, const char *name, unsigned source)
{
    struct dyn *d = calloc(1, sizeof(*d));
    struct dyn **n = realloc(roster, (nroster + 1) * sizeof(*n));
    if (n)
        roster = n;
    if (!d || !n || !(d->up = strdup(up)) || !(d->name = strdup(name)) ||
        !(d->key = dyn_key(up, name)) || !strmap_put(&roster_by_key, d->key, d)) {
        if (d)
            dyn_free(d);
        return NULL;
    }
    d->source = (uint8_t)source;
    d->weight = 1;
    d->idx = nroster;
    roster[nroster++] = d;
    return d;
}

static void
leave(struct dyn *d, const struct upstream *u, uint64_t now_ms)
{
    if (d->leaving)
        return;
    d->leaving = true;
    d->leave_at_ms = now_ms + u->conf->leave_timeout_ms;
    log_notice("membership: server %s/%s is leaving (pinned sessions stay up to %llums)", d->up,
               d->name, (unsigned long long)u->conf->leave_timeout_ms);
}

/* Pooled connections to an identity whose address changed must not be reused. */
static void
addr_changed(const char *up, const char *name)
{
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", up, name);
    struct server_rt *rt = server_rt_find(key);
    if (rt)
        atomic_fetch_add(&rt->addr_version, 1);
}

static int
set_region_name(struct dyn *d, const char *region)
{
    if ((!d->region && !region) || (d->region && region && strcmp(d->region, region) == 0))
        return 0;
    char *r = region ? strdup(region) : NULL;
    if (region && !r)
        return -1;
    free(d->region);
    d->region = r;
    return 0;
}

int
membership_add(const char *up, const char *name, const struct sock_addr *addr, uint32_t weight,
               const char *region, unsigned source, struct err *e)
{
    struct upstream *u = current_upstream(up);
    if (!u)
        return err_set(e, "no upstream \"%s\"", up);
    const struct conf_upstream *cu = u->conf;
    struct dyn *d = dyn_find(up, name);
    if (conf_server_index(cu, name) >= 0) {
        if (!d || d->source != SRV_SRC_CONFIG)
            return err_set(e, "\"%s/%s\" is a configured server", up, name);
        dyn_remove(d); /* a deleted configured server comes back */
        republish(up);
        return 0;
    }
    if (region_index(cu, region) < 0)
        return err_set(e,
                       region ? "upstream \"%s\" has no region \"%s\""
                              : "upstream \"%s\" has several regions; name one (region=R)",
                       up, region);
    if (!d) {
        if (u->members->nservers >= cu->max_servers) {
            refused++;
            return err_set(e, "upstream \"%s\" has max_servers %u servers already", up,
                           cu->max_servers);
        }
        if (!(d = dyn_new(up, name, source)))
            return err_set(e, "out of memory");
        d->addr = *addr;
    } else if (!sock_addr_equal(&d->addr, addr)) {
        d->addr = *addr;
        addr_changed(up, name);
    }
    if (set_region_name(d, region) < 0)
        return err_set(e, "out of memory");
    d->source = (uint8_t)source;
    d->weight = weight;
    if (d->leaving)
        log_notice("membership: server %s/%s is back", up, name);
    d->leaving = d->held = false;
    free(d->tag);
    d->tag = NULL;
    republish(up);
    return 0;
}

int
membership_del(const char *up, const char *name, bool now, struct err *e)
{
    struct upstream *u = current_upstream(up);
    if (!u)
        return err_set(e, "no upstream \"%s\"", up);
    struct dyn *d = dyn_find(up, name);
    bool configured = conf_server_index(u->conf, name) >= 0;
    if (!d && !configured)
        return err_set(e, "no server \"%s\" in upstream \"%s\"", name, up);
    if (d && d->source == SRV_SRC_CONFIG && d->removed)
        return err_set(e, "server \"%s/%s\" is already removed", up, name);
    if (!d && !(d = dyn_new(up, name, SRV_SRC_CONFIG)))
        return err_set(e, "out of memory");
    if (now || u->conf->leave_timeout_ms == 0) {
        log_notice("membership: server %s/%s removed", up, name);
        if (d->source == SRV_SRC_CONFIG) {
            d->removed = true;
            d->leaving = false;
        } else {
            dyn_remove(d);
        }
    } else {
        leave(d, u, time_mono_ms());
        d->held = true;
    }
    republish(up);
    return 0;
}

void
membership_dns_set(const char *up, const char *tag, const char *region, const struct disc_addr *a,
                   uint32_t n)
{
    struct upstream *u = current_upstream(up);
    uint64_t now = time_mono_ms(), stamp = ++answers;
    bool changed = false;
    uint32_t over = 0;
    char name[SOCK_ADDR_STRLEN];
    if (!u)
        return;
    uint32_t total = u->members->nservers;
    for (uint32_t i = 0; i < n; i++) {
        sock_addr_format(&a[i].addr, name, sizeof(name));
        struct dyn *d = dyn_find(up, name);
        if (d && d->source != SRV_SRC_DNS)
            continue; /* the operator's entry wins */
        if (!d) {
            if (total >= u->conf->max_servers) {
                over++;
                continue;
            }
            if (!(d = dyn_new(up, name, SRV_SRC_DNS)) || !(d->tag = strdup(tag)) ||
                set_region_name(d, region) < 0) {
                log_error("membership: out of memory adding %s/%s", up, name);
                if (d)
                    dyn_remove(d);
                continue;
            }
            d->addr = a[i].addr;
            total++;
            changed = true;
            log_notice("membership: server %s/%s joins (DNS %s)", up, name, tag);
        } else if (d->leaving && !d->held) {
            d->leaving = false;
            changed = true;
            log_notice("membership: server %s/%s is back (DNS %s)", up, name, tag);
        }
        if (d->weight != a[i].weight)
            changed = true;
        d->weight = a[i].weight;
        d->seen = stamp;
    }
    /* Out of this good answer: leave. */
    for (uint32_t i = 0; i < nroster; i++) {
        struct dyn *d = roster[i];
        if (d->source != SRV_SRC_DNS || d->leaving || d->seen == stamp || !d->tag ||
            strcmp(d->tag, tag) != 0 || strcmp(d->up, up) != 0)
            continue;
        leave(d, u, now);
        changed = true;
    }
    if (over) {
        refused += over;
        log_warn("membership: upstream %s is at max_servers %u: %u address(es) of %s refused", up,
                 u->conf->max_servers, over, tag);
    }
    if (changed)
        republish(up);
}

void
membership_tick(uint64_t now_ms)
{
    char key[512];
    for (uint32_t i = 0; i < nroster;) {
        struct dyn *d = roster[i];
        struct upstream *u = d->leaving ? current_upstream(d->up) : NULL;
        if (!u) {
            i++;
            continue;
        }
        snprintf(key, sizeof(key), "%s/%s", d->up, d->name);
        const struct server_rt *rt = server_rt_find(key);
        bool down = u->conf->health.enabled && rt && atomic_load(&rt->health) == HEALTH_DOWN;
        if (now_ms < d->leave_at_ms && !down) {
            i++;
            continue;
        }
        char *up = strdup(d->up);
        log_notice("membership: leaving server %s removed (%s)", key,
                   down ? "it failed its health check" : "leave_timeout");
        if (d->source == SRV_SRC_CONFIG) {
            d->removed = true;
            d->leaving = false;
            i++;
        } else {
            dyn_remove(d); /* roster[i] is now another entry */
        }
        if (up)
            republish(up);
        free(up);
    }
}

void
membership_sync(struct gen *g)
{
    uint64_t now = time_mono_ms();
    for (uint32_t i = 0; i < nroster;) {
        struct dyn *d = roster[i];
        struct upstream *u = current_upstream(d->up);
        if (d->source == SRV_SRC_CONFIG || (u && conf_server_index(u->conf, d->name) >= 0)) {
            dyn_remove(d); /* the new configuration decides */
            continue;
        }
        bool listed = false;
        for (uint32_t k = 0; u && d->tag && k < u->conf->ndiscovers; k++)
            listed |= strcmp(u->conf->discovers[k].name, d->tag) == 0;
        if (u && d->source == SRV_SRC_DNS && !listed)
            leave(d, u, now);
        i++;
    }
    for (uint32_t i = 0; i < g->nupstreams; i++)
        republish(g->upstreams[i].conf->name);
}

uint64_t
membership_refused(void)
{
    return refused;
}

uint64_t *
membership_pinned(const struct members *m)
{
    struct session_table *t = session_store_table();
    uint64_t *by_id = calloc(m->nservers + 1, sizeof(uint64_t));
    uint64_t *out = calloc(m->nservers + 1, sizeof(uint64_t));
    if (!by_id || !out) {
        free(by_id);
        free(out);
        return NULL;
    }
    if (t)
        session_table_count_by_server(t, time_mono_ms(), m->id_sorted, m->nservers, by_id);
    for (uint32_t k = 0; k < m->nservers; k++)
        out[m->id_index[k]] = by_id[k];
    for (uint32_t i = 0; i < m->nservers; i++)
        out[i] += (uint64_t)atomic_load(&m->servers[i]->rt->tunnels);
    free(by_id);
    return out;
}

/* ---- binary upgrade ---- */

/* A field of a state line: no white space, or "-" for none. */
static bool
field_ok(const char *f)
{
    return f && *f && strlen(f) < 180 && strcspn(f, " \t\r\n") == strlen(f) && strcmp(f, "-") != 0;
}

void
membership_state_out(void (*emit)(void *ctx, const char *line), void *ctx)
{
    char line[1200], addr[SOCK_ADDR_STRLEN];
    for (uint32_t i = 0; i < nroster; i++) {
        const struct dyn *d = roster[i];
        if (!field_ok(d->up) || !field_ok(d->name) || (d->tag && !field_ok(d->tag)) ||
            (d->region && !field_ok(d->region))) {
            log_warn("membership: server %s/%s is not handed over (a space in its names)", d->up,
                     d->name);
            continue;
        }
        if (d->source == SRV_SRC_CONFIG)
            snprintf(addr, sizeof(addr), "-");
        else
            sock_addr_format(&d->addr, addr, sizeof(addr));
        unsigned flags = (d->leaving ? 1u : 0) | (d->held ? 2u : 0) | (d->removed ? 4u : 0);
        int n = snprintf(line, sizeof(line), "dyn %u %u %llu %u %s %s %s %s %s", d->source, flags,
                         (unsigned long long)d->leave_at_ms, d->weight, d->up, d->name, addr,
                         d->tag ? d->tag : "-", d->region ? d->region : "-");
        if (n > 0 && (size_t)n < sizeof(line))
            emit(ctx, line);
    }
}

int
membership_state_in(const char *line)
{
    unsigned source, flags, weight;
    unsigned long long leave_at;
    char up[256], name[256], addr[256], tag[256], region[256];
    struct sock_addr a = {0};
    struct err e;
    if (sscanf(line, "dyn %u %u %llu %u %255s %255s %255s %255s %255s", &source, &flags, &leave_at,
               &weight, up, name, addr, tag, region) != 9 ||
        source > SRV_SRC_ADMIN || flags > 7)
        return -1;
    if (source != SRV_SRC_CONFIG && sock_addr_parse(&a, addr, 0, &e) < 0)
        return -1;
    struct dyn *d = dyn_find(up, name);
    if (!d && !(d = dyn_new(up, name, source)))
        return -1;
    d->source = (uint8_t)source;
    d->addr = a;
    d->weight = weight ? weight : 1;
    d->leaving = flags & 1u;
    d->held = flags & 2u;
    d->removed = flags & 4u;
    d->leave_at_ms = leave_at;
    free(d->tag);
    d->tag = strcmp(tag, "-") != 0 ? strdup(tag) : NULL;
    if (set_region_name(d, strcmp(region, "-") != 0 ? region : NULL) < 0)
        return -1;
    /* As on a reload: a discover line the configuration no longer has lets
     * its servers leave. */
    struct upstream *u = current_upstream(up);
    bool listed = false;
    for (uint32_t k = 0; u && d->tag && k < u->conf->ndiscovers; k++)
        listed |= strcmp(u->conf->discovers[k].name, d->tag) == 0;
    if (u && d->source == SRV_SRC_DNS && !listed)
        leave(d, u, time_mono_ms());
    return 0;
}

void
membership_state_done(void)
{
    struct gen *g = atomic_load(&gen_current);
    struct err e;
    for (uint32_t i = 0; g && i < g->nupstreams; i++)
        if (membership_publish(&g->upstreams[i], false, &e) < 0)
            log_error("membership: %s", e.msg);
}

void
membership_fini(void)
{
    for (uint32_t i = 0; i < nroster; i++)
        dyn_free(roster[i]);
    free(roster);
    roster = NULL;
    nroster = 0;
    strmap_free(&roster_by_key);
}
