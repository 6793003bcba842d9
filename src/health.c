/* SPDX-License-Identifier: MIT */
/* Active health checks on the control thread: one nonblocking HTTP/1.1 GET per
 * server per interval (spread over the interval), kept-alive check connections,
 * rise/fall hysteresis, every transition logged once, counted and followed by a
 * plan rebuild. Workers only ever read the resulting atomics. */
#include "config.h"

#include <tether/balance.h>
#include <tether/conn.h>
#include <tether/control.h>
#include <tether/gen.h>
#include <tether/health.h>
#include <tether/http1.h>
#include <tether/log.h>
#include <tether/outlier.h>
#include <tether/session_load.h>
#include <tether/sock.h>
#include <tether/tls.h>
#include <tether/upstream.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HC_HEAD_MAX  8192  /* response head bytes accepted */
#define HC_BODY_MAX  16384 /* body bytes read (and searched for expect_body) */
#define HC_BUF_SIZE  (HC_HEAD_MAX + HC_BODY_MAX)
#define HC_REQ_MAX   2048 /* the request text */
#define HC_REPLAN_MS 20   /* at most one health-driven plan rebuild per this */

/*
 * One target per checked server. A check:
 *
 *   IDLE --timer--> [connect] CONNECTING --writable--> [HANDSHAKE] SENDING --sent--> READING
 *     ^                                                                                |
 *     +---- result: counted, rise/fall applied, next check at start+interval
 *
 * A server with `tls` is checked over TLS (verified as its traffic is), unless
 * the health_check names its own port, which is taken to be plain HTTP.
 *
 * The check connection stays open when the pod keeps it alive, so a steady check
 * costs one send and one recv. Its read watcher stays armed while idle: a pod
 * closing it is noticed (and the socket closed) without a system call of ours.
 */
enum hc_state {
    HC_IDLE = 0, /* waiting for the next check (connection kept or none) */
    HC_CONNECTING,
    HC_HANDSHAKE, /* TLS */
    HC_SENDING,
    HC_READING,
};

/* Why a check failed (or HC_OK). */
enum hc_result {
    HC_OK = 0,
    HC_STATUS,  /* status outside the expected range */
    HC_BODY,    /* expect_body not found */
    HC_TIMEOUT, /* no complete answer within timeout */
    HC_REFUSED, /* connection refused */
    HC_CONNECT, /* other connect error */
    HC_CLOSED,  /* reset or closed before a complete response */
    HC_BAD,     /* malformed response */
    HC_TLS,     /* TLS handshake or record failure */
};

struct hc_target {
    struct server_rt *rt;  /* referenced; the state checks change */
    struct upstream *u;    /* in the current generation (renewed by health_sync) */
    struct sock_addr addr; /* where checks connect */
    char *req;             /* the request bytes */
    uint32_t req_len;      /* length of req */
    char *expect_body;     /* substring the body must contain, or NULL */
    uint16_t expect_lo;    /* accepted status range */
    uint16_t expect_hi;
    uint32_t rise, fall;    /* hysteresis */
    uint64_t interval_ms;   /* one check per interval */
    uint64_t timeout_ms;    /* of one check, connect included */
    ev_timer tmr;           /* next check, or the running check's deadline */
    ev_io io;               /* the check connection */
    int fd;                 /* -1 when there is none */
    struct tls_client *tls; /* checks over TLS with this, or NULL */
    struct conn tc;         /* TLS state of the connection: tc.fd == fd, tc.ssl */
    uint8_t state;          /* enum hc_state */
    bool reused;            /* the running check went over a kept connection */
    bool keep;              /* sync mark: still configured */
    uint64_t start_ms;      /* monotonic start of the running (or last) check */
    uint32_t sent;          /* request bytes sent */
    uint32_t len;           /* response bytes in buf */
    char *buf;              /* response bytes, allocated only while reading */
};

static struct hc_target **targets; /* by server_rt slot */
static uint32_t ntargets;          /* size of targets[] */
static ev_timer replan_tmr;        /* coalesces rebuilds after transitions */
static uint64_t replan_last_ms;    /* end of the last health-driven rebuild */
static uint64_t replan_cost_ms;    /* how long it took */
static bool replan_inited;
static bool stopped;              /* health_stop ran: shutting down, no checks any more */
static struct http_head hc_head;  /* parse scratch, control thread only */
static char hc_body[HC_BODY_MAX]; /* decoded chunked body */
static size_t hc_body_len;

static void hc_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void hc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static uint64_t
ms_since(uint64_t t0, uint64_t now)
{
    return now > t0 ? now - t0 : 0;
}

static void
timer_in(struct hc_target *t, uint64_t ms)
{
    ev_timer_stop(ctl.loop, &t->tmr);
    ev_timer_set(&t->tmr, (double)ms / 1000.0, 0.0);
    ev_timer_start(ctl.loop, &t->tmr);
}

/* Point the io watcher at <events> (0: stopped). libev batches the epoll change. */
static void
io_want(struct hc_target *t, int events)
{
    if (ev_is_active(&t->io) && (t->io.events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(ctl.loop, &t->io);
    if (!events)
        return;
    ev_io_set(&t->io, t->fd, events);
    ev_io_start(ctl.loop, &t->io);
}

static void
conn_drop(struct hc_target *t)
{
    if (t->fd < 0)
        return;
    ev_io_stop(ctl.loop, &t->io);
    if (t->tc.ssl)
        t->tc.ops->free(&t->tc);
    t->tc.ops = &conn_plain_ops;
    close(t->fd);
    t->fd = -1;
}

/* Wait for what the TLS connection asked for (a read may need a write first). */
static void
io_want_tls(struct hc_target *t, int dflt)
{
    if (t->tc.flags & CONN_TLS_READ_WANTS_WRITE)
        io_want(t, EV_READ | EV_WRITE);
    else if (t->tc.flags & CONN_TLS_WRITE_WANTS_READ)
        io_want(t, EV_READ);
    else
        io_want(t, dflt);
}

/* ---- rebuilding plans ---- */

static void
replan_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct gen *g = atomic_load(&gen_current);
    uint64_t now = time_mono_ms();
    (void)loop;
    (void)w;
    (void)revents;
    for (uint32_t i = 0; g && i < g->nupstreams; i++)
        if (atomic_load(&g->upstreams[i].plan_dirty))
            balance_rebuild(&g->upstreams[i], now);
    replan_last_ms = time_mono_ms();
    replan_cost_ms = replan_last_ms - now;
}

/* Rebuild <u>'s plan on the next loop turn: transitions of one batch of events
 * share one rebuild, and a mass outage costs at most one rebuild per
 * HC_REPLAN_MS (or per twice the last rebuild's time: a big upstream's hash
 * table takes ~100 ms) instead of one per server. Workers do not wait for it:
 * they read a server's health on every pick. */
static void
replan_soon(struct upstream *u)
{
    atomic_store(&u->plan_dirty, 1);
    if (ev_is_active(&replan_tmr))
        return;
    uint64_t gap = MAX((uint64_t)HC_REPLAN_MS, 2 * replan_cost_ms);
    uint64_t now = time_mono_ms(), at = replan_last_ms + gap;
    ev_timer_set(&replan_tmr, at > now ? (double)(at - now) / 1000.0 : 0.0, 0.0);
    ev_timer_start(ctl.loop, &replan_tmr);
}

/* ---- results ---- */

static void
describe(char *out, size_t cap, const struct hc_target *t, int res, unsigned status, int err)
{
    switch (res) {
    case HC_OK:
        snprintf(out, cap, "status %u", status);
        break;
    case HC_STATUS:
        snprintf(out, cap, "status %u, expected %u-%u", status, t->expect_lo, t->expect_hi);
        break;
    case HC_BODY:
        snprintf(out, cap, "status %u but the body lacks \"%.64s\"", status, t->expect_body);
        break;
    case HC_TIMEOUT:
        snprintf(out, cap, "timeout after %llu ms", (unsigned long long)t->timeout_ms);
        break;
    case HC_REFUSED:
        snprintf(out, cap, "connection refused");
        break;
    case HC_CONNECT:
        snprintf(out, cap, "connect failed: %s", strerror(err));
        break;
    case HC_CLOSED:
        snprintf(out, cap, "connection closed before a complete response");
        break;
    case HC_TLS:
        snprintf(out, cap, "TLS: %s", tls_last_error());
        break;
    default:
        snprintf(out, cap, "malformed response");
        break;
    }
}

static void
transition(struct hc_target *t, bool up, unsigned nchecks, const char *why)
{
    struct server_rt *rt = t->rt;
    atomic_store(&rt->health, up ? HEALTH_UP : HEALTH_DOWN);
    if (up)
        atomic_store(&rt->usable_since_ms, time_mono_ms()); /* slow start from now */
    uint64_t n = atomic_fetch_add(&rt->transitions, 1) + 1;
    atomic_store(&rt->last_change_ms, time_wall_ms());
    if (up)
        log_notice("health: server %s is UP after %u passed check%s (%s); transition %llu", rt->key,
                   nchecks, nchecks == 1 ? "" : "s", why, (unsigned long long)n);
    else
        log_warn("health: server %s is DOWN after %u failed check%s (%s); transition %llu", rt->key,
                 nchecks, nchecks == 1 ? "" : "s", why, (unsigned long long)n);
    replan_soon(t->u);
}

/* End the running check with <res>; <reusable> keeps the connection. */
static void
check_done(struct hc_target *t, int res, unsigned status, int err, bool reusable)
{
    struct server_rt *rt = t->rt;
    uint64_t now = time_mono_ms();
    char why[160];

    if (!reusable)
        conn_drop(t);
    else
        io_want(t, EV_READ);
    free(t->buf);
    t->buf = NULL;
    t->len = 0;
    t->sent = 0;
    t->state = HC_IDLE;
    /* 0 says "no HTTP answer" (timeout, refused, closed, malformed). */
    atomic_store(&rt->hc_last_status, (uint16_t)(res <= HC_BODY ? status : 0));
    atomic_store(&rt->hc_last_ms, (uint32_t)ms_since(t->start_ms, now));
    describe(why, sizeof(why), t, res, status, err);
    log_debug("health: %s check %s: %s", rt->key, res == HC_OK ? "passed" : "failed", why);

    bool up = atomic_load(&rt->health) == HEALTH_UP;
    /* A server new since the start is judged by its first check alone. */
    bool fresh = atomic_exchange(&rt->hc_unchecked, false);
    if (res == HC_OK) {
        atomic_fetch_add(&rt->hc_ok, 1);
        rt->hc_fall = 0;
        if (!up && (fresh || ++rt->hc_rise >= t->rise)) {
            rt->hc_rise = 0;
            transition(t, true, fresh ? 1 : t->rise, why);
        }
        if (outlier_health_pass(t->u, rt, now))
            replan_soon(t->u);
    } else {
        atomic_fetch_add(&rt->hc_failed, 1);
        rt->hc_rise = 0;
        if (up && ++rt->hc_fall >= t->fall) {
            rt->hc_fall = 0;
            transition(t, false, t->fall, why);
        }
    }
    /* Fixed rate: the next check starts one interval after this one started. */
    uint64_t next = t->start_ms + t->interval_ms;
    timer_in(t, next > now ? next - now : 0);
}

/* ---- the exchange ---- */

static void
body_collect(void *ctx, const char *p, size_t n)
{
    (void)ctx;
    size_t room = sizeof(hc_body) - hc_body_len;
    if (n > room)
        n = room;
    memcpy(hc_body + hc_body_len, p, n);
    hc_body_len += n;
}

static bool
body_has(const char *body, size_t n, const char *needle)
{
    return !needle || memmem(body, n, needle, strlen(needle)) != NULL;
}

/* Judge what has been read. Returns false while more bytes are needed; with
 * <eof> the connection ended, so whatever is there is final. */
static bool
response_judge(struct hc_target *t, bool eof)
{
    struct http1_limits lim = {.max_head_bytes = HC_HEAD_MAX, .max_fields = 64};
    http_head_init(&hc_head);
    int n = http1_parse_response(&hc_head, t->buf, t->len, &lim);
    if (n == HTTP1_NEED_MORE && !eof)
        return false;
    if (n <= 0) {
        check_done(t, n == HTTP1_NEED_MORE ? HC_CLOSED : HC_BAD, 0, 0, false);
        return true;
    }
    unsigned status = hc_head.status;
    if (status < 200) { /* interim answers are not health */
        check_done(t, HC_BAD, status, 0, false);
        return true;
    }
    bool ka = hc_head.version_minor == 1 ? !(hc_head.flags & HTTP_F_CONN_CLOSE)
                                         : (hc_head.flags & HTTP_F_CONN_KEEPALIVE) != 0;
    const char *body = t->buf + n;
    size_t blen = t->len - (size_t)n, use = blen;
    bool complete = false, full = t->len >= HC_BUF_SIZE, reusable = false;

    switch (http1_response_body(&hc_head, HTTP_M_GET)) {
    case HTTP1_BODY_NONE:
        complete = true;
        use = 0;
        reusable = ka && blen == 0;
        break;
    case HTTP1_BODY_LENGTH:
        if (blen >= (uint64_t)hc_head.content_length) {
            complete = true;
            use = (size_t)hc_head.content_length;
            reusable = ka && blen == use;
        }
        break;
    case HTTP1_BODY_CHUNKED: {
        struct http1_chunked ch;
        struct http1_chunk_limits cl = {
            .max_line_bytes = 1024, .max_trailer_bytes = 4096, .max_chunk_size = UINT32_MAX};
        http1_chunked_init(&ch);
        hc_body_len = 0;
        int64_t used = http1_chunked_scan(&ch, body, blen, &cl, body_collect, NULL);
        if (used < 0) {
            check_done(t, HC_BAD, status, 0, false);
            return true;
        }
        complete = ch.done;
        reusable = ka && ch.done && (size_t)used == blen;
        body = hc_body;
        use = hc_body_len;
        break;
    }
    default: /* delimited by close */
        complete = eof;
        break;
    }
    if (!complete && !full && !eof)
        return false;
    if (!complete && !full && eof) {
        check_done(t, HC_CLOSED, status, 0, false);
        return true;
    }
    /* The pod's load report (report json); a body cut short is "too large". */
    if (session_load_report(t->u, t->rt, body, complete ? use : HC_BODY_MAX + 1, status))
        replan_soon(t->u);
    /* A body larger than the buffer is judged on its first HC_BODY_MAX bytes;
     * the rest is not read, so the connection cannot carry another check. */
    if (status < t->expect_lo || status > t->expect_hi)
        check_done(t, HC_STATUS, status, 0, reusable);
    else if (!body_has(body, use, t->expect_body))
        check_done(t, HC_BODY, status, 0, reusable);
    else
        check_done(t, HC_OK, status, 0, reusable);
    return true;
}

static void check_connect(struct hc_target *t);

/* A kept-alive connection the pod had closed: try once more on a new one, which
 * is not a failure of the pod. */
static bool
stale_retry(struct hc_target *t)
{
    if (!t->reused || t->len > 0)
        return false;
    conn_drop(t);
    t->reused = false;
    t->sent = 0;
    check_connect(t);
    return true;
}

static void
send_request(struct hc_target *t)
{
    while (t->sent < t->req_len) {
        struct iovec iov = {t->req + t->sent, t->req_len - t->sent};
        ssize_t r = conn_writev(&t->tc, &iov, 1);
        if (r == IO_AGAIN) {
            t->state = HC_SENDING;
            io_want_tls(t, EV_READ | EV_WRITE);
            return;
        }
        if (r <= 0) {
            if (!stale_retry(t))
                check_done(t, t->tc.ssl && !t->reused ? HC_TLS : HC_CLOSED, 0, errno, false);
            return;
        }
        t->sent += (uint32_t)r;
    }
    t->state = HC_READING;
    io_want(t, EV_READ);
}

static void
read_response(struct hc_target *t)
{
    if (!t->buf && !(t->buf = malloc(HC_BUF_SIZE))) {
        check_done(t, HC_BAD, 0, ENOMEM, false);
        return;
    }
    ssize_t r = conn_read(&t->tc, t->buf + t->len, HC_BUF_SIZE - t->len);
    if (r == IO_AGAIN) {
        if (t->tc.ssl)
            io_want_tls(t, EV_READ);
        return;
    }
    if (r <= 0) {
        if (stale_retry(t))
            return;
        if (t->len == 0) {
            check_done(t, HC_CLOSED, 0, r < 0 ? errno : 0, false);
            return;
        }
        response_judge(t, true);
        return;
    }
    t->len += (uint32_t)r;
    response_judge(t, false);
}

static void
check_connect(struct hc_target *t)
{
    t->fd = sock_connect(&t->addr);
    if (t->fd < 0) {
        int err = errno;
        check_done(t, err == ECONNREFUSED ? HC_REFUSED : HC_CONNECT, 0, err, false);
        return;
    }
    t->tc.fd = t->fd;
    t->tc.flags = 0;
    if (t->tls && tls_connect_attach(&t->tc, t->tls) < 0) {
        conn_drop(t);
        check_done(t, HC_TLS, 0, 0, false);
        return;
    }
    t->state = HC_CONNECTING;
    io_want(t, EV_READ | EV_WRITE);
}

static void
handshake(struct hc_target *t)
{
    int r = tls_handshake(&t->tc);
    if (r == 1) {
        send_request(t);
        return;
    }
    if (r < 0) {
        check_done(t, r == -2 ? HC_CLOSED : HC_TLS, 0, 0, false);
        return;
    }
    t->state = HC_HANDSHAKE;
    io_want_tls(t, EV_READ);
}

static void
check_start(struct hc_target *t)
{
    t->start_ms = time_mono_ms();
    t->sent = 0;
    t->len = 0;
    session_load_check_sent(t->rt);
    timer_in(t, t->timeout_ms);
    if (t->fd >= 0) {
        t->reused = true;
        send_request(t);
        return;
    }
    t->reused = false;
    check_connect(t);
}

static void
hc_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hc_target *t = container_of(w, struct hc_target, io);
    (void)loop;
    switch (t->state) {
    case HC_CONNECTING: {
        int err = sock_error(t->fd);
        if (err) {
            conn_drop(t);
            check_done(t, err == ECONNREFUSED ? HC_REFUSED : HC_CONNECT, 0, err, false);
            return;
        }
        if (t->tc.ssl)
            handshake(t);
        else
            send_request(t);
        return;
    }
    case HC_HANDSHAKE:
        handshake(t);
        return;
    case HC_SENDING:
        if ((revents & EV_WRITE) || (t->tc.flags & CONN_TLS_WRITE_WANTS_READ))
            send_request(t);
        else
            read_response(t); /* an early answer (or a close) */
        return;
    case HC_READING:
        read_response(t);
        return;
    default: {
        /* Idle connection readable: the pod closed it (or sent junk). Over TLS
         * it may be a record without data (a session ticket): read to know. */
        char junk[512];
        if (t->tc.ssl && conn_read(&t->tc, junk, sizeof(junk)) == IO_AGAIN) {
            io_want_tls(t, EV_READ);
            return;
        }
        conn_drop(t);
        return;
    }
    }
}

static void
hc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct hc_target *t = container_of(w, struct hc_target, tmr);
    (void)loop;
    (void)revents;
    if (t->state == HC_IDLE) {
        check_start(t);
        return;
    }
    /* libev runs expired timers before the I/O of the same loop turn: when this
     * thread was held up (a reload, a busy machine) the answer may be waiting
     * in the socket. Read it before calling the pod slow. */
    if (t->state == HC_READING) {
        read_response(t);
        if (t->state == HC_IDLE)
            return;
    }
    /* The exchange is in an unknown state: its connection cannot be reused. */
    check_done(t, HC_TIMEOUT, 0, ETIMEDOUT, false);
}

/* ---- targets ---- */

/* Forget the running check (its request or address changed) without a result,
 * and drop the connection: it leads to the old address or carries old bytes. */
static void
check_abort(struct hc_target *t)
{
    conn_drop(t);
    free(t->buf);
    t->buf = NULL;
    t->len = t->sent = 0;
    if (t->state != HC_IDLE) {
        t->state = HC_IDLE;
        uint64_t now = time_mono_ms(), next = t->start_ms + t->interval_ms;
        timer_in(t, next > now ? next - now : 0);
    }
}

static void
target_free(struct hc_target *t)
{
    ev_timer_stop(ctl.loop, &t->tmr);
    conn_drop(t);
    free(t->buf);
    free(t->req);
    free(t->expect_body);
    server_rt_unref(t->rt);
    free(t);
}

/* Fill <t>'s settings from <u>'s health_check and server <s>. 1 when the check
 * connection must be dropped (address or request changed), 0 when not, -1 on
 * allocation failure. */
static int
target_configure(struct hc_target *t, struct upstream *u, const struct server *s)
{
    const struct conf_health *h = &u->conf->health;
    struct sock_addr a = s->conf->addr;
    char host[SOCK_ADDR_STRLEN + 8], req[HC_REQ_MAX];
    int changed = 0;
    /* A health port of its own is plain HTTP; otherwise as the traffic goes. */
    struct tls_client *tls = h->port ? NULL : s->tls_ctx;

    if (tls != t->tls)
        changed = 1; /* also a rebuilt context (reload): reconnect with it */
    t->tls = tls;
    if (h->port && a.u.sa.sa_family == AF_INET)
        a.u.in.sin_port = htons((uint16_t)h->port);
    else if (h->port && a.u.sa.sa_family == AF_INET6)
        a.u.in6.sin6_port = htons((uint16_t)h->port);
    if (h->host)
        snprintf(host, sizeof(host), "%s", h->host);
    else if (a.u.sa.sa_family == AF_UNIX)
        snprintf(host, sizeof(host), "localhost");
    else
        sock_addr_format(&a, host, sizeof(host));
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tether-health\r\n"
                     "Accept: */*\r\n\r\n",
                     h->path, host);
    if (n <= 0 || (size_t)n >= sizeof(req))
        n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", "localhost");
    if (!t->req || t->req_len != (uint32_t)n || memcmp(t->req, req, (size_t)n) != 0) {
        char *copy = malloc((size_t)n + 1);
        if (!copy)
            return -1;
        memcpy(copy, req, (size_t)n + 1);
        free(t->req);
        t->req = copy;
        t->req_len = (uint32_t)n;
        changed = 1;
    }
    if (!sock_addr_equal(&t->addr, &a))
        changed = 1;
    t->addr = a;
    free(t->expect_body);
    t->expect_body = h->expect_body ? strdup(h->expect_body) : NULL;
    if (h->expect_body && !t->expect_body)
        return -1;
    t->u = u;
    t->expect_lo = h->expect_lo;
    t->expect_hi = h->expect_hi;
    t->rise = h->rise ? h->rise : 1;
    t->fall = h->fall ? h->fall : 1;
    t->interval_ms = h->interval_ms ? h->interval_ms : 1000;
    t->timeout_ms = h->timeout_ms ? h->timeout_ms : t->interval_ms;
    return changed;
}

static int
targets_grow(uint32_t n)
{
    if (n <= ntargets)
        return 0;
    struct hc_target **nt = realloc(targets, n * sizeof(*nt));
    if (!nt)
        return -1;
    memset(nt + ntargets, 0, (n - ntargets) * sizeof(*nt));
    targets = nt;
    ntargets = n;
    return 0;
}

/* A server whose upstream no longer checks it: nothing will ever bring it up
 * again, so it is up (passive ejection still applies). */
static void
unchecked_up(struct upstream *u, struct server_rt *rt)
{
    if (atomic_load(&rt->health) == HEALTH_UP)
        return;
    atomic_store(&rt->health, HEALTH_UP);
    atomic_store(&rt->usable_since_ms, time_mono_ms());
    uint64_t n = atomic_fetch_add(&rt->transitions, 1) + 1;
    atomic_store(&rt->last_change_ms, time_wall_ms());
    rt->hc_rise = rt->hc_fall = 0;
    log_notice("health: server %s is UP (its upstream has no health_check any more); "
               "transition %llu",
               rt->key, (unsigned long long)n);
    replan_soon(u);
}

void
health_sync(struct gen *g)
{
    uint64_t rnd = 0;
    uint32_t nnew = 0, k = 0;

    if (stopped)
        return;
    if (!replan_inited) {
        ev_timer_init(&replan_tmr, replan_cb, 0.0, 0.0);
        replan_inited = true;
    }
    if (targets_grow(server_rt_slots()) < 0) {
        log_error("health: out of memory; health checks keep their previous settings");
        return;
    }
    random_bytes(&rnd, sizeof(rnd));
    rnd |= 1;
    for (uint32_t i = 0; i < ntargets; i++)
        if (targets[i])
            targets[i]->keep = false;
    /* New targets are counted first so their first checks can be spread evenly
     * (with random jitter) over their interval: no thundering herd at start. */
    for (uint32_t i = 0; i < g->nupstreams; i++) {
        struct upstream *u = &g->upstreams[i];
        const struct members *m = u->members;
        for (uint32_t j = 0; u->conf->health.enabled && j < m->nservers; j++) {
            struct hc_target *t = targets[m->servers[j]->rt->slot];
            if (!t || t->rt != m->servers[j]->rt)
                nnew++;
        }
    }
    for (uint32_t i = 0; i < g->nupstreams; i++) {
        struct upstream *u = &g->upstreams[i];
        const struct members *m = u->members;
        for (uint32_t j = 0; j < m->nservers; j++) {
            struct server *s = m->servers[j];
            struct hc_target *t = targets[s->rt->slot];
            if (!u->conf->health.enabled) {
                unchecked_up(u, s->rt);
                continue;
            }
            if (t && t->rt == s->rt) {
                if (target_configure(t, u, s) > 0)
                    check_abort(t);
                t->keep = true;
                continue;
            }
            if (!(t = calloc(1, sizeof(*t)))) {
                log_error("health: out of memory; %s is not checked", s->rt->key);
                continue;
            }
            t->fd = -1;
            t->tc.ops = &conn_plain_ops;
            ev_init(&t->tmr, hc_timer_cb);
            ev_init(&t->io, hc_io_cb);
            if (target_configure(t, u, s) < 0) {
                free(t->req);
                free(t);
                log_error("health: out of memory; %s is not checked", s->rt->key);
                continue;
            }
            server_rt_ref(s->rt);
            t->rt = s->rt;
            t->keep = true;
            targets[s->rt->slot] = t;
            double frac = ((double)k++ + (double)(rng_next(&rnd) >> 11) / 9007199254740992.0) /
                          (double)(nnew ? nnew : 1);
            timer_in(t, (uint64_t)(frac * (double)t->interval_ms));
        }
    }
    for (uint32_t i = 0; i < ntargets; i++) {
        if (targets[i] && !targets[i]->keep) {
            target_free(targets[i]);
            targets[i] = NULL;
        }
    }
}

void
health_stop(void)
{
    for (uint32_t i = 0; i < ntargets; i++)
        if (targets[i])
            target_free(targets[i]);
    free(targets);
    targets = NULL;
    ntargets = 0;
    if (replan_inited)
        ev_timer_stop(ctl.loop, &replan_tmr);
    stopped = true;
}
