/* SPDX-License-Identifier: MIT */
/* The affinity cookie: SipHash-2-4 keyed tags, base64url, and the versioned
 * encode/decode of the cookie value. Pure: no globals, no I/O. */
#include "config.h"

#include <tether/cookie.h>
#include <tether/crypto.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define COOKIE_VERSION '1'
/* server_id:8 | session:8 | expires:4 | tag:16 */
#define COOKIE_RAW_LEN   36
#define COOKIE_FIELDS    20
#define COOKIE_TAG_LEN   16
#define COOKIE_B64_LEN   (COOKIE_VALUE_LEN - 1)
#define COOKIE_MAC_INPUT (1 + COOKIE_FIELDS)

_Static_assert(COOKIE_B64_LEN == (COOKIE_RAW_LEN * 4 + 2) / 3, "cookie length");

/* ---- SipHash-2-4 (Aumasson & Bernstein), 64- and 128-bit output ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

struct sip {
    uint64_t v0, v1, v2, v3;
};

static inline void
sip_round(struct sip *s)
{
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

static inline uint64_t
load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline void
store_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void
store_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t
load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Initialise, compress all of <p>[0..n) and do the first finalisation step;
 * <wide> selects the 128-bit variant's domain separation. */
static void
sip_absorb(struct sip *s, const struct cookie_key *k, const uint8_t *p, size_t n, bool wide)
{
    s->v0 = k->k0 ^ 0x736f6d6570736575ULL;
    s->v1 = k->k1 ^ 0x646f72616e646f6dULL;
    s->v2 = k->k0 ^ 0x6c7967656e657261ULL;
    s->v3 = k->k1 ^ 0x7465646279746573ULL;
    if (wide)
        s->v1 ^= 0xee;

    size_t full = n & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(p + i);
        s->v3 ^= m;
        sip_round(s);
        sip_round(s);
        s->v0 ^= m;
    }
    /* last block: the remaining bytes, and the length's low byte on top */
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < (n & 7); i++)
        b |= (uint64_t)p[full + i] << (8 * i);
    s->v3 ^= b;
    sip_round(s);
    sip_round(s);
    s->v0 ^= b;

    s->v2 ^= wide ? 0xee : 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(s);
}

uint64_t
siphash64(const struct cookie_key *k, const void *p, size_t n)
{
    struct sip s;
    sip_absorb(&s, k, p, n, false);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

void
siphash128(const struct cookie_key *k, const void *p, size_t n, uint8_t out[16])
{
    struct sip s;
    sip_absorb(&s, k, p, n, true);
    store_le64(out, s.v0 ^ s.v1 ^ s.v2 ^ s.v3);
    s.v1 ^= 0xdd;
    for (int i = 0; i < 4; i++)
        sip_round(&s);
    store_le64(out + 8, s.v0 ^ s.v1 ^ s.v2 ^ s.v3);
}

/* ---- base64url without padding (RFC 4648 §5) ---- */

static const char b64url_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63, or -1 for a byte outside the alphabet. */
static int
b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Encode <n> bytes; writes (4n + 2) / 3 characters, no NUL. */
static void
b64url_encode(char *out, const uint8_t *in, size_t n)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = b64url_alphabet[v >> 18];
        *out++ = b64url_alphabet[(v >> 12) & 63];
        *out++ = b64url_alphabet[(v >> 6) & 63];
        *out++ = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = b64url_alphabet[v >> 18];
        *out++ = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = b64url_alphabet[v >> 18];
        *out++ = b64url_alphabet[(v >> 12) & 63];
        *out++ = b64url_alphabet[(v >> 6) & 63];
    }
}

/* Decode exactly <n> characters into <out> (room for 3n / 4 bytes). Returns the
 * byte count, or -1 on a character outside the alphabet, an impossible length or
 * non-zero unused bits in the last character: only the canonical spelling is
 * accepted, so a value has one encoding and no bit of it is ignored. */
static int
b64url_decode(uint8_t *out, const char *in, size_t n)
{
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    return (int)o;
}

/* ---- keys, ids and the cookie value ---- */

void
cookie_key_derive(struct cookie_key *k, const void *secret, size_t len)
{
    uint8_t md[CRYPTO_SHA256_LEN];
    /* SHA-256 cannot fail short of a broken libcrypto; a silently weak key would
     * be worse than stopping. */
    if (crypto_sha256(secret, len, md) != 0)
        abort();
    k->k0 = load_le64(md);
    k->k1 = load_le64(md + 8);
    crypto_cleanse(md, sizeof(md));
}

uint64_t
cookie_server_id(const struct cookie_key *k, const char *name, size_t len)
{
    return siphash64(k, name, len);
}

/* The MAC covers the version byte too, so a future format cannot be confused
 * with this one even if its fields happen to have the same layout. */
static void
cookie_tag(const struct cookie_key *k, const uint8_t fields[COOKIE_FIELDS],
           uint8_t tag[COOKIE_TAG_LEN])
{
    uint8_t msg[COOKIE_MAC_INPUT];
    msg[0] = COOKIE_VERSION;
    memcpy(msg + 1, fields, COOKIE_FIELDS);
    siphash128(k, msg, sizeof(msg), tag);
}

void
cookie_encode(char *out, const struct cookie_key *k, uint64_t server_id, uint64_t session,
              uint32_t expires_s)
{
    uint8_t raw[COOKIE_RAW_LEN];
    store_le64(raw, server_id);
    store_le64(raw + 8, session);
    store_le32(raw + 16, expires_s);
    cookie_tag(k, raw, raw + COOKIE_FIELDS);
    out[0] = COOKIE_VERSION;
    b64url_encode(out + 1, raw, sizeof(raw));
}

int
cookie_decode(const char *val, size_t len, const struct cookie_key *k, uint32_t now_s,
              uint64_t *server_id, uint64_t *session, uint32_t *expires_s)
{
    /* one spare byte: the decoder writes whole bytes only, but stay defensive */
    uint8_t raw[COOKIE_RAW_LEN + 1], tag[COOKIE_TAG_LEN];

    if (len != COOKIE_VALUE_LEN || val[0] != COOKIE_VERSION)
        return COOKIE_ERR_FORMAT;
    if (b64url_decode(raw, val + 1, COOKIE_B64_LEN) != COOKIE_RAW_LEN)
        return COOKIE_ERR_FORMAT;
    cookie_tag(k, raw, tag);
    /* constant time: timing must not tell a forger how many tag bytes matched */
    if (crypto_memeq(tag, raw + COOKIE_FIELDS, COOKIE_TAG_LEN) != 0)
        return COOKIE_ERR_MAC;
    uint32_t exp = load_le32(raw + 16);
    if (exp < now_s)
        return COOKIE_ERR_EXPIRED;
    if (server_id)
        *server_id = load_le64(raw);
    if (session)
        *session = load_le64(raw + 8);
    if (expires_s)
        *expires_s = exp;
    return COOKIE_OK;
}
