/* SPDX-License-Identifier: MIT */
/* Unit tests for route-matching path normalisation (src/path_norm.c): what is
 * decoded, what is dropped, what is refused, and that the result never grows
 * or leaves the output buffer. */
#include "config.h"

#include <tether/path_norm.h>

#include <stdlib.h>

#include "unit.h"

/* Normalise <in> into an exact-size heap buffer (ASan sees any overrun);
 * "(refused)" when refused. */
static const char *
norm(const char *in, unsigned flags)
{
    static char out[512];
    size_t n = strlen(in);
    char *buf = malloc(n ? n : 1);
    int r = path_normalize(in, n, buf, flags);
    if (r < 0)
        snprintf(out, sizeof(out), "(refused)");
    else if ((size_t)r > n)
        snprintf(out, sizeof(out), "(grew)");
    else
        snprintf(out, sizeof(out), "%.*s", r, buf);
    free(buf);
    return out;
}

static void
test_unchanged(void)
{
    CHECK_STR_EQ(norm("/", PATH_MERGE_SLASHES), "/");
    CHECK_STR_EQ(norm("/tools/x", PATH_MERGE_SLASHES), "/tools/x");
    CHECK_STR_EQ(norm("/a.b/..c/c../...", PATH_MERGE_SLASHES), "/a.b/..c/c../...");
    CHECK_STR_EQ(norm("/a%3Fb%25c", PATH_MERGE_SLASHES), "/a%3Fb%25c");
}

static void
test_decoded(void)
{
    CHECK_STR_EQ(norm("/%74ools/x", 0), "/tools/x");
    CHECK_STR_EQ(norm("/%7e%2D%5f%2E%41", 0), "/~-_.A");
    CHECK_STR_EQ(norm("/tools%2Fx", 0), "/tools/x");
    CHECK_STR_EQ(norm("/tools%2fx", 0), "/tools/x");
}

static void
test_slashes(void)
{
    CHECK_STR_EQ(norm("//tools///x/", PATH_MERGE_SLASHES), "/tools/x/");
    CHECK_STR_EQ(norm("//tools///x/", 0), "//tools///x/");
    CHECK_STR_EQ(norm("/%2F/tools", PATH_MERGE_SLASHES), "/tools");
}

static void
test_params(void)
{
    CHECK_STR_EQ(norm("/tools;jsessionid=1/x", 0), "/tools/x");
    CHECK_STR_EQ(norm("/tools;a=b;c/x;y", 0), "/tools/x");
    CHECK_STR_EQ(norm("/;x/tools", PATH_MERGE_SLASHES), "/tools");
    CHECK_STR_EQ(norm("/tools%3Bx/y", 0), "/tools%3Bx/y");
}

static void
test_refused(void)
{
    static const char *const bad[] = {
        "/.",           "/..",       "/a/./b",    "/a/../b",     "/tools/..%2f..",
        "/tools/..;/x", "/a/..;x/b", "/%2e%2e/x", "/.%2E/x",     "/%2e/x",
        "/a/..%2F",     "/a\\b",     "/a%5cb",    "/a%5C..%5Cb", "/a%00",
        "/a%zz",        "/a%2",      "/a%",       "/a%g0",       "/x/;/../y",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (strcmp(norm(bad[i], PATH_MERGE_SLASHES), "(refused)") != 0)
            UNIT_FAIL("%s not refused: %s", bad[i], norm(bad[i], PATH_MERGE_SLASHES));
        if (strcmp(norm(bad[i], 0), "(refused)") != 0)
            UNIT_FAIL("%s not refused without merge_slashes", bad[i]);
    }
}

/* Every string over a small alphabet up to 6 bytes: never grows, never
 * returns a dot segment, never a backslash. */
static void
test_exhaustive_small(void)
{
    static const char alpha[] = "/.%2eE;\\fFa";
    const size_t na = sizeof(alpha) - 1;
    char in[8], out[8];
    for (size_t len = 1; len <= 6; len++) {
        size_t total = 1;
        for (size_t i = 1; i < len; i++)
            total *= na;
        for (size_t k = 0; k < total; k++) {
            size_t x = k;
            in[0] = '/';
            for (size_t i = 1; i < len; i++, x /= na)
                in[i] = alpha[x % na];
            int r = path_normalize(in, len, out, PATH_MERGE_SLASHES);
            if (r < 0)
                continue;
            if ((size_t)r > len) {
                UNIT_FAIL("%.*s grew", (int)len, in);
                continue;
            }
            for (int i = 0; i < r; i++)
                if (out[i] == '\\')
                    UNIT_FAIL("%.*s kept a backslash", (int)len, in);
            /* No "." or ".." segment in the result. */
            for (int i = 0; i < r; i++) {
                if (out[i] != '/')
                    continue;
                int j = i + 1, d = 0;
                while (j < r && out[j] == '.')
                    j++, d++;
                if ((d == 1 || d == 2) && (j == r || out[j] == '/'))
                    UNIT_FAIL("%.*s -> %.*s has a dot segment", (int)len, in, r, out);
            }
        }
    }
}

int
main(void)
{
    RUN(test_unchanged);
    RUN(test_decoded);
    RUN(test_slashes);
    RUN(test_params);
    RUN(test_refused);
    RUN(test_exhaustive_small);
    return unit_summary();
}
