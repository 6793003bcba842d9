/* SPDX-License-Identifier: MIT */
/* Every metric tether exports, declared once with its kind and help text, and
 * the Prometheus text format 0.0.4 writer (/metrics) of one snapshot of the
 * counters; metrics_json.c writes the same snapshot as JSON (/stats). */
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

enum metric_kind {
    MK_COUNTER = 0,
    MK_GAUGE,
    MK_HISTOGRAM,
};

struct metric_def {
    const char *name; /* the family name exported */
    uint8_t kind;     /* enum metric_kind */
    uint8_t src;      /* enum metric_src */
    uint8_t idx;      /* enum gstat or enum snap_sv for SRC_GLOBAL / SRC_SERVER */
    const char *json; /* key in /stats for SRC_GLOBAL and SRC_SERVER metrics */
    const char *help;
};

#define LBL_SRV "{upstream,server,region}"
#define LBL_REG "{upstream,region}"

/* Every metric once: id, name, kind, where a simple one's value comes from
 * (source, index, key in /stats) and help text, which lists the labels so the
 * exported page documents itself. One list makes both the enum and the table,
 * as twemproxy's nc_stats.h does. */
#define METRICS(X)                                                                                 \
    X(M_INFO, "tether_info", MK_GAUGE, SRC_CODE, 0, NULL,                                          \
      "Always 1; the version label says which tether runs.")                                       \
    X(M_START_TIME_SECONDS, "tether_start_time_seconds", MK_GAUGE, SRC_CODE, 0, NULL,              \
      "Process start, Unix time.")                                                                 \
    X(M_WORKERS, "tether_workers", MK_GAUGE, SRC_CODE, 0, NULL, "Worker threads.")                 \
    X(M_CONFIG_GENERATION, "tether_config_generation", MK_GAUGE, SRC_CODE, 0, NULL,                \
      "Id of the configuration generation now serving.")                                           \
    X(M_CONFIG_INFO, "tether_config_info", MK_GAUGE, SRC_CODE, 0, NULL,                            \
      "Always 1; {hash,generation}: SHA-256 of the effective configuration (tether -T) now "       \
      "serving.")                                                                                  \
    X(M_CONFIG_LAST_RELOAD_TIMESTAMP_SECONDS, "tether_config_last_reload_timestamp_seconds",       \
      MK_GAUGE, SRC_CODE, 0, NULL, "Unix time of the last reload attempt (0: none yet).")          \
    X(M_RELOADS, "tether_reloads_total", MK_COUNTER, SRC_CODE, 0, NULL,                            \
      "Configuration reloads {result=ok|failed}.")                                                 \
    X(M_CONNECTIONS_ACTIVE, "tether_connections_active", MK_GAUGE, SRC_GLOBAL, GS_CONN_ACTIVE,     \
      "connections_active", "Client connections open (tunnels included).")                         \
    X(M_CONNECTIONS, "tether_connections_total", MK_COUNTER, SRC_GLOBAL, GS_CONN_ACCEPTED,         \
      "connections_total", "Client connections accepted.")                                         \
    X(M_CONNECTIONS_REJECTED, "tether_connections_rejected_total", MK_COUNTER, SRC_GLOBAL,         \
      GS_CONN_REJECTED, "connections_rejected", "Client connections refused at max_connections.")  \
    X(M_CONNECTIONS_LIMITED, "tether_connections_limited_total", MK_COUNTER, SRC_GLOBAL,           \
      GS_CONN_LIMITED, "connections_limited", "Client connections refused by limit_conn.")         \
    X(M_TUNNELS_ACTIVE, "tether_tunnels_active", MK_GAUGE, SRC_GLOBAL, GS_TUNNELS_ACTIVE,          \
      "tunnels_active", "WebSocket tunnels open.")                                                 \
    X(M_TUNNELS, "tether_tunnels_total", MK_COUNTER, SRC_GLOBAL, GS_TUNNELS_TOTAL,                 \
      "tunnels_total", "WebSocket tunnels opened.")                                                \
    X(M_TLS_HANDSHAKES, "tether_tls_handshakes_total", MK_COUNTER, SRC_GLOBAL, GS_TLS_HANDSHAKES,  \
      "tls_handshakes", "Completed TLS handshakes with clients.")                                  \
    X(M_TLS_RESUMED, "tether_tls_resumed_total", MK_COUNTER, SRC_GLOBAL, GS_TLS_RESUMED,           \
      "tls_resumed", "TLS handshakes that resumed a session.")                                     \
    X(M_TLS_HANDSHAKE_FAILURES, "tether_tls_handshake_failures_total", MK_COUNTER, SRC_GLOBAL,     \
      GS_TLS_FAILURES, "tls_failures", "Failed TLS handshakes with clients.")                      \
    X(M_REQUESTS_RECEIVED, "tether_requests_received_total", MK_COUNTER, SRC_GLOBAL, GS_REQUESTS,  \
      "requests", "Requests answered, routed or not.")                                             \
    X(M_BAD_REQUESTS, "tether_bad_requests_total", MK_COUNTER, SRC_GLOBAL, GS_BAD_REQUESTS,        \
      "bad_requests", "Malformed requests rejected with 400/431.")                                 \
    X(M_REQUESTS_RATE_LIMITED, "tether_requests_rate_limited_total", MK_COUNTER, SRC_GLOBAL,       \
      GS_RATE_LIMITED, "rate_limited", "Requests refused by a rate-limit zone.")                   \
    X(M_NO_SERVER, "tether_no_server_total", MK_COUNTER, SRC_GLOBAL, GS_NO_SERVER, "no_server",    \
      "Requests with no usable server.")                                                           \
    X(M_UPSTREAM_RETRIES, "tether_upstream_retries_total", MK_COUNTER, SRC_GLOBAL, GS_RETRIES,     \
      "retries", "Requests retried on another server.")                                            \
    X(M_RETRY_TIMEOUTS, "tether_upstream_retry_timeouts_total", MK_COUNTER, SRC_GLOBAL,            \
      GS_RETRY_TIMEOUTS, "retry_timeouts",                                                         \
      "Requests resent to another server after per_try_timeout passed with no answer.")            \
    X(M_RETRY_BUDGET_EXHAUSTED, "tether_retry_budget_exhausted_total", MK_COUNTER, SRC_GLOBAL,     \
      GS_RETRY_BUDGET_EXHAUSTED, "retry_budget_exhausted",                                         \
      "Retries skipped because the retry budget was spent.")                                       \
    X(M_EJECTIONS, "tether_ejections_total", MK_COUNTER, SRC_GLOBAL, GS_EJECTIONS, "ejections",    \
      "Servers ejected by outlier detection.")                                                     \
    X(M_H2_CONNECTIONS, "tether_http2_connections_total", MK_COUNTER, SRC_GLOBAL, GS_H2_CONNS,     \
      "http2_connections", "Client connections that speak HTTP/2.")                                \
    X(M_H2_STREAMS, "tether_http2_streams_total", MK_COUNTER, SRC_GLOBAL, GS_H2_STREAMS,           \
      "http2_streams", "HTTP/2 streams carried as requests.")                                      \
    X(M_H2_ABUSE, "tether_http2_connections_ended_total", MK_COUNTER, SRC_GLOBAL, GS_H2_ABUSE,     \
      "http2_abuse", "HTTP/2 connections ended by a flood guard or malformed frames.")             \
    X(M_REQUESTS_PROTOCOL, "tether_requests_protocol_total", MK_COUNTER, SRC_CODE, 0, NULL,        \
      "Requests by the client's protocol {protocol=http/1.1|h2}.")                                 \
    X(M_AFFINITY, "tether_affinity_total", MK_COUNTER, SRC_CODE, 0, NULL,                          \
      "How requests found their server {outcome=cookie|header|learned|hash|new|redispatch|"        \
      "cookie_invalid|cookie_expired|cookie_unknown}.")                                            \
    X(M_SESSIONS_LEARNED, "tether_sessions_learned_total", MK_COUNTER, SRC_GLOBAL, GS_LEARNED,     \
      "sessions_learned", "Session ids learned from responses.")                                   \
    X(M_SESSION_TABLE_ENTRIES, "tether_session_table_entries", MK_GAUGE, SRC_CODE, 0, NULL,        \
      "Entries in the learned-session table.")                                                     \
    X(M_SESSION_TABLE_EVICTIONS, "tether_session_table_evictions_total", MK_COUNTER, SRC_CODE, 0,  \
      NULL, "Learned sessions evicted to stay within the table size.")                             \
    X(M_REDIS_CONFIGURED, "tether_redis_configured", MK_GAUGE, SRC_CODE, 0, NULL,                  \
      "1 when a redis block is configured.")                                                       \
    X(M_REDIS_UP, "tether_redis_up", MK_GAUGE, SRC_CODE, 0, NULL,                                  \
      "1 when the control thread's Redis connection is up.")                                       \
    X(M_REDIS_WORKERS_UP, "tether_redis_worker_connections_up", MK_GAUGE, SRC_CODE, 0, NULL,       \
      "Worker threads whose Redis connection is up.")                                              \
    X(M_REDIS_ERRORS, "tether_redis_errors_total", MK_COUNTER, SRC_CODE, 0, NULL,                  \
      "Failed Redis commands and connects.")                                                       \
    X(M_REDIS_TIMEOUTS, "tether_redis_timeouts_total", MK_COUNTER, SRC_CODE, 0, NULL,              \
      "Redis operations that timed out.")                                                          \
    X(M_REDIS_RECONNECTS, "tether_redis_reconnects_total", MK_COUNTER, SRC_CODE, 0, NULL,          \
      "Redis reconnects.")                                                                         \
    X(M_REDIS_ADMIN_MESSAGES, "tether_redis_admin_messages_total", MK_COUNTER, SRC_CODE, 0, NULL,  \
      "Admin changes received from other replicas through Redis.")                                 \
    X(M_REDIS_FAILOVERS, "tether_redis_failovers_total", MK_COUNTER, SRC_CODE, 0, NULL,            \
      "Changes of the Redis primary (or a failover signal on the same one).")                      \
    X(M_REDIS_QUEUE_LEN, "tether_redis_queue_length", MK_GAUGE, SRC_CODE, 0, NULL,                 \
      "Writes waiting for a Redis primary.")                                                       \
    X(M_REDIS_QUEUED, "tether_redis_writes_queued_total", MK_COUNTER, SRC_CODE, 0, NULL,           \
      "Writes (learned sessions, admin changes) queued while Redis was unavailable.")              \
    X(M_REDIS_DROPPED, "tether_redis_writes_dropped_total", MK_COUNTER, SRC_CODE, 0, NULL,         \
      "Queued writes dropped because the queue was full (queue_size).")                            \
    X(M_REDIS_REPLAYED, "tether_redis_writes_replayed_total", MK_COUNTER, SRC_CODE, 0, NULL,       \
      "Queued writes written to the primary once it was found.")                                   \
    X(M_REDIS_FALLBACKS, "tether_rate_limit_redis_fallbacks_total", MK_COUNTER, SRC_CODE, 0, NULL, \
      "Global-zone decisions made without Redis (its on_redis_error policy).")                     \
    X(M_REDIS_MALFORMED, "tether_redis_malformed_replies_total", MK_COUNTER, SRC_CODE, 0, NULL,    \
      "Redis replies refused for their shape (the connection is dropped and reopened).")           \
    X(M_RATE_LIMITED, "tether_rate_limited_total", MK_COUNTER, SRC_CODE, 0, NULL,                  \
      "Requests over a zone's limit {zone}.")                                                      \
    X(M_RATE_LIMIT_ALLOWED, "tether_rate_limit_allowed_total", MK_COUNTER, SRC_CODE, 0, NULL,      \
      "Requests a zone admitted {zone}.")                                                          \
    X(M_RATE_LIMIT_DELAYED, "tether_rate_limit_delayed_total", MK_COUNTER, SRC_CODE, 0, NULL,      \
      "Admitted requests a zone paced (burst without nodelay) {zone}.")                            \
    X(M_RATE_LIMIT_KEYS, "tether_rate_limit_keys", MK_GAUGE, SRC_CODE, 0, NULL,                    \
      "Keys a zone tracks {zone}.")                                                                \
    X(M_RATE_LIMIT_EVICTIONS, "tether_rate_limit_evictions_total", MK_COUNTER, SRC_CODE, 0, NULL,  \
      "Keys a zone dropped to stay within its size {zone}.")                                       \
    X(M_ROUTE_REQUESTS, "tether_route_requests_total", MK_COUNTER, SRC_CODE, 0, NULL,              \
      "Requests per route and status class {route,code_class=1xx..5xx|other}.")                    \
    X(M_ROUTE_REQUEST_DURATION_SECONDS, "tether_route_request_duration_seconds", MK_HISTOGRAM,     \
      SRC_CODE, 0, NULL, "Request time per route, first byte in to last byte out {route}.")        \
    X(M_UPSTREAM_PANIC, "tether_upstream_panic", MK_GAUGE, SRC_CODE, 0, NULL,                      \
      "1 when the upstream is below its panic threshold (health ignored) {upstream}.")             \
    X(M_UPSTREAM_TIER_LOAD, "tether_upstream_tier_load", MK_GAUGE, SRC_CODE, 0, NULL,              \
      "Share of new sessions each priority tier takes {upstream,tier}.")                           \
    X(M_REGION_WEIGHT, "tether_region_weight", MK_GAUGE, SRC_CODE, 0, NULL,                        \
      "Effective region weight " LBL_REG ".")                                                      \
    X(M_REGION_PRIORITY, "tether_region_priority", MK_GAUGE, SRC_CODE, 0, NULL,                    \
      "Region tier, 0 = primary " LBL_REG ".")                                                     \
    X(M_REGION_SHARE, "tether_region_share", MK_GAUGE, SRC_CODE, 0, NULL,                          \
      "Fraction of new sessions the region takes now " LBL_REG ".")                                \
    X(M_REGION_SERVERS, "tether_region_servers", MK_GAUGE, SRC_CODE, 0, NULL,                      \
      "Servers in the region " LBL_REG ".")                                                        \
    X(M_REGION_SERVERS_UP, "tether_region_servers_up", MK_GAUGE, SRC_CODE, 0, NULL,                \
      "Servers passing health checks and not ejected " LBL_REG ".")                                \
    X(M_REGION_SERVERS_USABLE, "tether_region_servers_usable", MK_GAUGE, SRC_CODE, 0, NULL,        \
      "Servers taking new sessions now (up, ready, weight > 0) " LBL_REG ".")                      \
    X(M_REGION_SESSIONS, "tether_region_sessions", MK_GAUGE, SRC_CODE, 0, NULL,                    \
      "Voice sessions on the region's servers " LBL_REG ".")                                       \
    X(M_REGION_SESSION_CAPACITY, "tether_region_session_capacity", MK_GAUGE, SRC_CODE, 0, NULL,    \
      "Session capacity of the region's servers (those with a limit) " LBL_REG ".")                \
    X(M_SESSIONS_SHED, "tether_sessions_shed_total", MK_COUNTER, SRC_CODE, 0, NULL,                \
      "New sessions refused because every server was full {upstream}.")                            \
    X(M_SESSIONS_SPILLED, "tether_sessions_spilled_total", MK_COUNTER, SRC_CODE, 0, NULL,          \
      "New sessions placed outside their full region {upstream,from_region,to_region}.")           \
    X(M_REQUESTS, "tether_requests_total", MK_COUNTER, SRC_CODE, 0, NULL,                          \
      "Requests finished per server and status class " LBL_SRV " + {code_class}.")                 \
    X(M_REQUEST_DURATION_SECONDS, "tether_request_duration_seconds", MK_HISTOGRAM, SRC_CODE, 0,    \
      NULL, "Request time per server, first byte in to last byte out " LBL_SRV ".")                \
    X(M_REQUEST_BYTES, "tether_request_bytes_total", MK_COUNTER, SRC_SERVER, SV_BYTES_IN,          \
      "bytes_in", "Request bytes received from clients " LBL_SRV ".")                              \
    X(M_RESPONSE_BYTES, "tether_response_bytes_total", MK_COUNTER, SRC_SERVER, SV_BYTES_OUT,       \
      "bytes_out", "Response bytes sent to clients " LBL_SRV ".")                                  \
    X(M_CONNECT_ERRORS, "tether_connect_errors_total", MK_COUNTER, SRC_SERVER, SV_CONNECT_ERRORS,  \
      "connect_errors", "Failed connects to the server " LBL_SRV ".")                              \
    X(M_RESPONSE_TIMEOUTS, "tether_response_timeouts_total", MK_COUNTER, SRC_SERVER, SV_TIMEOUTS,  \
      "timeouts", "Responses that timed out " LBL_SRV ".")                                         \
    X(M_SERVER_RESETS, "tether_server_resets_total", MK_COUNTER, SRC_SERVER, SV_RESETS, "resets",  \
      "Server resets or closes before the response ended " LBL_SRV ".")                            \
    X(M_SERVER_RETRIES, "tether_server_retries_total", MK_COUNTER, SRC_SERVER, SV_RETRIES,         \
      "retries", "Requests retried away from the server " LBL_SRV ".")                             \
    X(M_REDISPATCHES, "tether_redispatches_total", MK_COUNTER, SRC_SERVER, SV_REDISPATCHES,        \
      "redispatches", "Pinned sessions moved away from the server " LBL_SRV ".")                   \
    X(M_SERVER_TUNNELS, "tether_server_tunnels_total", MK_COUNTER, SRC_SERVER, SV_TUNNELS_TOTAL,   \
      "tunnels_total", "WebSocket tunnels opened to the server " LBL_SRV ".")                      \
    X(M_SERVER_UP, "tether_server_up", MK_GAUGE, SRC_SERVER, SV_UP, "up",                          \
      "1 when health checks pass and the server is not ejected " LBL_SRV ".")                      \
    X(M_SERVER_EJECTED, "tether_server_ejected", MK_GAUGE, SRC_SERVER, SV_EJECTED, "ejected",      \
      "1 while outlier detection ejects the server " LBL_SRV ".")                                  \
    X(M_SERVER_STATE, "tether_server_state", MK_GAUGE, SRC_CODE, 0, NULL,                          \
      "Admin state, 1 for the current one " LBL_SRV " + {state=ready|drain|maint}.")               \
    X(M_SERVER_WEIGHT, "tether_server_weight", MK_GAUGE, SRC_SERVER, SV_WEIGHT, "weight",          \
      "Effective server weight " LBL_SRV ".")                                                      \
    X(M_SERVER_ACTIVE_REQUESTS, "tether_server_active_requests", MK_GAUGE, SRC_SERVER, SV_ACTIVE,  \
      "active", "Requests in flight to the server " LBL_SRV ".")                                   \
    X(M_SERVER_ACTIVE_TUNNELS, "tether_server_active_tunnels", MK_GAUGE, SRC_SERVER, SV_TUNNELS,   \
      "tunnels", "WebSocket tunnels open to the server " LBL_SRV ".")                              \
    X(M_SERVER_SESSIONS, "tether_server_sessions", MK_GAUGE, SRC_SERVER, SV_SESSIONS, "sessions",  \
      "Voice sessions on the server: its last report plus sessions placed since " LBL_SRV ".")     \
    X(M_SERVER_SESSION_CAPACITY, "tether_server_session_capacity", MK_GAUGE, SRC_SERVER,           \
      SV_CAPACITY, "capacity", "Session capacity of the server, 0 = no limit " LBL_SRV ".")        \
    X(M_HEALTH_CHECKS, "tether_health_checks_total", MK_COUNTER, SRC_CODE, 0, NULL,                \
      "Active health checks " LBL_SRV " + {result=ok|failed}.")                                    \
    X(M_HEALTH_TRANSITIONS, "tether_health_transitions_total", MK_COUNTER, SRC_SERVER,             \
      SV_TRANSITIONS, "transitions", "Health changes up<->down " LBL_SRV ".")                      \
    X(M_HEALTH_CHECK_DURATION_SECONDS, "tether_health_check_duration_seconds", MK_GAUGE,           \
      SRC_SERVER, SV_HC_MS, "hc_last_ms", "Duration of the last health check " LBL_SRV ".")        \
    X(M_HEALTH_CHECK_STATUS, "tether_health_check_status", MK_GAUGE, SRC_SERVER, SV_HC_STATUS,     \
      "hc_last_status", "HTTP status of the last health check, 0 for no answer " LBL_SRV ".")

/* (clang-format would indent M__COUNT as a continuation of the list macro.) */
/* clang-format off */
enum metric_id {
#define METRIC_ENUM(id, ...) id,
    METRICS(METRIC_ENUM)
#undef METRIC_ENUM
    M__COUNT
};
/* clang-format on */

static const struct metric_def defs[M__COUNT] = {
#define METRIC_DEF(id, name, kind, src, idx, json, help) [id] = {name, kind, src, idx, json, help},
    METRICS(METRIC_DEF)
#undef METRIC_DEF
};

const char *const metrics_affinity_outcomes[METRICS_AFF_OUTCOMES] = {
    "cookie",     "header",         "learned",        "hash",           "new",
    "redispatch", "cookie_invalid", "cookie_expired", "cookie_unknown",
};
/* GS_AFF_COOKIE .. GS_AFF_COOKIE_UNKNOWN are consecutive, in the order above. */
_Static_assert(GS_AFF_COOKIE_UNKNOWN - GS_AFF_COOKIE + 1 == ARRAY_SIZE(metrics_affinity_outcomes),
               "affinity outcomes match enum gstat");

const char *const metrics_code_classes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
const char *const metrics_admin_states[3] = {"ready", "drain", "maint"};

const char *
metrics_json_next(enum metric_src src, size_t *pos, unsigned *idx)
{
    for (; *pos < ARRAY_SIZE(defs); (*pos)++)
        if (defs[*pos].src == src) {
            *idx = defs[*pos].idx;
            return defs[(*pos)++].json;
        }
    return NULL;
}

/* ---- Prometheus text format ---- */

void
prom_esc(struct strbuf *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            strbuf_lit(o, "\\\\");
        else if (*s == '"')
            strbuf_lit(o, "\\\"");
        else if (*s == '\n')
            strbuf_lit(o, "\\n");
        else
            strbuf_add(o, s, 1);
    }
}

/* The writer's state: label sets are escaped once per object into one buffer. */
struct prom {
    struct strbuf *o;
    const struct snap *s;
    struct strbuf lab;           /* NUL-terminated label sets, back to back */
    size_t *off;                 /* label set offsets: upstreams, regions, servers, routes */
    uint32_t reg0, srv0, route0; /* where each kind starts in off[] */
    bool sessions_pass;          /* prom_sessions: writing spill (true) or shed counters */
};

static void
lab_add(struct prom *p, uint32_t i, const char *k1, const char *v1, const char *k2, const char *v2,
        const char *k3, const char *v3)
{
    const char *kv[] = {k1, v1, k2, v2, k3, v3};
    p->off[i] = p->lab.len;
    for (int k = 0; k < 6 && kv[k]; k += 2) {
        strbuf_printf(&p->lab, "%s%s=\"", k ? "," : "", kv[k]);
        prom_esc(&p->lab, kv[k + 1]);
        strbuf_lit(&p->lab, "\"");
    }
    strbuf_add(&p->lab, "", 1); /* the NUL ending the set */
}

static int
prom_labels(struct prom *p)
{
    const struct snap *s = p->s;
    uint32_t i = 0;
    p->off = calloc(s->nups + s->nregs + s->nsrvs + s->nroutes + 1, sizeof(*p->off));
    if (!p->off)
        return -1;
    p->reg0 = s->nups;
    p->srv0 = p->reg0 + s->nregs;
    p->route0 = p->srv0 + s->nsrvs;
    for (uint32_t k = 0; k < s->nups; k++)
        lab_add(p, i++, "upstream", s->ups[k].u->conf->name, NULL, NULL, NULL, NULL);
    for (uint32_t k = 0; k < s->nregs; k++)
        lab_add(p, i++, "upstream", s->regs[k].u->conf->name, "region", s->regs[k].r->conf->name,
                NULL, NULL);
    for (uint32_t k = 0; k < s->nsrvs; k++) {
        const struct server *sv = s->srvs[k].s;
        lab_add(p, i++, "upstream", sv->up->conf->name, "server", sv->conf->name, "region",
                sv->up->regions[sv->region].conf->name);
    }
    for (uint32_t k = 0; k < s->nroutes; k++)
        lab_add(p, i++, "route", s->routes[k].name, NULL, NULL, NULL, NULL);
    return p->lab.oom ? -1 : 0;
}

static const char *
lab(const struct prom *p, uint32_t i)
{
    return p->lab.p + p->off[i];
}

static void
fam(struct prom *p, const struct metric_def *d)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    strbuf_printf(p->o, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, kinds[d->kind]);
}

/* NAME[SUFFIX]{LABELS[,EXTRA]} (without the value); both label parts escaped. */
static void
sample_head(struct prom *p, const struct metric_def *d, const char *suffix, const char *labels,
            const char *extra)
{
    bool l = labels && *labels, x = extra && *extra;
    strbuf_printf(p->o, "%s%s", d->name, suffix);
    if (l || x)
        strbuf_printf(p->o, "{%s%s%s}", l ? labels : "", l && x ? "," : "", x ? extra : "");
}

static void
sample_i(struct prom *p, const struct metric_def *d, const char *labels, const char *extra,
         int64_t v)
{
    sample_head(p, d, "", labels, extra);
    strbuf_printf(p->o, " %lld\n", (long long)v);
}

static void
sample_f(struct prom *p, const struct metric_def *d, const char *labels, const char *extra,
         double v)
{
    sample_head(p, d, "", labels, extra);
    strbuf_printf(p->o, " %.15g\n", v);
}

static void
histogram(struct prom *p, const struct metric_def *d, const char *labels,
          const struct snap_traffic *t)
{
    uint64_t cum = 0;
    char le[48];
    for (int b = 0; b < STATS_LAT_BUCKETS; b++) {
        cum += t->bucket[b];
        if (b < STATS_LAT_BUCKETS - 1)
            snprintf(le, sizeof(le), "le=\"%g\"", (double)stats_lat_bounds_us[b] / 1e6);
        else
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        sample_head(p, d, "_bucket", labels, le);
        strbuf_printf(p->o, " %llu\n", (unsigned long long)cum);
    }
    sample_head(p, d, "_sum", labels, NULL);
    strbuf_printf(p->o, " %.6f\n", (double)t->sum_us / 1e6);
    sample_head(p, d, "_count", labels, NULL);
    strbuf_printf(p->o, " %llu\n", (unsigned long long)t->count);
}

/* A family whose samples are the status classes of each object's traffic. */
static void
code_classes_fam(struct prom *p, enum metric_id id, uint32_t first, uint32_t n,
                 const struct snap_traffic *(*get)(const struct snap *, uint32_t))
{
    const struct metric_def *d = &defs[id];
    fam(p, d);
    for (uint32_t i = 0; i < n; i++)
        for (int c = 1; c <= 6; c++) {
            char x[32];
            snprintf(x, sizeof(x), "code_class=\"%s\"", metrics_code_classes[c % 6]);
            sample_i(p, d, lab(p, first + i), x, (int64_t)get(p->s, i)->status[c % 6]);
        }
}

static const struct snap_traffic *
route_traffic(const struct snap *s, uint32_t i)
{
    return &s->routes[i].t;
}

static const struct snap_traffic *
server_traffic(const struct snap *s, uint32_t i)
{
    return &s->srvs[i].t;
}

static void
prom_process(struct prom *p)
{
    const struct snap *s = p->s;
    const struct metric_def *d = &defs[M_INFO];
    fam(p, d);
    sample_i(p, d, NULL, "version=\"" PACKAGE_VERSION "\"", 1);
    fam(p, d = &defs[M_START_TIME_SECONDS]);
    sample_f(p, d, NULL, NULL, (double)ctl.started_ms / 1e3);
    fam(p, d = &defs[M_WORKERS]);
    sample_i(p, d, NULL, NULL, nworkers);
    fam(p, d = &defs[M_CONFIG_GENERATION]);
    sample_i(p, d, NULL, NULL, s->g ? (int64_t)s->g->id : 0);
    if (s->g) {
        char lbl[128];
        snprintf(lbl, sizeof(lbl), "hash=\"%s\",generation=\"%llu\"", s->g->conf->hash,
                 (unsigned long long)s->g->id);
        fam(p, d = &defs[M_CONFIG_INFO]);
        sample_i(p, d, NULL, lbl, 1);
    }
    fam(p, d = &defs[M_CONFIG_LAST_RELOAD_TIMESTAMP_SECONDS]);
    sample_f(p, d, NULL, NULL, (double)ctl.last_reload_ms / 1e3);
    fam(p, d = &defs[M_RELOADS]);
    sample_i(p, d, NULL, "result=\"ok\"", (int64_t)ctl.reloads_ok);
    sample_i(p, d, NULL, "result=\"failed\"", (int64_t)ctl.reloads_failed);
    for (size_t m = 0; m < ARRAY_SIZE(defs); m++) {
        if (defs[m].src != SRC_GLOBAL)
            continue;
        fam(p, &defs[m]);
        sample_i(p, &defs[m], NULL, NULL, s->gs[defs[m].idx]);
    }
    fam(p, d = &defs[M_REQUESTS_PROTOCOL]);
    sample_i(p, d, NULL, "protocol=\"http/1.1\"", s->gs[GS_REQUESTS] - s->gs[GS_REQUESTS_H2]);
    sample_i(p, d, NULL, "protocol=\"h2\"", s->gs[GS_REQUESTS_H2]);
    fam(p, d = &defs[M_AFFINITY]);
    for (size_t i = 0; i < ARRAY_SIZE(metrics_affinity_outcomes); i++) {
        char x[64];
        snprintf(x, sizeof(x), "outcome=\"%s\"", metrics_affinity_outcomes[i]);
        sample_i(p, d, NULL, x, s->gs[GS_AFF_COOKIE + i]);
    }
    /* redis_stats holds the totals of every Redis connection (workers and
     * control); the GS_REDIS_* slots count a subset of the same events. */
    const struct redis_stats *r = &s->redis;
    const int64_t misc[] = {(int64_t)s->sessions,
                            (int64_t)s->session_evictions,
                            r->configured,
                            r->up,
                            r->workers_up,
                            (int64_t)r->errors,
                            (int64_t)r->timeouts,
                            (int64_t)r->reconnects,
                            (int64_t)r->admin_received,
                            (int64_t)r->zone_fallbacks,
                            (int64_t)r->malformed,
                            (int64_t)r->ha.failovers,
                            (int64_t)r->q.len,
                            (int64_t)r->q.queued,
                            (int64_t)r->q.dropped,
                            (int64_t)r->q.written};
    static const enum metric_id ids[] = {M_SESSION_TABLE_ENTRIES, M_SESSION_TABLE_EVICTIONS,
                                         M_REDIS_CONFIGURED,      M_REDIS_UP,
                                         M_REDIS_WORKERS_UP,      M_REDIS_ERRORS,
                                         M_REDIS_TIMEOUTS,        M_REDIS_RECONNECTS,
                                         M_REDIS_ADMIN_MESSAGES,  M_REDIS_FALLBACKS,
                                         M_REDIS_MALFORMED,       M_REDIS_FAILOVERS,
                                         M_REDIS_QUEUE_LEN,       M_REDIS_QUEUED,
                                         M_REDIS_DROPPED,         M_REDIS_REPLAYED};
    for (size_t m = 0; m < ARRAY_SIZE(ids); m++) {
        fam(p, d = &defs[ids[m]]);
        sample_i(p, d, NULL, NULL, misc[m]);
    }
}

static void
prom_zones(struct prom *p)
{
    static const enum metric_id ids[] = {M_RATE_LIMITED, M_RATE_LIMIT_ALLOWED, M_RATE_LIMIT_DELAYED,
                                         M_RATE_LIMIT_KEYS, M_RATE_LIMIT_EVICTIONS};
    for (size_t m = 0; m < ARRAY_SIZE(ids); m++) {
        const struct metric_def *d = &defs[ids[m]];
        fam(p, d);
        for (uint32_t i = 0; i < p->s->nzones; i++) {
            const struct snap_zone *z = &p->s->zones[i];
            const uint64_t v[] = {z->st.limited, z->st.allowed, z->st.delayed, z->st.keys,
                                  z->st.evictions};
            strbuf_printf(p->o, "%s{zone=\"", d->name);
            prom_esc(p->o, z->name);
            strbuf_printf(p->o, "\"} %llu\n", (unsigned long long)v[m]);
        }
    }
}

static void
prom_regions(struct prom *p)
{
    const struct snap *s = p->s;
    const struct metric_def *d = &defs[M_UPSTREAM_PANIC];
    fam(p, d);
    for (uint32_t u = 0; u < s->nups; u++)
        sample_i(p, d, lab(p, u), NULL, s->ups[u].panic);
    fam(p, d = &defs[M_UPSTREAM_TIER_LOAD]);
    for (uint32_t u = 0; u < s->nups; u++)
        for (uint32_t t = 0; t < PLAN_MAX_TIERS; t++) {
            char x[32];
            if (!(s->ups[u].tiers_used & (1u << t)))
                continue;
            snprintf(x, sizeof(x), "tier=\"%u\"", t);
            sample_f(p, d, lab(p, u), x, s->ups[u].tier_load[t]);
        }
    static const enum metric_id ids[] = {
        M_REGION_WEIGHT,     M_REGION_PRIORITY,       M_REGION_SHARE,    M_REGION_SERVERS,
        M_REGION_SERVERS_UP, M_REGION_SERVERS_USABLE, M_REGION_SESSIONS, M_REGION_SESSION_CAPACITY};
    for (size_t m = 0; m < ARRAY_SIZE(ids); m++) {
        fam(p, d = &defs[ids[m]]);
        for (uint32_t r = 0; r < s->nregs; r++) {
            const struct snap_region *x = &s->regs[r];
            const double v[] = {x->weight, x->r->conf->priority, x->share,    x->nservers,
                                x->nup,    x->nusable,           x->sessions, x->capacity};
            sample_f(p, d, lab(p, p->reg0 + r), NULL, v[m]);
        }
    }
}

static void
prom_session_counter(void *ctx, const char *up, const char *from, const char *to, uint64_t n)
{
    struct prom *p = ctx;
    if (p->sessions_pass != (from != NULL))
        return;
    strbuf_printf(p->o, "%s{upstream=\"", defs[from ? M_SESSIONS_SPILLED : M_SESSIONS_SHED].name);
    prom_esc(p->o, up);
    if (from) {
        strbuf_lit(p->o, "\",from_region=\"");
        prom_esc(p->o, from);
        strbuf_lit(p->o, "\",to_region=\"");
        prom_esc(p->o, to);
    }
    strbuf_printf(p->o, "\"} %llu\n", (unsigned long long)n);
}

/* Shed and spill counters (session_load.c), one family after the other. */
static void
prom_sessions(struct prom *p)
{
    fam(p, &defs[M_SESSIONS_SHED]);
    p->sessions_pass = false;
    session_counters_each(prom_session_counter, p);
    fam(p, &defs[M_SESSIONS_SPILLED]);
    p->sessions_pass = true;
    session_counters_each(prom_session_counter, p);
}

static void
prom_servers(struct prom *p)
{
    const struct snap *s = p->s;
    const struct metric_def *d;
    code_classes_fam(p, M_REQUESTS, p->srv0, s->nsrvs, server_traffic);
    fam(p, d = &defs[M_REQUEST_DURATION_SECONDS]);
    for (uint32_t i = 0; i < s->nsrvs; i++)
        histogram(p, d, lab(p, p->srv0 + i), &s->srvs[i].t);
    fam(p, d = &defs[M_SERVER_STATE]);
    for (uint32_t i = 0; i < s->nsrvs; i++)
        for (unsigned a = 0; a < ARRAY_SIZE(metrics_admin_states); a++) {
            char x[32];
            snprintf(x, sizeof(x), "state=\"%s\"", metrics_admin_states[a]);
            sample_i(p, d, lab(p, p->srv0 + i), x, s->srvs[i].admin == a);
        }
    fam(p, d = &defs[M_HEALTH_CHECKS]);
    for (uint32_t i = 0; i < s->nsrvs; i++) {
        sample_i(p, d, lab(p, p->srv0 + i), "result=\"ok\"", (int64_t)s->srvs[i].hc_ok);
        sample_i(p, d, lab(p, p->srv0 + i), "result=\"failed\"", (int64_t)s->srvs[i].hc_failed);
    }
    for (size_t m = 0; m < ARRAY_SIZE(defs); m++) {
        if (defs[m].src != SRC_SERVER)
            continue;
        fam(p, d = &defs[m]);
        for (uint32_t i = 0; i < s->nsrvs; i++) {
            int64_t v = s->srvs[i].v[d->idx];
            if (d->idx == SV_HC_MS)
                sample_f(p, d, lab(p, p->srv0 + i), NULL, (double)v / 1e3);
            else
                sample_i(p, d, lab(p, p->srv0 + i), NULL, v);
        }
    }
}

void
metrics_write_prometheus(struct strbuf *o, const struct snap *s)
{
    struct prom p = {.o = o, .s = s};
    if (prom_labels(&p) < 0) {
        o->oom = true;
        goto out;
    }
    prom_process(&p);
    prom_zones(&p);
    code_classes_fam(&p, M_ROUTE_REQUESTS, p.route0, s->nroutes, route_traffic);
    const struct metric_def *d = &defs[M_ROUTE_REQUEST_DURATION_SECONDS];
    fam(&p, d);
    for (uint32_t i = 0; i < s->nroutes; i++)
        histogram(&p, d, lab(&p, p.route0 + i), &s->routes[i].t);
    prom_regions(&p);
    metrics_membership_prometheus(o, s);
    prom_sessions(&p);
    prom_servers(&p);
out:
    free(p.off);
    strbuf_free(&p.lab);
}
