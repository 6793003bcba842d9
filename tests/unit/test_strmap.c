/* SPDX-License-Identifier: MIT */
/* strmap: lookups, replacement, and deletion under churn checked against a
 * plain array (backward-shift deletion must keep every other key findable). */
#include "config.h"

#include "unit.h"

#include <tether/strmap.h>

#include <stdio.h>
#include <stdlib.h>

#define NKEYS 3000

static char keys[NKEYS][24];

static void
test_basic(void)
{
    struct strmap m = {0};
    int a = 1, b = 2;
    CHECK(strmap_get(&m, "x") == NULL);
    strmap_del(&m, "x"); /* empty map: nothing happens */
    CHECK(strmap_put(&m, "x", &a));
    CHECK(strmap_get(&m, "x") == &a);
    CHECK(strmap_put(&m, "x", &b)); /* replaces */
    CHECK(strmap_get(&m, "x") == &b);
    CHECK_UINT_EQ(m.n, 1);
    CHECK(strmap_get(&m, "y") == NULL);
    strmap_del(&m, "x");
    CHECK(strmap_get(&m, "x") == NULL);
    CHECK_UINT_EQ(m.n, 0);
    strmap_free(&m);
}

static void
test_churn(void)
{
    struct strmap m = {0};
    static bool in[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        snprintf(keys[i], sizeof(keys[i]), "127.0.%d.%d:8000", i / 250, i % 250);
    uint32_t seed = 12345, n = 0;
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % NKEYS);
        if (in[k]) {
            strmap_del(&m, keys[k]);
            in[k] = false;
            n--;
        } else {
            CHECK(strmap_put(&m, keys[k], keys[k]));
            in[k] = true;
            n++;
        }
        if (step % 9973 == 0) {
            for (int i = 0; i < NKEYS; i++) {
                void *v = strmap_get(&m, keys[i]);
                if (in[i] ? v != keys[i] : v != NULL)
                    UNIT_FAIL("step %d key %s: %s", step, keys[i], in[i] ? "lost" : "still there");
            }
        }
    }
    CHECK_UINT_EQ(m.n, n);
    CHECK(m.n * 2 <= m.cap);
    strmap_free(&m);
}

int
main(void)
{
    RUN(test_basic);
    RUN(test_churn);
    return unit_summary();
}
