/* SPDX-License-Identifier: MIT */
/* Connections to pods: nonblocking connect with timeout, optional TLS, the
 * per-thread keep-alive pool per server (LIFO, so the hottest connection is
 * reused), response timeouts, and pool idle expiry. */
#ifndef TETHER_UPSTREAM_CONN_H
#define TETHER_UPSTREAM_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <ev.h>

#include <tether/conn.h>
#include <tether/list.h>
#include <tether/sock.h>
#include <tether/term.h>

struct buf;
struct server;
struct server_rt;
struct worker;

/* How an upstream connection reports to its owner (the exchange): every call
 * gets the <owner> pointer given to upconn_get(). */
struct upconn_cbs {
    void (*connected)(void *owner);                      /* ready to send (pooled or new) */
    void (*failed)(void *owner, unsigned term, int err); /* connect or TLS failed */
    void (*readable)(void *owner);                       /* response bytes may be read */
    void (*writable)(void *owner);                       /* request bytes may be written */
    void (*timeout)(void *owner);                        /* its deadline passed */
};

enum upconn_state {
    UC_CONNECTING = 0,
    UC_TLS,  /* TLS handshake to the pod */
    UC_BUSY, /* attached to a request */
    UC_IDLE, /* in the keep-alive pool */
};

struct upconn {
    struct conn c;
    ev_timer tmo; /* connect / response / pool idle */
    struct worker *w;
    struct server_rt *rt;        /* reference held */
    uint32_t addr_version;       /* rt->addr_version when connected */
    const struct upconn_cbs *cb; /* the owner's callbacks, while attached */
    void *owner;                 /* their first argument (the exchange), NULL in the pool */
    struct buf *ibuf;            /* response bytes */
    struct list link;            /* in the pool's idle list */
    uint8_t state;               /* enum upconn_state */
    bool reused;                 /* came from the pool */
    uint32_t keep_max;           /* pool size of its upstream (keepalive) */
    uint32_t burst_max;          /* idle ones kept briefly beyond it (keepalive_burst) */
    double keep_secs;            /* pool idle timeout */
    double burst_secs;           /* idle timeout beyond keep_max (keepalive_burst_timeout) */
    ev_tstamp deadline;          /* lazy timer target */
    uint32_t nreq;
    ev_tstamp idle_since;
    struct upconn *next_free;
};

/* The one place a connection to a pod reaches the network: open a nonblocking
 * socket to <a> with the connect started (-1 with errno on failure). It is
 * sock_connect(); a test harness may point it elsewhere before any request runs
 * (the whole-path fuzzer, tests/fuzz/fuzz_exchange.c, hands out one end of a
 * socket pair whose other end plays the pod). */
extern int (*upconn_open)(const struct sock_addr *a);

/* Get a pooled connection to <s> or start a new one, reporting to <owner>
 * through <cb> (lower layers never call the exchange by name). <resendable>:
 * the request may be sent again if a pooled connection turns out dead (else
 * a pooled one is checked with one MSG_PEEK first). Returns the upconn
 * (UC_BUSY when pooled, UC_CONNECTING/UC_TLS otherwise), or NULL with errno
 * when the socket could not even be created. */
struct upconn *upconn_get(struct worker *w, struct server *s, const struct upconn_cbs *cb,
                          void *owner, bool resendable);

/* Detach from its request: back to the pool when <reusable>, else closed. */
void upconn_release(struct upconn *uc, bool reusable);

/* Close (with RST when <reset>) and free. */
void upconn_close(struct upconn *uc, bool reset);

/* Arm the response timeout (idle between reads) for <secs>. */
void upconn_deadline(struct upconn *uc, double secs);

/* Read more response bytes into ibuf if there is room (IO result or IO_NOROOM). */
ssize_t upconn_fill(struct upconn *uc);

/* Close pooled connections to servers gone from the generation or whose address
 * changed; trim the pools to each upstream's keepalive size. */
void upconn_pools_sweep(struct worker *w);
/* Close every pooled connection (shutdown). */
void upconn_pools_close(struct worker *w);
void upconn_free_all(struct worker *w);

#endif
