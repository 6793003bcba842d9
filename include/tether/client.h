/* SPDX-License-Identifier: MIT */
/* The client side of a connection: TLS handshake, PROXY protocol header, reading
 * and parsing request heads, keep-alive and pipelining order, timeouts, and
 * tether's own small replies (errors, rate limits). */
#ifndef TETHER_CLIENT_H
#define TETHER_CLIENT_H

#include <stdbool.h>

#include <tether/proxy-types.h>

struct wlisten;

enum client_tmo {
    CT_NONE = 0,
    CT_HEADER, /* client_header_timeout: the head must arrive in time */
    CT_IDLE,   /* keepalive_timeout between requests */
    CT_BODY,   /* client_body_timeout between body reads */
    CT_SEND,   /* the client does not read what we send */
    CT_LINGER, /* draining input after a final error reply */
    CT_NEXT,   /* a pipelined request is buffered: parse it from the loop */
};

/* A new connection accepted on <wl> (fd nonblocking). */
void client_accept(struct worker *w, struct wlisten *wl, int fd, const struct sock_addr *peer);

/* A new exchange carried by <cli> (client_downstream.c: the HTTP/1
 * connection's downstream operations), or NULL when out of memory. */
struct request *client_exchange_new(struct client *cli);

/* Close now (counts, logs when a request was in progress, frees). */
void client_close(struct client *cli, unsigned term);

/* Send tether's own reply <status> (small text body, X-Request-Id, <extra>
 * header lines each ending CRLF or NULL). With <close> the connection closes
 * after the reply (after draining input briefly). Ends the current request. */
void client_reply(struct client *cli, unsigned status, unsigned term, const char *extra,
                  bool close);

/* The current request finished: go on with the next pipelined request, idle
 * keep-alive, or close. */
void client_request_done(struct client *cli);

/* Set the client deadline of <kind> to <secs> from now (lazy timer). */
void client_deadline(struct client *cli, unsigned kind, double secs);

/* Read more request bytes into ibuf if there is room; returns the I/O result
 * (> 0 bytes, IO_AGAIN, IO_CLOSED, IO_ERROR) or IO_NOROOM. */
ssize_t client_fill(struct client *cli);

/* limit_conn counted for the connection alone (its address is final, after
 * PROXY): false when the key is at its limit (the caller answers 429 and
 * closes). true when the key needs the request (see below) or no zone. */
bool client_limit_conn(struct client *cli);

/* limit_conn whose key needs the request (headers, cookies, route, or the client
 * address behind trusted proxies): count the connection at its first request.
 * false when the key is at its limit (the caller answers 429 and closes). */
bool client_limit_conn_request(struct client *cli, const char *rip, size_t rip_len,
                               const char *base, const struct http_head *h, const char *route);

/* Graceful shutdown: close if idle, otherwise close after the current reply. */
void client_drain(struct client *cli);

/* Move to a newer generation between requests (same listen). */
void client_follow_gen(struct client *cli);

void client_free_all(struct worker *w);

#endif
