/* SPDX-License-Identifier: MIT */
/* Message body framing (RFC 9112 6 and 7): how a parsed head delimits its body, and
 * an incremental scanner that validates chunked framing and finds its end. Pure. */
#include "config.h"

#include <tether/http1.h>

#include <string.h>

#include "http1_chars.h"

#define CHUNK_LINE_DEFAULT    4096
#define CHUNK_TRAILER_DEFAULT 16384
#define CHUNK_SIZE_DEFAULT    (UINT64_C(1) << 62)
#define CHUNK_MAX_DIGITS      16

/* ---- body kinds ---- */

enum http1_body
http1_request_body(const struct http_head *req)
{
    if (req->flags & HTTP_F_CHUNKED)
        return HTTP1_BODY_CHUNKED;
    if (req->flags & HTTP_F_HAS_CL && req->content_length > 0)
        return HTTP1_BODY_LENGTH;
    return HTTP1_BODY_NONE;
}

enum http1_body
http1_response_body(const struct http_head *resp, unsigned req_method)
{
    unsigned st = resp->status;
    /* RFC 9112 6.3, in order */
    if (req_method == HTTP_M_HEAD || st < 200 || st == 204 || st == 304)
        return HTTP1_BODY_NONE;
    if (req_method == HTTP_M_CONNECT && st < 300)
        return HTTP1_BODY_NONE; /* a tunnel follows, not a body */
    if (resp->flags & HTTP_F_CHUNKED)
        return HTTP1_BODY_CHUNKED;
    if (resp->flags & HTTP_F_TE_OTHER)
        return HTTP1_BODY_CLOSE;
    if (resp->flags & HTTP_F_HAS_CL)
        return resp->content_length > 0 ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
    return HTTP1_BODY_CLOSE;
}

/* ---- chunked scanner ----
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )
 *
 * One state per position in that grammar; the scanner moves a byte at a time
 * through the framing and skips chunk data in one step, so a split anywhere in the
 * input gives the same result as one call with all of it. */
enum chunk_state {
    CS_SIZE0 = 0,   /* first hex digit of a chunk-size */
    CS_SIZE,        /* further hex digits */
    CS_SIZE_WS,     /* BWS after the size: only ';' may follow */
    CS_EXT_PRE,     /* BWS after ';', before an extension name */
    CS_EXT_NAME,    /* in an extension name */
    CS_EXT_NAME_WS, /* BWS after a name: '=' or ';' must follow */
    CS_EXT_PRE_VAL, /* BWS after '=', before the value */
    CS_EXT_TOKEN,   /* in a token value */
    CS_EXT_QS,      /* in a quoted-string value */
    CS_EXT_QP,      /* after a backslash in a quoted string */
    CS_EXT_AFTER,   /* right after a quoted string */
    CS_EXT_VAL_WS,  /* BWS after a value: only ';' may follow */
    CS_SIZE_LF,     /* CR of the chunk-size line seen */
    CS_DATA,        /* in chunk-data; chunk_left bytes remain */
    CS_DATA_CR,     /* the CR after chunk-data */
    CS_DATA_LF,     /* the LF after chunk-data */
    CS_TRL_START,   /* start of a trailer field line or of the final CRLF */
    CS_TRL_NAME,    /* in a trailer field name */
    CS_TRL_VALUE,   /* in a trailer field value */
    CS_TRL_LF,      /* CR of a trailer line seen */
    CS_END_LF,      /* CR of the final CRLF seen */
    CS_DONE,        /* the body is complete */
    CS_ERROR,       /* framing error: the stream is unusable */
};

void
http1_chunked_init(struct http1_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CS_SIZE0;
}

/* Value of the hex digit <ch>, or -1. */
static inline int
hexval(unsigned char ch)
{
    if (!(http1_cls[ch] & C_HEX))
        return -1;
    return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
}

/* Next state of the chunk-size line (size and extensions) on byte <ch>, or
 * CS_ERROR. Accumulates the size in c->chunk_left. */
static unsigned
size_line_step(struct http1_chunked *c, unsigned st, unsigned char ch, uint64_t max_size)
{
    unsigned k = http1_cls[ch];
    switch (st) {
    case CS_SIZE0:
    case CS_SIZE: {
        int d = hexval(ch);
        if (d >= 0) {
            if (++c->digits > CHUNK_MAX_DIGITS)
                return CS_ERROR;
            c->chunk_left = c->chunk_left << 4 | (unsigned)d;
            return c->chunk_left > max_size ? CS_ERROR : CS_SIZE;
        }
        if (st == CS_SIZE0)
            return CS_ERROR;
        if (ch == '\r')
            return CS_SIZE_LF;
        if (ch == ';')
            return CS_EXT_PRE;
        return k & C_OWS ? CS_SIZE_WS : CS_ERROR;
    }
    case CS_SIZE_WS:
    case CS_EXT_VAL_WS:
        if (ch == ';')
            return CS_EXT_PRE;
        return k & C_OWS ? st : CS_ERROR;
    case CS_EXT_PRE:
        if (k & C_TCHAR)
            return CS_EXT_NAME;
        return k & C_OWS ? st : CS_ERROR;
    case CS_EXT_NAME:
    case CS_EXT_NAME_WS:
        if (st == CS_EXT_NAME && k & C_TCHAR)
            return st;
        if (ch == '=')
            return CS_EXT_PRE_VAL;
        if (ch == ';')
            return CS_EXT_PRE;
        if (st == CS_EXT_NAME && ch == '\r')
            return CS_SIZE_LF;
        return k & C_OWS ? CS_EXT_NAME_WS : CS_ERROR;
    case CS_EXT_PRE_VAL:
        if (ch == '"')
            return CS_EXT_QS;
        if (k & C_TCHAR)
            return CS_EXT_TOKEN;
        return k & C_OWS ? st : CS_ERROR;
    case CS_EXT_TOKEN:
    case CS_EXT_AFTER:
        if (st == CS_EXT_TOKEN && k & C_TCHAR)
            return st;
        if (ch == ';')
            return CS_EXT_PRE;
        if (ch == '\r')
            return CS_SIZE_LF;
        return k & C_OWS ? CS_EXT_VAL_WS : CS_ERROR;
    case CS_EXT_QS:
        if (ch == '"')
            return CS_EXT_AFTER;
        if (ch == '\\')
            return CS_EXT_QP;
        return k & C_QDTEXT ? st : CS_ERROR;
    case CS_EXT_QP:
        /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
        return k & C_LINE ? CS_EXT_QS : CS_ERROR;
    }
    return CS_ERROR;
}

bool
http1_chunked_in_data(const struct http1_chunked *c)
{
    return c->state == CS_DATA || c->state == CS_DATA_CR || c->state == CS_DATA_LF;
}

/* Next state after the CRLF that ends a chunk's data or a size line, on
 * byte <ch> in state <st> (CS_DATA_CR, CS_DATA_LF, CS_SIZE_LF). */
static unsigned
crlf_step(struct http1_chunked *c, unsigned st, unsigned char ch)
{
    switch (st) {
    case CS_DATA_CR:
        return ch == '\r' ? CS_DATA_LF : CS_ERROR;
    case CS_DATA_LF:
        if (ch != '\n')
            return CS_ERROR;
        c->digits = 0;
        c->line_bytes = 0;
        c->chunk_left = 0;
        return CS_SIZE0;
    default: /* CS_SIZE_LF */
        if (ch != '\n')
            return CS_ERROR;
        c->line_bytes = 0;
        return c->chunk_left ? CS_DATA : CS_TRL_START;
    }
}

/* Next state in the trailer section (CS_TRL_*) from s[*ip] on; advances *ip
 * past the bytes taken (a field value and its CR in one step). */
static unsigned
trailer_step(struct http1_chunked *c, unsigned st, const unsigned char *s, size_t n, size_t *ip,
             uint32_t max_trl)
{
    size_t i = *ip;
    unsigned char ch = s[i];
    *ip = i + 1;
    switch (st) {
    case CS_TRL_START:
        /* a field line (a leading SP/HTAB would be obs-fold) or the final CRLF */
        if (ch == '\r')
            return CS_END_LF;
        return http1_cls[ch] & C_TCHAR && ++c->trailer_bytes <= max_trl ? CS_TRL_NAME : CS_ERROR;
    case CS_TRL_NAME:
        if (++c->trailer_bytes > max_trl)
            return CS_ERROR;
        if (ch == ':')
            return CS_TRL_VALUE;
        /* not a tchar: includes whitespace before the colon */
        return http1_cls[ch] & C_TCHAR ? st : CS_ERROR;
    case CS_TRL_VALUE: {
        size_t j = i;
        unsigned next = st;
        while (j < n && (http1_cls[s[j]] & C_LINE))
            j++;
        if (j < n)
            next = s[j] == '\r' ? CS_TRL_LF : CS_ERROR;
        j += j < n;
        if (j - i > max_trl - c->trailer_bytes)
            return CS_ERROR;
        c->trailer_bytes += (uint32_t)(j - i);
        *ip = j;
        return next;
    }
    default: /* CS_TRL_LF */
        if (++c->trailer_bytes > max_trl)
            return CS_ERROR;
        return ch == '\n' ? CS_TRL_START : CS_ERROR;
    }
}

int64_t
http1_chunked_scan(struct http1_chunked *c, const char *p, size_t n,
                   const struct http1_chunk_limits *lim, http1_data_fn on_data, void *ctx)
{
    const unsigned char *s = (const unsigned char *)p;
    uint32_t max_line = lim && lim->max_line_bytes ? lim->max_line_bytes : CHUNK_LINE_DEFAULT;
    uint32_t max_trl =
        lim && lim->max_trailer_bytes ? lim->max_trailer_bytes : CHUNK_TRAILER_DEFAULT;
    uint64_t max_size = lim && lim->max_chunk_size ? lim->max_chunk_size : CHUNK_SIZE_DEFAULT;
    unsigned st = c->state;
    size_t i = 0;

    if (st == CS_DONE)
        return 0;
    while (i < n && st != CS_ERROR) {
        unsigned char ch = s[i];
        switch (st) {
        case CS_DATA: {
            /* the bulk of the body: one step per span, not per byte */
            size_t m = n - i;
            if (m > c->chunk_left)
                m = (size_t)c->chunk_left;
            if (on_data)
                on_data(ctx, p + i, m);
            c->chunk_left -= m;
            c->total += m;
            i += m;
            if (c->chunk_left == 0)
                st = CS_DATA_CR;
            continue;
        }
        case CS_DATA_CR:
        case CS_DATA_LF:
        case CS_SIZE_LF:
            st = crlf_step(c, st, ch);
            break;
        case CS_TRL_START:
        case CS_TRL_NAME:
        case CS_TRL_VALUE:
        case CS_TRL_LF:
            st = trailer_step(c, st, s, n, &i, max_trl);
            continue;
        case CS_END_LF:
            if (ch != '\n') {
                st = CS_ERROR;
                break;
            }
            c->state = CS_DONE;
            c->done = 1;
            return (int64_t)(i + 1);
        default:
            st = size_line_step(c, st, ch, max_size);
            if (st != CS_SIZE_LF && ++c->line_bytes > max_line)
                st = CS_ERROR;
            break;
        }
        i++;
    }
    c->state = (uint8_t)st;
    return st == CS_ERROR ? HTTP1_ERR_BAD : (int64_t)i;
}
