/* SPDX-License-Identifier: MIT */
/* Rate-limit zones: GCRA state per key in a set-associative table shared by all
 * workers (a hit is lock-free: one compare-and-swap per admitted request), bounded
 * by the zone's size; request keys built from variables; a registry by name so a
 * reload keeps a zone's state. Connection zones are in conn_limit.c. */
#include "config.h"

#include <tether/ratelimit.h>

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/*
 * The table
 * ---------
 * A key is known only by its 128-bit XXH3 hash (seeded per table): the low half
 * is the tag, the high half the check word. The table is an array of sets of
 * RL_WAYS ways, allocated once at zone creation; a key lives in the set its tag
 * selects. One set is three cache lines:
 *
 *     tag[0..7]                       one line: a lookup scans it
 *     {chk, tatx}[0..7]               two lines: the way found is read/CASed
 *
 * 24 bytes per key, nothing else per key (no text, no pointers, no malloc).
 *
 * Decisions (rl_check) take no lock: find the way (acquire load of the tag, then
 * compare chk), load tatx, check chk again, run gcra_decide, and when admitted
 * CAS the new TAT in; a failed CAS retries with the value seen, so no update is
 * lost however many workers decide for the key. Denials write nothing.
 *
 * A miss takes the shard's mutex (shard = set index mod RL_SHARDS), looks
 * again, and claims a way: a free one, else an idle one (TAT <= now: it carries
 * no information, dropping it is lossless), else the one with the smallest TAT.
 * The claimer writes chk, then tatx (release), then tag (release), so a reader
 * that sees the new tag sees the rest. A reader racing with the replacement of
 * its key's way either sees the new chk after loading tatx (it looks again) or
 * CASes against a value stored for another key: tatx holds TAT xor chk, so that
 * CAS can only succeed if two TATs differ by exactly the xor of two random
 * 64-bit check words. The check word makes the CAS itself verify the key.
 */

#define RL_WAYS    8      /* keys per set: one cache line of tags */
#define RL_SHARDS  64     /* mutexes serialising inserts and evictions */
#define RL_STRIPES 16     /* counter stripes, one per thread (modulo) */
#define KEY_SEP    '\x1f' /* between key parts; a control byte never in a value */

struct rl_set {
    _Atomic uint64_t tag[RL_WAYS]; /* low half of the key hash (never 0); 0 = free way */
    struct {
        _Atomic uint64_t chk;  /* high half of the key hash */
        _Atomic uint64_t tatx; /* theoretical arrival time (ns) xor chk */
    } way[RL_WAYS];
};

_Static_assert(sizeof(struct rl_set) == 3 * CACHELINE, "a set is three cache lines");

struct rl_shard {
    pthread_mutex_t lock;       /* inserts and evictions in the shard's sets */
    _Atomic uint64_t keys;      /* ways in use */
    _Atomic uint64_t evictions; /* ways taken from a key that was not idle */
} __attribute__((aligned(CACHELINE)));

/* Counters of one stripe: threads pick a stripe once, so they rarely share a line. */
struct rl_stripe {
    _Atomic uint64_t allowed; /* admitted */
    _Atomic uint64_t limited; /* denied */
    _Atomic uint64_t delayed; /* admitted with a delay (not nodelay) */
} __attribute__((aligned(CACHELINE)));

/* The state of a zone, shared by the generations whose zone has the same name,
 * rate, burst and size. */
struct rl_table {
    struct rl_shard shards[RL_SHARDS];
    struct rl_stripe stripes[RL_STRIPES];
    struct rl_table *next;   /* registry list, newest first */
    struct rl_zone *handles; /* live handles, newest first (registry lock) */
    uint32_t nhandles;       /* length of handles (registry lock) */
    char *name;              /* copy of the zone name */
    double rate;             /* identity: requests per second */
    uint32_t burst;          /* identity */
    uint64_t size;           /* identity: bytes configured */
    struct gcra_params gp;   /* from rate and burst */
    uint64_t seed;           /* key hash seed, random per table */
    uint32_t nsets;          /* sets in sets[] */
    struct rl_set *sets;     /* aligned view of mem */
    void *mem;               /* the allocation behind sets */
};

/* What a generation holds: the shared table plus its own configuration, so the
 * request path reads the settings of its generation, never another's. */
struct rl_zone {
    struct rl_table *t;           /* shared state */
    const struct conf_zone *conf; /* the generation's conf (lives as long as it) */
    struct rl_zone *next;         /* t->handles list */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl_table *reg_tables; /* newest first */

static _Atomic unsigned stripe_next;
static _Thread_local unsigned stripe_mine = UINT_MAX;

static inline struct rl_stripe *
stripe_get(struct rl_table *t)
{
    if (unlikely(stripe_mine == UINT_MAX))
        stripe_mine = atomic_fetch_add_explicit(&stripe_next, 1, memory_order_relaxed) % RL_STRIPES;
    return &t->stripes[stripe_mine];
}

/* ---- keys ---- */

/* The value of one key part; false when it is missing or empty (a variable that
 * is empty does not identify a client: nginx skips such requests too). */
static bool
part_value(const struct key_part *kp, const struct rl_keyctx *ctx, struct slice *v)
{
    int i;
    v->p = NULL;
    v->len = 0;
    switch (kp->kind) {
    case KEY_REMOTE_ADDR:
        v->p = ctx->remote_ip;
        v->len = ctx->remote_ip_len;
        break;
    case KEY_ROUTE:
        v->p = ctx->route;
        v->len = ctx->route_len;
        break;
    case KEY_LITERAL:
        v->p = kp->name;
        v->len = kp->len;
        return true;
    case KEY_HTTP_HEADER:
        if (!ctx->h || !ctx->buf)
            return false;
        i = http_head_find(ctx->h, ctx->buf, kp->name, kp->len);
        if (i < 0)
            return false;
        v->p = ctx->buf + ctx->h->fields[i].value_off;
        v->len = ctx->h->fields[i].value_len;
        break;
    case KEY_COOKIE:
        if (!ctx->h || !ctx->buf || !http_head_cookie(ctx->h, ctx->buf, kp->name, kp->len, v))
            return false;
        break;
    default:
        return false;
    }
    return v->p && v->len > 0;
}

/* acc = H(acc || H(p[0..n))): a deterministic 128-bit digest of a long key, fed
 * part by part so no buffer of the full key is needed. */
static void
key_fold(XXH128_hash_t *acc, const char *p, size_t n)
{
    XXH128_hash_t d = XXH3_128bits(p, n);
    uint64_t blk[4] = {acc->low64, acc->high64, d.low64, d.high64};
    *acc = XXH3_128bits(blk, sizeof(blk));
}

size_t
rl_key_build(const struct key_spec *k, const struct rl_keyctx *ctx, char *out, size_t cap)
{
    XXH128_hash_t acc = {0, 0};
    bool hashing = false;
    size_t n = 0;
    if (cap < 34) /* room for the hashed form */
        return 0;
    for (uint32_t i = 0; i < k->nparts; i++) {
        struct slice v;
        if (!part_value(&k->parts[i], ctx, &v))
            return 0;
        if (!hashing && n + (i > 0) + v.len <= cap) {
            if (i > 0)
                out[n++] = KEY_SEP;
            memcpy(out + n, v.p, v.len);
            n += v.len;
            continue;
        }
        if (!hashing) { /* too long: digest what is built, then the rest */
            acc = XXH3_128bits(out, n);
            hashing = true;
        }
        key_fold(&acc, v.p, v.len);
    }
    if (!hashing)
        return n;
    /* KEY_SEP first: no key built from parts starts with it, so a digest never
     * equals a literal key. */
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, acc);
    out[0] = KEY_SEP;
    hex_encode(out + 1, c.digest, sizeof(c.digest));
    return 1 + 2 * sizeof(c.digest);
}

/* ---- the table ---- */

struct rl_hkey {
    uint64_t tag; /* low half of the hash, never 0 */
    uint64_t chk; /* high half */
    uint32_t set; /* set index */
};

static inline void
key_hash(const struct rl_table *t, const char *key, size_t klen, struct rl_hkey *k)
{
    XXH128_hash_t h = XXH3_128bits_withSeed(key, klen, t->seed);
    k->tag = h.low64 ? h.low64 : 1;
    k->chk = h.high64;
    k->set = (uint32_t)(((h.low64 >> 32) * t->nsets) >> 32); /* range reduction */
}

/* Way of <k> in <s>, or -1. */
static inline int
set_find(struct rl_set *s, const struct rl_hkey *k)
{
    for (int i = 0; i < RL_WAYS; i++)
        if (atomic_load_explicit(&s->tag[i], memory_order_acquire) == k->tag &&
            atomic_load_explicit(&s->way[i].chk, memory_order_relaxed) == k->chk)
            return i;
    return -1;
}

/* Decide on way <i> with a CAS loop. false when the way no longer holds the key
 * (it was evicted meanwhile): the caller looks again. */
static inline bool
way_decide(const struct rl_table *t, struct rl_set *s, int i, uint64_t chk, uint64_t now,
           struct gcra_result *r)
{
    _Atomic uint64_t *tatx = &s->way[i].tatx;
    uint64_t x = atomic_load_explicit(tatx, memory_order_acquire), nt;
    for (;;) {
        /* After the acquire load: if x was stored for another key, its chk shows. */
        if (atomic_load_explicit(&s->way[i].chk, memory_order_relaxed) != chk)
            return false;
        gcra_decide(x ^ chk, now, &t->gp, &nt, r);
        if (!r->allowed)
            return true;
        if (atomic_compare_exchange_weak_explicit(tatx, &x, nt ^ chk, memory_order_acq_rel,
                                                  memory_order_acquire))
            return true;
    }
}

/* Miss: under the shard lock, find <k> again (another worker may have added it)
 * or claim a way for it and decide its first request into <r>. Returns the way
 * when found (the caller decides), -1 when inserted and decided. */
static int
set_claim(struct rl_table *t, struct rl_set *s, const struct rl_hkey *k, uint64_t now,
          struct gcra_result *r)
{
    struct rl_shard *sh = &t->shards[k->set % RL_SHARDS];
    int victim = 0;
    bool used = true, idle = false;
    uint64_t oldest = UINT64_MAX, nt;

    pthread_mutex_lock(&sh->lock);
    int i = set_find(s, k);
    if (i >= 0) {
        pthread_mutex_unlock(&sh->lock);
        return i;
    }
    for (int w = 0; w < RL_WAYS; w++) {
        if (atomic_load_explicit(&s->tag[w], memory_order_relaxed) == 0) {
            victim = w, used = false;
            break;
        }
        uint64_t c = atomic_load_explicit(&s->way[w].chk, memory_order_relaxed);
        uint64_t tat = atomic_load_explicit(&s->way[w].tatx, memory_order_relaxed) ^ c;
        if (tat <= now) { /* idle: lossless to drop */
            victim = w, idle = true;
            break;
        }
        if (tat < oldest)
            oldest = tat, victim = w;
    }
    gcra_decide(0, now, &t->gp, &nt, r);
    atomic_store_explicit(&s->way[victim].chk, k->chk, memory_order_relaxed);
    atomic_store_explicit(&s->way[victim].tatx, nt ^ k->chk, memory_order_release);
    atomic_store_explicit(&s->tag[victim], k->tag, memory_order_release);
    if (!used)
        atomic_fetch_add_explicit(&sh->keys, 1, memory_order_relaxed);
    else if (!idle)
        atomic_fetch_add_explicit(&sh->evictions, 1, memory_order_relaxed);
    pthread_mutex_unlock(&sh->lock);
    return -1;
}

static uint32_t
ceil_s(uint64_t ns)
{
    uint64_t s = ns / 1000000000u + (ns % 1000000000u != 0);
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

void
rl_check(struct rl_zone *z, const char *key, size_t klen, uint64_t now_ns, struct rl_decision *d)
{
    struct rl_table *t = z->t;
    struct gcra_result r;
    struct rl_hkey k;
    key_hash(t, key, klen, &k);
    struct rl_set *s = &t->sets[k.set];
    for (;;) {
        int i = set_find(s, &k);
        if (i < 0 && (i = set_claim(t, s, &k, now_ns, &r)) < 0)
            break;
        if (way_decide(t, s, i, k.chk, now_ns, &r))
            break;
    }

    struct rl_stripe *st = stripe_get(t);
    d->allowed = r.allowed;
    d->limit = t->gp.limit;
    d->remaining = r.remaining;
    d->reset_s = ceil_s(r.reset_ns);
    d->retry_after_s = 0;
    d->delay_ns = 0;
    if (!r.allowed) {
        uint32_t ra = ceil_s(r.retry_after_ns);
        d->retry_after_s = ra ? ra : 1;
        atomic_fetch_add_explicit(&st->limited, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&st->allowed, 1, memory_order_relaxed);
    if (r.delay_ns && !z->conf->nodelay) {
        d->delay_ns = r.delay_ns;
        atomic_fetch_add_explicit(&st->delayed, 1, memory_order_relaxed);
    }
}

void
rl_zone_count_limited(struct rl_zone *z)
{
    atomic_fetch_add_explicit(&stripe_get(z->t)->limited, 1, memory_order_relaxed);
}

void
rl_zone_count_allowed(struct rl_zone *z)
{
    atomic_fetch_add_explicit(&stripe_get(z->t)->allowed, 1, memory_order_relaxed);
}

void
rl_zone_stats(struct rl_zone *z, struct rl_zone_stats *out)
{
    const struct rl_table *t = z->t;
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < RL_STRIPES; i++) {
        out->allowed += atomic_load_explicit(&t->stripes[i].allowed, memory_order_relaxed);
        out->limited += atomic_load_explicit(&t->stripes[i].limited, memory_order_relaxed);
        out->delayed += atomic_load_explicit(&t->stripes[i].delayed, memory_order_relaxed);
    }
    for (unsigned i = 0; i < RL_SHARDS; i++) {
        out->keys += atomic_load_explicit(&t->shards[i].keys, memory_order_relaxed);
        out->evictions += atomic_load_explicit(&t->shards[i].evictions, memory_order_relaxed);
    }
    out->capacity = (uint64_t)t->nsets * RL_WAYS;
}

/* ---- zones and the registry ---- */

static void
table_free(struct rl_table *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < RL_SHARDS; i++)
        pthread_mutex_destroy(&t->shards[i].lock);
    free(t->mem);
    free(t->name);
    free(t);
}

/* A table of as many sets as <cz>->size holds (at least one), all memory now. */
static struct rl_table *
table_new(const struct conf_zone *cz)
{
    struct rl_table *t = aligned_alloc(CACHELINE, sizeof(*t));
    if (!t)
        return NULL;
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < RL_SHARDS; i++)
        pthread_mutex_init(&t->shards[i].lock, NULL);
    uint64_t nsets = cz->size / sizeof(struct rl_set);
    if (nsets == 0)
        nsets = 1;
    if (nsets > UINT32_MAX)
        nsets = UINT32_MAX;
    t->nsets = (uint32_t)nsets;
    /* calloc: large blocks come zeroed from mmap, so pages are only touched as
     * keys arrive; over-allocate one line to align the sets. */
    t->mem = calloc(1, (size_t)nsets * sizeof(struct rl_set) + CACHELINE);
    t->name = strdup(cz->name ? cz->name : "");
    if (!t->mem || !t->name) {
        table_free(t);
        return NULL;
    }
    t->sets = (struct rl_set *)(((uintptr_t)t->mem + CACHELINE - 1) & ~(uintptr_t)(CACHELINE - 1));
    t->rate = cz->rate;
    t->burst = cz->burst;
    t->size = cz->size;
    gcra_params_init(&t->gp, cz->rate, cz->burst);
    if (random_bytes(&t->seed, sizeof(t->seed)) < 0)
        t->seed = time_mono_ns() ^ (uintptr_t)t;
    return t;
}

struct rl_zone *
rl_zone_get(const struct conf_zone *cz, struct err *e)
{
    struct rl_zone *z = calloc(1, sizeof(*z));
    if (!z) {
        err_set(e, "rate_limit_zone \"%s\": out of memory", cz->name);
        return NULL;
    }
    pthread_mutex_lock(&reg_lock);
    struct rl_table *t = reg_tables;
    /* The newest table of the name whose state means the same thing: a changed
     * rate, burst or size starts afresh (old TATs encode the old rate). */
    while (t && !(strcmp(t->name, cz->name) == 0 && t->rate == cz->rate && t->burst == cz->burst &&
                  t->size == cz->size))
        t = t->next;
    if (!t) {
        t = table_new(cz);
        if (!t) {
            pthread_mutex_unlock(&reg_lock);
            free(z);
            err_set(e, "rate_limit_zone \"%s\": cannot allocate %llu bytes", cz->name,
                    (unsigned long long)cz->size);
            return NULL;
        }
        t->next = reg_tables;
        reg_tables = t;
    }
    t->nhandles++;
    z->t = t;
    z->conf = cz;
    z->next = t->handles;
    t->handles = z;
    pthread_mutex_unlock(&reg_lock);
    return z;
}

void
rl_zone_put(struct rl_zone *z)
{
    struct rl_table *t, *dead = NULL;
    if (!z)
        return;
    t = z->t;
    pthread_mutex_lock(&reg_lock);
    for (struct rl_zone **pp = &t->handles; *pp; pp = &(*pp)->next)
        if (*pp == z) {
            *pp = z->next;
            break;
        }
    if (--t->nhandles == 0) {
        for (struct rl_table **pp = &reg_tables; *pp; pp = &(*pp)->next)
            if (*pp == t) {
                *pp = t->next;
                break;
            }
        dead = t;
    }
    pthread_mutex_unlock(&reg_lock);
    table_free(dead);
    free(z);
}

const struct conf_zone *
rl_zone_conf(const struct rl_zone *z)
{
    return z->conf;
}

/* <fn> runs under the registry lock: it may read the zone (rl_zone_conf,
 * rl_zone_stats) but must not get or put zones. */
void
rl_zone_each(void (*fn)(void *ctx, struct rl_zone *z), void *ctx)
{
    pthread_mutex_lock(&reg_lock);
    for (struct rl_table *t = reg_tables; t; t = t->next) {
        /* During a reload an older table of the same name may still be held by
         * the old generation: report the newest only. */
        bool shadowed = false;
        for (struct rl_table *n = reg_tables; n != t && !shadowed; n = n->next)
            shadowed = strcmp(n->name, t->name) == 0;
        if (!shadowed)
            fn(ctx, t->handles);
    }
    pthread_mutex_unlock(&reg_lock);
}
