/* SPDX-License-Identifier: MIT */
/* Internals shared by redis.c (worker connections, learned sessions) and
 * redis_zone.c (global rate-limit zones). Only redis*.c include this header,
 * so hiredis stays out of every other file. */
#ifndef TETHER_REDIS_INT_H
#define TETHER_REDIS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <ev.h>
#include <hiredis/async.h>

#include <tether/ratelimit.h>
#include <tether/redis.h>
#include <tether/sock.h>
#include <tether/util.h>

struct worker;
struct rl_zone;

/* Longest Redis key built (prefix + "rl:" + zone + ":" + key). */
#define REDIS_KEY_MAX 1024

enum redis_op_kind {
    ROP_SESSION = 0, /* GET of a learned session */
    ROP_ZONE,        /* EVALSHA of the GCRA script */
    ROP_STORE,       /* SET of a learned session the response waits for */
};

/* One request-path operation. It lives until hiredis runs its callback (hiredis
 * always does, with a NULL reply when the connection goes); the request may
 * leave it earlier (answered by the timeout, cancelled), which only clears
 * <wt>, so a late reply never touches its owner. */
struct redis_op {
    struct redis_client *rc; /* the client it was sent on */
    struct redis_waiter *wt; /* waiting owner; NULL once answered or cancelled */
    struct redis_op *next;   /* in the owner's list (wt->ops), or free */
    ev_timer timer;          /* answers the request when Redis is too slow */
    uint8_t kind;            /* enum redis_op_kind */
    bool resent;             /* zone: NOSCRIPT was answered with one EVAL */
    struct rl_zone *zone;    /* zone: the zone (held by the request's route) */
    struct redis_qent *qe;   /* store: the write, queued again if it fails */
    uint16_t klen;           /* zone: bytes of key */
    char key[RL_KEY_MAX];    /* zone: the request's key, for the local fallback */
};

/* Counters of one worker, summed by redis_stats_get (single writer). */
struct redis_wstats {
    _Atomic uint64_t errors;
    _Atomic uint64_t timeouts;
    _Atomic uint64_t reconnects;
    _Atomic uint64_t fallbacks;
    _Atomic uint32_t up;
    _Atomic uint64_t epoch; /* primary the connection follows */
} __attribute__((aligned(CACHELINE)));

enum redis_state {
    RC_DOWN = 0,   /* no connection; the timer retries with back-off */
    RC_CONNECTING, /* connecting or AUTH/SELECT/SCRIPT LOAD in flight */
    RC_UP,         /* handshake done: requests may use it */
};

/* A worker's client (worker.redis). Connection settings are copies, so the
 * client does not pin a generation. */
struct redis_client {
    struct worker *w;
    redisAsyncContext *ac; /* current connection, NULL when down */
    uint8_t state;         /* enum redis_state */
    bool down_logged;      /* "down" written since the last "up" */
    ev_timer timer;        /* connect deadline, or the next reconnect */
    uint64_t backoff_ms;   /* next reconnect delay (100 ms .. 5 s) */
    struct sock_addr addr; /* server */
    char addr_text[SOCK_ADDR_STRLEN];
    uint64_t epoch;   /* of the published primary it follows */
    bool was_up;      /* has been up once (a new primary is then a reconnect) */
    char *user;       /* ACL user, or NULL */
    char *password;   /* AUTH, or NULL */
    uint32_t db;      /* SELECT when not 0 */
    char prefix[512]; /* key prefix */
    size_t prefix_len;
    uint64_t timeout_ms; /* per operation */
    char sha[41];        /* SHA1 of the GCRA script on this connection */
    uint32_t inflight;   /* commands sent whose callback has not run */
    uint32_t in_cb;      /* inside one of our hiredis reply callbacks */
    ev_tstamp progress;  /* last reply, or the send that ended an idle spell */
    struct redis_op *free_ops;
    struct redis_wstats *st; /* this worker's counters */
};

/* The worker's client when it can take a request-path command now, or NULL. */
struct redis_client *redis_client_usable(struct worker *w);
/* Send a command whose answer only counts as an error or not (redis.c). 0, or
 * -1 (counted) when it could not be queued. */
int redis_send_forget(struct redis_client *rc, int argc, const char **argv, const size_t *lens);

/* A fresh operation of <kind> for <wt> (not yet linked), or NULL. */
struct redis_op *redis_op_get(struct redis_client *rc, struct redis_waiter *wt, unsigned kind);
/* Send the command for <op>: links it to its request and starts its timeout.
 * 0, or -1 (the op is given back, the error counted). */
int redis_op_start(struct redis_op *op, int argc, const char **argv, const size_t *lens);
/* Send another command for <op> from its reply handler (op stays linked). */
int redis_op_resend(struct redis_op *op, int argc, const char **argv, const size_t *lens);
/* Take <op> off its owner's list and stop its timer; op->wt becomes NULL. */
void redis_op_unlink(struct redis_op *op);

void redis_count_error(struct redis_client *rc);
void redis_count_fallback(struct redis_client *rc);

/* ---- the queue of writes waiting for a primary (redis_queue.c) ---- */

#define REDIS_QENT_ARGS 8

/* One write: a command's arguments, copied. */
struct redis_qent {
    struct redis_qent *next;
    int argc;
    int ttl_arg;             /* argument rewritten to the milliseconds left, or -1 */
    bool was_queued;         /* it waited in the queue (counted as replayed when written) */
    uint64_t done_ms;        /* monotonic time it was written (among the recent writes) */
    uint64_t expire_wall_ms; /* the write is pointless after this (0: never) */
    const char *argv[REDIS_QENT_ARGS];
    size_t lens[REDIS_QENT_ARGS];
    char ttl[24];
    char data[]; /* the arguments, each NUL-terminated */
};

/* A copy of the command <argc>/<argv>/<lens> (at most REDIS_QENT_ARGS), or
 * NULL. <ttl_arg>: index of a PX argument recomputed when sent late. */
struct redis_qent *redis_qent_new(int argc, const char *const *argv, const size_t *lens,
                                  int ttl_arg, uint64_t expire_wall_ms);
void redis_qent_free(struct redis_qent *e);
/* Refresh <e>'s TTL argument for sending at <now_wall_ms>; false: expired. */
bool redis_qent_ready(struct redis_qent *e, uint64_t now_wall_ms);
/* Queue <e> (owned by the queue now); full: the oldest is dropped, counted. */
void redis_queue_put(struct redis_qent *e);
/* The oldest write, or NULL; give it back with redis_queue_done. */
struct redis_qent *redis_queue_take(void);
/* <e> was written (<ok>, freed) or failed (back at the head, or dropped). */
void redis_queue_done(struct redis_qent *e, bool ok);
/* The primary was lost: writes it acknowledged in the last second (perhaps
 * not yet on its replica) go back to the head of the queue, for the next
 * primary. Returns how many. */
uint32_t redis_queue_replay_recent(void);
/* Give up on <e> (a refused write): freed, counted as dropped. */
void redis_queue_drop(struct redis_qent *e);
void redis_queue_count_expired(void);
void redis_queue_set_size(uint32_t cap);
void redis_queue_clear(void);

/* ---- the primary (redis_ha.c) ---- */

/* Error replies that mean "this is no longer (or not yet) a usable primary". */
bool redis_reply_failover(const redisReply *r);

/* redis_zone.c: the reply (NULL when the connection went) of a zone op still
 * attached to its request; true when it sent another command for <op>. */
bool redis_zone_reply(struct redis_op *op, const redisReply *r);
/* redis_zone.c: the zone op's timeout passed. */
void redis_zone_timeout(struct redis_op *op);
/* The GCRA script (SCRIPT LOAD on each connection). */
extern const char redis_gcra_script[];

#endif
