/* SPDX-License-Identifier: MIT */
/* The admin commands: the table (whose usage strings make "help"), name
 * lookups with helpful errors, the show commands and the runtime changes. */
#include "config.h"

#include <tether/admin.h>
#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/control.h>
#include <tether/cpu_limit.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/membership.h>
#include <tether/redis.h>
#include <tether/session.h>
#include <tether/health_report.h>
#include <tether/session_load.h>
#include <tether/session_store.h>
#include <tether/stats.h>
#include <tether/worker.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WEIGHT_MAX       1000
#define SESSIONS_DEFAULT 100
#define SESSIONS_MAX     10000
#define NAMES_MAX        24 /* names listed in an error answer */

static void
out_json_str(struct admin_out *o, const char *s)
{
    char buf[1024];
    size_t n = json_escape(buf, sizeof(buf), s, strlen(s));
    admin_printf(o, "\"%.*s\"", (int)n, buf);
}

static int
cmd_help(struct admin_ctx *c, int argc, char **argv)
{
    size_t w = 0;
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < admin_ncmds; i++)
        w = MAX(w, strlen(admin_cmds[i].usage));
    admin_printf(c->out, "Commands (one per line; every answer ends with an empty line):\n");
    for (size_t i = 0; i < admin_ncmds; i++)
        admin_printf(c->out, "  %-*s  %s\n", (int)w, admin_cmds[i].usage, admin_cmds[i].help);
    return 0;
}

/* Name <i> of <n> in an "expected" list (the first NAMES_MAX are shown). */
static void
out_name(struct admin_out *o, uint32_t i, uint32_t n, const char *name)
{
    if (i < NAMES_MAX)
        admin_printf(o, "%s%s", i ? ", " : "", name);
    else if (i == NAMES_MAX)
        admin_printf(o, ", ... (%u in all)", n);
}

static struct upstream *
find_upstream(struct admin_ctx *c, const char *name, size_t len)
{
    struct gen *g = c->g;
    for (uint32_t i = 0; i < g->nupstreams; i++)
        if (strlen(g->upstreams[i].conf->name) == len &&
            memcmp(g->upstreams[i].conf->name, name, len) == 0)
            return &g->upstreams[i];
    admin_printf(c->out, "error: unknown upstream \"%.*s\"; upstreams: ", (int)len, name);
    for (uint32_t i = 0; i < g->nupstreams; i++)
        out_name(c->out, i, g->nupstreams, g->upstreams[i].conf->name);
    admin_printf(c->out, "\n");
    c->out->error = true;
    return NULL;
}

/* Resolve "UPSTREAM/SERVER" into <*s>, or "UPSTREAM/REGION" into <*r> (the
 * one of the two that is not NULL). Returns the upstream, or NULL with an
 * error answer that lists what exists. */
static struct upstream *
find_target(struct admin_ctx *c, const char *arg, struct server **s, struct region **r)
{
    const char *slash = strchr(arg, '/');
    const char *kind = s ? "server" : "region";
    struct upstream *u;
    if (!slash || slash == arg || !slash[1]) {
        admin_printf(c->out, "error: expected UPSTREAM/%s, got \"%s\"", s ? "SERVER" : "REGION",
                     arg);
        for (uint32_t i = 0; s && i < c->g->nupstreams; i++)
            if (upstream_server_by_name(&c->g->upstreams[i], arg))
                admin_printf(c->out, "; did you mean \"%s/%s\"?", c->g->upstreams[i].conf->name,
                             arg);
        admin_printf(c->out, "\n");
        c->out->error = true;
        return NULL;
    }
    if (!(u = find_upstream(c, arg, (size_t)(slash - arg))))
        return NULL;
    if (s ? (*s = upstream_server_by_name(u, slash + 1)) != NULL
          : (*r = upstream_region_by_name(u, slash + 1)) != NULL)
        return u;
    admin_printf(c->out, "error: unknown %s \"%s\"; %ss of %s: ", kind, arg, kind, u->conf->name);
    const struct members *m = upstream_members(u);
    for (uint32_t i = 0; s && i < m->nservers; i++)
        out_name(c->out, i, m->nservers, m->servers[i]->conf->name);
    for (uint32_t i = 0; r && i < u->nregions; i++)
        out_name(c->out, i, u->nregions, u->regions[i].conf->name);
    admin_printf(c->out, "\n");
    c->out->error = true;
    return NULL;
}

/* "N" in 0..WEIGHT_MAX, or "default" (-1: remove the override). */
static int
parse_weight(struct admin_ctx *c, const char *arg, int32_t *w)
{
    uint64_t v;
    if (strcmp(arg, "default") == 0) {
        *w = -1;
        return 0;
    }
    if (parse_u64(arg, strlen(arg), &v) < 0 || v > WEIGHT_MAX)
        return admin_error(c->out, "invalid weight \"%s\"; expected 0..%d or \"default\"", arg,
                           WEIGHT_MAX);
    *w = (int32_t)v;
    return 0;
}

static int
cmd_set_server_weight(struct admin_ctx *c, int argc, char **argv)
{
    (void)argc;
    struct server *s = NULL;
    int32_t w;
    if (!find_target(c, argv[-2], &s, NULL) || parse_weight(c, argv[0], &w) < 0)
        return -1;
    int32_t was = server_weight(s);
    int32_t old = atomic_exchange(&s->rt->weight_admin, w);
    c->changed = old != w;
    balance_rebuild(s->up, time_mono_ms());
    snprintf(c->note, sizeof(c->note), "%s/%s weight %d (was %d; configured %u%s)",
             s->up->conf->name, s->conf->name, server_weight(s), was, s->conf->weight,
             w < 0 ? "; override removed" : "");
    return 0;
}

static int
cmd_set_server_state(struct admin_ctx *c, int argc, char **argv)
{
    (void)argc;
    struct server *s = NULL;
    unsigned st;
    if (!find_target(c, argv[-2], &s, NULL))
        return -1;
    for (st = SRV_READY; st <= SRV_MAINT; st++)
        if (strcmp(argv[0], srv_admin_name(st)) == 0)
            break;
    if (st > SRV_MAINT)
        return admin_error(c->out, "invalid state \"%s\"; expected ready, drain or maint", argv[0]);
    unsigned old = atomic_exchange(&s->rt->admin, (uint8_t)st);
    session_load_admin_state(s->rt, st);
    c->changed = old != st;
    if (old != SRV_READY && st == SRV_READY)
        atomic_store(&s->rt->usable_since_ms, time_mono_ms()); /* slow start */
    balance_rebuild(s->up, time_mono_ms());
    snprintf(c->note, sizeof(c->note), "%s/%s state %s (was %s; %d active requests, %d tunnels)",
             s->up->conf->name, s->conf->name, argv[0], srv_admin_name(old),
             atomic_load(&s->rt->active), atomic_load(&s->rt->tunnels));
    return 0;
}

static int
cmd_set_server_max_sessions(struct admin_ctx *c, int argc, char **argv)
{
    (void)argc;
    struct server *s = NULL;
    uint64_t v = 0;
    int32_t m = -1;
    if (!find_target(c, argv[-2], &s, NULL))
        return -1;
    if (strcmp(argv[0], "default") != 0) {
        if (parse_u64(argv[0], strlen(argv[0]), &v) < 0 || v > HREP_MAX_SESSIONS)
            return admin_error(c->out, "invalid max_sessions \"%s\"; expected 0..%u or \"default\"",
                               argv[0], HREP_MAX_SESSIONS);
        m = (int32_t)v;
    }
    uint32_t was = server_capacity(s);
    int32_t old = atomic_exchange(&s->rt->max_admin, m);
    c->changed = old != m;
    snprintf(c->note, sizeof(c->note), "%s/%s max_sessions %u (was %u; %u sessions%s)",
             s->up->conf->name, s->conf->name, server_capacity(s), was, server_sessions(s),
             m < 0 ? "; override removed" : "");
    return 0;
}

static int
cmd_set_region_weight(struct admin_ctx *c, int argc, char **argv)
{
    (void)argc;
    struct region *r = NULL;
    struct upstream *u = find_target(c, argv[-2], NULL, &r);
    int32_t w;
    if (!u || parse_weight(c, argv[0], &w) < 0)
        return -1;
    int32_t was = region_weight(r);
    int32_t old = atomic_exchange(&r->rt->weight_admin, w);
    c->changed = old != w;
    balance_rebuild(u, time_mono_ms());
    snprintf(c->note, sizeof(c->note), "%s weight %d (was %d; configured %u%s)", argv[-2],
             region_weight(r), was, r->conf->weight, w < 0 ? "; override removed" : "");
    return 0;
}

/* "UPSTREAM/NAME" split into <up> and <name> (bounded copies). */
static int
split_target(struct admin_ctx *c, const char *arg, char *up, size_t upcap, char *name,
             size_t namecap)
{
    const char *slash = strchr(arg, '/');
    size_t ul = slash ? (size_t)(slash - arg) : 0;
    if (!slash || ul == 0 || !slash[1] || ul >= upcap || strlen(slash + 1) >= namecap ||
        strchr(slash + 1, '/'))
        return admin_error(c->out, "expected UPSTREAM/SERVER, got \"%s\"", arg);
    memcpy(up, arg, ul);
    up[ul] = '\0';
    strcpy(name, slash + 1);
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.' || *p == ':' || *p == '[' || *p == ']'))
            return admin_error(c->out,
                               "invalid server name \"%s\"; expected letters, digits, "
                               "'-', '_', '.', ':' or brackets (discovered [v6]:port)",
                               name);
    return 0;
}

static int
cmd_add_server(struct admin_ctx *c, int argc, char **argv)
{
    char up[128], name[128], region[128] = "";
    struct sock_addr a;
    struct err e = {{0}};
    uint64_t w = 1;
    if (split_target(c, argv[-1], up, sizeof(up), name, sizeof(name)) < 0)
        return -1;
    if (sock_addr_parse(&a, argv[0], 0, &e) < 0)
        return admin_error(c->out, "invalid address \"%s\": %s", argv[0], e.msg);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "weight=", 7) == 0) {
            if (parse_u64(argv[i] + 7, strlen(argv[i] + 7), &w) < 0 || w < 1 || w > WEIGHT_MAX)
                return admin_error(c->out, "invalid weight \"%s\"; expected 1..%d", argv[i] + 7,
                                   WEIGHT_MAX);
        } else if (strncmp(argv[i], "region=", 7) == 0 && argv[i][7] &&
                   strlen(argv[i] + 7) < sizeof(region)) {
            strcpy(region, argv[i] + 7);
        } else {
            return admin_error(c->out, "unexpected \"%s\"; expected weight=N or region=R", argv[i]);
        }
    }
    if (membership_add(up, name, &a, (uint32_t)w, region[0] ? region : NULL, SRV_SRC_ADMIN, &e) < 0)
        return admin_error(c->out, "%s", e.msg);
    c->changed = true;
    snprintf(c->note, sizeof(c->note), "%.64s/%.64s added at %.64s (weight %llu)", up, name,
             argv[0], (unsigned long long)w);
    return 0;
}

static int
cmd_del_server(struct admin_ctx *c, int argc, char **argv)
{
    char up[128], name[128];
    struct err e = {{0}};
    bool now = argc == 1 && strcmp(argv[0], "now") == 0;
    if (argc == 1 && !now)
        return admin_error(c->out, "unexpected \"%s\"; expected \"now\" or nothing", argv[0]);
    if (split_target(c, argv[-1], up, sizeof(up), name, sizeof(name)) < 0)
        return -1;
    if (membership_del(up, name, now, &e) < 0)
        return admin_error(c->out, "%s", e.msg);
    c->changed = true;
    snprintf(c->note, sizeof(c->note), "%.64s/%.64s %s", up, name,
             now ? "removed" : "leaving: no new sessions, pinned ones stay");
    return 0;
}

static int
cmd_upgrade(struct admin_ctx *c, int argc, char **argv)
{
    char msg[1024];
    /* Starting another file is for local operators only: over TCP, only the
     * executable this process was started from. */
    if (argc > 0 && strncmp(c->peer->who, "uid ", 4) != 0)
        return admin_error(c->out, "\"upgrade PATH\" is accepted on a Unix admin socket only");
    log_notice("admin (%s): upgrade%s%s", c->peer->who, argc ? " " : "", argc ? argv[0] : "");
    if (control_upgrade(argc ? argv[0] : NULL, msg, sizeof(msg)) < 0)
        return admin_error(c->out, "%s", msg);
    admin_printf(c->out, "%s\n", msg);
    return 0;
}

static int
cmd_reload(struct admin_ctx *c, int argc, char **argv)
{
    struct err e = {{0}};
    (void)argc;
    (void)argv;
    log_notice("admin (%s): reload", c->peer->who);
    if (control_reload(&e) < 0)
        return admin_error(c->out, "reload failed, still serving generation %llu: %s",
                           (unsigned long long)atomic_load(&gen_current)->id, e.msg);
    c->g = atomic_load(&gen_current);
    admin_printf(c->out, "reloaded: generation %llu from %s\n", (unsigned long long)c->g->id,
                 ctl.conf_path);
    return 0;
}

static int
cmd_quit(struct admin_ctx *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    c->quit = true;
    return 0;
}

static void
out_time(struct admin_out *o, const char *key, uint64_t wall_ms)
{
    char t[32];
    log_time_iso(t, sizeof(t), wall_ms);
    admin_printf(o, "%s: %s\n", key, t);
}

static int
cmd_show_info(struct admin_ctx *c, int argc, char **argv)
{
    struct admin_out *o = c->out;
    struct redis_stats rs;
    uint32_t nsrv = 0;
    (void)argc;
    (void)argv;
    for (uint32_t i = 0; i < c->g->nupstreams; i++)
        nsrv += upstream_members(&c->g->upstreams[i])->nservers;
    redis_stats_get(&rs);
    admin_printf(o, "version: %s\npid: %ld\n", PACKAGE_VERSION, (long)getpid());
    out_time(o, "started", ctl.started_ms);
    admin_printf(o, "uptime_s: %llu\n",
                 (unsigned long long)((time_wall_ms() - ctl.started_ms) / 1000));
    admin_printf(o, "config: %s\ngeneration: %llu\nconfig_sha256: %s\n",
                 ctl.conf_path ? ctl.conf_path : "-", (unsigned long long)c->g->id,
                 c->g->conf->hash);
    out_time(o, "generation_loaded", c->g->loaded_ms);
    admin_printf(o, "reloads_ok: %llu\nreloads_failed: %llu\n", (unsigned long long)ctl.reloads_ok,
                 (unsigned long long)ctl.reloads_failed);
    if (ctl.last_reload_error[0])
        admin_printf(o, "last_reload_error: %s\n", ctl.last_reload_error);
    admin_printf(o, "workers: %u\nworkers_from: %s\nconnections: %u\n", nworkers, cpu_limit_source,
                 atomic_load(&conns_open));
    admin_printf(o, "tunnels: %lld\nrequests: %lld\n", (long long)gstat_sum(GS_TUNNELS_ACTIVE),
                 (long long)gstat_sum(GS_REQUESTS));
    admin_printf(o, "upstreams: %u\nservers: %u\n", c->g->nupstreams, nsrv);
    admin_printf(o, "learned_sessions: %zu\n",
                 session_store_table() ? session_table_count(session_store_table()) : (size_t)0);
    if (c->g->conf->redis.enabled) /* the primary in use, else the one configured */
        admin_printf(o, "redis: %s %s\n",
                     rs.ha.primary[0]                 ? rs.ha.primary
                     : c->g->conf->redis.addr_text[0] ? c->g->conf->redis.addr_text
                                                      : "(no primary)",
                     rs.up ? "up" : "down");
    else
        admin_printf(o, "redis: off\n");
    admin_printf(o, "admin_clients: %u\n", admin_nclients());
    return 0;
}

/* The running generation's effective configuration, as tether -T prints it. */
static int
cmd_show_conf(struct admin_ctx *c, int argc, char **argv)
{
    const struct conf *conf = c->g->conf;
    (void)argc;
    (void)argv;
    admin_printf(c->out, "%.*s", (int)MIN(conf->text_len, (size_t)INT32_MAX), conf->text);
    return 0;
}

/* Redis: the primary, its role, sentinels, the outage queue and failovers. */
static int
cmd_show_redis(struct admin_ctx *c, int argc, char **argv)
{
    struct admin_out *o = c->out;
    struct redis_stats rs;
    const struct redis_ha_info *ha = &rs.ha;
    (void)argc;
    (void)argv;
    redis_stats_get(&rs);
    if (!rs.configured) {
        admin_printf(o, "redis: off\n");
        return 0;
    }
    admin_printf(o, "mode: %s\nprimary: %s\nrole: %s\nstate: %s\nepoch: %llu\n", ha->mode,
                 ha->primary[0] ? ha->primary : "-", ha->role[0] ? ha->role : "-", ha->state,
                 (unsigned long long)ha->epoch);
    if (ha->master[0])
        admin_printf(o, "master_name: %s\nsentinel: %s %s\n", ha->master, ha->sentinel,
                     ha->sentinel_subscribed ? "subscribed" : "not subscribed");
    admin_printf(o, "workers_up: %u/%u\nadmin_connection: %s\n", rs.workers_up, nworkers,
                 rs.up ? "up" : "down");
    admin_printf(o, "queue: %u/%u\nqueued_total: %llu\ndropped_total: %llu\nreplayed_total: %llu\n",
                 rs.q.len, rs.q.cap, (unsigned long long)rs.q.queued,
                 (unsigned long long)rs.q.dropped, (unsigned long long)rs.q.written);
    admin_printf(o, "failovers: %llu\n", (unsigned long long)ha->failovers);
    if (ha->last_failover_ms)
        out_time(o, "last_failover", ha->last_failover_ms);
    else
        admin_printf(o, "last_failover: -\n");
    admin_printf(o, "errors: %llu\nlast_error: %s\n", (unsigned long long)rs.errors,
                 ha->last_error[0] ? ha->last_error : "-");
    return 0;
}

/* Per-server state (and counters with <stat>) as one JSON object. */
static void
out_server_json(struct admin_out *o, const struct server *s, uint64_t now, bool stat,
                uint64_t pinned)
{
    const struct server_rt *rt = s->rt;
    uint64_t ej = atomic_load(&rt->ejected_until_ms);
    admin_printf(o, "{\"upstream\":");
    out_json_str(o, s->up->conf->name);
    admin_printf(o, ",\"server\":");
    out_json_str(o, s->conf->name);
    admin_printf(o, ",\"address\":");
    out_json_str(o, s->conf->addr_text);
    admin_printf(o, ",\"region\":");
    out_json_str(o, s->up->regions[s->region].conf->name);
    admin_printf(o, ",\"source\":\"%s\",\"leaving\":%s,\"pinned\":%llu", srv_source_name(s->source),
                 s->leaving ? "true" : "false", (unsigned long long)pinned);
    admin_printf(o,
                 ",\"state\":\"%s\",\"health\":\"%s\",\"weight\":%d,\"weight_config\":%u,"
                 "\"weight_override\":%s,\"active\":%d,\"tunnels\":%d,\"ejected_ms\":%llu,"
                 "\"sessions\":%u,\"capacity\":%u,\"reported_sessions\":%d,"
                 "\"max_sessions_override\":%d,\"reports_ok\":%llu,\"reports_bad\":%llu",
                 s->leaving ? "leaving" : srv_admin_name(atomic_load(&rt->admin)),
                 atomic_load(&rt->health) == HEALTH_UP ? "up" : "down", server_weight(s),
                 s->conf->weight, atomic_load(&rt->weight_admin) >= 0 ? "true" : "false",
                 atomic_load(&rt->active), atomic_load(&rt->tunnels),
                 (unsigned long long)(ej > now ? ej - now : 0), server_sessions(s),
                 server_capacity(s), atomic_load(&rt->rep_active), atomic_load(&rt->max_admin),
                 (unsigned long long)atomic_load(&rt->reports_ok),
                 (unsigned long long)atomic_load(&rt->reports_bad));
    if (stat) {
        struct traffic_counters t;
        memset(&t, 0, sizeof(t));
        traffic_sum(rt->t, &t);
        admin_printf(o, ",\"requests\":%llu,\"status\":{", (unsigned long long)t.requests);
        for (int i = 1; i <= 5; i++)
            admin_printf(o, "%s\"%dxx\":%llu", i > 1 ? "," : "", i,
                         (unsigned long long)t.status[i]);
        admin_printf(o,
                     "},\"bytes_in\":%llu,\"bytes_out\":%llu,\"connect_errors\":%llu,"
                     "\"timeouts\":%llu,\"resets\":%llu,\"retries\":%llu,\"redispatches\":%llu,"
                     "\"tunnels_total\":%llu,\"latency_p50_ms\":%.3f,\"latency_p99_ms\":%.3f",
                     (unsigned long long)t.bytes_in, (unsigned long long)t.bytes_out,
                     (unsigned long long)t.connect_errors, (unsigned long long)t.timeouts,
                     (unsigned long long)t.resets, (unsigned long long)t.retries,
                     (unsigned long long)t.redispatches, (unsigned long long)t.tunnels,
                     (double)stats_hist_quantile(&t.latency, 0.5) / 1000.0,
                     (double)stats_hist_quantile(&t.latency, 0.99) / 1000.0);
    }
    admin_printf(o, "}");
}

/* Optional trailing "json" and, for show servers, an upstream name. */
static int
show_args(struct admin_ctx *c, int argc, char **argv, bool allow_up, struct upstream **u,
          bool *json)
{
    *json = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "json") == 0 && !*json)
            *json = true;
        else if (allow_up && !*u && !*json && (*u = find_upstream(c, argv[i], strlen(argv[i]))))
            continue;
        else
            return c->out->error ? -1 : admin_error(c->out, "unexpected \"%s\"", argv[i]);
    }
    return 0;
}

static int
cmd_show_servers(struct admin_ctx *c, int argc, char **argv)
{
    struct upstream *only = NULL;
    bool json;
    uint64_t now = time_mono_ms();
    int n = 0;
    if (show_args(c, argc, argv, true, &only, &json) < 0)
        return -1;
    admin_printf(c->out, json ? "{\"servers\":["
                              : "# name address region state health weight "
                                "weight_config active tunnels ejected_ms sessions capacity "
                                "source pinned\n");
    for (uint32_t i = 0; i < c->g->nupstreams; i++) {
        struct upstream *u = &c->g->upstreams[i];
        const struct members *m = upstream_members(u);
        uint64_t *pinned = (!only || only == u) ? membership_pinned(m) : NULL;
        for (uint32_t j = 0; (!only || only == u) && j < m->nservers; j++) {
            struct server *s = m->servers[j];
            const struct server_rt *rt = s->rt;
            uint64_t ej = atomic_load(&rt->ejected_until_ms);
            if (json) {
                admin_printf(c->out, n++ ? "," : "");
                out_server_json(c->out, s, now, false, pinned ? pinned[j] : 0);
                continue;
            }
            char cap[16] = "-";
            if (server_capacity_known(s))
                snprintf(cap, sizeof(cap), "%u%s", server_capacity(s),
                         atomic_load(&rt->max_admin) >= 0 ? "*" : "");
            admin_printf(c->out, "%s/%s %s %s %s %s %d%s %u %d %d %llu %u %s %s %llu\n",
                         u->conf->name, s->conf->name, s->conf->addr_text,
                         u->regions[s->region].conf->name,
                         s->leaving ? "leaving" : srv_admin_name(atomic_load(&rt->admin)),
                         atomic_load(&rt->health) == HEALTH_UP ? "up" : "down", server_weight(s),
                         atomic_load(&rt->weight_admin) >= 0 ? "*" : "", s->conf->weight,
                         atomic_load(&rt->active), atomic_load(&rt->tunnels),
                         (unsigned long long)(ej > now ? ej - now : 0), server_sessions(s), cap,
                         srv_source_name(s->source), (unsigned long long)(pinned ? pinned[j] : 0));
        }
        free(pinned);
    }
    if (json)
        admin_printf(c->out, "]}\n");
    return 0;
}

static int
cmd_show_regions(struct admin_ctx *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    admin_printf(c->out, "# name priority weight weight_config servers usable share_pct\n");
    uint64_t now = time_mono_ms();
    for (uint32_t i = 0; i < c->g->nupstreams; i++) {
        struct upstream *u = &c->g->upstreams[i];
        struct lb_plan *p = atomic_load(&u->plan);
        const struct members *m = p->m;
        for (uint32_t r = 0; r < u->nregions; r++) {
            const struct region *reg = &u->regions[r];
            const struct region_members *rm = &m->regions[r];
            double share = 0;
            uint32_t usable = 0;
            for (uint32_t k = 0; p && k < p->nregions; k++)
                if (p->regions[k].region == r)
                    share = p->regions[k].share;
            for (uint32_t k = 0; k < rm->nservers; k++)
                usable += server_usable_new(m->servers[rm->servers[k]], now);
            admin_printf(c->out, "%s/%s %u %d%s %u %u %u %.1f\n", u->conf->name, reg->conf->name,
                         reg->conf->priority, region_weight(reg),
                         atomic_load(&reg->rt->weight_admin) >= 0 ? "*" : "", reg->conf->weight,
                         rm->nservers, usable, share * 100.0);
        }
    }
    return 0;
}

/* Process-wide counters by name (those without a name are not shown). */
static const char *const gs_names[GS__COUNT] = {
    [GS_CONN_ACCEPTED] = "connections_accepted",
    [GS_CONN_ACTIVE] = "connections_active",
    [GS_CONN_REJECTED] = "connections_rejected",
    [GS_REQUESTS] = "requests",
    [GS_BAD_REQUESTS] = "bad_requests",
    [GS_TUNNELS_ACTIVE] = "tunnels_active",
    [GS_TUNNELS_TOTAL] = "tunnels_total",
    [GS_TLS_HANDSHAKES] = "tls_handshakes",
    [GS_TLS_FAILURES] = "tls_failures",
    [GS_H2_CONNS] = "http2_connections",
    [GS_H2_STREAMS] = "http2_streams",
    [GS_H2_ABUSE] = "http2_abuse",
    [GS_REQUESTS_H2] = "requests_h2",
    [GS_AFF_COOKIE] = "affinity_cookie",
    [GS_AFF_HEADER] = "affinity_header",
    [GS_AFF_LEARNED] = "affinity_learned",
    [GS_AFF_HASH] = "affinity_hash",
    [GS_AFF_NEW] = "affinity_new",
    [GS_AFF_REDISPATCH] = "affinity_redispatch",
    [GS_LEARNED] = "sessions_learned",
    [GS_REDIS_ERRORS] = "redis_errors",
    [GS_RATE_LIMITED] = "rate_limited",
    [GS_CONN_LIMITED] = "connections_limited",
    [GS_RETRIES] = "retries",
    [GS_NO_SERVER] = "no_server",
    [GS_EJECTIONS] = "ejections",
};

static int
cmd_show_stat(struct admin_ctx *c, int argc, char **argv)
{
    struct upstream *unused = NULL;
    bool json;
    uint64_t now = time_mono_ms();
    int n = 0;
    if (show_args(c, argc, argv, false, &unused, &json) < 0)
        return -1;
    admin_printf(c->out, json ? "{\"process\":{" : "# process\n");
    for (int i = 0; i < GS__COUNT; i++) {
        if (!gs_names[i])
            continue;
        admin_printf(c->out, json ? "%s\"%s\":%lld" : "%.0s%s: %lld\n", n++ ? "," : "", gs_names[i],
                     (long long)gstat_sum((enum gstat)i));
    }
    admin_printf(c->out,
                 json ? "},\"servers\":["
                      : "# name requests 1xx 2xx 3xx 4xx 5xx bytes_in bytes_out "
                        "connect_errors timeouts resets retries redispatches p50_ms p99_ms\n");
    n = 0;
    for (uint32_t i = 0; i < c->g->nupstreams; i++) {
        struct upstream *u = &c->g->upstreams[i];
        const struct members *m = upstream_members(u);
        uint64_t *pinned = json ? membership_pinned(m) : NULL;
        for (uint32_t j = 0; j < m->nservers; j++) {
            struct traffic_counters t;
            if (json) {
                admin_printf(c->out, n++ ? "," : "");
                out_server_json(c->out, m->servers[j], now, true, pinned ? pinned[j] : 0);
                continue;
            }
            memset(&t, 0, sizeof(t));
            traffic_sum(m->servers[j]->rt->t, &t);
            admin_printf(c->out, "%s/%s %llu", u->conf->name, m->servers[j]->conf->name,
                         (unsigned long long)t.requests);
            for (int k = 1; k <= 5; k++)
                admin_printf(c->out, " %llu", (unsigned long long)t.status[k]);
            admin_printf(c->out, " %llu %llu %llu %llu %llu %llu %llu %.3f %.3f\n",
                         (unsigned long long)t.bytes_in, (unsigned long long)t.bytes_out,
                         (unsigned long long)t.connect_errors, (unsigned long long)t.timeouts,
                         (unsigned long long)t.resets, (unsigned long long)t.retries,
                         (unsigned long long)t.redispatches,
                         (double)stats_hist_quantile(&t.latency, 0.5) / 1000.0,
                         (double)stats_hist_quantile(&t.latency, 0.99) / 1000.0);
        }
        free(pinned);
    }
    if (json)
        admin_printf(c->out, "]}\n");
    return 0;
}

static int
cmd_show_sessions(struct admin_ctx *c, int argc, char **argv)
{
    uint64_t max = SESSIONS_DEFAULT, now = time_mono_ms();
    struct session_table *t = session_store_table();
    if (argc == 1 &&
        (parse_u64(argv[0], strlen(argv[0]), &max) < 0 || max < 1 || max > SESSIONS_MAX))
        return admin_error(c->out, "invalid count \"%s\"; expected 1..%d", argv[0], SESSIONS_MAX);
    size_t total = t ? session_table_count(t) : 0;
    struct session_entry *e = t ? malloc(max * sizeof(*e)) : NULL;
    if (t && !e)
        return admin_error(c->out, "out of memory");
    size_t n = t ? session_table_dump(t, now, e, max) : 0;
    admin_printf(c->out, "# %zu learned sessions, showing %zu\n# id server expires_in_s\n", total,
                 n);
    for (size_t i = 0; i < n; i++) {
        const struct server *s = NULL;
        for (uint32_t k = 0; !s && k < c->g->nupstreams; k++)
            s = upstream_server_by_id(&c->g->upstreams[k], e[i].server_id);
        /* An entry re-pinned from a cookie knows only the hash of its id. */
        if (e[i].id[0])
            admin_printf(c->out, "%s", e[i].id);
        else
            admin_printf(c->out, "#%016llx", (unsigned long long)e[i].key);
        if (s)
            admin_printf(c->out, " %s/%s", s->up->conf->name, s->conf->name);
        else /* a server no longer configured */
            admin_printf(c->out, " ?%016llx", (unsigned long long)e[i].server_id);
        admin_printf(c->out, " %llu\n", (unsigned long long)((e[i].expires_ms - now + 999) / 1000));
    }
    free(e);
    return 0;
}

const struct admin_cmd admin_cmds[] = {
    {.words = {"help"}, .fn = cmd_help, .usage = "help", .help = "list the commands"},
    {.words = {"show", "info"},
     .fn = cmd_show_info,
     .usage = "show info",
     .help = "process, configuration and totals"},
    {.words = {"show", "conf"},
     .fn = cmd_show_conf,
     .usage = "show conf",
     .help = "the running generation's effective configuration (as tether -T)"},
    {.words = {"show", "servers"},
     .fn = cmd_show_servers,
     .max = 2,
     .usage = "show servers [UPSTREAM] [json]",
     .help = "state, health, weight, active requests and tunnels of each server"},
    {.words = {"show", "regions"},
     .fn = cmd_show_regions,
     .usage = "show regions",
     .help = "weight, usable servers and share of new sessions of each region"},
    {.words = {"show", "stat"},
     .fn = cmd_show_stat,
     .max = 1,
     .usage = "show stat [json]",
     .help = "process counters and per-server traffic counters"},
    {.words = {"show", "redis"},
     .fn = cmd_show_redis,
     .usage = "show redis",
     .help = "Redis primary, role, sentinels, queue of writes and failovers"},
    {.words = {"show", "sessions"},
     .fn = cmd_show_sessions,
     .max = 1,
     .usage = "show sessions [N]",
     .help = "the first N (100) learned sessions and their servers"},
    {.words = {"set", "server", "*", "weight"},
     .fn = cmd_set_server_weight,
     .change = true,
     .min = 1,
     .max = 1,
     .usage = "set server UPSTREAM/SERVER weight N|default",
     .help = "weight 0..1000 for new sessions (default: back to the config)"},
    {.words = {"set", "server", "*", "state"},
     .fn = cmd_set_server_state,
     .change = true,
     .min = 1,
     .max = 1,
     .usage = "set server UPSTREAM/SERVER state ready|drain|maint",
     .help = "drain: no new sessions, pinned ones stay; maint: no traffic"},
    {.words = {"set", "server", "*", "max_sessions"},
     .fn = cmd_set_server_max_sessions,
     .change = true,
     .min = 1,
     .max = 1,
     .usage = "set server UPSTREAM/SERVER max_sessions N|default",
     .help = "session capacity (overrides the pod's report and the config)"},
    {.words = {"set", "region", "*", "weight"},
     .fn = cmd_set_region_weight,
     .change = true,
     .min = 1,
     .max = 1,
     .usage = "set region UPSTREAM/REGION weight N|default",
     .help = "region weight 0..1000 for new sessions"},
    {.words = {"add", "server", "*"},
     .fn = cmd_add_server,
     .change = true,
     .min = 1,
     .max = 3,
     .usage = "add server UPSTREAM/NAME ADDRESS:PORT [weight=N] [region=R]",
     .help = "a new server (unchecked until its first passing health check)"},
    {.words = {"del", "server", "*"},
     .fn = cmd_del_server,
     .change = true,
     .max = 1,
     .usage = "del server UPSTREAM/NAME [now]",
     .help = "the server leaves: pinned sessions stay up to leave_timeout; now: cut at once"},
    {.words = {"reload"},
     .fn = cmd_reload,
     .usage = "reload",
     .help = "reload the configuration file (as SIGHUP)"},
    {.words = {"upgrade"},
     .fn = cmd_upgrade,
     .max = 1,
     .usage = "upgrade [PATH]",
     .help = "binary upgrade: start the executable anew (as SIGUSR2), hand over, drain"},
    {.words = {"quit"}, .fn = cmd_quit, .usage = "quit", .help = "close this connection"},
};
const size_t admin_ncmds = ARRAY_SIZE(admin_cmds);
