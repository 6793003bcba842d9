/* SPDX-License-Identifier: MIT */
/* Rate limits of a request: local zones decided at once, global zones answered
 * by Redis (or their on_redis_error fallback); 429 with RateLimit-* headers. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/client.h>
#include <tether/forward.h>
#include <tether/gen.h>
#include <tether/http_rewrite.h>
#include <tether/outlier.h>
#include <tether/ratelimit.h>
#include <tether/redis.h>
#include <tether/request.h>
#include <tether/session_load.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/upstream_conn.h>
#include <tether/worker.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request_int.h"

/* Over a zone's limit: the zone's status with Retry-After and RateLimit-*. */
void
request_rate_limited(struct request *req, struct rl_zone *z, const struct rl_decision *d)
{
    char extra[256];
    gstat_add(req->cli->w->id, GS_RATE_LIMITED, 1);
    snprintf(extra, sizeof(extra),
             "Retry-After: %u\r\nRateLimit-Limit: %u\r\nRateLimit-Remaining: 0\r\n"
             "RateLimit-Reset: %u\r\n",
             d->retry_after_s, d->limit, d->reset_s);
    client_reply(req->cli, rl_zone_conf(z)->status, TERM_RATE_LIMITED, extra, false);
}

void
request_shed(struct request *req)
{
    const struct conf_upstream *cu = req->ups->conf;
    char extra[64];
    session_shed_count(req->ups);
    snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", cu->shed_retry_after_s);
    client_reply(req->cli, cu->shed_status ? cu->shed_status : 503, TERM_NO_SERVER, extra, false);
}

static void
request_pace(struct request *req, uint64_t delay_ns)
{
    ev_tstamp until = ev_now(req->cli->w->loop) + (double)delay_ns / 1e9;
    if (delay_ns && until > req->hold_until)
        req->hold_until = until;
}

/* Check every zone of the route: local zones now, global zones in Redis (their
 * answers arrive through request_zone_answer()). false when answered (429). */
bool
request_rate_limit(struct request *req, const char *base)
{
    struct rl_keyctx ctx = {.remote_ip = req->rip,
                            .remote_ip_len = req->rip_len,
                            .route = req->route->conf->label,
                            .route_len = strlen(req->route->conf->label),
                            .buf = base,
                            .h = &req->h};
    uint64_t now_ns = time_mono_ns();
    for (uint32_t i = 0; i < req->route->nzones; i++) {
        struct rl_zone *z = req->route->zones[i];
        const struct conf_zone *cz = rl_zone_conf(z);
        char key[RL_KEY_MAX];
        struct rl_decision d;
        size_t klen = rl_key_build(&cz->key, &ctx, key, sizeof(key));
        if (klen == 0)
            continue;
        if (cz->global) {
            if (redis_zone_check(req, z, key, klen) == 0) {
                req->rl_pending++;
                continue;
            }
            /* Redis unusable: the zone's on_redis_error policy. */
            if (cz->on_redis_error == ON_REDIS_ALLOW) {
                rl_zone_count_allowed(z);
                continue;
            }
            if (cz->on_redis_error == ON_REDIS_DENY) {
                rl_zone_count_limited(z);
                d = (struct rl_decision){.limit = cz->burst + 1, .retry_after_s = 1, .reset_s = 1};
                request_rate_limited(req, z, &d);
                return false;
            }
        }
        rl_check(z, key, klen, now_ns, &d);
        if (!d.allowed) {
            request_rate_limited(req, z, &d);
            return false;
        }
        request_pace(req, d.delay_ns);
    }
    return true;
}

void
request_zone_answer(struct request *req, struct rl_zone *z, const struct rl_decision *d)
{
    req->rl_pending--;
    if (!d->allowed && !req->rl_denied) {
        req->rl_denied = true;
        req->rl_deny = *d;
        req->rl_deny_zone = z;
    } else if (d->allowed) {
        request_pace(req, d->delay_ns);
    }
    if (req->rl_pending || req->state != RS_HOLD)
        return;
    if (req->rl_denied) {
        request_rate_limited(req, req->rl_deny_zone, &req->rl_deny);
        return;
    }
    request_resume(req);
}
