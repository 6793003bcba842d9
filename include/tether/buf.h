/* SPDX-License-Identifier: MIT */
/* Fixed-size I/O buffers from a per-thread free list. A connection holds a buffer
 * only while it has bytes pending; a NULL pointer means "no buffer", so an idle
 * keep-alive connection or an idle tunnel holds none.
 *
 *     data: [ consumed | pending bytes           | free space      ]
 *           0          start                     end               size
 *
 * <start> advances as bytes are sent or consumed, <end> as bytes are received.
 * Parsers keep their own offsets between start and end. */
#ifndef TETHER_BUF_H
#define TETHER_BUF_H

#include <stdint.h>
#include <string.h>

struct buf {
    uint32_t size;    /* capacity of data[] */
    uint32_t start;   /* first pending byte */
    uint32_t end;     /* one past the last pending byte */
    struct buf *next; /* free-list link while pooled */
    char data[];
};

/* A per-thread pool of buffers of one size. Not thread-safe by design. */
struct buf_pool {
    struct buf *free;  /* LIFO free list (hot in cache) */
    uint32_t nfree;    /* buffers in the free list */
    uint32_t max_free; /* beyond this, returned buffers are freed */
    uint32_t bufsize;  /* data bytes per buffer */
    uint64_t in_use;   /* buffers handed out */
};

void buf_pool_init(struct buf_pool *p, uint32_t bufsize, uint32_t max_free);
/* Free every pooled buffer (buffers in use are the caller's). */
void buf_pool_fini(struct buf_pool *p);
/* Trim the free list down to <keep> buffers (returns memory after a burst). */
void buf_pool_trim(struct buf_pool *p, uint32_t keep);

/* An empty buffer (start = end = 0), or NULL when out of memory. */
struct buf *buf_get(struct buf_pool *p);
/* Give <b> back (NULL is fine). */
void buf_put(struct buf_pool *p, struct buf *b);

static inline uint32_t
buf_len(const struct buf *b)
{
    return b->end - b->start;
}

static inline uint32_t
buf_room(const struct buf *b)
{
    return b->size - b->end;
}

static inline char *
buf_head(struct buf *b)
{
    return b->data + b->start;
}

static inline char *
buf_tail(struct buf *b)
{
    return b->data + b->end;
}

/* Move pending bytes to the front so the free space is contiguous. */
static inline void
buf_compact(struct buf *b)
{
    if (b->start == 0)
        return;
    if (b->end > b->start)
        memmove(b->data, b->data + b->start, b->end - b->start);
    b->end -= b->start;
    b->start = 0;
}

/* Copy up to <max> pending bytes of <b> (NULL: none) to <out> and consume
 * them; an emptied buffer starts over at 0. Returns the bytes copied. */
static inline size_t
buf_take(struct buf *b, void *out, size_t max)
{
    size_t n = b ? buf_len(b) : 0;
    if (n > max)
        n = max;
    if (n) {
        memcpy(out, buf_head(b), n);
        b->start += (uint32_t)n;
        if (b->start == b->end)
            b->start = b->end = 0;
    }
    return n;
}

/* Append <n> bytes; returns the number appended (less when full). */
static inline uint32_t
buf_append(struct buf *b, const void *p, uint32_t n)
{
    uint32_t room = buf_room(b);
    if (n > room)
        n = room;
    memcpy(b->data + b->end, p, n);
    b->end += n;
    return n;
}

#endif
