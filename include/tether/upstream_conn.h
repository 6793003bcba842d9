/* SPDX-License-Identifier: MIT */
/* Connections to pods: nonblocking connect with timeout, optional TLS, the
 * per-thread keep-alive pool per server (LIFO, so the hottest connection is
 * reused), response timeouts, and pool idle expiry. */
#ifndef TETHER_UPSTREAM_CONN_H
#define TETHER_UPSTREAM_CONN_H

#include <stdbool.h>

#include <tether/proxy-types.h>

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
