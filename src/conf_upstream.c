/* SPDX-License-Identifier: MIT */
/* Directives of upstream blocks: balance, region, server, keepalive, timeouts,
 * retries, health_check { } and outlier { }. */
#include "config.h"

#include <tether/conf_engine.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
set_balance(struct conf_parse *p, const struct conf_stmt *st, void *obj,
            const struct conf_directive *d)
{
    static const char *const names[] = {"round_robin", "least_conn", "random_two", "hash",
                                        "least_sessions"};
    struct conf_upstream *u = obj;
    (void)d;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(st->args[0].s, names[i]) == 0) {
            u->balance = (uint8_t)i;
            if (i == BALANCE_HASH) {
                if (st->nargs > 1)
                    return conf_arg_key(p, &st->args[1], &u->hash_key);
                struct conf_arg dflt = {.s = "$remote_addr", .len = 12};
                return conf_arg_key(p, &dflt, &u->hash_key);
            }
            if (st->nargs > 1)
                return conf_err_arg(p, &st->args[1], "only \"balance hash\" takes a key");
            return 0;
        }
    }
    return conf_err_arg(
        p, &st->args[0],
        "unknown balance \"%s\"; expected round_robin, least_conn, random_two, hash or "
        "least_sessions",
        st->args[0].s);
}

static bool
name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

static const struct conf_param region_params[] = {
    {"weight", false, conf_param_u32, offsetof(struct conf_region, weight), 0, 1000},
    {"priority", false, conf_param_u32, offsetof(struct conf_region, priority), 0, 16},
};

static int
set_region(struct conf_parse *p, const struct conf_stmt *st, void *obj,
           const struct conf_directive *d)
{
    struct conf_upstream *u = obj;
    (void)d;
    if (!name_ok(st->args[0].s))
        return conf_err_arg(p, &st->args[0],
                            "invalid region name \"%s\"; expected letters, "
                            "digits, '-', '_' or '.'",
                            st->args[0].s);
    for (uint32_t i = 0; i < u->nregions; i++)
        if (strcmp(u->regions[i].name, st->args[0].s) == 0)
            return conf_err_arg(
                p, &st->args[0], "duplicate region \"%s\" in upstream \"%s\" (first at %s:%u)",
                st->args[0].s, u->name, u->regions[i].pos.file, u->regions[i].pos.line);
    struct conf_region *r = conf_push(p, (void **)&u->regions, &u->nregions, sizeof(*r));
    r->name = arena_strdup(p->a, st->args[0].s);
    r->pos = st->pos;
    r->weight = 100;
    return conf_params(p, st, 1, region_params, ARRAY_SIZE(region_params), r);
}

static int
param_region(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
             const struct conf_param *pm)
{
    struct conf_server *s = obj;
    (void)pm;
    if (!name_ok(value))
        return conf_err_arg(p, a, "invalid region name \"%s\"", value);
    s->region_name = arena_strdup(p->a, value);
    return 0;
}

static const struct conf_param server_params[] = {
    {"region", false, param_region, 0, 0, 0},
    {"weight", false, conf_param_u32, offsetof(struct conf_server, weight), 0, 1000},
    {"tls", true, conf_param_flag, offsetof(struct conf_server, tls), 0, 0},
    {"verify", false, conf_param_bool, offsetof(struct conf_server, verify), 0, 0},
    {"ca", false, conf_param_str, offsetof(struct conf_server, ca_file), 0, 0},
    {"sni", false, conf_param_str, offsetof(struct conf_server, sni), 0, 0},
    {"max_conns", false, conf_param_u32, offsetof(struct conf_server, max_conns), 0, 1000000},
    {"max_sessions", false, conf_param_u32, offsetof(struct conf_server, max_sessions), 1, 1000000},
};

static int
set_server(struct conf_parse *p, const struct conf_stmt *st, void *obj,
           const struct conf_directive *d)
{
    struct conf_upstream *u = obj;
    (void)d;
    if (!name_ok(st->args[0].s))
        return conf_err_arg(p, &st->args[0],
                            "invalid server name \"%s\"; expected letters, "
                            "digits, '-', '_' or '.'",
                            st->args[0].s);
    for (uint32_t i = 0; i < u->nservers; i++)
        if (strcmp(u->servers[i].name, st->args[0].s) == 0)
            return conf_err_arg(
                p, &st->args[0], "duplicate server \"%s\" in upstream \"%s\" (first at %s:%u)",
                st->args[0].s, u->name, u->servers[i].pos.file, u->servers[i].pos.line);
    struct conf_server *s = conf_push(p, (void **)&u->servers, &u->nservers, sizeof(*s));
    s->name = arena_strdup(p->a, st->args[0].s);
    s->pos = st->pos;
    s->weight = 1;
    s->verify = true;
    s->region = -1;
    if (conf_arg_addr(p, &st->args[1], 0, &s->addr) < 0)
        return -1;
    sock_addr_format(&s->addr, s->addr_text, sizeof(s->addr_text));
    return conf_params(p, st, 2, server_params, ARRAY_SIZE(server_params), s);
}

static int
param_discover_region(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                      const struct conf_param *pm)
{
    struct conf_discover *dv = obj;
    (void)pm;
    if (!name_ok(value))
        return conf_err_arg(p, a, "invalid region name \"%s\"", value);
    dv->region_name = arena_strdup(p->a, value);
    return 0;
}

static const struct conf_param discover_params[] = {
    {"region", false, param_discover_region, 0, 0, 0},
    {"port", false, conf_param_u32, offsetof(struct conf_discover, port), 1, 65535},
    {"weight", false, conf_param_u32, offsetof(struct conf_discover, weight), 1, 1000},
    {"srv", true, conf_param_flag, offsetof(struct conf_discover, srv), 0, 0},
};

/* discover NAME port=N | srv [region=R] [weight=N]: servers from DNS. The name
 * is only checked here; it is resolved at run time (tether -t needs no DNS). */
static int
set_discover(struct conf_parse *p, const struct conf_stmt *st, void *obj,
             const struct conf_directive *d)
{
    struct conf_upstream *u = obj;
    const char *n = st->args[0].s;
    size_t len = strlen(n);
    (void)d;
    if (len == 0 || len > 253)
        return conf_err_arg(p, &st->args[0], "invalid DNS name \"%s\"", n);
    for (const char *c = n; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            return conf_err_arg(p, &st->args[0], "invalid DNS name \"%s\"", n);
    for (uint32_t i = 0; i < u->ndiscovers; i++)
        if (strcmp(u->discovers[i].name, n) == 0)
            return conf_err_arg(p, &st->args[0], "duplicate discover \"%s\" in upstream \"%s\"", n,
                                u->name);
    struct conf_discover *dv = conf_push(p, (void **)&u->discovers, &u->ndiscovers, sizeof(*dv));
    dv->name = arena_strdup(p->a, n);
    dv->pos = st->pos;
    dv->weight = 1;
    dv->region = -1;
    if (conf_params(p, st, 1, discover_params, ARRAY_SIZE(discover_params), dv) < 0)
        return -1;
    if (dv->srv && dv->port)
        return conf_err_stmt(p, st, "discover \"%s\": srv takes the port from DNS, not port=", n);
    if (!dv->srv && !dv->port)
        return conf_err_stmt(p, st, "discover \"%s\" needs port=N (or srv)", n);
    return 0;
}

/* resolver [ADDR[:PORT] ...] [valid=DURATION] [timeout=DURATION] */
static int
set_resolver(struct conf_parse *p, const struct conf_stmt *st, void *obj,
             const struct conf_directive *d)
{
    struct conf_upstream *u = obj;
    (void)d;
    for (uint32_t i = 0; i < st->nargs; i++) {
        const struct conf_arg *a = &st->args[i];
        if (strncmp(a->s, "valid=", 6) == 0) {
            struct conf_arg v = conf_param_value(a, a->s + 6);
            if (conf_arg_duration(p, &v, &u->resolver_valid_ms) < 0)
                return -1;
            if (u->resolver_valid_ms < 1000)
                return conf_err_arg(p, a, "resolver valid= must be at least 1s");
        } else if (strncmp(a->s, "timeout=", 8) == 0) {
            struct conf_arg v = conf_param_value(a, a->s + 8);
            if (conf_arg_duration(p, &v, &u->resolver_timeout_ms) < 0)
                return -1;
            if (u->resolver_timeout_ms < 100 || u->resolver_timeout_ms > 60000)
                return conf_err_arg(p, a, "resolver timeout= must be between 100ms and 60s");
        } else {
            struct sock_addr *r = conf_push(p, (void **)&u->resolvers, &u->nresolvers, sizeof(*r));
            if (conf_arg_addr(p, a, 53, r) < 0)
                return -1;
            if (r->u.sa.sa_family != AF_INET && r->u.sa.sa_family != AF_INET6)
                return conf_err_arg(p, a, "resolver needs an IP address");
        }
    }
    return 0;
}

static int
set_retry_on(struct conf_parse *p, const struct conf_stmt *st, void *obj,
             const struct conf_directive *d)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } conds[] = {
        {"connect-failure", RETRY_CONNECT_FAILURE},
        {"refused", RETRY_REFUSED},
        {"reset", RETRY_RESET},
        {"502", RETRY_502},
        {"503", RETRY_503},
        {"504", RETRY_504},
        {"timeout", RETRY_TIMEOUT},
    };
    struct conf_upstream *u = obj;
    (void)d;
    u->retry_on = 0;
    for (uint32_t i = 0; i < st->nargs; i++) {
        size_t j;
        if (strcmp(st->args[i].s, "none") == 0 && st->nargs == 1)
            return 0;
        for (j = 0; j < ARRAY_SIZE(conds); j++)
            if (strcmp(st->args[i].s, conds[j].name) == 0)
                break;
        if (j == ARRAY_SIZE(conds))
            return conf_err_arg(p, &st->args[i],
                                "unknown retry condition \"%s\"; expected connect-failure, "
                                "refused, reset, 502, 503, 504, timeout or none",
                                st->args[i].s);
        u->retry_on |= conds[j].bit;
    }
    return 0;
}

static int
set_overprovisioning(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                     const struct conf_directive *d)
{
    struct conf_upstream *u = obj;
    char *end;
    double v = strtod(st->args[0].s, &end);
    (void)d;
    if (strcmp(st->args[0].s, "off") == 0) {
        u->overprovisioning = 0; /* strict tiers */
        return 0;
    }
    if (*end || st->args[0].len == 0 || v < 1.0 || v > 10.0)
        return conf_err_arg(p, &st->args[0],
                            "invalid overprovisioning factor \"%s\"; expected "
                            "a number from 1.0 to 10.0, or off",
                            st->args[0].s);
    u->overprovisioning = v;
    return 0;
}

static const struct conf_param shed_params[] = {
    {"retry_after", false, conf_param_u32, offsetof(struct conf_upstream, shed_retry_after_s), 0,
     86400},
};

/* shed_status 503|429 [retry_after=SECONDS]: the answer when every server is full. */
static int
set_shed_status(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                const struct conf_directive *d)
{
    struct conf_upstream *u = obj;
    (void)d;
    if (strcmp(st->args[0].s, "503") == 0)
        u->shed_status = 503;
    else if (strcmp(st->args[0].s, "429") == 0)
        u->shed_status = 429;
    else
        return conf_err_arg(p, &st->args[0], "invalid shed status \"%s\"; expected 503 or 429",
                            st->args[0].s);
    u->shed_retry_after_s = 1;
    return conf_params(p, st, 1, shed_params, ARRAY_SIZE(shed_params), u);
}

/* hash_balance_factor PERCENT|off: bounded-load consistent hashing, > 100%. */
static int
set_hash_balance(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                 const struct conf_directive *d)
{
    struct conf_upstream *u = obj;
    const char *s = st->args[0].s;
    uint64_t v;
    (void)d;
    if (strcmp(s, "off") == 0) {
        u->hash_balance_pct = 0;
        return 0;
    }
    /* "150" (HAProxy's hash-balance-factor) or "150%". */
    size_t n = st->args[0].len;
    if (n > 1 && s[n - 1] == '%')
        n--;
    if (parse_u64(s, n, &v) < 0 || v < 101 || v > 1000)
        return conf_err_arg(p, &st->args[0],
                            "invalid hash_balance_factor \"%s\"; expected 101%%..1000%% or off", s);
    u->hash_balance_pct = (uint32_t)v;
    return 0;
}

/* ---- health_check { } ---- */

static int
set_expect(struct conf_parse *p, const struct conf_stmt *st, void *obj,
           const struct conf_directive *d)
{
    struct conf_health *h = obj;
    const char *s = st->args[0].s;
    const char *dash = strchr(s, '-');
    uint64_t lo, hi;
    (void)d;
    if (dash) {
        if (parse_u64(s, (size_t)(dash - s), &lo) < 0 ||
            parse_u64(dash + 1, strlen(dash + 1), &hi) < 0)
            goto bad;
    } else {
        if (parse_u64(s, strlen(s), &lo) < 0)
            goto bad;
        hi = lo;
    }
    if (lo < 100 || hi > 599 || lo > hi)
        goto bad;
    h->expect_lo = (uint16_t)lo;
    h->expect_hi = (uint16_t)hi;
    return 0;
bad:
    return conf_err_arg(p, &st->args[0], "invalid status range \"%s\"; expected e.g. 200-399", s);
}

static int
set_health_path(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                const struct conf_directive *d)
{
    struct conf_health *h = obj;
    (void)d;
    if (st->args[0].s[0] != '/')
        return conf_err_arg(p, &st->args[0], "health check path must start with '/'");
    for (const char *c = st->args[0].s; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return conf_err_arg(p, &st->args[0], "health check path contains an invalid byte");
    h->path = arena_strdup(p->a, st->args[0].s);
    return 0;
}

static int
set_initial(struct conf_parse *p, const struct conf_stmt *st, void *obj,
            const struct conf_directive *d)
{
    struct conf_health *h = obj;
    (void)d;
    if (strcmp(st->args[0].s, "up") == 0)
        h->initial_up = true;
    else if (strcmp(st->args[0].s, "down") == 0)
        h->initial_up = false;
    else
        return conf_err_arg(p, &st->args[0], "invalid initial state \"%s\"; expected up or down",
                            st->args[0].s);
    return 0;
}

static const struct conf_param report_params[] = {
    {"status", false, conf_param_str, offsetof(struct conf_health, report_status), 0, 0},
    {"active_sessions", false, conf_param_str, offsetof(struct conf_health, report_active), 0, 0},
    {"max_sessions", false, conf_param_str, offsetof(struct conf_health, report_max), 0, 0},
};

/* report json [status=NAME] [active_sessions=NAME] [max_sessions=NAME] */
static int
set_report(struct conf_parse *p, const struct conf_stmt *st, void *obj,
           const struct conf_directive *d)
{
    struct conf_health *h = obj;
    (void)d;
    if (strcmp(st->args[0].s, "json") != 0)
        return conf_err_arg(p, &st->args[0], "unknown report format \"%s\"; expected json",
                            st->args[0].s);
    h->report = true;
    h->report_status = arena_strdup(p->a, "status");
    h->report_active = arena_strdup(p->a, "active_sessions");
    h->report_max = arena_strdup(p->a, "max_sessions");
    return conf_params(p, st, 1, report_params, ARRAY_SIZE(report_params), h);
}

static const struct conf_directive health_dirs[] = {
    {"path", 1, 1, .set = set_health_path, .dflt = "/health", .usage = "path /PATH"},
    {"interval", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_health, interval_ms), .min = 10, .max = 3600000, .dflt = "10s",
     .usage = "interval DURATION"},
    {"timeout", 1, 1, .set = conf_set_duration, .offset = offsetof(struct conf_health, timeout_ms),
     .min = 10, .max = 600000, .dflt = "5s", .usage = "timeout DURATION"},
    {"rise", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf_health, rise), .min = 1,
     .max = 100, .dflt = "2", .usage = "rise N"},
    {"fall", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf_health, fall), .min = 1,
     .max = 100, .dflt = "3", .usage = "fall N"},
    {"expect", 1, 1, .set = set_expect, .dflt = "200-399", .usage = "expect STATUS[-STATUS]"},
    {"expect_body", 1, 1, .set = conf_set_str, .offset = offsetof(struct conf_health, expect_body),
     .usage = "expect_body TEXT"},
    {"host", 1, 1, .set = conf_set_str, .offset = offsetof(struct conf_health, host),
     .usage = "host NAME"},
    {"port", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf_health, port), .min = 1,
     .max = 65535, .usage = "port N"},
    {"initial", 1, 1, .set = set_initial, .dflt = "up", .usage = "initial up|down"},
    {"report", 1, 4, .set = set_report,
     .usage = "report json [status=NAME] [active_sessions=NAME] [max_sessions=NAME]"},
};
const struct conf_table conf_table_health = {CONF_HEALTH, "health_check", health_dirs,
                                             ARRAY_SIZE(health_dirs)};

static const struct conf_directive outlier_dirs[] = {
    {"enabled", 1, 1, .set = conf_set_bool, .offset = offsetof(struct conf_outlier, enabled),
     .dflt = "on", .usage = "enabled on|off"},
    {"consecutive_errors", 1, 1, .set = conf_set_u32,
     .offset = offsetof(struct conf_outlier, consecutive_errors), .min = 1, .max = 1000,
     .dflt = "5", .usage = "consecutive_errors N"},
    {"base_ejection", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_outlier, base_ejection_ms), .min = 10, .dflt = "30s",
     .usage = "base_ejection DURATION"},
    {"max_ejection", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_outlier, max_ejection_ms), .min = 10, .dflt = "300s",
     .usage = "max_ejection DURATION"},
    {"max_ejected", 1, 1, .set = conf_set_percent,
     .offset = offsetof(struct conf_outlier, max_ejected_pct), .dflt = "50%",
     .usage = "max_ejected PERCENT"},
    {"uneject_on_health_pass", 1, 1, .set = conf_set_bool,
     .offset = offsetof(struct conf_outlier, uneject_on_health_pass), .dflt = "on",
     .usage = "uneject_on_health_pass on|off"},
};
const struct conf_table conf_table_outlier = {CONF_OUTLIER, "outlier", outlier_dirs,
                                              ARRAY_SIZE(outlier_dirs)};

/* per_try_timeout DURATION|off: how long a try may wait for the first byte of
 * an answer before an idempotent request goes to another server. */
static int
set_per_try(struct conf_parse *p, const struct conf_stmt *st, void *obj,
            const struct conf_directive *d)
{
    struct conf_upstream *u = obj;
    (void)d;
    u->per_try_pos = st->pos;
    if (strcmp(st->args[0].s, "off") == 0) {
        u->per_try_timeout_ms = 0;
        return 0;
    }
    if (conf_arg_duration(p, &st->args[0], &u->per_try_timeout_ms) < 0)
        return -1;
    if (u->per_try_timeout_ms == 0)
        return conf_err_arg(p, &st->args[0], "per_try_timeout must be longer than 0 (or \"off\")");
    return 0;
}

static int
set_health_block(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                 const struct conf_directive *d)
{
    struct conf_upstream *u = obj;
    (void)d;
    if (conf_block_run(p, st, &conf_table_health, &u->health) < 0)
        return -1;
    /* A timeout longer than the interval is allowed: the next check then starts
     * when the slow one ends (checks of one server never overlap). */
    u->health.enabled = true;
    return 0;
}

static int
set_outlier_block(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                  const struct conf_directive *d)
{
    struct conf_upstream *u = obj;
    (void)d;
    return conf_block_run(p, st, &conf_table_outlier, &u->outlier);
}

static const struct conf_directive upstream_dirs[] = {
    {"balance", 1, 2, .set = set_balance, .dflt = "round_robin",
     .usage = "balance round_robin|least_conn|random_two|hash [KEY]|least_sessions"},
    {"region", 1, 3, .multi = true, .set = set_region,
     .usage = "region NAME [weight=N] [priority=N]"},
    {"server", 2, 10, .multi = true, .set = set_server,
     .usage = "server NAME ADDRESS:PORT [region=NAME] [weight=N] [tls] [verify=on|off] [ca=FILE] "
              "[sni=NAME] [max_conns=N] [max_sessions=N]"},
    {"affinity_cookie", 1, 1, .set = conf_set_token,
     .offset = offsetof(struct conf_upstream, affinity_cookie), .usage = "affinity_cookie NAME"},
    {"keepalive", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf_upstream, keepalive),
     .max = 100000, .dflt = "64", .usage = "keepalive N"},
    {"keepalive_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_upstream, keepalive_timeout_ms), .min = 1, .dflt = "4s",
     .usage = "keepalive_timeout DURATION"},
    {"keepalive_burst", 1, 1, .set = conf_set_u32,
     .offset = offsetof(struct conf_upstream, keepalive_burst), .max = 1000000, .dflt = "512",
     .usage = "keepalive_burst N"},
    {"keepalive_burst_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_upstream, keepalive_burst_timeout_ms), .min = 1, .max = 600000,
     .dflt = "200ms", .usage = "keepalive_burst_timeout DURATION"},
    {"connect_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_upstream, connect_timeout_ms), .min = 1, .max = 600000,
     .dflt = "2s", .usage = "connect_timeout DURATION"},
    {"retries", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf_upstream, retries),
     .max = 10, .dflt = "2", .usage = "retries N"},
    {"retry_on", 1, 7, .set = set_retry_on, .dflt = "connect-failure refused reset",
     .usage = "retry_on connect-failure|refused|reset|502|503|504|timeout ...|none"},
    {"per_try_timeout", 1, 1, .set = set_per_try, .dflt = "off",
     .usage = "per_try_timeout DURATION|off"},
    {"retry_budget", 1, 1, .set = conf_set_percent,
     .offset = offsetof(struct conf_upstream, retry_budget_pct), .dflt = "20%",
     .usage = "retry_budget PERCENT"},
    {"panic_threshold", 1, 1, .set = conf_set_percent,
     .offset = offsetof(struct conf_upstream, panic_threshold_pct), .dflt = "0%",
     .usage = "panic_threshold PERCENT"},
    {"overprovisioning", 1, 1, .set = set_overprovisioning, .dflt = "off",
     .usage = "overprovisioning FACTOR|off"},
    {"max_sessions", 1, 1, .set = conf_set_u32,
     .offset = offsetof(struct conf_upstream, max_sessions), .max = 1000000, .dflt = "0",
     .usage = "max_sessions N"},
    {"degraded_weight", 1, 1, .set = conf_set_percent,
     .offset = offsetof(struct conf_upstream, degraded_weight_pct), .dflt = "50%",
     .usage = "degraded_weight PERCENT"},
    {"shed_status", 1, 2, .set = set_shed_status, .dflt = "503",
     .usage = "shed_status 503|429 [retry_after=SECONDS]"},
    {"hash_balance_factor", 1, 1, .set = set_hash_balance, .dflt = "off",
     .usage = "hash_balance_factor PERCENT|off"},
    {"slow_start", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_upstream, slow_start_ms), .dflt = "0s",
     .usage = "slow_start DURATION"},
    {"discover", 2, 5, .multi = true, .set = set_discover,
     .usage = "discover NAME port=N|srv [region=NAME] [weight=N]"},
    {"resolver", 1, 8, .set = set_resolver,
     .usage = "resolver [ADDRESS[:PORT] ...] [valid=DURATION] [timeout=DURATION]"},
    {"max_servers", 1, 1, .set = conf_set_u32,
     .offset = offsetof(struct conf_upstream, max_servers), .min = 1, .max = 100000, .dflt = "256",
     .usage = "max_servers N"},
    {"leave_timeout", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_upstream, leave_timeout_ms), .max = 86400000, .dflt = "15m",
     .usage = "leave_timeout DURATION"},
    {"health_check", 0, 0, .block = true, .set = set_health_block,
     .usage = "health_check { path; interval; timeout; rise; fall; expect; ... }"},
    {"outlier", 0, 0, .block = true, .set = set_outlier_block,
     .usage = "outlier { consecutive_errors N; base_ejection DURATION; max_ejected PERCENT; }"},
};
const struct conf_table conf_table_upstream = {CONF_UPSTREAM, "upstream", upstream_dirs,
                                               ARRAY_SIZE(upstream_dirs)};

int conf_set_upstream(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                      const struct conf_directive *d);

int
conf_set_upstream(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                  const struct conf_directive *d)
{
    struct conf *c = obj;
    (void)d;
    if (!name_ok(st->args[0].s))
        return conf_err_arg(p, &st->args[0], "invalid upstream name \"%s\"", st->args[0].s);
    int dup = conf_upstream_find(c, st->args[0].s);
    if (dup >= 0)
        return conf_err_arg(p, &st->args[0], "duplicate upstream \"%s\" (first at %s:%u)",
                            st->args[0].s, c->upstreams[dup].pos.file, c->upstreams[dup].pos.line);
    struct conf_upstream *u = conf_push(p, (void **)&c->upstreams, &c->nupstreams, sizeof(*u));
    u->name = arena_strdup(p->a, st->args[0].s);
    u->pos = st->pos;
    u->index = c->nupstreams - 1;
    if (conf_defaults(p, &conf_table_upstream, u) < 0 ||
        conf_defaults(p, &conf_table_health, &u->health) < 0 ||
        conf_defaults(p, &conf_table_outlier, &u->outlier) < 0 ||
        conf_block_run(p, st, &conf_table_upstream, u) < 0)
        return -1;
    if (u->nservers == 0 && u->ndiscovers == 0)
        return conf_err_stmt(p, st, "upstream \"%s\" has no server (and no discover)", u->name);
    if (u->nservers > u->max_servers)
        return conf_err_stmt(p, st, "upstream \"%s\" has %u servers, more than max_servers %u",
                             u->name, u->nservers, u->max_servers);
    if (!u->resolver_valid_ms)
        u->resolver_valid_ms = 30000;
    if (!u->resolver_timeout_ms)
        u->resolver_timeout_ms = 1000;
    /* Discovered servers without a region join the default one. */
    for (uint32_t i = 0; i < u->ndiscovers; i++) {
        struct conf_discover *dv = &u->discovers[i];
        const char *rn = dv->region_name ? dv->region_name : "default";
        uint32_t r;
        for (r = 0; r < u->nregions; r++)
            if (strcmp(u->regions[r].name, rn) == 0)
                break;
        if (r == u->nregions) {
            if (dv->region_name)
                return err_at(p->e, dv->pos.file, (int)dv->pos.line, (int)dv->pos.col,
                              "discover \"%s\" names unknown region \"%s\"; declare it with "
                              "\"region %s weight=N;\" in upstream \"%s\"",
                              dv->name, rn, rn, u->name);
            struct conf_region *nr = conf_push(p, (void **)&u->regions, &u->nregions, sizeof(*nr));
            nr->name = arena_strdup(p->a, "default");
            nr->pos = u->pos;
            nr->weight = 100;
        }
        dv->region = (int32_t)r;
    }
    /* Resolve server regions; servers without one share an implicit region. */
    for (uint32_t i = 0; i < u->nservers; i++) {
        struct conf_server *s = &u->servers[i];
        const char *rn = s->region_name ? s->region_name : "default";
        uint32_t r;
        for (r = 0; r < u->nregions; r++)
            if (strcmp(u->regions[r].name, rn) == 0)
                break;
        if (r == u->nregions) {
            if (s->region_name)
                return err_at(p->e, s->pos.file, (int)s->pos.line, (int)s->pos.col,
                              "server \"%s\" names unknown region \"%s\"; declare it with "
                              "\"region %s weight=N;\" in upstream \"%s\"",
                              s->name, rn, rn, u->name);
            struct conf_region *nr = conf_push(p, (void **)&u->regions, &u->nregions, sizeof(*nr));
            nr->name = arena_strdup(p->a, "default");
            nr->pos = u->pos;
            nr->weight = 100;
        }
        s->region = (int32_t)r;
    }
    return 0;
}
