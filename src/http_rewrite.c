/* SPDX-License-Identifier: MIT */
/* Request and response head rewriting, one pass each into the output buffer. */
#include "config.h"

#include <tether/http_rewrite.h>

#include <stdint.h>
#include <string.h>

/* The request's and the tunnel's id lengths are uint8_t. */
_Static_assert(REQUEST_ID_MAX <= UINT8_MAX, "REQUEST_ID_MAX fits the length fields");

/* A bounded writer: stops (and remembers) when <cap> would be exceeded. */
struct out {
    char *p;
    size_t len;
    size_t cap;
    bool full;
};

static inline void
put(struct out *o, const char *s, size_t n)
{
    if (o->full || o->cap - o->len < n) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static inline void
put_field(struct out *o, const char *buf, const struct http_field *f)
{
    /* Re-emit in canonical "Name: value" form (normalises whitespace). */
    put(o, buf + f->name_off, f->name_len);
    PUT_LIT(o, ": ");
    put(o, buf + f->value_off, f->value_len);
    PUT_LIT(o, "\r\n");
}

/* Does the Connection header list <name> (case-insensitive)? */
static bool
connection_lists(const char *buf, const struct http_head *h, const char *name, size_t nlen)
{
    for (unsigned i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        const char *v = buf + f->value_off, *end = v + f->value_len;
        if (f->id != HTTP_H_CONNECTION)
            continue;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            const char *t = v;
            while (v < end && *v != ',' && *v != ' ' && *v != '\t')
                v++;
            if ((size_t)(v - t) == nlen && mem_ieq(t, name, nlen))
                return true;
        }
    }
    return false;
}

static bool
hop_by_hop(unsigned id)
{
    switch (id) {
    case HTTP_H_CONNECTION:
    case HTTP_H_KEEP_ALIVE:
    case HTTP_H_PROXY_CONNECTION:
    case HTTP_H_TE:
    case HTTP_H_UPGRADE:
    case HTTP_H_PROXY_AUTHORIZATION:
    case HTTP_H_PROXY_AUTHENTICATE:
        return true;
    default:
        return false;
    }
}

/* Emit the Cookie field without the pair named <name>; nothing when empty. */
static void
put_cookie_without(struct out *o, const char *v, size_t vlen, const char *name, size_t nlen)
{
    const char *end = v + vlen;
    bool first = true;
    size_t mark = o->len;
    PUT_LIT(o, "Cookie: ");
    while (v < end) {
        while (v < end && (*v == ' ' || *v == ';'))
            v++;
        const char *pair = v;
        while (v < end && *v != ';')
            v++;
        const char *pend = v;
        while (pend > pair && pend[-1] == ' ')
            pend--;
        if (pend == pair)
            continue;
        if ((size_t)(pend - pair) > nlen && memcmp(pair, name, nlen) == 0 && pair[nlen] == '=')
            continue;
        if (!first)
            PUT_LIT(o, "; ");
        put(o, pair, (size_t)(pend - pair));
        first = false;
    }
    if (first) {
        o->len = mark; /* only tether's cookie: drop the field */
        return;
    }
    PUT_LIT(o, "\r\n");
}

bool
request_id_valid(const char *p, size_t n)
{
    if (n == 0 || n > REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

/* The client's fields the pod gets (hop-by-hop and tether's own removed, one
 * Content-Length, tether's cookie stripped); returns the first
 * X-Forwarded-For field, or NULL. */
static const struct http_field *
put_request_fields(struct out *o, const struct rewrite_req *a)
{
    const struct http_head *h = a->h;
    const char *buf = a->buf;
    const struct http_field *xff = NULL;
    bool cl_done = false;

    for (unsigned i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        switch (f->id) {
        case HTTP_H_X_FORWARDED_FOR:
            /* Several XFF fields are joined into one, in order. */
            if (!xff)
                xff = f;
            continue;
        case HTTP_H_X_FORWARDED_PROTO:
        case HTTP_H_X_FORWARDED_HOST:
        case HTTP_H_X_REQUEST_ID:
            continue; /* replaced below */
        case HTTP_H_CONTENT_LENGTH:
            /* Identical duplicates were accepted by the parser: send one. */
            if (cl_done)
                continue;
            cl_done = true;
            put_field(o, buf, f);
            continue;
        case HTTP_H_COOKIE:
            if (a->strip_cookie)
                put_cookie_without(o, buf + f->value_off, f->value_len, a->strip_cookie,
                                   a->strip_cookie_len);
            else
                put_field(o, buf, f);
            continue;
        case HTTP_H_OTHER:
            if ((h->flags & HTTP_F_CONN_OTHER) &&
                connection_lists(buf, h, buf + f->name_off, f->name_len))
                continue;
            put_field(o, buf, f);
            continue;
        default:
            if (hop_by_hop(f->id))
                continue;
            put_field(o, buf, f);
        }
    }
    return xff;
}

/* X-Forwarded-For (the client's, joined, then the client address),
 * X-Forwarded-Proto, X-Forwarded-Host and X-Request-Id. */
static void
put_forwarded(struct out *o, const struct rewrite_req *a, const struct http_field *xff)
{
    const struct http_head *h = a->h;
    const char *buf = a->buf;

    PUT_LIT(o, "X-Forwarded-For: ");
    if (xff) {
        for (unsigned i = (unsigned)(xff - h->fields); i < h->nfields; i++) {
            const struct http_field *f = &h->fields[i];
            if (f->id != HTTP_H_X_FORWARDED_FOR || f->value_len == 0)
                continue;
            put(o, buf + f->value_off, f->value_len);
            PUT_LIT(o, ", ");
        }
    }
    put(o, a->client_ip, a->client_ip_len);
    if (a->tls)
        PUT_LIT(o, "\r\nX-Forwarded-Proto: https\r\n");
    else
        PUT_LIT(o, "\r\nX-Forwarded-Proto: http\r\n");
    if (h->host_idx >= 0) {
        const struct http_field *f = &h->fields[h->host_idx];
        PUT_LIT(o, "X-Forwarded-Host: ");
        put(o, buf + f->value_off, f->value_len);
        PUT_LIT(o, "\r\n");
    }
    PUT_LIT(o, "X-Request-Id: ");
    put(o, a->req_id, a->req_id_len);
    PUT_LIT(o, "\r\n");
}

int
rewrite_request_head(char *outp, size_t cap, const struct rewrite_req *a)
{
    const struct http_head *h = a->h;
    const char *buf = a->buf;
    struct out o = {outp, 0, cap, false};

    put(&o, buf + h->start_off, h->method_len);
    PUT_LIT(&o, " ");
    /* An absolute-form target may have an empty path or start with '?'. */
    if (h->path_len == 0 || buf[h->path_off] != '/')
        PUT_LIT(&o, "/");
    put(&o, buf + h->path_off, h->path_len);
    PUT_LIT(&o, " HTTP/1.1\r\n");
    const struct http_field *xff = put_request_fields(&o, a);
    if (a->websocket)
        PUT_LIT(&o, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    if (h->host_idx < 0 && a->default_host) {
        PUT_LIT(&o, "Host: ");
        put(&o, a->default_host, strlen(a->default_host));
        PUT_LIT(&o, "\r\n");
    }
    put_forwarded(&o, a, xff);
    PUT_LIT(&o, "\r\n");
    return o.full ? -1 : (int)o.len;
}

int
rewrite_response_head(char *outp, size_t cap, const struct rewrite_resp *a)
{
    const struct http_head *h = a->h;
    const char *buf = a->buf;
    struct out o = {outp, 0, cap, false};
    bool have_req_id = false;
    char code[4] = {(char)('0' + h->status / 100), (char)('0' + h->status / 10 % 10),
                    (char)('0' + h->status % 10), ' '};

    PUT_LIT(&o, "HTTP/1.1 ");
    put(&o, code, 4);
    if (h->reason_len)
        put(&o, buf + h->reason_off, h->reason_len);
    else {
        const char *r = http_reason(h->status);
        put(&o, r, strlen(r));
    }
    PUT_LIT(&o, "\r\n");
    for (unsigned i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        if (f->id == HTTP_H_X_REQUEST_ID)
            have_req_id = true;
        if (f->id == HTTP_H_OTHER && (h->flags & HTTP_F_CONN_OTHER) &&
            connection_lists(buf, h, buf + f->name_off, f->name_len))
            continue;
        if (hop_by_hop(f->id) && !(a->upgrade && f->id == HTTP_H_UPGRADE))
            continue;
        if (a->drop_te && f->id == HTTP_H_TRANSFER_ENCODING)
            continue;
        put_field(&o, buf, f);
    }
    if (a->upgrade)
        PUT_LIT(&o, "Connection: upgrade\r\n");
    else if (!a->keepalive)
        PUT_LIT(&o, "Connection: close\r\n");
    else if (a->client_http10)
        PUT_LIT(&o, "Connection: keep-alive\r\n");
    if (a->set_cookie) {
        PUT_LIT(&o, "Set-Cookie: ");
        put(&o, a->set_cookie, a->set_cookie_len);
        PUT_LIT(&o, "\r\n");
    }
    if (!have_req_id && a->req_id_len) {
        PUT_LIT(&o, "X-Request-Id: ");
        put(&o, a->req_id, a->req_id_len);
        PUT_LIT(&o, "\r\n");
    }
    PUT_LIT(&o, "\r\n");
    return o.full ? -1 : (int)o.len;
}
