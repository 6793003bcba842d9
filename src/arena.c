/* SPDX-License-Identifier: MIT */
/* Bump allocator: chunks of at least 16 KiB, freed together. */
#include "config.h"

#include <tether/arena.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk {
    struct arena_chunk *next;
    size_t size; /* usable bytes in data[] */
    size_t used; /* bytes handed out */
    _Alignas(16) unsigned char data[];
};

void
arena_init(struct arena *a)
{
    a->head = NULL;
    a->total = 0;
}

void *
arena_alloc(struct arena *a, size_t n)
{
    struct arena_chunk *c = a->head;
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n)
        abort();
    if (!c || c->size - c->used < need) {
        size_t sz = need > 16384 ? need : 16384;
        c = malloc(sizeof(*c) + sz);
        if (!c) {
            fprintf(stderr, "tether: out of memory\n");
            abort();
        }
        c->size = sz;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->total += need;
    memset(p, 0, n);
    return p;
}

void *
arena_calloc(struct arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        abort();
    return arena_alloc(a, n * size);
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

void *
arena_grow(struct arena *a, void *old, size_t old_n, size_t new_n, size_t size)
{
    void *p = arena_calloc(a, new_n, size);
    if (old && old_n)
        memcpy(p, old, old_n * size);
    return p;
}

void
arena_fini(struct arena *a)
{
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}
