/* SPDX-License-Identifier: MIT */
/* Quiescent-state-based reclamation: objects that workers read without locks
 * (balancer plans, hash tables) are retired by the control thread and freed once
 * every worker has passed a quiescent point (between event batches). */
#ifndef TETHER_QSBR_H
#define TETHER_QSBR_H

#include <stdint.h>

/* Prepare for <nworkers> reader threads. */
int qsbr_init(uint32_t nworkers);
/* Worker <w> starts handling events (after poll returned). */
void qsbr_online(uint32_t w);
/* Worker <w> is about to block in poll: it holds no retired pointer. */
void qsbr_offline(uint32_t w);
/* Retire <p>: <fn>(<p>) runs once no worker can still see it. Control thread. */
void qsbr_retire(void *p, void (*fn)(void *));
/* Free what can be freed now; returns how many are still waiting. Control thread. */
unsigned qsbr_reclaim(void);
/* Free everything (shutdown, after workers stopped). */
void qsbr_fini(void);

#endif
