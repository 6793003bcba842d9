/* SPDX-License-Identifier: MIT */
/* limit_conn for client connections: counted once per connection, as soon as
 * its key is known (the address after PROXY, or the first request's headers,
 * cookies or route when the key needs them). */
#include "config.h"

#include <tether/client.h>
#include <tether/gen.h>
#include <tether/ratelimit.h>
#include <tether/stats.h>
#include <tether/worker.h>

#include <string.h>

/* Does the connection zone need the request (a header or cookie key, or a
 * client address behind trusted proxies) rather than the connection alone? */
static bool
limit_needs_request(const struct client *cli)
{
    const struct key_spec *k = conn_zone_key(cli->vs->conn_zone);
    if (cli->vs->conf->nreal_ip_from)
        return true;
    for (uint32_t i = 0; i < k->nparts; i++)
        if (k->parts[i].kind != KEY_REMOTE_ADDR)
            return true;
    return false;
}

bool
client_limit_conn(struct client *cli)
{
    struct conn_zone *z = cli->vs->conn_zone;
    char key[RL_KEY_MAX];
    size_t klen;
    if (!z || cli->limit || limit_needs_request(cli))
        return true;
    struct rl_keyctx ctx = {.remote_ip = cli->peer_ip, .remote_ip_len = cli->peer_ip_len};
    klen = rl_key_build(conn_zone_key(z), &ctx, key, sizeof(key));
    if (klen == 0)
        return true;
    cli->limit = conn_zone_acquire(z, key, klen);
    return cli->limit != NULL;
}

bool
client_limit_conn_request(struct client *cli, const char *rip, size_t rip_len, const char *base,
                          const struct http_head *h, const char *route)
{
    struct conn_zone *z = cli->vs->conn_zone;
    char key[RL_KEY_MAX];
    if (!z || cli->limit || !limit_needs_request(cli))
        return true;
    struct rl_keyctx ctx = {.remote_ip = rip,
                            .remote_ip_len = rip_len,
                            .route = route,
                            .route_len = route ? strlen(route) : 0,
                            .buf = base,
                            .h = h};
    size_t klen = rl_key_build(conn_zone_key(z), &ctx, key, sizeof(key));
    if (klen == 0)
        return true;
    cli->limit = conn_zone_acquire(z, key, klen);
    if (!cli->limit)
        gstat_add(cli->w->id, GS_CONN_LIMITED, 1);
    return cli->limit != NULL;
}
