/* SPDX-License-Identifier: MIT */
/* DNS service discovery with c-ares on the control loop: one channel per
 * upstream (its resolver line, else /etc/resolv.conf with its search domains
 * and ndots), its sockets watched by ev_io watchers (ARES_OPT_SOCK_STATE_CB)
 * and its timeouts by one ev_timer; one re-resolve timer per discover name.
 * Answers go to the membership (membership_dns_set); failures keep the last
 * good set. */
#include "config.h"

#include <tether/control.h>
#include <tether/discovery.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/membership.h>

#include <ares.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define TTL_FLOOR_MS   1000u /* a TTL of 0 does not spin */
#define RETRY_MAX_MS   2000u /* a failed lookup is tried again this soon at most */
#define ADDRS_MAX      4096u /* addresses gathered per name and round */
#define SEEN_SLOTS     8192u /* open-addressing set over them (2 x ADDRS_MAX, a power of 2) */
#define SRV_WEIGHT_DIV 64u   /* SRV weight 0..65535 -> server weight 1..1000 */

struct dchan;

/* One socket c-ares asked us to watch. */
struct dio {
    ev_io io;
    struct dchan *c;
};

/* One channel per upstream that discovers. */
struct dchan {
    ares_channel ch;
    bool inited;
    ev_timer tmr; /* c-ares' own timeouts */
    struct dio **ios;
    uint32_t nios;
};

/* One discover line. */
struct dname {
    struct dchan *c;
    char *up, *name, *region;
    uint32_t port, weight;
    bool srv;
    uint64_t valid_ms;
    ev_timer next; /* next lookup */
    struct discovery_stats *st;
    /* the round in progress */
    uint32_t round, pending;
    bool failed;
    uint32_t min_ttl_s;
    struct disc_addr *acc;
    uint32_t nacc;
    uint32_t *seen; /* [SEEN_SLOTS]: acc index + 1 by address hash, 0 free */
    char err[96];
};

/* The argument of one query. */
struct dq {
    struct dname *d;
    uint32_t round;
    uint32_t weight;
};

static struct dchan **chans;
static uint32_t nchans;
static struct dname **names;
static uint32_t nnames;
static struct discovery_stats **stats;
static uint32_t nstats;
static bool lib_inited;

static void lookup_start(struct dname *d);

/* ---- stats ---- */

static struct discovery_stats *
stats_get(const char *up, const char *name)
{
    for (uint32_t i = 0; i < nstats; i++)
        if (strcmp(stats[i]->upstream, up) == 0 && strcmp(stats[i]->name, name) == 0)
            return stats[i];
    struct discovery_stats **n = realloc(stats, (nstats + 1) * sizeof(*n));
    struct discovery_stats *s = calloc(1, sizeof(*s));
    if (n)
        stats = n;
    if (!n || !s || !(s->upstream = strdup(up)) || !(s->name = strdup(name))) {
        if (s) {
            free((char *)s->upstream);
            free(s);
        }
        return NULL;
    }
    stats[nstats++] = s;
    return s;
}

void
discovery_each(void (*fn)(void *ctx, const struct discovery_stats *st), void *ctx)
{
    for (uint32_t i = 0; i < nstats; i++)
        fn(ctx, stats[i]);
}

/* ---- c-ares on libev ---- */

static void
timer_update(struct dchan *c)
{
    struct timeval tv, *tp = ares_timeout(c->ch, NULL, &tv);
    ev_timer_stop(ctl.loop, &c->tmr);
    if (!tp)
        return;
    double s = (double)tp->tv_sec + (double)tp->tv_usec / 1e6;
    ev_timer_set(&c->tmr, s < 0.001 ? 0.001 : s, 0);
    ev_timer_start(ctl.loop, &c->tmr);
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct dio *io = (struct dio *)w;
    struct dchan *c = io->c;
    int fd = w->fd;
    (void)loop;
    ares_process_fd(c->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    timer_update(c);
}

static void
tmr_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dchan *c = (struct dchan *)((char *)w - offsetof(struct dchan, tmr));
    (void)loop;
    (void)revents;
    ares_process_fd(c->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    timer_update(c);
}

static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dchan *c = data;
    uint32_t i;
    for (i = 0; i < c->nios; i++)
        if (c->ios[i]->io.fd == fd)
            break;
    if (!readable && !writable) {
        if (i < c->nios) {
            ev_io_stop(ctl.loop, &c->ios[i]->io);
            free(c->ios[i]);
            c->ios[i] = c->ios[--c->nios];
        }
        return;
    }
    if (i == c->nios) {
        struct dio **n = realloc(c->ios, (c->nios + 1) * sizeof(*n));
        struct dio *io = calloc(1, sizeof(*io));
        if (n)
            c->ios = n;
        if (!n || !io) {
            free(io);
            log_error("discovery: out of memory watching a DNS socket");
            return;
        }
        io->c = c;
        ev_io_init(&io->io, io_cb, fd, 0);
        c->ios[c->nios++] = io;
    }
    struct dio *io = c->ios[i];
    ev_io_stop(ctl.loop, &io->io);
    ev_io_set(&io->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    ev_io_start(ctl.loop, &io->io);
}

static struct dchan *
chan_new(const struct conf_upstream *cu)
{
    struct dchan *c = calloc(1, sizeof(*c));
    struct ares_options o;
    if (!c)
        return NULL;
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = c;
    o.timeout = (int)cu->resolver_timeout_ms;
    o.tries = 2;
    o.lookups = (char *)"b"; /* DNS only: discovery does not read /etc/hosts */
    int rc = ares_init_options(&c->ch, &o,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
                                   ARES_OPT_LOOKUPS);
    if (rc != ARES_SUCCESS) {
        log_error("discovery: upstream %s: c-ares: %s", cu->name, ares_strerror(rc));
        free(c);
        return NULL;
    }
    c->inited = true;
    ev_timer_init(&c->tmr, tmr_cb, 1, 0);
    if (cu->nresolvers) {
        struct ares_addr_port_node *list = calloc(cu->nresolvers, sizeof(*list));
        for (uint32_t i = 0; list && i < cu->nresolvers; i++) {
            const struct sock_addr *a = &cu->resolvers[i];
            struct ares_addr_port_node *n = &list[i];
            n->next = i + 1 < cu->nresolvers ? &list[i + 1] : NULL;
            n->family = a->u.sa.sa_family;
            if (n->family == AF_INET) {
                memcpy(&n->addr.addr4, &a->u.in.sin_addr, sizeof(n->addr.addr4));
                n->udp_port = n->tcp_port = ntohs(a->u.in.sin_port);
            } else {
                memcpy(&n->addr.addr6, &a->u.in6.sin6_addr, sizeof(n->addr.addr6));
                n->udp_port = n->tcp_port = ntohs(a->u.in6.sin6_port);
            }
        }
        if (!list || ares_set_servers_ports(c->ch, list) != ARES_SUCCESS)
            log_error("discovery: upstream %s: cannot set its resolvers", cu->name);
        free(list);
    }
    return c;
}

static void
chan_free(struct dchan *c)
{
    if (c->inited)
        ares_destroy(c->ch); /* pending queries end with ARES_EDESTRUCTION */
    ev_timer_stop(ctl.loop, &c->tmr);
    for (uint32_t i = 0; i < c->nios; i++) {
        ev_io_stop(ctl.loop, &c->ios[i]->io);
        free(c->ios[i]);
    }
    free(c->ios);
    free(c);
}

/* ---- lookups ---- */

static void
schedule(struct dname *d, uint64_t ms)
{
    ev_timer_stop(ctl.loop, &d->next);
    ev_timer_set(&d->next, (double)ms / 1000.0, 0);
    ev_timer_start(ctl.loop, &d->next);
}

/* The round is over: hand a good answer to the membership, or keep the last
 * good set on failure. */
static void
finish(struct dname *d)
{
    struct discovery_stats *st = d->st;
    if (d->failed) {
        if (st) {
            st->failed++;
            if (!st->failing)
                log_warn("discovery: %s (upstream %s): %s; keeping the last good set of %u "
                         "server(s)",
                         d->name, d->up, d->err, st->addresses);
            st->failing = true;
            snprintf(st->error, sizeof(st->error), "%s", d->err);
        }
        schedule(d, d->valid_ms < RETRY_MAX_MS ? d->valid_ms : RETRY_MAX_MS);
        return;
    }
    membership_dns_set(d->up, d->name, d->region, d->acc, d->nacc);
    if (st) {
        if (st->failing)
            log_notice("discovery: %s (upstream %s) resolves again: %u address(es)", d->name, d->up,
                       d->nacc);
        st->failing = false;
        st->error[0] = '\0';
        st->last_good_ms = time_wall_ms();
        st->addresses = d->nacc;
        if (d->nacc)
            st->ok++;
        else
            st->empty++;
    }
    uint64_t ttl = d->nacc ? (uint64_t)d->min_ttl_s * 1000 : d->valid_ms;
    if (ttl > d->valid_ms)
        ttl = d->valid_ms;
    schedule(d, ttl < TTL_FLOOR_MS ? TTL_FLOOR_MS : ttl);
}

/* A query of the current round failed with <status>; NXDOMAIN and "no data"
 * are answers (an empty set), everything else keeps the last good set. */
static void
query_status(struct dname *d, int status)
{
    if (status == ARES_ENOTFOUND || status == ARES_ENODATA)
        return;
    d->failed = true;
    snprintf(d->err, sizeof(d->err), "%s", ares_strerror(status));
}

static bool
query_live(struct dq *q, int status)
{
    if (status == ARES_EDESTRUCTION || q->round != q->d->round) {
        free(q);
        return false;
    }
    return true;
}

static void
query_done(struct dname *d)
{
    if (--d->pending == 0)
        finish(d);
}

/* Is <addr> (at acc[nacc]) new in this round? Records it if so. A set, not a
 * scan of the addresses so far: an answer of 1,000 was 500,000 comparisons. */
static bool
first_sight(struct dname *d, const struct sock_addr *addr)
{
    uint32_t i = (uint32_t)XXH3_64bits(&addr->u, addr->len) & (SEEN_SLOTS - 1);
    for (; d->seen[i]; i = (i + 1) & (SEEN_SLOTS - 1))
        if (sock_addr_equal(&d->acc[d->seen[i] - 1].addr, addr))
            return false;
    d->seen[i] = d->nacc + 1;
    return true;
}

static void
addrinfo_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct dq *q = arg;
    (void)timeouts;
    if (!query_live(q, status)) {
        if (res)
            ares_freeaddrinfo(res);
        return;
    }
    struct dname *d = q->d;
    if (status != ARES_SUCCESS)
        query_status(d, status);
    for (struct ares_addrinfo_node *n = res ? res->nodes : NULL; n; n = n->ai_next) {
        if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) || d->nacc >= ADDRS_MAX ||
            n->ai_addrlen > sizeof(d->acc[0].addr.u))
            continue;
        struct disc_addr *a = &d->acc[d->nacc];
        memset(a, 0, sizeof(*a));
        memcpy(&a->addr.u, n->ai_addr, n->ai_addrlen);
        a->addr.len = n->ai_addrlen;
        a->weight = q->weight;
        if (!first_sight(d, &a->addr))
            continue;
        d->nacc++;
        uint32_t ttl = n->ai_ttl > 0 ? (uint32_t)n->ai_ttl : 0;
        if (ttl < d->min_ttl_s)
            d->min_ttl_s = ttl;
    }
    if (res)
        ares_freeaddrinfo(res);
    free(q);
    query_done(d);
}

static void
resolve_host(struct dname *d, const char *host, uint32_t port, uint32_t weight)
{
    struct ares_addrinfo_hints hints;
    char service[8];
    struct dq *q = calloc(1, sizeof(*q));
    if (!q) {
        d->failed = true;
        snprintf(d->err, sizeof(d->err), "out of memory");
        return;
    }
    q->d = d;
    q->round = d->round;
    q->weight = weight;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC; /* A and AAAA */
    hints.ai_socktype = SOCK_STREAM;
    /* A membership is a set: no RFC 6724 sort, which connects a UDP socket to
     * every address of every answer to learn its source address (with 1,000
     * pods re-resolved each second, most of the control thread's time). */
    hints.ai_flags = ARES_AI_NUMERICSERV | ARES_AI_NOSORT;
    snprintf(service, sizeof(service), "%u", port);
    d->pending++;
    ares_getaddrinfo(d->c->ch, host, service, &hints, addrinfo_cb, q);
}

static void
srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dq *q = arg;
    struct ares_srv_reply *list = NULL;
    (void)timeouts;
    if (!query_live(q, status))
        return;
    struct dname *d = q->d;
    free(q);
    if (status == ARES_SUCCESS &&
        (status = ares_parse_srv_reply(abuf, alen, &list)) != ARES_SUCCESS)
        list = NULL;
    if (status != ARES_SUCCESS)
        query_status(d, status);
    /* The best (lowest) priority only; weights become server weights. */
    unsigned best = 65536;
    for (struct ares_srv_reply *r = list; r; r = r->next)
        if (r->priority < best && r->port)
            best = r->priority;
    for (struct ares_srv_reply *r = list; r; r = r->next) {
        if (r->priority != best || !r->port)
            continue;
        uint32_t w = r->weight / SRV_WEIGHT_DIV;
        resolve_host(d, r->host, r->port, w < 1 ? 1 : w > 1000 ? 1000 : w);
    }
    if (list)
        ares_free_data(list);
    query_done(d);
}

static void
lookup_start(struct dname *d)
{
    d->round++;
    d->pending = 1; /* held until every query of the round is sent */
    d->failed = false;
    d->nacc = 0;
    memset(d->seen, 0, SEEN_SLOTS * sizeof(*d->seen));
    d->min_ttl_s = UINT32_MAX;
    d->err[0] = '\0';
    if (d->srv) {
        struct dq *q = calloc(1, sizeof(*q));
        if (q) {
            q->d = d;
            q->round = d->round;
            d->pending++;
            ares_search(d->c->ch, d->name, 1 /* class IN */, 33 /* type SRV */, srv_cb, q);
        } else {
            d->failed = true;
            snprintf(d->err, sizeof(d->err), "out of memory");
        }
    } else {
        resolve_host(d, d->name, d->port, d->weight);
    }
    timer_update(d->c);
    query_done(d);
}

static void
next_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dname *d = (struct dname *)((char *)w - offsetof(struct dname, next));
    (void)loop;
    (void)revents;
    if (d->pending)
        return; /* a round is still out: c-ares' own timeouts end it */
    lookup_start(d);
}

/* ---- setup ---- */

static void
names_free(void)
{
    for (uint32_t i = 0; i < nchans; i++)
        chan_free(chans[i]); /* first: queries end before their names go */
    free(chans);
    chans = NULL;
    nchans = 0;
    for (uint32_t i = 0; i < nnames; i++) {
        struct dname *d = names[i];
        ev_timer_stop(ctl.loop, &d->next);
        free(d->up);
        free(d->name);
        free(d->region);
        free(d->acc);
        free(d->seen);
        free(d);
    }
    free(names);
    names = NULL;
    nnames = 0;
}

static struct dname *
name_new(struct dchan *c, const struct conf_upstream *cu, const struct conf_discover *dv)
{
    struct dname *d = calloc(1, sizeof(*d));
    struct dname **n = realloc(names, (nnames + 1) * sizeof(*n));
    if (n)
        names = n;
    if (!d || !n)
        goto fail;
    d->c = c;
    d->up = strdup(cu->name);
    d->name = strdup(dv->name);
    d->region = strdup(cu->regions[dv->region].name);
    d->acc = calloc(ADDRS_MAX, sizeof(*d->acc));
    d->seen = calloc(SEEN_SLOTS, sizeof(*d->seen));
    if (!d->up || !d->name || !d->region || !d->acc || !d->seen)
        goto fail;
    d->port = dv->port;
    d->weight = dv->weight;
    d->srv = dv->srv;
    d->valid_ms = cu->resolver_valid_ms;
    d->st = stats_get(cu->name, dv->name);
    ev_timer_init(&d->next, next_cb, 0, 0);
    names[nnames++] = d;
    return d;
fail:
    if (d) {
        free(d->up);
        free(d->name);
        free(d->region);
        free(d->acc);
        free(d->seen);
        free(d);
    }
    return NULL;
}

void
discovery_sync(struct gen *g)
{
    names_free();
    for (uint32_t i = 0; i < g->nupstreams; i++) {
        const struct conf_upstream *cu = g->upstreams[i].conf;
        if (!cu->ndiscovers)
            continue;
        if (!lib_inited) {
            int rc = ares_library_init(ARES_LIB_INIT_ALL);
            if (rc != ARES_SUCCESS) {
                log_error("discovery: c-ares: %s", ares_strerror(rc));
                return;
            }
            lib_inited = true;
        }
        struct dchan **nc = realloc(chans, (nchans + 1) * sizeof(*nc));
        struct dchan *c = nc ? chan_new(cu) : NULL;
        if (nc)
            chans = nc;
        if (!c) {
            log_error("discovery: upstream %s: not resolving its names", cu->name);
            continue;
        }
        chans[nchans++] = c;
        for (uint32_t k = 0; k < cu->ndiscovers; k++) {
            struct dname *d = name_new(c, cu, &cu->discovers[k]);
            if (!d) {
                log_error("discovery: out of memory: %s is not resolved", cu->discovers[k].name);
                continue;
            }
            lookup_start(d);
        }
    }
}

void
discovery_stop(void)
{
    names_free();
    for (uint32_t i = 0; i < nstats; i++) {
        free((char *)stats[i]->upstream);
        free((char *)stats[i]->name);
        free(stats[i]);
    }
    free(stats);
    stats = NULL;
    nstats = 0;
    if (lib_inited)
        ares_library_cleanup();
    lib_inited = false;
}
