/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the response head parser: every result is checked against
 * the bytes, a trickled parse must equal the one-shot parse, tighter limits may
 * only fail earlier, and the body kind agrees with the framing fields. */
#include "config.h"

#include "head_agree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Everything a successful parse claims must hold in the bytes. */
static void
check_success(const struct http_head *h, const char *b, int rc, const struct http1_limits *lim)
{
    uint32_t n = (uint32_t)rc;
    int has_cl = 0, has_te = 0;
    if (h->head_len != n || n > lim->max_head_bytes || n < 16 || memcmp(b + n - 4, "\r\n\r\n", 4))
        abort();
    if (h->start_off != 0 || memcmp(b, "HTTP/1.", 7) != 0 || b[7] != '0' + h->version_minor)
        abort();
    if (h->status < 100 || h->status > 599 || b[8] != ' ' ||
        (unsigned)((b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0')) != h->status)
        abort();
    if ((uint64_t)h->reason_off + h->reason_len > n || (h->reason_len && h->reason_off != 13))
        abort();
    for (uint32_t i = 0; i < h->reason_len; i++) {
        unsigned char c = (unsigned char)b[h->reason_off + i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            abort();
    }
    if (h->nfields > lim->max_fields)
        abort();
    for (unsigned i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        if ((uint64_t)f->name_off + f->name_len > n || (uint64_t)f->value_off + f->value_len > n)
            abort();
        if (f->name_len == 0 || b[f->name_off + f->name_len] != ':')
            abort();
        for (unsigned j = 0; j < f->value_len; j++) {
            unsigned char c = (unsigned char)b[f->value_off + j];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                abort();
        }
        int cl = ieq(b + f->name_off, f->name_len, "content-length");
        int te = ieq(b + f->name_off, f->name_len, "transfer-encoding");
        if (cl != (f->id == HTTP_H_CONTENT_LENGTH) || te != (f->id == HTTP_H_TRANSFER_ENCODING))
            abort();
        has_cl |= cl;
        has_te |= te;
        int k = http_head_find(h, b, b + f->name_off, f->name_len);
        if (k < 0 || (unsigned)k > i)
            abort();
    }
    if (has_cl && has_te)
        abort();
    if (has_te && (h->version_minor == 0 || !(h->flags & (HTTP_F_CHUNKED | HTTP_F_TE_OTHER))))
        abort();
    if ((h->flags & HTTP_F_CHUNKED) && (h->flags & HTTP_F_TE_OTHER))
        abort();
    if (!!(h->flags & HTTP_F_HAS_CL) != has_cl || (h->content_length >= 0) != has_cl)
        abort();
    /* body kinds, for every method */
    for (unsigned m = HTTP_M_OTHER; m <= HTTP_M_TRACE; m++) {
        enum http1_body k = http1_response_body(h, m);
        int none = m == HTTP_M_HEAD || h->status < 200 || h->status == 204 || h->status == 304 ||
                   (m == HTTP_M_CONNECT && h->status < 300);
        if (none && k != HTTP1_BODY_NONE)
            abort();
        if (!none && has_te &&
            k != ((h->flags & HTTP_F_CHUNKED) ? HTTP1_BODY_CHUNKED : HTTP1_BODY_CLOSE))
            abort();
        if (!none && !has_te && !has_cl && k != HTTP1_BODY_CLOSE)
            abort();
        if (!none && has_cl && k != (h->content_length ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE))
            abort();
    }
    (void)http_reason(h->status);
}

static int
same(int ra, const struct http_head *a, int rb, const struct http_head *b)
{
    if (ra != rb)
        return 0;
    if (ra < 0)
        return a->err_off == b->err_off;
    if (ra == 0)
        return 1;
    return a->version_minor == b->version_minor && a->status == b->status &&
           a->reason_off == b->reason_off && a->reason_len == b->reason_len &&
           a->flags == b->flags && a->content_length == b->content_length &&
           a->nfields == b->nfields &&
           memcmp(a->fields, b->fields, a->nfields * sizeof(a->fields[0])) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct head_fuzz hf = {http1_parse_response, check_success, same};
    static struct http_head one;
    if (head_fuzz_run(&hf, &one, (const char *)data, size) == HTTP1_ERR_NOT_IMPL)
        abort();
    return 0;
}
