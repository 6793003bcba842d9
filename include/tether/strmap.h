/* SPDX-License-Identifier: MIT */
/* A string-keyed index: key -> pointer, open addressing with linear probing
 * over an XXH3 hash. The caller owns the keys (they must outlive their entry)
 * and the values, and does its own locking. Used where the control thread
 * looks servers up by identity (the runtime registry, the discovered roster),
 * so that a membership of thousands costs one probe per server, not a scan. */
#ifndef TETHER_STRMAP_H
#define TETHER_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
    const char *key; /* NULL: empty */
    void *val;
    uint64_t hash;
};

struct strmap {
    struct strmap_slot *slots;
    uint32_t cap; /* a power of two, or 0 */
    uint32_t n;   /* entries in use */
};

/* The value stored under <key>, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);

/* Store <val> under <key> (replacing any value there). false: out of memory
 * (the map is unchanged). */
bool strmap_put(struct strmap *m, const char *key, void *val);

/* Remove <key> if present. */
void strmap_del(struct strmap *m, const char *key);

/* Free the table (not the keys or values). */
void strmap_free(struct strmap *m);

#endif
