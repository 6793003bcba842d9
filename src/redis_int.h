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
#include <tether/sock.h>
#include <tether/util.h>

struct request;
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
 * <req>, so a late reply never touches a request. */
struct redis_op {
    struct redis_client *rc; /* the client it was sent on */
    struct request *req;     /* waiting request; NULL once answered or cancelled */
    struct redis_op *next;   /* in the request's list (req->redis_op), or free */
    ev_timer timer;          /* answers the request when Redis is too slow */
    uint8_t kind;            /* enum redis_op_kind */
    bool resent;             /* zone: NOSCRIPT was answered with one EVAL */
    struct rl_zone *zone;    /* zone: the zone (held by the request's route) */
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

/* A fresh operation of <kind> for <req> (not yet linked), or NULL. */
struct redis_op *redis_op_get(struct redis_client *rc, struct request *req, unsigned kind);
/* Send the command for <op>: links it to its request and starts its timeout.
 * 0, or -1 (the op is given back, the error counted). */
int redis_op_start(struct redis_op *op, int argc, const char **argv, const size_t *lens);
/* Send another command for <op> from its reply handler (op stays linked). */
int redis_op_resend(struct redis_op *op, int argc, const char **argv, const size_t *lens);
/* Take <op> off its request's list and stop its timer; op->req becomes NULL. */
void redis_op_unlink(struct redis_op *op);

void redis_count_error(struct redis_client *rc);
void redis_count_fallback(struct redis_client *rc);

/* redis_zone.c: the reply (NULL when the connection went) of a zone op still
 * attached to its request; true when it sent another command for <op>. */
bool redis_zone_reply(struct redis_op *op, const redisReply *r);
/* redis_zone.c: the zone op's timeout passed. */
void redis_zone_timeout(struct redis_op *op);
/* The GCRA script (SCRIPT LOAD on each connection). */
extern const char redis_gcra_script[];

#endif
