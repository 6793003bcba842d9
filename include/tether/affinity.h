/* SPDX-License-Identifier: MIT */
/* Session affinity: the chain that finds a request's server (cookie, session id
 * in a header/path/cookie via the learned table, consistent hash, balancer),
 * redispatch of pinned sessions whose server cannot take them, learning ids from
 * responses, and the affinity cookie. See doc/affinity.md. */
#ifndef TETHER_AFFINITY_H
#define TETHER_AFFINITY_H

#include <stdbool.h>
#include <stdint.h>

#include <tether/arena.h>
#include <tether/conf.h>
#include <tether/cookie.h>
#include <tether/session.h>

struct request;
struct server;
struct upstream;

/* Affinity settings of a generation. */
struct affinity {
    struct cookie_key key; /* from secret_file, or a per-process random key */
    bool key_shared;       /* from secret_file (replicas agree) */
    uint32_t max_age_s;
    const char *samesite; /* or NULL */
    const char *header;   /* request header carrying a session id */
    size_t header_len;
    const char *learn_header; /* response header to learn from, or NULL */
    size_t learn_header_len;
    const char *learn_json; /* JSON body field to learn from, or NULL */
    size_t learn_json_len;
    const char *learn_cookie; /* Set-Cookie name to learn from, or NULL */
    size_t learn_cookie_len;
    const char *session_cookie; /* request cookie carrying a session id, or NULL */
    size_t session_cookie_len;
    const struct path_pattern *paths;
    uint32_t npaths;
    uint64_t ttl_ms;
    struct session_table *table; /* process-wide learned table */
};

/* Build from <c> (reads the secret file). NULL with <e> on error. */
struct affinity *affinity_build(const struct conf *c, struct arena *a, struct err *e);

/* The process-wide learned-session table (created with the first generation). */
struct session_table *affinity_table(void);
/* Free process-wide state at exit. */
void affinity_shutdown(void);

enum aff_result {
    AFF_PICKED = 0, /* req->srv set */
    AFF_WAIT,       /* waiting for Redis; affinity_resume() will be called */
    AFF_NONE,       /* no server usable */
};

/* Read what affinity needs from the request head at <base> (cookie, session id
 * from header/path) before the head is consumed; start a Redis lookup when the
 * learned table misses. Returns AFF_WAIT when a lookup is in flight, AFF_NONE
 * otherwise, -1 for an invalid request. */
int affinity_prepare(struct request *req, const char *base, uint64_t now_ms);
/* A Redis lookup for <req> is still in flight. */
/* The server <req> goes to: holds a reference on <s> (NULL drops it), so a
 * membership change cannot free it under the request. */
void affinity_set_server(struct request *req, struct server *s);
bool affinity_pending(const struct request *req);
/* The Redis lookup started by affinity_prepare answered with <v> (<n> bytes,
 * "upstream/server SID"), or NULL on a miss or timeout: no longer pending;
 * learned when it names a server of the request's upstream. */
void affinity_session_answer(struct request *req, const char *v, size_t n);

/* Choose req->srv for req->route per DESIGN §2's chain; sets req->aff and
 * req->set_cookie. */
int affinity_pick(struct request *req, uint64_t now_ms);

/* The server a retry should try next: for a pinned session the same choice on
 * every replica and route (a hash of the session, skipping <req>'s tried
 * servers), else the balancer. NULL when nothing is usable. */
struct server *affinity_repick(struct request *req, uint64_t now_ms);

/* The request moves to <next> (retry or redispatch): re-pin and re-issue. */
void affinity_redispatch(struct request *req, struct server *next);

/* Hash of the request's voice session (its id, or the one its cookie carries),
 * 0 when unknown. */
uint64_t affinity_session_key(const struct request *req);

/* A placed new session is settled (its response head arrived, or the request
 * is being freed): counted as settled and published to the other replicas
 * (session_load.h). Once per request; nothing for other requests. */
void affinity_placement_settle(struct request *req);

/* The request object is being freed (cancel a pending lookup). */
void affinity_request_done(struct request *req);

/* The response head is known: learn a session id from a header (when the route
 * learns) and decide the cookie. <buf> holds the response head. */
void affinity_on_response(struct request *req, const char *buf);
/* Learning from a JSON body: feed the first body bytes; true when done. */
bool affinity_learn_body(struct request *req, const char *p, size_t n);

/* Write "NAME=VALUE; Path=/; Max-Age=N; HttpOnly[; Secure][; SameSite=X]" for
 * server <s> and session hash <session> into <out>; returns the length. */
size_t affinity_cookie_header(const struct affinity *af, const struct server *s, uint64_t session,
                              bool tls, uint32_t now_s, char *out, size_t cap);

#endif
