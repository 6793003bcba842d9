/* SPDX-License-Identifier: MIT */
/* Foundation helpers: error reports, number/duration/size/rate parsing, monotonic
 * time, small string helpers. No libev, no sockets, no globals. */
#ifndef TETHER_UTIL_H
#define TETHER_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define likely(x)                       __builtin_expect(!!(x), 1)
#define unlikely(x)                     __builtin_expect(!!(x), 0)
#define MIN(a, b)                       ((a) < (b) ? (a) : (b))
#define MAX(a, b)                       ((a) > (b) ? (a) : (b))
#define CACHELINE                       64

/* Copy bytes from the network (or any untrusted length) into a fixed-size
 * field: at most <cap> of the <n> bytes at <src>. Returns the number copied.
 * Every such copy goes through this (or is checked against the field's size
 * where the length is validated), so a long value is cut, never overflows. */
static inline size_t
copy_bounded(void *dst, size_t cap, const void *src, size_t n)
{
    size_t k = n < cap ? n : cap;
    if (k)
        memcpy(dst, src, k);
    return k;
}

/* An error report filled by config, admin and setup code; printed by the caller.
 * Config errors read "file:line:col: what; expected what". */
struct err {
    char msg[512]; /* NUL-terminated message, empty when no error */
};

/* Format <fmt> into <e>. Returns -1 so callers can `return err_set(...)`. */
int err_set(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As err_set, prefixed with "<file>:<line>:<col>: ". Returns -1. */
int err_at(struct err *e, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A borrowed byte range. */
struct slice {
    const char *p; /* first byte, not NUL-terminated */
    size_t len;    /* number of bytes */
};

/* Parse a decimal unsigned integer filling the whole of <s>[0..len). 0 or -1. */
int parse_u64(const char *s, size_t len, uint64_t *out);
/* Duration: "250ms", "2s", "5m", "1h", "1d"; a bare number is seconds. Result in ms. */
int parse_duration_ms(const char *s, size_t len, uint64_t *out_ms);
/* Size: "512", "16k", "10m", "1g" (powers of 1024). Result in bytes. */
int parse_size(const char *s, size_t len, uint64_t *out_bytes);
/* Rate: "100r/s", "20r/m", "5r/h". Result in requests per second. */
int parse_rate(const char *s, size_t len, double *out_per_sec);
/* Percent: "50%" or "50". Result 0..100. */
int parse_percent(const char *s, size_t len, unsigned *out);
/* Boolean: on/off, yes/no, true/false, 1/0. */
int parse_bool(const char *s, size_t len, bool *out);

/* Monotonic clock in ms / ns; wall clock in ms since the epoch. */
uint64_t time_mono_ms(void);
uint64_t time_mono_ns(void);
uint64_t time_wall_ms(void);

/* Case-insensitive comparison of <n> bytes, ASCII only. */
static inline bool
mem_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x == y)
            continue;
        if ((x | 0x20) != (y | 0x20) || (unsigned)((x | 0x20) - 'a') > 25)
            return false;
    }
    return true;
}

/* True when slice <s> equals the C string <lit> ignoring ASCII case. */
static inline bool
slice_ieq(const char *p, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && mem_ieq(p, lit, n);
}

/* Levenshtein distance of two short strings (for "did you mean" hints). */
unsigned edit_distance(const char *a, const char *b);

/* Hex-encode <n> bytes of <in> into <out> (2n+1 bytes with NUL). */
void hex_encode(char *out, const uint8_t *in, size_t n);

/* Fill <n> bytes from the kernel's random source. 0 or -1. */
int random_bytes(void *buf, size_t n);

/* A fast per-thread PRNG (xorshift64*), seeded by the caller. */
static inline uint64_t
rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Single-writer counter bump: a relaxed load+store, readable from other threads
 * without tearing, compiled to a plain add (no lock prefix). */
#define CTR_ADD(ctr, v)                                                                            \
    atomic_store_explicit(&(ctr), atomic_load_explicit(&(ctr), memory_order_relaxed) + (v),        \
                          memory_order_relaxed)

#endif
