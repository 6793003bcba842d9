/* SPDX-License-Identifier: MIT */
/* Per-thread buffer pools. */
#include "config.h"

#include <tether/buf.h>

#include <stdlib.h>

void
buf_pool_init(struct buf_pool *p, uint32_t bufsize, uint32_t max_free)
{
    p->free = NULL;
    p->nfree = 0;
    p->max_free = max_free;
    p->bufsize = bufsize;
    p->in_use = 0;
}

void
buf_pool_trim(struct buf_pool *p, uint32_t keep)
{
    while (p->nfree > keep && p->free) {
        struct buf *b = p->free;
        p->free = b->next;
        p->nfree--;
        free(b);
    }
}

void
buf_pool_fini(struct buf_pool *p)
{
    buf_pool_trim(p, 0);
}

struct buf *
buf_get(struct buf_pool *p)
{
    struct buf *b = p->free;
    if (b) {
        p->free = b->next;
        p->nfree--;
    } else {
        b = malloc(sizeof(*b) + p->bufsize);
        if (!b)
            return NULL;
        b->size = p->bufsize;
    }
    b->start = b->end = 0;
    b->next = NULL;
    p->in_use++;
    return b;
}

void
buf_put(struct buf_pool *p, struct buf *b)
{
    if (!b)
        return;
    p->in_use--;
    if (p->nfree >= p->max_free || b->size != p->bufsize) {
        free(b);
        return;
    }
    b->next = p->free;
    p->free = b;
    p->nfree++;
}
