/* SPDX-License-Identifier: MIT */
/* Failures of a request and the retries that hide them: which conditions
 * retry, idempotency, the retry budget, and the replies when giving up. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/forward.h>
#include <tether/gen.h>
#include <tether/http_rewrite.h>
#include <tether/outlier.h>
#include <tether/ratelimit.h>
#include <tether/redis.h>
#include <tether/request.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/upstream_conn.h>
#include <tether/worker.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request_int.h"

static uint32_t
term_retry_cond(unsigned term, int err)
{
    switch (term) {
    case TERM_SERVER_REFUSED:
        return err == ECONNREFUSED ? RETRY_REFUSED : RETRY_CONNECT_FAILURE;
    case TERM_CONNECT_TIMEOUT:
        return RETRY_CONNECT_FAILURE;
    case TERM_SERVER_RESET:
        return RETRY_RESET;
    default:
        return 0;
    }
}

/* Retry budget, per worker and upstream (no shared counters), as Envoy does:
 * requests being retried may be at most retry_budget% of the requests in
 * flight, with a floor of 3 so a quiet upstream can still retry. A storm (most
 * requests failing) is cut off; a dead pod under normal load is not. The cursor
 * fields count in-flight requests and in-flight retried requests. */
static bool
retry_budget_ok(struct request *req, uint32_t worker)
{
    struct lb_cursor *c = &req->ups->cursors[worker];
    uint64_t cap = (uint64_t)c->budget_reqs * req->ups->conf->retry_budget_pct / 100;
    return req->retries > 0 || c->budget_rets < (cap > 3 ? cap : 3);
}

void
retry_budget_count(struct upstream *u, uint32_t worker, bool retry)
{
    struct lb_cursor *c = &u->cursors[worker];
    if (retry)
        c->budget_rets++;
    else
        c->budget_reqs++;
}

void
retry_budget_release(struct request *req)
{
    if (!req->budget_counted)
        return;
    struct lb_cursor *c = &req->ups->cursors[req->w->id];
    c->budget_reqs--;
    if (req->retries)
        c->budget_rets--;
    req->budget_counted = false;
}

/* Try another server; true when a new attempt started. */
/* The checks every retry passes; the next server, or NULL. No side effect
 * but the budget-exhausted counter. */
static struct server *
retry_next(struct request *req)
{
    uint64_t now_ms = worker_now_ms(req->w);
    /* The body must still be whole in the buffer: kept for replay, or nothing
     * of it was sent (a refused connect). */
    if (req->retries >= req->ups->conf->retries || req->resp_head_sent ||
        (!req->replayable && req->sent_any))
        return NULL;
    if (!retry_budget_ok(req, req->w->id)) {
        gstat_add(req->w->id, GS_RETRY_BUDGET_EXHAUSTED, 1);
        return NULL;
    }
    return request_affinity_repick(req, now_ms);
}

static void
retry_start(struct request *req, struct server *next, uint32_t cond)
{
    struct worker *w = req->w;
    req->retried_on = (uint8_t)(__builtin_ctz(cond) + 1);
    if (req->retries == 0)
        retry_budget_count(req->ups, w->id, true);
    gstat_add(w->id, GS_RETRIES, 1);
    CTR_ADD(req->srv->rt->t[w->id].retries, 1);
    if (req->counted_active) {
        atomic_fetch_sub_explicit(&req->srv->rt->active, 1, memory_order_relaxed);
        req->counted_active = false;
    }
    req->retries++;
    request_affinity_move(req, next);
    request_connect(req);
}

bool
request_retry(struct request *req, unsigned term, int err)
{
    uint32_t cond = term_retry_cond(term, err);
    if (!(req->ups->conf->retry_on & cond))
        return false;
    /* Bytes reached the pod: only an idempotent request may go again. */
    if (req->sent_any && !method_idempotent(req->method))
        return false;
    struct server *next = retry_next(req);
    if (!next)
        return false;
    retry_start(req, next, cond);
    return true;
}

bool
request_retry_status(struct request *req, unsigned status)
{
    uint32_t cond = status == 502   ? RETRY_502
                    : status == 503 ? RETRY_503
                    : status == 504 ? RETRY_504
                                    : 0;
    /* The pod saw the request: only idempotent ones, and only whole ones. */
    if (!cond || !(req->ups->conf->retry_on & cond) || !method_idempotent(req->method) ||
        !req->req_body_done)
        return false;
    struct server *next = retry_next(req);
    if (!next)
        return false;
    /* The response is dropped unread: that connection cannot be reused. */
    upconn_release(req->up, false);
    req->up = NULL;
    outlier_failure(req->srv, req->w->id);
    retry_start(req, next, cond);
    return true;
}

bool
request_per_try_ok(const struct request *req)
{
    /* Nothing but the head goes again: a body that reached the pod is never
     * resent, nor is a request that is not idempotent. */
    return req->route->conf->per_try_timeout_ms && (req->ups->conf->retry_on & RETRY_TIMEOUT) &&
           method_idempotent(req->method) && req->body_end == req->body_start && !req->ws_upgrade &&
           req->retries < req->ups->conf->retries;
}

/* per_try_timeout passed with no answer byte: close that connection (it may
 * answer late, so it never goes back to the pool), count a server timeout and
 * resend to another server. False when no retry is possible: the request then
 * goes on waiting for this pod until the route's timeout. */
static bool
request_retry_timeout(struct request *req)
{
    struct worker *w = req->w;
    req->per_try = false;
    struct server *next = retry_next(req);
    if (!next)
        return false;
    CTR_ADD(req->srv->rt->t[w->id].timeouts, 1);
    outlier_failure(req->srv, w->id);
    upconn_release(req->up, false);
    req->up = NULL;
    gstat_add(w->id, GS_RETRY_TIMEOUTS, 1);
    retry_start(req, next, RETRY_TIMEOUT);
    return true;
}

void
request_up_failed(struct request *req, unsigned term, int err)
{
    struct worker *w = req->w;
    if (req->up) {
        upconn_release(req->up, false);
        req->up = NULL;
    }
    if (req->srv) {
        struct traffic_counters *t = &req->srv->rt->t[w->id];
        if (term == TERM_SERVER_RESET)
            CTR_ADD(t->resets, 1);
        else if (term == TERM_SERVER_TIMEOUT)
            CTR_ADD(t->timeouts, 1);
        else
            CTR_ADD(t->connect_errors, 1);
        outlier_failure(req->srv, w->id);
    }
    if (request_retry(req, term, err))
        return;
    unsigned status = term == TERM_CONNECT_TIMEOUT || term == TERM_SERVER_TIMEOUT ? 504 : 502;
    request_fail(req, term, status);
}

/* Give up: a reply if the client has seen nothing yet, else close it. */
void
request_fail(struct request *req, unsigned term, unsigned status)
{
    if (req->up) {
        upconn_release(req->up, false);
        req->up = NULL;
    }
    req->term = (uint8_t)term;
    if (req->resp_head_sent) {
        ds_reset(&req->ds, term);
        return;
    }
    buf_put(&req->w->bufs, req->chead);
    req->chead = NULL;
    /* After a malformed answer the pod connection is gone and the client
     * connection closes too, like HAProxy: no second answer on that stream. */
    ds_reply(&req->ds, status, term, NULL, !req->req_body_done || term == TERM_BAD_RESPONSE);
}

void
request_up_timeout(struct request *req)
{
    if (req->state == RS_CONNECT) {
        request_up_failed(req, TERM_CONNECT_TIMEOUT, ETIMEDOUT);
        return;
    }
    /* The pod is quiet because we stopped reading it: the client does not read
     * what we have. The client's send deadline judges that, not the pod. */
    if (req->state == RS_RESP && req->ds.ops->write_blocked(req->ds.ctx)) {
        upconn_deadline(req->up, ms_to_s(req->route->conf->timeout_ms));
        return;
    }
    if (req->per_try && req->state == RS_WAIT_RESP) {
        if (request_retry_timeout(req))
            return;
        /* No retry: the rest of the route's timeout, then a 504 (counted then). */
        uint64_t rest = req->route->conf->timeout_ms - req->route->conf->per_try_timeout_ms;
        upconn_deadline(req->up, ms_to_s(rest));
        return;
    }
    if (req->srv)
        CTR_ADD(req->srv->rt->t[req->w->id].timeouts, 1);
    if (req->srv)
        outlier_failure(req->srv, req->w->id);
    request_fail(req, TERM_SERVER_TIMEOUT, 504);
}
