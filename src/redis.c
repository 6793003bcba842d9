/* SPDX-License-Identifier: MIT */
/* Redis integration placeholder while the hiredis client is being written:
 * every call reports "not available", so tether serves from local state. */
#include "config.h"

#include <tether/redis.h>

#include <string.h>

void
redis_worker_sync(struct worker *w)
{
    (void)w;
}

void
redis_worker_stop(struct worker *w)
{
    (void)w;
}

int
redis_session_lookup(struct request *req)
{
    (void)req;
    return -1;
}

void
redis_session_store(struct request *req, const struct server *s)
{
    (void)req;
    (void)s;
}

void
redis_request_cancel(struct request *req)
{
    (void)req;
}

int
redis_zone_check(struct request *req, struct rl_zone *z, const char *key, size_t klen)
{
    (void)req;
    (void)z;
    (void)key;
    (void)klen;
    return -1;
}

bool
redis_worker_up(const struct worker *w)
{
    (void)w;
    return false;
}

void
redis_control_sync(void)
{
}

void
redis_control_stop(void)
{
}

void
redis_admin_publish(const char *line)
{
    (void)line;
}

void
redis_stats_get(struct redis_stats *out)
{
    memset(out, 0, sizeof(*out));
}
