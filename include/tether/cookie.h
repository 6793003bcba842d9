/* SPDX-License-Identifier: MIT */
/* The affinity cookie: an opaque, tamper-evident token naming a server. Pure.
 * Value = "1" + base64url(server_id:8 | session:8 | expires:4 | tag:16), where
 * tag is SipHash-2-4-128 over the version and the fields under a 128-bit key
 * derived from the shared secret file, so every replica issues and accepts the
 * same cookies. server_id is itself a keyed hash of "upstream/server": neither
 * the server's name nor its address appears in the cookie. session is the hash
 * of the voice session id (0 when unknown): when the pinned pod dies, every
 * replica and every route moves the session to the same new pod. */
#ifndef TETHER_COOKIE_H
#define TETHER_COOKIE_H

#include <stddef.h>
#include <stdint.h>

/* Length of an encoded cookie value ("1" + 48 base64url characters). */
#define COOKIE_VALUE_LEN 49

struct cookie_key {
    uint64_t k0, k1; /* SipHash key */
};

enum cookie_status {
    COOKIE_OK = 0,
    COOKIE_ERR_FORMAT = -1,  /* wrong length, version or alphabet */
    COOKIE_ERR_MAC = -2,     /* tag does not verify: forged or other key */
    COOKIE_ERR_EXPIRED = -3, /* valid tag, expiry in the past */
};

/* Derive the key from secret bytes (SHA-256 of the secret, first 16 bytes). */
void cookie_key_derive(struct cookie_key *k, const void *secret, size_t len);

/* Stable keyed identity of a server: SipHash-2-4-64 of <name> ("upstream/server"). */
uint64_t cookie_server_id(const struct cookie_key *k, const char *name, size_t len);

/* Write the cookie value (COOKIE_VALUE_LEN bytes, no NUL) for <server_id> and
 * <session> expiring at <expires_s> (seconds since the epoch). <out> must hold
 * COOKIE_VALUE_LEN. */
void cookie_encode(char *out, const struct cookie_key *k, uint64_t server_id, uint64_t session,
                   uint32_t expires_s);

/* Check a cookie value. On COOKIE_OK fills the non-NULL outputs. */
int cookie_decode(const char *val, size_t len, const struct cookie_key *k, uint32_t now_s,
                  uint64_t *server_id, uint64_t *session, uint32_t *expires_s);

/* SipHash-2-4 with 64- and 128-bit output (exposed for tests and other ids). */
uint64_t siphash64(const struct cookie_key *k, const void *p, size_t n);
void siphash128(const struct cookie_key *k, const void *p, size_t n, uint8_t out[16]);

#endif
