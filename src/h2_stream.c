/* SPDX-License-Identifier: MIT */
/* HTTP/2 streams: the request header fields are checked as they come
 * (downgrade safety), and at END_HEADERS an ordinary request becomes an
 * exchange (h2_downstream.c), an extended CONNECT (RFC 8441) too: it becomes
 * an HTTP/1.1 Upgrade: websocket request, and after the pod's 101 the stream
 * is the tunnel (h2_tunnel.c). */
#include "config.h"

#include "h2_int.h"

#include <tether/exchange.h>
#include <tether/gen.h>
#include <tether/stats.h>
#include <tether/worker.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

static int
grow_append(char **p, uint32_t *len, uint32_t *cap, const void *src, size_t n, size_t max)
{
    if (*len + n > max)
        return -1;
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n)
            c *= 2;
        if (c > max)
            c = max;
        char *q = realloc(*p, c);
        if (!q)
            return -1;
        *p = q;
        *cap = (uint32_t)c;
    }
    memcpy(*p + *len, src, n);
    *len += (uint32_t)n;
    return 0;
}

static bool
name_is(const uint8_t *n, size_t len, const char *s)
{
    size_t l = strlen(s);
    return len == l && memcmp(n, s, l) == 0;
}

/* Header name: a lowercase token (RFC 9113 §8.2.1). */
static bool
name_ok(const uint8_t *n, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr(extra, c))))
            return false;
    }
    return true;
}

/* Field value: no NUL, CR or LF (RFC 9113 §8.2.1). */
static bool
value_ok(const uint8_t *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (v[i] == 0 || v[i] == '\r' || v[i] == '\n')
            return false;
    return true;
}

/* A request-line part: visible ASCII only (no space, CTL or DEL). */
static bool
visible(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* A NUL-terminated copy of a pseudo-header or host value: in the stream's
 * small arena when it fits (no allocation for usual requests), else malloc'd. */
static char *
st_dup(struct h2_stream *st, const uint8_t *v, size_t n)
{
    char *s;
    if (n < sizeof(st->arena) - st->arena_used) {
        s = st->arena + st->arena_used;
        st->arena_used += (uint16_t)(n + 1);
    } else if (!(s = malloc(n + 1))) {
        return NULL;
    }
    memcpy(s, v, n);
    s[n] = 0;
    return s;
}

static void
st_free_str(struct h2_stream *st, char *s)
{
    uintptr_t a = (uintptr_t)st->arena, p = (uintptr_t)s;
    if (s && (p < a || p >= a + sizeof(st->arena)))
        free(s);
}

static void
stream_refuse(struct h2_stream *st, uint32_t code)
{
    st->bad = true;
    nghttp2_submit_rst_stream(st->h->sess, NGHTTP2_FLAG_NONE, st->id, code);
}

/* tether's own short answer on the stream (431, 501). */
void
h2s_answer(struct h2_stream *st, unsigned status)
{
    char code[8];
    snprintf(code, sizeof(code), "%03u", status % 1000);
    nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE}};
    st->bad = true;
    nghttp2_submit_response(st->h->sess, st->id, nv, 1, NULL);
}

/* ---- stream life ---- */

int
h2s_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct h2_conn *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2_stream *st = calloc(1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->h = h;
    st->id = f->hd.stream_id;
    st->begun = ev_now(h->w->loop);
    list_append(&h->streams, &st->link);
    h->nstreams++;
    h2_tick_fast(h);
    nghttp2_session_set_stream_user_data(s, st->id, st);
    return 0;
}

static int
on_pseudo(struct h2_stream *st, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl)
{
    char **slot = NULL;
    if (st->hdr_len || st->cookie_len || st->host)
        return -1; /* pseudo-header after a regular one */
    if (name_is(n, nl, ":method"))
        slot = &st->method;
    else if (name_is(n, nl, ":path"))
        slot = &st->path;
    else if (name_is(n, nl, ":authority"))
        slot = &st->authority;
    else if (name_is(n, nl, ":protocol"))
        slot = &st->protocol;
    else if (name_is(n, nl, ":scheme"))
        return (vl == 4 && memcmp(v, "http", 4) == 0) || (vl == 5 && memcmp(v, "https", 5) == 0)
                   ? 0
                   : -1;
    else
        return -1;
    if (*slot)
        return -1; /* repeated */
    *slot = st_dup(st, v, vl);
    return *slot ? 0 : -1;
}

static int
on_regular(struct h2_stream *st, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl)
{
    size_t max = st->h->lim.max_header_list + 64;
    if (!name_ok(n, nl))
        return -1;
    if (name_is(n, nl, "connection") || name_is(n, nl, "keep-alive") ||
        name_is(n, nl, "proxy-connection") || name_is(n, nl, "transfer-encoding") ||
        name_is(n, nl, "upgrade"))
        return -1;
    if (name_is(n, nl, "te"))
        return vl == 8 && memcmp(v, "trailers", 8) == 0 ? 0 : -1; /* not forwarded */
    if (name_is(n, nl, "http2-settings"))
        return 0;
    if (name_is(n, nl, "cookie")) {
        if (st->cookie_len &&
            grow_append(&st->cookie, &st->cookie_len, &st->cookie_cap, "; ", 2, max) < 0)
            return -1;
        return grow_append(&st->cookie, &st->cookie_len, &st->cookie_cap, v, vl, max);
    }
    if (name_is(n, nl, "host")) {
        if (st->host)
            return -1;
        st->host = st_dup(st, v, vl);
        return st->host ? 0 : -1;
    }
    if (name_is(n, nl, "content-length")) {
        /* Its value sizes the body buffer (the HTTP/1.1 parser judges it). */
        uint64_t cl = vl ? 0 : UINT64_MAX;
        for (size_t i = 0; i < vl && cl != UINT64_MAX; i++)
            cl = (v[i] >= '0' && v[i] <= '9' && cl < (1ull << 40)) ? cl * 10 + (v[i] - '0')
                                                                   : UINT64_MAX;
        st->has_cl = true;
        st->cl = cl;
    }
    if (grow_append(&st->hdr, &st->hdr_len, &st->hdr_cap, n, nl, max) < 0 ||
        grow_append(&st->hdr, &st->hdr_len, &st->hdr_cap, ": ", 2, max) < 0 ||
        grow_append(&st->hdr, &st->hdr_len, &st->hdr_cap, v, vl, max) < 0 ||
        grow_append(&st->hdr, &st->hdr_len, &st->hdr_cap, "\r\n", 2, max) < 0)
        return -1;
    return 0;
}

int
h2s_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
              const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    (void)flags, (void)ud;
    if (!st || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers are not forwarded */
    if ((uint64_t)st->hlist + namelen + valuelen + 32 > 4ull * st->h->lim.max_header_list) {
        /* Far over the limit: an HPACK bomb, not a client with a big cookie. */
        h2_abuse(st->h, "header list far over http2_max_header_list_size (HPACK bomb)");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    st->hlist += (uint32_t)(namelen + valuelen + 32);
    if (st->bad || st->too_large)
        return 0;
    if (st->hlist > st->h->lim.max_header_list) {
        st->too_large = true;
        return 0;
    }
    if (!value_ok(value, valuelen)) {
        stream_refuse(st, NGHTTP2_PROTOCOL_ERROR);
        return 0;
    }
    int rc = namelen && name[0] == ':' ? on_pseudo(st, name, namelen, value, valuelen)
                                       : on_regular(st, name, namelen, value, valuelen);
    if (rc < 0)
        stream_refuse(st, NGHTTP2_PROTOCOL_ERROR);
    return 0;
}

void
h2s_free(struct h2_stream *st)
{
    struct h2_conn *h = st->h;
    h2t_free(st);
    h2x_release(st, TERM_CLIENT_ABORT);
    free(st->hdr);
    free(st->cookie);
    st_free_str(st, st->method);
    st_free_str(st, st->path);
    st_free_str(st, st->authority);
    st_free_str(st, st->host);
    st_free_str(st, st->protocol);
    list_remove(&st->link);
    h->nstreams--;
    free(st);
}

int
h2s_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    (void)code, (void)ud;
    if (!st)
        return 0;
    if (st->unconsumed)
        nghttp2_session_consume_connection(s, st->unconsumed);
    nghttp2_session_set_stream_user_data(s, id, NULL);
    h2s_free(st);
    return 0;
}

bool
h2s_header_overdue(const struct h2_stream *st, double now, double limit)
{
    return !st->head_done && now - st->begun > limit;
}

bool
h2s_send_pending(const struct h2_stream *st)
{
    return st->submitted && !st->ended && ((st->ob && buf_len(st->ob) > 0) || h2t_send_pending(st));
}

struct vserver *
h2_stream_vserver(struct h2_conn *h)
{
    struct gen *g = h->w->gen;
    if (!h->socks)
        return h->vs; /* h2_adopt_fd: no listen to follow */
    for (uint32_t i = 0; i < g->nlistens; i++)
        if (g->listens[i].socks == h->socks)
            return g->listens[i].vs;
    return NULL;
}

/* END_HEADERS of a request: check it, then carry it into the request path. */
static void
stream_start(struct h2_stream *st, bool end_stream)
{
    struct h2_conn *h = st->h;
    st->head_done = true;
    st->req_end = end_stream;
    h->nrequests++;
    if (st->bad)
        return;
    if (st->too_large) {
        h2s_answer(st, 431);
        return;
    }
    if (!st->method || !visible(st->method) || (st->authority && !visible(st->authority)) ||
        (st->host && !visible(st->host))) {
        stream_refuse(st, NGHTTP2_PROTOCOL_ERROR);
        return;
    }
    if (strcmp(st->method, "CONNECT") == 0) {
        if (!st->protocol) {
            h2s_answer(st, 501); /* tether is no forward proxy */
            return;
        }
        if (strcmp(st->protocol, "websocket") != 0 || end_stream) {
            h2s_answer(st, 501);
            return;
        }
        st->ws = true;
    } else if (st->protocol) {
        stream_refuse(st, NGHTTP2_PROTOCOL_ERROR);
        return;
    }
    if (!st->path || !visible(st->path) || (st->path[0] != '/' && strcmp(st->path, "*") != 0)) {
        stream_refuse(st, NGHTTP2_PROTOCOL_ERROR);
        return;
    }
    st->is_head = strcmp(st->method, "HEAD") == 0;
    h2x_start(st, end_stream);
}

static void
stream_body_end(struct h2_stream *st)
{
    st->req_end = true;
    if (st->x)
        h2x_body_end(st);
    else if (st->tun)
        h2t_body_end(st); /* the client's FIN goes on toward the pod */
}

int
h2s_on_frame_recv(struct h2_conn *h, const nghttp2_frame *f)
{
    struct h2_stream *st;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    st = nghttp2_session_get_stream_user_data(h->sess, f->hd.stream_id);
    if (!st)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        stream_start(st, end);
    else if (end && st->head_done && !st->req_end)
        stream_body_end(st);
    return 0;
}

int
h2s_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
            void *ud)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    (void)flags, (void)ud;
    if (st && st->tun) {
        h2t_on_data(st, data, len);
        return 0;
    }
    if (!st || st->bad || !st->x) {
        if (nghttp2_session_consume(s, id, len) != 0)
            nghttp2_session_consume_connection(s, len);
        return 0;
    }
    if (h2x_on_data(st, data, len) < 0)
        exchange_gone(st->x, TERM_CLIENT_ABORT);
    return 0;
}
