/* SPDX-License-Identifier: MIT */
/* Strict, incremental HTTP/1.x head parser and body framing (RFC 9112). Pure: it
 * takes bytes and fills structs, records offsets only, touches no globals. */
#ifndef TETHER_HTTP1_H
#define TETHER_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/http_head.h>
#include <tether/util.h>

/* Parser results. >0 is the head length in bytes, 0 means "need more bytes". */
enum http1_status {
    HTTP1_NEED_MORE = 0,
    HTTP1_ERR_BAD = -1,       /* malformed or ambiguous: 400 (502 for a response) */
    HTTP1_ERR_TOO_LARGE = -2, /* head longer than max_head_bytes: 431 */
    HTTP1_ERR_TOO_MANY = -3,  /* more than max_fields header fields: 431 */
    HTTP1_ERR_NOT_IMPL = -4,  /* transfer-coding other than chunked in a request: 501 */
    HTTP1_ERR_VERSION = -5,   /* HTTP version other than 1.0/1.1: 505 */
};

/* Limits applied by the parser. */
struct http1_limits {
    uint32_t max_head_bytes; /* request line + fields + final CRLF; beyond: TOO_LARGE */
    uint16_t max_fields;     /* <= HTTP_MAX_FIELDS; beyond: TOO_MANY */
};

/* How a message body is delimited. */
enum http1_body {
    HTTP1_BODY_NONE = 0, /* no body bytes follow the head */
    HTTP1_BODY_LENGTH,   /* exactly content_length bytes */
    HTTP1_BODY_CHUNKED,  /* chunked framing */
    HTTP1_BODY_CLOSE,    /* responses only: until the server closes */
};

/* Parse a request head at <buf>[0..len). Returns the head length (>0), NEED_MORE or
 * an error. Strict per RFC 9112: rejects bare CR or LF, obs-fold, NUL/CTL in
 * fields, whitespace before the colon, invalid tokens, CL+TE together, differing
 * Content-Length, TE in HTTP/1.0, unknown codings (NOT_IMPL), missing or duplicate
 * Host in HTTP/1.1, absolute-form whose authority differs from Host. Leading empty
 * lines (CRLF) before the request line are skipped. */
int http1_parse_request(struct http_head *h, const char *buf, size_t len,
                        const struct http1_limits *lim);

/* The status tether answers a request head that failed to parse with <rc>:
 * 431 too large or too many fields, 501 an unknown transfer-coding, 505 an
 * unsupported version, else 400. */
unsigned http1_error_status(int rc);

/* Parse a response head; same contract. CL+TE together or differing CL is an error. */
int http1_parse_response(struct http_head *h, const char *buf, size_t len,
                         const struct http1_limits *lim);

/* Body kind of a parsed request. */
enum http1_body http1_request_body(const struct http_head *req);
/* Body kind of a parsed response to a request with method <req_method>. */
enum http1_body http1_response_body(const struct http_head *resp, unsigned req_method);

/* tether's own small reply: "HTTP/1.1 <status> <reason>", a text/plain body
 * "<status> <reason>\n" (its bytes left out when <head_only>: HEAD),
 * "Connection: close" when <close>, X-Request-Id when <req_id_len>, then
 * <extra> header lines (each ending in CRLF; may be NULL). Written into <out>
 * (<cap> bytes); returns the length, 0 when the head does not fit. */
size_t http1_reply_write(char *out, size_t cap, unsigned status, bool close, const char *req_id,
                         size_t req_id_len, const char *extra, bool head_only);

/* ---- chunked framing ---- */

/* Called with each span of chunk data (not framing) found by the scanner. */
typedef void (*http1_data_fn)(void *ctx, const char *p, size_t n);

/* Limits for chunked framing. */
struct http1_chunk_limits {
    uint32_t max_line_bytes;    /* chunk-size line incl. extensions, default 4096 */
    uint32_t max_trailer_bytes; /* all trailer fields together */
    uint64_t max_chunk_size;    /* largest accepted chunk-size value */
};

/* Incremental chunked-body scanner. The proxy forwards chunked bytes verbatim; the
 * scanner validates the framing, finds the end, and counts data bytes. */
struct http1_chunked {
    uint8_t state;       /* private */
    uint8_t done;        /* the final CRLF after the last chunk/trailers was consumed */
    uint16_t digits;     /* private: hex digits in the current size */
    uint32_t line_bytes; /* private: bytes in the current size/ext/trailer line */
    uint32_t trailer_bytes;
    uint64_t chunk_left; /* data bytes left in the current chunk */
    uint64_t total;      /* data bytes seen so far */
};

void http1_chunked_init(struct http1_chunked *c);

/* Inside a chunk's data: its size line is complete, so chunk_left is the
 * announced remainder (during the size line it is a partial value). */
bool http1_chunked_in_data(const struct http1_chunked *c);

/* Scan <n> bytes at <p>. Returns the number of bytes consumed (<= n; it stops right
 * after the end of the body, so bytes of a next message are left), or
 * HTTP1_ERR_BAD on malformed framing (bad hex, overflow, missing CRLF, bare LF,
 * invalid extension, invalid trailer field, limit exceeded). <on_data> may be NULL. */
int64_t http1_chunked_scan(struct http1_chunked *c, const char *p, size_t n,
                           const struct http1_chunk_limits *lim, http1_data_fn on_data, void *ctx);

#endif
