/* SPDX-License-Identifier: MIT */
/* The header view: a parsed request or response head as the exchange sees it,
 * whatever the client's protocol. Method, target (path, authority), the
 * fields as offsets into one byte buffer, the flags and the body length the
 * proxy acts on. The HTTP/1 parser (http1.h) fills it from the bytes it
 * parses; an HTTP/2 stream fills it from decoded header fields (:path as the
 * target, :authority as Host, cookie fields joined). Routing, rate limiting,
 * affinity, learning, retries and the access log read only this. The lookups
 * below are implemented beside the HTTP/1 parser (http1.c, http1_text.c)
 * because they share its header-name tables. Pure. */
#ifndef TETHER_HTTP_HEAD_H
#define TETHER_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/util.h>

/* Hard cap on fields per head; the runtime limit (tune max_headers) is <= this. */
#define HTTP_MAX_FIELDS 256

enum http_method {
    HTTP_M_OTHER = 0, /* a valid token we do not know by name */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_OPTIONS,
    HTTP_M_PATCH,
    HTTP_M_CONNECT,
    HTTP_M_TRACE,
};

/* Header names the proxy acts on; everything else is HTTP_H_OTHER. */
enum http_hdr {
    HTTP_H_OTHER = 0,
    HTTP_H_CONTENT_LENGTH,
    HTTP_H_TRANSFER_ENCODING,
    HTTP_H_HOST,
    HTTP_H_CONNECTION,
    HTTP_H_KEEP_ALIVE,
    HTTP_H_PROXY_CONNECTION,
    HTTP_H_TE,
    HTTP_H_TRAILER,
    HTTP_H_UPGRADE,
    HTTP_H_EXPECT,
    HTTP_H_COOKIE,
    HTTP_H_SET_COOKIE,
    HTTP_H_X_FORWARDED_FOR,
    HTTP_H_X_FORWARDED_PROTO,
    HTTP_H_X_FORWARDED_HOST,
    HTTP_H_X_REQUEST_ID,
    HTTP_H_FORWARDED,
    HTTP_H_PROXY_AUTHORIZATION,
    HTTP_H_PROXY_AUTHENTICATE,
    HTTP_H_SEC_WEBSOCKET_KEY,
    HTTP_H_SEC_WEBSOCKET_ACCEPT,
    HTTP_H__COUNT
};

/* Flags derived while parsing (struct http_head.flags). */
enum http_flag {
    HTTP_F_CHUNKED = 1u << 0,         /* Transfer-Encoding ends in chunked */
    HTTP_F_HAS_CL = 1u << 1,          /* a valid Content-Length was present */
    HTTP_F_CONN_CLOSE = 1u << 2,      /* Connection: close */
    HTTP_F_CONN_KEEPALIVE = 1u << 3,  /* Connection: keep-alive */
    HTTP_F_CONN_UPGRADE = 1u << 4,    /* Connection: upgrade */
    HTTP_F_UPGRADE_WS = 1u << 5,      /* Upgrade: websocket (any case) */
    HTTP_F_EXPECT_CONTINUE = 1u << 6, /* Expect: 100-continue */
    HTTP_F_ABSOLUTE_FORM = 1u << 7,   /* request target is http(s)://authority/path */
    HTTP_F_CONN_OTHER = 1u << 8,      /* Connection names other headers (hop-by-hop) */
    HTTP_F_TE_OTHER = 1u << 9,        /* response: a coding other than final chunked */
    HTTP_F_EXPECT_OTHER = 1u << 10,   /* Expect with a value other than 100-continue */
};

/* One header field. Offsets are from the first byte of the buffer passed in. */
struct http_field {
    uint32_t name_off;  /* field name */
    uint16_t name_len;  /* field name length */
    uint16_t id;        /* enum http_hdr */
    uint32_t value_off; /* value, leading and trailing whitespace trimmed */
    uint32_t value_len; /* value length */
};

/* A parsed request or response head. Zero it with http_head_init() before the
 * first call for a message; keep it (and the same buffer) across calls while the
 * result is NEED_MORE, so trickled input is not re-parsed. */
struct http_head {
    /* --- resume state (private to the HTTP/1 parser) --- */
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
    uint8_t method;         /* enum http_method (requests) */
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
    uint32_t flags;         /* enum http_flag */
    int64_t content_length; /* -1 when absent */
    int16_t host_idx;       /* index in fields[] of Host, -1 when absent */
    uint16_t nfields;       /* number of fields[] in use */
    struct http_field fields[HTTP_MAX_FIELDS];
};

/* Reset <h> for a new message. */
void http_head_init(struct http_head *h);

/* Index of the first field named <name> (case-insensitive), or -1. */
int http_head_find(const struct http_head *h, const char *buf, const char *name, size_t name_len);

/* Find cookie <name> in a Cookie header value; fills <val>. true when found. */
/* The value of cookie <name> in the first Cookie field of <h> that has it. */
bool http_head_cookie(const struct http_head *h, const char *base, const char *name,
                      size_t name_len, struct slice *val);
bool http_cookie_get(const char *value, size_t value_len, const char *name, size_t name_len,
                     struct slice *val);

/* Status reason text for a code ("Bad Request"), "Unknown" if none. */
const char *http_reason(unsigned status);

/* Canonical name of a method enum ("GET"), NULL for HTTP_M_OTHER. */
const char *http_method_name(unsigned method);

#endif
