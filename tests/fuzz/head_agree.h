/* SPDX-License-Identifier: MIT */
/* The checks the request and response head fuzz targets share: the one-shot
 * parse is checked against the bytes, a trickled parse must equal it, the head
 * alone must parse the same, and tighter limits may only fail earlier. Header
 * only, because `make fuzz` builds each target from its one source file. */
#ifndef TETHER_FUZZ_HEAD_AGREE_H
#define TETHER_FUZZ_HEAD_AGREE_H

#include <tether/http1.h>

#include <stdlib.h>
#include <string.h>

struct head_fuzz {
    int (*parse)(struct http_head *h, const char *buf, size_t len, const struct http1_limits *lim);
    /* aborts unless a successful parse (rc bytes of head) matches the bytes */
    void (*check_success)(const struct http_head *h, const char *b, int rc,
                          const struct http1_limits *lim);
    /* whether two results (return codes and heads) are the same */
    int (*same)(int ra, const struct http_head *a, int rb, const struct http_head *b);
};

/* Case-insensitive compare of a field name with a lower-case literal, written
 * out here rather than taken from the code under test. */
static int
ieq(const char *a, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)lit[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

static const struct http1_limits head_fuzz_lim_big = {8192, 100};

/* Parses buf into *one with roomy limits, runs every check (aborting on a
 * disagreement) and returns the parser's result. */
static int
head_fuzz_run(const struct head_fuzz *hf, struct http_head *one, const char *buf, size_t size)
{
    static struct http_head tr, small;
    int rc, rt = 0, rs;

    http_head_init(one);
    rc = hf->parse(one, buf, size, &head_fuzz_lim_big);
    if (rc < HTTP1_ERR_VERSION || (rc > 0 && (size_t)rc > size))
        abort();
    if (rc < 0 && one->err_off > size)
        abort();
    if (rc > 0)
        hf->check_success(one, buf, rc, &head_fuzz_lim_big);

    /* trickled: each prefix in a buffer of its exact size, so overreads show */
    size_t step = 1 + size / 256;
    http_head_init(&tr);
    for (size_t k = 1; k <= size + step - 1; k += step) {
        size_t m = k < size ? k : size;
        char *copy = malloc(m);
        memcpy(copy, buf, m);
        rt = hf->parse(&tr, copy, m, &head_fuzz_lim_big);
        free(copy);
        if (rt != 0)
            break;
    }
    if (size && !hf->same(rc, one, rt, &tr))
        abort();

    /* the head alone parses the same: no byte after it was looked at */
    if (rc > 0) {
        http_head_init(&tr);
        if (!hf->same(rc, one, hf->parse(&tr, buf, (size_t)rc, &head_fuzz_lim_big), &tr))
            abort();
    }

    /* tighter limits: success only when the roomy parse agrees */
    struct http1_limits lim_small = {(uint32_t)(24 + size % 97), (uint16_t)(1 + size % 5)};
    http_head_init(&small);
    rs = hf->parse(&small, buf, size, &lim_small);
    if (rs > 0) {
        hf->check_success(&small, buf, rs, &lim_small);
        if (!hf->same(rc, one, rs, &small))
            abort();
    } else if (rs != rc && rs != HTTP1_ERR_TOO_LARGE && rs != HTTP1_ERR_TOO_MANY) {
        abort();
    }
    return rc;
}

#endif
