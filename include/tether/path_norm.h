/* SPDX-License-Identifier: MIT */
/* The path a route is matched on: the request path (without its query)
 * percent-decoded where that cannot change its meaning, with path parameters
 * and (optionally) repeated slashes removed, so that a path a pod would
 * normalise into a prefix route is matched by that route, and a path that
 * would climb out of one is refused. Pure; the pod still receives the
 * original target. Policy (doc/security.md, "Paths that escape their route"):
 *   - %XX of an unreserved character (ALPHA DIGIT - . _ ~) is decoded, and
 *     %2F is decoded to '/' (as nginx matches locations); other %XX stay;
 *   - a malformed %XX, %00, a backslash or %5C: refused;
 *   - ";params" after a segment's name are not part of the name ("/a;x/b"
 *     is matched as "/a/b", as Java servlet containers read it);
 *   - a "." or ".." segment (after the above, so "%2e%2e", "..;x" and
 *     "..%2f" too): refused, whether or not it climbs above the root;
 *   - with PATH_MERGE_SLASHES ("merge_slashes on"), "//" counts as "/". */
#ifndef TETHER_PATH_NORM_H
#define TETHER_PATH_NORM_H

#include <stddef.h>

enum path_norm_flag {
    PATH_MERGE_SLASHES = 1u << 0,
};

/* Normalise <p>[0..n) (starting with '/') into <out>, which has room for n
 * bytes (the result is never longer). Returns the length, or -1 when the path
 * is refused (the caller answers 400). */
int path_normalize(const char *p, size_t n, char *out, unsigned flags);

#endif
