/* SPDX-License-Identifier: MIT */
/* Unit tests for the affinity cookie: SipHash against the reference vectors,
 * encode/decode roundtrip, tamper and format rejection, expiry, keys. */
#include "config.h"

#include <tether/cookie.h>

#include <stdlib.h>

#include "unit.h"

/* SipHash-2-4-64 of messages 00, 00 01, ... (length 0..63) under key 00..0f,
 * from the SipHash reference implementation (vectors.h), read little-endian. */
static const uint64_t sip64_vectors[64] = {
    0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL, 0x85676696d7fb7e2dULL,
    0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL, 0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL,
    0x93f5f5799a932462ULL, 0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
    0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL, 0xa129ca6149be45e5ULL,
    0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL, 0x4bc1b3f0968dd39cULL, 0xbb6dc91da77961bdULL,
    0xbed65cf21aa2ee98ULL, 0xd0f2cbb02e3b67c7ULL, 0x93536795e3a33e88ULL, 0xa80c038ccd5ccec8ULL,
    0xb8ad50c6f649af94ULL, 0xbce192de8a85b8eaULL, 0x17d835b85bbb15f3ULL, 0x2f2e6163076bcfadULL,
    0xde4daaaca71dc9a5ULL, 0xa6a2506687956571ULL, 0xad87a3535c49ef28ULL, 0x32d892fad841c342ULL,
    0x7127512f72f27cceULL, 0xa7f32346f95978e3ULL, 0x12e0b01abb051238ULL, 0x15e034d40fa197aeULL,
    0x314dffbe0815a3b4ULL, 0x027990f029623981ULL, 0xcadcd4e59ef40c4dULL, 0x9abfd8766a33735cULL,
    0x0e3ea96b5304a7d0ULL, 0xad0c42d6fc585992ULL, 0x187306c89bc215a9ULL, 0xd4a60abcf3792b95ULL,
    0xf935451de4f21df2ULL, 0xa9538f0419755787ULL, 0xdb9acddff56ca510ULL, 0xd06c98cd5c0975ebULL,
    0xe612a3cb9ecba951ULL, 0xc766e62cfcadaf96ULL, 0xee64435a9752fe72ULL, 0xa192d576b245165aULL,
    0x0a8787bf8ecb74b2ULL, 0x81b3e73d20b49b6fULL, 0x7fa8220ba3b2eceaULL, 0x245731c13ca42499ULL,
    0xb78dbfaf3a8d83bdULL, 0xea1ad565322a1a0bULL, 0x60e61c23a3795013ULL, 0x6606d7e446282b93ULL,
    0x6ca4ecb15c5f91e1ULL, 0x9f626da15c9625f3ULL, 0xe51b38608ef25f57ULL, 0x958a324ceb064572ULL,
};

/* SipHash-2-4-128, same key and messages, output bytes in hex (vectors.h). */
static const struct {
    size_t len;
    const char *hex;
} sip128_vectors[] = {
    {0, "a3817f04ba25a8e66df67214c7550293"},  {1, "da87c1d86b99af44347659119b22fc45"},
    {2, "8177228da4a45dc7fca38bdef60affe4"},  {3, "9c70b60c5267a94e5f33b6b02985ed51"},
    {4, "f88164c12d9c8faf7d0f6e7c7bcd5579"},  {5, "1368875980776f8854527a07690e9627"},
    {6, "14eeca338b208613485ea0308fd7a15e"},  {7, "a1f1ebbed8dbc153c0b84aa61ff08239"},
    {8, "3b62a9ba6258f5610f83e264f31497b4"},  {9, "264499060ad9baabc47f8b02bb6d71ed"},
    {10, "00110dc378146956c95447d3f3d0fbba"}, {11, "0151c568386b6677a2b4dc6f81e5dc18"},
    {12, "d626b266905ef35882634df68532c125"}, {13, "9869e247e9c08b10d029934fc4b952f7"},
    {14, "31fcefac66d7de9c7ec7485fe4494902"}, {15, "5493e99933b0a8117e08ec0f97cfc3d9"},
    {63, "5150d1772f50834a503e069a973fbd7c"},
};

static const struct cookie_key ref_key = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};

static void
test_siphash64_vectors(void)
{
    uint8_t msg[64];
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    for (size_t n = 0; n < 64; n++)
        CHECK_UINT_EQ(siphash64(&ref_key, msg, n), sip64_vectors[n]);
}

static void
test_siphash128_vectors(void)
{
    uint8_t msg[64], out[16];
    char hex[33];
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof(sip128_vectors) / sizeof(sip128_vectors[0]); i++) {
        siphash128(&ref_key, msg, sip128_vectors[i].len, out);
        for (int j = 0; j < 16; j++)
            snprintf(hex + 2 * j, 3, "%02x", out[j]);
        CHECK_STR_EQ(hex, sip128_vectors[i].hex);
    }
}

static void
test_roundtrip(void)
{
    struct cookie_key k;
    cookie_key_derive(&k, "correct horse battery staple", 28);
    char v[COOKIE_VALUE_LEN + 1];
    uint64_t ids[] = {0, 1, 0x0123456789abcdefULL, UINT64_MAX};
    uint32_t exps[] = {0, 1, 1700000000u, UINT32_MAX};
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < 4; j++) {
            cookie_encode(v, &k, ids[i], 0x5e551011ULL, exps[j]);
            v[COOKIE_VALUE_LEN] = 0;
            CHECK_INT_EQ(v[0], '1');
            CHECK_UINT_EQ(strspn(v + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789-_"),
                          COOKIE_VALUE_LEN - 1);
            uint64_t id = 7;
            uint32_t e = 7;
            CHECK_INT_EQ(cookie_decode(v, COOKIE_VALUE_LEN, &k, 0, &id, NULL, &e), COOKIE_OK);
            CHECK_UINT_EQ(id, ids[i]);
            CHECK_UINT_EQ(e, exps[j]);
        }
    }
}

static void
test_bit_flips_rejected(void)
{
    struct cookie_key k;
    cookie_key_derive(&k, "s3cret", 6);
    char v[COOKIE_VALUE_LEN];
    cookie_encode(v, &k, 0xfeedfacecafebeefULL, 0x5e551011ULL, 2000000000u);
    int fmt = 0, mac = 0;
    for (size_t i = 0; i < COOKIE_VALUE_LEN; i++) {
        for (int b = 0; b < 8; b++) {
            char t[COOKIE_VALUE_LEN];
            memcpy(t, v, sizeof(t));
            t[i] = (char)(t[i] ^ (1 << b));
            uint64_t id = 0;
            int rc = cookie_decode(t, sizeof(t), &k, 0, &id, NULL, NULL);
            CHECK(rc == COOKIE_ERR_FORMAT || rc == COOKIE_ERR_MAC);
            fmt += rc == COOKIE_ERR_FORMAT;
            mac += rc == COOKIE_ERR_MAC;
        }
    }
    printf("     %d bit flips: %d format errors, %d bad tags\n", COOKIE_VALUE_LEN * 8, fmt, mac);
    CHECK(mac > 0);
}

static void
test_format_rejected(void)
{
    struct cookie_key k;
    cookie_key_derive(&k, "s3cret", 6);
    char v[COOKIE_VALUE_LEN + 2];
    cookie_encode(v, &k, 42, 0x5e551011ULL, 2000000000u);
    /* truncated, empty, extended */
    for (size_t n = 0; n < COOKIE_VALUE_LEN; n++)
        CHECK_INT_EQ(cookie_decode(v, n, &k, 0, NULL, NULL, NULL), COOKIE_ERR_FORMAT);
    v[COOKIE_VALUE_LEN] = 'A';
    v[COOKIE_VALUE_LEN + 1] = '=';
    CHECK_INT_EQ(cookie_decode(v, COOKIE_VALUE_LEN + 1, &k, 0, NULL, NULL, NULL),
                 COOKIE_ERR_FORMAT);
    CHECK_INT_EQ(cookie_decode(v, COOKIE_VALUE_LEN + 2, &k, 0, NULL, NULL, NULL),
                 COOKIE_ERR_FORMAT);
    CHECK_INT_EQ(cookie_decode(v, COOKIE_VALUE_LEN, &k, 0, NULL, NULL, NULL), COOKIE_OK);

    /* characters outside base64url, including the standard alphabet's + and / */
    const char bad[] = "+/=. \t\"\x80\xff";
    for (size_t i = 0; i < sizeof(bad) - 1; i++) {
        char t[COOKIE_VALUE_LEN];
        memcpy(t, v, sizeof(t));
        t[10] = bad[i];
        CHECK_INT_EQ(cookie_decode(t, sizeof(t), &k, 0, NULL, NULL, NULL), COOKIE_ERR_FORMAT);
        t[10] = v[10];
        t[COOKIE_VALUE_LEN - 1] = bad[i];
        CHECK_INT_EQ(cookie_decode(t, sizeof(t), &k, 0, NULL, NULL, NULL), COOKIE_ERR_FORMAT);
    }
    /* other versions */
    const char versions[] = "02aZ\0";
    for (size_t i = 0; i < sizeof(versions) - 1; i++) {
        char t[COOKIE_VALUE_LEN];
        memcpy(t, v, sizeof(t));
        t[0] = versions[i];
        CHECK_INT_EQ(cookie_decode(t, sizeof(t), &k, 0, NULL, NULL, NULL), COOKIE_ERR_FORMAT);
    }
    /* 36 payload bytes are exactly 48 base64url characters: no unused bits, so
     * every character change is caught by the tag (checked in test_bit_flips). */
    CHECK_INT_EQ((COOKIE_VALUE_LEN - 1) * 6 % 8, 0);
    /* a well-formed value under another key */
    char z[COOKIE_VALUE_LEN];
    memset(z, 'A', sizeof(z));
    z[0] = '1';
    CHECK_INT_EQ(cookie_decode(z, sizeof(z), &k, 0, NULL, NULL, NULL), COOKIE_ERR_MAC);
}

static void
test_expiry(void)
{
    struct cookie_key k;
    cookie_key_derive(&k, "s3cret", 6);
    char v[COOKIE_VALUE_LEN];
    cookie_encode(v, &k, 99, 0x5e551011ULL, 1000);
    uint64_t id = 0;
    uint32_t e = 0;
    CHECK_INT_EQ(cookie_decode(v, sizeof(v), &k, 999, &id, NULL, &e), COOKIE_OK);
    CHECK_INT_EQ(cookie_decode(v, sizeof(v), &k, 1000, &id, NULL, &e), COOKIE_OK);
    id = 5;
    CHECK_INT_EQ(cookie_decode(v, sizeof(v), &k, 1001, &id, NULL, &e), COOKIE_ERR_EXPIRED);
    CHECK_UINT_EQ(id, 5); /* untouched on error */
    /* a forged cookie that is also expired reports the forgery */
    v[5] = v[5] == 'A' ? 'B' : 'A';
    CHECK_INT_EQ(cookie_decode(v, sizeof(v), &k, 5000, &id, NULL, &e), COOKIE_ERR_MAC);
}

static void
test_keys_separate(void)
{
    struct cookie_key a, b, a2;
    cookie_key_derive(&a, "secret-a", 8);
    cookie_key_derive(&b, "secret-b", 8);
    cookie_key_derive(&a2, "secret-a", 8);
    CHECK(a.k0 != b.k0 || a.k1 != b.k1);
    CHECK_UINT_EQ(a.k0, a2.k0);
    CHECK_UINT_EQ(a.k1, a2.k1);
    char va[COOKIE_VALUE_LEN], vb[COOKIE_VALUE_LEN];
    cookie_encode(va, &a, 1, 0x5e551011ULL, 2000000000u);
    cookie_encode(vb, &b, 1, 0x5e551011ULL, 2000000000u);
    CHECK(memcmp(va, vb, sizeof(va)) != 0);
    CHECK_INT_EQ(cookie_decode(va, sizeof(va), &b, 0, NULL, NULL, NULL), COOKIE_ERR_MAC);
    CHECK_INT_EQ(cookie_decode(vb, sizeof(vb), &a, 0, NULL, NULL, NULL), COOKIE_ERR_MAC);
    CHECK_INT_EQ(cookie_decode(va, sizeof(va), &a2, 0, NULL, NULL, NULL), COOKIE_OK);

    /* SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 ...: k0, k1 read LE */
    struct cookie_key abc;
    cookie_key_derive(&abc, "abc", 3);
    CHECK_UINT_EQ(abc.k0, 0xeacf018fbf1678baULL);
    CHECK_UINT_EQ(abc.k1, 0x2322ae5dde404141ULL);
}

static void
test_server_id(void)
{
    struct cookie_key a, b;
    cookie_key_derive(&a, "secret-a", 8);
    cookie_key_derive(&b, "secret-b", 8);
    uint64_t x1 = cookie_server_id(&a, "voice/pod-1", 11);
    uint64_t x2 = cookie_server_id(&a, "voice/pod-1", 11);
    uint64_t y = cookie_server_id(&a, "voice/pod-2", 11);
    uint64_t z = cookie_server_id(&b, "voice/pod-1", 11);
    CHECK_UINT_EQ(x1, x2);
    CHECK(x1 != y);
    CHECK(x1 != z);
    CHECK_UINT_EQ(x1, siphash64(&a, "voice/pod-1", 11));
    /* the server name never appears in the cookie */
    char v[COOKIE_VALUE_LEN + 1];
    cookie_encode(v, &a, x1, 0x5e551011ULL, 2000000000u);
    v[COOKIE_VALUE_LEN] = 0;
    CHECK(strstr(v, "pod") == NULL);
}

int
main(void)
{
    RUN(test_siphash64_vectors);
    RUN(test_siphash128_vectors);
    RUN(test_roundtrip);
    RUN(test_bit_flips_rejected);
    RUN(test_format_rejected);
    RUN(test_expiry);
    RUN(test_keys_separate);
    RUN(test_server_id);
    return unit_summary();
}
