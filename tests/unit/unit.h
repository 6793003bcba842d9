/* SPDX-License-Identifier: MIT */
/* A tiny unit-test runner: typed checks that print both operands, one line per
 * test, and a closing "N passed, N failed" line. Include once per test program. */
#ifndef TETHER_UNIT_H
#define TETHER_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed, unit_cur_failed;
static const char *unit_cur_name;

#define UNIT_FAIL(fmt, ...)                                                                        \
    do {                                                                                           \
        unit_cur_failed++;                                                                         \
        fprintf(stderr, "  %s:%d: %s: " fmt "\n", __FILE__, __LINE__, unit_cur_name, __VA_ARGS__); \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            UNIT_FAIL("check failed: %s", #cond);                                                  \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                                         \
    do {                                                                                           \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                              \
        if (unit_a_ != unit_b_)                                                                    \
            UNIT_FAIL("%s == %s: %lld != %lld", #a, #b, unit_a_, unit_b_);                         \
    } while (0)

#define CHECK_UINT_EQ(a, b)                                                                        \
    do {                                                                                           \
        unsigned long long unit_a_ = (unsigned long long)(a), unit_b_ = (unsigned long long)(b);   \
        if (unit_a_ != unit_b_)                                                                    \
            UNIT_FAIL("%s == %s: %llu != %llu", #a, #b, unit_a_, unit_b_);                         \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *unit_a_ = (a), *unit_b_ = (b);                                                 \
        if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0)                                 \
            UNIT_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, unit_a_ ? unit_a_ : "(null)",          \
                      unit_b_ ? unit_b_ : "(null)");                                               \
    } while (0)

/* Compare <n> bytes at <a> with the C string <b> (a slice against a literal). */
#define CHECK_MEM_EQ(a, n, b)                                                                      \
    do {                                                                                           \
        const char *unit_a_ = (const char *)(a), *unit_b_ = (b);                                   \
        size_t unit_n_ = (size_t)(n);                                                              \
        if (unit_n_ != strlen(unit_b_) || memcmp(unit_a_, unit_b_, unit_n_) != 0)                  \
            UNIT_FAIL("%s == %s: \"%.*s\" != \"%s\"", #a, #b, (int)unit_n_, unit_a_, unit_b_);     \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double unit_a_ = (double)(a), unit_b_ = (double)(b), unit_t_ = (double)(tol);              \
        if (unit_a_ - unit_b_ > unit_t_ || unit_b_ - unit_a_ > unit_t_)                            \
            UNIT_FAIL("%s ~= %s (+-%g): %g vs %g", #a, #b, unit_t_, unit_a_, unit_b_);             \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        unit_cur_name = #fn;                                                                       \
        unit_cur_failed = 0;                                                                       \
        fn();                                                                                      \
        if (unit_cur_failed) {                                                                     \
            unit_failed++;                                                                         \
            printf("FAIL %s\n", #fn);                                                              \
        } else {                                                                                   \
            unit_passed++;                                                                         \
            printf("ok   %s\n", #fn);                                                              \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

/* Print the closing line and return the process exit status. */
static inline int
unit_summary(void)
{
    printf("%d passed, %d failed\n", unit_passed, unit_failed);
    return (unit_failed || unit_passed == 0) ? 1 : 0;
}

#endif
