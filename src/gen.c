/* SPDX-License-Identifier: MIT */
/* Generations: build runtime objects from a checked config, share listening
 * sockets and runtime state with the previous generation, publish by atomic
 * swap, free when the last reference goes; and the router. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/gen.h>
#include <tether/lb.h>
#include <tether/qsbr.h>
#include <tether/log.h>
#include <tether/membership.h>
#include <tether/ratelimit.h>
#include <tether/session_store.h>
#include <tether/sock.h>
#include <tether/stats.h>
#include <tether/tls.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Atomic(struct gen *) gen_current;
/* Orders "load current + take a reference" against "swap + drop the old one". */
static pthread_mutex_t publish_lock = PTHREAD_MUTEX_INITIALIZER;
/* Orders a worker's "read gen_listen.socks + take a reference" against the
 * control side's "clear + drop" (gen_listens_release). */
static pthread_mutex_t listens_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- router ---- */

struct route *
router_match(const struct vserver *vs, const char *path, size_t len)
{
    for (uint32_t i = 0; i < vs->nexact; i++) {
        const struct conf_route *c = vs->exact[i]->conf;
        if (c->path_len == len && memcmp(c->path, path, len) == 0)
            return vs->exact[i];
    }
    for (uint32_t i = 0; i < vs->nprefix; i++) {
        const struct conf_route *c = vs->prefix[i]->conf;
        if (c->path_len <= len && memcmp(c->path, path, c->path_len) == 0)
            return vs->prefix[i];
    }
    return NULL;
}

static int
cmp_prefix_len(const void *a, const void *b)
{
    const struct route *ra = *(const struct route *const *)a;
    const struct route *rb = *(const struct route *const *)b;
    if (ra->conf->path_len != rb->conf->path_len)
        return ra->conf->path_len > rb->conf->path_len ? -1 : 1;
    return strcmp(ra->conf->path, rb->conf->path);
}

/* ---- listeners ---- */

void
listen_fds_unref(struct listen_fds *l)
{
    if (!l || atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    for (uint32_t i = 0; i < l->nfds; i++)
        if (l->fds[i] >= 0)
            close(l->fds[i]);
    free(l);
}

static struct listen_fds *
listen_fds_open(const struct conf_listen *cl, uint32_t nw, struct err *e)
{
    /* After a binary upgrade from a process with more workers, every socket it
     * handed over is kept (a closed one would lose its accept queue); workers
     * then watch several (worker.c). */
    uint32_t inherited = sock_adopted_count(&cl->addr);
    nw = MAX(nw, inherited);
    struct listen_fds *l = calloc(1, sizeof(*l) + sizeof(int) * nw);
    if (!l) {
        err_set(e, "out of memory");
        return NULL;
    }
    atomic_init(&l->refs, 1);
    l->addr = cl->addr;
    l->nfds = nw;
    for (uint32_t i = 0; i < nw; i++)
        l->fds[i] = -1;
    for (uint32_t i = 0; i < nw; i++) {
        struct err e2;
        /* TCP_DEFER_ACCEPT: accept only once the first bytes arrived, so the
         * first read after accept finds data. */
        l->fds[i] = sock_listen(&cl->addr, cl->backlog, true, true, 0, &e2);
        if (l->fds[i] < 0) {
            err_at(e, cl->pos.file, (int)cl->pos.line, (int)cl->pos.col, "%s", e2.msg);
            listen_fds_unref(l);
            return NULL;
        }
    }
    return l;
}

static struct listen_fds *
listen_fds_find(const struct gen *prev, const struct sock_addr *a)
{
    if (!prev)
        return NULL;
    for (uint32_t i = 0; i < prev->nlistens; i++)
        if (prev->listens[i].socks && sock_addr_equal(&prev->listens[i].socks->addr, a))
            return prev->listens[i].socks;
    return NULL;
}

/* ---- build ---- */

static int
build_upstream(struct gen *g, struct upstream *u, const struct conf_upstream *cu,
               const struct gen *prev, struct err *e)
{
    char key[512];
    u->conf = cu;
    u->gen = g;
    u->index = cu->index;
    u->cookie_name = cu->affinity_cookie ? cu->affinity_cookie : g->conf->affinity.cookie_name;
    u->cookie_name_len = strlen(u->cookie_name);
    u->nregions = cu->nregions;
    u->regions = arena_calloc(&g->arena, cu->nregions ? cu->nregions : 1, sizeof(*u->regions));
    u->tls_ctx = arena_calloc(&g->arena, cu->nservers ? cu->nservers : 1, sizeof(*u->tls_ctx));
    for (uint32_t r = 0; r < cu->nregions; r++) {
        struct region *reg = &u->regions[r];
        reg->conf = &cu->regions[r];
        snprintf(key, sizeof(key), "%s/%s", cu->name, cu->regions[r].name);
        reg->rt = region_rt_get(key);
        if (!reg->rt)
            return err_set(e, "out of memory");
    }
    for (uint32_t i = 0; i < cu->nservers; i++) {
        const struct conf_server *cs = &cu->servers[i];
        if (cs->tls && !(u->tls_ctx[i] = tls_client_build(cs, e)))
            return -1;
        if (!prev)
            continue;
        /* Same server, new address: pooled connections must not be reused. */
        for (uint32_t k = 0; k < prev->nupstreams; k++) {
            const struct upstream *pu = &prev->upstreams[k];
            if (strcmp(pu->conf->name, cu->name) != 0)
                continue;
            const struct server *ps = upstream_server_by_name(pu, cs->name);
            if (ps && !sock_addr_equal(&ps->conf->addr, &cs->addr))
                atomic_fetch_add(&ps->rt->addr_version, 1);
        }
    }
    /* Configured servers plus the runtime roster (DNS, admin). */
    u->members = membership_build(u, prev == NULL, e);
    if (!u->members)
        return -1;
    balance_cursors_init(u, g->nworkers, &g->arena);
    struct lb_plan *p = plan_build(u, time_mono_ms());
    if (!p)
        return err_set(e, "out of memory building the balancer plan of \"%s\"", cu->name);
    atomic_init(&u->plan, p);
    return 0;
}

static int
build_vserver(struct gen *g, struct vserver *vs, const struct conf_vserver *cv, struct err *e)
{
    vs->conf = cv;
    vs->nroutes = cv->nroutes;
    vs->routes = arena_calloc(&g->arena, cv->nroutes, sizeof(*vs->routes));
    vs->exact = arena_calloc(&g->arena, cv->nroutes, sizeof(*vs->exact));
    vs->prefix = arena_calloc(&g->arena, cv->nroutes, sizeof(*vs->prefix));
    for (uint32_t i = 0; i < cv->nroutes; i++) {
        struct route *r = &vs->routes[i];
        r->conf = &cv->routes[i];
        r->index = i;
        r->up = &g->upstreams[r->conf->upstream];
        r->stats = route_stats_get(r->conf->label);
        if (!r->stats)
            return err_set(e, "out of memory");
        r->nzones = r->conf->nzones;
        r->zones = arena_calloc(&g->arena, r->nzones ? r->nzones : 1, sizeof(*r->zones));
        for (uint32_t z = 0; z < r->nzones; z++)
            r->zones[z] = g->zones[r->conf->zones[z]];
        if (r->conf->exact)
            vs->exact[vs->nexact++] = r;
        else
            vs->prefix[vs->nprefix++] = r;
    }
    qsort(vs->prefix, vs->nprefix, sizeof(*vs->prefix), cmp_prefix_len);
    if (cv->ncerts) {
        vs->tls = tls_server_build(cv, e);
        if (!vs->tls)
            return -1;
    }
    if (cv->conn_zone >= 0 || cv->limit_conn) {
        vs->conn_zone = conn_zone_get(g->conf, cv, e);
        if (!vs->conn_zone)
            return -1;
    }
    return 0;
}

static void
gen_free(struct gen *g)
{
    for (uint32_t i = 0; i < g->nupstreams; i++) {
        struct upstream *u = &g->upstreams[i];
        if (!u->conf)
            continue;
        plan_free(atomic_load(&u->plan));
        members_unref(u->members);
        for (uint32_t s = 0; s < u->conf->nservers && u->tls_ctx; s++)
            if (u->tls_ctx[s])
                tls_client_free(u->tls_ctx[s]);
        for (uint32_t r = 0; r < u->nregions; r++)
            region_rt_unref(u->regions[r].rt);
    }
    for (uint32_t i = 0; i < g->nvservers; i++) {
        struct vserver *vs = &g->vservers[i];
        for (uint32_t r = 0; r < vs->nroutes; r++)
            route_stats_put(vs->routes[r].stats);
        if (vs->tls)
            tls_server_free(vs->tls);
        conn_zone_put(vs->conn_zone);
    }
    for (uint32_t i = 0; i < g->nzones; i++)
        rl_zone_put(g->zones[i]);
    /* A generation that was never published still owns its sockets. */
    for (uint32_t i = 0; i < g->nlistens; i++)
        listen_fds_unref(g->listens[i].socks);
    conf_free(g->conf);
    arena_fini(&g->arena);
    free(g);
}

struct gen *
gen_build(struct conf *conf, const struct gen *prev, uint32_t nw, uint64_t id, struct err *e)
{
    struct gen *g = calloc(1, sizeof(*g));
    if (!g) {
        conf_free(conf);
        err_set(e, "out of memory");
        return NULL;
    }
    atomic_init(&g->refs, 1);
    g->id = id;
    g->conf = conf;
    g->nworkers = nw;
    g->loaded_ms = time_wall_ms();
    arena_init(&g->arena);
    /* Cache-line aligned (one writer each); the arena aligns to 16 only. */
    char *wr = arena_alloc(&g->arena, (nw ? nw : 1) * sizeof(*g->wrefs) + CACHELINE);
    g->wrefs = (struct gen_wref *)(((uintptr_t)wr + CACHELINE - 1) & ~(uintptr_t)(CACHELINE - 1));

    g->aff = affinity_build(conf, &g->arena, e);
    if (!g->aff)
        goto fail;
    g->aff->table = session_store_open(conf->affinity.table_size);
    if (!g->aff->table) {
        err_set(e, "out of memory for the affinity table");
        goto fail;
    }
    g->nzones = conf->nzones;
    g->zones = arena_calloc(&g->arena, conf->nzones ? conf->nzones : 1, sizeof(*g->zones));
    for (uint32_t i = 0; i < conf->nzones; i++) {
        g->zones[i] = rl_zone_get(&conf->zones[i], e);
        if (!g->zones[i])
            goto fail;
    }
    g->upstreams = arena_calloc(&g->arena, conf->nupstreams, sizeof(*g->upstreams));
    g->nupstreams = conf->nupstreams;
    for (uint32_t i = 0; i < conf->nupstreams; i++)
        if (build_upstream(g, &g->upstreams[i], &conf->upstreams[i], prev, e) < 0)
            goto fail;
    g->vservers = arena_calloc(&g->arena, conf->nvservers, sizeof(*g->vservers));
    g->nvservers = conf->nvservers;
    for (uint32_t i = 0; i < conf->nvservers; i++)
        if (build_vserver(g, &g->vservers[i], &conf->vservers[i], e) < 0)
            goto fail;
    if (nw == 0)
        return g; /* config test: no sockets */
    for (uint32_t i = 0; i < conf->nvservers; i++)
        g->nlistens += conf->vservers[i].nlistens;
    g->listens = arena_calloc(&g->arena, g->nlistens, sizeof(*g->listens));
    uint32_t k = 0;
    for (uint32_t i = 0; i < conf->nvservers; i++) {
        for (uint32_t j = 0; j < conf->vservers[i].nlistens; j++, k++) {
            const struct conf_listen *cl = &conf->vservers[i].listens[j];
            struct gen_listen *gl = &g->listens[k];
            gl->conf = cl;
            gl->vs = &g->vservers[i];
            gl->socks = listen_fds_find(prev, &cl->addr);
            if (gl->socks && gl->socks->nfds >= nw)
                atomic_fetch_add(&gl->socks->refs, 1);
            else if (!(gl->socks = listen_fds_open(cl, nw, e)))
                goto fail;
        }
    }
    return g;
fail:
    gen_free(g);
    return NULL;
}

void
gen_ref(struct gen *g)
{
    atomic_fetch_add(&g->refs, 1);
}

void
gen_unref(struct gen *g)
{
    if (g && atomic_fetch_sub(&g->refs, 1) == 1)
        gen_free(g);
}

/* Generations whose last reference a worker dropped, for gen_reap(). */
static _Atomic(struct gen *) gen_dead;

static void
gen_free_cb(void *p)
{
    gen_free(p);
}

void
gen_unref_worker(struct gen *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    struct gen *head = atomic_load_explicit(&gen_dead, memory_order_relaxed);
    do
        g->dead_next = head;
    while (!atomic_compare_exchange_weak_explicit(&gen_dead, &head, g, memory_order_release,
                                                  memory_order_relaxed));
}

void
gen_reap(void)
{
    struct gen *g = atomic_exchange_explicit(&gen_dead, NULL, memory_order_acquire);
    while (g) {
        struct gen *next = g->dead_next;
        qsbr_retire(g, gen_free_cb);
        g = next;
    }
}

struct gen *
gen_acquire_current(void)
{
    pthread_mutex_lock(&publish_lock);
    struct gen *g = atomic_load(&gen_current);
    if (g)
        gen_ref(g);
    pthread_mutex_unlock(&publish_lock);
    return g;
}

void
gen_publish(struct gen *g)
{
    pthread_mutex_lock(&publish_lock);
    struct gen *old = atomic_exchange(&gen_current, g);
    pthread_mutex_unlock(&publish_lock);
    if (old) {
        /* The old generation no longer offers its sockets: workers that still
         * watch one keep it open until they pick up <g>. */
        gen_listens_release(old);
        gen_unref(old);
    }
}

void
gen_listens_lock(void)
{
    pthread_mutex_lock(&listens_lock);
}

void
gen_listens_unlock(void)
{
    pthread_mutex_unlock(&listens_lock);
}

void
gen_listens_release(struct gen *g)
{
    pthread_mutex_lock(&listens_lock);
    for (uint32_t i = 0; i < g->nlistens; i++) {
        listen_fds_unref(g->listens[i].socks);
        g->listens[i].socks = NULL;
    }
    pthread_mutex_unlock(&listens_lock);
}
