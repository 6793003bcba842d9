/* SPDX-License-Identifier: MIT */
/* The affinity chain as a decision (cookie -> learned session id ->
 * consistent hash -> balancer), redispatch, the cookie. Pure: what it reads
 * is in struct aff_input, what it decides goes into struct aff_decision; the
 * exchange (request_affinity.c) reads the head and applies it. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/lb.h>
#include <tether/log.h>
#include <tether/upstream.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t aff_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cookie_key random_key;
static bool random_key_set;

/* The deploy kit's Secret ships a key that starts with this marker: a key
 * anyone can read in the repository would make cookies forgeable. */
#define SECRET_PLACEHOLDER "REPLACE-ME"
#define SECRET_MIN_BYTES   32

static int
read_secret(const char *path, const struct conf_pos *pos, uint8_t *buf, size_t cap, size_t *len,
            struct err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_at(e, pos->file, (int)pos->line, (int)pos->col,
                      "affinity secret_file \"%s\": %s", path, strerror(errno));
    ssize_t n = read(fd, buf, cap);
    close(fd);
    if (n < 0)
        return err_at(e, pos->file, (int)pos->line, (int)pos->col,
                      "affinity secret_file \"%s\": %s", path, strerror(errno));
    /* Trailing newlines of a hand-written key file are not part of it. */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if ((size_t)n >= strlen(SECRET_PLACEHOLDER) &&
        memcmp(buf, SECRET_PLACEHOLDER, strlen(SECRET_PLACEHOLDER)) == 0)
        return err_at(e, pos->file, (int)pos->line, (int)pos->col,
                      "affinity secret_file \"%s\" holds the deploy kit's placeholder key; "
                      "put a random key there (openssl rand -hex 32)",
                      path);
    if (n < SECRET_MIN_BYTES)
        return err_at(e, pos->file, (int)pos->line, (int)pos->col,
                      "affinity secret_file \"%s\" is too short: %zd bytes, need at least %d "
                      "(openssl rand -hex 32)",
                      path, n, SECRET_MIN_BYTES);
    *len = (size_t)n;
    return 0;
}

struct affinity *
affinity_build(const struct conf *c, struct arena *a, struct err *e)
{
    struct affinity *af = arena_alloc(a, sizeof(*af));
    const struct conf_affinity *ca = &c->affinity;
    if (ca->secret_file) {
        uint8_t secret[4096];
        size_t len = 0;
        if (read_secret(ca->secret_file, &ca->secret_pos, secret, sizeof(secret), &len, e) < 0)
            return NULL;
        cookie_key_derive(&af->key, secret, len);
        memset(secret, 0, sizeof(secret));
        af->key_shared = true;
    } else {
        pthread_mutex_lock(&aff_lock);
        if (!random_key_set) {
            uint8_t r[32];
            random_bytes(r, sizeof(r));
            cookie_key_derive(&random_key, r, sizeof(r));
            random_key_set = true;
        }
        af->key = random_key;
        pthread_mutex_unlock(&aff_lock);
    }
    af->max_age_s = (uint32_t)(ca->cookie_max_age_ms / 1000);
    af->samesite = ca->samesite;
    af->header = ca->header_name;
    af->header_len = strlen(ca->header_name);
    af->learn_header = ca->learn_header;
    af->learn_header_len = ca->learn_header ? strlen(ca->learn_header) : 0;
    af->learn_json = ca->learn_json;
    af->learn_json_len = ca->learn_json ? strlen(ca->learn_json) : 0;
    af->learn_cookie = ca->learn_cookie;
    af->learn_cookie_len = ca->learn_cookie ? strlen(ca->learn_cookie) : 0;
    af->session_cookie = ca->session_cookie;
    af->session_cookie_len = ca->session_cookie ? strlen(ca->session_cookie) : 0;
    af->paths = ca->paths;
    af->npaths = ca->npaths;
    af->ttl_ms = ca->ttl_ms;
    return af;
}

size_t
affinity_cookie_header(const struct affinity *af, const struct server *s, uint64_t session,
                       bool tls, uint32_t now_s, char *out, size_t cap)
{
    char val[COOKIE_VALUE_LEN];
    cookie_encode(val, &af->key, s->cookie_id, session, now_s + af->max_age_s);
    int n = snprintf(out, cap, "%s=%.*s; Path=/; Max-Age=%u; HttpOnly%s%s%s", s->up->cookie_name,
                     COOKIE_VALUE_LEN, val, af->max_age_s, tls ? "; Secure" : "",
                     af->samesite ? "; SameSite=" : "", af->samesite ? af->samesite : "");
    return (n > 0 && (size_t)n < cap) ? (size_t)n : 0;
}

/* ---- what the request carries ---- */

void
affinity_carry_cookie(const struct affinity *af, struct aff_carry *c, const char *v, size_t n,
                      uint32_t now_s)
{
    int rc = cookie_decode(v, n, &af->key, now_s, &c->cookie_srv, &c->cookie_sess, &c->cookie_exp);
    c->cookie_state = rc == COOKIE_OK            ? AFF_COOKIE_VALID
                      : rc == COOKIE_ERR_EXPIRED ? AFF_COOKIE_EXPIRED
                                                 : AFF_COOKIE_FORGED;
}

bool
affinity_carry_sid(struct aff_carry *c, const char *p, size_t n, uint8_t src)
{
    if (!session_id_valid(p, n))
        return false;
    /* Valid ids are <= SESSION_ID_MAX bytes. */
    n = copy_bounded(c->sid, sizeof(c->sid) - 1, p, n);
    c->sid[n] = '\0';
    c->sid_len = (uint8_t)n;
    c->sid_src = src;
    return true;
}

uint64_t
affinity_session_key(const struct aff_carry *c)
{
    if (c->sid_len)
        return chash_hash(c->sid, c->sid_len);
    return c->cookie_state == AFF_COOKIE_VALID ? c->cookie_sess : 0;
}

/* ---- the chain ---- */

static bool
tried(const struct aff_input *in, const struct server *s)
{
    for (unsigned i = 0; i < in->ntried; i++)
        if (in->tried[i] == s)
            return true;
    return false;
}

/* A moved session's new home: weighted rendezvous hashing of the session key
 * over the servers that take new sessions. Every replica and every route
 * (cookie or session id) makes the same choice from the same view of health,
 * and it does not matter whether the dead pod is still in the plan: it is only
 * skipped, which moves nothing else. */
static struct server *
rehash_pick(const struct aff_input *in, uint64_t key, const struct server *avoid)
{
    struct lb_plan *p = atomic_load_explicit(&in->ups->plan, memory_order_seq_cst);
    struct server *best = NULL;
    double best_score = 0;
    if (!p || !key)
        return NULL;
    for (uint32_t r = 0; r < p->nregions; r++) {
        const struct plan_region *pr = &p->regions[r];
        for (uint32_t i = 0; i < pr->nservers; i++) {
            struct server *s = p->m->servers[pr->servers[i]];
            if (s == avoid || tried(in, s) || !server_usable_new(s, in->now_ms))
                continue;
            uint64_t hv = chash_hash(&(uint64_t[2]){key, s->hash_key}, 16);
            double unit = ((double)(hv >> 11) + 0.5) / 9007199254740992.0; /* (0,1) */
            double score = -(pr->share * (double)pr->weights[i]) / log(unit);
            if (!best || score > best_score) {
                best = s;
                best_score = score;
            }
        }
    }
    return best;
}

static bool
cookie_mode(unsigned mode)
{
    return mode == AFFINITY_COOKIE || mode == AFFINITY_SESSION;
}

struct server *
affinity_repick(const struct aff_input *in)
{
    const struct aff_carry *c = in->c;
    uint64_t key =
        in->outcome != AFF_OUT_NONE && in->outcome != AFF_OUT_NEW ? affinity_session_key(c) : 0;
    struct server *s = rehash_pick(in, key, NULL);
    if (s)
        return s;
    if (in->placed)
        return balance_pick_session(in->ups, in->worker, in->now_ms, c->bhash, c->has_bhash,
                                    (const struct server *const *)in->tried, in->ntried);
    return balance_pick(in->ups, in->worker, in->now_ms, c->bhash, c->has_bhash,
                        (const struct server *const *)in->tried, in->ntried);
}

/* 1. The affinity cookie names a server: picked when it is usable; a known
 * server that is not is the session's <moved> server. */
static bool
pick_cookie(const struct aff_input *in, struct aff_decision *d, struct server **moved)
{
    const struct aff_carry *c = in->c;
    struct server *s;
    if (c->cookie_state == AFF_COOKIE_VALID) {
        s = upstream_server_by_id(in->ups, c->cookie_srv);
        if (s && server_usable_pinned(s, in->now_ms)) {
            d->srv = s;
            d->outcome = AFF_OUT_COOKIE;
            /* Sliding expiry: re-issue once half the lifetime is gone. */
            if (c->cookie_exp < in->now_s + in->af->max_age_s / 2)
                d->set_cookie = true;
            d->pin = c->sid_len && c->learned_srv != s->cookie_id && in->learn;
            return true;
        }
        if (s)
            *moved = s;
        else
            d->note = AFF_NOTE_UNKNOWN;
    } else if (c->cookie_state == AFF_COOKIE_FORGED) {
        d->note = AFF_NOTE_INVALID;
    } else if (c->cookie_state == AFF_COOKIE_EXPIRED) {
        d->note = AFF_NOTE_EXPIRED;
    }
    return false;
}

/* 2. A session id learned from a response (here or on another replica);
 * 3. an unknown session id: consistent hash, the same on every replica. */
static bool
pick_session(const struct aff_input *in, struct aff_decision *d, struct server **moved)
{
    const struct aff_carry *c = in->c;
    struct upstream *u = in->ups;
    struct server *s;
    if (c->sid_len && c->learned_srv) {
        s = upstream_server_by_id(u, c->learned_srv);
        if (s && server_usable_pinned(s, in->now_ms)) {
            d->srv = s;
            d->outcome = c->sid_src;
            d->set_cookie = cookie_mode(in->mode) &&
                            !(c->cookie_state == AFF_COOKIE_VALID && c->cookie_srv == s->cookie_id);
            return true;
        }
        if (s && !*moved)
            *moved = s;
    }
    if (!c->sid_len || c->learned_srv || *moved)
        return false;
    s = balance_hash_lookup(u, chash_hash(c->sid, c->sid_len), in->now_ms);
    if (!s)
        return false;
    d->srv = s;
    d->outcome = AFF_OUT_HASH;
    d->set_cookie = cookie_mode(in->mode);
    /* Bounded load: a new key counts as a session and is pinned, so it stays
     * where it went when loads change. */
    if (u->conf->hash_balance_pct)
        d->place = d->hash_place = d->pin = true;
    return true;
}

/* 4. A moved session goes where every replica sends it; a new one to the
 * balancer (a new session only to a server with room: d->shed when none has
 * room but some could take other requests). NULL when none. */
static struct server *
pick_new(const struct aff_input *in, struct aff_decision *d, struct server *moved)
{
    const struct aff_carry *c = in->c;
    struct upstream *u = in->ups;
    struct server *s = moved ? rehash_pick(in, affinity_session_key(c), moved) : NULL;
    bool place = !moved && (cookie_mode(in->mode) || in->learn);
    if (!s && place) {
        s = balance_pick_session(u, in->worker, in->now_ms, c->bhash, c->has_bhash, NULL, 0);
        if (!s && balance_pick(u, in->worker, in->now_ms, c->bhash, c->has_bhash, NULL, 0)) {
            d->shed = true;
            return NULL;
        }
        d->place = s != NULL;
    } else if (!s) {
        const struct server *ex[1] = {moved};
        s = balance_pick(u, in->worker, in->now_ms, c->bhash, c->has_bhash,
                         moved ? (const struct server *const *)ex : NULL, moved ? 1 : 0);
    }
    return s;
}

void
affinity_decide(const struct aff_input *in, struct aff_decision *d)
{
    struct server *moved = NULL;
    memset(d, 0, sizeof(*d));
    if (pick_cookie(in, d, &moved) || pick_session(in, d, &moved))
        return;
    struct server *s = pick_new(in, d, moved);
    if (!s)
        return;
    d->srv = s;
    if (moved) {
        d->outcome = AFF_OUT_REDISPATCH;
        d->moved = moved;
        d->pin = true;
    } else {
        d->outcome = in->mode == AFFINITY_NONE ? AFF_OUT_NONE : AFF_OUT_NEW;
    }
    d->set_cookie = cookie_mode(in->mode) || in->learn;
}

void
affinity_redispatch(const struct aff_input *in, struct server *next, struct aff_decision *d)
{
    memset(d, 0, sizeof(*d));
    d->srv = next;
    d->outcome = in->outcome;
    d->set_cookie = in->set_cookie;
    if (in->outcome == AFF_OUT_NONE || in->outcome == AFF_OUT_NEW) {
        if (in->learn || cookie_mode(in->mode))
            d->set_cookie = true;
        return;
    }
    /* A pinned request moves: the pin follows it. */
    d->outcome = AFF_OUT_REDISPATCH;
    d->moved = in->cur;
    d->set_cookie = cookie_mode(in->mode);
    d->pin = true;
}
