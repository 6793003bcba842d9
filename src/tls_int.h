/* SPDX-License-Identifier: MIT */
/* Private glue between tls.c (I/O, handshake) and tls_ctx.c (contexts). Uses
 * OpenSSL's struct tags only, so it includes no OpenSSL header itself. */
#ifndef TETHER_TLS_INT_H
#define TETHER_TLS_INT_H

#include <stdbool.h>

#include <tether/tls.h>

struct ssl_ctx_st; /* SSL_CTX */

/* One-time set-up of tls_ctx.c (ex_data index, per-process ticket key); called by
 * tls_global_init() under its once-guard. 0 or -1. */
int tls_ctx_init(void);

/* The default (first certificate's) context of <t>: every accepted SSL starts
 * there; SNI may move it to another context of <t>. */
struct ssl_ctx_st *tls_server_ctx(const struct tls_server *t);

/* The context of <t>, its SNI name (NULL when none) and whether the peer's name
 * is verified. */
struct ssl_ctx_st *tls_client_ctx(const struct tls_client *t, const char **sni, bool *verify);

#endif
