/* SPDX-License-Identifier: MIT */
/* Foundation helpers: error reports, unit parsing, clocks. */
#include "config.h"

#include <tether/util.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int
err_set(struct err *e, const char *fmt, ...)
{
    va_list ap;
    if (!e)
        return -1;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return -1;
}

int
err_at(struct err *e, const char *file, int line, int col, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (!e)
        return -1;
    n = snprintf(e->msg, sizeof(e->msg), "%s:%d:%d: ", file ? file : "?", line, col);
    if (n < 0 || (size_t)n >= sizeof(e->msg))
        return -1;
    va_start(ap, fmt);
    vsnprintf(e->msg + n, sizeof(e->msg) - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int
parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9)
            return -1;
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Split <s> into a leading decimal number and a unit suffix. */
static int
split_number(const char *s, size_t len, uint64_t *num, const char **unit, size_t *ulen)
{
    size_t i = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == 0 || parse_u64(s, i, num) < 0)
        return -1;
    *unit = s + i;
    *ulen = len - i;
    return 0;
}

static int
mul_checked(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

int
parse_duration_ms(const char *s, size_t len, uint64_t *out_ms)
{
    uint64_t n, mul;
    const char *u;
    size_t ul;
    if (split_number(s, len, &n, &u, &ul) < 0)
        return -1;
    if (ul == 0 || slice_ieq(u, ul, "s"))
        mul = 1000;
    else if (slice_ieq(u, ul, "ms"))
        mul = 1;
    else if (slice_ieq(u, ul, "m"))
        mul = 60 * 1000;
    else if (slice_ieq(u, ul, "h"))
        mul = 3600 * 1000;
    else if (slice_ieq(u, ul, "d"))
        mul = 86400 * 1000;
    else
        return -1;
    return mul_checked(n, mul, out_ms);
}

int
parse_size(const char *s, size_t len, uint64_t *out_bytes)
{
    uint64_t n, mul;
    const char *u;
    size_t ul;
    if (split_number(s, len, &n, &u, &ul) < 0)
        return -1;
    if (ul == 0 || slice_ieq(u, ul, "b"))
        mul = 1;
    else if (slice_ieq(u, ul, "k") || slice_ieq(u, ul, "kb"))
        mul = 1024;
    else if (slice_ieq(u, ul, "m") || slice_ieq(u, ul, "mb"))
        mul = 1024 * 1024;
    else if (slice_ieq(u, ul, "g") || slice_ieq(u, ul, "gb"))
        mul = 1024ULL * 1024 * 1024;
    else
        return -1;
    return mul_checked(n, mul, out_bytes);
}

int
parse_rate(const char *s, size_t len, double *out_per_sec)
{
    uint64_t n;
    const char *u;
    size_t ul;
    if (split_number(s, len, &n, &u, &ul) < 0 || n == 0)
        return -1;
    if (slice_ieq(u, ul, "r/s"))
        *out_per_sec = (double)n;
    else if (slice_ieq(u, ul, "r/m"))
        *out_per_sec = (double)n / 60.0;
    else if (slice_ieq(u, ul, "r/h"))
        *out_per_sec = (double)n / 3600.0;
    else
        return -1;
    return 0;
}

int
parse_percent(const char *s, size_t len, unsigned *out)
{
    uint64_t n;
    if (len > 0 && s[len - 1] == '%')
        len--;
    if (parse_u64(s, len, &n) < 0 || n > 100)
        return -1;
    *out = (unsigned)n;
    return 0;
}

int
parse_bool(const char *s, size_t len, bool *out)
{
    if (slice_ieq(s, len, "on") || slice_ieq(s, len, "yes") || slice_ieq(s, len, "true") ||
        slice_ieq(s, len, "1"))
        *out = true;
    else if (slice_ieq(s, len, "off") || slice_ieq(s, len, "no") || slice_ieq(s, len, "false") ||
             slice_ieq(s, len, "0"))
        *out = false;
    else
        return -1;
    return 0;
}

uint64_t
time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t
time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

unsigned
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned row[64];
    if (la >= ARRAY_SIZE(row) || lb >= ARRAY_SIZE(row))
        return 1000;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned cost = (a[i - 1] == b[j - 1]) ? 0 : 1;
            unsigned best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

void
hex_encode(char *out, const uint8_t *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int
random_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}
