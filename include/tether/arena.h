/* SPDX-License-Identifier: MIT */
/* Bump allocator per lifetime (a config generation): many small allocations,
 * one free. Memory is zeroed. */
#ifndef TETHER_ARENA_H
#define TETHER_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head; /* newest chunk first */
    size_t total;             /* bytes handed out, for stats */
};

void arena_init(struct arena *a);
/* Zeroed memory aligned for any type; aborts on out-of-memory (config time only). */
void *arena_alloc(struct arena *a, size_t n);
/* Zeroed array of <n> elements of <size> bytes (overflow-checked). */
void *arena_calloc(struct arena *a, size_t n, size_t size);
/* NUL-terminated copy of <n> bytes at <s>. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
/* Grow an array allocated from the arena: returns a copy with room for <new_n>. */
void *arena_grow(struct arena *a, void *old, size_t old_n, size_t new_n, size_t size);
/* Free every chunk. */
void arena_fini(struct arena *a);

#endif
