/* SPDX-License-Identifier: MIT */
/* Unit tests for rate-limit and connection zones: exact limits across threads,
 * bounded memory under a flood of keys, reload semantics, key building, decision
 * fields, limit_conn; plus a micro-benchmark of rl_check (printed, not checked). */
#include "config.h"

#include <tether/http1.h>
#include <tether/ratelimit.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "unit.h"

#define NS_PER_S 1000000000ULL
#define T0       (1000 * NS_PER_S) /* virtual clock start */

static struct key_part kp_remote = {.kind = KEY_REMOTE_ADDR};
static struct key_spec key_remote = {&kp_remote, 1, "$remote_addr"};

static void
zone_conf(struct conf_zone *cz, const char *name, double rate, uint32_t burst, uint64_t size,
          bool nodelay)
{
    memset(cz, 0, sizeof(*cz));
    cz->name = (char *)name;
    cz->key = key_remote;
    cz->rate = rate;
    cz->burst = burst;
    cz->size = size;
    cz->nodelay = nodelay;
    cz->status = 429;
}

static struct rl_zone *
zone_get(const struct conf_zone *cz)
{
    struct err e = {{0}};
    struct rl_zone *z = rl_zone_get(cz, &e);
    if (!z)
        fprintf(stderr, "rl_zone_get: %s\n", e.msg);
    return z;
}

static bool
check1(struct rl_zone *z, const char *key, uint64_t now)
{
    struct rl_decision d;
    rl_check(z, key, strlen(key), now, &d);
    return d.allowed;
}

/* Requests of <key> admitted at <now> until the first denial. */
static unsigned
admits(struct rl_zone *z, const char *key, uint64_t now)
{
    unsigned n = 0;
    while (n < 1000 && check1(z, key, now))
        n++;
    return n;
}

/* ---- (1) exactness across threads ---- */

struct race {
    struct rl_zone *z;
    pthread_barrier_t start;
    _Atomic uint64_t admitted;
};

static void *
race_thread(void *arg)
{
    struct race *r = arg;
    uint64_t n = 0;
    pthread_barrier_wait(&r->start);
    /* 10 s of virtual time in 1 ms steps, 4 tries per step: always saturated. */
    for (uint64_t t = 0; t <= 10 * NS_PER_S; t += NS_PER_S / 1000)
        for (int i = 0; i < 4; i++)
            n += check1(r->z, "203.0.113.7", T0 + t);
    atomic_fetch_add(&r->admitted, n);
    return NULL;
}

static void
race_run(unsigned nthreads)
{
    struct conf_zone cz;
    struct race r;
    pthread_t th[8];
    zone_conf(&cz, "race", 100, 50, 1 << 20, true);
    r.z = zone_get(&cz);
    atomic_init(&r.admitted, 0);
    pthread_barrier_init(&r.start, NULL, nthreads);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, race_thread, &r);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&r.start);
    uint64_t admitted = atomic_load(&r.admitted);
    CHECK_NEAR(admitted, 100 * 10 + 50 + 1, 1);
    struct rl_zone_stats st;
    rl_zone_stats(r.z, &st);
    CHECK_UINT_EQ(st.allowed, admitted);
    CHECK_UINT_EQ(st.allowed + st.limited, (uint64_t)nthreads * 10001 * 4);
    CHECK_UINT_EQ(st.keys, 1);
    rl_zone_put(r.z);
}

static void
test_exact_2_threads(void)
{
    race_run(2);
}

static void
test_exact_4_threads(void)
{
    race_run(4);
}

/* ---- (2) keys are independent ---- */

static void
test_independent_keys(void)
{
    struct conf_zone cz;
    zone_conf(&cz, "indep", 1, 2, 1 << 16, true);
    struct rl_zone *z = zone_get(&cz);
    for (int i = 0; i < 3; i++)
        CHECK(check1(z, "alice", T0));
    CHECK(!check1(z, "alice", T0));
    for (int i = 0; i < 3; i++)
        CHECK(check1(z, "bob", T0));
    CHECK(!check1(z, "bob", T0));
    CHECK(!check1(z, "alice", T0 + NS_PER_S / 2));
    CHECK(check1(z, "alice", T0 + NS_PER_S)); /* one more per second */
    struct rl_zone_stats st;
    rl_zone_stats(z, &st);
    CHECK_UINT_EQ(st.keys, 2);
    CHECK_UINT_EQ(st.allowed, 7);
    CHECK_UINT_EQ(st.limited, 3);
    rl_zone_put(z);
}

/* ---- (3) bounded memory, eviction keeps busy keys ---- */

#define SLOT_BYTES 24 /* per key, documented in ratelimit.c */

static void
flood(struct rl_zone *z, uint64_t start, unsigned n, unsigned salt)
{
    char key[32];
    for (unsigned i = 0; i < n; i++) {
        int len = snprintf(key, sizeof(key), "f%u-%u", salt, i);
        struct rl_decision d;
        rl_check(z, key, (size_t)len, start + (uint64_t)i * 1000, &d); /* 1 s per 1M keys */
    }
}

static void
test_bounded_memory(void)
{
    struct conf_zone cz;
    struct rl_zone_stats st;
    zone_conf(&cz, "flood", 1, 10, 1 << 20, true);
    struct rl_zone *z = zone_get(&cz);
    rl_zone_stats(z, &st);
    uint64_t cap = st.capacity;
    printf("     1 MiB zone: %llu keys, %d bytes per key\n", (unsigned long long)cap, SLOT_BYTES);
    CHECK(cap * SLOT_BYTES <= (1u << 20));
    CHECK(cap >= (1u << 20) / SLOT_BYTES - 64); /* not wasteful either */

    /* The victim uses its burst: TAT = T0 + 11 s, limited for 10 s. */
    for (int i = 0; i < 11; i++)
        CHECK(check1(z, "victim", T0));
    CHECK(!check1(z, "victim", T0));

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 before = mallinfo2();
#endif
    flood(z, T0, 1000000, 1); /* flood keys: TAT <= T0 + 2 s, never idle */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 after = mallinfo2();             /* (zeros under ASan: vacuous there) */
    CHECK(after.uordblks <= before.uordblks + 65536); /* no memory per key */
#endif
    rl_zone_stats(z, &st);
    CHECK_UINT_EQ(st.capacity, cap);
    CHECK(st.keys <= cap);
    CHECK(st.keys >= cap * 9 / 10);
    CHECK(st.evictions >= 1000000 - cap);
    /* Still tracked (it had the largest TAT): one more earned in 1 s, not a
     * fresh burst of 11. */
    CHECK_UINT_EQ(admits(z, "victim", T0 + NS_PER_S), 1);

    /* Later the first flood is idle (reused losslessly), the victim is not:
     * TAT T0 + 12 s at T0 + 6 s leaves 10 - 6 + 1 = 5. */
    flood(z, T0 + 5 * NS_PER_S, 1000000, 2);
    CHECK_UINT_EQ(admits(z, "victim", T0 + 6 * NS_PER_S), 5);
    rl_zone_put(z);
}

/* ---- (4) reload ---- */

struct each_ctx {
    const char *name;
    unsigned seen;
    struct rl_zone *last;
};

static void
each_fn(void *arg, struct rl_zone *z)
{
    struct each_ctx *c = arg;
    if (strcmp(rl_zone_conf(z)->name, c->name) == 0)
        c->seen++, c->last = z;
}

static void
test_reload(void)
{
    struct conf_zone a, b, c;
    struct rl_zone_stats st;
    zone_conf(&a, "reload", 1, 0, 1 << 16, true);
    struct rl_zone *za = zone_get(&a);
    CHECK(check1(za, "k", T0));
    CHECK(!check1(za, "k", T0));

    /* Same rate, burst and size (other settings changed): state kept. */
    zone_conf(&b, "reload", 1, 0, 1 << 16, false);
    b.status = 503;
    struct rl_zone *zb = zone_get(&b);
    CHECK(!check1(zb, "k", T0));
    CHECK(rl_zone_conf(zb) == &b);
    CHECK(rl_zone_conf(za) == &a); /* each generation reads its own settings */
    rl_zone_stats(zb, &st);
    CHECK_UINT_EQ(st.allowed, 1);
    CHECK_UINT_EQ(st.limited, 2);
    rl_zone_put(za); /* the old generation goes: state stays */
    CHECK(!check1(zb, "k", T0));

    /* A changed rate gets fresh state. */
    zone_conf(&c, "reload", 2, 0, 1 << 16, true);
    struct rl_zone *zc = zone_get(&c);
    CHECK(check1(zc, "k", T0));
    rl_zone_stats(zc, &st);
    CHECK_UINT_EQ(st.allowed, 1);
    CHECK_UINT_EQ(st.limited, 0);

    struct each_ctx ec = {"reload", 0, NULL};
    rl_zone_each(each_fn, &ec);
    CHECK_UINT_EQ(ec.seen, 1); /* the newest of the name only */
    CHECK(ec.last == zc);
    rl_zone_put(zb);
    rl_zone_put(zc);
    ec.seen = 0;
    rl_zone_each(each_fn, &ec);
    CHECK_UINT_EQ(ec.seen, 0);

    /* Gone with its last reference: a new get starts afresh. */
    zone_conf(&a, "reload", 1, 0, 1 << 16, true);
    za = zone_get(&a);
    CHECK(check1(za, "k", T0));
    rl_zone_put(za);
    rl_zone_put(NULL);
}

/* ---- (5) keys ---- */

static struct http_head head;

static const char req[] = "GET /x HTTP/1.1\r\n"
                          "Host: a\r\n"
                          "X-Voice-Session-Id: abc\r\n"
                          "Cookie: a=1; sid=\"xyz\"\r\n"
                          "X-Long: %s\r\n"
                          "cookie: other=2\r\n"
                          "X-Empty: \r\n"
                          "\r\n";

static size_t
build(const struct key_spec *k, const struct rl_keyctx *ctx, char *out)
{
    return rl_key_build(k, ctx, out, RL_KEY_MAX);
}

static void
test_key_build(void)
{
    static char buf[4096];
    char longv[301], out[RL_KEY_MAX], out2[RL_KEY_MAX];
    memset(longv, 'L', 300);
    longv[300] = '\0';
    int blen = snprintf(buf, sizeof(buf), req, longv);
    struct http1_limits lim = {65536, 64};
    http_head_init(&head);
    CHECK(http1_parse_request(&head, buf, (size_t)blen, &lim) == blen);
    struct rl_keyctx ctx = {"10.0.0.1", 8, "/x", 2, buf, &head};

    struct key_part p_remote = {KEY_REMOTE_ADDR, NULL, 0};
    struct key_part p_route = {KEY_ROUTE, NULL, 0};
    struct key_part p_hdr = {KEY_HTTP_HEADER, "x-voice-session-id", 18};
    struct key_part p_hdr_uc = {KEY_HTTP_HEADER, "X-VOICE-SESSION-ID", 18};
    struct key_part p_missing = {KEY_HTTP_HEADER, "x-missing", 9};
    struct key_part p_empty = {KEY_HTTP_HEADER, "x-empty", 7};
    struct key_part p_sid = {KEY_COOKIE, "sid", 3};
    struct key_part p_other = {KEY_COOKIE, "other", 5};
    struct key_part p_nocookie = {KEY_COOKIE, "nope", 4};
    struct key_part p_lit = {KEY_LITERAL, "v1", 2};
    struct key_part p_long = {KEY_HTTP_HEADER, "x-long", 6};
    struct key_spec k = {NULL, 1, "test"};
    size_t n;

    k.parts = &p_remote;
    n = build(&k, &ctx, out);
    CHECK_MEM_EQ(out, n, "10.0.0.1");
    k.parts = &p_route;
    n = build(&k, &ctx, out);
    CHECK_MEM_EQ(out, n, "/x");
    k.parts = &p_hdr;
    n = build(&k, &ctx, out);
    CHECK_MEM_EQ(out, n, "abc");
    k.parts = &p_hdr_uc;
    n = build(&k, &ctx, out);
    CHECK_MEM_EQ(out, n, "abc");
    k.parts = &p_lit;
    n = build(&k, &ctx, out);
    CHECK_MEM_EQ(out, n, "v1");
    k.parts = &p_sid;
    n = build(&k, &ctx, out);
    CHECK_MEM_EQ(out, n, "xyz");
    k.parts = &p_other; /* in the second Cookie field */
    n = build(&k, &ctx, out);
    CHECK_MEM_EQ(out, n, "2");
    k.parts = &p_missing;
    CHECK_UINT_EQ(build(&k, &ctx, out), 0);
    k.parts = &p_empty;
    CHECK_UINT_EQ(build(&k, &ctx, out), 0);
    k.parts = &p_nocookie;
    CHECK_UINT_EQ(build(&k, &ctx, out), 0);

    /* Combination: parts joined by 0x1f; any part missing -> not limited. */
    struct key_part combo[4] = {p_remote, p_lit, p_hdr, p_sid};
    k.parts = combo;
    k.nparts = 4;
    n = build(&k, &ctx, out);
    CHECK_MEM_EQ(out, n,
                 "10.0.0.1\x1fv1\x1f"
                 "abc\x1fxyz");
    combo[2] = p_missing;
    CHECK_UINT_EQ(build(&k, &ctx, out), 0);

    /* No head (limit_conn at accept): header parts are missing. */
    struct rl_keyctx bare = {"10.0.0.1", 8, NULL, 0, NULL, NULL};
    k.parts = &p_hdr;
    k.nparts = 1;
    CHECK_UINT_EQ(build(&k, &bare, out), 0);
    k.parts = &p_route;
    CHECK_UINT_EQ(build(&k, &bare, out), 0);

    /* Overlong: hashed down, deterministic, distinct, marked by a leading 0x1f. */
    struct key_part lp[2] = {p_remote, p_long};
    k.parts = lp;
    k.nparts = 2;
    n = build(&k, &ctx, out);
    CHECK_UINT_EQ(n, 33);
    CHECK(out[0] == '\x1f');
    CHECK_UINT_EQ(build(&k, &ctx, out2), n);
    CHECK(memcmp(out, out2, n) == 0);
    struct rl_keyctx ctx2 = ctx;
    ctx2.remote_ip = "10.0.0.2";
    CHECK_UINT_EQ(build(&k, &ctx2, out2), n);
    CHECK(memcmp(out, out2, n) != 0);
    k.parts = &p_long; /* 300 bytes alone */
    k.nparts = 1;
    CHECK_UINT_EQ(build(&k, &ctx, out2), 33);
    CHECK(memcmp(out, out2, n) != 0);

    /* A key of exactly the cap is kept as text. */
    struct key_part exact = {KEY_LITERAL, longv, RL_KEY_MAX};
    char longer[RL_KEY_MAX + 1];
    memset(longer, 'L', sizeof(longer));
    exact.name = longer;
    k.parts = &exact;
    CHECK_UINT_EQ(build(&k, &ctx, out), RL_KEY_MAX);
    exact.len = RL_KEY_MAX + 1;
    CHECK_UINT_EQ(build(&k, &ctx, out), 33);
}

/* ---- (6) decision fields ---- */

static void
test_decision(void)
{
    struct conf_zone cz;
    struct rl_decision d;
    struct rl_zone_stats st;
    zone_conf(&cz, "fields", 10, 4, 1 << 16, false); /* T = 100 ms, paced */
    struct rl_zone *z = zone_get(&cz);
    for (uint32_t i = 0; i < 5; i++) {
        rl_check(z, "k", 1, T0, &d);
        CHECK(d.allowed);
        CHECK_UINT_EQ(d.limit, 5);
        CHECK_UINT_EQ(d.remaining, 4 - i);
        CHECK_UINT_EQ(d.delay_ns, i * 100000000ULL); /* held to the rate */
        CHECK_UINT_EQ(d.reset_s, 1);
        CHECK_UINT_EQ(d.retry_after_s, 0);
    }
    rl_check(z, "k", 1, T0, &d);
    CHECK(!d.allowed);
    CHECK_UINT_EQ(d.remaining, 0);
    CHECK_UINT_EQ(d.retry_after_s, 1); /* 100 ms, rounded up */
    CHECK_UINT_EQ(d.reset_s, 1);
    CHECK_UINT_EQ(d.delay_ns, 0);
    rl_check(z, "k", 1, T0 + 100000000, &d);
    CHECK(d.allowed);
    CHECK_UINT_EQ(d.delay_ns, 400000000);
    rl_zone_stats(z, &st);
    CHECK_UINT_EQ(st.allowed, 6);
    CHECK_UINT_EQ(st.limited, 1);
    CHECK_UINT_EQ(st.delayed, 5);
    rl_zone_count_limited(z);
    rl_zone_stats(z, &st);
    CHECK_UINT_EQ(st.limited, 2);
    rl_zone_put(z);

    zone_conf(&cz, "fields-nodelay", 1.0 / 60, 2, 1 << 16, true); /* 1 r/m */
    z = zone_get(&cz);
    for (uint32_t i = 0; i < 3; i++) {
        rl_check(z, "k", 1, T0, &d);
        CHECK(d.allowed);
        CHECK_UINT_EQ(d.delay_ns, 0);
        CHECK_UINT_EQ(d.reset_s, 60 * (i + 1));
    }
    rl_check(z, "k", 1, T0 + 1, &d);
    CHECK(!d.allowed);
    CHECK_UINT_EQ(d.limit, 3);
    CHECK_UINT_EQ(d.retry_after_s, 60);
    CHECK_UINT_EQ(d.reset_s, 180);
    rl_check(z, "k", 1, T0 + 60 * NS_PER_S, &d);
    CHECK(d.allowed);
    CHECK_UINT_EQ(d.remaining, 0);
    rl_zone_stats(z, &st);
    CHECK_UINT_EQ(st.delayed, 0);
    rl_zone_put(z);
}

/* ---- (7) limit_conn ---- */

struct conn_race {
    struct conn_zone *z;
    pthread_barrier_t start;
    _Atomic int held;
    _Atomic int max_held;
    _Atomic unsigned ok;
};

static void *
conn_thread(void *arg)
{
    struct conn_race *r = arg;
    pthread_barrier_wait(&r->start);
    for (int i = 0; i < 20000; i++) {
        struct conn_slot *s = conn_zone_acquire(r->z, "198.51.100.1", 12);
        if (!s)
            continue;
        int h = atomic_fetch_add(&r->held, 1) + 1;
        int m = atomic_load(&r->max_held);
        while (h > m && !atomic_compare_exchange_weak(&r->max_held, &m, h))
            ;
        atomic_fetch_add(&r->ok, 1);
        atomic_fetch_sub(&r->held, 1);
        conn_slot_release(s);
    }
    return NULL;
}

static struct conn_zone *
czone_get(const struct conf *c, const struct conf_vserver *vs)
{
    struct err e = {{0}};
    struct conn_zone *z = conn_zone_get(c, vs, &e);
    if (!z)
        fprintf(stderr, "conn_zone_get: %s\n", e.msg);
    return z;
}

static void
test_conn_zones(void)
{
    struct conf c;
    struct conf_conn_zone czs[2];
    struct conf_vserver va, vb, vp;
    struct conf_listen lp;
    memset(&c, 0, sizeof(c));
    memset(czs, 0, sizeof(czs));
    memset(&va, 0, sizeof(va));
    memset(&lp, 0, sizeof(lp));
    czs[0].name = "perip";
    czs[0].key = key_remote;
    czs[0].size = 1 << 16;
    czs[1].name = "tiny";
    czs[1].key = key_remote;
    czs[1].size = 16 * 24; /* one set of 16 keys */
    c.conn_zones = czs;
    c.nconn_zones = 2;
    va.conn_zone = 0;
    va.conn_zone_limit = 2;
    vb = va;
    vb.conn_zone_limit = 3;
    vp = va;
    vp.conn_zone = -1;
    vp.limit_conn = 2;
    strcpy(lp.text, "127.0.0.1:8080");
    vp.listens = &lp;
    vp.nlistens = 1;

    /* Private zone (limit_conn 2, per $remote_addr). */
    struct conn_zone *zp = czone_get(&c, &vp);
    CHECK(conn_zone_key(zp)->nparts == 1 && conn_zone_key(zp)->parts[0].kind == KEY_REMOTE_ADDR);
    struct conn_slot *s1 = conn_zone_acquire(zp, "a", 1), *s2 = conn_zone_acquire(zp, "a", 1);
    CHECK(s1 && s2);
    CHECK(conn_zone_acquire(zp, "a", 1) == NULL);
    struct conn_slot *sb = conn_zone_acquire(zp, "b", 1); /* another key: independent */
    CHECK(sb != NULL);
    conn_slot_release(s1);
    s1 = conn_zone_acquire(zp, "a", 1);
    CHECK(s1 != NULL);
    CHECK(conn_zone_acquire(zp, "a", 1) == NULL);
    conn_slot_release(s1);
    conn_slot_release(s2);
    conn_slot_release(sb);

    /* Threads: never more than 2 at once, counts back to 0 afterwards. */
    struct conn_race r = {.z = zp};
    pthread_t th[4];
    pthread_barrier_init(&r.start, NULL, 4);
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, conn_thread, &r);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&r.start);
    CHECK(atomic_load(&r.max_held) <= 2);
    CHECK(atomic_load(&r.ok) > 0);
    s1 = conn_zone_acquire(zp, "198.51.100.1", 12);
    s2 = conn_zone_acquire(zp, "198.51.100.1", 12);
    CHECK(s1 && s2);
    CHECK(conn_zone_acquire(zp, "198.51.100.1", 12) == NULL);
    conn_slot_release(s1);
    conn_slot_release(s2);

    /* A reload keeps the private zone of the same listen addresses. */
    struct conn_zone *zp2 = czone_get(&c, &vp);
    s1 = conn_zone_acquire(zp, "a", 1);
    s2 = conn_zone_acquire(zp2, "a", 1);
    CHECK(s1 && s2);
    CHECK(conn_zone_acquire(zp2, "a", 1) == NULL);
    conn_zone_put(zp);
    conn_slot_release(s1); /* a slot may outlive its zone handle */
    conn_slot_release(s2);
    conn_zone_put(zp2);

    /* Named zone shared by two server blocks, each with its own limit. */
    struct conn_zone *za = czone_get(&c, &va), *zb = czone_get(&c, &vb);
    struct conn_slot *held[4];
    held[0] = conn_zone_acquire(za, "x", 1);
    held[1] = conn_zone_acquire(za, "x", 1);
    CHECK(held[0] && held[1]);
    CHECK(conn_zone_acquire(za, "x", 1) == NULL);
    held[2] = conn_zone_acquire(zb, "x", 1);
    CHECK(held[2] != NULL);
    CHECK(conn_zone_acquire(zb, "x", 1) == NULL);
    CHECK(conn_zone_key(za) == &czs[0].key);
    conn_zone_put(za); /* slots keep the table */
    conn_zone_put(zb);
    for (int i = 0; i < 3; i++)
        conn_slot_release(held[i]);

    /* Full table: new keys pass uncounted; released slots are reused. */
    struct conf_vserver vt = va;
    vt.conn_zone = 1;
    vt.conn_zone_limit = 1;
    struct conn_zone *zt = czone_get(&c, &vt);
    struct conn_slot *tiny[17];
    char key[16];
    for (int i = 0; i < 17; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        tiny[i] = conn_zone_acquire(zt, key, (size_t)n);
        CHECK(tiny[i] != NULL);
    }
    CHECK(conn_zone_acquire(zt, "k0", 2) == NULL);             /* counted */
    struct conn_slot *extra = conn_zone_acquire(zt, "k16", 3); /* uncounted */
    CHECK(extra != NULL);
    conn_slot_release(extra);
    for (int i = 0; i < 17; i++)
        conn_slot_release(tiny[i]);
    for (int i = 0; i < 16; i++) {
        int n = snprintf(key, sizeof(key), "n%d", i);
        tiny[i] = conn_zone_acquire(zt, key, (size_t)n);
        CHECK(tiny[i] != NULL);
        CHECK(conn_zone_acquire(zt, key, (size_t)n) == NULL);
    }
    for (int i = 0; i < 16; i++)
        conn_slot_release(tiny[i]);
    conn_zone_put(zt);
    conn_zone_put(NULL);
    conn_slot_release(NULL);
}

/* ---- micro-benchmark ---- */

struct bench {
    struct rl_zone *z;
    pthread_barrier_t start;
    unsigned iters;
    bool shared_key; /* all threads on one key */
    bool over;       /* hammered key: denials */
    _Atomic unsigned id;
};

static void *
bench_thread(void *arg)
{
    struct bench *b = arg;
    static char keys[4][1024][16]; /* built before timing: snprintf costs more than rl_check */
    unsigned me = atomic_fetch_add(&b->id, 1);
    size_t lens[1024];
    struct rl_decision d;
    uint64_t now = T0, step = b->over ? 0 : 1000;
    for (unsigned i = 0; i < 1024; i++)
        lens[i] = b->shared_key
                      ? (size_t)snprintf(keys[me][i], 16, "198.51.100.1")
                      : (size_t)snprintf(keys[me][i], 16, "10.%u.%u.%u", me, i >> 8, i & 255);
    pthread_barrier_wait(&b->start);
    for (unsigned i = 0; i < b->iters; i++, now += step)
        rl_check(b->z, keys[me][i & 1023], lens[i & 1023], now, &d);
    return NULL;
}

static double
bench_run(unsigned nthreads, bool shared_key, bool over, unsigned iters)
{
    struct conf_zone cz;
    struct bench b = {.iters = iters, .shared_key = shared_key, .over = over};
    pthread_t th[4];
    zone_conf(&cz, "bench", over ? 1 : 1e9, over ? 0 : 1000, 10 << 20, false);
    b.z = zone_get(&cz);
    atomic_init(&b.id, 0);
    pthread_barrier_init(&b.start, NULL, nthreads);
    uint64_t t = time_mono_ns();
    for (unsigned i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, bench_thread, &b);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    t = time_mono_ns() - t;
    pthread_barrier_destroy(&b.start);
    rl_zone_put(b.z);
    return (double)t / iters; /* wall time per decision of one thread */
}

static void
bench_print(void)
{
    const char *env = getenv("RL_BENCH_ITERS");
    unsigned iters = env ? (unsigned)atoi(env) : 2000000;
    if (iters == 0)
        return;
    printf("     rl_check ns/decision (wall per thread, %u each):\n", iters);
    printf("       1 thread, 1024 keys, admitted: %6.1f\n", bench_run(1, false, false, iters));
    printf("       1 thread, 1 key, admitted:     %6.1f\n", bench_run(1, true, false, iters));
    printf("       1 thread, 1 key, denied:       %6.1f\n", bench_run(1, true, true, iters));
    printf("       2 threads, own keys, admitted: %6.1f\n", bench_run(2, false, false, iters));
    printf("       2 threads, 1 key, admitted:    %6.1f\n", bench_run(2, true, false, iters));
    printf("       2 threads, 1 key, denied:      %6.1f\n", bench_run(2, true, true, iters));
}

int
main(void)
{
    RUN(test_exact_2_threads);
    RUN(test_exact_4_threads);
    RUN(test_independent_keys);
    RUN(test_bounded_memory);
    RUN(test_reload);
    RUN(test_key_build);
    RUN(test_decision);
    RUN(test_conn_zones);
    bench_print();
    return unit_summary();
}
