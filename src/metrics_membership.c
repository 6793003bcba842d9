/* SPDX-License-Identifier: MIT */
/* Prometheus families of upstream membership and DNS discovery: servers by
 * source and state, servers refused at max_servers, lookups by result and the
 * time of each name's last good answer. */
#include "config.h"

#include <tether/discovery.h>
#include <tether/membership.h>
#include <tether/stats_http.h>
#include <tether/upstream.h>

#include <stdio.h>

static void
family(struct strbuf *o, const char *name, const char *type, const char *help)
{
    strbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
label(struct strbuf *o, const char *key, const char *value)
{
    strbuf_printf(o, "%s=\"", key);
    prom_esc(o, value);
    strbuf_lit(o, "\"");
}

static void
queries_cb(void *ctx, const struct discovery_stats *st)
{
    static const char *const results[] = {"ok", "empty", "failed"};
    const uint64_t v[] = {st->ok, st->empty, st->failed};
    struct strbuf *o = ctx;
    for (int k = 0; k < 3; k++) {
        strbuf_lit(o, "tether_discovery_queries_total{");
        label(o, "upstream", st->upstream);
        strbuf_lit(o, ",");
        label(o, "name", st->name);
        strbuf_printf(o, ",result=\"%s\"} %llu\n", results[k], (unsigned long long)v[k]);
    }
}

static void
last_good_cb(void *ctx, const struct discovery_stats *st)
{
    struct strbuf *o = ctx;
    strbuf_lit(o, "tether_discovery_last_good_timestamp_seconds{");
    label(o, "upstream", st->upstream);
    strbuf_lit(o, ",");
    label(o, "name", st->name);
    strbuf_printf(o, "} %.3f\n", (double)st->last_good_ms / 1e3);
}

void
metrics_membership_prometheus(struct strbuf *o, const struct snap *s)
{
    static const char *const sources[] = {"config", "dns", "admin"};
    family(o, "tether_upstream_servers", "gauge",
           "Servers of the upstream {upstream,source=config|dns|admin,state=ready|leaving}.");
    for (uint32_t u = 0; u < s->nups; u++) {
        uint32_t n[3][2] = {{0}};
        const struct members *m = s->ups[u].m;
        for (uint32_t k = 0; k < m->nservers; k++)
            n[m->servers[k]->source < 3 ? m->servers[k]->source : 0][m->servers[k]->leaving]++;
        for (int k = 0; k < 3; k++)
            for (int l = 0; l < 2; l++) {
                strbuf_lit(o, "tether_upstream_servers{");
                label(o, "upstream", s->ups[u].u->conf->name);
                strbuf_printf(o, ",source=\"%s\",state=\"%s\"} %u\n", sources[k],
                              l ? "leaving" : "ready", n[k][l]);
            }
    }
    family(o, "tether_upstream_servers_refused_total", "counter",
           "Servers refused because their upstream had max_servers already.");
    strbuf_printf(o, "tether_upstream_servers_refused_total %llu\n",
                  (unsigned long long)membership_refused());
    family(o, "tether_discovery_queries_total", "counter",
           "DNS lookups of discover names {upstream,name,result=ok|empty|failed}; failed "
           "lookups keep the last good set.");
    discovery_each(queries_cb, o);
    family(o, "tether_discovery_last_good_timestamp_seconds", "gauge",
           "Wall-clock time of the name's last good answer, 0 never {upstream,name}.");
    discovery_each(last_good_cb, o);
}
