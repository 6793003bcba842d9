/* SPDX-License-Identifier: MIT */
/* Route-matching path normalisation (see path_norm.h). */
#include "config.h"

#include <tether/path_norm.h>

#include <stdbool.h>

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool
unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Is out[seg..o) a "." or ".." segment name? */
static bool
dot_segment(const char *s, size_t len)
{
    return (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
}

int
path_normalize(const char *p, size_t n, char *out, unsigned flags)
{
    size_t o = 0, seg = 0; /* seg: where the current segment's name starts in out */
    bool params = false;   /* inside ";params": not copied */
    for (size_t i = 0; i < n;) {
        int c = (unsigned char)p[i];
        size_t adv = 1;
        bool literal = true; /* copy p[i..i+adv) as is */
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(p[i + 1]), lo = hexval(p[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            int v = hi << 4 | lo;
            adv = 3;
            if (v == 0 || v == '\\')
                return -1;
            if (v == '/' || unreserved(v)) {
                c = v;
                literal = false;
            }
        } else if (c == '\\') {
            return -1;
        }
        if (c == '/') { /* a slash, or %2F */
            if (dot_segment(out + seg, o - seg))
                return -1;
            params = false;
            if (!((flags & PATH_MERGE_SLASHES) && o > 0 && out[o - 1] == '/'))
                out[o++] = '/';
            seg = o;
            i += adv;
            continue;
        }
        if (c == ';')
            params = true;
        if (!params) {
            if (literal) {
                for (size_t k = 0; k < adv; k++)
                    out[o++] = p[i + k];
            } else {
                out[o++] = (char)c;
            }
        }
        i += adv;
    }
    if (dot_segment(out + seg, o - seg))
        return -1;
    return (int)o;
}
