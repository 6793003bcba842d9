/* SPDX-License-Identifier: MIT */
/* Top-level directives: process, logs, stats/admin/redis blocks, the affinity
 * block, rate-limit zones; and conf_load(), which drives the whole parse. */
#include "config.h"

#include <tether/conf_engine.h>
#include <tether/log_sink.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- process and logs ---- */

static int
set_workers(struct conf_parse *p, const struct conf_stmt *st, void *obj,
            const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    if (strcmp(st->args[0].s, "auto") == 0) {
        c->workers = 0;
        return 0;
    }
    return conf_arg_u32(p, &st->args[0], 1, 256, &c->workers);
}

/* A log destination (stdout, stderr, syslog:..., a path), checked here so a
 * mistake is a config error with its position. */
static int
log_dest(struct conf_parse *p, const struct conf_arg *a, char **out)
{
    struct log_sink s;
    struct err e2;
    if (log_sink_parse(&s, a->s, &e2) < 0)
        return conf_err_arg(p, a, "%s", e2.msg);
    *out = arena_strdup(p->a, a->s);
    return 0;
}

static int
set_error_log(struct conf_parse *p, const struct conf_stmt *st, void *obj,
              const struct conf_directive *d)
{
    static const char *const levels[] = {"debug", "info", "notice", "warn", "error"};
    struct conf *c = obj;
    bool level_set = false;
    (void)d;
    if (log_dest(p, &st->args[0], &c->error_log) < 0)
        return -1;
    c->error_json = false;
    for (uint32_t i = 1; i < st->nargs; i++) {
        const struct conf_arg *a = &st->args[i];
        size_t l;
        if (strcmp(a->s, "json") == 0 || strcmp(a->s, "text") == 0) {
            c->error_json = a->s[0] == 'j';
            continue;
        }
        for (l = 0; l < ARRAY_SIZE(levels); l++)
            if (strcmp(a->s, levels[l]) == 0)
                break;
        if (l == ARRAY_SIZE(levels))
            return conf_err_arg(p, a,
                                "invalid error_log argument \"%s\"; expected a level (debug, info, "
                                "notice, warn or error) or a format (text or json)",
                                a->s);
        if (level_set)
            return conf_err_arg(p, a, "the error_log level is given twice");
        c->error_level = (uint8_t)l;
        level_set = true;
    }
    if (!level_set)
        c->error_level = LOG_LVL_INFO;
    return 0;
}

static int
set_access_log(struct conf_parse *p, const struct conf_stmt *st, void *obj,
               const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    if (strcmp(st->args[0].s, "off") == 0) {
        c->access_log = NULL;
        if (st->nargs > 1)
            return conf_err_arg(p, &st->args[1], "\"access_log off\" takes no other argument");
        return 0;
    }
    if (log_dest(p, &st->args[0], &c->access_log) < 0)
        return -1;
    for (uint32_t i = 1; i < st->nargs; i++) {
        const struct conf_arg *a = &st->args[i];
        if (strcmp(a->s, "json") == 0)
            c->access_format = ACCESS_JSON;
        else if (strcmp(a->s, "combined") == 0)
            c->access_format = ACCESS_COMBINED;
        else if (strncmp(a->s, "flush=", 6) == 0) {
            struct conf_arg v = *a;
            v.s += 6;
            v.len -= 6;
            if (conf_arg_duration(p, &v, &c->access_flush_ms) < 0)
                return -1;
        } else
            return conf_err_arg(p, a,
                                "invalid access_log argument \"%s\"; expected json, "
                                "combined or flush=DURATION",
                                a->s);
    }
    return 0;
}

static int
set_tune(struct conf_parse *p, const struct conf_stmt *st, void *obj,
         const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    if (strcmp(st->args[0].s, "bufsize") == 0) {
        uint64_t v;
        if (conf_arg_size(p, &st->args[1], &v) < 0)
            return -1;
        if (v < 4096 || v > (1u << 20))
            return conf_err_arg(p, &st->args[1], "bufsize %s is out of range; expected 4k..1m",
                                st->args[1].s);
        c->bufsize = v;
        return 0;
    }
    return conf_err_arg(p, &st->args[0], "unknown tune parameter \"%s\"; expected bufsize",
                        st->args[0].s);
}

static int
set_real_ip_from(struct conf_parse *p, const struct conf_stmt *st, void *obj, size_t arr_off,
                 size_t n_off)
{
    struct sock_cidr **arr = (struct sock_cidr **)(void *)((char *)obj + arr_off);
    uint32_t *n = (uint32_t *)(void *)((char *)obj + n_off);
    for (uint32_t i = 0; i < st->nargs; i++) {
        struct err e2;
        struct sock_cidr *cidr = conf_push(p, (void **)arr, n, sizeof(*cidr));
        if (sock_cidr_parse(cidr, st->args[i].s, &e2) < 0)
            return conf_err_arg(p, &st->args[i], "%s", e2.msg);
    }
    return 0;
}

static int
set_main_real_ip(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                 const struct conf_directive *d)
{
    (void)d;
    return set_real_ip_from(p, st, obj, offsetof(struct conf, real_ip_from),
                            offsetof(struct conf, nreal_ip_from));
}

/* ---- stats, admin, redis blocks ---- */

static int
set_listen_addr(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                const struct conf_directive *d)
{
    return conf_arg_addr(p, &st->args[0], 0, (struct sock_addr *)(void *)((char *)obj + d->offset));
}

static int
set_admin_mode(struct conf_parse *p, const struct conf_stmt *st, void *obj,
               const struct conf_directive *d)
{
    struct conf *c = obj;
    char *end;
    unsigned long v = strtoul(st->args[0].s, &end, 8);
    (void)d;
    if (*end || st->args[0].len == 0 || v > 0777)
        return conf_err_arg(p, &st->args[0], "invalid mode \"%s\"; expected octal such as 0660",
                            st->args[0].s);
    c->admin_mode = (unsigned)v;
    return 0;
}

static const struct conf_directive stats_dirs[] = {
    {"listen", 1, 1, .set = set_listen_addr, .offset = offsetof(struct conf, stats_listen),
     .usage = "listen ADDRESS:PORT"},
};
const struct conf_table conf_table_stats = {CONF_STATS, "stats", stats_dirs,
                                            ARRAY_SIZE(stats_dirs)};

static const struct conf_directive admin_dirs[] = {
    {"listen", 1, 1, .set = set_listen_addr, .offset = offsetof(struct conf, admin_listen),
     .usage = "listen unix:PATH|ADDRESS:PORT"},
    {"mode", 1, 1, .set = set_admin_mode, .dflt = "0660", .usage = "mode OCTAL"},
};
const struct conf_table conf_table_admin = {CONF_ADMIN, "admin", admin_dirs,
                                            ARRAY_SIZE(admin_dirs)};

static int
set_redis_server(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                 const struct conf_directive *d)
{
    struct conf_redis *r = obj;
    (void)d;
    if (conf_arg_addr(p, &st->args[0], 6379, &r->addr) < 0)
        return -1;
    sock_addr_format(&r->addr, r->addr_text, sizeof(r->addr_text));
    return 0;
}

static const struct conf_directive redis_dirs[] = {
    {"server", 1, 1, .set = set_redis_server, .usage = "server HOST[:PORT]|unix:PATH"},
    {"prefix", 1, 1, .set = conf_set_str, .offset = offsetof(struct conf_redis, prefix),
     .dflt = "tether:", .usage = "prefix STRING"},
    {"timeout", 1, 1, .set = conf_set_duration, .offset = offsetof(struct conf_redis, timeout_ms),
     .min = 1, .max = 60000, .dflt = "200ms", .usage = "timeout DURATION"},
    {"password", 1, 1, .set = conf_set_str, .offset = offsetof(struct conf_redis, password),
     .usage = "password STRING"},
    {"db", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf_redis, db), .max = 1000,
     .usage = "db N"},
};
const struct conf_table conf_table_redis = {CONF_REDIS, "redis", redis_dirs,
                                            ARRAY_SIZE(redis_dirs)};

/* Where the block's "listen" argument is, for errors found later. */
static struct conf_pos
block_listen_pos(const struct conf_stmt *blk)
{
    for (uint32_t i = 0; i < blk->nchildren; i++)
        if (strcmp(blk->children[i].name, "listen") == 0 && blk->children[i].nargs)
            return blk->children[i].args[0].pos;
    return blk->pos;
}

static int
set_block_stats(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    if (conf_block_run(p, st, &conf_table_stats, c) < 0)
        return -1;
    if (c->stats_listen.len == 0)
        return conf_err_stmt(p, st, "the stats block needs \"listen ADDRESS:PORT\"");
    c->stats_listen_pos = block_listen_pos(st);
    c->stats_enabled = true;
    return 0;
}

static int
set_block_admin(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    if (conf_defaults(p, &conf_table_admin, c) < 0 ||
        conf_block_run(p, st, &conf_table_admin, c) < 0)
        return -1;
    if (c->admin_listen.len == 0)
        return conf_err_stmt(p, st, "the admin block needs \"listen unix:PATH\"");
    c->admin_listen_pos = block_listen_pos(st);
    c->admin_enabled = true;
    return 0;
}

static int
set_block_redis(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    if (conf_defaults(p, &conf_table_redis, &c->redis) < 0 ||
        conf_block_run(p, st, &conf_table_redis, &c->redis) < 0)
        return -1;
    if (c->redis.addr.len == 0)
        return conf_err_stmt(p, st, "the redis block needs \"server HOST:PORT\"");
    c->redis.enabled = true;
    return 0;
}

/* ---- affinity block ---- */

static int
param_samesite(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
               const struct conf_param *pm)
{
    struct conf_affinity *af = obj;
    (void)pm;
    if (strcmp(value, "Lax") && strcmp(value, "Strict") && strcmp(value, "None"))
        return conf_err_arg(p, a, "invalid samesite \"%s\"; expected Lax, Strict or None", value);
    af->samesite = arena_strdup(p->a, value);
    return 0;
}

static const struct conf_param cookie_params[] = {
    {"max_age", false, conf_param_duration, offsetof(struct conf_affinity, cookie_max_age_ms), 0,
     0},
    {"secret_file", false, conf_param_str, offsetof(struct conf_affinity, secret_file), 0, 0},
    {"samesite", false, param_samesite, 0, 0, 0},
};

static int
set_aff_cookie(struct conf_parse *p, const struct conf_stmt *st, void *obj,
               const struct conf_directive *d)
{
    struct conf_affinity *af = obj;
    (void)d;
    if (!conf_token_ok(st->args[0].s))
        return conf_err_arg(p, &st->args[0], "invalid cookie name \"%s\"", st->args[0].s);
    af->cookie_name = arena_strdup(p->a, st->args[0].s);
    af->secret_pos = st->pos;
    for (uint32_t i = 1; i < st->nargs; i++)
        if (strncmp(st->args[i].s, "secret_file=", 12) == 0)
            af->secret_pos = conf_param_value(&st->args[i], st->args[i].s + 12).pos;
    return conf_params(p, st, 1, cookie_params, ARRAY_SIZE(cookie_params), af);
}

static int
set_aff_header(struct conf_parse *p, const struct conf_stmt *st, void *obj,
               const struct conf_directive *d)
{
    struct conf_affinity *af = obj;
    (void)d;
    if (!conf_token_ok(st->args[0].s))
        return conf_err_arg(p, &st->args[0], "invalid header name \"%s\"", st->args[0].s);
    af->header_name = arena_strdup(p->a, st->args[0].s);
    return 0;
}

static int
set_aff_learn(struct conf_parse *p, const struct conf_stmt *st, void *obj,
              const struct conf_directive *d)
{
    struct conf_affinity *af = obj;
    (void)d;
    af->learn_header = NULL;
    af->learn_json = NULL;
    af->learn_cookie = NULL;
    for (uint32_t i = 0; i < st->nargs; i++) {
        const struct conf_arg *a = &st->args[i];
        if (strncmp(a->s, "header=", 7) == 0 && conf_token_ok(a->s + 7))
            af->learn_header = arena_strdup(p->a, a->s + 7);
        else if (strncmp(a->s, "json=", 5) == 0 && a->s[5])
            af->learn_json = arena_strdup(p->a, a->s + 5);
        else if (strncmp(a->s, "cookie=", 7) == 0 && conf_token_ok(a->s + 7))
            af->learn_cookie = arena_strdup(p->a, a->s + 7);
        else
            return conf_err_arg(
                p, a,
                "invalid learn source \"%s\"; expected header=NAME, json=FIELD or cookie=NAME",
                a->s);
    }
    return 0;
}

static int
set_aff_path(struct conf_parse *p, const struct conf_stmt *st, void *obj,
             const struct conf_directive *d)
{
    struct conf_affinity *af = obj;
    struct err e2;
    (void)d;
    struct path_pattern *pat = conf_push(p, (void **)&af->paths, &af->npaths, sizeof(*pat));
    if (path_pattern_parse(pat, st->args[0].s, &e2) < 0)
        return conf_err_arg(p, &st->args[0], "%s", e2.msg);
    return 0;
}

static const struct conf_directive affinity_dirs[] = {
    {"cookie", 1, 4, .set = set_aff_cookie, .dflt = "VOICE_AFFINITY max_age=900s",
     .usage = "cookie NAME [max_age=DURATION] [secret_file=PATH] [samesite=Lax|Strict|None]"},
    {"header", 1, 1, .set = set_aff_header, .dflt = "X-Voice-Session-Id", .usage = "header NAME"},
    {"learn", 1, 3, .set = set_aff_learn, .dflt = "header=X-Voice-Session-Id",
     .usage = "learn header=NAME|json=FIELD|cookie=NAME ..."},
    {"session_cookie", 1, 1, .set = conf_set_token,
     .offset = offsetof(struct conf_affinity, session_cookie), .usage = "session_cookie NAME"},
    {"path", 1, 1, .multi = true, .set = set_aff_path, .usage = "path PATTERN-WITH-{id}"},
    {"ttl", 1, 1, .set = conf_set_duration, .offset = offsetof(struct conf_affinity, ttl_ms),
     .min = 1000, .dflt = "900s", .usage = "ttl DURATION"},
    {"table_size", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf_affinity, table_size),
     .min = 16, .max = 100000000, .usage = "table_size ENTRIES"},
};
const struct conf_table conf_table_affinity = {CONF_AFFINITY, "affinity", affinity_dirs,
                                               ARRAY_SIZE(affinity_dirs)};

static int
set_block_affinity(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                   const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    c->affinity_set = true;
    return conf_block_run(p, st, &conf_table_affinity, &c->affinity);
}

/* ---- rate-limit zones ---- */

static int
param_key(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
          const struct conf_param *pm)
{
    struct conf_arg v = conf_param_value(a, value);
    return conf_arg_key(p, &v, (struct key_spec *)(void *)((char *)obj + pm->offset));
}

static int
param_rate(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
           const struct conf_param *pm)
{
    struct conf_zone *z = obj;
    (void)pm;
    if (parse_rate(value, strlen(value), &z->rate) < 0)
        return conf_err_arg(p, a, "invalid rate \"%s\"; expected Nr/s or Nr/m", value);
    return 0;
}

static int
param_status(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
             const struct conf_param *pm)
{
    struct conf_zone *z = obj;
    (void)pm;
    if (strcmp(value, "429") == 0)
        z->status = 429;
    else if (strcmp(value, "503") == 0)
        z->status = 503;
    else
        return conf_err_arg(p, a, "invalid status \"%s\"; expected 429 or 503", value);
    return 0;
}

static int
param_on_redis_error(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                     const struct conf_param *pm)
{
    struct conf_zone *z = obj;
    (void)pm;
    if (strcmp(value, "local") == 0)
        z->on_redis_error = ON_REDIS_LOCAL;
    else if (strcmp(value, "allow") == 0)
        z->on_redis_error = ON_REDIS_ALLOW;
    else if (strcmp(value, "deny") == 0)
        z->on_redis_error = ON_REDIS_DENY;
    else
        return conf_err_arg(p, a, "invalid on_redis_error \"%s\"; expected local, allow or deny",
                            value);
    return 0;
}

static const struct conf_param zone_params[] = {
    {"key", false, param_key, offsetof(struct conf_zone, key), 0, 0},
    {"rate", false, param_rate, 0, 0, 0},
    {"burst", false, conf_param_u32, offsetof(struct conf_zone, burst), 0, 1000000},
    {"nodelay", true, conf_param_flag, offsetof(struct conf_zone, nodelay), 0, 0},
    {"global", true, conf_param_flag, offsetof(struct conf_zone, global), 0, 0},
    {"status", false, param_status, 0, 0, 0},
    {"size", false, conf_param_size, offsetof(struct conf_zone, size), 0, 0},
    {"on_redis_error", false, param_on_redis_error, 0, 0, 0},
};

static int
check_name(struct conf_parse *p, const struct conf_arg *a, const char *what)
{
    if (!conf_token_ok(a->s) || strchr(a->s, '/'))
        return conf_err_arg(p, a, "invalid %s name \"%s\"", what, a->s);
    return 0;
}

static int
set_zone(struct conf_parse *p, const struct conf_stmt *st, void *obj,
         const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    if (check_name(p, &st->args[0], "zone") < 0)
        return -1;
    for (uint32_t i = 0; i < c->nzones; i++)
        if (strcmp(c->zones[i].name, st->args[0].s) == 0)
            return conf_err_arg(p, &st->args[0],
                                "duplicate rate_limit_zone \"%s\" (first at %s:%u)", st->args[0].s,
                                c->zones[i].pos.file, c->zones[i].pos.line);
    struct conf_zone *z = conf_push(p, (void **)&c->zones, &c->nzones, sizeof(*z));
    z->name = arena_strdup(p->a, st->args[0].s);
    z->pos = st->pos;
    z->status = 429;
    z->size = 10u << 20;
    z->index = c->nzones - 1;
    if (conf_params(p, st, 1, zone_params, ARRAY_SIZE(zone_params), z) < 0)
        return -1;
    if (z->key.nparts == 0)
        return conf_err_stmt(p, st, "rate_limit_zone \"%s\" needs key=...", z->name);
    if (z->rate <= 0)
        return conf_err_stmt(p, st, "rate_limit_zone \"%s\" needs rate=Nr/s", z->name);
    if (z->size < 65536)
        return conf_err_stmt(p, st, "rate_limit_zone \"%s\": size must be at least 64k", z->name);
    return 0;
}

static const struct conf_param conn_zone_params[] = {
    {"key", false, param_key, offsetof(struct conf_conn_zone, key), 0, 0},
    {"size", false, conf_param_size, offsetof(struct conf_conn_zone, size), 0, 0},
};

static int
set_conn_zone(struct conf_parse *p, const struct conf_stmt *st, void *obj,
              const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    if (check_name(p, &st->args[0], "zone") < 0)
        return -1;
    for (uint32_t i = 0; i < c->nconn_zones; i++)
        if (strcmp(c->conn_zones[i].name, st->args[0].s) == 0)
            return conf_err_arg(p, &st->args[0],
                                "duplicate limit_conn_zone \"%s\" (first at %s:%u)", st->args[0].s,
                                c->conn_zones[i].pos.file, c->conn_zones[i].pos.line);
    struct conf_conn_zone *z = conf_push(p, (void **)&c->conn_zones, &c->nconn_zones, sizeof(*z));
    z->name = arena_strdup(p->a, st->args[0].s);
    z->pos = st->pos;
    z->size = 1u << 20;
    z->index = c->nconn_zones - 1;
    if (conf_params(p, st, 1, conn_zone_params, ARRAY_SIZE(conn_zone_params), z) < 0)
        return -1;
    if (z->key.nparts == 0)
        return conf_err_stmt(p, st, "limit_conn_zone \"%s\" needs key=...", z->name);
    return 0;
}

/* Block directives implemented in conf_upstream.c and conf_server.c. */
int conf_set_upstream(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                      const struct conf_directive *d);
int conf_set_vserver(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                     const struct conf_directive *d);

static const struct conf_directive main_dirs[] = {
    {"workers", 1, 1, .restart = true, .set = set_workers, .dflt = "auto",
     .usage = "workers N|auto"},
    {"error_log", 1, 3, .set = set_error_log, .dflt = "stderr info",
     .usage = "error_log stderr|stdout|syslog:server=ADDR[,facility=F][,tag=T]|PATH "
              "[debug|info|notice|warn|error] [text|json]"},
    {"access_log", 1, 3, .set = set_access_log,
     .usage = "access_log stdout|stderr|syslog:server=ADDR[,facility=F][,tag=T]|PATH|off "
              "[json|combined] [flush=DURATION]"},
    {"shutdown_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf, shutdown_timeout_ms), .dflt = "30s",
     .usage = "shutdown_timeout DURATION"},
    {"pidfile", 1, 1, .set = conf_set_str, .offset = offsetof(struct conf, pidfile),
     .usage = "pidfile PATH"},
    {"upgrade_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf, upgrade_timeout_ms), .min = 100, .max = 3600000, .dflt = "10s",
     .usage = "upgrade_timeout DURATION"},
    {"max_connections", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf, max_connections),
     .min = 16, .max = 10000000, .dflt = "100000", .usage = "max_connections N"},
    {"tune", 2, 2, .multi = true, .restart = true, .set = set_tune, .usage = "tune bufsize SIZE"},
    {"stats", 0, 0, .block = true, .set = set_block_stats,
     .usage = "stats { listen ADDRESS:PORT; }"},
    {"admin", 0, 0, .block = true, .set = set_block_admin,
     .usage = "admin { listen unix:PATH; mode 0660; }"},
    {"redis", 0, 0, .block = true, .set = set_block_redis,
     .usage = "redis { server HOST:PORT; prefix STRING; timeout DURATION; }"},
    {"affinity", 0, 0, .block = true, .set = set_block_affinity, .usage = "affinity { ... }"},
    {"rate_limit_zone", 2, 10, .multi = true, .set = set_zone,
     .usage =
         "rate_limit_zone NAME key=KEY rate=Nr/s [burst=N] [nodelay] [global] [status=429|503] "
         "[size=SIZE] [on_redis_error=local|allow|deny]"},
    {"limit_conn_zone", 2, 3, .multi = true, .set = set_conn_zone,
     .usage = "limit_conn_zone NAME key=KEY [size=SIZE]"},
    {"real_ip_from", 1, CONF_ARGS_ANY, .multi = true, .set = set_main_real_ip,
     .usage = "real_ip_from CIDR..."},
    {"upstream", 1, 1, .block = true, .multi = true, .set = conf_set_upstream,
     .usage = "upstream NAME { ... }"},
    {"server", 0, 0, .block = true, .multi = true, .set = conf_set_vserver,
     .usage = "server { ... }"},
};
const struct conf_table conf_table_main = {CONF_MAIN, "main", main_dirs, ARRAY_SIZE(main_dirs)};

/* ---- loading ---- */

static struct conf *
conf_from_doc(struct conf_doc *doc, const char *path, struct err *e)
{
    struct conf *c = calloc(1, sizeof(*c));
    struct conf_parse p = {.conf = c, .e = e};
    if (!c) {
        err_set(e, "out of memory");
        return NULL;
    }
    arena_init(&c->arena);
    p.a = &c->arena;
    c->path = arena_strdup(p.a, path);
    c->bufsize = 16384;
    c->access_flush_ms = 100;
    if (conf_defaults(&p, &conf_table_main, c) < 0 ||
        conf_defaults(&p, &conf_table_affinity, &c->affinity) < 0 ||
        conf_block_run(&p, &doc->root, &conf_table_main, c) < 0 || conf_check(&p) < 0) {
        conf_free(c);
        return NULL;
    }
    return c;
}

/* Positions (for errors found later, e.g. while building a generation) point
 * into the document: it lives as long as the conf. */
static struct conf *
conf_keep_doc(struct conf *c, struct conf_doc *doc, struct err *e)
{
    if (!c) {
        conf_doc_free(doc);
        return NULL;
    }
    c->doc = doc;
    if (conf_effective_build(c, doc, e) < 0) {
        conf_free(c);
        return NULL;
    }
    return c;
}

struct conf *
conf_load(const char *path, struct err *e)
{
    struct conf_doc *doc = conf_doc_load(path, e);
    struct conf *c;
    if (!doc)
        return NULL;
    c = conf_from_doc(doc, path, e);
    return conf_keep_doc(c, doc, e);
}

struct conf *
conf_parse_text(const char *text, size_t len, const char *name, struct err *e)
{
    struct conf_doc *doc = conf_doc_parse(text, len, name, e);
    struct conf *c;
    if (!doc)
        return NULL;
    c = conf_from_doc(doc, name, e);
    return conf_keep_doc(c, doc, e);
}

void
conf_free(struct conf *c)
{
    if (!c)
        return;
    arena_fini(&c->arena);
    conf_doc_free(c->doc);
    free(c);
}

int
conf_upstream_find(const struct conf *c, const char *name)
{
    for (uint32_t i = 0; i < c->nupstreams; i++)
        if (strcmp(c->upstreams[i].name, name) == 0)
            return (int)i;
    return -1;
}

int
conf_zone_find(const struct conf *c, const char *name)
{
    for (uint32_t i = 0; i < c->nzones; i++)
        if (strcmp(c->zones[i].name, name) == 0)
            return (int)i;
    return -1;
}
