/* SPDX-License-Identifier: MIT */
/* WebSocket tunnels: after a 101, the client and pod sockets become a
 * bidirectional byte pipe with an idle timeout, half-close both ways and
 * back-pressure. A tunnel keeps only its two sockets, its timeout and a
 * reference to the server's runtime counters: no generation, no buffer while
 * idle (< 4 KiB per idle tunnel). */
#ifndef TETHER_TUNNEL_H
#define TETHER_TUNNEL_H

#include <tether/proxy-types.h>

/* Turn <req> (101 sent or pending in req->chead) into a tunnel: takes over the
 * client and upstream sockets, pending bytes and counters; frees the client,
 * request and upconn objects. */
void tunnel_start(struct request *req);

/* Shutdown: close every tunnel of <w> now. */
void tunnel_close_all(struct worker *w);

#endif
