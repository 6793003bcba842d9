/* SPDX-License-Identifier: MIT */
/* The stats listener on the control thread: a small HTTP/1.1 server (GET and
 * HEAD, keep-alive, bounded heads, idle timeouts, a cap on connections) for
 * /metrics, /stats, / and /health, and the snapshot those documents are
 * written from. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/control.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/session.h>
#include <tether/session_load.h>
#include <tether/session_store.h>
#include <tether/sock.h>
#include <tether/stats_http.h>
#include <tether/upstream.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- strbuf ---- */

/* Room for <n> more bytes; false (and <oom> set) when out of memory. */
static bool
strbuf_reserve(struct strbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->len + n <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void
strbuf_add(struct strbuf *b, const char *s, size_t n)
{
    if (n == 0 || !strbuf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void
strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->oom)
        return;
    /* Format in place; only a piece that does not fit is formatted twice. */
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n >= room) {
        if (!strbuf_reserve(b, (size_t)n + 1))
            return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void
strbuf_free(struct strbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- the snapshot ---- */

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Sum <t> over the worker slots into <o>; the server-only counters go to <v>. */
static void
traffic_snap(const struct traffic_counters *t, struct snap_traffic *o, int64_t *v)
{
    struct traffic_counters sum;
    traffic_sum(t, &sum);
    memset(o, 0, sizeof(*o));
    o->requests = LD(sum.requests);
    for (int c = 0; c < 6; c++)
        o->status[c] = LD(sum.status[c]);
    for (int b = 0; b < STATS_LAT_BUCKETS; b++) {
        o->bucket[b] = LD(sum.latency.bucket[b]);
        o->count += o->bucket[b];
    }
    o->sum_us = LD(sum.latency.sum_us);
    if (!v)
        return;
    v[SV_BYTES_IN] = (int64_t)LD(sum.bytes_in);
    v[SV_BYTES_OUT] = (int64_t)LD(sum.bytes_out);
    v[SV_CONNECT_ERRORS] = (int64_t)LD(sum.connect_errors);
    v[SV_TIMEOUTS] = (int64_t)LD(sum.timeouts);
    v[SV_RESETS] = (int64_t)LD(sum.resets);
    v[SV_RETRIES] = (int64_t)LD(sum.retries);
    v[SV_REDISPATCHES] = (int64_t)LD(sum.redispatches);
    v[SV_TUNNELS_TOTAL] = (int64_t)LD(sum.tunnels);
}

/* Room for one more element in <*arr>; false when out of memory. */
static bool
grow(void **arr, uint32_t n, uint32_t *cap, size_t size)
{
    if (n < *cap)
        return true;
    uint32_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * size);
    if (!p)
        return false;
    *arr = p;
    *cap = nc;
    return true;
}

/* Runs under the route registry lock: copies what it needs. Routes are listed
 * once per label even when several server blocks share one. */
static void
snap_route_cb(void *ctx, struct route_stats *rs)
{
    struct snap *s = ctx;
    if (s->failed || !grow((void **)&s->routes, s->nroutes, &s->routes_cap, sizeof(*s->routes))) {
        s->failed = true;
        return;
    }
    struct snap_route *r = &s->routes[s->nroutes];
    r->key = rs;
    if (!(r->name = strdup(rs->label))) {
        s->failed = true;
        return;
    }
    traffic_snap(rs->t, &r->t, NULL);
    s->nroutes++;
}

/* Runs under the zone registry lock. */
static void
snap_zone_cb(void *ctx, struct rl_zone *z)
{
    struct snap *s = ctx;
    const struct conf_zone *cz = rl_zone_conf(z);
    if (s->failed || !grow((void **)&s->zones, s->nzones, &s->zones_cap, sizeof(*s->zones))) {
        s->failed = true;
        return;
    }
    struct snap_zone *x = &s->zones[s->nzones];
    if (!(x->name = strdup(cz->name))) {
        s->failed = true;
        return;
    }
    x->global = cz->global;
    x->rate = cz->rate;
    x->burst = cz->burst;
    rl_zone_stats(z, &x->st);
    s->nzones++;
}

static void
snap_server(struct snap_server *x, const struct server *sv, uint64_t now)
{
    const struct server_rt *rt = sv->rt;
    uint64_t until = LD(rt->ejected_until_ms);
    unsigned admin = LD(rt->admin);
    x->s = sv;
    traffic_snap(rt->t, &x->t, x->v);
    x->admin = admin <= SRV_MAINT ? admin : SRV_MAINT;
    x->health_up = LD(rt->health) == HEALTH_UP;
    x->ejected_left_ms = until > now ? until - now : 0;
    x->v[SV_EJECTED] = until > now;
    x->v[SV_UP] = x->health_up && until <= now;
    x->v[SV_WEIGHT] = server_weight(sv);
    x->v[SV_ACTIVE] = LD(rt->active);
    x->v[SV_TUNNELS] = LD(rt->tunnels);
    x->v[SV_TRANSITIONS] = (int64_t)LD(rt->transitions);
    x->v[SV_HC_MS] = LD(rt->hc_last_ms);
    x->v[SV_HC_STATUS] = LD(rt->hc_last_status);
    x->v[SV_SESSIONS] = server_sessions(sv);
    x->v[SV_CAPACITY] = server_capacity(sv);
    x->hc_ok = LD(rt->hc_ok);
    x->hc_failed = LD(rt->hc_failed);
    x->last_change_ms = LD(rt->last_change_ms);
}

static void
snap_upstream(struct snap *s, const struct upstream *u, uint64_t now)
{
    /* Plans are replaced by this (the control) thread only: safe to read. */
    const struct lb_plan *p = atomic_load(&u->plan);
    struct snap_upstream *su = &s->ups[s->nups++];
    su->u = u;
    su->srv0 = s->nsrvs;
    su->reg0 = s->nregs;
    su->panic = p && p->panic;
    if (p)
        memcpy(su->tier_load, p->tier_load, sizeof(su->tier_load));
    su->m = p->m;
    members_ref(su->m);
    for (uint32_t k = 0; k < su->m->nservers; k++)
        snap_server(&s->srvs[s->nsrvs++], su->m->servers[k], now);
    for (uint32_t r = 0; r < u->nregions; r++) {
        const struct region *reg = &u->regions[r];
        const struct region_members *rm = &su->m->regions[r];
        struct snap_region *x = &s->regs[s->nregs++];
        x->r = reg;
        x->rm = rm;
        x->u = u;
        x->weight = region_weight(reg);
        if (reg->conf->priority < PLAN_MAX_TIERS)
            su->tiers_used |= 1u << reg->conf->priority;
        for (uint32_t k = 0; p && k < p->nregions; k++)
            if (p->regions[k].region == r)
                x->share = p->regions[k].share;
        for (uint32_t k = 0; k < rm->nservers; k++) {
            const struct server *sv = su->m->servers[rm->servers[k]];
            x->nservers++;
            x->nup += (double)s->srvs[su->srv0 + rm->servers[k]].v[SV_UP];
            x->nusable += server_weight(sv) > 0 && server_usable_new(sv, now);
            x->sessions += (double)server_sessions(sv);
            x->capacity += (double)server_capacity(sv);
        }
    }
}

int
snap_take(struct snap *s)
{
    memset(s, 0, sizeof(*s));
    s->wall_ms = time_wall_ms();
    s->g = gen_acquire_current();
    for (int i = 0; i < GS__COUNT; i++)
        s->gs[i] = gstat_sum((enum gstat)i);
    if (s->g) {
        const struct gen *g = s->g;
        uint32_t ns = 0, nr = 0;
        for (uint32_t i = 0; i < g->nupstreams; i++) {
            ns += upstream_members(&g->upstreams[i])->nservers;
            nr += g->upstreams[i].nregions;
        }
        s->ups = calloc(g->nupstreams + 1, sizeof(*s->ups));
        s->regs = calloc(nr + 1, sizeof(*s->regs));
        s->srvs = calloc(ns + 1, sizeof(*s->srvs));
        if (!s->ups || !s->regs || !s->srvs)
            s->failed = true;
        uint64_t now = time_mono_ms();
        for (uint32_t i = 0; !s->failed && i < g->nupstreams; i++)
            snap_upstream(s, &g->upstreams[i], now);
    }
    route_stats_each(snap_route_cb, s);
    rl_zone_each(snap_zone_cb, s);
    redis_stats_get(&s->redis);
    if (session_store_table()) {
        s->sessions = session_table_count(session_store_table());
        s->session_evictions = session_table_evictions(session_store_table());
    }
    if (s->failed) {
        snap_release(s);
        return -1;
    }
    return 0;
}

void
snap_release(struct snap *s)
{
    for (uint32_t i = 0; i < s->nroutes; i++)
        free(s->routes[i].name);
    for (uint32_t i = 0; i < s->nzones; i++)
        free(s->zones[i].name);
    for (uint32_t i = 0; s->ups && i < s->nups; i++)
        members_unref(s->ups[i].m);
    free(s->ups);
    free(s->regs);
    free(s->srvs);
    free(s->routes);
    free(s->zones);
    if (s->g)
        gen_unref(s->g);
    memset(s, 0, sizeof(*s));
}

/* ---- the HTTP server ---- */

#define SH_MAX_CONNS 64   /* the oldest connection is closed for a new one */
#define SH_HEAD_MAX  8192 /* request head bytes (431 beyond) */
#define SH_IDLE_S    10.0 /* no progress for this long: close */
#define SH_LINGER_S  2.0  /* after the last response: wait for the client's FIN */
#define SH_BACKLOG   64

struct sh_conn {
    int fd;
    ev_io io;
    ev_timer timer;              /* idle timeout (ev_timer_again) */
    struct sh_conn *prev, *next; /* sh.conns, oldest first */
    struct strbuf out;           /* response being sent */
    size_t sent;                 /* bytes of <out> written */
    bool close_after;            /* half-close once <out> is sent */
    bool lingering;              /* half-closed: discarding input until EOF */
    size_t inlen;                /* bytes in <in> */
    char in[SH_HEAD_MAX];        /* request bytes not yet handled */
};

static struct {
    int fd;                /* listening socket, -1 when off */
    struct sock_addr addr; /* its address */
    ev_io io;
    ev_timer pause; /* accept paused while out of descriptors */
    struct sh_conn *head, *tail;
    unsigned nconns;
} sh = {.fd = -1};

static void
conn_close(struct sh_conn *c)
{
    ev_io_stop(ctl.loop, &c->io);
    ev_timer_stop(ctl.loop, &c->timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        sh.head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        sh.tail = c->prev;
    sh.nconns--;
    strbuf_free(&c->out);
    free(c);
}

static void
conn_watch(struct sh_conn *c, int events)
{
    if ((c->io.events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(ctl.loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(ctl.loop, &c->io);
}

/* Write what is pending. false when the connection was closed. */
static bool
conn_flush(struct sh_conn *c)
{
    while (c->sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_watch(c, EV_WRITE);
            return true;
        }
        if (n <= 0) {
            conn_close(c);
            return false;
        }
        c->sent += (size_t)n;
        ev_timer_again(ctl.loop, &c->timer);
    }
    /* A scrape can be large: do not keep its buffer on an idle connection. */
    if (c->out.cap > 65536)
        strbuf_free(&c->out);
    c->out.len = c->sent = 0;
    if (c->close_after) {
        /* Half-close and read until the client's FIN, so unread request bytes
         * do not turn our close into a reset that loses the response. */
        shutdown(c->fd, SHUT_WR);
        c->lingering = true;
        c->inlen = 0;
        c->timer.repeat = SH_LINGER_S;
        ev_timer_again(ctl.loop, &c->timer);
    }
    conn_watch(c, EV_READ);
    return true;
}

static const char *
status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    default:
        return "Error";
    }
}

/* Queue a response; <body> is taken over (freed here). */
static void
conn_reply(struct sh_conn *c, int status, const char *type, struct strbuf *body, bool head_only,
           const char *extra)
{
    if (body->oom) {
        strbuf_free(body);
        status = 500;
        type = "text/plain; charset=utf-8";
        strbuf_printf(body, "out of memory\n");
    }
    strbuf_printf(&c->out,
                  "HTTP/1.1 %d %s\r\nServer: tether\r\nContent-Type: %s\r\n"
                  "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                  "X-Content-Type-Options: nosniff\r\n%s%s\r\n",
                  status, status_text(status), type, body->len, extra ? extra : "",
                  c->close_after ? "Connection: close\r\n" : "");
    if (!head_only)
        strbuf_add(&c->out, body->p, body->len);
    strbuf_free(body);
    if (c->out.oom) {
        /* Not even the answer fits in memory: give up on this client. */
        c->out.len = 0;
        c->close_after = true;
    }
}

static void
conn_error(struct sh_conn *c, int status)
{
    struct strbuf body = {0};
    c->close_after = true;
    strbuf_printf(&body, "%d %s\n", status, status_text(status));
    conn_reply(c, status, "text/plain; charset=utf-8", &body, false, NULL);
}

/* The page's inline script and style are its only code: nothing external loads. */
#define PAGE_CSP                                                                                   \
    "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "                    \
    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:\r\n"

static bool
path_is(const char *p, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(p, lit, len) == 0;
}

static void
conn_route(struct sh_conn *c, const char *path, size_t len, bool head_only)
{
    struct strbuf body = {0};
    bool prom = path_is(path, len, "/metrics");
    if (prom || path_is(path, len, "/stats")) {
        struct snap s;
        if (snap_take(&s) < 0) {
            body.oom = true;
        } else {
            if (prom)
                metrics_write_prometheus(&body, &s);
            else
                metrics_write_json(&body, &s);
            snap_release(&s);
        }
        conn_reply(c, 200, prom ? "text/plain; version=0.0.4; charset=utf-8" : "application/json",
                   &body, head_only, NULL);
    } else if (path_is(path, len, "/")) {
        status_page_write(&body);
        conn_reply(c, 200, "text/html; charset=utf-8", &body, head_only, PAGE_CSP);
    } else if (path_is(path, len, "/health")) {
        strbuf_printf(&body, "ok\n");
        conn_reply(c, 200, "text/plain; charset=utf-8", &body, head_only, NULL);
    } else {
        strbuf_printf(&body, "not found; try /, /metrics, /stats or /health\n");
        conn_reply(c, 404, "text/plain; charset=utf-8", &body, head_only, NULL);
    }
}

/* Does the comma-separated header value <v> contain token <tok>? */
static bool
has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++)
        if ((i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') && mem_ieq(v + i, tok, tl) &&
            (i + tl == n || v[i + tl] == ',' || v[i + tl] == ' ' || v[i + tl] == '\t'))
            return true;
    return false;
}

/* Handle one request head <h>[0..n) (ends with CRLF CRLF). Strict enough to
 * never misread garbage, lenient about what it ignores. */
static void
conn_request(struct sh_conn *c, const char *h, size_t n)
{
    const char *end = h + n, *eol = memchr(h, '\n', n);
    const char *sp1 = memchr(h, ' ', (size_t)(eol - h));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 == h || sp2 == sp1 + 1 || eol - sp2 != 10 || eol[-1] != '\r' ||
        memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1')) {
        conn_error(c, 400);
        return;
    }
    bool http10 = sp2[8] == '0', keep = !http10, body = false;
    for (const char *p = h; p < sp2; p++)
        if (((unsigned char)*p <= ' ' || *p == 0x7f) && p != sp1) {
            conn_error(c, 400);
            return;
        }
    for (const char *l = eol + 1; l < end;) {
        const char *le = memchr(l, '\n', (size_t)(end - l));
        size_t ll = (size_t)(le - l);
        if (ll <= 1)
            break; /* the empty line */
        const char *colon = memchr(l, ':', ll);
        if (!colon || colon == l || l[ll - 1] != '\r') {
            conn_error(c, 400);
            return;
        }
        const char *v = colon + 1;
        size_t vl = (size_t)(l + ll - 1 - v);
        size_t nl = (size_t)(colon - l);
        if (slice_ieq(l, nl, "connection")) {
            if (has_token(v, vl, "close"))
                keep = false;
            else if (has_token(v, vl, "keep-alive"))
                keep = true;
        } else if (slice_ieq(l, nl, "transfer-encoding") ||
                   (slice_ieq(l, nl, "content-length") && !has_token(v, vl, "0"))) {
            body = true;
        }
        l = le + 1;
    }
    /* A body would be read as the next request: answer, then close. */
    c->close_after = !keep || body;
    const char *target = sp1 + 1, *q = memchr(target, '?', (size_t)(sp2 - target));
    size_t plen = (size_t)((q ? q : sp2) - target);
    size_t mlen = (size_t)(sp1 - h);
    if (target[0] != '/') {
        conn_error(c, 400);
    } else if (mlen == 3 && memcmp(h, "GET", 3) == 0) {
        conn_route(c, target, plen, false);
    } else if (mlen == 4 && memcmp(h, "HEAD", 4) == 0) {
        conn_route(c, target, plen, true);
    } else {
        struct strbuf b = {0};
        strbuf_printf(&b, "only GET and HEAD\n");
        conn_reply(c, 405, "text/plain; charset=utf-8", &b, false, "Allow: GET, HEAD\r\n");
    }
}

/* Answer every complete request head buffered (pipelining), one at a time. */
static void
conn_process(struct sh_conn *c)
{
    while (c->out.len == 0 && !c->lingering) {
        const char *e = c->inlen >= 4 ? memmem(c->in, c->inlen, "\r\n\r\n", 4) : NULL;
        if (!e) {
            if (c->inlen == sizeof(c->in))
                conn_error(c, 431);
            else
                return;
        } else {
            size_t n = (size_t)(e + 4 - c->in);
            conn_request(c, c->in, n);
            memmove(c->in, c->in + n, c->inlen - n);
            c->inlen -= n;
        }
        if (!conn_flush(c))
            return;
    }
}

static void
conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sh_conn *c = container_of(w, struct sh_conn, io);
    (void)loop;
    if (revents & EV_WRITE) {
        if (!conn_flush(c))
            return;
        conn_process(c);
        return;
    }
    for (;;) {
        char sink[4096];
        char *dst = c->lingering ? sink : c->in + c->inlen;
        size_t room = c->lingering ? sizeof(sink) : sizeof(c->in) - c->inlen;
        if (room == 0)
            break; /* a full head is waiting for our response to drain */
        ssize_t n = recv(c->fd, dst, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        ev_timer_again(ctl.loop, &c->timer);
        if (!c->lingering)
            c->inlen += (size_t)n;
        if ((size_t)n < room)
            break;
    }
    conn_process(c);
}

static void
conn_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    conn_close(container_of(t, struct sh_conn, timer));
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    static struct log_limit lim;
    (void)loop;
    (void)w;
    (void)revents;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(sh.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            log_limited(&lim, 10000, LOG_LVL_WARN, "stats: accept: %s", strerror(errno));
            /* Out of descriptors or memory: the socket stays readable, so
             * pause instead of spinning the control loop. */
            ev_io_stop(ctl.loop, &sh.io);
            ev_timer_set(&sh.pause, 0.2, 0); /* a fired timer keeps no delay */
            ev_timer_start(ctl.loop, &sh.pause);
            return;
        }
        /* Full: the oldest connection (likely idle or slow) makes room. */
        if (sh.nconns >= SH_MAX_CONNS)
            conn_close(sh.head);
        struct sh_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->prev = sh.tail;
        if (sh.tail)
            sh.tail->next = c;
        else
            sh.head = c;
        sh.tail = c;
        sh.nconns++;
        ev_io_init(&c->io, conn_cb, fd, EV_READ);
        ev_io_start(ctl.loop, &c->io);
        ev_init(&c->timer, conn_timeout_cb);
        c->timer.repeat = SH_IDLE_S;
        ev_timer_again(ctl.loop, &c->timer);
    }
}

static void
accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    if (sh.fd >= 0)
        ev_io_start(ctl.loop, &sh.io);
}

static void
listener_close(void)
{
    if (sh.fd < 0)
        return;
    ev_timer_stop(ctl.loop, &sh.pause);
    ev_io_stop(ctl.loop, &sh.io);
    close(sh.fd);
    sh.fd = -1;
}

static void
listener_start(int fd, const struct sock_addr *a)
{
    sh.fd = fd;
    sh.addr = *a;
    ev_io_init(&sh.io, accept_cb, fd, EV_READ);
    ev_io_start(ctl.loop, &sh.io);
    ev_init(&sh.pause, accept_resume_cb);
}

void
stats_http_sync(struct gen *g)
{
    char name[SOCK_ADDR_STRLEN], oname[SOCK_ADDR_STRLEN];
    struct err e, e2;
    if (ctl.stopping || !g || !g->conf->stats_enabled) {
        if (sh.fd >= 0)
            log_notice("stats listener closed");
        listener_close();
        recent_stop();
        return;
    }
    const struct sock_addr *a = &g->conf->stats_listen;
    if (sh.fd >= 0 && sock_addr_equal(&sh.addr, a))
        return;
    sock_addr_format(a, name, sizeof(name));
    /* Open the new address before closing the old one, so a failed move keeps
     * the stats reachable. */
    int fd = sock_listen(a, SH_BACKLOG, false, false, 0, &e);
    if (fd < 0 && sh.fd >= 0) {
        /* The new address may overlap the old one (same port): free it, retry,
         * and put the old one back if that fails too. */
        struct sock_addr old = sh.addr;
        listener_close();
        fd = sock_listen(a, SH_BACKLOG, false, false, 0, &e);
        if (fd < 0) {
            int ofd = sock_listen(&old, SH_BACKLOG, false, false, 0, &e2);
            if (ofd >= 0) {
                listener_start(ofd, &old);
                log_error("stats: %s; still listening on %s", e.msg,
                          sock_addr_format(&old, oname, sizeof(oname)));
                return;
            }
        }
    }
    if (fd < 0) {
        log_error("stats: %s", e.msg);
        return;
    }
    listener_close();
    listener_start(fd, a);
    recent_start();
    log_notice("stats listening on %s", name);
}

void
stats_http_stop(void)
{
    listener_close();
    recent_stop();
    while (sh.head)
        conn_close(sh.head);
}

int
stats_http_listen_fd(void)
{
    return sh.fd;
}
