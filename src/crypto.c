/* SPDX-License-Identifier: MIT */
/* OpenSSL's digest, constant-time compare and cleanse behind crypto.h. */
#include "config.h"

#include <tether/crypto.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

int
crypto_sha256(const void *p, size_t n, uint8_t out[CRYPTO_SHA256_LEN])
{
    unsigned int len = 0;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != CRYPTO_SHA256_LEN)
        return -1;
    return 0;
}

int
crypto_memeq(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n);
}

void
crypto_cleanse(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}
