/* SPDX-License-Identifier: MIT */
/* The affinity chain (cookie -> session id -> learned table -> consistent hash
 * -> balancer), redispatch, learning session ids from responses, the cookie. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/gen.h>
#include <tether/lb.h>
#include <tether/log.h>
#include <tether/redis.h>
#include <tether/proxy-types.h>
#include <tether/session_load.h>
#include <tether/stats.h>
#include <tether/worker.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Learning JSON looks at most this many body bytes. */
#define LEARN_JSON_MAX 4096

static pthread_mutex_t aff_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session_table *table;
static size_t table_size;
static struct cookie_key random_key;
static bool random_key_set;

struct session_table *
affinity_table(void)
{
    return table;
}

void
affinity_shutdown(void)
{
    session_table_free(table);
    table = NULL;
}

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
    pthread_mutex_lock(&aff_lock);
    if (!table) {
        table_size = ca->table_size;
        table = session_table_new(table_size, 64);
    } else if (ca->table_size != table_size) {
        log_warn("affinity table_size change (%zu -> %llu) takes effect after a restart",
                 table_size, (unsigned long long)ca->table_size);
    }
    pthread_mutex_unlock(&aff_lock);
    if (!table)
        return (void)err_set(e, "out of memory for the affinity table"), NULL;
    af->table = table;
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

/* ---- reading the request ---- */

static void
read_cookie(struct request *req, const struct affinity *af, const char *base, uint32_t now_s)
{
    struct slice v;
    if (!http1_request_cookie(&req->h, base, req->ups->cookie_name, req->ups->cookie_name_len, &v))
        return;
    int rc = cookie_decode(v.p, v.len, &af->key, now_s, &req->cookie_srv, &req->cookie_sess,
                           &req->cookie_exp);
    req->cookie_state = rc == COOKIE_OK ? 1 : rc == COOKIE_ERR_EXPIRED ? 3 : 2;
}

static void
set_sid(struct request *req, const char *p, size_t n, uint8_t src)
{
    /* Callers pass ids that passed session_id_valid (<= SESSION_ID_MAX). */
    n = copy_bounded(req->sid, sizeof(req->sid) - 1, p, n);
    req->sid[n] = '\0';
    req->sid_len = (uint8_t)n;
    req->sid_src = src;
}

/* balance hash: the key is read now, while the head is still here. */
static void
balance_key(struct request *req, const char *base)
{
    const struct http1_head *h = &req->h;
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
                   (idx = http1_find(h, base, kp->name, kp->len)) >= 0) {
            v = base + h->fields[idx].value_off;
            vl = h->fields[idx].value_len;
        } else if (kp->kind == KEY_COOKIE) {
            struct slice cv;
            if (http1_request_cookie(h, base, kp->name, kp->len, &cv)) {
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
    req->bhash = chash_hash(key, klen);
    req->has_bhash = true;
}

/* The session id the request carries: the session header, the application's
 * session cookie, or (mode session) a path pattern, first found wins. */
static void
find_sid(struct request *req, const struct affinity *af, const char *base, unsigned mode)
{
    const struct http1_head *h = &req->h;
    int idx = http1_find(h, base, af->header, af->header_len);
    if (idx >= 0) {
        const char *v = base + h->fields[idx].value_off;
        size_t vl = h->fields[idx].value_len;
        if (session_id_valid(v, vl))
            set_sid(req, v, vl, AFF_OUT_HEADER_LEARNED);
    }
    struct slice sc;
    if (!req->sid_len && af->session_cookie &&
        http1_request_cookie(h, base, af->session_cookie, af->session_cookie_len, &sc) &&
        session_id_valid(sc.p, sc.len))
        set_sid(req, sc.p, sc.len, AFF_OUT_COOKIE_LEARNED);
    if (!req->sid_len && mode == AFFINITY_SESSION) {
        for (uint32_t i = 0; i < af->npaths; i++) {
            struct slice id;
            if (path_pattern_match(&af->paths[i], base + h->path_off, h->path_len, &id) == 1) {
                set_sid(req, id.p, id.len, AFF_OUT_PATH_LEARNED);
                break;
            }
        }
    }
}

int
affinity_prepare(struct request *req, const char *base, uint64_t now_ms)
{
    const struct affinity *af = req->gen->aff;
    unsigned mode = req->route->conf->affinity;

    if (req->ups->conf->balance == BALANCE_HASH)
        balance_key(req, base);
    if (mode == AFFINITY_NONE)
        return AFF_NONE;
    if (mode == AFFINITY_COOKIE || mode == AFFINITY_SESSION)
        read_cookie(req, af, base, (uint32_t)(time_wall_ms() / 1000));
    find_sid(req, af, base, mode);
    if (!req->sid_len)
        return AFF_NONE;
    uint64_t prev = 0;
    if (session_table_lookup(af->table, chash_hash(req->sid, req->sid_len), now_ms, af->ttl_ms,
                             &req->learned_srv, &prev)) {
        /* Slide the Redis copy's expiry too, at most every quarter TTL. */
        if (prev < now_ms + af->ttl_ms - af->ttl_ms / 4)
            redis_session_touch(req->w, affinity_session_key(req), af->ttl_ms);
        return AFF_NONE;
    }
    /* Local miss: another replica may have learned it. */
    if (redis_session_lookup(req->w, &req->rw, affinity_session_key(req)) == 0) {
        req->aff_pending = true;
        return AFF_WAIT;
    }
    return AFF_NONE;
}

bool
affinity_pending(const struct request *req)
{
    return req->aff_pending;
}

/* ---- the chain ---- */

uint64_t
affinity_session_key(const struct request *req)
{
    if (req->sid_len)
        return chash_hash(req->sid, req->sid_len);
    return req->cookie_state == 1 ? req->cookie_sess : 0;
}

static bool
tried(const struct request *req, const struct server *s)
{
    for (unsigned i = 0; i < req->ntried; i++)
        if (req->tried[i] == s)
            return true;
    return false;
}

/* A moved session's new home: weighted rendezvous hashing of the session key
 * over the servers that take new sessions. Every replica and every route
 * (cookie or session id) makes the same choice from the same view of health,
 * and it does not matter whether the dead pod is still in the plan: it is only
 * skipped, which moves nothing else. */
static struct server *
rehash_pick(struct request *req, uint64_t key, const struct server *avoid, uint64_t now_ms)
{
    struct upstream *u = req->ups;
    struct lb_plan *p = atomic_load_explicit(&u->plan, memory_order_seq_cst);
    struct server *best = NULL;
    double best_score = 0;
    if (!p || !key)
        return NULL;
    for (uint32_t r = 0; r < p->nregions; r++) {
        const struct plan_region *pr = &p->regions[r];
        for (uint32_t i = 0; i < pr->nservers; i++) {
            struct server *s = p->m->servers[pr->servers[i]];
            if (s == avoid || tried(req, s) || !server_usable_new(s, now_ms))
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

/* Does this request create a session (a new cookie or a learned id)? */
static bool
creates_session(const struct request *req)
{
    unsigned mode = req->route->conf->affinity;
    return mode == AFFINITY_COOKIE || mode == AFFINITY_SESSION || req->route->conf->learn;
}

struct server *
affinity_repick(struct request *req, uint64_t now_ms)
{
    uint64_t key =
        req->aff != AFF_OUT_NONE && req->aff != AFF_OUT_NEW ? affinity_session_key(req) : 0;
    struct server *s = rehash_pick(req, key, NULL, now_ms);
    if (s)
        return s;
    if (req->placed)
        return balance_pick_session(req->ups, req->w->id, now_ms, req->bhash, req->has_bhash,
                                    (const struct server *const *)req->tried, req->ntried);
    return balance_pick(req->ups, req->w->id, now_ms, req->bhash, req->has_bhash,
                        (const struct server *const *)req->tried, req->ntried);
}

static void
count(struct request *req, enum gstat s)
{
    gstat_add(req->w->id, s, 1);
}

void
affinity_set_server(struct request *req, struct server *s)
{
    if (s)
        server_hold(s);
    server_release(req->srv);
    req->srv = s;
}

/* The value a learned session has in Redis: "upstream/server SID" into
 * <out> (<cap> bytes); its length, 0 when it does not fit. */
static size_t
session_value(const struct request *req, const struct server *s, char *out, size_t cap)
{
    int vl = snprintf(out, cap, "%s%s%.*s", s->rt->key, req->sid_len ? " " : "", (int)req->sid_len,
                      req->sid);
    return vl > 0 && (size_t)vl < cap ? (size_t)vl : 0;
}

void
affinity_session_answer(struct request *req, const char *v, size_t n)
{
    req->aff_pending = false;
    if (!v)
        return;
    /* "upstream/server" then, after a space, the session id (for operators). It
     * is learned when it names a server of the request's upstream (another
     * upstream, or a server since removed: ignored). */
    const char *sp = memchr(v, ' ', n);
    if (sp)
        n = (size_t)(sp - v);
    const char *slash = memchr(v, '/', n);
    const char *uname = req->ups->conf->name;
    char sname[256];
    if (!slash || (size_t)(slash - v) != strlen(uname) || memcmp(v, uname, strlen(uname)) != 0)
        return;
    size_t sl = n - (size_t)(slash + 1 - v);
    if (sl == 0 || sl >= sizeof(sname))
        return;
    memcpy(sname, slash + 1, sl);
    sname[sl] = '\0';
    const struct server *s = upstream_server_by_name(req->ups, sname);
    if (!s)
        return;
    const struct affinity *af = req->gen->aff;
    uint64_t now_ms = worker_now_ms(req->w);
    req->learned_srv = s->cookie_id;
    /* The next request for this session hits locally. */
    session_table_insert(af->table, affinity_session_key(req), req->sid, req->sid_len, s->cookie_id,
                         now_ms + af->ttl_ms);
}

/* Pin the request's session (by its key, so a cookie that carries only the key
 * re-pins it too) to <s>, locally and in Redis. */
static void
pin(struct request *req, const struct server *s)
{
    const struct affinity *af = req->gen->aff;
    uint64_t key = affinity_session_key(req);
    uint64_t now_ms = worker_now_ms(req->w);
    if (!key)
        return;
    session_table_insert(af->table, key, req->sid_len ? req->sid : NULL, req->sid_len, s->cookie_id,
                         now_ms + af->ttl_ms);
    char val[512];
    size_t n = session_value(req, s, val, sizeof(val));
    redis_session_store(req->w, key, val, n, af->ttl_ms);
}

/* 1. The affinity cookie names a server: picked when it is usable; a known
 * server that is not is the session's <moved> server. */
static bool
pick_cookie(struct request *req, uint64_t now_ms, struct server **moved)
{
    struct server *s;
    if (req->cookie_state == 1) {
        s = upstream_server_by_id(req->ups, req->cookie_srv);
        if (s && server_usable_pinned(s, now_ms)) {
            affinity_set_server(req, s);
            req->aff = AFF_OUT_COOKIE;
            count(req, GS_AFF_COOKIE);
            /* Sliding expiry: re-issue once half the lifetime is gone. */
            uint32_t now_s = (uint32_t)(time_wall_ms() / 1000);
            if (req->cookie_exp < now_s + req->gen->aff->max_age_s / 2)
                req->set_cookie = true;
            if (req->sid_len && req->learned_srv != s->cookie_id && req->route->conf->learn)
                pin(req, s);
            return true;
        }
        if (s)
            *moved = s;
        else
            count(req, GS_AFF_COOKIE_UNKNOWN);
    } else if (req->cookie_state == 2) {
        count(req, GS_AFF_COOKIE_INVALID);
    } else if (req->cookie_state == 3) {
        count(req, GS_AFF_COOKIE_EXPIRED);
    }
    return false;
}

/* 2. A session id learned from a response (here or on another replica);
 * 3. an unknown session id: consistent hash, the same on every replica. */
static bool
pick_session(struct request *req, uint64_t now_ms, bool cookie_mode, struct server **moved)
{
    struct upstream *u = req->ups;
    struct server *s;
    if (req->sid_len && req->learned_srv) {
        s = upstream_server_by_id(u, req->learned_srv);
        if (s && server_usable_pinned(s, now_ms)) {
            affinity_set_server(req, s);
            req->aff = req->sid_src;
            count(req, req->sid_src == AFF_OUT_HEADER_LEARNED ? GS_AFF_HEADER : GS_AFF_LEARNED);
            req->set_cookie =
                cookie_mode && !(req->cookie_state == 1 && req->cookie_srv == s->cookie_id);
            return true;
        }
        if (s && !*moved)
            *moved = s;
    }
    if (!req->sid_len || req->learned_srv || *moved)
        return false;
    s = balance_hash_lookup(u, chash_hash(req->sid, req->sid_len), now_ms);
    if (!s)
        return false;
    affinity_set_server(req, s);
    req->aff = AFF_OUT_HASH;
    count(req, GS_AFF_HASH);
    req->set_cookie = cookie_mode;
    if (u->conf->hash_balance_pct) {
        /* Bounded load: a new key counts as a session and is pinned, so it
         * stays where it went when loads change. */
        session_placed(s, 1);
        atomic_fetch_add(&u->hash_placed, 1);
        req->placed = true;
        pin(req, s);
    }
    return true;
}

/* 4. A moved session goes where every replica sends it; a new one to the
 * balancer (a new session only to a server with room: req->shed when none
 * has room but some could take other requests). NULL when none. */
static struct server *
pick_new(struct request *req, uint64_t now_ms, struct server *moved)
{
    struct upstream *u = req->ups;
    struct server *s = moved ? rehash_pick(req, affinity_session_key(req), moved, now_ms) : NULL;
    bool place = !moved && creates_session(req);
    if (!s && place) {
        s = balance_pick_session(u, req->w->id, now_ms, req->bhash, req->has_bhash, NULL, 0);
        if (!s && balance_pick(u, req->w->id, now_ms, req->bhash, req->has_bhash, NULL, 0)) {
            req->shed = true;
            return NULL;
        }
        if (s) {
            session_placed(s, 1);
            req->placed = true;
        }
    } else if (!s) {
        const struct server *ex[1] = {moved};
        s = balance_pick(u, req->w->id, now_ms, req->bhash, req->has_bhash,
                         moved ? (const struct server *const *)ex : NULL, moved ? 1 : 0);
    }
    return s;
}

int
affinity_pick(struct request *req, uint64_t now_ms)
{
    const struct route *rt = req->route;
    unsigned mode = rt->conf->affinity;
    bool cookie_mode = mode == AFFINITY_COOKIE || mode == AFFINITY_SESSION;
    struct server *moved = NULL;

    if (pick_cookie(req, now_ms, &moved) || pick_session(req, now_ms, cookie_mode, &moved))
        return AFF_PICKED;
    struct server *s = pick_new(req, now_ms, moved);
    if (!s)
        return AFF_NONE;
    affinity_set_server(req, s);
    if (moved) {
        req->aff = AFF_OUT_REDISPATCH;
        count(req, GS_AFF_REDISPATCH);
        CTR_ADD(moved->rt->t[req->w->id].redispatches, 1);
        pin(req, s);
    } else {
        req->aff = mode == AFFINITY_NONE ? AFF_OUT_NONE : AFF_OUT_NEW;
        count(req, GS_AFF_NEW);
    }
    req->set_cookie = cookie_mode || rt->conf->learn;
    return AFF_PICKED;
}

void
affinity_redispatch(struct request *req, struct server *next)
{
    unsigned mode = req->route->conf->affinity;
    if (req->placed && req->srv && next != req->srv) {
        session_placed(req->srv, -1); /* the new session moves with the request */
        session_placed(next, 1);
    }
    if (req->aff == AFF_OUT_NONE || req->aff == AFF_OUT_NEW) {
        if (req->route->conf->learn || mode == AFFINITY_COOKIE || mode == AFFINITY_SESSION)
            req->set_cookie = true;
        return;
    }
    /* A pinned request moves: the pin follows it. */
    req->aff = AFF_OUT_REDISPATCH;
    count(req, GS_AFF_REDISPATCH);
    if (req->srv)
        CTR_ADD(req->srv->rt->t[req->w->id].redispatches, 1);
    req->set_cookie = mode == AFFINITY_COOKIE || mode == AFFINITY_SESSION;
    pin(req, next);
}

void
affinity_request_done(struct request *req)
{
    /* Global-zone operations hang off redis_op too: a freed request must
     * leave none behind, or a late answer would reach a recycled request. */
    if (req->aff_pending || req->rw.ops) {
        redis_waiter_cancel(&req->rw);
        req->aff_pending = false;
    }
}

/* ---- learning ---- */

/* A session id learned from a response: pinned locally at once; with Redis the
 * response waits (at most the Redis timeout) until the pin is stored, so the
 * client cannot reach another replica before it can know the session. */
static void
learn_id(struct request *req, const char *p, size_t n)
{
    const struct affinity *af = req->gen->aff;
    if (!session_id_valid(p, n) || !req->srv)
        return;
    set_sid(req, p, n, req->sid_src ? req->sid_src : AFF_OUT_HEADER_LEARNED);
    session_table_insert(af->table, affinity_session_key(req), req->sid, req->sid_len,
                         req->srv->cookie_id, worker_now_ms(req->w) + af->ttl_ms);
    char val[512];
    size_t vn = session_value(req, req->srv, val, sizeof(val));
    if (redis_session_store_ack(req->w, &req->rw, affinity_session_key(req), val, vn, af->ttl_ms) ==
        0)
        req->store_pending = true;
    count(req, GS_LEARNED);
}

void
affinity_placement_settle(struct request *req)
{
    if (!req->placed || req->settled || !req->srv)
        return;
    req->settled = true;
    session_settled(req->srv);
    /* Other replicas learn of it only now, for the same reason: what they
     * read from Redis before sending a check is taken as in its report. */
    redis_load_placed(req->w, req->srv, 1);
}

static void on_response_learn(struct request *req, const char *buf);

void
affinity_on_response(struct request *req, const char *buf)
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
        affinity_placement_settle(req);
}

static void
on_response_learn(struct request *req, const char *buf)
{
    const struct affinity *af = req->gen->aff;
    const struct http1_head *h = &req->h;
    if (!req->route->conf->learn || h->status < 200 || h->status >= 300)
        return;
    if (af->learn_header) {
        int idx = http1_find(h, buf, af->learn_header, af->learn_header_len);
        if (idx >= 0) {
            learn_id(req, buf + h->fields[idx].value_off, h->fields[idx].value_len);
            return;
        }
    }
    if (af->learn_cookie) {
        for (unsigned i = 0; i < h->nfields; i++) {
            const struct http1_field *f = &h->fields[i];
            struct slice v;
            if (f->id != HTTP1_H_SET_COOKIE)
                continue;
            /* Only the first pair is the cookie; the rest are its attributes. */
            const char *sv = buf + f->value_off, *semi = memchr(sv, ';', f->value_len);
            size_t first = semi ? (size_t)(semi - sv) : f->value_len;
            if (http1_cookie_get(sv, first, af->learn_cookie, af->learn_cookie_len, &v)) {
                learn_id(req, v.p, v.len);
                return;
            }
        }
    }
    if (af->learn_json)
        req->learn = true;
}

bool
affinity_learn_body(struct request *req, const char *p, size_t n)
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
