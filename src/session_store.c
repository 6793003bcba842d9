/* SPDX-License-Identifier: MIT */
/* The session store: the local learned-session table first, Redis behind it
 * (session_store.h). Keys are session hashes; Redis values are
 * "upstream/server SID". */
#include "config.h"

#include <tether/log.h>
#include <tether/redis.h>
#include <tether/session.h>
#include <tether/session_store.h>
#include <tether/upstream.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session_table *table;
static size_t table_size;

struct session_table *
session_store_open(size_t size)
{
    pthread_mutex_lock(&store_lock);
    if (!table) {
        table_size = size;
        table = session_table_new(table_size, 64);
    } else if (size != table_size) {
        log_warn("affinity table_size change (%zu -> %zu) takes effect after a restart", table_size,
                 size);
    }
    struct session_table *t = table;
    pthread_mutex_unlock(&store_lock);
    return t;
}

struct session_table *
session_store_table(void)
{
    return table;
}

void
session_store_shutdown(void)
{
    session_table_free(table);
    table = NULL;
}

enum session_lookup
session_store_lookup(const struct session_store *st, struct redis_waiter *wt, uint64_t key,
                     uint64_t now_ms, uint64_t *server_id)
{
    uint64_t prev = 0;
    if (session_table_lookup(st->table, key, now_ms, st->ttl_ms, server_id, &prev)) {
        /* Slide the Redis copy's expiry too, at most every quarter TTL. */
        if (prev < now_ms + st->ttl_ms - st->ttl_ms / 4)
            redis_session_touch(st->w, key, st->ttl_ms);
        return SESSION_HIT;
    }
    /* Local miss: another replica may have learned it. */
    return redis_session_lookup(st->w, wt, key) == 0 ? SESSION_PENDING : SESSION_MISS;
}

uint64_t
session_store_answer(const struct session_store *st, const struct upstream *u, uint64_t key,
                     const char *label, size_t label_len, const char *v, size_t n, uint64_t now_ms)
{
    /* "upstream/server" then, after a space, the session id (for operators). It
     * is learned when it names a server of <u> (another upstream, or a server
     * since removed: ignored). */
    const char *sp = memchr(v, ' ', n);
    if (sp)
        n = (size_t)(sp - v);
    const char *slash = memchr(v, '/', n);
    const char *uname = u->conf->name;
    char sname[256];
    if (!slash || (size_t)(slash - v) != strlen(uname) || memcmp(v, uname, strlen(uname)) != 0)
        return 0;
    size_t sl = n - (size_t)(slash + 1 - v);
    if (sl == 0 || sl >= sizeof(sname))
        return 0;
    memcpy(sname, slash + 1, sl);
    sname[sl] = '\0';
    const struct server *s = upstream_server_by_name(u, sname);
    if (!s)
        return 0;
    /* The next request for this session hits locally. */
    session_table_insert(st->table, key, label, label_len, s->cookie_id, now_ms + st->ttl_ms);
    return s->cookie_id;
}

/* The value a session has in Redis: "upstream/server SID" into <out> (<cap>
 * bytes); its length, 0 when it does not fit. */
static size_t
store_value(const struct server *s, const char *label, size_t label_len, char *out, size_t cap)
{
    int vl = snprintf(out, cap, "%s%s%.*s", s->rt->key, label_len ? " " : "", (int)label_len,
                      label_len ? label : "");
    return vl > 0 && (size_t)vl < cap ? (size_t)vl : 0;
}

void
session_store_pin(const struct session_store *st, uint64_t key, const char *label, size_t label_len,
                  const struct server *s, uint64_t now_ms)
{
    if (!key)
        return;
    session_table_insert(st->table, key, label_len ? label : NULL, label_len, s->cookie_id,
                         now_ms + st->ttl_ms);
    char val[512];
    size_t n = store_value(s, label, label_len, val, sizeof(val));
    redis_session_store(st->w, key, val, n, st->ttl_ms);
}

bool
session_store_learn(const struct session_store *st, struct redis_waiter *wt, uint64_t key,
                    const char *label, size_t label_len, const struct server *s, uint64_t now_ms)
{
    session_table_insert(st->table, key, label, label_len, s->cookie_id, now_ms + st->ttl_ms);
    char val[512];
    size_t n = store_value(s, label, label_len, val, sizeof(val));
    return redis_session_store_ack(st->w, wt, key, val, n, st->ttl_ms) == 0;
}

void
session_store_cancel(struct redis_waiter *wt)
{
    redis_waiter_cancel(wt);
}
