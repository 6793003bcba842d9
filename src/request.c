/* SPDX-License-Identifier: MIT */
/* One request's life from a parsed head to the access log line; see the
 * diagram in request.h. Retries and failure replies are here too. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/forward.h>
#include <tether/gen.h>
#include <tether/http_rewrite.h>
#include <tether/log.h>
#include <tether/outlier.h>
#include <tether/path_norm.h>
#include <tether/ratelimit.h>
#include <tether/redis.h>
#include <tether/request.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/upstream_conn.h>
#include <tether/worker.h>

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request_int.h"

static void hold_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* ---- the state machine's one door ---- */

#define RS_BIT(s) (1u << (s))
#ifndef NDEBUG
/* Legal next states of each state. */
static const uint8_t request_next[] = {
    [RS_HEAD] = RS_BIT(RS_HOLD) | RS_BIT(RS_CONNECT) | RS_BIT(RS_DONE),
    [RS_HOLD] = RS_BIT(RS_HOLD) | RS_BIT(RS_CONNECT) | RS_BIT(RS_DONE),
    [RS_CONNECT] = RS_BIT(RS_CONNECT) | RS_BIT(RS_SEND) | RS_BIT(RS_DONE),
    [RS_SEND] = RS_BIT(RS_CONNECT) | RS_BIT(RS_WAIT_RESP) | RS_BIT(RS_RESP) | RS_BIT(RS_DONE),
    [RS_WAIT_RESP] = RS_BIT(RS_CONNECT) | RS_BIT(RS_RESP) | RS_BIT(RS_DONE),
    [RS_RESP] = RS_BIT(RS_DONE),
    [RS_DONE] = 0,
};
#endif
static const char *const request_state_names[] = {"HEAD",      "HOLD", "CONNECT", "SEND",
                                                  "WAIT_RESP", "RESP", "DONE"};

void
request_set_state(struct request *req, enum request_state to)
{
    assert(req->state < ARRAY_SIZE(request_next) && (request_next[req->state] & RS_BIT(to)));
    log_debug("exchange %p: %s -> %s", (void *)req, request_state_names[req->state],
              request_state_names[to]);
    req->state = (uint8_t)to;
}

/* ---- what lower layers report ---- */

static void
up_connected_cb(void *owner)
{
    request_up_connected(owner);
}

static void
up_failed_cb(void *owner, unsigned term, int err)
{
    request_up_failed(owner, term, err);
}

static void
up_readable_cb(void *owner)
{
    request_up_readable(owner);
}

static void
up_writable_cb(void *owner)
{
    request_up_writable(owner);
}

static void
up_timeout_cb(void *owner)
{
    request_up_timeout(owner);
}

/* A learned-session lookup answered (or timed out). */
static void
redis_session_cb(void *owner, const char *val, size_t n)
{
    struct request *req = owner;
    request_affinity_answer(req, val, n);
    request_resume(req);
}

/* The learned session the response waits for is in Redis (or timed out). */
static void
redis_stored_cb(void *owner)
{
    struct request *req = owner;
    req->store_pending = false;
    exchange_writable(req);
}

static void
redis_zone_cb(void *owner, struct rl_zone *z, const struct rl_decision *d)
{
    request_zone_answer(owner, z, d);
}

/* The exchange's callbacks for its Redis operations (redis.h). */
static const struct redis_waiter_cbs request_redis_cbs = {
    .session = redis_session_cb,
    .stored = redis_stored_cb,
    .zone = redis_zone_cb,
};

/* The exchange's callbacks for its upstream connection (upstream_conn.h). */
static const struct upconn_cbs request_upconn_cbs = {
    .connected = up_connected_cb,
    .failed = up_failed_cb,
    .readable = up_readable_cb,
    .writable = up_writable_cb,
    .timeout = up_timeout_cb,
};

/* ---- allocation ---- */

struct request *
exchange_new(struct worker *w, const struct downstream *ds, const struct exchange_origin *o)
{
    struct request *req = w->free_requests;
    if (req)
        w->free_requests = req->next_free;
    else if (!(req = malloc(sizeof(*req))))
        return NULL;
    /* Everything before the head is reset; the head resets itself. */
    memset(req, 0, offsetof(struct request, h));
    req->ds = *ds;
    req->w = w;
    req->gen = o->gen;
    req->vs = o->vs;
    req->peer = o->peer;
    req->cli_tls = o->tls;
    req->proto = o->proto;
    req->t_start = ev_now(w->loop);
    req->rip_len = o->ip_len;
    memcpy(req->rip, o->ip, o->ip_len);
    req->rw.cb = &request_redis_cbs;
    req->rw.owner = req;
    ev_init(&req->hold, hold_cb);
    http_head_init(&req->h);
    return req;
}

void
exchange_free(struct request *req)
{
    struct worker *w = req->w;
    if (req->up)
        upconn_release(req->up, false);
    req->up = NULL;
    if (req->counted_active && req->srv)
        atomic_fetch_sub_explicit(&req->srv->rt->active, 1, memory_order_relaxed);
    req->counted_active = false;
    retry_budget_release(req);
    ev_timer_stop(w->loop, &req->hold);
    buf_put(&w->bufs, req->uhead);
    buf_put(&w->bufs, req->chead);
    req->uhead = req->chead = NULL;
    free(req->learn_buf);
    req->learn_buf = NULL;
    request_affinity_settle(req);
    request_affinity_done(req);
    request_set_server(req, NULL);
    req->next_free = w->free_requests;
    w->free_requests = req;
}

/* ---- start ---- */

static bool
trusted_proxy(const struct conf_vserver *cv, const struct sock_addr *a)
{
    for (uint32_t i = 0; i < cv->nreal_ip_from; i++)
        if (sock_cidr_match(&cv->real_ip_from[i], a))
            return true;
    return false;
}

/* One address of an X-Forwarded-For list ("1.2.3.4", "[::1]", "::1"). */
static bool
parse_ip_token(const char *p, size_t n, struct sock_addr *a)
{
    char tmp[64];
    if (n >= 2 && p[0] == '[') {
        const char *end = memchr(p, ']', n);
        if (!end)
            return false;
        n = (size_t)(end - p) - 1;
        p++;
    }
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, tmp, &a->u.in.sin_addr) == 1) {
        a->u.in.sin_family = AF_INET;
        a->len = sizeof(a->u.in);
        return true;
    }
    if (inet_pton(AF_INET6, tmp, &a->u.in6.sin6_addr) == 1) {
        a->u.in6.sin6_family = AF_INET6;
        a->len = sizeof(a->u.in6);
        return true;
    }
    return false;
}

/* real_ip_from: when the peer is a trusted proxy, the client is the right-most
 * address of real_ip_header that is not itself trusted (nginx's recursive mode). */
static void
request_real_ip(struct request *req, const char *base)
{
    const struct conf_vserver *cv = req->vs->conf;
    const struct http_head *h = &req->h;
    if (!cv->nreal_ip_from || !trusted_proxy(cv, req->peer))
        return;
    size_t nlen = strlen(cv->real_ip_header);
    for (int i = (int)h->nfields - 1; i >= 0; i--) {
        const struct http_field *f = &h->fields[i];
        if (f->name_len != nlen || !mem_ieq(base + f->name_off, cv->real_ip_header, nlen))
            continue;
        const char *v = base + f->value_off;
        size_t end = f->value_len;
        while (end > 0) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            size_t a = start, b = end;
            while (a < b && (v[a] == ' ' || v[a] == '\t'))
                a++;
            while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                b--;
            struct sock_addr addr;
            if (!parse_ip_token(v + a, b - a, &addr))
                return; /* garbage: keep what we trust so far */
            req->rip_len = (uint8_t)sock_addr_ip(&addr, req->rip, sizeof(req->rip));
            if (!trusted_proxy(cv, &addr))
                return;
            end = start ? start - 1 : 0;
        }
    }
}

_Static_assert(REQUEST_ID_MAX >= 32, "tether's own request ids are 32 hex digits");

static void
request_gen_id(struct request *req)
{
    static const char hex[] = "0123456789abcdef";
    struct worker *w = req->w;
    uint64_t a = rng_next(&w->rng), b = rng_next(&w->rng);
    for (int i = 0; i < 16; i++) {
        req->req_id[i] = hex[(a >> (i * 4)) & 15];
        req->req_id[16 + i] = hex[(b >> (i * 4)) & 15];
    }
    req->req_id_len = 32;
}

/* The steps of exchange_start(). A step that answers the client returns
 * false: the exchange is gone then (the downstream freed it), and the caller
 * returns at once without touching it. */

/* Note what the head says: method, keep-alive, client address, path for the
 * log, request id, body framing. Answers nothing. */
static void
start_note(struct request *req, const char *base, uint32_t head_len, const struct buf *ib)
{
    const struct http_head *h = &req->h;
    req->method = h->method;
    req->version_minor = h->version_minor;
    req->bytes_in = head_len;
    if (h->version_minor == 0)
        req->keepalive = (h->flags & HTTP_F_CONN_KEEPALIVE) && !(h->flags & HTTP_F_CONN_CLOSE);
    else
        req->keepalive = !(h->flags & HTTP_F_CONN_CLOSE);

    request_real_ip(req, base);
    if (atomic_load_explicit(&access_log_fd, memory_order_relaxed) >= 0) {
        size_t n = h->path_len < sizeof(req->path) ? h->path_len : sizeof(req->path);
        memcpy(req->path, base + h->path_off, n);
        req->path_len = (uint16_t)n;
    }
    int idx = http_head_find(h, base, "X-Request-Id", 12);
    if (idx >= 0 && request_id_valid(base + h->fields[idx].value_off, h->fields[idx].value_len)) {
        req->req_id_len =
            (uint8_t)copy_bounded(req->req_id, sizeof(req->req_id), base + h->fields[idx].value_off,
                                  h->fields[idx].value_len);
    } else {
        request_gen_id(req);
    }

    req->req_body = (uint8_t)http1_request_body(h);
    req->body_start = req->body_off = req->body_end = ib->start + head_len;
    if (req->req_body == HTTP1_BODY_NONE)
        req->req_body_done = true;
    else if (req->req_body == HTTP1_BODY_LENGTH)
        req->req_body_left = (uint64_t)h->content_length;
    else
        http1_chunked_init(&req->req_chunk);
}

/* Check the method and the path: 405, 400 (a path that does not
 * normalise), 503 (no buffer). Sets <path> and <route_len> to what routes
 * match: the normalised path, written into req->uhead's room (where the pod's
 * head goes next, which is at least as long as the head); the pod gets the
 * original target. false when answered. */
static bool
start_path(struct request *req, const char *base, const char **path, size_t *route_len)
{
    const struct http_head *h = &req->h;
    const char *p = base + h->path_off;
    size_t plen = h->path_len;
    const char *q = memchr(p, '?', plen);
    size_t rlen = q ? (size_t)(q - p) : plen;

    if (req->method == HTTP_M_CONNECT) {
        ds_reply(&req->ds, 405, TERM_BAD_REQUEST, NULL, true);
        return false;
    }
    req->uhead = buf_get(&req->w->bufs);
    if (!req->uhead) {
        ds_reply(&req->ds, 503, TERM_INTERNAL, NULL, true);
        return false;
    }
    if (h->flags & HTTP_F_ABSOLUTE_FORM && (plen == 0 || p[0] == '?')) {
        /* http://host or http://host?q: the path is "/" */
        *path = "/";
        *route_len = 1;
        return true;
    }
    /* Routes match the normalised path (path_norm.h). */
    int nl = plen && p[0] == '/' && !memchr(p, '#', plen)
                 ? path_normalize(p, rlen, buf_tail(req->uhead),
                                  req->vs->conf->merge_slashes ? PATH_MERGE_SLASHES : 0)
                 : -1;
    if (nl < 0) {
        ds_reply(&req->ds, 400, TERM_BAD_REQUEST, NULL, true);
        return false;
    }
    *path = buf_tail(req->uhead);
    *route_len = (size_t)nl;
    return true;
}

/* Route <path>, then the checks that need the route: 404, 429 (limit_conn),
 * 417, 413. false when answered. */
static bool
start_route(struct request *req, const char *base, const char *path, size_t route_len)
{
    const struct http_head *h = &req->h;
    req->route = router_match(req->vs, path, route_len);
    if (!req->route) {
        ds_reply(&req->ds, 404, TERM_NO_ROUTE, NULL, false);
        return false;
    }
    req->ups = req->route->up;
    if (!req->ds.ops->admit(req->ds.ctx, req->rip, req->rip_len, base, h,
                            req->route->conf->label)) {
        ds_reply(&req->ds, 429, TERM_CONN_LIMITED, "Retry-After: 1\r\n", true);
        return false;
    }
    if (h->flags & HTTP_F_EXPECT_OTHER) {
        ds_reply(&req->ds, 417, TERM_BAD_REQUEST, NULL, true);
        return false;
    }
    if (req->req_body == HTTP1_BODY_LENGTH &&
        (uint64_t)h->content_length > req->route->conf->max_body_bytes) {
        ds_reply(&req->ds, 413, TERM_TOO_LARGE, NULL, true);
        return false;
    }
    req->ws_upgrade = (h->flags & HTTP_F_UPGRADE_WS) && (h->flags & HTTP_F_CONN_UPGRADE) &&
                      req->method == HTTP_M_GET && h->version_minor == 1;
    req->expect_continue = (h->flags & HTTP_F_EXPECT_CONTINUE) != 0;
    return true;
}

/* Rewrite the head for the pod into req->uhead (kept for retries): 431 when
 * it does not fit. false when answered. */
static bool
start_head(struct request *req, const char *base)
{
    struct rewrite_req rw = {
        .buf = base,
        .h = &req->h,
        .client_ip = req->rip,
        .client_ip_len = req->rip_len,
        .tls = req->cli_tls,
        .req_id = req->req_id,
        .req_id_len = req->req_id_len,
        .strip_cookie = req->ups->cookie_name,
        .strip_cookie_len = req->ups->cookie_name_len,
        .websocket = req->ws_upgrade,
        .default_host = req->ups->conf->name,
    };
    int n = rewrite_request_head(buf_tail(req->uhead), buf_room(req->uhead), &rw);
    if (n < 0) {
        ds_reply(&req->ds, 431, TERM_BAD_REQUEST, NULL, true);
        return false;
    }
    req->uhead->end += (uint32_t)n;
    return true;
}

/* The head is consumed; validate the body bytes already here (400, 413) and
 * run the body deadline. false when answered. */
static bool
start_body(struct request *req, struct buf *ib, uint32_t head_len)
{
    /* The head is consumed: only body bytes (and maybe a next request) remain. */
    ib->start += head_len;
    /* Small bodies stay in the buffer until the response starts, so the request
     * can be replayed on another server. */
    req->replayable = req->req_body == HTTP1_BODY_NONE ||
                      (req->req_body == HTTP1_BODY_LENGTH &&
                       (uint64_t)req->h.content_length <= ib->size - req->body_start);
    int rc = fwd_req_scan(req);
    if (rc < 0) {
        ds_reply(&req->ds, rc == -2 ? 413 : 400, rc == -2 ? TERM_TOO_LARGE : TERM_BAD_REQUEST, NULL,
                 true);
        return false;
    }
    if (!req->req_body_done)
        ds_deadline(&req->ds, DS_TMO_BODY, ms_to_s(req->vs->conf->client_body_timeout_ms));
    else
        ds_deadline(&req->ds, DS_TMO_NONE, 0);
    return true;
}

/* Go on now, or hold for global zones, Redis (<aff> REQ_AFF_WAIT) or pacing. */
static void
start_go(struct request *req, int aff)
{
    struct worker *w = req->w;
    if (req->rl_pending) {
        /* Global zones answer through request_zone_answer(). */
        request_set_state(req, RS_HOLD);
        if (aff == REQ_AFF_WAIT) {
            ev_timer_set(&req->hold, (double)req->gen->conf->redis.timeout_ms / 1000.0, 0);
            ev_timer_start(w->loop, &req->hold);
        }
        return;
    }
    if (aff == REQ_AFF_WAIT) {
        /* Wait for Redis at most its timeout (then the hold timer goes on). */
        request_set_state(req, RS_HOLD);
        double wait = (double)req->gen->conf->redis.timeout_ms / 1000.0;
        double pace = req->hold_until > 0 ? req->hold_until - ev_now(w->loop) : 0;
        ev_timer_set(&req->hold, wait > pace ? wait : pace, 0);
        ev_timer_start(w->loop, &req->hold);
        return;
    }
    if (req->hold_until > 0)
        request_set_state(req, RS_HOLD);
    request_resume(req);
}

/* note -> path -> route -> limit -> affinity -> head -> body -> go. */
void
exchange_start(struct request *req, uint32_t head_len)
{
    struct buf *ib = ds_input(&req->ds);
    const char *base = buf_head(ib);

    const char *path;
    size_t route_len;
    start_note(req, base, head_len, ib);
    if (!start_path(req, base, &path, &route_len) || !start_route(req, base, path, route_len))
        return;
    if (req->route->nzones && !request_rate_limit(req, base))
        return;
    int aff = request_affinity_prepare(req, base, worker_now_ms(req->w));
    if (!start_head(req, base) || !start_body(req, ib, head_len))
        return;
    start_go(req, aff);
}

/* The hold timer ends a pacing delay, or a Redis wait that took too long. */
static void
hold_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct request *req = container_of(t, struct request, hold);
    (void)revents;
    if (req->aff_pending) {
        /* No request waits longer than the Redis timeout: go on without it. */
        request_affinity_done(req);
        gstat_add(req->w->id, GS_REDIS_TIMEOUTS, 1);
    }
    if (req->hold_until > ev_now(loop) + 0.0005) {
        ev_timer_set(t, req->hold_until - ev_now(loop), 0);
        ev_timer_start(loop, t);
        return;
    }
    req->hold_until = 0;
    request_resume(req);
}

void
request_resume(struct request *req)
{
    struct ev_loop *loop = req->w->loop;
    uint64_t now_ms = worker_now_ms(req->w);
    if (req->aff_pending || req->rl_pending)
        return; /* the Redis answer or the hold timer resumes it */
    if (req->rl_denied) {
        request_rate_limited(req, req->rl_deny_zone, &req->rl_deny);
        return;
    }
    if (req->hold_until > ev_now(loop) + 0.0005) {
        if (!ev_is_active(&req->hold)) {
            ev_timer_set(&req->hold, req->hold_until - ev_now(loop), 0);
            ev_timer_start(loop, &req->hold);
        }
        return; /* still pacing */
    }
    ev_timer_stop(loop, &req->hold);
    if (!req->srv && !request_affinity_pick(req, now_ms)) {
        if (req->shed) {
            request_shed(req);
            return;
        }
        gstat_add(req->w->id, GS_NO_SERVER, 1);
        ds_reply(&req->ds, 503, TERM_NO_SERVER, "Retry-After: 1\r\n", false);
        return;
    }
    request_connect(req);
}

/* ---- connecting and sending ---- */

void
request_connect(struct request *req)
{
    struct worker *w = req->w;
    struct server *s = req->srv;

    if (req->ntried < ARRAY_SIZE(req->tried))
        req->tried[req->ntried++] = s;
    if (!req->counted_active) {
        atomic_fetch_add_explicit(&s->rt->active, 1, memory_order_relaxed);
        req->counted_active = true;
    }
    if (!req->budget_counted) {
        retry_budget_count(req->ups, w->id, false);
        req->budget_counted = true;
    }
    request_set_state(req, RS_CONNECT);
    /* The request head was consumed by exchange_start(): the struct now parses
     * this attempt's response. */
    http_head_init(&req->h);
    req->uhead_off = 0;
    req->body_off = req->body_start;
    req->sent_any = false;
    req->per_try = false;
    req->t_connect = ev_now(w->loop);
    struct upconn *up = upconn_get(w, s, &request_upconn_cbs, req, method_idempotent(req->method));
    if (!up) {
        request_up_failed(req, TERM_SERVER_REFUSED, errno);
        return;
    }
    req->up = up;
    if (up->state == UC_BUSY)
        request_up_connected(req);
}

void
request_up_connected(struct request *req)
{
    req->t_connected = ev_now(req->w->loop);
    request_set_state(req, RS_SEND);
    /* From here the route's timeout bounds every silence of the pod. */
    upconn_deadline(req->up, ms_to_s(req->route->conf->timeout_ms));
    request_up_writable(req);
}

void
request_up_writable(struct request *req)
{
    int rc = fwd_req_send(req);
    if (rc == FWD_ERROR) {
        request_up_failed(req, TERM_SERVER_RESET, errno);
        return;
    }
    if (rc == FWD_AGAIN) {
        struct buf *ib = ds_input(&req->ds);
        if (ib && buf_room(ib) == 0)
            ds_pause(&req->ds);
        return;
    }
    if (!req->req_body_done) /* a slow upload is not a slow pod */
        upconn_deadline(req->up, ms_to_s(req->route->conf->timeout_ms));
    ds_resume(&req->ds);
    if (req->req_body_done && req->state == RS_SEND) {
        req->req_sent = true;
        request_set_state(req, RS_WAIT_RESP);
        /* A request that could go again waits for its first answer byte at most
         * per_try_timeout (request_up_timeout then resends it). */
        req->per_try = request_per_try_ok(req);
        upconn_deadline(req->up, ms_to_s(req->per_try ? req->route->conf->per_try_timeout_ms
                                                      : req->route->conf->timeout_ms));
    }
}

void
exchange_readable(struct request *req)
{
    ssize_t r = ds_read(&req->ds);
    if (r == IO_AGAIN)
        return;
    if (r == IO_NOROOM) {
        /* No room: wait until the pod (or the next request) takes the bytes. */
        ds_pause(&req->ds);
        return;
    }
    if (r == IO_CLOSED) { /* the downstream noted the EOF and stopped reading */
        if (!req->req_body_done)
            exchange_gone(req, TERM_CLIENT_ABORT);
        return;
    }
    if (r < 0) {
        exchange_gone(req, TERM_CLIENT_ABORT);
        return;
    }
    if (req->req_body_done)
        return; /* pipelined bytes of the next request: they wait their turn */
    req->bytes_in += (uint64_t)r;
    int rc = fwd_req_scan(req);
    if (rc < 0) {
        if (req->resp_head_sent) {
            exchange_gone(req, TERM_BAD_REQUEST);
            return;
        }
        req->term = rc == -2 ? TERM_TOO_LARGE : TERM_BAD_REQUEST;
        request_fail(req, req->term, rc == -2 ? 413 : 400);
        return;
    }
    if (req->req_body_done)
        ds_deadline(&req->ds, DS_TMO_NONE, 0);
    else
        ds_deadline(&req->ds, DS_TMO_BODY, ms_to_s(req->vs->conf->client_body_timeout_ms));
    /* The body keeps flowing to the pod after its answer started (an echo, or a
     * pod that answers early): it may need the rest before it can finish. */
    if ((req->state == RS_SEND || req->state == RS_RESP) && req->up &&
        !(req->up->c.flags & CONN_WANT_WRITE))
        request_up_writable(req);
}

void
exchange_gone(struct request *req, unsigned term)
{
    if (!req->term)
        req->term = (uint8_t)term;
    if (req->up) {
        upconn_release(req->up, false);
        req->up = NULL;
    }
    ds_reset(&req->ds, term);
}

void
request_complete(struct request *req)
{
    struct upconn *up = req->up;
    struct downstream ds = req->ds;
    bool reusable = up && !req->server_close && req->req_body_done && req->req_sent && up->ibuf &&
                    buf_len(up->ibuf) == 0;
    request_set_state(req, RS_DONE);
    if (up) {
        upconn_release(up, reusable);
        req->up = NULL;
    }
    /* The next request starts right after this one's body; a body the client
     * did not finish sending cannot be skipped reliably: close. */
    uint32_t next = req->req_body_done ? req->body_end : UINT32_MAX;
    bool close = !req->keepalive || !req->req_body_done;
    request_log(req);
    exchange_free(req);
    ds.ops->done(ds.ctx, next, close);
}

struct http_head *
exchange_head(struct request *x)
{
    return &x->h;
}
