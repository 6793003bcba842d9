/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the affinity cookie: arbitrary bytes through cookie_decode
 * (an accepted value must be the canonical encoding of what it decoded to), and
 * encode -> decode roundtrips on fuzzer-chosen keys, ids and expiries. */
#include "config.h"

#include <tether/cookie.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
take_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t
take_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Arbitrary bytes under a fixed key: no crash, and anything accepted is exactly
 * what encode would have written (one spelling per value, nothing ignored). */
static void
decode_any(const uint8_t *data, size_t size)
{
    static const struct cookie_key k = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    uint64_t id = 0, sess = 0;
    uint32_t exp = 0;
    int rc = cookie_decode((const char *)data, size, &k, 0, &id, &sess, &exp);
    if (rc != COOKIE_OK && rc != COOKIE_ERR_FORMAT && rc != COOKIE_ERR_MAC &&
        rc != COOKIE_ERR_EXPIRED)
        abort();
    if (rc == COOKIE_OK) {
        char v[COOKIE_VALUE_LEN];
        cookie_encode(v, &k, id, sess, exp);
        if (size != COOKIE_VALUE_LEN || memcmp(v, data, size) != 0)
            abort();
    }
}

/* key:16 | server_id:8 | expires:4 | now:4 | flip:2 */
static void
roundtrip(const uint8_t *data, size_t size)
{
    if (size < 34)
        return;
    struct cookie_key k = {take_u64(data), take_u64(data + 8)};
    uint64_t sid = take_u64(data + 16);
    uint32_t exp = take_u32(data + 24), now = take_u32(data + 28);
    unsigned flip = (unsigned)data[32] | (unsigned)data[33] << 8;

    char v[COOKIE_VALUE_LEN];
    cookie_encode(v, &k, sid, 0x5e551011ULL, exp);
    if (v[0] != '1')
        abort();

    uint64_t got_id = 0, got_sess = 0;
    uint32_t got_exp = 0;
    int rc = cookie_decode(v, sizeof(v), &k, now, &got_id, &got_sess, &got_exp);
    if (now <= exp) {
        if (rc != COOKIE_OK || got_id != sid || got_exp != exp || got_sess != 0x5e551011ULL)
            abort();
    } else if (rc != COOKIE_ERR_EXPIRED) {
        abort();
    }

    /* another key never accepts it */
    struct cookie_key other = {k.k0 ^ (1ULL << (flip % 64)), k.k1};
    if (cookie_decode(v, sizeof(v), &other, 0, NULL, NULL, NULL) != COOKIE_ERR_MAC)
        abort();

    /* one flipped bit anywhere is always caught */
    v[(flip / 8) % COOKIE_VALUE_LEN] ^= (char)(1 << (flip % 8));
    rc = cookie_decode(v, sizeof(v), &k, 0, NULL, NULL, NULL);
    if (rc != COOKIE_ERR_FORMAT && rc != COOKIE_ERR_MAC)
        abort();

    /* truncated or extended values are a format error */
    v[(flip / 8) % COOKIE_VALUE_LEN] ^= (char)(1 << (flip % 8));
    if (cookie_decode(v, sizeof(v) - 1 - flip % 8, &k, 0, NULL, NULL, NULL) != COOKIE_ERR_FORMAT)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_any(data, size);
    roundtrip(data, size);
    return 0;
}
