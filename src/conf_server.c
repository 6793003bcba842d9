/* SPDX-License-Identifier: MIT */
/* Directives of server { } and route { } blocks, and the cross-reference checks
 * run once the whole file was read. */
#include "config.h"

#include <tether/conf_engine.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
set_listen(struct conf_parse *p, const struct conf_stmt *st, void *obj,
           const struct conf_directive *d)
{
    struct conf_vserver *vs = obj;
    (void)d;
    struct conf_listen *l = conf_push(p, (void **)&vs->listens, &vs->nlistens, sizeof(*l));
    l->pos = st->pos;
    l->backlog = 4096;
    if (conf_arg_addr(p, &st->args[0], 0, &l->addr) < 0)
        return -1;
    if (l->addr.u.sa.sa_family == AF_UNIX)
        return conf_err_arg(p, &st->args[0], "a server listens on TCP addresses only");
    sock_addr_format(&l->addr, l->text, sizeof(l->text));
    for (uint32_t i = 1; i < st->nargs; i++) {
        const struct conf_arg *a = &st->args[i];
        if (strcmp(a->s, "tls") == 0 || strcmp(a->s, "ssl") == 0)
            l->tls = true;
        else if (strcmp(a->s, "proxy_protocol") == 0)
            l->proxy_protocol = true;
        else if (strncmp(a->s, "backlog=", 8) == 0) {
            uint32_t v;
            struct conf_arg b = *a;
            b.s += 8;
            b.len -= 8;
            b.pos.col += 8;
            if (conf_arg_u32(p, &b, 1, 65535, &v) < 0)
                return -1;
            l->backlog = (int)v;
        } else
            return conf_err_arg(p, a,
                                "unknown listen parameter \"%s\"; expected tls, "
                                "proxy_protocol or backlog=N",
                                a->s);
    }
    return 0;
}

static int
set_cert(struct conf_parse *p, const struct conf_stmt *st, void *obj,
         const struct conf_directive *d)
{
    struct conf_vserver *vs = obj;
    (void)d;
    struct conf_cert *c = conf_push(p, (void **)&vs->certs, &vs->ncerts, sizeof(*c));
    c->pos = st->pos;
    c->cert_file = arena_strdup(p->a, st->args[0].s);
    c->key_file = arena_strdup(p->a, st->nargs > 1 ? st->args[1].s : st->args[0].s);
    return 0;
}

static int
collect_refs(struct conf_parse *p, const struct conf_stmt *st, struct conf_ref **refs, uint32_t *n)
{
    for (uint32_t i = 0; i < st->nargs; i++) {
        for (uint32_t j = 0; j < *n; j++)
            if (strcmp((*refs)[j].name, st->args[i].s) == 0)
                return conf_err_arg(p, &st->args[i], "zone \"%s\" listed twice", st->args[i].s);
        struct conf_ref *r = conf_push(p, (void **)refs, n, sizeof(*r));
        r->name = arena_strdup(p->a, st->args[i].s);
        r->pos = st->args[i].pos;
    }
    return 0;
}

static int
set_vs_limit_req(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                 const struct conf_directive *d)
{
    struct conf_vserver *vs = obj;
    (void)d;
    return collect_refs(p, st, &vs->zone_refs, &vs->nzone_refs);
}

static int
set_limit_conn(struct conf_parse *p, const struct conf_stmt *st, void *obj,
               const struct conf_directive *d)
{
    struct conf_vserver *vs = obj;
    (void)d;
    if (st->nargs == 1)
        return conf_arg_u32(p, &st->args[0], 1, 1000000, &vs->limit_conn);
    vs->conn_zone_ref.name = arena_strdup(p->a, st->args[0].s);
    vs->conn_zone_ref.pos = st->args[0].pos;
    return conf_arg_u32(p, &st->args[1], 1, 1000000, &vs->conn_zone_limit);
}

static int
set_vs_real_ip(struct conf_parse *p, const struct conf_stmt *st, void *obj,
               const struct conf_directive *d)
{
    struct conf_vserver *vs = obj;
    (void)d;
    for (uint32_t i = 0; i < st->nargs; i++) {
        struct err e2;
        struct sock_cidr *c =
            conf_push(p, (void **)&vs->real_ip_from, &vs->nreal_ip_from, sizeof(*c));
        if (sock_cidr_parse(c, st->args[i].s, &e2) < 0)
            return conf_err_arg(p, &st->args[i], "%s", e2.msg);
    }
    return 0;
}

/* ---- route { } ---- */

static int
set_route_upstream(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                   const struct conf_directive *d)
{
    struct conf_route *r = obj;
    (void)d;
    r->upstream_ref.name = arena_strdup(p->a, st->args[0].s);
    r->upstream_ref.pos = st->args[0].pos;
    return 0;
}

static int
set_route_affinity(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                   const struct conf_directive *d)
{
    static const char *const names[] = {"none", "cookie", "header", "session"};
    struct conf_route *r = obj;
    (void)d;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(st->args[0].s, names[i]) == 0) {
            r->affinity = (uint8_t)i;
            return 0;
        }
    }
    return conf_err_arg(p, &st->args[0],
                        "unknown affinity \"%s\"; expected none, cookie, header or session",
                        st->args[0].s);
}

static int
set_route_limit_req(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                    const struct conf_directive *d)
{
    struct conf_route *r = obj;
    (void)d;
    r->zones_set = true;
    return collect_refs(p, st, &r->zone_refs, &r->nzone_refs);
}

static int
set_route_body(struct conf_parse *p, const struct conf_stmt *st, void *obj,
               const struct conf_directive *d)
{
    struct conf_route *r = obj;
    (void)d;
    r->max_body_set = true;
    return conf_arg_size(p, &st->args[0], &r->max_body_bytes);
}

/* per_try_timeout DURATION|off in a route: replaces the upstream's. */
static int
set_route_per_try(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                  const struct conf_directive *d)
{
    struct conf_route *r = obj;
    (void)d;
    r->per_try_set = true;
    r->per_try_pos = st->pos;
    r->per_try_timeout_ms = 0;
    if (strcmp(st->args[0].s, "off") == 0)
        return 0;
    if (conf_arg_duration(p, &st->args[0], &r->per_try_timeout_ms) < 0)
        return -1;
    if (r->per_try_timeout_ms == 0)
        return conf_err_arg(p, &st->args[0], "per_try_timeout must be longer than 0 (or \"off\")");
    return 0;
}

static const struct conf_directive route_dirs[] = {
    {"upstream", 1, 1, .set = set_route_upstream, .usage = "upstream NAME"},
    {"affinity", 1, 1, .set = set_route_affinity, .dflt = "none",
     .usage = "affinity none|cookie|header|session"},
    {"learn", 1, 1, .set = conf_set_bool, .offset = offsetof(struct conf_route, learn),
     .dflt = "off", .usage = "learn on|off"},
    {"timeout", 1, 1, .set = conf_set_duration, .offset = offsetof(struct conf_route, timeout_ms),
     .min = 1, .dflt = "30s", .usage = "timeout DURATION"},
    {"per_try_timeout", 1, 1, .set = set_route_per_try, .usage = "per_try_timeout DURATION|off"},
    {"websocket_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_route, websocket_timeout_ms), .min = 1, .dflt = "3600s",
     .usage = "websocket_timeout DURATION"},
    {"websocket_fin_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_route, websocket_fin_timeout_ms), .min = 1, .dflt = "60s",
     .usage = "websocket_fin_timeout DURATION"},
    {"limit_req", 1, CONF_ARGS_ANY, .multi = true, .set = set_route_limit_req,
     .usage = "limit_req ZONE..."},
    {"client_max_body_size", 1, 1, .set = set_route_body, .usage = "client_max_body_size SIZE"},
};
const struct conf_table conf_table_route = {CONF_ROUTE, "route", route_dirs,
                                            ARRAY_SIZE(route_dirs)};

static int
set_route(struct conf_parse *p, const struct conf_stmt *st, void *obj,
          const struct conf_directive *d)
{
    struct conf_vserver *vs = obj;
    const struct conf_arg *path;
    bool exact = false;
    (void)d;
    if (st->nargs == 2) {
        if (strcmp(st->args[0].s, "=") != 0)
            return conf_err_arg(p, &st->args[0], "expected \"=\" for an exact route, or a path");
        exact = true;
        path = &st->args[1];
    } else {
        path = &st->args[0];
        if (strcmp(path->s, "=") == 0)
            return conf_err_arg(p, path, "missing path after \"=\"");
    }
    if (path->s[0] != '/')
        return conf_err_arg(p, path, "route path \"%s\" must start with '/'", path->s);
    for (const char *c = path->s; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || *c == '?' || *c == '#')
            return conf_err_arg(p, path, "route path \"%s\" contains an invalid byte", path->s);
    for (uint32_t i = 0; i < vs->nroutes; i++)
        if (vs->routes[i].exact == exact && strcmp(vs->routes[i].path, path->s) == 0)
            return conf_err_arg(p, path, "duplicate route \"%s%s\" (first at %s:%u)",
                                exact ? "= " : "", path->s, vs->routes[i].pos.file,
                                vs->routes[i].pos.line);
    struct conf_route *r = conf_push(p, (void **)&vs->routes, &vs->nroutes, sizeof(*r));
    r->path = arena_strdup(p->a, path->s);
    r->path_len = path->len;
    r->exact = exact;
    r->pos = st->pos;
    r->upstream = -1;
    r->label = r->path;
    if (exact) {
        char *l = arena_alloc(p->a, path->len + 2);
        l[0] = '=';
        memcpy(l + 1, path->s, path->len + 1);
        r->label = l;
    }
    if (conf_defaults(p, &conf_table_route, r) < 0 ||
        conf_block_run(p, st, &conf_table_route, r) < 0)
        return -1;
    if (!r->upstream_ref.name)
        return conf_err_stmt(p, st, "route \"%s\" needs \"upstream NAME;\"", r->path);
    return 0;
}

static const struct conf_directive server_dirs[] = {
    {"listen", 1, 4, .multi = true, .set = set_listen,
     .usage = "listen ADDRESS:PORT [tls] [proxy_protocol] [backlog=N]"},
    {"tls_certificate", 1, 2, .multi = true, .set = set_cert,
     .usage = "tls_certificate CERT_FILE [KEY_FILE]"},
    {"tls_ticket_key_file", 1, 1, .set = conf_set_str,
     .offset = offsetof(struct conf_vserver, ticket_key_file), .usage = "tls_ticket_key_file PATH"},
    {"tls_ciphers", 1, 1, .set = conf_set_str, .offset = offsetof(struct conf_vserver, ciphers),
     .usage = "tls_ciphers OPENSSL-CIPHER-LIST"},
    {"tls_ciphersuites", 1, 1, .set = conf_set_str,
     .offset = offsetof(struct conf_vserver, ciphersuites),
     .usage = "tls_ciphersuites TLS13-SUITES"},
    {"limit_req", 1, CONF_ARGS_ANY, .multi = true, .set = set_vs_limit_req,
     .usage = "limit_req ZONE..."},
    {"limit_conn", 1, 2, .set = set_limit_conn, .usage = "limit_conn N | limit_conn ZONE N"},
    {"client_max_body_size", 1, 1, .set = conf_set_size,
     .offset = offsetof(struct conf_vserver, max_body_bytes), .dflt = "10m",
     .usage = "client_max_body_size SIZE"},
    {"client_header_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_vserver, client_header_timeout_ms), .min = 1, .dflt = "10s",
     .usage = "client_header_timeout DURATION"},
    {"client_body_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_vserver, client_body_timeout_ms), .min = 1, .dflt = "60s",
     .usage = "client_body_timeout DURATION"},
    {"keepalive_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_vserver, keepalive_timeout_ms), .dflt = "75s",
     .usage = "keepalive_timeout DURATION"},
    {"keepalive_requests", 1, 1, .set = conf_set_u32,
     .offset = offsetof(struct conf_vserver, keepalive_requests), .min = 1, .dflt = "10000",
     .usage = "keepalive_requests N"},
    {"merge_slashes", 1, 1, .set = conf_set_bool,
     .offset = offsetof(struct conf_vserver, merge_slashes), .dflt = "on",
     .usage = "merge_slashes on|off"},
    {"max_header_size", 1, 1, .set = conf_set_size,
     .offset = offsetof(struct conf_vserver, max_head_bytes), .min = 1024, .max = 1u << 20,
     .dflt = "8k", .usage = "max_header_size SIZE"},
    {"max_headers", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf_vserver, max_headers),
     .min = 8, .max = 256, .dflt = "100", .usage = "max_headers N"},
    {"real_ip_from", 1, CONF_ARGS_ANY, .multi = true, .set = set_vs_real_ip,
     .usage = "real_ip_from CIDR..."},
    {"real_ip_header", 1, 1, .set = conf_set_str,
     .offset = offsetof(struct conf_vserver, real_ip_header), .dflt = "X-Forwarded-For",
     .usage = "real_ip_header NAME"},
    {"route", 1, 2, .block = true, .multi = true, .set = set_route,
     .usage = "route [=] PATH { upstream NAME; ... }"},
};
const struct conf_table conf_table_server = {CONF_SERVER, "server", server_dirs,
                                             ARRAY_SIZE(server_dirs)};

int conf_set_vserver(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                     const struct conf_directive *d);

int
conf_set_vserver(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                 const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    struct conf_vserver *vs = conf_push(p, (void **)&c->vservers, &c->nvservers, sizeof(*vs));
    vs->pos = st->pos;
    vs->conn_zone = -1;
    if (conf_defaults(p, &conf_table_server, vs) < 0 ||
        conf_block_run(p, st, &conf_table_server, vs) < 0)
        return -1;
    if (vs->nlistens == 0)
        return conf_err_stmt(p, st, "server block needs at least one \"listen\"");
    for (uint32_t i = 0; i < vs->nroutes; i++) {
        struct conf_route *r = &vs->routes[i];
        if (!r->max_body_set)
            r->max_body_bytes = vs->max_body_bytes;
        if (!r->zones_set) {
            r->zone_refs = vs->zone_refs;
            r->nzone_refs = vs->nzone_refs;
        }
    }
    if (vs->nreal_ip_from == 0) {
        vs->real_ip_from = c->real_ip_from;
        vs->nreal_ip_from = c->nreal_ip_from;
    }
    return 0;
}

/* ---- cross-reference checks ---- */

static int
check_listen_clash(struct conf_parse *p, const struct sock_addr *a, const struct conf_pos *pos,
                   const char *what)
{
    struct conf *c = p->conf;
    for (uint32_t i = 0; i < c->nvservers; i++) {
        for (uint32_t j = 0; j < c->vservers[i].nlistens; j++) {
            const struct conf_listen *l = &c->vservers[i].listens[j];
            if (&l->pos != pos && sock_addr_equal(&l->addr, a))
                return err_at(p->e, pos->file, (int)pos->line, (int)pos->col,
                              "%s address %s is also used by the listen at %s:%u", what, l->text,
                              l->pos.file, l->pos.line);
        }
    }
    return 0;
}

static int
resolve_upstream(struct conf_parse *p, struct conf_route *r)
{
    const struct conf_ref *ref = &r->upstream_ref;
    const char *best = NULL;
    unsigned best_d = 1000;
    int idx = conf_upstream_find(p->conf, ref->name);
    if (idx >= 0) {
        r->upstream = idx;
        return 0;
    }
    for (uint32_t i = 0; i < p->conf->nupstreams; i++) {
        unsigned dist = edit_distance(ref->name, p->conf->upstreams[i].name);
        if (dist < best_d) {
            best_d = dist;
            best = p->conf->upstreams[i].name;
        }
    }
    if (best && best_d <= 2)
        return err_at(p->e, ref->pos.file, (int)ref->pos.line, (int)ref->pos.col,
                      "unknown upstream \"%s\"; did you mean \"%s\"?", ref->name, best);
    return err_at(p->e, ref->pos.file, (int)ref->pos.line, (int)ref->pos.col,
                  "unknown upstream \"%s\"", ref->name);
}

/* The per-try timeout in force on <r>: its own, else its upstream's. It must be
 * shorter than the route's timeout and needs "retry_on timeout" to act. */
static int
resolve_per_try(struct conf_parse *p, struct conf_route *r)
{
    const struct conf_upstream *u = &p->conf->upstreams[r->upstream];
    const struct conf_pos *pos = r->per_try_set ? &r->per_try_pos : &u->per_try_pos;
    if (!r->per_try_set)
        r->per_try_timeout_ms = u->per_try_timeout_ms;
    if (!r->per_try_timeout_ms)
        return 0;
    if (r->per_try_timeout_ms >= r->timeout_ms)
        return err_at(p->e, pos->file, (int)pos->line, (int)pos->col,
                      "per_try_timeout %llums must be shorter than the timeout %llums of route "
                      "\"%s\" (line %u)",
                      (unsigned long long)r->per_try_timeout_ms, (unsigned long long)r->timeout_ms,
                      r->label, r->pos.line);
    if (!(u->retry_on & RETRY_TIMEOUT))
        return err_at(p->e, pos->file, (int)pos->line, (int)pos->col,
                      "per_try_timeout has no effect: upstream \"%s\" (line %u) has no "
                      "\"retry_on timeout\"",
                      u->name, u->pos.line);
    return 0;
}

static int
resolve_zones(struct conf_parse *p, struct conf_route *r)
{
    r->nzones = 0;
    r->zones = arena_calloc(p->a, r->nzone_refs + 1, sizeof(int32_t));
    for (uint32_t i = 0; i < r->nzone_refs; i++) {
        const struct conf_ref *ref = &r->zone_refs[i];
        int idx = conf_zone_find(p->conf, ref->name);
        if (idx < 0)
            return err_at(p->e, ref->pos.file, (int)ref->pos.line, (int)ref->pos.col,
                          "unknown rate_limit_zone \"%s\"", ref->name);
        r->zones[r->nzones++] = idx;
    }
    return 0;
}

int
conf_check(struct conf_parse *p)
{
    struct conf *c = p->conf;

    if (c->nvservers == 0)
        return err_set(p->e, "%s: no \"server { listen ...; }\" block: nothing to serve", c->path);
    for (uint32_t i = 0; i < c->nvservers; i++) {
        struct conf_vserver *vs = &c->vservers[i];
        bool any_tls = false;
        for (uint32_t j = 0; j < vs->nlistens; j++) {
            if (check_listen_clash(p, &vs->listens[j].addr, &vs->listens[j].pos, "listen") < 0)
                return -1;
            any_tls |= vs->listens[j].tls;
        }
        if (any_tls && vs->ncerts == 0)
            return err_at(p->e, vs->pos.file, (int)vs->pos.line, (int)vs->pos.col,
                          "server has a tls listen but no tls_certificate");
        for (uint32_t j = 0; j < vs->nroutes; j++)
            if (resolve_upstream(p, &vs->routes[j]) < 0 || resolve_zones(p, &vs->routes[j]) < 0 ||
                resolve_per_try(p, &vs->routes[j]) < 0)
                return -1;
        if (vs->conn_zone_ref.name) {
            for (uint32_t j = 0; j < c->nconn_zones; j++)
                if (strcmp(c->conn_zones[j].name, vs->conn_zone_ref.name) == 0)
                    vs->conn_zone = (int32_t)j;
            if (vs->conn_zone < 0)
                return err_at(p->e, vs->conn_zone_ref.pos.file, (int)vs->conn_zone_ref.pos.line,
                              (int)vs->conn_zone_ref.pos.col, "unknown limit_conn_zone \"%s\"",
                              vs->conn_zone_ref.name);
        }
        if (vs->nroutes == 0)
            return err_at(p->e, vs->pos.file, (int)vs->pos.line, (int)vs->pos.col,
                          "server block has no route; add e.g. \"route / { upstream NAME; }\"");
    }
    if (c->stats_enabled &&
        check_listen_clash(p, &c->stats_listen, &c->stats_listen_pos, "stats listen") < 0)
        return -1;
    if (c->admin_enabled && c->admin_listen.u.sa.sa_family != AF_UNIX &&
        check_listen_clash(p, &c->admin_listen, &c->admin_listen_pos, "admin listen") < 0)
        return -1;
    if (c->stats_enabled && c->admin_enabled && sock_addr_equal(&c->stats_listen, &c->admin_listen))
        return err_at(p->e, c->admin_listen_pos.file, (int)c->admin_listen_pos.line,
                      (int)c->admin_listen_pos.col,
                      "admin listen address is also used by the stats listen at %s:%u",
                      c->stats_listen_pos.file, c->stats_listen_pos.line);
    if (c->affinity.secret_file && access(c->affinity.secret_file, R_OK) < 0)
        return err_set(p->e, "%s: affinity secret_file \"%s\" is not readable", c->path,
                       c->affinity.secret_file);
    for (uint32_t i = 0; i < c->nzones; i++)
        if (c->zones[i].global && !c->redis.enabled)
            return err_at(p->e, c->zones[i].pos.file, (int)c->zones[i].pos.line,
                          (int)c->zones[i].pos.col,
                          "rate_limit_zone \"%s\" is global but no redis { } block is configured",
                          c->zones[i].name);
    if (c->affinity.table_size == 0)
        c->affinity.table_size = 100000;
    return 0;
}
