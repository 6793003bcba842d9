/* SPDX-License-Identifier: MIT */
/* Unit tests for learned sessions: id syntax, JSON member scanning (nested,
 * escaped, truncated), path patterns, and the sharded TTL/LRU table alone and
 * under four threads. */
#include "config.h"

#include <tether/session.h>

#include <pthread.h>
#include <stdlib.h>

#include "unit.h"

#include <xxhash.h>

static int
json(const char *text, const char *name, struct slice *v)
{
    return learn_json_field(text, strlen(text), name, strlen(name), v);
}

/* The table is keyed by the hash of the id; these keep the tests readable. */
static int
ins(struct session_table *t, const char *id, size_t len, uint64_t server, uint64_t exp)
{
    return session_table_insert(t, XXH3_64bits(id, len), id, len, server, exp);
}

static bool
look(struct session_table *t, const char *id, size_t len, uint64_t now, uint64_t refresh,
     uint64_t *server)
{
    return session_table_lookup(t, XXH3_64bits(id, len), now, refresh, server, NULL);
}

static void
test_id_valid(void)
{
    CHECK(session_id_valid("abc", 3));
    CHECK(session_id_valid("A-Z_a.z~0:9@x+y=", 16));
    CHECK(!session_id_valid("", 0));
    CHECK(!session_id_valid("a b", 3));
    CHECK(!session_id_valid("a/b", 3));
    CHECK(!session_id_valid("a?b", 3));
    CHECK(!session_id_valid("a\0b", 3));
    CHECK(!session_id_valid("caf\xc3\xa9", 5));
    char big[SESSION_ID_MAX + 1];
    memset(big, 'x', sizeof(big));
    CHECK(session_id_valid(big, SESSION_ID_MAX));
    CHECK(!session_id_valid(big, SESSION_ID_MAX + 1));
}

static void
test_json_basic(void)
{
    struct slice v;
    CHECK_INT_EQ(json("{\"session_id\":\"abc-123\"}", "session_id", &v), 1);
    CHECK_MEM_EQ(v.p, v.len, "abc-123");
    CHECK_INT_EQ(json(" \n{ \"a\" : 1 , \"id\"\t:\r\n\"x\" }", "id", &v), 1);
    CHECK_MEM_EQ(v.p, v.len, "x");
    CHECK_INT_EQ(json("{\"id\":\"\"}", "id", &v), 1);
    CHECK_UINT_EQ(v.len, 0);
    /* first of duplicates */
    CHECK_INT_EQ(json("{\"id\":\"one\",\"id\":\"two\"}", "id", &v), 1);
    CHECK_MEM_EQ(v.p, v.len, "one");
    /* not there in a complete object */
    CHECK_INT_EQ(json("{\"a\":\"b\"}", "id", &v), 0);
    CHECK_INT_EQ(json("{}", "id", &v), 0);
    /* a key that merely starts or ends like the name */
    CHECK_INT_EQ(json("{\"idx\":\"no\",\"xid\":\"no\",\"id\":\"yes\"}", "id", &v), 1);
    CHECK_MEM_EQ(v.p, v.len, "yes");
}

static void
test_json_numbers(void)
{
    struct slice v;
    CHECK_INT_EQ(json("{\"id\":12345}", "id", &v), 1);
    CHECK_MEM_EQ(v.p, v.len, "12345");
    CHECK_INT_EQ(json("{\"id\": -1.5e+3 ,\"x\":1}", "id", &v), 1);
    CHECK_MEM_EQ(v.p, v.len, "-1.5e+3");
    CHECK_INT_EQ(json("{\"id\":0}", "id", &v), 1);
    CHECK_MEM_EQ(v.p, v.len, "0");
    /* bad numbers */
    CHECK_INT_EQ(json("{\"id\":01}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"id\":1.}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"id\":-}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"id\":1e}", "id", &v), -1);
    /* a number at the very end may still grow */
    CHECK_INT_EQ(json("{\"id\":123", "id", &v), 0);
}

static void
test_json_nested_skipped(void)
{
    struct slice v;
    const char *t = "{\"meta\":{\"id\":\"inner\",\"list\":[{\"id\":\"deeper\"},[1,2,[3]]]},"
                    "\"arr\":[\"id\",\"}\",\"]\",{}],\"flag\":true,\"none\":null,"
                    "\"id\":\"outer\"}";
    CHECK_INT_EQ(json(t, "id", &v), 1);
    CHECK_MEM_EQ(v.p, v.len, "outer");
    /* only nested: not found at top level */
    CHECK_INT_EQ(json("{\"a\":{\"id\":\"x\"},\"b\":[\"id\"]}", "id", &v), 0);
    /* mismatched brackets in a skipped value */
    CHECK_INT_EQ(json("{\"a\":[1,2},\"id\":\"x\"}", "id", &v), -1);
}

static void
test_json_escapes(void)
{
    struct slice v;
    /* escaped quotes and braces inside skipped strings */
    const char *t = "{\"note\":\"he said \\\"id\\\": \\\"no\\\" } \\\\\","
                    "\"u\":\"\\u0041\\n\\t\\/\",\"id\":\"ok\"}";
    CHECK_INT_EQ(json(t, "id", &v), 1);
    CHECK_MEM_EQ(v.p, v.len, "ok");
    /* escaped keys are never the name; an escaped value is refused */
    CHECK_INT_EQ(json("{\"\\u0069d\":\"x\"}", "id", &v), 0);
    CHECK_INT_EQ(json("{\"id\":\"a\\\"b\"}", "id", &v), -1);
    /* bad escapes, raw control characters */
    CHECK_INT_EQ(json("{\"a\":\"\\x\",\"id\":\"1\"}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"a\":\"\\u12g4\",\"id\":\"1\"}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"a\":\"x\ny\",\"id\":\"1\"}", "id", &v), -1);
}

static void
test_json_truncated(void)
{
    const char *t = "{\"meta\":{\"a\":[1,\"x\\\"y\",{\"b\":null}]},\"n\":-12.5e3,"
                    "\"s\":\"\\u00e9\",\"id\":\"sess-42\"}";
    size_t n = strlen(t);
    struct slice v;
    size_t first = 0;
    /* every proper prefix that stops before the id's closing quote needs more */
    for (size_t k = 0; k <= n; k++) {
        int rc = learn_json_field(t, k, "id", 2, &v);
        if (rc == 1 && !first)
            first = k;
        if (!first)
            CHECK_INT_EQ(rc, 0);
        else
            CHECK_INT_EQ(rc, 1);
    }
    CHECK_UINT_EQ(first, n - 1);
    CHECK_INT_EQ(learn_json_field(t, n, "id", 2, &v), 1);
    CHECK_MEM_EQ(v.p, v.len, "sess-42");
}

static void
test_json_not_object(void)
{
    struct slice v;
    CHECK_INT_EQ(json("[{\"id\":\"x\"}]", "id", &v), -1);
    CHECK_INT_EQ(json("\"id\"", "id", &v), -1);
    CHECK_INT_EQ(json("null", "id", &v), -1);
    CHECK_INT_EQ(json("<html>", "id", &v), -1);
    CHECK_INT_EQ(json("{id:1}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"a\" 1}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"a\":1 \"id\":2}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"a\":1,}", "id", &v), -1);
    CHECK_INT_EQ(json("", "id", &v), 0);
    CHECK_INT_EQ(json("   ", "id", &v), 0);
    /* the value is of another type */
    CHECK_INT_EQ(json("{\"id\":true}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"id\":null}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"id\":{\"v\":1}}", "id", &v), -1);
    CHECK_INT_EQ(json("{\"id\":[\"x\"]}", "id", &v), -1);
}

static void
test_path_pattern(void)
{
    struct path_pattern pat;
    struct err e = {{0}};
    struct slice id;
    CHECK_INT_EQ(path_pattern_parse(&pat, "/webhook/{id}/", &e), 0);
    CHECK_STR_EQ(pat.prefix, "/webhook/");
    CHECK_STR_EQ(pat.suffix, "/");
#define M(p) path_pattern_match(&pat, p, strlen(p), &id)
    CHECK_INT_EQ(M("/webhook/abc/event"), 1);
    CHECK_MEM_EQ(id.p, id.len, "abc");
    CHECK_INT_EQ(M("/webhook/abc/"), 1);
    CHECK_INT_EQ(M("/webhook/abc"), 1);
    CHECK_MEM_EQ(id.p, id.len, "abc");
    CHECK_INT_EQ(M("/webhook/abc?x=/y"), 1);
    CHECK_MEM_EQ(id.p, id.len, "abc");
    CHECK_INT_EQ(M("/webhook/"), 0);
    CHECK_INT_EQ(M("/webhook//x"), 0);
    CHECK_INT_EQ(M("/webhooks/abc/"), 0);
    CHECK_INT_EQ(M("/web"), 0);
    CHECK_INT_EQ(M("/webhook/a%20b/"), 0);

    CHECK_INT_EQ(path_pattern_parse(&pat, "/s/{id}/events", &e), 0);
    CHECK_INT_EQ(M("/s/k1/events"), 1);
    CHECK_MEM_EQ(id.p, id.len, "k1");
    CHECK_INT_EQ(M("/s/k1/events/more?q"), 1);
    CHECK_INT_EQ(M("/s/k1/other"), 0);
    CHECK_INT_EQ(M("/s/k1"), 0);
    CHECK_INT_EQ(M("/s/k1?x"), 0);

    CHECK_INT_EQ(path_pattern_parse(&pat, "/calls/{id}", &e), 0);
    CHECK_INT_EQ(M("/calls/c-9"), 1);
    CHECK_MEM_EQ(id.p, id.len, "c-9");
    CHECK_INT_EQ(M("/calls/c-9/legs"), 1);
    CHECK_MEM_EQ(id.p, id.len, "c-9");
    CHECK_INT_EQ(M("/calls/c-9?full=1"), 1);
    CHECK_MEM_EQ(id.p, id.len, "c-9");

    CHECK_INT_EQ(path_pattern_parse(&pat, "/r/{id}.json", &e), 0);
    CHECK_INT_EQ(M("/r/abc.json"), 1);
    CHECK_MEM_EQ(id.p, id.len, "abc");
    CHECK_INT_EQ(M("/r/abc.xml"), 0);
#undef M

    CHECK_INT_EQ(path_pattern_parse(&pat, "/no/placeholder", &e), -1);
    CHECK(strstr(e.msg, "no {id}") != NULL);
    CHECK_INT_EQ(path_pattern_parse(&pat, "/{id}/{id}", &e), -1);
    CHECK_INT_EQ(path_pattern_parse(&pat, "/{session}/{id}", &e), -1);
    CHECK_INT_EQ(path_pattern_parse(&pat, "webhook/{id}", &e), -1);
    char longp[200];
    memset(longp, 'a', sizeof(longp));
    longp[0] = '/';
    memcpy(longp + 150, "{id}", 5);
    CHECK_INT_EQ(path_pattern_parse(&pat, longp, &e), -1);
}

static void
test_table_basic(void)
{
    struct session_table *t = session_table_new(100, 4);
    uint64_t sid = 0;
    CHECK_INT_EQ(ins(t, "abc", 3, 11, 1000), 0);
    CHECK_INT_EQ(ins(t, "bad id", 6, 11, 1000), -1);
    CHECK_INT_EQ(ins(t, "", 0, 11, 1000), -1);
    CHECK(look(t, "abc", 3, 10, 0, &sid));
    CHECK_UINT_EQ(sid, 11);
    CHECK(!look(t, "abd", 3, 10, 0, &sid));
    CHECK(!look(t, "ab", 2, 10, 0, &sid));
    /* replace */
    CHECK_INT_EQ(ins(t, "abc", 3, 12, 1000), 0);
    CHECK(look(t, "abc", 3, 10, 0, &sid));
    CHECK_UINT_EQ(sid, 12);
    CHECK_UINT_EQ(session_table_count(t), 1);
    session_table_remove(t, XXH3_64bits("abc", 3));
    CHECK(!look(t, "abc", 3, 10, 0, &sid));
    CHECK_UINT_EQ(session_table_count(t), 0);
    session_table_remove(t, XXH3_64bits("abc", 3));
    session_table_free(t);
}

static void
test_table_ttl_refresh(void)
{
    struct session_table *t = session_table_new(100, 4);
    uint64_t sid;
    ins(t, "a", 1, 1, 1000);
    ins(t, "b", 1, 2, 1000);
    CHECK(look(t, "a", 1, 999, 0, &sid));
    CHECK(!look(t, "a", 1, 1000, 0, &sid)); /* expired: removed */
    CHECK_UINT_EQ(session_table_count(t), 1);
    CHECK(!look(t, "a", 1, 0, 0, &sid)); /* gone for good */
    /* refresh moves the expiry */
    CHECK(look(t, "b", 1, 900, 500, &sid));
    CHECK(look(t, "b", 1, 1399, 0, &sid));
    CHECK(!look(t, "b", 1, 1400, 0, &sid));
    session_table_free(t);
}

static void
test_table_lru_order(void)
{
    /* one shard of 3 so eviction order is exact */
    struct session_table *t = session_table_new(3, 1);
    uint64_t sid;
    ins(t, "a", 1, 1, 1000);
    ins(t, "b", 1, 2, 1000);
    ins(t, "c", 1, 3, 1000);
    CHECK(look(t, "a", 1, 0, 1000, &sid)); /* a becomes MRU */
    ins(t, "d", 1, 4, 1000);               /* evicts b */
    CHECK(!look(t, "b", 1, 0, 0, &sid));
    CHECK_UINT_EQ(session_table_evictions(t), 1);
    ins(t, "c", 1, 33, 1000); /* re-insert makes c MRU */
    ins(t, "e", 1, 5, 1000);  /* evicts a */
    CHECK(!look(t, "a", 1, 0, 0, &sid));
    CHECK(look(t, "c", 1, 0, 0, &sid));
    CHECK_UINT_EQ(sid, 33);
    CHECK(look(t, "d", 1, 0, 0, &sid));
    CHECK(look(t, "e", 1, 0, 0, &sid));
    CHECK_UINT_EQ(session_table_evictions(t), 2);
    CHECK_UINT_EQ(session_table_count(t), 3);
    session_table_free(t);
}

static void
test_table_bound(void)
{
    const size_t max = 10000;
    struct session_table *t = session_table_new(max, 16);
    char id[32];
    size_t peak = 0;
    for (unsigned i = 0; i < 1000000; i++) {
        int n = snprintf(id, sizeof(id), "s-%u", i);
        ins(t, id, (size_t)n, i, UINT64_MAX);
        if (i % 50000 == 0) {
            size_t c = session_table_count(t);
            peak = c > peak ? c : peak;
        }
    }
    size_t c = session_table_count(t);
    CHECK(c <= max);
    CHECK(peak <= max);
    CHECK(c >= max * 9 / 10); /* shards fill up evenly */
    CHECK_UINT_EQ(session_table_evictions(t) + c, 1000000);
    /* the most recent ones are still there */
    uint64_t sid;
    CHECK(look(t, "s-999999", 8, 0, 0, &sid));
    CHECK_UINT_EQ(sid, 999999);
    session_table_free(t);

    /* fewer entries than shards */
    t = session_table_new(3, 16);
    for (unsigned i = 0; i < 100; i++) {
        int n = snprintf(id, sizeof(id), "x%u", i);
        ins(t, id, (size_t)n, i, UINT64_MAX);
    }
    CHECK(session_table_count(t) <= 3);
    session_table_free(t);
}

static void
test_table_expire_dump(void)
{
    struct session_table *t = session_table_new(1000, 8);
    char id[16];
    for (unsigned i = 0; i < 100; i++) {
        int n = snprintf(id, sizeof(id), "id%u", i);
        ins(t, id, (size_t)n, i, 1000 + i * 10);
    }
    struct session_entry out[200];
    CHECK_UINT_EQ(session_table_dump(t, 0, out, 200), 100);
    CHECK_UINT_EQ(session_table_dump(t, 0, out, 7), 7);
    /* entries 0..49 expire by 1495 */
    size_t live = session_table_dump(t, 1495, out, 200);
    CHECK_UINT_EQ(live, 50);
    for (size_t i = 0; i < live; i++) {
        CHECK(out[i].expires_ms > 1495);
        CHECK_UINT_EQ(out[i].server_id, strtoul(out[i].id + 2, NULL, 10));
    }
    CHECK_UINT_EQ(session_table_expire(t, 1495, 10), 10);
    CHECK_UINT_EQ(session_table_count(t), 90);
    size_t more = 0;
    for (int k = 0; k < 20; k++)
        more += session_table_expire(t, 1495, 100);
    CHECK_UINT_EQ(more, 40);
    CHECK_UINT_EQ(session_table_count(t), 50);
    CHECK_UINT_EQ(session_table_expire(t, 1495, 100), 0);
    CHECK_UINT_EQ(session_table_expire(t, UINT64_MAX, 1000), 50);
    CHECK_UINT_EQ(session_table_count(t), 0);
    CHECK_UINT_EQ(session_table_evictions(t), 0);
    session_table_free(t);
}

struct worker_arg {
    struct session_table *t;
    unsigned seed;
    size_t max;
    unsigned over; /* count checks that saw more than max */
};

static void *
worker(void *p)
{
    struct worker_arg *a = p;
    uint64_t rng = a->seed * 0x9e3779b97f4a7c15ULL + 1;
    char id[32];
    for (int i = 0; i < 200000; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int n = snprintf(id, sizeof(id), "k%u", (unsigned)(rng % 20000));
        uint64_t sid, now = (uint64_t)i;
        switch (rng >> 60) {
        case 0:
            session_table_remove(a->t, XXH3_64bits(id, (size_t)n));
            break;
        case 1:
            session_table_expire(a->t, now, 16);
            break;
        case 2:
            if (session_table_count(a->t) > a->max)
                a->over++;
            break;
        default:
            if (!look(a->t, id, (size_t)n, now, 5000, &sid))
                ins(a->t, id, (size_t)n, rng, now + 5000);
        }
    }
    return NULL;
}

static void
test_table_threads(void)
{
    const size_t max = 5000;
    struct session_table *t = session_table_new(max, 8);
    pthread_t th[4];
    struct worker_arg args[4];
    for (unsigned i = 0; i < 4; i++) {
        args[i] = (struct worker_arg){t, i + 1, max, 0};
        CHECK_INT_EQ(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_UINT_EQ(args[i].over, 0);
    }
    CHECK(session_table_count(t) <= max);
    printf("     4 threads: %zu entries, %" PRIu64 " evictions\n", session_table_count(t),
           session_table_evictions(t));
    struct session_entry *out = malloc(max * sizeof(*out));
    size_t n = session_table_dump(t, 0, out, max);
    CHECK(n <= max);
    for (size_t i = 0; i < n; i++)
        CHECK(session_id_valid(out[i].id, strlen(out[i].id)));
    free(out);
    session_table_free(t);
}

int
main(void)
{
    RUN(test_id_valid);
    RUN(test_json_basic);
    RUN(test_json_numbers);
    RUN(test_json_nested_skipped);
    RUN(test_json_escapes);
    RUN(test_json_truncated);
    RUN(test_json_not_object);
    RUN(test_path_pattern);
    RUN(test_table_basic);
    RUN(test_table_ttl_refresh);
    RUN(test_table_lru_order);
    RUN(test_table_bound);
    RUN(test_table_expire_dump);
    RUN(test_table_threads);
    return unit_summary();
}
