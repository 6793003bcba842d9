/* SPDX-License-Identifier: MIT */
/* The objects of the proxy path and how they point at each other (split out so
 * client.h, request.h, upstream_conn.h and tunnel.h need not include each other).
 *
 *   client (one accepted socket) --req--> request (one exchange) --up--> upconn
 *      ^ ibuf: request bytes                 | uhead: head for the server
 *      | obuf: tether's own replies          | chead: head for the client
 *      +--------------------- cli -----------+          upconn ibuf: response bytes
 *
 * On a 101 response the client socket and the upconn socket move into a tunnel
 * and the client, request and upconn objects go back to their free lists. */
#ifndef TETHER_PROXY_TYPES_H
#define TETHER_PROXY_TYPES_H

#include <stdbool.h>
#include <stdint.h>
#include <ev.h>

#include <tether/affinity.h>
#include <tether/conn.h>
#include <tether/downstream.h>
#include <tether/http1.h>
#include <tether/http_rewrite.h>
#include <tether/list.h>
#include <tether/ratelimit.h>
#include <tether/redis.h>
#include <tether/session.h>
#include <tether/sock.h>
#include <tether/term.h>
#include <tether/upstream_conn.h>

struct worker;
struct gen;
struct vserver;
struct route;
struct upstream;
struct server;
struct server_rt;
struct buf;
struct listen_fds;
struct conn_slot;

enum client_state {
    CS_HANDSHAKE = 0, /* TLS handshake */
    CS_PROXY_HDR,     /* waiting for the PROXY protocol header */
    CS_IDLE,          /* keep-alive, between requests: no buffer, no request */
    CS_HEAD,          /* reading a request head */
    CS_BUSY,          /* a request is being proxied */
    CS_ERROR_REPLY,   /* sending tether's own final reply, then lingering: input dropped */
    CS_REPLY,         /* sending tether's own reply on a connection that stays
                       * open: not reading (what comes next is the next request) */
    CS_CLOSED,
};

struct client {
    struct conn c;
    ev_timer tmo;        /* the one deadline in force (header/body/idle/send) */
    ev_tstamp deadline;  /* when tmo should fire (lazy re-arming) */
    uint8_t tmo_kind;    /* which deadline (enum client_tmo) */
    uint8_t state;       /* enum client_state */
    bool tls;            /* accepted on a tls listen */
    bool proxy_protocol; /* expects a PROXY header first */
    bool close_after;    /* close once the current reply is sent */
    bool peer_close;     /* the client asked for the close (sends no more) */
    bool counted;        /* counted in conns_open */
    bool h2c;            /* cleartext HTTP/2 listen: hand over to h2 at once */
    struct worker *w;
    struct gen *gen;           /* generation in use (worker-local reference) */
    struct vserver *vs;        /* server block (in gen) */
    struct listen_fds *socks;  /* the listen it came from (to follow reloads) */
    struct list link;          /* in worker.clients */
    struct buf *ibuf;          /* request bytes, only while some are pending */
    struct buf *obuf;          /* tether's own reply bytes pending */
    struct request *req;       /* current exchange */
    struct sock_addr peer;     /* client address (after PROXY protocol / real_ip) */
    struct sock_addr tcp_peer; /* the socket's peer */
    char peer_ip[48];
    uint8_t peer_ip_len;
    uint32_t nrequests;      /* exchanges on this connection */
    struct conn_slot *limit; /* limit_conn accounting, or NULL */
    struct client *next_free;
};

enum request_state {
    RS_HEAD = 0,  /* reading the head */
    RS_HOLD,      /* waiting on rate limit delay or Redis */
    RS_CONNECT,   /* connecting to the server */
    RS_SEND,      /* head sent (or sending); body streaming */
    RS_WAIT_RESP, /* everything sent, waiting for the response head */
    RS_RESP,      /* response head received, body streaming */
    RS_DONE,
};

/* The exchange (exchange.h): one request/response, reached by its client
 * only through <ds> and reaching the client only through ds.ops. */
struct request {
    struct downstream ds;         /* the client side carrying it (HTTP/1 connection, ...) */
    struct worker *w;             /* the worker it runs on */
    struct gen *gen;              /* generation in use (the downstream holds the reference) */
    struct vserver *vs;           /* server block of the listen (in gen) */
    const struct sock_addr *peer; /* client address (the downstream's) */
    bool cli_tls;                 /* the client side is TLS */
    uint8_t proto;                /* the client's protocol: 1 HTTP/1.1, 2 HTTP/2 */
    struct upconn *up;            /* server connection, while attached */
    uint8_t state;                /* enum request_state */
    uint8_t method;               /* enum http_method */
    uint8_t version_minor;
    uint8_t req_body;  /* enum http1_body */
    uint8_t resp_body; /* enum http1_body */
    uint8_t term;      /* enum term_reason */
    uint8_t aff;       /* enum aff_outcome */
    uint8_t ntried;
    bool keepalive;  /* client connection stays open after this */
    bool ws_upgrade; /* asked for a WebSocket upgrade */
    bool expect_continue;
    bool req_body_done;  /* every body byte validated */
    bool req_sent;       /* head and whole body written to the server */
    bool replayable;     /* body still fully in ibuf (retry possible) */
    bool resp_head_sent; /* final response head handed to the client */
    bool resp_done;      /* whole response read from the server */
    bool server_close;   /* server connection must not be reused */
    bool set_cookie;     /* add the affinity cookie to the response */
    bool placed;         /* counted as a new session placed on srv (session_load.h) */
    bool settled;        /* that placement was answered or ended (session_load.h) */
    bool shed;           /* a new session no server has room for: the shed answer */
    bool learn;          /* learn a session id from the response */
    bool sent_any;       /* some request byte reached the current server */
    bool counted_active; /* counted in server_rt.active */
    bool budget_counted; /* counted in the retry budget's in-flight requests */
    bool per_try;        /* this try waits for its answer under per_try_timeout */
    uint8_t retried_on;  /* the retry_on condition of the last retry (bit index + 1), 0 none */
    uint16_t status;     /* final status sent to the client */
    const struct route *route;
    struct upstream *ups;
    struct server *srv;
    struct server *tried[8]; /* servers tried by this request */
    struct http1_chunked req_chunk;
    struct http1_chunked resp_chunk;
    uint64_t req_body_left; /* Content-Length bytes not yet validated */
    uint64_t resp_body_left;
    uint32_t body_off;       /* ibuf offset of the next body byte to send */
    uint32_t body_end;       /* ibuf offset after the last validated body byte */
    uint32_t body_start;     /* ibuf offset of the first body byte (replay) */
    uint32_t uhead_off;      /* bytes of uhead written on this attempt */
    uint32_t resp_out;       /* upconn ibuf: end of bytes to send to the client */
    uint32_t resp_scan;      /* upconn ibuf: end of validated response bytes */
    bool dechunk;            /* HTTP/1.0 client, chunked response: send data only */
    struct buf *uhead;       /* head for the server, kept for retries */
    struct buf *chead;       /* head (or 1xx) for the client, while pending */
    uint64_t bytes_in;       /* request bytes received */
    uint64_t bytes_out;      /* response bytes sent */
    uint64_t req_body_bytes; /* body bytes (limit checks) */
    ev_tstamp t_start;       /* head's first byte */
    ev_tstamp t_connect;     /* connect started */
    ev_tstamp t_connected;
    ev_tstamp t_resp;           /* response head received */
    ev_tstamp hold_until;       /* rate-limit delay end */
    ev_timer hold;              /* rate-limit delay / Redis wait */
    uint32_t retries;           /* attempts after the first */
    uint8_t rip_len;            /* bytes of rip[] in use */
    uint16_t path_len;          /* bytes of path[] in use */
    uint8_t req_id_len;         /* bytes of req_id[] in use */
    struct aff_carry ac;        /* what the request carries for affinity (affinity.h) */
    bool aff_pending;           /* waiting for a session-store lookup (Redis) */
    bool store_pending;         /* the response waits for a learned session to reach Redis */
    struct redis_waiter rw;     /* Redis operations in flight for this request */
    uint8_t rl_pending;         /* global-zone decisions awaited from Redis */
    bool rl_denied;             /* one of them said no */
    struct rl_decision rl_deny; /* the denial to answer with */
    struct rl_zone *rl_deny_zone;
    char *learn_buf; /* JSON learning: first body bytes */
    uint32_t learn_len;
    struct http_head h; /* request head, then response heads */
    struct request *next_free;
    /* Not zeroed by exchange_new (only their lengths above are): always
     * written before they are read, and read by length only. */
    char rip[48];                /* the client's address for limits, logs, hashing: the
                                  * connection peer, or from real_ip_header when the peer
                                  * is a trusted proxy */
    char path[256];              /* method and path kept for the access log */
    char req_id[REQUEST_ID_MAX]; /* X-Request-Id (not NUL-terminated) */
};

#endif
