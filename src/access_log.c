/* SPDX-License-Identifier: MIT */
/* One access-log line and the counters of a finished request. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/forward.h>
#include <tether/gen.h>
#include <tether/http_rewrite.h>
#include <tether/outlier.h>
#include <tether/ratelimit.h>
#include <tether/redis.h>
#include <tether/request.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/upstream_conn.h>
#include <tether/worker.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request_int.h"

static const char *const term_names[TERM__COUNT] = {
    "ok",
    "client_abort",
    "client_timeout",
    "bad_request",
    "too_large",
    "no_route",
    "rate_limited",
    "conn_limited",
    "no_server",
    "server_refused",
    "connect_timeout",
    "server_reset",
    "server_timeout",
    "bad_response",
    "shutdown",
    "internal",
    "tunnel_closed",
    "tunnel_timeout",
};

const char *
term_name(unsigned term)
{
    return term < TERM__COUNT ? term_names[term] : "?";
}

const char *
aff_outcome_name(unsigned aff)
{
    static const char *const names[] = {"none",           "cookie", "header", "path",
                                        "cookie_session", "hash",   "new",    "redispatch"};
    return aff < ARRAY_SIZE(names) ? names[aff] : "?";
}

/* The retry_on condition that caused the last retry, as written in the config. */
static const char *
retried_on_name(unsigned bit1)
{
    static const char *const names[] = {"-",   "connect-failure", "refused", "reset", "502", "503",
                                        "504", "timeout"};
    return bit1 < ARRAY_SIZE(names) ? names[bit1] : "-";
}

void
request_log(struct request *req)
{
    struct worker *w = req->w;
    ev_tstamp now = ev_now(w->loop);
    uint64_t total_us = (uint64_t)((now - req->t_start) * 1e6);

    gstat_add(w->id, GS_REQUESTS, 1);
    if (req->proto == 2)
        gstat_add(w->id, GS_REQUESTS_H2, 1);
    if (req->srv)
        traffic_record(&req->srv->rt->t[w->id], req->status, req->bytes_in, req->bytes_out,
                       total_us);
    if (req->route)
        traffic_record(&req->route->stats->t[w->id], req->status, req->bytes_in, req->bytes_out,
                       total_us);
    if (atomic_load_explicit(&access_log_fd, memory_order_relaxed) < 0)
        return;

    char *line = access_buf_reserve(&w->alog, 2048);
    if (!line)
        return;
    char ts[32], esc[600], rid[96];
    log_time_iso(ts, sizeof(ts), time_wall_ms());
    size_t pl = json_escape(esc, sizeof(esc), req->path, req->path_len);
    /* "path" is the target without its query, "request" the whole target. */
    const char *q = memchr(esc, '?', pl);
    int path_only = q ? (int)(q - esc) : (int)pl;
    size_t rl = json_escape(rid, sizeof(rid), req->req_id, req->req_id_len);
    double connect_ms = req->t_connected > 0 ? (req->t_connected - req->t_connect) * 1e3 : -1;
    double upstream_ms = req->t_resp > 0 ? (req->t_resp - req->t_start) * 1e3 : -1;
    const char *method = http_method_name(req->method);
    const char *ron = retried_on_name(req->retried_on);
    int n;
    if (req->gen->conf->access_format == ACCESS_COMBINED) {
        n = snprintf(line, 2048,
                     "%.*s - - [%s] \"%s %.*s HTTP/1.%u\" %u %llu \"-\" \"-\" route=%s server=%s "
                     "term=%s aff=%s rid=%.*s t=%.3f\n",
                     req->rip_len, req->rip, ts, method ? method : "-", (int)pl, esc,
                     req->version_minor, req->status, (unsigned long long)req->bytes_out,
                     req->route ? req->route->conf->label : "-",
                     req->srv ? req->srv->conf->name : "-", term_name(req->term),
                     aff_outcome_name(req->aff), (int)rl, rid, (now - req->t_start));
    } else {
        n = snprintf(
            line, 2048,
            "{\"time\":\"%s\",\"client\":\"%.*s\",\"method\":\"%s\",\"path\":\"%.*s\","
            "\"request\":\"%.*s\",\"route\":\"%s\",\"upstream\":\"%s\",\"server\":\"%s\","
            "\"status\":%u,"
            "\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f,"
            "\"connect_ms\":%.3f,\"upstream_ms\":%.3f,\"request_id\":\"%.*s\","
            "\"affinity\":\"%s\",\"retries\":%u,\"retried_on\":\"%s\","
            "\"term\":\"%s\",\"tls\":%s,\"protocol\":\"%s\"}\n",
            ts, req->rip_len, req->rip, method ? method : "-", path_only, esc, (int)pl, esc,
            req->route ? req->route->conf->label : "-", req->ups ? req->ups->conf->name : "-",
            req->srv ? req->srv->conf->name : "-", req->status, (unsigned long long)req->bytes_in,
            (unsigned long long)req->bytes_out, (now - req->t_start) * 1e3, connect_ms, upstream_ms,
            (int)rl, rid, aff_outcome_name(req->aff), req->retries, ron, term_name(req->term),
            req->cli_tls ? "true" : "false", req->proto == 2 ? "h2" : "http/1.1");
    }
    if (n > 0 && n < 2048)
        access_buf_commit(&w->alog, (size_t)n);
}
