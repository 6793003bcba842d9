/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the request head parser: every result is checked against
 * the bytes, a trickled parse must equal the one-shot parse, tighter limits may
 * only fail earlier, and a chunked body after the head goes through the scanner. */
#include "config.h"

#include "head_agree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tchar, written out again rather than taken from the parser */
static int
is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int
in(uint32_t off, uint32_t len, uint32_t lo, uint32_t hi)
{
    return off >= lo && (uint64_t)off + len <= hi;
}

/* Each cookie name in <v> is found, with a value inside <v> and free of ';'. */
static void
check_cookies(const char *v, size_t n)
{
    struct slice val;
    size_t i = 0;
    while (i < n) {
        size_t s = i, e;
        while (s < n && (v[s] == ' ' || v[s] == '\t' || v[s] == ';'))
            s++;
        for (e = s; e < n && v[e] != ';' && v[e] != '=' && v[e] != ' ' && v[e] != '\t'; e++)
            ;
        if (e > s && http_cookie_get(v, n, v + s, e - s, &val)) {
            if (val.p < v || val.p + val.len > v + n || memchr(val.p, ';', val.len))
                abort();
        }
        while (e < n && v[e] != ';')
            e++;
        i = e + 1;
    }
    if (http_cookie_get(v, n, "sid", 3, &val) && (val.p < v || val.p + val.len > v + n))
        abort();
}

/* Everything a successful parse claims must hold in the bytes. */
static void
check_success(const struct http_head *h, const char *b, int rc, const struct http1_limits *lim)
{
    uint32_t n = (uint32_t)rc;
    int has_cl = 0, has_te = 0;
    if (h->head_len != n || n > lim->max_head_bytes || n < 4 || memcmp(b + n - 4, "\r\n\r\n", 4))
        abort();
    for (uint32_t i = 0; i < h->start_off; i += 2)
        if (b[i] != '\r' || b[i + 1] != '\n')
            abort();
    uint32_t t = h->target_off, tl = h->target_len;
    if (h->method_len == 0 || h->start_off + h->method_len + 1 != t || !in(t, tl, 0, n) || tl == 0)
        abort();
    if (b[t - 1] != ' ' || b[t + tl] != ' ' || memcmp(b + t + tl + 1, "HTTP/1.", 7) != 0)
        abort();
    if (h->version_minor > 1 || b[t + tl + 8] != '0' + h->version_minor)
        abort();
    const char *mname = http_method_name(h->method);
    if (mname && (strlen(mname) != h->method_len || memcmp(b + h->start_off, mname, h->method_len)))
        abort();
    if (!mname && h->method != HTTP_M_OTHER)
        abort();
    if (!in(h->path_off, h->path_len, t, t + tl) ||
        (h->authority_len && !in(h->authority_off, h->authority_len, t, t + tl)))
        abort();
    if (!!(h->flags & HTTP_F_ABSOLUTE_FORM) != (h->authority_len > 0))
        abort();
    if (h->nfields > lim->max_fields || h->nfields > HTTP_MAX_FIELDS)
        abort();
    for (unsigned i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        if (!in(f->name_off, f->name_len, 0, n) || !in(f->value_off, f->value_len, 0, n))
            abort();
        if (f->name_len == 0 || b[f->name_off + f->name_len] != ':' || f->id >= HTTP_H__COUNT)
            abort();
        for (unsigned j = 0; j < f->name_len; j++)
            if (!is_tchar((unsigned char)b[f->name_off + j]))
                abort();
        for (unsigned j = 0; j < f->value_len; j++) {
            unsigned char c = (unsigned char)b[f->value_off + j];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                abort();
        }
        if (f->value_len && (b[f->value_off] == ' ' || b[f->value_off] == '\t' ||
                             b[f->value_off + f->value_len - 1] == ' ' ||
                             b[f->value_off + f->value_len - 1] == '\t'))
            abort();
        int cl = ieq(b + f->name_off, f->name_len, "content-length");
        int te = ieq(b + f->name_off, f->name_len, "transfer-encoding");
        if ((cl != (f->id == HTTP_H_CONTENT_LENGTH)) ||
            (te != (f->id == HTTP_H_TRANSFER_ENCODING)) ||
            (ieq(b + f->name_off, f->name_len, "host") != (f->id == HTTP_H_HOST)))
            abort();
        has_cl |= cl;
        has_te |= te;
        if (f->id == HTTP_H_COOKIE)
            check_cookies(b + f->value_off, f->value_len);
        int k = http_head_find(h, b, b + f->name_off, f->name_len);
        if (k < 0 || (unsigned)k > i || h->fields[k].name_len != f->name_len)
            abort();
    }
    /* the smuggling rules, checked on the raw fields */
    if (has_cl && has_te)
        abort();
    if (has_te && (h->version_minor == 0 || h->flags != (h->flags | HTTP_F_CHUNKED)))
        abort();
    if (!!(h->flags & HTTP_F_HAS_CL) != has_cl || (h->content_length >= 0) != has_cl)
        abort();
    if (h->version_minor == 1 && (h->host_idx < 0 || h->host_count != 1))
        abort();
    if (h->host_idx >= 0 && h->fields[h->host_idx].id != HTTP_H_HOST)
        abort();
    enum http1_body kind = http1_request_body(h);
    if (kind == HTTP1_BODY_CLOSE || (kind == HTTP1_BODY_CHUNKED) != !!(h->flags & HTTP_F_CHUNKED))
        abort();
}

/* Same outcome: result, error position, and every result field. */
static int
same(int ra, const struct http_head *a, int rb, const struct http_head *b)
{
    if (ra != rb)
        return 0;
    if (ra < 0)
        return a->err_off == b->err_off;
    if (ra == 0)
        return 1;
    return a->start_off == b->start_off && a->method == b->method &&
           a->version_minor == b->version_minor && a->method_len == b->method_len &&
           a->target_off == b->target_off && a->target_len == b->target_len &&
           a->path_off == b->path_off && a->path_len == b->path_len &&
           a->authority_off == b->authority_off && a->authority_len == b->authority_len &&
           a->flags == b->flags && a->content_length == b->content_length &&
           a->host_idx == b->host_idx && a->nfields == b->nfields &&
           memcmp(a->fields, b->fields, a->nfields * sizeof(a->fields[0])) == 0;
}

static void
count_data(void *ctx, const char *p, size_t n)
{
    (void)p;
    *(uint64_t *)ctx += n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct head_fuzz hf = {http1_parse_request, check_success, same};
    static struct http_head one;
    const char *buf = (const char *)data;
    int rc = head_fuzz_run(&hf, &one, buf, size);

    /* a chunked body that follows */
    if (rc > 0 && http1_request_body(&one) == HTTP1_BODY_CHUNKED) {
        struct http1_chunked c;
        uint64_t seen = 0;
        http1_chunked_init(&c);
        int64_t used = http1_chunked_scan(&c, buf + rc, size - (size_t)rc, NULL, count_data, &seen);
        if (used > (int64_t)(size - (size_t)rc) || (used >= 0 && seen != c.total))
            abort();
    }
    return 0;
}
