/* SPDX-License-Identifier: MIT */
/* A check on every reply a Redis server sends, before hiredis's asynchronous
 * dispatch sees it. hiredis (0.14 and later) asserts on reply shapes a
 * well-behaved server never sends: a reply nobody asked for on a connection
 * that is not subscribed, a pub/sub push whose kind or channel is not a string,
 * an unsubscribe without its count. The Redis link is plaintext, so such bytes
 * may come from a broken or hostile server or from anyone on the path: the
 * guard refuses them while hiredis builds the reply, hiredis then drops the
 * connection as on a protocol error, and its owner reconnects. Only redis*.c
 * include this header. */
#ifndef TETHER_REDIS_GUARD_H
#define TETHER_REDIS_GUARD_H

#include <stdint.h>

#include <hiredis/async.h>

/* Check every reply of <ac> from now on (call right after connecting). A
 * refusal is logged (rate-limited) and counted. */
void redis_guard_attach(redisAsyncContext *ac);

/* Replies refused since start (all connections). */
uint64_t redis_guard_refused(void);

#endif
