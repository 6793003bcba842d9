/* SPDX-License-Identifier: MIT */
/* Strict, incremental HTTP/1.x head parser (RFC 9112): start line, field lines and
 * the framing headers, recorded as offsets into the caller's buffer. Also the small
 * lookups on a parsed head: fields, cookies, reason phrases, method names. */
#include "config.h"

#include <tether/http1.h>

#include <string.h>

#include "http1_chars.h"

/* Used when the caller passes no limits or zero values. */
#define HEAD_DEFAULT_MAX 8192
/* Largest Content-Length accepted: far beyond any real body, far from overflow. */
#define CL_MAX (UINT64_C(1) << 62)

/* ---- character classes: see http1_chars.h ---- */

static inline bool
is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* ---- known names ---- */

/* Eight bytes at <p>, any alignment, the first in the low bits on every host (so
 * SWAR borrows run from earlier bytes to later ones). */
static inline uint64_t
load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* Known names by length (at most three share one), lower case; id 0 ends a row. */
static const struct {
    uint8_t id;       /* enum http_hdr */
    const char *name; /* compared case-insensitively */
} hdr_by_len[21][3] = {
    [2] = {{HTTP_H_TE, "te"}},
    [4] = {{HTTP_H_HOST, "host"}},
    [6] = {{HTTP_H_COOKIE, "cookie"}, {HTTP_H_EXPECT, "expect"}},
    [7] = {{HTTP_H_TRAILER, "trailer"}, {HTTP_H_UPGRADE, "upgrade"}},
    [9] = {{HTTP_H_FORWARDED, "forwarded"}},
    [10] = {{HTTP_H_CONNECTION, "connection"},
            {HTTP_H_KEEP_ALIVE, "keep-alive"},
            {HTTP_H_SET_COOKIE, "set-cookie"}},
    [12] = {{HTTP_H_X_REQUEST_ID, "x-request-id"}},
    [14] = {{HTTP_H_CONTENT_LENGTH, "content-length"}},
    [15] = {{HTTP_H_X_FORWARDED_FOR, "x-forwarded-for"}},
    [16] = {{HTTP_H_PROXY_CONNECTION, "proxy-connection"},
            {HTTP_H_X_FORWARDED_HOST, "x-forwarded-host"}},
    [17] = {{HTTP_H_TRANSFER_ENCODING, "transfer-encoding"},
            {HTTP_H_X_FORWARDED_PROTO, "x-forwarded-proto"},
            {HTTP_H_SEC_WEBSOCKET_KEY, "sec-websocket-key"}},
    [18] = {{HTTP_H_PROXY_AUTHENTICATE, "proxy-authenticate"}},
    [19] = {{HTTP_H_PROXY_AUTHORIZATION, "proxy-authorization"}},
    [20] = {{HTTP_H_SEC_WEBSOCKET_ACCEPT, "sec-websocket-accept"}},
};

/* enum http_hdr of the token <p>[0..n), HTTP_H_OTHER if not a known name.
 * Compares eight bytes at a time with the 0x20 bit forced: exact for a token,
 * since no tchar differs from a letter, digit or '-' by that bit alone. */
static unsigned
hdr_id(const unsigned char *p, size_t n)
{
    const uint64_t lower = UINT64_C(0x2020202020202020);
    if (n >= ARRAY_SIZE(hdr_by_len))
        return HTTP_H_OTHER;
    for (unsigned k = 0; k < 3 && hdr_by_len[n][k].id; k++) {
        const unsigned char *name = (const unsigned char *)hdr_by_len[n][k].name;
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            if ((load64(p + i) | lower) != load64(name + i))
                break;
        while (i < n && (p[i] | 0x20) == name[i])
            i++;
        if (i == n)
            return hdr_by_len[n][k].id;
    }
    return HTTP_H_OTHER;
}

/* Methods by enum http_method, and their lengths. */
static const char *const method_names[] = {
    [HTTP_M_GET] = "GET",     [HTTP_M_HEAD] = "HEAD",       [HTTP_M_POST] = "POST",
    [HTTP_M_PUT] = "PUT",     [HTTP_M_DELETE] = "DELETE",   [HTTP_M_OPTIONS] = "OPTIONS",
    [HTTP_M_PATCH] = "PATCH", [HTTP_M_CONNECT] = "CONNECT", [HTTP_M_TRACE] = "TRACE",
};
static const uint8_t method_lens[] = {0, 3, 4, 4, 3, 6, 7, 5, 7, 5};

/* Methods are case-sensitive (RFC 9110 9.1); GET is found first. */
static unsigned
method_id(const char *p, size_t n)
{
    for (unsigned m = HTTP_M_GET; m < ARRAY_SIZE(method_names); m++)
        if (method_lens[m] == n && memcmp(p, method_names[m], n) == 0)
            return m;
    return HTTP_M_OTHER;
}

/* ---- line scanning ---- */

/* Non-zero when a byte of <v> is below 0x20 or is 0x7f (DEL). Bytes >= 0x80
 * (obs-text) never match; HTAB does, and the caller steps over it. Borrows only
 * run upwards from a matching byte, so the lowest flagged byte is the first
 * match (see first_flag). */
static inline uint64_t
swar_special(uint64_t v)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
    uint64_t del = v ^ (ones * 0x7f);
    return ((v - ones * 0x20) & ~v & high) | ((del - ones) & ~del & high);
}

/* Non-zero when a byte of <v> is SP or below, or obs-text: what ends a request
 * target inside a line that scan_line already checked. Exact as above. */
static inline uint64_t
swar_target_end(uint64_t v)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
    return ((v - ones * 0x21) | v) & high;
}

/* Index of the first flagged byte of a non-zero SWAR result. */
static inline uint32_t
first_flag(uint64_t m)
{
    return (uint32_t)__builtin_ctzll(m) >> 3;
}

/* Find the end of the line starting at <pos>, validating every byte on the way:
 * only VCHAR, SP, HTAB and obs-text may appear before the CRLF. This replaces a
 * memchr for LF followed by a validation pass, touching each byte once, eight at
 * a time. It also makes the first offending byte the error whatever the rest of
 * the line holds, so trickled and one-shot input agree.
 * Returns 1 with *<eol> at the CR of a complete line, 0 when the line is not
 * complete within <end>, -1 with *<eol> at a bare LF, a lone CR or a CTL. */
static int
scan_line(const unsigned char *s, uint32_t pos, uint32_t end, uint32_t *eol)
{
    uint32_t p = pos;
    for (;;) {
        if (end - p >= 8) {
            uint64_t m = swar_special(load64(s + p));
            if (!m) {
                p += 8;
                continue;
            }
            p += first_flag(m);
        } else {
            while (p < end && (http1_cls[s[p]] & C_LINE)) /* the last few bytes */
                p++;
            if (p == end)
                return 0;
        }
        if (s[p] == '\t') {
            p++;
            continue;
        }
        *eol = p;
        if (s[p] != '\r')
            return -1;
        if (p + 1 == end)
            return 0;
        return s[p + 1] == '\n' ? 1 : -1;
    }
}

/* ---- field values ---- */

/* Validate `host [ ":" port ]` (RFC 3986 host: reg-name or IP literal; no userinfo).
 * A port, when present, is 1-5 digits up to 65535; <need_port> for CONNECT. The
 * comma, legal in a reg-name, is refused: it reads as a list to some servers. */
static bool
host_valid(const unsigned char *s, size_t n, bool need_port)
{
    size_t i = 0;
    if (n == 0)
        return false;
    if (s[0] == '[') {
        bool colon = false;
        for (i = 1; i < n && (http1_cls[s[i]] & C_HEX || s[i] == ':' || s[i] == '.'); i++)
            colon |= s[i] == ':';
        if (!colon || i >= n || s[i] != ']')
            return false;
        i++;
    } else {
        while (i < n && s[i] != ':') {
            if (s[i] == '%') {
                if (n - i < 3 || !(http1_cls[s[i + 1]] & C_HEX) || !(http1_cls[s[i + 2]] & C_HEX))
                    return false;
                i += 3;
            } else if (http1_cls[s[i]] & C_HOST) {
                i++;
            } else {
                return false;
            }
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return !need_port;
    if (s[i] != ':' || n - i - 1 == 0 || n - i - 1 > 5)
        return false;
    unsigned port = 0;
    for (i++; i < n; i++) {
        if (!(http1_cls[s[i]] & C_DIGIT))
            return false;
        port = port * 10 + (unsigned)(s[i] - '0');
    }
    return port <= 65535;
}

/* Walk a comma list in [v, ve): calls <fn> on each non-empty trimmed element.
 * Empty elements are skipped (RFC 9110 5.6.1) unless <strict>, then they fail.
 * Returns 0, or the first negative value <fn> returns. */
typedef int (*list_fn)(struct http_head *h, const unsigned char *s, uint32_t p, uint32_t n,
                       unsigned *acc);

static int
walk_list(struct http_head *h, const unsigned char *s, uint32_t v, uint32_t ve, bool strict,
          list_fn fn, unsigned *acc)
{
    uint32_t p = v;
    for (;;) {
        while (p < ve && is_ows(s[p]))
            p++;
        uint32_t e = p;
        while (e < ve && s[e] != ',')
            e++;
        uint32_t t = e;
        while (t > p && is_ows(s[t - 1]))
            t--;
        if (t > p) {
            int rc = fn(h, s, p, t - p, acc);
            if (rc < 0)
                return rc;
        } else if (strict) {
            h->err_off = p;
            return HTTP1_ERR_BAD;
        }
        if (e == ve)
            return 0;
        p = e + 1;
    }
}

/* True when [p, p+n) is a token. */
static bool
is_token(const unsigned char *s, uint32_t p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (!(http1_cls[s[p + i]] & C_TCHAR))
            return false;
    return n > 0;
}

/* Content-Length element: 1*DIGIT; a list is accepted when all values agree. */
static int
cl_elem(struct http_head *h, const unsigned char *s, uint32_t p, uint32_t n, unsigned *acc)
{
    uint64_t x = 0;
    (void)acc;
    for (uint32_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[p + i] - '0');
        if (d > 9 || x > (CL_MAX - d) / 10) {
            h->err_off = p + i;
            return HTTP1_ERR_BAD;
        }
        x = x * 10 + d;
    }
    if (h->flags & HTTP_F_HAS_CL && (uint64_t)h->content_length != x) {
        h->err_off = p;
        return HTTP1_ERR_BAD;
    }
    h->content_length = (int64_t)x;
    h->flags |= HTTP_F_HAS_CL;
    return 0;
}

static int
conn_elem(struct http_head *h, const unsigned char *s, uint32_t p, uint32_t n, unsigned *acc)
{
    (void)acc;
    const char *c = (const char *)s + p;
    if (!is_token(s, p, n)) {
        h->err_off = p;
        return HTTP1_ERR_BAD;
    }
    if (slice_ieq(c, n, "close"))
        h->flags |= HTTP_F_CONN_CLOSE;
    else if (slice_ieq(c, n, "keep-alive"))
        h->flags |= HTTP_F_CONN_KEEPALIVE;
    else if (slice_ieq(c, n, "upgrade"))
        h->flags |= HTTP_F_CONN_UPGRADE;
    else
        h->flags |= HTTP_F_CONN_OTHER;
    return 0;
}

/* Upgrade: protocol-name [ "/" protocol-version ]; only websocket matters. */
static int
upgrade_elem(struct http_head *h, const unsigned char *s, uint32_t p, uint32_t n, unsigned *acc)
{
    (void)acc;
    const char *c = (const char *)s + p;
    if (n >= 9 && mem_ieq(c, "websocket", 9) && (n == 9 || c[9] == '/'))
        h->flags |= HTTP_F_UPGRADE_WS;
    return 0;
}

/* Transfer-Encoding element: a bare token (parameters are refused). <acc> tallies
 * the codings of the whole list, which may span several fields. */
#define TE_LAST_CHUNKED 0x1u /* the last coding so far is chunked */
#define TE_CHUNKED      0x2u /* chunked was seen */
#define TE_OTHER        0x4u /* a coding other than chunked was seen */

static int
te_elem(struct http_head *h, const unsigned char *s, uint32_t p, uint32_t n, unsigned *acc)
{
    if (!is_token(s, p, n)) {
        h->err_off = p;
        return HTTP1_ERR_BAD;
    }
    if (slice_ieq((const char *)s + p, n, "chunked")) {
        if (*acc & TE_CHUNKED) { /* chunked applied twice (RFC 9112 6.1) */
            h->err_off = p;
            return HTTP1_ERR_BAD;
        }
        *acc |= TE_CHUNKED | TE_LAST_CHUNKED;
    } else {
        *acc = (*acc & ~TE_LAST_CHUNKED) | TE_OTHER;
    }
    return 0;
}

/* Act on a known field. <f> is the field just filled, <idx> its index. */
static int
field_semantics(struct http_head *h, const unsigned char *s, const struct http_field *f,
                unsigned idx)
{
    uint32_t v = f->value_off, ve = f->value_off + f->value_len;
    switch (f->id) {
    case HTTP_H_CONTENT_LENGTH:
        h->cl_count++;
        return walk_list(h, s, v, ve, true, cl_elem, NULL);
    case HTTP_H_TRANSFER_ENCODING:
        /* the codings are judged once the head is complete (finish_te) */
        h->te_count++;
        return 0;
    case HTTP_H_CONNECTION:
        return walk_list(h, s, v, ve, false, conn_elem, NULL);
    case HTTP_H_UPGRADE:
        return walk_list(h, s, v, ve, false, upgrade_elem, NULL);
    }
    if (h->is_response)
        return 0;
    switch (f->id) {
    case HTTP_H_HOST:
        if (++h->host_count > 1 || !host_valid(s + v, f->value_len, false)) {
            h->err_off = v;
            return HTTP1_ERR_BAD;
        }
        h->host_idx = (int16_t)idx;
        break;
    case HTTP_H_EXPECT:
        if (h->version_minor == 0) /* to be ignored in HTTP/1.0 (RFC 9110 10.1.1) */
            break;
        if (slice_ieq((const char *)s + v, f->value_len, "100-continue"))
            h->flags |= HTTP_F_EXPECT_CONTINUE;
        else
            h->flags |= HTTP_F_EXPECT_OTHER;
        break;
    }
    return 0;
}

/* Parse the field line [pos, eol) (bytes already known to be C_LINE). */
static int
parse_field(struct http_head *h, const unsigned char *s, uint32_t pos, uint32_t eol,
            unsigned max_fields)
{
    uint32_t p = pos;
    /* a leading SP/HTAB (obs-fold), an empty name or whitespace before the colon
     * all stop the token before a ':'; the CR at <eol> stops it at the latest */
    while (eol - p >= 4 && http1_cls[s[p]] & http1_cls[s[p + 1]] & http1_cls[s[p + 2]] &
                               http1_cls[s[p + 3]] & C_TCHAR)
        p += 4;
    while (http1_cls[s[p]] & C_TCHAR)
        p++;
    if (p == pos || p == eol || s[p] != ':' || p - pos > UINT16_MAX) {
        h->err_off = p;
        return HTTP1_ERR_BAD;
    }
    uint32_t v = p + 1, ve = eol;
    while (v < ve && is_ows(s[v]))
        v++;
    while (ve > v && is_ows(s[ve - 1]))
        ve--;
    if (h->nfields >= max_fields) {
        h->err_off = pos;
        return HTTP1_ERR_TOO_MANY;
    }
    struct http_field *f = &h->fields[h->nfields];
    f->name_off = pos;
    f->name_len = (uint16_t)(p - pos);
    f->id = (uint16_t)hdr_id(s + pos, p - pos);
    f->value_off = v;
    f->value_len = ve - v;
    if (f->id != HTTP_H_OTHER) {
        int rc = field_semantics(h, s, f, h->nfields);
        if (rc < 0)
            return rc;
    }
    h->nfields++;
    return 0;
}

/* ---- start lines ---- */

/* "HTTP/1.1" or "HTTP/1.0" at <p>: sets version_minor. Another HTTP/d.d is
 * VERSION, anything else BAD. */
static int
parse_version(struct http_head *h, const unsigned char *p)
{
    if (memcmp(p, "HTTP/1.", 7) == 0 && (p[7] == '1' || p[7] == '0')) {
        h->version_minor = (uint8_t)(p[7] - '0');
        return 0;
    }
    if (memcmp(p, "HTTP/", 5) == 0 && (http1_cls[p[5]] & C_DIGIT) && p[6] == '.' &&
        (http1_cls[p[7]] & C_DIGIT))
        return HTTP1_ERR_VERSION;
    return HTTP1_ERR_BAD;
}

/* Classify the request target (origin, absolute, asterisk or authority form). */
static int
parse_target(struct http_head *h, const unsigned char *s)
{
    uint32_t t = h->target_off, n = h->target_len, a, e;
    h->path_off = t;
    h->path_len = n;
    if (h->method == HTTP_M_CONNECT) { /* authority-form only, with a port */
        h->path_len = 0;
        return host_valid(s + t, n, true) ? 0 : HTTP1_ERR_BAD;
    }
    if (s[t] == '/')
        return 0;
    if (s[t] == '*') /* asterisk-form, for OPTIONS only */
        return n == 1 && h->method == HTTP_M_OPTIONS ? 0 : HTTP1_ERR_BAD;
    if (n >= 7 && mem_ieq((const char *)s + t, "http://", 7))
        a = 7;
    else if (n >= 8 && mem_ieq((const char *)s + t, "https://", 8))
        a = 8;
    else
        return HTTP1_ERR_BAD;
    for (e = a; e < n && s[t + e] != '/' && s[t + e] != '?'; e++)
        ;
    if (!host_valid(s + t + a, e - a, false))
        return HTTP1_ERR_BAD;
    h->flags |= HTTP_F_ABSOLUTE_FORM;
    h->authority_off = t + a;
    h->authority_len = e - a;
    /* may be empty (the caller sends "/") or start with '?' (the caller adds "/") */
    h->path_off = t + e;
    h->path_len = n - e;
    return 0;
}

/* method SP request-target SP HTTP-version, in [pos, eol). */
static int
parse_request_line(struct http_head *h, const unsigned char *s, uint32_t pos, uint32_t eol)
{
    uint32_t p = pos;
    int rc;
    /* the CR at <eol> ends both loops at the latest */
    while (http1_cls[s[p]] & C_TCHAR)
        p++;
    if (p == pos || p == eol || s[p] != ' ')
        goto bad;
    h->method_len = p - pos;
    h->method = (uint8_t)method_id((const char *)s + pos, p - pos);
    uint32_t t = ++p;
    while (eol + 2 - p >= 8) { /* the line is in the buffer up to its LF */
        uint64_t m = swar_target_end(load64(s + p));
        if (m) {
            p += first_flag(m);
            break;
        }
        p += 8;
    }
    while (http1_cls[s[p]] & C_TARGET)
        p++;
    if (p == t || p == eol || s[p] != ' ')
        goto bad;
    h->target_off = t;
    h->target_len = p - t;
    p++;
    if (eol - p != 8)
        goto bad;
    rc = parse_version(h, s + p);
    if (rc < 0) {
        h->err_off = p;
        return rc;
    }
    p = t;
    rc = parse_target(h, s);
    if (rc < 0)
        goto bad;
    return 0;
bad:
    h->err_off = p;
    return HTTP1_ERR_BAD;
}

/* HTTP-version SP 3DIGIT [ SP reason ], in [pos, eol). */
static int
parse_status_line(struct http_head *h, const unsigned char *s, uint32_t pos, uint32_t eol)
{
    uint32_t n = eol - pos;
    int rc;
    if (n < 12 || s[pos + 8] != ' ') {
        h->err_off = pos + (n < 8 ? n : 8);
        return HTTP1_ERR_BAD;
    }
    rc = parse_version(h, s + pos);
    if (rc < 0) {
        h->err_off = pos;
        return rc;
    }
    const unsigned char *d = s + pos + 9;
    unsigned st =
        (unsigned)(d[0] - '0') * 100 + (unsigned)(d[1] - '0') * 10 + (unsigned)(d[2] - '0');
    if (!(http1_cls[d[0]] & http1_cls[d[1]] & http1_cls[d[2]] & C_DIGIT) || st < 100 || st > 599 ||
        (n > 12 && d[3] != ' ')) {
        h->err_off = pos + 9;
        return HTTP1_ERR_BAD;
    }
    h->status = (uint16_t)st;
    h->reason_off = n > 12 ? pos + 13 : eol;
    h->reason_len = eol - h->reason_off;
    return 0;
}

/* ---- end of head ---- */

/* Transfer-Encoding verdict, common to requests and responses: the codings of
 * all TE fields form one list, in order. */
static int
finish_te(struct http_head *h, const unsigned char *s, uint32_t at)
{
    unsigned acc = 0;
    if (h->version_minor == 0 || h->cl_count) {
        /* HTTP/1.0 with TE, or CL with TE: framing is ambiguous (RFC 9112 6.1) */
        h->err_off = at;
        return HTTP1_ERR_BAD;
    }
    for (unsigned i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        if (f->id != HTTP_H_TRANSFER_ENCODING)
            continue;
        /* strict: an empty value or element is an error */
        int rc = walk_list(h, s, f->value_off, f->value_off + f->value_len, true, te_elem, &acc);
        if (rc < 0)
            return rc;
    }
    if (acc & TE_OTHER && !h->is_response) {
        h->err_off = at;
        return HTTP1_ERR_NOT_IMPL;
    }
    /* responses: chunked last frames the body; otherwise it runs to the close */
    h->flags |= acc & TE_LAST_CHUNKED ? HTTP_F_CHUNKED : HTTP_F_TE_OTHER;
    return 0;
}

/* Checks that need the whole head. <at> is the offset of the final CRLF. */
static int
finish_head(struct http_head *h, const unsigned char *s, uint32_t at)
{
    if (h->is_response)
        return h->te_count ? finish_te(h, s, at) : 0;
    if (h->version_minor == 1 && h->host_count == 0) {
        h->err_off = at;
        return HTTP1_ERR_BAD;
    }
    if (h->te_count) {
        int rc = finish_te(h, s, at);
        if (rc < 0)
            return rc;
    }
    if (h->flags & HTTP_F_ABSOLUTE_FORM && h->host_idx >= 0) {
        const struct http_field *f = &h->fields[h->host_idx];
        if (f->value_len != h->authority_len ||
            !mem_ieq((const char *)s + f->value_off, (const char *)s + h->authority_off,
                     f->value_len)) {
            h->err_off = f->value_off;
            return HTTP1_ERR_BAD;
        }
    }
    return 0;
}

/* ---- driver ---- */

void
http_head_init(struct http_head *h)
{
    /* fields[] is written before it is read: leave its 4 KiB alone */
    memset(h, 0, offsetof(struct http_head, fields));
    h->content_length = -1;
    h->host_idx = -1;
}

/* Parse complete lines from h->scanned on; see http1_parse_request(). */
static int
parse_head(struct http_head *h, const char *buf, size_t len, const struct http1_limits *lim)
{
    const unsigned char *s = (const unsigned char *)buf;
    uint32_t max = lim && lim->max_head_bytes ? lim->max_head_bytes : HEAD_DEFAULT_MAX;
    max = max > INT32_MAX ? INT32_MAX : max; /* the length is returned as an int */
    unsigned max_fields = lim && lim->max_fields ? lim->max_fields : HTTP_MAX_FIELDS;
    if (max_fields > HTTP_MAX_FIELDS)
        max_fields = HTTP_MAX_FIELDS;
    if (h->head_len)
        return (int)h->head_len;
    /* Never look past the limit: a head that does not end within it is too large. */
    uint32_t end = len > max ? max : (uint32_t)len;
    uint32_t pos = h->scanned, eol = 0;
    int rc;

    for (;;) {
        rc = scan_line(s, pos, end, &eol);
        if (rc == 0) {
            h->scanned = pos;
            if (len >= max) {
                h->err_off = max;
                return HTTP1_ERR_TOO_LARGE;
            }
            return HTTP1_NEED_MORE;
        }
        if (rc < 0) {
            h->err_off = eol;
            return HTTP1_ERR_BAD;
        }
        if (!h->saw_start) {
            if (eol == pos && !h->is_response) {
                /* empty lines before a request line are ignored (RFC 9112 2.2) */
                pos += 2;
                h->start_off = pos;
                continue;
            }
            rc = h->is_response ? parse_status_line(h, s, pos, eol)
                                : parse_request_line(h, s, pos, eol);
            if (rc < 0)
                return rc;
            h->saw_start = 1;
        } else if (eol == pos) {
            rc = finish_head(h, s, eol);
            if (rc < 0)
                return rc;
            h->scanned = eol + 2;
            h->head_len = eol + 2;
            return (int)h->head_len;
        } else {
            rc = parse_field(h, s, pos, eol, max_fields);
            if (rc < 0)
                return rc;
        }
        pos = eol + 2;
    }
}

/* The method must be a token as far as it has arrived: binary garbage (a TLS
 * hello, WebSocket frames) gets 400 at once instead of waiting for a line end
 * or the header timeout. */
static bool
partial_method_bad(struct http_head *h, const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t p = h->scanned;
    while (p + 1 < len && s[p] == '\r' && s[p + 1] == '\n')
        p += 2; /* leading empty lines */
    /* CR and LF are the line scanner's to judge (it blames the same byte
     * however the head arrives): stop there. */
    for (; p < len && s[p] != ' ' && s[p] != '\r' && s[p] != '\n'; p++) {
        if (!(http1_cls[s[p]] & C_TCHAR)) {
            h->err_off = (uint32_t)p; /* the same byte a whole-line parse blames */
            return true;
        }
    }
    return false;
}

int
http1_parse_request(struct http_head *h, const char *buf, size_t len,
                    const struct http1_limits *lim)
{
    h->is_response = 0;
    /* Checked before the line scan, whole line or not, so a trickled head and a
     * whole one blame the same byte. */
    if (!h->saw_start && partial_method_bad(h, buf, len))
        return HTTP1_ERR_BAD;
    return parse_head(h, buf, len, lim);
}

int
http1_parse_response(struct http_head *h, const char *buf, size_t len,
                     const struct http1_limits *lim)
{
    h->is_response = 1;
    return parse_head(h, buf, len, lim);
}

/* ---- after the parse ---- */

unsigned
http1_error_status(int rc)
{
    switch (rc) {
    case HTTP1_ERR_TOO_LARGE:
    case HTTP1_ERR_TOO_MANY:
        return 431;
    case HTTP1_ERR_NOT_IMPL:
        return 501;
    case HTTP1_ERR_VERSION:
        return 505;
    default:
        return 400;
    }
}

int
http_head_find(const struct http_head *h, const char *buf, const char *name, size_t name_len)
{
    unsigned id = name_len ? hdr_id((const unsigned char *)name, name_len) : HTTP_H_OTHER;
    if (id != HTTP_H_OTHER && !is_token((const unsigned char *)name, 0, (uint32_t)name_len))
        id = HTTP_H_OTHER; /* hdr_id is exact for tokens only */
    for (unsigned i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        if (id != HTTP_H_OTHER) {
            if (f->id == id) /* known names: compare the ids parsed once */
                return (int)i;
        } else if (f->name_len == name_len && f->id == HTTP_H_OTHER &&
                   mem_ieq(buf + f->name_off, name, name_len)) {
            return (int)i;
        }
    }
    return -1;
}

const char *
http_method_name(unsigned method)
{
    return method < ARRAY_SIZE(method_names) ? method_names[method] : NULL;
}
