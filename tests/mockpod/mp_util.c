/* SPDX-License-Identifier: MIT */
/* mockpod helpers: growable byte strings, JSON string escaping, number formatting, HTTP
 * reason phrases and the a..z body pattern. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mockpod.h"

#define PATTERN_LEN (64 * 1024)

/* 'a'..'z' repeated; PATTERN_LEN + 26 bytes so any offset modulo 26 has PATTERN_LEN after it */
static char pattern[PATTERN_LEN + 26];

void *
xmalloc(size_t n)
{
    void *p = malloc(n);

    if (!p) {
        fputs("mockpod: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Makes room for <need> more bytes in <b>, aborting when memory runs out. */
void
sb_grow(struct sbuf *b, size_t need)
{
    size_t cap;
    char *p;

    if (b->cap - b->len >= need)
        return;
    cap = b->cap ? b->cap : 256;
    while (cap - b->len < need)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p) {
        fputs("mockpod: out of memory\n", stderr);
        abort();
    }
    b->p = p;
    b->cap = cap;
}

void
sb_put(struct sbuf *b, const void *s, size_t n)
{
    if (b->cap - b->len < n)
        sb_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void
sb_puts(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

void
sb_put_u64(struct sbuf *b, uint64_t v)
{
    char t[24];
    size_t i = sizeof(t);

    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sb_put(b, t + i, sizeof(t) - i);
}

void
sb_put_hex(struct sbuf *b, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char t[20];
    size_t i = sizeof(t);

    do {
        t[--i] = hex[v & 15];
        v >>= 4;
    } while (v);
    sb_put(b, t + i, sizeof(t) - i);
}

/* Length of the valid UTF-8 sequence at <s> (at most <n> bytes), 0 when invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len, i;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    if (cp >= 0xd800 && cp <= 0xdfff)
        return 0;
    return len;
}

/* Appends <s> escaped for the inside of a JSON string: valid UTF-8 passes through, other
 * bytes above 0x7f and control characters become \u00XX. */
void
sb_json(struct sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, j, k;
    char esc[6];

    while (i < n) {
        j = i;
        while (j < n && u[j] >= 0x20 && u[j] < 0x80 && u[j] != '"' && u[j] != '\\')
            j++;
        if (j > i)
            sb_put(b, s + i, j - i);
        i = j;
        if (i == n)
            break;
        if (u[i] >= 0x80 && (k = utf8_len(u + i, n - i)) > 0) {
            sb_put(b, s + i, k);
            i += k;
            continue;
        }
        switch (u[i]) {
        case '"':
            sb_put(b, "\\\"", 2);
            break;
        case '\\':
            sb_put(b, "\\\\", 2);
            break;
        case '\n':
            sb_put(b, "\\n", 2);
            break;
        case '\r':
            sb_put(b, "\\r", 2);
            break;
        case '\t':
            sb_put(b, "\\t", 2);
            break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[u[i] >> 4];
            esc[5] = hex[u[i] & 15];
            sb_put(b, esc, 6);
            break;
        }
        i++;
    }
}

const char *
status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Status";
    }
}

void
pattern_init(void)
{
    size_t i;

    for (i = 0; i < sizeof(pattern); i++)
        pattern[i] = (char)('a' + i % 26);
}

/* Appends <n> bytes of the body pattern starting at body offset <off>. */
void
pattern_put(struct sbuf *b, uint64_t off, size_t n)
{
    size_t k;

    while (n > 0) {
        k = n < PATTERN_LEN ? n : PATTERN_LEN;
        sb_put(b, pattern + off % 26, k);
        off += k;
        n -= k;
    }
}
