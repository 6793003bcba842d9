/* SPDX-License-Identifier: MIT */
/* PROXY protocol v1 (text) and v2 (binary) header parsing, pure: the address of
 * the real client as seen by the L4 balancer in front of tether. */
#ifndef TETHER_PROXY_PROTO_H
#define TETHER_PROXY_PROTO_H

#include <stddef.h>

#include <tether/sock.h>

/* Longest header accepted (v1: 107 bytes; v2: 16 + address block + TLVs). */
#define PROXY_PROTO_MAX 536

/* Parse a header at <p>[0..n). Returns the header length (> 0) with <src> set
 * (src->len = 0 for LOCAL/UNKNOWN: keep the socket's address), 0 when more bytes
 * are needed, -1 when this is not a valid PROXY header. */
int proxy_proto_parse(const char *p, size_t n, struct sock_addr *src);

#endif
