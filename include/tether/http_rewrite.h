/* SPDX-License-Identifier: MIT */
/* Head rewriting in one pass: the request head sent to a pod (origin-form,
 * hop-by-hop fields removed, X-Forwarded-*, X-Request-Id, tether's own cookie
 * stripped) and the response head sent to a client (hop-by-hop removed,
 * Connection as tether decides, affinity Set-Cookie). Pure. */
#ifndef TETHER_HTTP_REWRITE_H
#define TETHER_HTTP_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include <tether/http1.h>

/* The longest X-Request-Id taken from a client (a longer one is replaced by
 * tether's own): the one limit the request's and the tunnel's id fields are
 * sized by. */
#define REQUEST_ID_MAX 64

struct rewrite_req {
    const char *buf;           /* bytes the head's offsets refer to */
    const struct http_head *h; /* parsed request head */
    const char *client_ip;     /* appended to X-Forwarded-For */
    size_t client_ip_len;
    bool tls;           /* X-Forwarded-Proto: https */
    const char *req_id; /* X-Request-Id value to send */
    size_t req_id_len;
    const char *strip_cookie; /* tether's cookie name, removed from Cookie; or NULL */
    size_t strip_cookie_len;
    bool websocket; /* keep Connection: upgrade + Upgrade */
    /* Host sent when the request has none (an HTTP/1.0 client): every
     * HTTP/1.1 request must carry one. The upstream's name, as nginx does. */
    const char *default_host; /* NUL-terminated */
};

/* Write the head for the pod into <out>; returns its length, or -1 when it does
 * not fit in <cap>. */
int rewrite_request_head(char *out, size_t cap, const struct rewrite_req *a);

struct rewrite_resp {
    const char *buf;           /* bytes the head's offsets refer to */
    const struct http_head *h; /* parsed response head */
    bool keepalive;            /* the client connection stays open */
    bool client_http10;        /* client spoke HTTP/1.0 */
    const char *set_cookie;    /* a Set-Cookie value to add, or NULL */
    size_t set_cookie_len;
    const char *req_id; /* X-Request-Id to add when the pod sent none */
    size_t req_id_len;
    bool upgrade; /* 101 Switching Protocols: keep Connection/Upgrade */
    bool drop_te; /* body is de-chunked for an HTTP/1.0 client */
};

int rewrite_response_head(char *out, size_t cap, const struct rewrite_resp *a);

/* A valid X-Request-Id from a client: 1..REQUEST_ID_MAX bytes of
 * [A-Za-z0-9._:-]. */
bool request_id_valid(const char *p, size_t n);

#endif
