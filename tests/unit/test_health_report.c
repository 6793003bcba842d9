/* SPDX-License-Identifier: MIT */
/* Unit tests for the pod's load report parser (src/health_report.c): the three
 * members, configurable names, strict syntax, size, depth and value bounds. */
#include "config.h"

#include <tether/health_report.h>

#include <stdlib.h>
#include <string.h>

#include "unit.h"

static const struct hrep_fields DFLT = {"status", 6, "active_sessions", 15, "max_sessions", 12};

static int
parse(const char *text, struct health_report *r, size_t *off)
{
    return health_report_parse(text, strlen(text), &DFLT, r, off);
}

static void
test_basic(void)
{
    struct health_report r;
    size_t off = 99;
    CHECK_INT_EQ(
        parse("{\"status\": \"healthy\", \"active_sessions\": 37, \"max_sessions\": 50}", &r, &off),
        0);
    CHECK_UINT_EQ(off, 0);
    CHECK_INT_EQ(r.status, HREP_HEALTHY);
    CHECK_UINT_EQ(r.active, 37);
    CHECK(r.has_max);
    CHECK_UINT_EQ(r.max, 50);
    CHECK_INT_EQ(parse(" {\"active_sessions\":0}\n", &r, NULL), 0);
    CHECK_INT_EQ(r.status, HREP_NONE);
    CHECK(!r.has_max);
    CHECK_INT_EQ(parse("{\"status\":\"draining\",\"active_sessions\":3.0}", &r, NULL), 0);
    CHECK_INT_EQ(r.status, HREP_DRAINING);
    CHECK_UINT_EQ(r.active, 3);
    CHECK_INT_EQ(parse("{\"status\":\"degraded\",\"active_sessions\":1}", &r, NULL), 0);
    CHECK_INT_EQ(r.status, HREP_DEGRADED);
}

static void
test_other_members_and_nesting(void)
{
    struct health_report r;
    const char *t = "{\"pod\":{\"active_sessions\":99,\"x\":[1,2,{\"y\":null}]},"
                    "\"active_sessions\":4,\"ok\":true,\"e\":\"a\\\"b\\u00e9\",\"max_sessions\":5,"
                    "\"active_sessions\":8}";
    CHECK_INT_EQ(parse(t, &r, NULL), 0);
    CHECK_UINT_EQ(r.active, 4); /* the nested one is not the report's; the first counts */
    CHECK_UINT_EQ(r.max, 5);
}

static void
test_custom_names(void)
{
    struct health_report r;
    struct hrep_fields f = {"state", 5, "calls", 5, "limit", 5};
    const char *t = "{\"state\":\"healthy\",\"calls\":2,\"limit\":7,\"active_sessions\":40}";
    CHECK_INT_EQ(health_report_parse(t, strlen(t), &f, &r, NULL), 0);
    CHECK_UINT_EQ(r.active, 2);
    CHECK_UINT_EQ(r.max, 7);
}

static void
test_rejected(void)
{
    struct health_report r;
    size_t off = 0;
    CHECK_INT_EQ(parse("", &r, NULL), HREP_E_SYNTAX);
    CHECK_INT_EQ(parse("OK", &r, NULL), HREP_E_SYNTAX);
    CHECK_INT_EQ(parse("[1]", &r, NULL), HREP_E_SYNTAX);
    CHECK_INT_EQ(parse("{\"active_sessions\":1", &r, NULL), HREP_E_SYNTAX);
    CHECK_INT_EQ(parse("{\"active_sessions\":1} x", &r, &off), HREP_E_SYNTAX);
    CHECK_UINT_EQ(off, 22);
    CHECK_INT_EQ(parse("{\"active_sessions\":01}", &r, NULL), HREP_E_SYNTAX);
    CHECK_INT_EQ(parse("{\"active_sessions\":1,}", &r, NULL), HREP_E_SYNTAX);
    CHECK_INT_EQ(parse("{\"a\":\"\x01\",\"active_sessions\":1}", &r, NULL), HREP_E_SYNTAX);
    CHECK_INT_EQ(parse("{\"a\":\"\\x\",\"active_sessions\":1}", &r, NULL), HREP_E_SYNTAX);
    CHECK_INT_EQ(parse("{\"a\":\"\\u12\",\"active_sessions\":1}", &r, NULL), HREP_E_SYNTAX);
    CHECK_INT_EQ(parse("{\"a\":tru,\"active_sessions\":1}", &r, NULL), HREP_E_SYNTAX);
    CHECK_INT_EQ(parse("{\"status\":\"healthy\"}", &r, NULL), HREP_E_MISSING);
    CHECK_INT_EQ(parse("{\"active_sessions\":-1}", &r, NULL), HREP_E_VALUE);
    CHECK_INT_EQ(parse("{\"active_sessions\":1.5}", &r, NULL), HREP_E_VALUE);
    CHECK_INT_EQ(parse("{\"active_sessions\":1e3}", &r, NULL), HREP_E_VALUE);
    CHECK_INT_EQ(parse("{\"active_sessions\":\"3\"}", &r, NULL), HREP_E_VALUE);
    CHECK_INT_EQ(parse("{\"active_sessions\":99999999999999999999}", &r, NULL), HREP_E_VALUE);
    CHECK_INT_EQ(parse("{\"active_sessions\":1000001}", &r, NULL), HREP_E_VALUE);
    CHECK_INT_EQ(parse("{\"active_sessions\":1,\"max_sessions\":null}", &r, NULL), HREP_E_VALUE);
    CHECK_INT_EQ(parse("{\"status\":\"sleepy\",\"active_sessions\":1}", &r, &off), HREP_E_VALUE);
    CHECK_UINT_EQ(off, 11);
    CHECK_INT_EQ(parse("{\"status\":\"heal\\u0074hy\",\"active_sessions\":1}", &r, NULL),
                 HREP_E_VALUE);
    CHECK_INT_EQ(r.active, 0); /* nothing half-filled on error */
}

static void
test_bounds(void)
{
    struct health_report r;
    char deep[64] = "{\"a\":";
    size_t n = strlen(deep);
    for (int i = 0; i < HREP_MAX_DEPTH; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    CHECK_INT_EQ(parse(deep, &r, NULL), HREP_E_DEPTH);
    /* Just within the bound: depth 8 counting the report. */
    char ok[128] = "{\"a\":";
    n = strlen(ok);
    for (int i = 0; i < HREP_MAX_DEPTH - 1; i++)
        ok[n++] = '[';
    for (int i = 0; i < HREP_MAX_DEPTH - 1; i++)
        ok[n++] = ']';
    memcpy(ok + n, ",\"active_sessions\":2}", 22);
    CHECK_INT_EQ(parse(ok, &r, NULL), 0);
    /* A huge report is refused whole, even a valid one. */
    size_t big = HREP_MAX_BYTES + 100;
    char *b = malloc(big + 1);
    memset(b, ' ', big);
    memcpy(b, "{\"active_sessions\":1}", 21);
    b[big] = '\0';
    CHECK_INT_EQ(health_report_parse(b, big, &DFLT, &r, NULL), HREP_E_SIZE);
    CHECK_INT_EQ(health_report_parse(b, HREP_MAX_BYTES, &DFLT, &r, NULL), 0);
    free(b);
    /* Ten thousand opening brackets: rejected at the depth bound, no recursion. */
    CHECK_INT_EQ(parse("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", &r, NULL), HREP_E_DEPTH);
    CHECK_STR_EQ(health_report_strerror(HREP_E_DEPTH), "nested too deep");
}

int
main(void)
{
    RUN(test_basic);
    RUN(test_other_members_and_nesting);
    RUN(test_custom_names);
    RUN(test_rejected);
    RUN(test_bounds);
    return unit_summary();
}
