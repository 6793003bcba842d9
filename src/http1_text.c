/* SPDX-License-Identifier: MIT */
/* Text helpers of the HTTP/1 module that are not on the parsing path: cookie
 * values, status reason phrases, tether's own small replies. Pure. */
#include "config.h"

#include <tether/http1.h>

#include <stdio.h>
#include <string.h>

static inline bool
is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

bool
http_head_cookie(const struct http_head *h, const char *base, const char *name, size_t name_len,
                 struct slice *val)
{
    for (unsigned i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        if (f->id == HTTP_H_COOKIE &&
            http_cookie_get(base + f->value_off, f->value_len, name, name_len, val))
            return true;
    }
    return false;
}

bool
http_cookie_get(const char *value, size_t value_len, const char *name, size_t name_len,
                struct slice *val)
{
    const char *p = value, *end = value + value_len;
    while (name_len && p < end) {
        /* one "name=value" pair, up to the next ';' (a space after it is usual) */
        const char *semi = memchr(p, ';', (size_t)(end - p)), *pe = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p)), *ne = eq;
        while (p < pe && is_ows((unsigned char)*p))
            p++;
        while (ne && ne > p && is_ows((unsigned char)ne[-1]))
            ne--;
        if (ne && (size_t)(ne - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *vs = eq + 1, *ve = pe;
            while (vs < ve && is_ows((unsigned char)*vs))
                vs++;
            while (ve > vs && is_ows((unsigned char)ve[-1]))
                ve--;
            if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') /* a quoted value */
                vs++, ve--;
            val->p = vs;
            val->len = (size_t)(ve - vs);
            return true;
        }
        p = semi ? semi + 1 : end;
    }
    return false;
}

/* Reason phrases (RFC 9110 15) by class, indexed by code % 100; packed by hand. */
/* clang-format off */
static const char *const reasons_1xx[] = {"Continue", "Switching Protocols"};
static const char *const reasons_2xx[] = {
    "OK", "Created", "Accepted", "Non-Authoritative Information", "No Content",
    "Reset Content", "Partial Content"};
static const char *const reasons_3xx[] = {
    "Multiple Choices", "Moved Permanently", "Found", "See Other", "Not Modified", NULL, NULL,
    "Temporary Redirect", "Permanent Redirect"};
static const char *const reasons_4xx[] = {
    "Bad Request", "Unauthorized", NULL, "Forbidden", "Not Found", "Method Not Allowed",
    "Not Acceptable", "Proxy Authentication Required", "Request Timeout", "Conflict", "Gone",
    "Length Required", "Precondition Failed", "Content Too Large", "URI Too Long",
    "Unsupported Media Type", "Range Not Satisfiable", "Expectation Failed", NULL, NULL, NULL,
    "Misdirected Request", "Unprocessable Content", NULL, NULL, "Too Early", "Upgrade Required",
    NULL, "Precondition Required", "Too Many Requests", NULL, "Request Header Fields Too Large"};
static const char *const reasons_5xx[] = {
    "Internal Server Error", "Not Implemented", "Bad Gateway", "Service Unavailable",
    "Gateway Timeout", "HTTP Version Not Supported"};
/* clang-format on */
static const struct {
    const char *const *text; /* reasons of the class */
    size_t n;                /* entries in text[] */
} reasons[6] = {
    [1] = {reasons_1xx, ARRAY_SIZE(reasons_1xx)}, [2] = {reasons_2xx, ARRAY_SIZE(reasons_2xx)},
    [3] = {reasons_3xx, ARRAY_SIZE(reasons_3xx)}, [4] = {reasons_4xx, ARRAY_SIZE(reasons_4xx)},
    [5] = {reasons_5xx, ARRAY_SIZE(reasons_5xx)},
};

const char *
http_reason(unsigned status)
{
    unsigned c = status / 100, i = status % 100;
    if (c < ARRAY_SIZE(reasons) && i < reasons[c].n && reasons[c].text[i])
        return reasons[c].text[i];
    return "Unknown";
}

size_t
http1_reply_write(char *out, size_t cap, unsigned status, bool close, const char *req_id,
                  size_t req_id_len, const char *extra, bool head_only)
{
    const char *reason = http_reason(status);
    char body[96];
    int blen = snprintf(body, sizeof(body), "%u %s\n", status, reason);
    int n = snprintf(out, cap,
                     "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s"
                     "%s%.*s%s%s\r\n",
                     status, reason, blen, close ? "Connection: close\r\n" : "",
                     req_id_len ? "X-Request-Id: " : "", (int)req_id_len, req_id_len ? req_id : "",
                     req_id_len ? "\r\n" : "", extra ? extra : "");
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t len = (size_t)n;
    if (!head_only) {
        size_t take = MIN((size_t)blen, cap - len);
        memcpy(out + len, body, take);
        len += take;
    }
    return len;
}
