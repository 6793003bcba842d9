/* SPDX-License-Identifier: MIT */
/* The JSON writer of one snapshot of the counters (/stats, which the status
 * page polls); the metric table it walks lives in metrics.c. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/control.h>
#include <tether/gen.h>
#include <tether/ratelimit.h>
#include <tether/redis.h>
#include <tether/session.h>
#include <tether/session_load.h>
#include <tether/stats.h>
#include <tether/stats_http.h>
#include <tether/upstream.h>
#include <tether/worker.h>

#include "metrics_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A JSON string with quotes; control bytes as \u00XX. */
static void json_str(struct strbuf *o, const char *s);

/* Redis HA fields of the "redis" object: primary, role, state, sentinel,
 * queue, failovers. */
static void
redis_json(struct strbuf *o, const struct redis_stats *r)
{
    strbuf_lit(o, "\"mode\":");
    json_str(o, r->ha.mode);
    strbuf_lit(o, ",\"primary\":");
    json_str(o, r->ha.primary);
    strbuf_lit(o, ",\"role\":");
    json_str(o, r->ha.role);
    strbuf_lit(o, ",\"state\":");
    json_str(o, r->ha.state);
    strbuf_lit(o, ",\"sentinel\":");
    json_str(o, r->ha.sentinel);
    strbuf_printf(o,
                  ",\"sentinel_subscribed\":%s,\"epoch\":%llu,\"failovers\":%llu,"
                  "\"last_failover_ms\":%llu,\"queue\":%u,\"queue_size\":%u,\"queued\":%llu,"
                  "\"dropped\":%llu,\"replayed\":%llu,\"last_error\":",
                  r->ha.sentinel_subscribed ? "true" : "false", (unsigned long long)r->ha.epoch,
                  (unsigned long long)r->ha.failovers, (unsigned long long)r->ha.last_failover_ms,
                  r->q.len, r->q.cap, (unsigned long long)r->q.queued,
                  (unsigned long long)r->q.dropped, (unsigned long long)r->q.written);
    json_str(o, r->ha.last_error);
}

static void
json_str(struct strbuf *o, const char *s)
{
    strbuf_lit(o, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            strbuf_printf(o, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            strbuf_printf(o, "\\u%04x", c);
        else
            strbuf_add(o, s, 1);
    }
    strbuf_lit(o, "\"");
}

static void
json_key(struct strbuf *o, bool *first, const char *key)
{
    strbuf_printf(o, "%s\"%s\":", *first ? "" : ",", key);
    *first = false;
}

static void
json_traffic(struct strbuf *o, const struct snap_traffic *t, const void *key)
{
    struct snap_traffic d;
    double secs;
    strbuf_printf(o, "\"requests\":%llu,\"status\":{", (unsigned long long)t->requests);
    for (int c = 1; c <= 6; c++)
        strbuf_printf(o, "%s\"%s\":%llu", c > 1 ? "," : "", metrics_code_classes[c % 6],
                      (unsigned long long)t->status[c % 6]);
    strbuf_printf(o,
                  "},\"latency\":{\"count\":%llu,\"sum_us\":%llu,\"p50_us\":%llu,"
                  "\"p95_us\":%llu,\"p99_us\":%llu,\"buckets\":[",
                  (unsigned long long)t->count, (unsigned long long)t->sum_us,
                  (unsigned long long)stats_quantile_us(t->bucket, 0.50),
                  (unsigned long long)stats_quantile_us(t->bucket, 0.95),
                  (unsigned long long)stats_quantile_us(t->bucket, 0.99));
    for (int b = 0; b < STATS_LAT_BUCKETS; b++)
        strbuf_printf(o, "%s%llu", b ? "," : "", (unsigned long long)t->bucket[b]);
    /* The last seconds of traffic (the status page's rates), or null. */
    if (!recent_traffic(key, t, &d, &secs)) {
        strbuf_lit(o, "]},\"recent\":null");
        return;
    }
    strbuf_printf(o,
                  "]},\"recent\":{\"seconds\":%.3f,\"requests\":%llu,\"errors\":%llu,\"buckets\":[",
                  secs, (unsigned long long)d.requests, (unsigned long long)d.status[5]);
    for (int b = 0; b < STATS_LAT_BUCKETS; b++)
        strbuf_printf(o, "%s%llu", b ? "," : "", (unsigned long long)d.bucket[b]);
    strbuf_lit(o, "]}");
}

static void
json_server(struct strbuf *o, const struct snap_server *x)
{
    const struct server *sv = x->s;
    bool first = true;
    strbuf_lit(o, "{\"name\":");
    json_str(o, sv->conf->name);
    strbuf_lit(o, ",\"addr\":");
    json_str(o, sv->conf->addr_text);
    strbuf_printf(o,
                  ",\"state\":\"%s\",\"source\":\"%s\",\"leaving\":%s,\"health\":\"%s\","
                  "\"ejected_left_ms\":%llu,\"weight_conf\":%u,\"health_checks\":{\"ok\":%llu,"
                  "\"failed\":%llu},\"last_change_ms\":%llu,",
                  sv->leaving ? "leaving" : metrics_admin_states[x->admin],
                  srv_source_name(sv->source), sv->leaving ? "true" : "false",
                  x->health_up ? "up" : "down", (unsigned long long)x->ejected_left_ms,
                  sv->conf->weight, (unsigned long long)x->hc_ok, (unsigned long long)x->hc_failed,
                  (unsigned long long)x->last_change_ms);
    size_t m = 0;
    unsigned idx;
    for (const char *key; (key = metrics_json_next(SRC_SERVER, &m, &idx));) {
        json_key(o, &first, key);
        strbuf_printf(o, "%lld", (long long)x->v[idx]);
    }
    strbuf_lit(o, ",");
    json_traffic(o, &x->t, sv->rt);
    strbuf_lit(o, "}");
}

static void
json_upstreams(struct strbuf *o, const struct snap *s)
{
    static const char *const algos[] = {"round_robin", "least_conn", "random_two", "hash",
                                        "least_sessions"};
    strbuf_lit(o, ",\"upstreams\":[");
    for (uint32_t i = 0; i < s->nups; i++) {
        const struct snap_upstream *su = &s->ups[i];
        const struct upstream *u = su->u;
        bool first = true;
        strbuf_printf(o, "%s{\"name\":", i ? "," : "");
        json_str(o, u->conf->name);
        strbuf_printf(o, ",\"balance\":\"%s\",\"panic\":%s,\"tier_load\":{",
                      u->conf->balance < ARRAY_SIZE(algos) ? algos[u->conf->balance] : "?",
                      su->panic ? "true" : "false");
        for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++)
            if (su->tiers_used & (1u << t)) {
                char k[16];
                snprintf(k, sizeof(k), "%u", t);
                json_key(o, &first, k);
                strbuf_printf(o, "%.6g", su->tier_load[t]);
            }
        strbuf_lit(o, "},\"regions\":[");
        for (uint32_t r = 0; r < u->nregions; r++) {
            const struct snap_region *x = &s->regs[su->reg0 + r];
            strbuf_printf(o, "%s{\"name\":", r ? "," : "");
            json_str(o, x->r->conf->name);
            strbuf_printf(o,
                          ",\"weight\":%.0f,\"priority\":%u,\"share\":%.6g,\"servers_total\":%.0f,"
                          "\"servers_up\":%.0f,\"servers_usable\":%.0f,\"servers\":[",
                          x->weight, x->r->conf->priority, x->share, x->nservers, x->nup,
                          x->nusable);
            for (uint32_t k = 0; k < x->rm->nservers; k++) {
                if (k)
                    strbuf_lit(o, ",");
                json_server(o, &s->srvs[su->srv0 + x->rm->servers[k]]);
            }
            strbuf_lit(o, "]}");
        }
        strbuf_lit(o, "]}");
    }
    strbuf_lit(o, "]");
}

void
metrics_write_json(struct strbuf *o, const struct snap *s)
{
    bool first = true;
    strbuf_printf(o,
                  "{\"version\":\"%s\",\"generation\":%llu,\"time_ms\":%llu,\"start_ms\":%llu,"
                  "\"workers\":%u,\"reloads\":{\"ok\":%llu,\"failed\":%llu,\"last_ms\":%llu,"
                  "\"last_error\":",
                  PACKAGE_VERSION, (unsigned long long)(s->g ? s->g->id : 0),
                  (unsigned long long)s->wall_ms, (unsigned long long)ctl.started_ms, nworkers,
                  (unsigned long long)ctl.reloads_ok, (unsigned long long)ctl.reloads_failed,
                  (unsigned long long)ctl.last_reload_ms);
    json_str(o, ctl.last_reload_error);
    strbuf_lit(o, "},\"counters\":{");
    size_t m = 0;
    unsigned idx;
    for (const char *key; (key = metrics_json_next(SRC_GLOBAL, &m, &idx));) {
        json_key(o, &first, key);
        strbuf_printf(o, "%lld", (long long)s->gs[idx]);
    }
    strbuf_lit(o, "},\"affinity\":{");
    for (size_t i = 0; i < ARRAY_SIZE(metrics_affinity_outcomes); i++)
        strbuf_printf(o, "%s\"%s\":%lld", i ? "," : "", metrics_affinity_outcomes[i],
                      (long long)s->gs[GS_AFF_COOKIE + i]);
    strbuf_printf(o,
                  "},\"sessions\":{\"entries\":%llu,\"evictions\":%llu},"
                  "\"redis\":{\"configured\":%s,\"up\":%s,\"workers_up\":%u,\"errors\":%llu,"
                  "\"timeouts\":%llu,\"reconnects\":%llu,\"admin_messages\":%llu,"
                  "\"zone_fallbacks\":%llu,",
                  (unsigned long long)s->sessions, (unsigned long long)s->session_evictions,
                  s->redis.configured ? "true" : "false", s->redis.up ? "true" : "false",
                  s->redis.workers_up, (unsigned long long)s->redis.errors,
                  (unsigned long long)s->redis.timeouts, (unsigned long long)s->redis.reconnects,
                  (unsigned long long)s->redis.admin_received,
                  (unsigned long long)s->redis.zone_fallbacks);
    redis_json(o, &s->redis);
    strbuf_lit(o, "},\"latency_bounds_us\":[");
    for (int b = 0; b < STATS_LAT_BUCKETS - 1; b++)
        strbuf_printf(o, "%s%llu", b ? "," : "", (unsigned long long)stats_lat_bounds_us[b]);
    strbuf_lit(o, "]");
    int64_t dreq;
    double secs;
    if (recent_requests(s->gs[GS_REQUESTS], &dreq, &secs))
        strbuf_printf(o, ",\"recent\":{\"seconds\":%.3f,\"requests\":%lld}", secs, (long long)dreq);
    else
        strbuf_lit(o, ",\"recent\":null");
    json_upstreams(o, s);
    strbuf_lit(o, ",\"routes\":[");
    for (uint32_t i = 0; i < s->nroutes; i++) {
        strbuf_printf(o, "%s{\"route\":", i ? "," : "");
        json_str(o, s->routes[i].name);
        strbuf_lit(o, ",");
        json_traffic(o, &s->routes[i].t, s->routes[i].key);
        strbuf_lit(o, "}");
    }
    strbuf_lit(o, "],\"rate_limit_zones\":[");
    for (uint32_t i = 0; i < s->nzones; i++) {
        const struct snap_zone *z = &s->zones[i];
        strbuf_printf(o, "%s{\"zone\":", i ? "," : "");
        json_str(o, z->name);
        strbuf_printf(o,
                      ",\"global\":%s,\"rate\":%.6g,\"burst\":%u,\"allowed\":%llu,"
                      "\"limited\":%llu,\"delayed\":%llu,\"keys\":%llu,\"evictions\":%llu}",
                      z->global ? "true" : "false", z->rate, z->burst,
                      (unsigned long long)z->st.allowed, (unsigned long long)z->st.limited,
                      (unsigned long long)z->st.delayed, (unsigned long long)z->st.keys,
                      (unsigned long long)z->st.evictions);
    }
    strbuf_lit(o, "]}\n");
}
