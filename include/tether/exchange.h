/* SPDX-License-Identifier: MIT */
/* The exchange: one request/response, whatever protocol the client speaks. A
 * downstream (downstream.h: the HTTP/1 client connection, an HTTP/2 stream)
 * creates it, hands it a parsed head, and reports its client's events here;
 * the exchange answers through the downstream's operations only.
 *
 * The object is struct request (proxy-types.h): method, target, authority and
 * the header view (the head), body state, route, affinity decision, upstream
 * connection, timings and termination reason. Its steps are in request*.c.
 *
 *   downstream                         exchange                     pod
 *   exchange_new ---------------------> HEAD
 *   exchange_start(head) -------------> check, route, limit, affinity
 *                                        -> CONNECT -> SEND -> WAIT_RESP --> upconn
 *   exchange_readable (body bytes) ---> SEND                          <--- callbacks
 *   <--- ops->write (head, body) ------ RESP
 *   exchange_writable ----------------> RESP ... DONE: ops->done
 *   exchange_gone ---------------------> logged, freed
 *
 * Only the downstream modules call these; lower layers report to the exchange
 * through the callbacks it registers with them. */
#ifndef TETHER_EXCHANGE_H
#define TETHER_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include <tether/downstream.h>
#include <tether/proxy-types.h>

/* What a downstream knows of its client when an exchange begins. The
 * pointers must stay valid for the exchange's life (they point into the
 * connection, which outlives its exchanges). */
struct exchange_origin {
    struct gen *gen;              /* generation the connection uses (reference held by it) */
    struct vserver *vs;           /* server block of the listen (in gen) */
    const struct sock_addr *peer; /* client address (after PROXY protocol) */
    const char *ip;               /* the same as text */
    uint8_t ip_len;               /* its length */
    bool tls;                     /* the client connection is TLS */
    uint8_t proto;                /* 1 HTTP/1.1, 2 HTTP/2 (a stream) */
};

/* A new exchange on worker <w> carried by <ds>, in state RS_HEAD, its head
 * reset. NULL when out of memory (the downstream answers 503 itself). */
struct request *exchange_new(struct worker *w, const struct downstream *ds,
                             const struct exchange_origin *o);

/* Return <x> to the worker's free list (buffers released, upstream connection
 * detached, Redis operations cancelled). The downstream calls it when it ends
 * an exchange itself (ops->reply, ops->reset, closing the carrier), after
 * request_log(); the exchange calls it itself before ops->done/ops->release. */
void exchange_free(struct request *x);

/* The head to fill before exchange_start(): HTTP/1 parses into it over its
 * input buffer; HTTP/2 fills the same field table over the stream's buffer of
 * decoded header bytes (Host from :authority, the target from :path). */
struct http_head *exchange_head(struct request *x);

/* The head is complete (<head_len> bytes of ops->input() for HTTP/1; 0 when
 * the head is not in the input buffer): check, route, limit, pick a server,
 * forward. May end the exchange (and call ops->reply/done/reset) before it
 * returns: the caller must not touch <x> afterwards. */
void exchange_start(struct request *x, uint32_t head_len);

/* Request bytes may be read (ops->read) now. */
void exchange_readable(struct request *x);
/* The client can take more response bytes (after ops->write gave IO_AGAIN). */
void exchange_writable(struct request *x);
/* The client is gone (EOF while sending, reset, timeout): release the
 * upstream side, set <term>, and ops->reset (which logs and frees). */
void exchange_gone(struct request *x, unsigned term);

/* Write the access log line and count the exchange (access_log.c). The
 * downstream calls it when it ends an exchange itself (reply, reset). */
void request_log(struct request *x);

#endif
