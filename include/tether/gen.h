/* SPDX-License-Identifier: MIT */
/* Config generations: an immutable, validated config turned into runtime objects
 * (upstreams, servers, routes, listeners, TLS contexts), published with one
 * atomic pointer swap, referenced by workers and connections, and freed when the
 * last reference goes. Workers count their references locally (no atomics per
 * request); a worker holds one atomic reference per generation it still uses. */
#ifndef TETHER_GEN_H
#define TETHER_GEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <tether/arena.h>
#include <tether/conf.h>
#include <tether/upstream.h>

struct route_stats;
struct affinity;
struct rl_zone;
struct tls_server;

struct route {
    const struct conf_route *conf;
    struct upstream *up;
    struct route_stats *stats;
    struct rl_zone **zones; /* rate-limit zones to check, in order */
    uint32_t nzones;
    uint32_t index;
};

struct vserver {
    const struct conf_vserver *conf;
    struct route *routes; /* conf order */
    uint32_t nroutes;
    struct route **exact; /* exact routes */
    uint32_t nexact;
    struct route **prefix; /* prefix routes, longest first */
    uint32_t nprefix;
    struct tls_server *tls;      /* NULL without tls listens */
    struct conn_zone *conn_zone; /* limit_conn state, or NULL */
};

/* Listening sockets of one address, one per worker (SO_REUSEPORT; more after
 * a binary upgrade from a process with more workers: worker k watches sockets
 * k, k + nworkers, ...), shared by consecutive generations while the address
 * stays configured. */
struct listen_fds {
    _Atomic uint32_t refs; /* generations publishing it + workers watching it */
    struct sock_addr addr;
    uint32_t nfds;
    int fds[];
};

struct gen_listen {
    const struct conf_listen *conf;
    struct vserver *vs;
    struct listen_fds *socks;
};

/* A worker's local reference count on a generation (padded: one writer). */
struct gen_wref {
    uint32_t n;
} __attribute__((aligned(64)));

struct gen {
    _Atomic uint32_t refs; /* control's "current" + one per worker using it */
    uint64_t id;           /* 1, 2, ... */
    struct conf *conf;     /* owned */
    struct arena arena;    /* runtime objects */
    uint32_t nworkers;
    struct upstream *upstreams;
    uint32_t nupstreams;
    struct vserver *vservers;
    uint32_t nvservers;
    struct gen_listen *listens;
    uint32_t nlistens;
    struct affinity *aff;
    struct rl_zone **zones; /* per conf zone */
    uint32_t nzones;
    struct gen_wref *wrefs; /* [nworkers] */
    uint64_t loaded_ms;     /* wall clock */
    struct gen *dead_next;  /* in the list of generations a worker let go (gen_reap) */
};

/* Build a generation from <conf> (ownership passes to the generation, also on
 * failure). <prev> (may be NULL) lends its listening sockets and runtime state.
 * NULL with <e> on failure (bind error, certificate error...). */
struct gen *gen_build(struct conf *conf, const struct gen *prev, uint32_t nworkers, uint64_t id,
                      struct err *e);

void gen_ref(struct gen *g);
/* Drop a reference; the last one frees <g> at once (control or main thread). */
void gen_unref(struct gen *g);
/* Drop a worker's reference: never frees on the worker (not in the middle of
 * a parse, not SSL contexts on the hot path). The last one hands <g> to the
 * control thread, whose next tick retires it through QSBR (gen_reap). */
void gen_unref_worker(struct gen *g);
/* Control thread (and main at exit): retire every generation a worker let go
 * through qsbr_retire(); qsbr_reclaim()/qsbr_fini() free them. */
void gen_reap(void);

/* The current generation (acquire). */
extern _Atomic(struct gen *) gen_current;

/* The current generation with a reference taken (safe against a concurrent
 * publish), or NULL. */
struct gen *gen_acquire_current(void);

/* Publish <g> as current: takes over the caller's reference; the old current's
 * reference is dropped and the listening sockets it alone had are released.
 * The caller (control side) then tells the workers (workers_post). */
void gen_publish(struct gen *g);

/* Route for a request path (no query). NULL when no route matches. */
struct route *router_match(const struct vserver *vs, const char *path, size_t len);

void listen_fds_unref(struct listen_fds *l);

/* The sockets of a published generation's listens (gen_listen.socks) are
 * read by workers (picking up a generation) and let go by the control side
 * (publish, stop, exit). A worker holds this lock from reading a socks pointer
 * to taking its own reference; gen_listens_release() clears and drops them
 * under it, so a worker sees either the sockets with a live reference or NULL.
 * Not on the hot path: once per generation pick-up. */
void gen_listens_lock(void);
void gen_listens_unlock(void);
/* Control side: <g> stops offering its sockets; each is closed once the last
 * worker watching it lets go. */
void gen_listens_release(struct gen *g);

#endif
