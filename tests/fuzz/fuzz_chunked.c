/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the chunked scanner: compared with a small whole-buffer
 * reference decoder written independently here, with byte-at-a-time and split
 * scans, and with data spans that must lie in the input and sum to the total. */
#include "config.h"

#include <tether/http1.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REF_BAD        (-1)
#define REF_INCOMPLETE (-2)

static int
is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int
is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int
is_text(unsigned char c) /* VCHAR, SP, HTAB, obs-text */
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int
hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The line at <pos>: 1 with *e at its CR, 0 if the CRLF is not all there, -1 on a
 * bare LF or a CR followed by something else. */
static int
line_end(const unsigned char *s, size_t pos, size_t n, size_t *e)
{
    size_t i = pos;
    while (i < n && s[i] != '\r' && s[i] != '\n')
        i++;
    if (i == n)
        return 0;
    if (s[i] == '\n')
        return -1;
    if (i + 1 == n)
        return 0;
    *e = i;
    return s[i + 1] == '\n' ? 1 : -1;
}

/* chunk-ext in [i, e): 0 or -1. */
static int
ref_ext(const unsigned char *s, size_t i, size_t e)
{
    for (;;) {
        size_t j = i;
        while (j < e && is_ws(s[j]))
            j++;
        if (j == e)
            return j == i ? 0 : -1; /* whitespace only before ';' */
        if (s[j] != ';')
            return -1;
        j++;
        while (j < e && is_ws(s[j]))
            j++;
        size_t k = j;
        while (k < e && is_tchar(s[k]))
            k++;
        if (k == j)
            return -1;
        size_t m = k;
        while (m < e && is_ws(s[m]))
            m++;
        if (m < e && s[m] == '=') {
            m++;
            while (m < e && is_ws(s[m]))
                m++;
            if (m < e && s[m] == '"') {
                for (m++;; m++) {
                    if (m >= e)
                        return -1;
                    if (s[m] == '"')
                        break;
                    if (s[m] == '\\') {
                        if (++m >= e || !is_text(s[m]))
                            return -1;
                    } else if (!is_text(s[m])) {
                        return -1;
                    }
                }
                k = m + 1;
            } else {
                k = m;
                while (k < e && is_tchar(s[k]))
                    k++;
                if (k == m)
                    return -1;
            }
        }
        i = k;
    }
}

/* The whole-buffer decoder: consumed length when complete, REF_BAD or
 * REF_INCOMPLETE. */
static int64_t
ref_chunked(const unsigned char *s, size_t n, const struct http1_chunk_limits *lim, uint64_t *total)
{
    uint64_t max_line = lim && lim->max_line_bytes ? lim->max_line_bytes : 4096;
    uint64_t max_trl = lim && lim->max_trailer_bytes ? lim->max_trailer_bytes : 16384;
    uint64_t max_size = lim && lim->max_chunk_size ? lim->max_chunk_size : (UINT64_C(1) << 62);
    size_t pos = 0, e = 0;
    uint64_t trl = 0;
    int r;
    *total = 0;
    for (;;) {
        if ((r = line_end(s, pos, n, &e)) <= 0)
            return r ? REF_BAD : REF_INCOMPLETE;
        if (e - pos > max_line)
            return REF_BAD;
        size_t i = pos;
        uint64_t v = 0;
        while (i < e && hex(s[i]) >= 0 && i - pos < 17)
            v = v * 16 + (uint64_t)hex(s[i++]);
        if (i == pos || i - pos > 16 || v > max_size || ref_ext(s, i, e) < 0)
            return REF_BAD;
        pos = e + 2;
        if (v == 0)
            break;
        if (n - pos < v)
            return REF_INCOMPLETE;
        pos += v;
        *total += v;
        if (pos == n)
            return REF_INCOMPLETE;
        if (s[pos] != '\r')
            return REF_BAD;
        if (pos + 1 == n)
            return REF_INCOMPLETE;
        if (s[pos + 1] != '\n')
            return REF_BAD;
        pos += 2;
    }
    for (;;) { /* trailer section */
        if ((r = line_end(s, pos, n, &e)) <= 0)
            return r ? REF_BAD : REF_INCOMPLETE;
        if (e == pos)
            return (int64_t)(e + 2);
        size_t i = pos;
        while (i < e && is_tchar(s[i]))
            i++;
        if (i == pos || i == e || s[i] != ':')
            return REF_BAD;
        for (i++; i < e; i++)
            if (!is_text(s[i]))
                return REF_BAD;
        trl += e - pos + 2;
        if (trl > max_trl)
            return REF_BAD;
        pos = e + 2;
    }
}

struct spans {
    const char *lo, *hi; /* the buffer of the current call */
    uint64_t sum;        /* bytes reported */
};

static void
on_span(void *ctx, const char *p, size_t n)
{
    struct spans *sp = ctx;
    if (n == 0 || p < sp->lo || p + n > sp->hi)
        abort();
    sp->sum += n;
}

/* Scan <data> in pieces of <piece> bytes (0: one call), each in its own buffer. */
static int64_t
scan_pieces(struct http1_chunked *c, const uint8_t *data, size_t size, size_t piece,
            const struct http1_chunk_limits *lim, struct spans *sp)
{
    size_t at = 0;
    int64_t used = 0;
    http1_chunked_init(c);
    sp->sum = 0;
    do {
        size_t m = piece && size - at > piece ? piece : size - at;
        char *b = malloc(m ? m : 1);
        memcpy(b, data + at, m);
        sp->lo = b;
        sp->hi = b + m;
        int64_t r = http1_chunked_scan(c, b, m, lim, on_span, sp);
        free(b);
        if (r < 0)
            return r;
        if ((size_t)r > m || ((size_t)r < m && !c->done))
            abort(); /* stops early only at the end of the body */
        used += r;
        at += m;
    } while (at < size && !c->done);
    if (sp->sum != c->total)
        abort();
    return used;
}

static void
run(const uint8_t *data, size_t size, const struct http1_chunk_limits *lim)
{
    struct http1_chunked c1, c2;
    struct spans s1, s2;
    uint64_t ref_total;
    int64_t r1 = scan_pieces(&c1, data, size, 0, lim, &s1);
    int64_t ref = ref_chunked(data, size, lim, &ref_total);

    if (r1 > (int64_t)size || (r1 >= 0 && !c1.done && r1 != (int64_t)size))
        abort();
    if (ref >= 0 && (r1 != ref || !c1.done || c1.total != ref_total))
        abort();
    if (ref == REF_BAD && r1 != HTTP1_ERR_BAD)
        abort();
    if (ref == REF_INCOMPLETE && r1 >= 0 && c1.done)
        abort();
    if (c1.done && http1_chunked_scan(&c1, (const char *)data, size, lim, NULL, NULL) != 0)
        abort();

    /* one byte at a time, and in pieces of a few bytes */
    size_t pieces[2] = {1, 1 + size % 13};
    for (int i = 0; i < 2; i++) {
        int64_t r2 = scan_pieces(&c2, data, size, pieces[i], lim, &s2);
        if (r2 != r1 || c2.done != c1.done || (r1 >= 0 && c2.total != c1.total))
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http1_chunk_limits small = {(uint32_t)(1 + size % 23), (uint32_t)(1 + size % 41),
                                       1 + (uint64_t)size * 7 % 300};
    run(data, size, NULL);
    run(data, size, &small);
    return 0;
}
