/* SPDX-License-Identifier: MIT */
/* The few cryptographic primitives tether's pure modules need, so that
 * OpenSSL is included only here and in tls*.c. */
#ifndef TETHER_CRYPTO_H
#define TETHER_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_LEN 32

/* SHA-256 of <p>[0..n) into <out>. 0, or -1 when libcrypto failed. */
int crypto_sha256(const void *p, size_t n, uint8_t out[CRYPTO_SHA256_LEN]);

/* Compare <a> and <b> (<n> bytes) in time independent of their contents:
 * 0 when equal. */
int crypto_memeq(const void *a, const void *b, size_t n);

/* Overwrite <p>[0..n) with zeros in a way the compiler does not drop. */
void crypto_cleanse(void *p, size_t n);

#endif
