/* SPDX-License-Identifier: MIT */
/* libFuzzer target for session learning: learn_json_field with a fuzzer-chosen
 * member name over arbitrary text (and its prefixes, which must never contradict
 * the full text), and path_pattern_parse/match. */
#include "config.h"

#include <tether/session.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_slice(const char *p, size_t n, const struct slice *s)
{
    if (s->p < p || s->len > n || (size_t)(s->p - p) > n - s->len)
        abort();
}

/* mode 0: name_len:1 | name | json text; the first byte of the text picks a
 * prefix length too. */
static void
fuzz_json(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    size_t name_len = data[0] % 40;
    if (name_len > size - 1)
        name_len = size - 1;
    const char *name = (const char *)data + 1;
    const char *text = name + name_len;
    size_t n = size - 1 - name_len;

    struct slice v = {NULL, 0};
    int rc = learn_json_field(text, n, name, name_len, &v);
    if (rc < -1 || rc > 1)
        abort();
    if (rc == 1) {
        check_slice(text, n, &v);
        if (memchr(v.p, '\\', v.len))
            abort();
    }

    /* Truncation consistency: a prefix may say "need more" (0), otherwise it
     * must already give the full text's answer. */
    size_t cut = n ? (size_t)data[0] * 2654435761u % (n + 1) : 0;
    struct slice pv = {NULL, 0};
    int prc = learn_json_field(text, cut, name, name_len, &pv);
    if (prc == 1 && (rc != 1 || pv.p != v.p || pv.len != v.len))
        abort();
    if (prc == -1 && rc != -1)
        abort();
}

/* mode 1: pattern '\n' path */
static void
fuzz_path(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return;
    size_t plen = (size_t)(nl - data);
    char *pattern = malloc(plen + 1);
    if (!pattern)
        return;
    memcpy(pattern, data, plen);
    pattern[plen] = '\0';
    const char *path = (const char *)nl + 1;
    size_t n = size - plen - 1;

    struct path_pattern pat;
    struct err e = {{0}};
    if (path_pattern_parse(&pat, pattern, &e) == 0) {
        if (pat.prefix_len >= sizeof(pat.prefix) || pat.suffix_len >= sizeof(pat.suffix))
            abort();
        struct slice id;
        if (path_pattern_match(&pat, path, n, &id) == 1) {
            check_slice(path, n, &id);
            if (!session_id_valid(id.p, id.len))
                abort();
            if ((size_t)(id.p - path) != pat.prefix_len)
                abort();
        }
    } else if (e.msg[0] == '\0') {
        abort();
    }
    free(pattern);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 0x80)
        fuzz_path(data + 1, size - 1);
    else
        fuzz_json(data + 1, size - 1);
    return 0;
}
