/* SPDX-License-Identifier: MIT */
/* HTTP/2 from clients (nghttp2): a connection whose TLS ALPN chose "h2", or
 * any connection on an "h2c" listen, is handed over here. One nghttp2 server
 * session per connection; each stream is an exchange of the request path
 * (routing, limits, affinity, retries, logs), an extended CONNECT a WebSocket
 * tunnel carried by its stream (see doc/internals/http2.md); responses go
 * back as HEADERS/DATA.
 * Limits and flood guards come from the server block's http2_* directives. */
#ifndef TETHER_H2_H
#define TETHER_H2_H

struct client;
struct worker;

/* Take over <cli>'s socket (TLS state, pending input, limit_conn slot and
 * connection count) as an HTTP/2 connection; <cli> is closed. */
void h2_adopt(struct client *cli);

/* An HTTP/2 connection on plain socket <fd> with the settings of <vs>, its
 * streams carried into <vs> (for the fuzz target: no listen, no TLS). */
struct vserver;
struct sock_addr;
void h2_adopt_fd(struct worker *w, struct vserver *vs, int fd, const struct sock_addr *peer);

/* Graceful stop or reload: send GOAWAY with the last stream id to every HTTP/2
 * connection of <w>; each closes once its streams are done. */
void h2_goaway_all(struct worker *w);

/* Stop now: close every HTTP/2 connection of <w>. */
void h2_close_all(struct worker *w);

#endif
