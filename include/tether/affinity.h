/* SPDX-License-Identifier: MIT */
/* Session affinity as a decision: from what a request carries (the affinity
 * cookie, a session id from a header/path/cookie, the server the session
 * store knows for it) and the upstream's membership, choose a server per
 * DESIGN §2's chain (cookie -> learned id -> consistent hash -> balancer), or
 * the server a retry or redispatch goes to. Pure: no request, no I/O, no
 * session table, no Redis; the exchange (request_affinity.c) reads the head,
 * asks the session store (session_store.h) and applies the decision. See
 * doc/affinity.md and doc/internals/exchange.md. */
#ifndef TETHER_AFFINITY_H
#define TETHER_AFFINITY_H

#include <stdbool.h>
#include <stdint.h>

#include <tether/arena.h>
#include <tether/conf.h>
#include <tether/cookie.h>
#include <tether/session.h>

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
    struct session_table *table; /* the session store's local table (set by gen.c,
                                  * used by the exchange, never by affinity.c) */
};

/* Build from <c> (reads the secret file). NULL with <e> on error. */
struct affinity *affinity_build(const struct conf *c, struct arena *a, struct err *e);

/* How the request found its server (access log "affinity"; metrics). */
enum aff_outcome {
    AFF_OUT_NONE = 0, /* route without affinity: balancer */
    AFF_OUT_COOKIE,
    AFF_OUT_HEADER_LEARNED,
    AFF_OUT_PATH_LEARNED,
    AFF_OUT_COOKIE_LEARNED,
    AFF_OUT_HASH,
    AFF_OUT_NEW,
    AFF_OUT_REDISPATCH,
};

/* Human name of an outcome ("cookie", access_log.c). */
const char *aff_outcome_name(unsigned aff);

/* The affinity cookie a request carried. */
enum aff_cookie_state {
    AFF_COOKIE_NONE = 0, /* none */
    AFF_COOKIE_VALID,    /* verified: cookie_srv, cookie_sess, cookie_exp set */
    AFF_COOKIE_FORGED,   /* present, does not verify */
    AFF_COOKIE_EXPIRED,  /* verified but past its expiry */
};

/* What a request carries for affinity: filled by the exchange from its head
 * (affinity_carry_cookie, affinity_carry_sid) and from the session store
 * (learned_srv). Zeroed with the exchange. */
struct aff_carry {
    char sid[SESSION_ID_MAX + 1]; /* session id from the request */
    uint8_t sid_len;
    uint8_t sid_src;      /* where sid came from (enum aff_outcome) */
    uint8_t cookie_state; /* enum aff_cookie_state */
    uint32_t cookie_exp;  /* the cookie's expiry (seconds since the epoch) */
    uint64_t cookie_srv;  /* server id named by a valid affinity cookie */
    uint64_t cookie_sess; /* session hash carried by that cookie, 0 none */
    uint64_t learned_srv; /* server id the session store knows for sid, 0 none */
    uint64_t bhash;       /* balance hash key (balance hash) */
    bool has_bhash;
};

/* Decode the affinity cookie value <v> (<n> bytes) into <c> (state, server,
 * session, expiry) at wall-clock second <now_s>. */
void affinity_carry_cookie(const struct affinity *af, struct aff_carry *c, const char *v, size_t n,
                           uint32_t now_s);
/* Take <p> (<n> bytes) as the session id from <src> (enum aff_outcome) when
 * it is a valid id (session_id_valid); true when taken. */
bool affinity_carry_sid(struct aff_carry *c, const char *p, size_t n, uint8_t src);

/* Hash of the request's session (its id, or the one its valid cookie
 * carries): the session store's key, 0 when unknown. */
uint64_t affinity_session_key(const struct aff_carry *c);

/* What a decision is made from (built by the exchange). */
struct aff_input {
    const struct affinity *af;   /* the generation's settings */
    struct upstream *ups;        /* membership, plan and balancer */
    const struct aff_carry *c;   /* what the request carries */
    struct server *const *tried; /* servers this exchange tried (retries skip them) */
    unsigned ntried;             /* how many */
    struct server *cur;          /* the server the exchange holds now, or NULL */
    unsigned mode;               /* the route's enum affinity_mode */
    bool learn;                  /* the route learns session ids from responses */
    uint8_t outcome;             /* enum aff_outcome of the decision so far */
    bool placed;                 /* the exchange placed a new session (session_load.h) */
    bool set_cookie;             /* the cookie is to be set already */
    unsigned worker;             /* worker id (balancer cursor) */
    uint64_t now_ms;             /* monotonic */
    uint32_t now_s;              /* wall clock (cookie expiry; needed for a valid cookie) */
};

/* What became of a cookie the decision did not follow (a metric). */
enum aff_cookie_note {
    AFF_NOTE_NONE = 0,
    AFF_NOTE_UNKNOWN, /* valid, names no server of the upstream */
    AFF_NOTE_INVALID, /* forged */
    AFF_NOTE_EXPIRED,
};

/* A decision, applied by the exchange. */
struct aff_decision {
    struct server *srv;   /* the server chosen, NULL: none usable */
    struct server *moved; /* redispatch: the pinned server that cannot take it */
    uint8_t outcome;      /* enum aff_outcome (access log, metrics) */
    uint8_t note;         /* enum aff_cookie_note */
    bool set_cookie;      /* add the affinity cookie to the response */
    bool shed;            /* a new session no server has room for (srv NULL) */
    bool place;           /* srv takes a new session: count it placed */
    bool hash_place;      /* ... placed by the bounded-load hash (upstream count too) */
    bool pin;             /* pin the session key to srv in the session store */
};

/* Choose the request's server per the chain. */
void affinity_decide(const struct aff_input *in, struct aff_decision *d);

/* The server a retry should try next: for a pinned session the same choice on
 * every replica and route (a hash of the session, skipping the tried
 * servers), else the balancer. NULL when nothing is usable. */
struct server *affinity_repick(const struct aff_input *in);

/* The exchange moves from in->cur to <next> (retry or redispatch): the
 * decision's outcome, cookie, pin and <moved> (in->cur when counted as a
 * redispatch); <srv> is <next>. */
void affinity_redispatch(const struct aff_input *in, struct server *next, struct aff_decision *d);

/* Write "NAME=VALUE; Path=/; Max-Age=N; HttpOnly[; Secure][; SameSite=X]" for
 * server <s> and session hash <session> into <out>; returns the length. */
size_t affinity_cookie_header(const struct affinity *af, const struct server *s, uint64_t session,
                              bool tls, uint32_t now_s, char *out, size_t cap);

#endif
