/* SPDX-License-Identifier: MIT */
/* The exchange's affinity step: read what the request carries from its head,
 * ask the session store, let affinity decide (affinity.h) and apply the
 * decision (server reference, counters, placements, pins, the cookie);
 * learning session ids from responses into the store. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/gen.h>
#include <tether/lb.h>
#include <tether/redis.h>
#include <tether/request.h>
#include <tether/session_load.h>
#include <tether/session_store.h>
#include <tether/stats.h>
#include <tether/worker.h>

#include <stdlib.h>
#include <string.h>

#include "request_int.h"

/* Learning JSON looks at most this many body bytes. */
#define LEARN_JSON_MAX 4096

/* The session store as this exchange's worker sees it. */
static struct session_store
store_of(const struct request *req)
{
    const struct affinity *af = req->gen->aff;
    return (struct session_store){.table = af->table, .w = req->w, .ttl_ms = af->ttl_ms};
}

static void
count(struct request *req, enum gstat s)
{
    gstat_add(req->w->id, s, 1);
}

void
request_set_server(struct request *req, struct server *s)
{
    if (s)
        server_hold(s);
    server_release(req->srv);
    req->srv = s;
}

/* ---- reading the head ---- */

/* balance hash: the key is read now, while the head is still here. */
static void
balance_key(struct request *req, const char *base)
{
    const struct http_head *h = &req->h;
    const struct key_spec *ks = &req->ups->conf->hash_key;
    char key[256];
    size_t klen = 0;
    for (uint32_t i = 0; i < ks->nparts && klen < sizeof(key); i++) {
        const struct key_part *kp = &ks->parts[i];
        const char *v = NULL;
        size_t vl = 0;
        int idx;
        if (kp->kind == KEY_REMOTE_ADDR) {
            v = req->rip;
            vl = req->rip_len;
        } else if (kp->kind == KEY_HTTP_HEADER &&
                   (idx = http_head_find(h, base, kp->name, kp->len)) >= 0) {
            v = base + h->fields[idx].value_off;
            vl = h->fields[idx].value_len;
        } else if (kp->kind == KEY_COOKIE) {
            struct slice cv;
            if (http_head_cookie(h, base, kp->name, kp->len, &cv)) {
                v = cv.p;
                vl = cv.len;
            }
        } else if (kp->kind == KEY_LITERAL || kp->kind == KEY_ROUTE) {
            v = kp->kind == KEY_ROUTE ? req->route->conf->label : kp->name;
            vl = strlen(v);
        }
        vl = MIN(vl, sizeof(key) - klen);
        memcpy(key + klen, v ? v : "", vl);
        klen += vl;
    }
    req->ac.bhash = chash_hash(key, klen);
    req->ac.has_bhash = true;
}

/* The session id the request carries: the session header, the application's
 * session cookie, or (mode session) a path pattern, first found wins. */
static void
find_sid(struct request *req, const struct affinity *af, const char *base, unsigned mode)
{
    const struct http_head *h = &req->h;
    int idx = http_head_find(h, base, af->header, af->header_len);
    if (idx >= 0)
        affinity_carry_sid(&req->ac, base + h->fields[idx].value_off, h->fields[idx].value_len,
                           AFF_OUT_HEADER_LEARNED);
    struct slice sc;
    if (!req->ac.sid_len && af->session_cookie &&
        http_head_cookie(h, base, af->session_cookie, af->session_cookie_len, &sc))
        affinity_carry_sid(&req->ac, sc.p, sc.len, AFF_OUT_COOKIE_LEARNED);
    if (!req->ac.sid_len && mode == AFFINITY_SESSION) {
        for (uint32_t i = 0; i < af->npaths; i++) {
            struct slice id;
            if (path_pattern_match(&af->paths[i], base + h->path_off, h->path_len, &id) == 1) {
                affinity_carry_sid(&req->ac, id.p, id.len, AFF_OUT_PATH_LEARNED);
                break;
            }
        }
    }
}

int
request_affinity_prepare(struct request *req, const char *base, uint64_t now_ms)
{
    const struct affinity *af = req->gen->aff;
    unsigned mode = req->route->conf->affinity;
    struct slice v;

    if (req->ups->conf->balance == BALANCE_HASH)
        balance_key(req, base);
    if (mode == AFFINITY_NONE)
        return REQ_AFF_GO;
    if ((mode == AFFINITY_COOKIE || mode == AFFINITY_SESSION) &&
        http_head_cookie(&req->h, base, req->ups->cookie_name, req->ups->cookie_name_len, &v))
        affinity_carry_cookie(af, &req->ac, v.p, v.len, (uint32_t)(time_wall_ms() / 1000));
    find_sid(req, af, base, mode);
    if (!req->ac.sid_len)
        return REQ_AFF_GO;
    struct session_store st = store_of(req);
    if (session_store_lookup(&st, &req->rw, affinity_session_key(&req->ac), now_ms,
                             &req->ac.learned_srv) != SESSION_PENDING)
        return REQ_AFF_GO;
    req->aff_pending = true;
    return REQ_AFF_WAIT;
}

void
request_affinity_answer(struct request *req, const char *v, size_t n)
{
    req->aff_pending = false;
    if (!v)
        return;
    struct session_store st = store_of(req);
    uint64_t id = session_store_answer(&st, req->ups, affinity_session_key(&req->ac), req->ac.sid,
                                       req->ac.sid_len, v, n, worker_now_ms(req->w));
    if (id)
        req->ac.learned_srv = id;
}

void
request_affinity_done(struct request *req)
{
    /* Global-zone operations hang off the waiter too: a freed request must
     * leave none behind, or a late answer would reach a recycled request. */
    if (req->aff_pending || req->rw.ops) {
        session_store_cancel(&req->rw);
        req->aff_pending = false;
    }
}

/* ---- deciding and applying ---- */

/* The decision's input from the exchange. */
static void
aff_input_of(const struct request *req, uint64_t now_ms, struct aff_input *in)
{
    *in = (struct aff_input){
        .af = req->gen->aff,
        .ups = req->ups,
        .c = &req->ac,
        .tried = req->tried,
        .ntried = req->ntried,
        .cur = req->srv,
        .mode = req->route->conf->affinity,
        .learn = req->route->conf->learn,
        .outcome = req->aff,
        .placed = req->placed,
        .set_cookie = req->set_cookie,
        .worker = req->w->id,
        .now_ms = now_ms,
        /* The wall clock only matters for a valid cookie's sliding expiry. */
        .now_s = req->ac.cookie_state == AFF_COOKIE_VALID ? (uint32_t)(time_wall_ms() / 1000) : 0,
    };
}

/* Pin the request's session (by its key, so a cookie that carries only the key
 * re-pins it too) to <s>, locally and in Redis. */
static void
pin(struct request *req, const struct server *s)
{
    struct session_store st = store_of(req);
    session_store_pin(&st, affinity_session_key(&req->ac), req->ac.sid, req->ac.sid_len, s,
                      worker_now_ms(req->w));
}

static const uint16_t outcome_stat[] = {
    [AFF_OUT_NONE] = GS_AFF_NEW,
    [AFF_OUT_COOKIE] = GS_AFF_COOKIE,
    [AFF_OUT_HEADER_LEARNED] = GS_AFF_HEADER,
    [AFF_OUT_PATH_LEARNED] = GS_AFF_LEARNED,
    [AFF_OUT_COOKIE_LEARNED] = GS_AFF_LEARNED,
    [AFF_OUT_HASH] = GS_AFF_HASH,
    [AFF_OUT_NEW] = GS_AFF_NEW,
    [AFF_OUT_REDISPATCH] = GS_AFF_REDISPATCH,
};

static const uint16_t note_stat[] = {
    [AFF_NOTE_UNKNOWN] = GS_AFF_COOKIE_UNKNOWN,
    [AFF_NOTE_INVALID] = GS_AFF_COOKIE_INVALID,
    [AFF_NOTE_EXPIRED] = GS_AFF_COOKIE_EXPIRED,
};

bool
request_affinity_pick(struct request *req, uint64_t now_ms)
{
    struct aff_input in;
    struct aff_decision d;
    aff_input_of(req, now_ms, &in);
    affinity_decide(&in, &d);
    if (d.note)
        count(req, note_stat[d.note]);
    if (!d.srv) {
        req->shed = d.shed;
        return false;
    }
    request_set_server(req, d.srv);
    req->aff = d.outcome;
    count(req, outcome_stat[d.outcome]);
    if (d.moved)
        CTR_ADD(d.moved->rt->t[req->w->id].redispatches, 1);
    if (d.place) {
        session_placed(d.srv, 1);
        req->placed = true;
    }
    if (d.hash_place)
        atomic_fetch_add(&req->ups->hash_placed, 1);
    if (d.pin)
        pin(req, d.srv);
    req->set_cookie = d.set_cookie;
    return true;
}

struct server *
request_affinity_repick(struct request *req, uint64_t now_ms)
{
    struct aff_input in;
    aff_input_of(req, now_ms, &in);
    return affinity_repick(&in);
}

void
request_affinity_move(struct request *req, struct server *next)
{
    struct aff_input in;
    struct aff_decision d;
    aff_input_of(req, worker_now_ms(req->w), &in);
    affinity_redispatch(&in, next, &d);
    if (req->placed && req->srv && next != req->srv) {
        session_placed(req->srv, -1); /* the new session moves with the request */
        session_placed(next, 1);
    }
    req->aff = d.outcome;
    req->set_cookie = d.set_cookie;
    if (d.outcome == AFF_OUT_REDISPATCH) {
        count(req, GS_AFF_REDISPATCH);
        if (d.moved)
            CTR_ADD(d.moved->rt->t[req->w->id].redispatches, 1);
    }
    if (d.pin)
        pin(req, next);
    request_set_server(req, next);
}

/* ---- placements and learning ---- */

void
request_affinity_settle(struct request *req)
{
    if (!req->placed || req->settled || !req->srv)
        return;
    req->settled = true;
    session_settled(req->srv);
    /* Other replicas learn of it only now, for the same reason: what they
     * read from Redis before sending a check is taken as in its report. */
    redis_load_placed(req->w, req->srv, 1);
}

/* A session id learned from a response: pinned locally at once; with Redis the
 * response waits (at most the Redis timeout) until the pin is stored, so the
 * client cannot reach another replica before it can know the session. */
static void
learn_id(struct request *req, const char *p, size_t n)
{
    if (!req->srv ||
        !affinity_carry_sid(&req->ac, p, n,
                            req->ac.sid_src ? req->ac.sid_src : AFF_OUT_HEADER_LEARNED))
        return;
    struct session_store st = store_of(req);
    if (session_store_learn(&st, &req->rw, affinity_session_key(&req->ac), req->ac.sid,
                            req->ac.sid_len, req->srv, worker_now_ms(req->w)))
        req->store_pending = true;
    count(req, GS_LEARNED);
}

/* The first Set-Cookie pair named <name>, as the learned id. */
static bool
learn_set_cookie(struct request *req, const char *buf, const struct affinity *af)
{
    const struct http_head *h = &req->h;
    for (unsigned i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        struct slice v;
        if (f->id != HTTP_H_SET_COOKIE)
            continue;
        /* Only the first pair is the cookie; the rest are its attributes. */
        const char *sv = buf + f->value_off, *semi = memchr(sv, ';', f->value_len);
        size_t first = semi ? (size_t)(semi - sv) : f->value_len;
        if (http_cookie_get(sv, first, af->learn_cookie, af->learn_cookie_len, &v)) {
            learn_id(req, v.p, v.len);
            return true;
        }
    }
    return false;
}

static void
on_response_learn(struct request *req, const char *buf)
{
    const struct affinity *af = req->gen->aff;
    const struct http_head *h = &req->h;
    if (!req->route->conf->learn || h->status < 200 || h->status >= 300)
        return;
    if (af->learn_header) {
        int idx = http_head_find(h, buf, af->learn_header, af->learn_header_len);
        if (idx >= 0) {
            learn_id(req, buf + h->fields[idx].value_off, h->fields[idx].value_len);
            return;
        }
    }
    if (af->learn_cookie && learn_set_cookie(req, buf, af))
        return;
    if (af->learn_json)
        req->learn = true;
}

void
request_affinity_response(struct request *req, const char *buf)
{
    /* A new session the pod refused (5xx) was not created: take it back. */
    if (req->placed && req->srv && req->h.status >= 500) {
        session_placed(req->srv, -1);
        req->placed = false;
    }
    on_response_learn(req, buf);
    /* After learning: a settled session is in the table for the own count (an
     * id still to learn from the body settles when the request ends). A 101
     * (a tunnel) is an answer too: the request lives as long as it. */
    if ((req->h.status >= 200 || req->h.status == 101) && !req->learn)
        request_affinity_settle(req);
}

bool
request_affinity_learn_body(struct request *req, const char *p, size_t n)
{
    const struct affinity *af = req->gen->aff;
    struct slice val;
    if (!req->learn_buf && !(req->learn_buf = malloc(LEARN_JSON_MAX)))
        return true;
    size_t room = LEARN_JSON_MAX - req->learn_len;
    size_t take = n < room ? n : room;
    memcpy(req->learn_buf + req->learn_len, p, take);
    req->learn_len += (uint32_t)take;
    int rc =
        learn_json_field(req->learn_buf, req->learn_len, af->learn_json, af->learn_json_len, &val);
    if (rc == 1) {
        learn_id(req, val.p, val.len);
        return true;
    }
    return rc < 0 || req->learn_len >= LEARN_JSON_MAX;
}
