/* SPDX-License-Identifier: MIT */
/* The learned-session table: session key -> server, shared by all workers. The
 * key is the 64-bit hash of the session id (also carried by affinity cookies),
 * the id itself is kept as a label for `show sessions`. Sharded by key, one
 * mutex per shard; each shard is a fixed pool of entries allocated up
 * front, chained into hash buckets and an LRU list, so the table never grows,
 * never allocates after creation, and evicts the least recently used when full. */
#include "config.h"

#include <tether/session.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

/* One slot of a shard's pool. Links are pool indices, not pointers: half the
 * size, and a pool is one allocation. */
struct entry {
    uint64_t hash;           /* the session key */
    uint64_t server_id;      /* stable server identity */
    uint64_t expires_ms;     /* monotonic ms; expired at or after it */
    uint32_t next;           /* next in the bucket chain, or in the free list */
    uint32_t prev_lru;       /* towards the most recently used end */
    uint32_t next_lru;       /* towards the least recently used end */
    uint8_t len;             /* label length, 0..SESSION_ID_MAX */
    char id[SESSION_ID_MAX]; /* label: the session id, when known */
};

/* Aligned to a cache line so two workers hitting neighbouring shards do not
 * bounce one line between cores. */
struct shard {
    pthread_mutex_t lock;
    struct entry *pool; /* cap entries */
    uint32_t *buckets;  /* mask + 1 chain heads */
    uint32_t mask;      /* buckets - 1 (a power of two >= cap) */
    uint32_t cap;       /* fixed number of entries */
    uint32_t count;     /* entries in use */
    uint32_t mru, lru;  /* ends of the LRU list */
    uint32_t free_head; /* unused entries, linked by next */
    uint64_t evictions; /* LRU evictions because the shard was full */
} __attribute__((aligned(CACHELINE)));

struct session_table {
    struct shard *shards;
    unsigned nshards;          /* a power of two */
    atomic_uint expire_cursor; /* where the next expire pass starts */
};

/* High bits choose the shard, low bits the bucket: independent for XXH3. */
static struct shard *
shard_of(struct session_table *t, uint64_t h)
{
    return &t->shards[(h >> 40) & (t->nshards - 1)];
}

static void
lru_unlink(struct shard *s, uint32_t x)
{
    struct entry *e = &s->pool[x];
    if (e->prev_lru != NIL)
        s->pool[e->prev_lru].next_lru = e->next_lru;
    else
        s->mru = e->next_lru;
    if (e->next_lru != NIL)
        s->pool[e->next_lru].prev_lru = e->prev_lru;
    else
        s->lru = e->prev_lru;
}

static void
lru_push_front(struct shard *s, uint32_t x)
{
    struct entry *e = &s->pool[x];
    e->prev_lru = NIL;
    e->next_lru = s->mru;
    if (s->mru != NIL)
        s->pool[s->mru].prev_lru = x;
    else
        s->lru = x;
    s->mru = x;
}

static uint32_t
shard_find(struct shard *s, uint64_t h)
{
    for (uint32_t x = s->buckets[h & s->mask]; x != NIL; x = s->pool[x].next)
        if (s->pool[x].hash == h)
            return x;
    return NIL;
}

static void
shard_remove(struct shard *s, uint32_t x)
{
    struct entry *e = &s->pool[x];
    uint32_t *link = &s->buckets[e->hash & s->mask];
    while (*link != x)
        link = &s->pool[*link].next;
    *link = e->next;
    lru_unlink(s, x);
    e->next = s->free_head;
    s->free_head = x;
    s->count--;
}

static int
shard_init(struct shard *s, uint32_t cap)
{
    uint32_t nb = 1;
    while (nb < cap)
        nb <<= 1;
    memset(s, 0, sizeof(*s));
    /* calloc of a large pool maps zero pages lazily: memory is committed as
     * entries are first used, not all at start. */
    s->pool = calloc(cap, sizeof(*s->pool));
    s->buckets = malloc((size_t)nb * sizeof(*s->buckets));
    if (!s->pool || !s->buckets || pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s->pool);
        free(s->buckets);
        return -1;
    }
    for (uint32_t i = 0; i < nb; i++)
        s->buckets[i] = NIL;
    for (uint32_t i = 0; i < cap; i++)
        s->pool[i].next = i + 1 < cap ? i + 1 : NIL;
    s->free_head = 0;
    s->mask = nb - 1;
    s->cap = cap;
    s->mru = s->lru = NIL;
    return 0;
}

static void
shard_fini(struct shard *s)
{
    pthread_mutex_destroy(&s->lock);
    free(s->pool);
    free(s->buckets);
}

struct session_table *
session_table_new(size_t max_entries, unsigned shards)
{
    if (max_entries == 0)
        max_entries = 1;
    unsigned ns = 1;
    while (ns < shards && ns < (1u << 16))
        ns <<= 1;
    /* Every shard needs at least one entry, and the sum of the shard sizes is
     * exactly max_entries, so the bound holds for the whole table. */
    while (ns > 1 && ns > max_entries)
        ns >>= 1;
    if (max_entries / ns >= (1u << 31)) /* bucket count must stay a uint32_t */
        return NULL;

    struct session_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->shards = aligned_alloc(CACHELINE, ns * sizeof(*t->shards));
    if (!t->shards) {
        free(t);
        return NULL;
    }
    atomic_init(&t->expire_cursor, 0);
    for (unsigned i = 0; i < ns; i++) {
        uint32_t cap = (uint32_t)(max_entries / ns + (i < max_entries % ns));
        if (shard_init(&t->shards[i], cap) != 0) {
            t->nshards = i;
            session_table_free(t);
            return NULL;
        }
    }
    t->nshards = ns;
    return t;
}

void
session_table_free(struct session_table *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < t->nshards; i++)
        shard_fini(&t->shards[i]);
    free(t->shards);
    free(t);
}

int
session_table_insert(struct session_table *t, uint64_t key, const char *label, size_t label_len,
                     uint64_t server_id, uint64_t expires_ms)
{
    if (label && !session_id_valid(label, label_len))
        return -1;
    struct shard *s = shard_of(t, key);
    pthread_mutex_lock(&s->lock);
    uint32_t x = shard_find(s, key);
    if (x != NIL) {
        lru_unlink(s, x);
    } else {
        if (s->free_head == NIL) {
            shard_remove(s, s->lru);
            s->evictions++;
        }
        x = s->free_head;
        struct entry *e = &s->pool[x];
        s->free_head = e->next;
        e->hash = key;
        e->len = 0;
        e->next = s->buckets[key & s->mask];
        s->buckets[key & s->mask] = x;
        s->count++;
    }
    struct entry *e = &s->pool[x];
    if (label) {
        e->len = (uint8_t)label_len;
        memcpy(e->id, label, label_len);
    }
    e->server_id = server_id;
    e->expires_ms = expires_ms;
    lru_push_front(s, x);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

bool
session_table_lookup(struct session_table *t, uint64_t key, uint64_t now_ms, uint64_t refresh_ms,
                     uint64_t *server_id, uint64_t *prev_expires_ms)
{
    struct shard *s = shard_of(t, key);
    bool hit = false;
    pthread_mutex_lock(&s->lock);
    uint32_t x = shard_find(s, key);
    if (x != NIL) {
        struct entry *e = &s->pool[x];
        if (now_ms >= e->expires_ms) {
            shard_remove(s, x);
        } else {
            hit = true;
            if (server_id)
                *server_id = e->server_id;
            if (prev_expires_ms)
                *prev_expires_ms = e->expires_ms;
            if (refresh_ms > 0) {
                e->expires_ms = now_ms + refresh_ms;
                lru_unlink(s, x);
                lru_push_front(s, x);
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    return hit;
}

void
session_table_remove(struct session_table *t, uint64_t key)
{
    struct shard *s = shard_of(t, key);
    pthread_mutex_lock(&s->lock);
    uint32_t x = shard_find(s, key);
    if (x != NIL)
        shard_remove(s, x);
    pthread_mutex_unlock(&s->lock);
}

size_t
session_table_count(struct session_table *t)
{
    size_t n = 0;
    for (unsigned i = 0; i < t->nshards; i++) {
        struct shard *s = &t->shards[i];
        pthread_mutex_lock(&s->lock);
        n += s->count;
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

uint64_t
session_table_evictions(struct session_table *t)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < t->nshards; i++) {
        struct shard *s = &t->shards[i];
        pthread_mutex_lock(&s->lock);
        n += s->evictions;
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

/* Each shard is walked from its least recently used end and the walk stops at
 * the first live entry: inserts and refreshes both move an entry to the front
 * with expiry now + TTL, so with one TTL the LRU order is the expiry order and
 * everything behind a live entry is live too. An entry given a shorter expiry
 * than its neighbours is still dropped by lookup, dump or eviction. A cursor
 * rotates the starting shard so a small budget does not always serve shard 0. */
size_t
session_table_expire(struct session_table *t, uint64_t now_ms, size_t budget)
{
    size_t removed = 0;
    unsigned start = atomic_fetch_add_explicit(&t->expire_cursor, 1, memory_order_relaxed);
    for (unsigned k = 0; k < t->nshards && removed < budget; k++) {
        struct shard *s = &t->shards[(start + k) & (t->nshards - 1)];
        pthread_mutex_lock(&s->lock);
        while (removed < budget && s->lru != NIL && now_ms >= s->pool[s->lru].expires_ms) {
            shard_remove(s, s->lru);
            removed++;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return removed;
}

size_t
session_table_dump(struct session_table *t, uint64_t now_ms, struct session_entry *out, size_t max)
{
    size_t n = 0;
    for (unsigned i = 0; i < t->nshards && n < max; i++) {
        struct shard *s = &t->shards[i];
        pthread_mutex_lock(&s->lock);
        for (uint32_t x = s->mru; x != NIL && n < max; x = s->pool[x].next_lru) {
            const struct entry *e = &s->pool[x];
            if (now_ms >= e->expires_ms)
                continue;
            memcpy(out[n].id, e->id, e->len);
            out[n].id[e->len] = '\0';
            out[n].key = e->hash;
            out[n].server_id = e->server_id;
            out[n].expires_ms = e->expires_ms;
            n++;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

void
session_table_count_by_server(struct session_table *t, uint64_t now_ms, const uint64_t *ids,
                              size_t n, uint64_t *counts)
{
    for (unsigned i = 0; i < t->nshards && n; i++) {
        struct shard *s = &t->shards[i];
        pthread_mutex_lock(&s->lock);
        for (uint32_t x = s->mru; x != NIL; x = s->pool[x].next_lru) {
            uint64_t id = s->pool[x].server_id;
            size_t lo = 0, hi = n;
            if (now_ms >= s->pool[x].expires_ms)
                continue;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (ids[mid] < id)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo < n && ids[lo] == id)
                counts[lo]++;
        }
        pthread_mutex_unlock(&s->lock);
    }
}

void
session_table_foreach(struct session_table *t, uint64_t now_ms,
                      void (*fn)(void *ctx, uint64_t server_id), void *ctx)
{
    for (unsigned i = 0; i < t->nshards; i++) {
        struct shard *s = &t->shards[i];
        pthread_mutex_lock(&s->lock);
        for (uint32_t x = s->mru; x != NIL; x = s->pool[x].next_lru)
            if (now_ms < s->pool[x].expires_ms)
                fn(ctx, s->pool[x].server_id);
        pthread_mutex_unlock(&s->lock);
    }
}
