/* SPDX-License-Identifier: MIT */
/* Strict, incremental HTTP/1.x head parser and body framing (RFC 9112). Pure: it
 * takes bytes and fills structs, records offsets only, touches no globals. */
#ifndef TETHER_HTTP1_H
#define TETHER_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/util.h>

/* Hard cap on fields per head; the runtime limit (tune max_headers) is <= this. */
#define HTTP1_MAX_FIELDS 256

/* Parser results. >0 is the head length in bytes, 0 means "need more bytes". */
enum http1_status {
    HTTP1_NEED_MORE = 0,
    HTTP1_ERR_BAD = -1,       /* malformed or ambiguous: 400 (502 for a response) */
    HTTP1_ERR_TOO_LARGE = -2, /* head longer than max_head_bytes: 431 */
    HTTP1_ERR_TOO_MANY = -3,  /* more than max_fields header fields: 431 */
    HTTP1_ERR_NOT_IMPL = -4,  /* transfer-coding other than chunked in a request: 501 */
    HTTP1_ERR_VERSION = -5,   /* HTTP version other than 1.0/1.1: 505 */
};

enum http1_method {
    HTTP1_M_OTHER = 0, /* a valid token we do not know by name */
    HTTP1_M_GET,
    HTTP1_M_HEAD,
    HTTP1_M_POST,
    HTTP1_M_PUT,
    HTTP1_M_DELETE,
    HTTP1_M_OPTIONS,
    HTTP1_M_PATCH,
    HTTP1_M_CONNECT,
    HTTP1_M_TRACE,
};

/* Header names the proxy acts on; everything else is HTTP1_H_OTHER. */
enum http1_hdr {
    HTTP1_H_OTHER = 0,
    HTTP1_H_CONTENT_LENGTH,
    HTTP1_H_TRANSFER_ENCODING,
    HTTP1_H_HOST,
    HTTP1_H_CONNECTION,
    HTTP1_H_KEEP_ALIVE,
    HTTP1_H_PROXY_CONNECTION,
    HTTP1_H_TE,
    HTTP1_H_TRAILER,
    HTTP1_H_UPGRADE,
    HTTP1_H_EXPECT,
    HTTP1_H_COOKIE,
    HTTP1_H_SET_COOKIE,
    HTTP1_H_X_FORWARDED_FOR,
    HTTP1_H_X_FORWARDED_PROTO,
    HTTP1_H_X_FORWARDED_HOST,
    HTTP1_H_X_REQUEST_ID,
    HTTP1_H_FORWARDED,
    HTTP1_H_PROXY_AUTHORIZATION,
    HTTP1_H_PROXY_AUTHENTICATE,
    HTTP1_H_SEC_WEBSOCKET_KEY,
    HTTP1_H_SEC_WEBSOCKET_ACCEPT,
    HTTP1_H__COUNT
};

/* Flags derived while parsing (struct http1_head.flags). */
enum http1_flag {
    HTTP1_F_CHUNKED = 1u << 0,         /* Transfer-Encoding ends in chunked */
    HTTP1_F_HAS_CL = 1u << 1,          /* a valid Content-Length was present */
    HTTP1_F_CONN_CLOSE = 1u << 2,      /* Connection: close */
    HTTP1_F_CONN_KEEPALIVE = 1u << 3,  /* Connection: keep-alive */
    HTTP1_F_CONN_UPGRADE = 1u << 4,    /* Connection: upgrade */
    HTTP1_F_UPGRADE_WS = 1u << 5,      /* Upgrade: websocket (any case) */
    HTTP1_F_EXPECT_CONTINUE = 1u << 6, /* Expect: 100-continue */
    HTTP1_F_ABSOLUTE_FORM = 1u << 7,   /* request target is http(s)://authority/path */
    HTTP1_F_CONN_OTHER = 1u << 8,      /* Connection names other headers (hop-by-hop) */
    HTTP1_F_TE_OTHER = 1u << 9,        /* response: a coding other than final chunked */
    HTTP1_F_EXPECT_OTHER = 1u << 10,   /* Expect with a value other than 100-continue */
};

/* One header field. Offsets are from the first byte of the buffer passed in. */
struct http1_field {
    uint32_t name_off;  /* field name */
    uint16_t name_len;  /* field name length */
    uint16_t id;        /* enum http1_hdr */
    uint32_t value_off; /* value, leading and trailing whitespace trimmed */
    uint32_t value_len; /* value length */
};

/* Limits applied by the parser. */
struct http1_limits {
    uint32_t max_head_bytes; /* request line + fields + final CRLF; beyond: TOO_LARGE */
    uint16_t max_fields;     /* <= HTTP1_MAX_FIELDS; beyond: TOO_MANY */
};

/* A parsed request or response head. Zero it with http1_head_init() before the
 * first call for a message; keep it (and the same buffer) across calls while the
 * result is NEED_MORE, so trickled input is not re-parsed. */
struct http1_head {
    /* --- resume state (private to the parser) --- */
    uint32_t scanned;    /* bytes of complete lines already parsed */
    uint32_t start_off;  /* offset of the start line (leading CRLFs skipped) */
    uint8_t saw_start;   /* the start line has been parsed */
    uint8_t is_response; /* parsing a response head */
    uint16_t cl_count;   /* Content-Length fields seen */
    uint16_t te_count;   /* Transfer-Encoding fields seen */
    uint16_t host_count; /* Host fields seen */
    /* --- results --- */
    uint32_t head_len;      /* total head length including the final CRLF (when > 0) */
    uint32_t err_off;       /* offset of the offending byte on error */
    uint8_t method;         /* enum http1_method (requests) */
    uint8_t version_minor;  /* 0 or 1 */
    uint16_t status;        /* status code (responses) */
    uint32_t method_len;    /* method token length; it starts at start_off */
    uint32_t target_off;    /* request target */
    uint32_t target_len;    /* request target length */
    uint32_t path_off;      /* origin-form path inside the target (absolute-form stripped) */
    uint32_t path_len;      /* path + query length */
    uint32_t authority_off; /* authority of an absolute-form target */
    uint32_t authority_len; /* 0 when the target is not absolute-form */
    uint32_t reason_off;    /* reason phrase (responses) */
    uint32_t reason_len;    /* reason phrase length, may be 0 */
    uint32_t flags;         /* enum http1_flag */
    int64_t content_length; /* -1 when absent */
    int16_t host_idx;       /* index in fields[] of Host, -1 when absent */
    uint16_t nfields;       /* number of fields[] in use */
    struct http1_field fields[HTTP1_MAX_FIELDS];
};

/* How a message body is delimited. */
enum http1_body {
    HTTP1_BODY_NONE = 0, /* no body bytes follow the head */
    HTTP1_BODY_LENGTH,   /* exactly content_length bytes */
    HTTP1_BODY_CHUNKED,  /* chunked framing */
    HTTP1_BODY_CLOSE,    /* responses only: until the server closes */
};

/* Reset <h> for a new message. */
void http1_head_init(struct http1_head *h);

/* Parse a request head at <buf>[0..len). Returns the head length (>0), NEED_MORE or
 * an error. Strict per RFC 9112: rejects bare CR or LF, obs-fold, NUL/CTL in
 * fields, whitespace before the colon, invalid tokens, CL+TE together, differing
 * Content-Length, TE in HTTP/1.0, unknown codings (NOT_IMPL), missing or duplicate
 * Host in HTTP/1.1, absolute-form whose authority differs from Host. Leading empty
 * lines (CRLF) before the request line are skipped. */
int http1_parse_request(struct http1_head *h, const char *buf, size_t len,
                        const struct http1_limits *lim);

/* Parse a response head; same contract. CL+TE together or differing CL is an error. */
int http1_parse_response(struct http1_head *h, const char *buf, size_t len,
                         const struct http1_limits *lim);

/* Body kind of a parsed request. */
enum http1_body http1_request_body(const struct http1_head *req);
/* Body kind of a parsed response to a request with method <req_method>. */
enum http1_body http1_response_body(const struct http1_head *resp, unsigned req_method);

/* Index of the first field named <name> (case-insensitive), or -1. */
int http1_find(const struct http1_head *h, const char *buf, const char *name, size_t name_len);

/* Find cookie <name> in a Cookie header value; fills <val>. true when found. */
/* The value of cookie <name> in the first Cookie field of <h> that has it. */
bool http1_request_cookie(const struct http1_head *h, const char *base, const char *name,
                          size_t name_len, struct slice *val);
bool http1_cookie_get(const char *value, size_t value_len, const char *name, size_t name_len,
                      struct slice *val);

/* Status reason text for a code ("Bad Request"), "Unknown" if none. */
const char *http1_reason(unsigned status);

/* tether's own small reply: "HTTP/1.1 <status> <reason>", a text/plain body
 * "<status> <reason>\n" (its bytes left out when <head_only>: HEAD),
 * "Connection: close" when <close>, X-Request-Id when <req_id_len>, then
 * <extra> header lines (each ending in CRLF; may be NULL). Written into <out>
 * (<cap> bytes); returns the length, 0 when the head does not fit. */
size_t http1_reply_write(char *out, size_t cap, unsigned status, bool close, const char *req_id,
                         size_t req_id_len, const char *extra, bool head_only);

/* Canonical name of a method enum ("GET"), NULL for HTTP1_M_OTHER. */
const char *http1_method_name(unsigned method);

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
