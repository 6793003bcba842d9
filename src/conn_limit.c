/* SPDX-License-Identifier: MIT */
/* limit_conn: concurrent connections per key in a bounded, sharded table shared
 * by all workers. A server block's zone is private (limit_conn N, per client
 * address) or a named limit_conn_zone shared by the blocks that use it. */
#include "config.h"

#include <tether/log.h>
#include <tether/ratelimit.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/*
 * A table of sets of CL_WAYS slots, allocated once (size / 24 bytes slots). A key
 * (known by 96 bits of its seeded XXH3-128 hash) lives in the set its hash
 * selects while it has open connections; its slot is freed when the count falls
 * to 0. Acquire and release take the shard mutex of the set: they happen once
 * per connection, not per request. The slot itself is the handle given to the
 * connection (no allocation per connection); it points back to its table, and
 * each held slot holds a reference on the table, so a connection may outlive
 * the generation (and the zone) it was accepted under.
 *
 * When the key's set is full the connection is let through uncounted, with a
 * rate-limited warning: failing closed would refuse every new client while the
 * table is full of others, which is worse than not limiting a few. Size the zone
 * for the number of distinct clients expected (slots = size / 24).
 */

#define CL_WAYS   16 /* slots per set */
#define CL_SHARDS 64 /* mutexes, by set index */

/* Size of the private zone of limit_conn N. */
#define CL_PRIVATE_SIZE (1u << 20)

struct conn_slot {
    uint64_t tag;         /* low half of the key hash (never 0); 0 = free slot */
    uint32_t chk;         /* 32 more bits of the key hash */
    uint32_t count;       /* open connections of the key */
    struct conn_table *t; /* owner, set at creation; NULL for the uncounted slot */
};

_Static_assert(sizeof(struct conn_slot) == 24 || sizeof(void *) != 8, "24-byte slots");

struct cl_shard {
    pthread_mutex_t lock; /* slots of the shard's sets */
    uint64_t keys;        /* slots in use (under lock) */
} __attribute__((aligned(CACHELINE)));

struct conn_table {
    struct cl_shard shards[CL_SHARDS];
    struct conn_table *next; /* registry list */
    uint32_t nhandles;       /* zones using it (registry lock) */
    _Atomic uint32_t refs;   /* 1 while nhandles > 0, plus one per held slot */
    bool private_zone;       /* limit_conn N of one server block */
    char *ident;             /* zone name, or the block's listen addresses */
    char *key_text;          /* identity: key as written */
    uint64_t size;           /* identity: bytes configured */
    uint64_t seed;           /* key hash seed */
    uint32_t nsets;          /* sets of CL_WAYS slots */
    struct conn_slot *slots; /* nsets * CL_WAYS */
    struct log_limit full_log;
};

/* A server block's view: the shared table, its own limit and key. */
struct conn_zone {
    struct conn_table *t;
    uint32_t limit;             /* connections per key */
    const struct key_spec *key; /* lives as long as the generation */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn_table *reg_tables;

/* Handed out when the table is full: counts nothing, releases nothing. */
static struct conn_slot cl_uncounted;

static struct key_part remote_part = {.kind = KEY_REMOTE_ADDR};
static char remote_text[] = "$remote_addr";
static const struct key_spec remote_key = {&remote_part, 1, remote_text};

static void
table_free(struct conn_table *t)
{
    for (unsigned i = 0; i < CL_SHARDS; i++)
        pthread_mutex_destroy(&t->shards[i].lock);
    free(t->slots);
    free(t->ident);
    free(t->key_text);
    free(t);
}

static void
table_unref(struct conn_table *t)
{
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        table_free(t);
}

static struct conn_table *
table_new(const char *ident, bool priv, const char *key_text, uint64_t size)
{
    struct conn_table *t = aligned_alloc(CACHELINE, sizeof(*t));
    if (!t)
        return NULL;
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < CL_SHARDS; i++)
        pthread_mutex_init(&t->shards[i].lock, NULL);
    uint64_t nsets = size / (CL_WAYS * sizeof(struct conn_slot));
    if (nsets == 0)
        nsets = 1;
    if (nsets > UINT32_MAX / CL_WAYS)
        nsets = UINT32_MAX / CL_WAYS;
    t->nsets = (uint32_t)nsets;
    t->slots = calloc((size_t)nsets * CL_WAYS, sizeof(struct conn_slot));
    t->ident = strdup(ident);
    t->key_text = strdup(key_text ? key_text : "");
    if (!t->slots || !t->ident || !t->key_text) {
        table_free(t);
        return NULL;
    }
    for (size_t i = 0; i < (size_t)nsets * CL_WAYS; i++)
        t->slots[i].t = t;
    t->private_zone = priv;
    t->size = size;
    atomic_init(&t->refs, 1);
    if (random_bytes(&t->seed, sizeof(t->seed)) < 0)
        t->seed = time_mono_ns() ^ (uintptr_t)t;
    return t;
}

/* The identity of the private zone of <vs>: its listen addresses, which stay the
 * same across reloads (its position in the file need not). */
static void
private_ident(const struct conf_vserver *vs, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < vs->nlistens && n < cap; i++) {
        int w = snprintf(out + n, cap - n, "%s%s", i ? "," : "", vs->listens[i].text);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    if (vs->nlistens == 0)
        snprintf(out, cap, "%s:%u", vs->pos.file ? vs->pos.file : "?", (unsigned)vs->pos.line);
}

struct conn_zone *
conn_zone_get(const struct conf *c, const struct conf_vserver *vs, struct err *e)
{
    const struct conf_conn_zone *cz = NULL;
    char ident[1024];
    const char *key_text;
    uint64_t size;
    uint32_t limit;
    bool priv;

    if (vs->conn_zone >= 0) {
        if ((uint32_t)vs->conn_zone >= c->nconn_zones) {
            err_set(e, "limit_conn: zone index %d out of range", (int)vs->conn_zone);
            return NULL;
        }
        cz = &c->conn_zones[vs->conn_zone];
        snprintf(ident, sizeof(ident), "%s", cz->name);
        key_text = cz->key.text;
        size = cz->size;
        limit = vs->conn_zone_limit;
        priv = false;
    } else {
        /* Two blocks on the same addresses would share it: the config has no
         * such blocks (a listen address belongs to one server block). */
        private_ident(vs, ident, sizeof(ident));
        key_text = remote_key.text;
        size = CL_PRIVATE_SIZE;
        limit = vs->limit_conn;
        priv = true;
    }
    if (limit == 0) {
        err_set(e, "limit_conn: a limit of 0 would refuse every connection");
        return NULL;
    }
    struct conn_zone *z = calloc(1, sizeof(*z));
    if (!z) {
        err_set(e, "limit_conn: out of memory");
        return NULL;
    }
    z->limit = limit;
    z->key = cz ? &cz->key : &remote_key;

    pthread_mutex_lock(&reg_lock);
    struct conn_table *t = reg_tables;
    while (t && !(t->private_zone == priv && t->size == size && strcmp(t->ident, ident) == 0 &&
                  strcmp(t->key_text, key_text ? key_text : "") == 0))
        t = t->next;
    if (!t) {
        t = table_new(ident, priv, key_text, size);
        if (!t) {
            pthread_mutex_unlock(&reg_lock);
            free(z);
            err_set(e, "limit_conn zone \"%s\": cannot allocate %llu bytes", ident,
                    (unsigned long long)size);
            return NULL;
        }
        t->next = reg_tables;
        reg_tables = t;
    }
    t->nhandles++;
    z->t = t;
    pthread_mutex_unlock(&reg_lock);
    return z;
}

void
conn_zone_put(struct conn_zone *z)
{
    struct conn_table *t;
    bool last = false;
    if (!z)
        return;
    t = z->t;
    pthread_mutex_lock(&reg_lock);
    if (--t->nhandles == 0) {
        for (struct conn_table **pp = &reg_tables; *pp; pp = &(*pp)->next)
            if (*pp == t) {
                *pp = t->next;
                break;
            }
        last = true;
    }
    pthread_mutex_unlock(&reg_lock);
    if (last) /* slots still held keep the table until released */
        table_unref(t);
    free(z);
}

const struct key_spec *
conn_zone_key(const struct conn_zone *z)
{
    return z->key;
}

struct conn_slot *
conn_zone_acquire(struct conn_zone *z, const char *key, size_t klen)
{
    struct conn_table *t = z->t;
    if (klen == 0)
        return &cl_uncounted;
    XXH128_hash_t h = XXH3_128bits_withSeed(key, klen, t->seed);
    uint64_t tag = h.low64 ? h.low64 : 1;
    uint32_t chk = (uint32_t)h.high64;
    uint32_t set = (uint32_t)(((h.low64 >> 32) * t->nsets) >> 32);
    struct cl_shard *sh = &t->shards[set % CL_SHARDS];
    struct conn_slot *s = &t->slots[(size_t)set * CL_WAYS], *found = NULL, *free_slot = NULL;

    pthread_mutex_lock(&sh->lock);
    for (unsigned i = 0; i < CL_WAYS; i++) {
        if (s[i].tag == tag && s[i].chk == chk) {
            found = &s[i];
            break;
        }
        if (s[i].tag == 0 && !free_slot)
            free_slot = &s[i];
    }
    if (found) {
        if (found->count >= z->limit) {
            pthread_mutex_unlock(&sh->lock);
            return NULL;
        }
        found->count++;
    } else if (free_slot) {
        found = free_slot;
        found->tag = tag;
        found->chk = chk;
        found->count = 1;
        sh->keys++;
    }
    pthread_mutex_unlock(&sh->lock);
    if (!found) {
        log_limited(&t->full_log, 60000, LOG_LVL_WARN,
                    "limit_conn zone \"%s\" is full: a connection was let through uncounted",
                    t->ident);
        return &cl_uncounted;
    }
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return found;
}

void
conn_slot_release(struct conn_slot *s)
{
    if (!s || !s->t)
        return;
    struct conn_table *t = s->t;
    size_t set = (size_t)(s - t->slots) / CL_WAYS;
    struct cl_shard *sh = &t->shards[set % CL_SHARDS];
    pthread_mutex_lock(&sh->lock);
    if (s->count == 0) { /* released twice: a caller bug; keep the table alive */
        pthread_mutex_unlock(&sh->lock);
        return;
    }
    if (--s->count == 0) {
        s->tag = 0;
        s->chk = 0;
        sh->keys--;
    }
    pthread_mutex_unlock(&sh->lock);
    table_unref(t);
}
