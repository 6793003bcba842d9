/* SPDX-License-Identifier: MIT */
/* Quiescent-state-based reclamation for lock-free readers in the workers. */
#include "config.h"

#include <tether/qsbr.h>
#include <tether/util.h>

#include <stdatomic.h>
#include <stdlib.h>

struct retired {
    void *p;
    void (*fn)(void *);
    uint64_t epoch;
    struct retired *next;
};

struct qsbr_slot {
    _Atomic uint64_t seen; /* epoch observed at the start of the current batch, 0 idle */
} __attribute__((aligned(CACHELINE)));

static _Atomic uint64_t epoch = 1;
static struct qsbr_slot *slots;
static uint32_t nslots;
static struct retired *pending; /* control thread only */

int
qsbr_init(uint32_t nworkers)
{
    slots = aligned_alloc(CACHELINE, sizeof(*slots) * (nworkers ? nworkers : 1));
    if (!slots)
        return -1;
    for (uint32_t i = 0; i < nworkers; i++)
        atomic_init(&slots[i].seen, 0);
    nslots = nworkers;
    return 0;
}

void
qsbr_online(uint32_t w)
{
    atomic_store_explicit(&slots[w].seen, atomic_load_explicit(&epoch, memory_order_acquire),
                          memory_order_seq_cst);
}

void
qsbr_offline(uint32_t w)
{
    atomic_store_explicit(&slots[w].seen, 0, memory_order_release);
}

void
qsbr_retire(void *p, void (*fn)(void *))
{
    struct retired *r;
    if (!p)
        return;
    r = malloc(sizeof(*r));
    if (!r)
        abort();
    r->p = p;
    r->fn = fn;
    /* The pointer swap happened before this increment: a worker that sees the new
     * epoch can only have read the new pointer. */
    r->epoch = atomic_fetch_add(&epoch, 1) + 1;
    r->next = pending;
    pending = r;
}

unsigned
qsbr_reclaim(void)
{
    uint64_t min_seen = UINT64_MAX;
    unsigned left = 0;
    for (uint32_t i = 0; i < nslots; i++) {
        uint64_t s = atomic_load(&slots[i].seen);
        if (s && s < min_seen)
            min_seen = s;
    }
    struct retired **pp = &pending;
    while (*pp) {
        struct retired *r = *pp;
        if (r->epoch <= min_seen) {
            *pp = r->next;
            r->fn(r->p);
            free(r);
        } else {
            pp = &r->next;
            left++;
        }
    }
    return left;
}

void
qsbr_fini(void)
{
    while (pending) {
        struct retired *r = pending;
        pending = r->next;
        r->fn(r->p);
        free(r);
    }
    free(slots);
    slots = NULL;
    nslots = 0;
}
