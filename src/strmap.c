/* SPDX-License-Identifier: MIT */
/* String-keyed index (strmap.h): linear probing, grown at 1/2 load, deletion
 * by backward shift (no tombstones, so probes stay short under churn). */
#include "config.h"

#include <tether/strmap.h>

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static uint64_t
key_hash(const char *key)
{
    return XXH3_64bits(key, strlen(key));
}

static uint32_t
find(const struct strmap *m, const char *key, uint64_t h)
{
    uint32_t mask = m->cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        const struct strmap_slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
            return i;
    }
}

void *
strmap_get(const struct strmap *m, const char *key)
{
    if (m->n == 0)
        return NULL;
    uint32_t i = find(m, key, key_hash(key));
    return m->slots[i].key ? m->slots[i].val : NULL;
}

static bool
grow(struct strmap *m)
{
    uint32_t cap = m->cap ? m->cap * 2 : 16;
    struct strmap_slot *s = calloc(cap, sizeof(*s));
    if (!s)
        return false;
    struct strmap old = *m;
    m->slots = s;
    m->cap = cap;
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            m->slots[find(m, old.slots[i].key, old.slots[i].hash)] = old.slots[i];
    free(old.slots);
    return true;
}

bool
strmap_put(struct strmap *m, const char *key, void *val)
{
    if ((m->n + 1) * 2 > m->cap && !grow(m))
        return false;
    uint64_t h = key_hash(key);
    uint32_t i = find(m, key, h);
    if (!m->slots[i].key)
        m->n++;
    m->slots[i] = (struct strmap_slot){.key = key, .val = val, .hash = h};
    return true;
}

void
strmap_del(struct strmap *m, const char *key)
{
    if (m->n == 0)
        return;
    uint32_t mask = m->cap - 1;
    uint32_t i = find(m, key, key_hash(key));
    if (!m->slots[i].key)
        return;
    /* Backward shift: move later entries of the run into the hole when their
     * home slot does not lie cyclically between the hole and themselves. */
    for (uint32_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (struct strmap_slot){0};
    m->n--;
}

void
strmap_free(struct strmap *m)
{
    free(m->slots);
    *m = (struct strmap){0};
}
