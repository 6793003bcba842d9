/* SPDX-License-Identifier: MIT */
/* WebSocket tunnels: after a 101, the client and pod sockets become a
 * bidirectional byte pipe with an idle timeout, half-close both ways and
 * back-pressure. A tunnel keeps only its two sockets, its timeout and a
 * reference to the server's runtime counters: no generation, no buffer while
 * idle (< 4 KiB per idle tunnel). */
#ifndef TETHER_TUNNEL_H
#define TETHER_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>

#include <tether/conn.h>
#include <tether/http_rewrite.h>

struct buf;
struct conn_slot;
struct server_rt;
struct worker;

/* What a tunnel is made of, filled by the exchange (pod side, ids, timeouts)
 * and by its downstream (client side). tunnel_start() moves the two conns and
 * takes the buffers and the limit_conn slot (it NULLs them in <ta>). */
struct tunnel_args {
    struct conn *a;          /* client side (moved: the caller must not close it) */
    struct buf *a_head;      /* the 101 head still to send to the client, or NULL */
    struct buf *a_in;        /* bytes the client sent after its request, or NULL */
    struct conn_slot *limit; /* the client's limit_conn slot, or NULL */
    bool a_tls;              /* the client side is TLS (access log) */
    struct conn *b;          /* pod side (moved) */
    struct buf *b_in;        /* bytes the pod sent after its 101, or NULL */
    struct server_rt *rt;    /* the pod's runtime counters (a reference is taken) */
    double idle_secs;        /* websocket_timeout */
    double fin_secs;         /* websocket_fin_timeout */
    const char *rid;         /* request id of the upgrade (access log) */
    uint8_t rid_len;         /* its length */
    const char *ip;          /* client address (access log) */
    uint8_t ip_len;          /* its length */
    /* Called once when the tunnel has closed and freed itself (its connection
     * no longer counts): the owner's hook, e.g. the worker resuming accepts
     * or finishing a drain. Filled by the downstream; may be NULL. */
    void (*gone)(void *owner);
    void *owner;  /* the first argument of <gone> */
    bool carried; /* set by the downstream's upgrade(): it carries the tunnel
                   * itself (an HTTP/2 stream, h2_tunnel.c), no tunnel_start */
};

/* What every tunnel (two sockets here, an HTTP/2 stream and a pod socket in
 * h2_tunnel.c) is accounted by: the server's tunnels gauge and counter (a
 * reference on its runtime counters is held), tether_tunnels_active/_total,
 * and the "tunnel_end" access log line. */
struct tunnel_acct {
    struct server_rt *rt;     /* the pod's runtime counters (reference held) */
    uint64_t bytes_ab;        /* client to pod */
    uint64_t bytes_ba;        /* pod to client */
    double started;           /* ev_now() at the start */
    bool tls;                 /* the client side is TLS (access log) */
    uint8_t rid_len, ip_len;  /* lengths of <rid> and <ip> */
    char rid[REQUEST_ID_MAX]; /* request id of the upgrade (access log) */
    char ip[48];              /* client address (access log) */
};

/* Count a tunnel open on <w> from <ta> (rt, ids, tls flag): fills <a>. */
void tunnel_account_open(struct worker *w, struct tunnel_acct *a, const struct tunnel_args *ta);

/* The tunnel accounted in <a> ended with <term>: log it, uncount it, drop the
 * reference. */
void tunnel_account_close(struct worker *w, struct tunnel_acct *a, unsigned term);

/* Start a tunnel on <w> from <ta>: the sockets and buffers are the tunnel's
 * now. It counts one active connection (as the client did) and a tunnel.
 * 0, or -1 when out of memory (nothing was taken). */
int tunnel_start(struct worker *w, struct tunnel_args *ta);

/* Shutdown: close every tunnel of <w> now. */
void tunnel_close_all(struct worker *w);

#endif
