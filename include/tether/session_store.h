/* SPDX-License-Identifier: MIT */
/* The session store: where learned sessions live, behind one interface. The
 * process-wide local table (session_table.c) answers first; Redis (redis.c),
 * when configured, is the copy the other replicas share. The exchange talks
 * only to this for learned sessions; Redis stays asynchronous: a lookup that
 * must ask it answers later through the owner's struct redis_waiter. */
#ifndef TETHER_SESSION_STORE_H
#define TETHER_SESSION_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redis_waiter;
struct server;
struct session_table;
struct upstream;
struct worker;

/* The process-wide local table: created (or kept) for <table_size> entries
 * by each generation's build; a different size takes effect after a
 * restart. NULL when out of memory. */
struct session_table *session_store_open(size_t table_size);
/* The local table (NULL before the first generation): admin, stats, reload. */
struct session_table *session_store_table(void);
/* Free the local table at exit. */
void session_store_shutdown(void);

/* One worker's view of the store (built by the exchange per call). */
struct session_store {
    struct session_table *table; /* the local table */
    struct worker *w;            /* whose Redis connection asks and writes */
    uint64_t ttl_ms;             /* a session's lifetime (affinity ttl) */
};

enum session_lookup {
    SESSION_MISS = 0, /* unknown here and (as far as can be asked) in Redis */
    SESSION_HIT,      /* <server_id> set */
    SESSION_PENDING,  /* Redis was asked: wt->cb->session(wt->owner, value, n)
                       * answers (value NULL on a miss or timeout); then
                       * session_store_answer() */
};

/* Look up session <key> at <now_ms>: a local hit slides its expiry (and the
 * Redis copy's, at most every quarter TTL); a local miss asks Redis through
 * <wt>. */
enum session_lookup session_store_lookup(const struct session_store *st, struct redis_waiter *wt,
                                         uint64_t key, uint64_t now_ms, uint64_t *server_id);

/* Redis answered a lookup of <key> (session id <label>, <label_len> bytes)
 * with <v> (<n> bytes, "upstream/server SID"): the server id when it names a
 * server of <u> (remembered locally so the next request hits here), else 0. */
uint64_t session_store_answer(const struct session_store *st, const struct upstream *u,
                              uint64_t key, const char *label, size_t label_len, const char *v,
                              size_t n, uint64_t now_ms);

/* Pin session <key> (<label> may be NULL with 0: keep the local entry's) to
 * server <s>, locally and in Redis (fire and forget). Nothing for key 0. */
void session_store_pin(const struct session_store *st, uint64_t key, const char *label,
                       size_t label_len, const struct server *s, uint64_t now_ms);

/* Learn session <key> (<label>, a session id a response gave) on <s>: as
 * session_store_pin, but true when the caller should wait for Redis to
 * acknowledge the write (wt->cb->stored answers, or the Redis timeout), so a
 * client that takes the session to another replica at once finds it there. */
bool session_store_learn(const struct session_store *st, struct redis_waiter *wt, uint64_t key,
                         const char *label, size_t label_len, const struct server *s,
                         uint64_t now_ms);

/* Forget every Redis operation in flight for <wt> (a lookup, a store, and
 * whatever else its owner started there): their answers are dropped. */
void session_store_cancel(struct redis_waiter *wt);

#endif
