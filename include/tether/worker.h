/* SPDX-License-Identifier: MIT */
/* Worker threads: one libev loop each, their own SO_REUSEPORT listening sockets,
 * per-thread free lists (buffers, clients, requests, upstream connections), the
 * keep-alive pools to servers, and an inbox woken by ev_async. A connection lives
 * on one worker for its whole life. */
#ifndef TETHER_WORKER_H
#define TETHER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <ev.h>

#include <tether/buf.h>
#include <tether/list.h>
#include <tether/log.h>

struct gen;
struct gen_listen;
struct listen_fds;
struct client;
struct request;
struct upconn;

/* An accept watcher on one of this worker's sockets of a listen address (one
 * per worker, several after an upgrade from a process with more workers). */
struct wlisten {
    ev_io io;
    struct worker *w;
    struct listen_fds *socks; /* reference held while watched */
    struct gen_listen *gl;    /* entry in the worker's current generation */
    struct list link;         /* in worker.listens */
};

/* Idle keep-alive connections to one server, newest first (LIFO). */
struct upconn_pool {
    struct list idle;
    uint32_t nidle;
};

struct worker {
    uint32_t id; /* 0..nworkers-1, also the stats slot */
    struct ev_loop *loop;
    pthread_t thread;
    ev_async wake;          /* inbox */
    ev_prepare prep;        /* QSBR offline before polling */
    ev_check chk;           /* QSBR online after polling */
    ev_timer tick;          /* housekeeping: 100 ms */
    ev_timer accept_retry;  /* re-enable accepting after EMFILE/ENFILE */
    _Atomic uint32_t inbox; /* enum worker_msg bits */
    struct gen *gen;        /* current generation (one reference) */
    struct list listens;    /* struct wlisten */
    struct buf_pool bufs;
    struct list clients; /* every open client connection */
    uint32_t nclients;
    struct list tunnels; /* open WebSocket tunnels */
    uint32_t ntunnels;
    struct client *free_clients;
    struct request *free_requests;
    struct upconn *free_upconns;
    struct upconn_pool *pools; /* indexed by server_rt slot */
    uint32_t npools;
    struct access_buf alog;
    ev_tstamp alog_flushed; /* last access-log flush */
    uint64_t rng;
    bool draining;      /* shutting down: no accepts, close when idle */
    bool accept_paused; /* out of descriptors or at max_connections */
    uint64_t drain_deadline_ms;
    char *scratch;   /* bufsize bytes of scratch (head rewriting) */
    void *redis;     /* this worker's Redis client (redis.c), or NULL */
    uint64_t now_ms; /* monotonic ms, read once per loop turn (ev_check) */
};

enum worker_msg {
    WMSG_GEN = 1u << 0,    /* a new generation was published */
    WMSG_DRAIN = 1u << 1,  /* graceful shutdown */
    WMSG_STOP = 1u << 2,   /* stop now (shutdown timeout passed) */
    WMSG_REOPEN = 1u << 3, /* reopen logs */
};

extern struct worker *workers;
extern uint32_t nworkers;
/* Process-wide count of open client connections (max_connections). */
extern _Atomic uint32_t conns_open;

/* Create <n> workers (threads not started). */
int workers_create(uint32_t n, uint32_t bufsize);
/* Start every worker thread on the current generation. */
int workers_start(void);
/* Post <msg> to every worker. */
void workers_post(uint32_t msg);
/* Wait for every worker thread to exit. */
void workers_join(void);
/* Free workers after join. */
void workers_destroy(void);

/* The worker whose thread is calling, or NULL (control thread). */
extern __thread struct worker *worker_self;

/* Keep-alive pool of the server with runtime slot <slot> (grown on demand). */
struct upconn_pool *worker_pool(struct worker *w, uint32_t slot);

/* Monotonic time of the current loop turn (runtime state such as ejections and
 * slow start is on the monotonic clock; ev_now() is the wall clock). */
static inline uint64_t
worker_now_ms(const struct worker *w)
{
    return w->now_ms;
}

/* A client connection closed: counts and drain check. */
void worker_client_gone(struct worker *w);

#endif
