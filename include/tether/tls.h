/* SPDX-License-Identifier: MIT */
/* TLS with OpenSSL 3: server contexts chosen by SNI, ALPN h2 and http/1.1, TLS 1.2+,
 * session tickets with a shared key file, client contexts for TLS to pods, and
 * the TLS io_ops for struct conn. Only tls.c and tls_ctx.c include OpenSSL. */
#ifndef TETHER_TLS_H
#define TETHER_TLS_H

#include <stdbool.h>
#include <stdint.h>

#include <tether/conf.h>
#include <tether/conn.h>

struct tls_server; /* SSL_CTXs of one server block (one per certificate) + SNI map */
struct tls_client; /* SSL_CTX for connections to one pod */

/* Process-wide OpenSSL set-up (once, before any other call). */
void tls_global_init(void);

/* Build the server-side TLS state of <vs>: load every tls_certificate (the first
 * is the default; the others are chosen by SNI against their subjectAltName DNS
 * names, wildcards included, else CN), protocols TLS 1.2-1.3, the cipher policy
 * (vs->ciphers / vs->ciphersuites or the default), ALPN "http/1.1", session
 * tickets keyed from vs->ticket_key_file when set (80 bytes, or a multiple of 80:
 * several keys, the first encrypts, all decrypt: rotation), else a random key
 * kept for the process life. NULL with <e> "file:line:col: ..." on error. */
struct tls_server *tls_server_build(const struct conf_vserver *vs, struct err *e);
void tls_server_free(struct tls_server *t);

/* Client-side TLS state for connections to pod <s> (s->tls): verification on
 * by default with s->ca_file or the system store, SNI s->sni when set. */
struct tls_client *tls_client_build(const struct conf_server *s, struct err *e);
void tls_client_free(struct tls_client *t);

/* Attach a server-side SSL to accepted connection <c> (switches c->ops to TLS).
 * 0 or -1. */
int tls_accept_attach(struct conn *c, struct tls_server *t);
/* Attach a client-side SSL to connecting connection <c>. 0 or -1. */
int tls_connect_attach(struct conn *c, struct tls_client *t);

/* Drive the handshake: 1 done, 0 in progress (watch c->flags for which event:
 * CONN_TLS_READ_WANTS_WRITE means wait for writable, else readable), -1 failed,
 * -2 the peer closed or reset before sending a single byte (a port probe). */
int tls_handshake(struct conn *c);

/* After a completed handshake: was the session resumed? ALPN chosen? */
bool tls_session_reused(const struct conn *c);
/* Before the handshake: let ALPN choose "h2" on this accepted connection. */
void tls_offer_h2(struct conn *c);
/* After the handshake: did ALPN choose "h2"? */
bool tls_alpn_h2(const struct conn *c);
/* A short reason for the last handshake failure on this thread (for logs). */
const char *tls_last_error(void);

#endif
