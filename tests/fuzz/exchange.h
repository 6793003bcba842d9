/* SPDX-License-Identifier: MIT */
/* The whole-path fuzzer (fuzz_exchange.c): what its driver and its oracle
 * (exchange_oracle.c) share. The driver plays the client and the pods over
 * socket pairs around the real client, request, upstream-connection and tunnel
 * code; the oracle reads the byte streams both sides saw and checks them. */
#ifndef TETHER_FUZZ_EXCHANGE_H
#define TETHER_FUZZ_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte string (what one side sent or received). */
struct ex_bytes {
    char *p;
    size_t len, cap;
};

void ex_bytes_add(struct ex_bytes *b, const void *p, size_t n);
void ex_bytes_free(struct ex_bytes *b);

#define EX_MAX_PODS 16
#define EX_ID_MAX   128 /* longest X-Request-Id the oracle records */

/* What the oracle needs to know about one input's exchange. */
struct ex_view {
    const struct ex_bytes *client_sent; /* every byte the client wrote */
    const struct ex_bytes *client_got;  /* every byte the client read */
    const struct ex_bytes *pod_got[EX_MAX_PODS];
    uint32_t npods;
    bool proxy_protocol; /* the client stream starts with a PROXY header */
    bool client_eof;     /* tether closed (or half-closed) towards the client */
    bool client_shut;    /* the client half-closed: pipelined requests may go */
    bool quiet;          /* the loop ran dry: nothing left that could move */
    uint32_t max_head_bytes, max_headers;
};

/* Check the exchange; abort() with a message on stderr when tether lost,
 * reordered or mangled a request or sent bytes that are not HTTP. */
void ex_oracle_check(const struct ex_view *v);

#endif
