/* SPDX-License-Identifier: MIT */
/* Learned sessions: finding a session id in a response (header or JSON body) or a
 * request path (pure, session_learn.c), and the sharded, bounded id -> server
 * table with TTL and LRU eviction shared by all workers (session_table.c). */
#ifndef TETHER_SESSION_H
#define TETHER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/util.h>

/* Longest session id tether accepts. */
#define SESSION_ID_MAX 128

/* ---- session_learn.c (pure) ---- */

/* A session id is 1..SESSION_ID_MAX bytes of [A-Za-z0-9._~:@+=-]. */
bool session_id_valid(const char *p, size_t n);

/* Look for the top-level member <name> of a JSON object in <p>[0..n), which may be
 * a prefix of the whole body. Returns 1 when found with a string (no escapes) or
 * number value (slice <val> set to the raw value without quotes), 0 when not (yet)
 * found, -1 when the text is not a JSON object or the value is of another type. */
int learn_json_field(const char *p, size_t n, const char *name, size_t name_len, struct slice *val);

/* A path pattern with one "{id}" placeholder, e.g. "/webhook/{id}/". */
struct path_pattern {
    char prefix[128]; /* text before {id} */
    char suffix[64];  /* text after {id}; the id ends at its first byte, or at '/', '?' or the end
                         when empty */
    uint16_t prefix_len;
    uint16_t suffix_len;
};

/* Parse a pattern; exactly one "{id}" must appear. 0 or -1 (with <e>). */
int path_pattern_parse(struct path_pattern *pat, const char *text, struct err *e);

/* Extract the id from <path>[0..n) (path with optional query). 1 found, 0 not. */
int path_pattern_match(const struct path_pattern *pat, const char *path, size_t n,
                       struct slice *id);

/* ---- session_table.c (shared by threads) ---- */

struct session_table;

/* One entry, as returned by session_table_dump(). */
struct session_entry {
    char id[SESSION_ID_MAX + 1]; /* NUL-terminated session id ("" when not known) */
    uint64_t key;                /* session key: hash of the id (chash_hash) */
    uint64_t server_id;          /* stable server identity (cookie_server_id) */
    uint64_t expires_ms;         /* monotonic ms */
};

/* A table of at most <max_entries> entries in <shards> shards (power of two). */
struct session_table *session_table_new(size_t max_entries, unsigned shards);
void session_table_free(struct session_table *t);

/* Insert or replace key -> server_id, expiring at <expires_ms>, with the session
 * id <label> (NULL keeps the label an existing entry has). The key is the hash of
 * the session id, so a cookie that carries only the hash can re-pin a session.
 * When the shard is full the least recently used entry is evicted. 0, or -1 for
 * an invalid label. */
int session_table_insert(struct session_table *t, uint64_t key, const char *label, size_t label_len,
                         uint64_t server_id, uint64_t expires_ms);

/* Find <key>; an entry past its expiry is removed and not returned. On a hit with
 * <refresh_ms> > 0, the expiry becomes now_ms + refresh_ms and the entry becomes
 * most recently used; <prev_expires_ms> (may be NULL) gets the expiry before. */
bool session_table_lookup(struct session_table *t, uint64_t key, uint64_t now_ms,
                          uint64_t refresh_ms, uint64_t *server_id, uint64_t *prev_expires_ms);

void session_table_remove(struct session_table *t, uint64_t key);
size_t session_table_count(struct session_table *t);
/* Total evictions because of the size bound (not expiry). */
uint64_t session_table_evictions(struct session_table *t);

/* Remove up to <budget> expired entries; returns how many were removed. */
size_t session_table_expire(struct session_table *t, uint64_t now_ms, size_t budget);

/* Live entries per server: <counts>[i] += entries naming <ids>[i] (<ids>
 * sorted, <n> of them). One scan under each shard's lock: admin and stats. */
void session_table_count_by_server(struct session_table *t, uint64_t now_ms, const uint64_t *ids,
                                   size_t n, uint64_t *counts);
/* Copy up to <max> live entries into <out>; returns the number copied. */
size_t session_table_dump(struct session_table *t, uint64_t now_ms, struct session_entry *out,
                          size_t max);

/* Call <fn> with the server of every live entry (shard by shard, under each
 * shard's lock: <fn> must be quick and must not touch the table). */
void session_table_foreach(struct session_table *t, uint64_t now_ms,
                           void (*fn)(void *ctx, uint64_t server_id), void *ctx);

#endif
