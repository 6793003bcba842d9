/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the whole request path: the real client, request,
 * upstream-connection and tunnel state machines of one worker, in one process,
 * with socket pairs for the network. The fuzzer's bytes are a script: what the
 * client sends and when, what the pods answer and when, who reads and who
 * closes; the split points of both streams are the script's step boundaries.
 *
 * Input: a header, then steps, each introduced by the separator "\xfe\xfd":
 *   header  byte 0: bits 0-1 tune bufsize (4k, 16k, 64k, 1m); bit 2 the client
 *           comes on the proxy_protocol listen; bit 3 the client starts without
 *           reading (a slow reader); bit 4 tether's client socket has a small
 *           send buffer (else 4 MiB with 1m buffers); bit 5 so have its pod sockets; bit 6 the pods
 * start without reading; bit 7 the client is IPv6. byte 1: the client address's last byte. 'C' DATA
 * the client sends DATA 'X' HI LO DATA  the client sends DATA (HI*256+LO) times (bulk pipelining)
 *   'P' DATA        the current pod sends DATA
 *   'Y' HI LO DATA  the current pod sends DATA (HI*256+LO) times
 *   'R' / 'T'       the client / the pods stop or resume reading
 *   'S'             the client half-closes (shutdown SHUT_WR)
 *   'H' / 'Q'       the current pod half-closes / closes
 *   'N' / 'D'       the next connect is refused / reaches a pod that is gone
 *   'K' I           pod connection I (mod their number) becomes the current one
 * The current pod is the one that last received bytes (or was last connected).
 * Each step runs the event loop until nothing moves (bounded); at the end the
 * client and the pods read everything, the loop runs dry, and the oracle
 * (exchange_oracle.c) checks the streams; then everything is closed and every
 * buffer, descriptor and connection count must be back.
 *
 * Seams: client_accept() takes the client's socket as the worker's accept path
 * would; upconn_open (upstream_conn.h) hands out socket pairs instead of TCP
 * connects. Timers never fire (no wall-clock waits): timeouts are out of scope.
 * The exchange runs on its own thread with an 8 MiB stack, as a worker does. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/balance.h>
#include <tether/client.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/qsbr.h>
#include <tether/ratelimit.h>
#include <tether/session.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/upstream_conn.h>
#include <tether/worker.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exchange.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define EX_SEP          "\xfe\xfd"
#define EX_GEN_MAX      (4u << 20) /* bytes the repeat steps may produce per input */
#define EX_STEP_ITERS   4000       /* loop turns per step before moving on */
#define EX_TOTAL_ITERS  200000     /* loop turns per input */
#define EX_SPIN_TURNS   1000       /* turns with events but no byte moved: a spin */
#define EX_MAX_FDS      64         /* descriptors handed to tether per input */
#define EX_SMALL_SNDBUF 4096       /* a small send buffer (the kernel doubles it) */
#define EX_BIG_SNDBUF   (4 << 20)  /* the harness's own sends */

/* One end the harness plays: bytes queued to send, what it sent and got. */
struct hend {
    int fd;
    bool reading, eof, closed;
    struct ex_bytes out;
    size_t out_off;
    struct ex_bytes sent, got;
};

static struct {
    struct worker *w;
    char secret_path[64];
    unsigned port[2];
    uint64_t gen_id;
    /* the current input */
    uint8_t flags, addr;
    struct hend client;
    struct hend pod[EX_MAX_PODS];
    uint32_t npods, cur;
    bool refuse_next, dead_next, pods_reading, client_shut;
    size_t generated;
    uint64_t events, iters;
    int fds[EX_MAX_FDS];
    uint32_t nfds;
} ex;

static void
note_fd(int fd)
{
    if (ex.nfds < EX_MAX_FDS)
        ex.fds[ex.nfds++] = fd;
}

static void
set_sndbuf(int fd, int bytes)
{
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
}

/* ---- the pods: upconn_open hands out one end of a socket pair ---- */

static int
ex_connect(const struct sock_addr *a)
{
    int sv[2];
    (void)a;
    if (ex.refuse_next) {
        ex.refuse_next = false;
        errno = ECONNREFUSED;
        return -1;
    }
    if (ex.npods >= EX_MAX_PODS) {
        errno = EMFILE;
        return -1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    if (ex.flags & 0x20)
        set_sndbuf(sv[0], EX_SMALL_SNDBUF);
    set_sndbuf(sv[1], EX_BIG_SNDBUF);
    note_fd(sv[0]);
    struct hend *p = &ex.pod[ex.npods];
    memset(p, 0, sizeof(*p));
    p->fd = sv[1];
    p->reading = ex.pods_reading;
    if (ex.dead_next) {
        ex.dead_next = false;
        close(p->fd);
        p->fd = -1;
        p->closed = true;
    }
    ex.cur = ex.npods++;
    return sv[0];
}

/* ---- harness I/O ---- */

/* Send what is queued; true when a byte moved. */
static bool
hend_flush(struct hend *h)
{
    bool moved = false;
    while (h->fd >= 0 && h->out_off < h->out.len) {
        ssize_t r = send(h->fd, h->out.p + h->out_off, h->out.len - h->out_off, MSG_NOSIGNAL);
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            h->out_off = h->out.len; /* the peer is gone: the rest is never sent */
            break;
        }
        ex_bytes_add(&h->sent, h->out.p + h->out_off, (size_t)r);
        h->out_off += (size_t)r;
        moved = true;
    }
    return moved;
}

static bool
hend_drain(struct hend *h)
{
    char buf[65536];
    bool moved = false;
    while (h->fd >= 0 && !h->eof) {
        ssize_t r = recv(h->fd, buf, sizeof(buf), 0);
        if (r > 0) {
            ex_bytes_add(&h->got, buf, (size_t)r);
            moved = true;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        h->eof = true; /* FIN or reset */
        moved = true;
    }
    return moved;
}

static bool
harness_io(void)
{
    bool moved = hend_flush(&ex.client);
    if (ex.client.reading)
        moved |= hend_drain(&ex.client);
    for (uint32_t i = 0; i < ex.npods; i++) {
        struct hend *p = &ex.pod[i];
        moved |= hend_flush(p);
        size_t before = p->got.len;
        if (p->reading)
            moved |= hend_drain(p);
        if (p->got.len > before)
            ex.cur = i;
    }
    return moved;
}

static void
count_pending(struct ev_loop *loop)
{
    ex.events += (uint64_t)ev_pending_count(loop);
    ev_invoke_pending(loop);
}

/* Bytes the harness sent that tether has not read yet, over every socket: a
 * change means tether consumed something. */
static long
unread_total(void)
{
    long sum = 0;
    int q;
    if (ex.client.fd >= 0 && ioctl(ex.client.fd, SIOCOUTQ, &q) == 0)
        sum += q;
    for (uint32_t i = 0; i < ex.npods; i++)
        if (ex.pod[i].fd >= 0 && ioctl(ex.pod[i].fd, SIOCOUTQ, &q) == 0)
            sum += q;
    return sum;
}

/* Run the loop until neither tether nor the harness moves; true when it did.
 * Events that move no byte, turn after turn, are a spin (a watcher left armed
 * on input nobody consumes): a finding. */
static bool
pump(unsigned max)
{
    unsigned idle_turns = 0;
    for (unsigned i = 0; i < max && ex.iters < EX_TOTAL_ITERS; i++) {
        long unread = unread_total();
        bool moved = harness_io();
        ex.events = 0;
        ex.w->now_ms = time_mono_ms();
        ev_run(ex.w->loop, EVRUN_NOWAIT);
        ex.iters++;
        if (!moved && ex.events == 0)
            return true;
        if (moved || unread_total() != unread) {
            idle_turns = 0;
        } else if (++idle_turns >= EX_SPIN_TURNS) {
            /* FUZZ_EXCHANGE_SPIN=ignore: go on (looking for other defects while
             * a known spin is open). */
            const char *how = getenv("FUZZ_EXCHANGE_SPIN");
            if (how && strcmp(how, "ignore") == 0)
                return false;
            fprintf(stderr, "fuzz_exchange: SPIN: %u loop turns with events and no byte moved\n",
                    idle_turns);
            abort();
        }
    }
    return false;
}

/* ---- the script ---- */

/* A pod's X-Request-Id would be relayed as is: rename it, so the id the client
 * gets is always tether's (the oracle matches answers to requests by it). */
static void
pod_queue(struct hend *p, const uint8_t *d, size_t n)
{
    static const char name[] = "x-request-id";
    size_t at = p->out.len;
    ex_bytes_add(&p->out, d, n);
    for (size_t i = at; i + 12 <= p->out.len; i++) {
        size_t k = 0;
        while (k < 12 && (p->out.p[i + k] | 0x20) == name[k])
            k++;
        if (k == 12)
            p->out.p[i + 11] = '_';
    }
}

static void
queue_repeat(struct hend *h, bool pod, const uint8_t *d, size_t n)
{
    if (n < 3)
        return;
    size_t times = ((size_t)d[0] << 8 | d[1]) + 1;
    d += 2;
    n -= 2;
    while (times-- && ex.generated + n <= EX_GEN_MAX) {
        ex.generated += n;
        if (pod)
            pod_queue(h, d, n);
        else
            ex_bytes_add(&h->out, d, n);
    }
}

static struct hend *
cur_pod(void)
{
    return ex.npods ? &ex.pod[ex.cur] : NULL;
}

static void
step(const uint8_t *d, size_t n)
{
    struct hend *p = cur_pod();
    if (n == 0)
        return;
    uint8_t op = d[0];
    d++;
    n--;
    switch (op) {
    case 'C':
        ex_bytes_add(&ex.client.out, d, n);
        break;
    case 'X':
        queue_repeat(&ex.client, false, d, n);
        break;
    case 'P':
        if (p)
            pod_queue(p, d, n);
        break;
    case 'Y':
        if (p)
            queue_repeat(p, true, d, n);
        break;
    case 'R':
        ex.client.reading = !ex.client.reading;
        break;
    case 'T':
        ex.pods_reading = !ex.pods_reading;
        for (uint32_t i = 0; i < ex.npods; i++)
            ex.pod[i].reading = ex.pods_reading;
        break;
    case 'S':
        if (!ex.client_shut) {
            hend_flush(&ex.client);
            shutdown(ex.client.fd, SHUT_WR);
            ex.client_shut = true;
            ex.client.out_off = ex.client.out.len;
        }
        break;
    case 'H':
        if (p && p->fd >= 0) {
            hend_flush(p);
            shutdown(p->fd, SHUT_WR);
            p->out_off = p->out.len;
        }
        break;
    case 'Q':
        if (p && p->fd >= 0) {
            hend_flush(p);
            close(p->fd);
            p->fd = -1;
            p->closed = true;
        }
        break;
    case 'N':
        ex.refuse_next = true;
        break;
    case 'D':
        ex.dead_next = true;
        break;
    case 'K':
        if (n && ex.npods)
            ex.cur = d[0] % ex.npods;
        break;
    default:
        return;
    }
    pump(EX_STEP_ITERS);
}

/* ---- one input's tether: configuration, generation, client ---- */

static const char conf_fmt[] =
    "workers 1;\n"
    "error_log stderr error;\n"
    "affinity {\n"
    "    cookie VOICE_AFFINITY max_age=900s secret_file=%s;\n"
    "    header X-Voice-Session-Id;\n"
    "    learn header=X-Voice-Session-Id cookie=app_session;\n"
    "    session_cookie app_session;\n"
    "    path /webhook/{id}/;\n"
    "    ttl 900s;\n"
    "    table_size 1024;\n"
    "}\n"
    "rate_limit_zone per_ip key=$remote_addr rate=6r/m burst=3 nodelay size=64k;\n"
    "rate_limit_zone per_sid key=$http_x_voice_session_id rate=6r/m burst=1 nodelay "
    "status=503 size=64k;\n"
    "upstream voice {\n"
    "    balance least_conn;\n"
    "    server pod-a 127.0.0.1:9001;\n"
    "    server pod-b 127.0.0.1:9002;\n"
    "    keepalive 4;\n"
    "    retries 1;\n"
    "    retry_on connect-failure refused reset 502 503;\n"
    "    outlier { enabled off; }\n"
    "}\n"
    "upstream hashed {\n"
    "    balance hash;\n"
    "    server h-1 127.0.0.1:9003;\n"
    "    server h-2 127.0.0.1:9004;\n"
    "    keepalive 2;\n"
    "    retries 0;\n"
    "    outlier { enabled off; }\n"
    "}\n"
    "server {\n"
    "    listen 127.0.0.1:%u;\n"
    "    listen 127.0.0.1:%u proxy_protocol;\n"
    "    keepalive_requests 100000;\n"
    "    client_max_body_size 256k;\n"
    "    route = /session { upstream voice; affinity none; learn on; limit_req per_ip; }\n"
    "    route /ws/ { upstream voice; affinity cookie; }\n"
    "    route /tools/ { upstream voice; affinity cookie; }\n"
    "    route /webhook/ { upstream voice; affinity session; limit_req per_sid; }\n"
    "    route /h/ { upstream hashed; affinity header; }\n"
    "    route /rl/ { upstream voice; limit_req per_ip; }\n"
    "    route = /ok { upstream voice; }\n"
    "    route /t { upstream voice; }\n"
    "}\n";

static unsigned
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* The generation is built once (building the consistent-hash rings of a
 * generation costs more than most inputs); state_reset() gives every input the
 * state of a freshly started tether. */
static struct gen *
build_gen(void)
{
    char text[sizeof(conf_fmt) + 128];
    struct err e = {{0}};
    for (int attempt = 0; attempt < 5; attempt++) {
        if (!ex.port[0] || attempt) {
            ex.port[0] = free_port();
            ex.port[1] = free_port();
        }
        int n = snprintf(text, sizeof(text), conf_fmt, ex.secret_path, ex.port[0], ex.port[1]);
        struct conf *c = conf_parse_text(text, (size_t)n, "fuzz_exchange.conf", &e);
        if (!c) {
            fprintf(stderr, "fuzz_exchange: built-in configuration: %s\n", e.msg);
            abort();
        }
        struct gen *g = gen_build(c, NULL, 1, ++ex.gen_id, &e);
        if (g)
            return g;
    }
    fprintf(stderr, "fuzz_exchange: cannot build a generation: %s\n", e.msg);
    abort();
}

static void
accept_client(struct gen *g)
{
    static const uint32_t bufsizes[4] = {4096, 16384, 65536, 1u << 20};
    struct worker *w = ex.w;
    int sv[2];
    if (w->bufs.bufsize != bufsizes[ex.flags & 3]) {
        buf_pool_fini(&w->bufs);
        buf_pool_init(&w->bufs, bufsizes[ex.flags & 3], 256);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    /* With 1m buffers the client's socket is as roomy as a fast TCP path's, so
     * thousands of pipelined answers fit without a pause (defect 2's stack). */
    if (ex.flags & 0x10)
        set_sndbuf(sv[0], EX_SMALL_SNDBUF);
    else if ((ex.flags & 3) == 3)
        set_sndbuf(sv[0], EX_BIG_SNDBUF);
    set_sndbuf(sv[1], EX_BIG_SNDBUF);
    note_fd(sv[0]);
    ex.client.fd = sv[1];
    ex.client.reading = !(ex.flags & 0x08);

    struct sock_addr peer;
    memset(&peer, 0, sizeof(peer));
    if (ex.flags & 0x80) {
        peer.u.in6.sin6_family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8::1", &peer.u.in6.sin6_addr);
        peer.u.in6.sin6_addr.s6_addr[15] = ex.addr;
        peer.u.in6.sin6_port = htons(40000);
        peer.len = sizeof(peer.u.in6);
    } else {
        peer.u.in.sin_family = AF_INET;
        peer.u.in.sin_addr.s_addr = htonl(0xc0000200u | ex.addr); /* 192.0.2.0/24 */
        peer.u.in.sin_port = htons(40000);
        peer.len = sizeof(peer.u.in);
    }
    /* The worker's listener for the plain or the proxy_protocol listen. */
    struct gen_listen *gl = &g->listens[(ex.flags & 0x04) ? 1 : 0];
    static struct wlisten wl;
    wl.w = w;
    wl.socks = gl->socks;
    wl.gl = gl;
    client_accept(w, &wl, sv[0], &peer);
}

static void
hend_free(struct hend *h)
{
    if (h->fd >= 0)
        close(h->fd);
    ex_bytes_free(&h->out);
    ex_bytes_free(&h->sent);
    ex_bytes_free(&h->got);
    memset(h, 0, sizeof(*h));
    h->fd = -1;
}

/* What one input may leave in the generation, back to a fresh start: the
 * rate-limit zones (their tables are dropped with their last handle and made
 * anew), the learned-session table, the balancer cursors. Every server's
 * in-flight count must be back to zero: an exchange that ended without giving
 * back its slot would keep a server looking busy forever. */
static void
state_reset(struct gen *g)
{
    struct err e = {{0}};
    for (uint32_t i = 0; i < g->nzones; i++) {
        rl_zone_put(g->zones[i]);
        if (!(g->zones[i] = rl_zone_get(&g->conf->zones[i], &e)))
            abort();
    }
    for (uint32_t v = 0; v < g->nvservers; v++)
        for (uint32_t r = 0; r < g->vservers[v].nroutes; r++) {
            struct route *rt = &g->vservers[v].routes[r];
            for (uint32_t z = 0; z < rt->nzones; z++)
                rt->zones[z] = g->zones[rt->conf->zones[z]];
        }
    session_table_free(g->aff->table);
    if (!(g->aff->table = session_table_new(g->conf->affinity.table_size, 64)))
        abort();
    for (uint32_t i = 0; i < g->nupstreams; i++) {
        struct upstream *u = &g->upstreams[i];
        struct lb_cursor *c = &u->cursors[0];
        c->region_pos = 0;
        for (uint32_t r = 0; r < (u->nregions ? u->nregions : 1); r++)
            c->server_pos[r] = 0;
        c->rng = 0x9e3779b97f4a7c15ull + i;
        c->budget_reqs = c->budget_rets = 0;
        const struct members *m = upstream_members(u);
        for (uint32_t k = 0; m && k < m->nservers; k++) {
            struct server_rt *srt = m->servers[k]->rt;
            if (atomic_load(&srt->active) != 0) {
                fprintf(stderr, "fuzz_exchange: LEAK: server %s still counts %d requests\n",
                        srt->key, (int)atomic_load(&srt->active));
                abort();
            }
        }
    }
    ex.w->rng = 0x2545f4914f6cdd1dull;
}

/* Close what is left, as a stopping worker does, and check nothing leaked. */
static void
teardown(struct gen *g)
{
    struct worker *w = ex.w;
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->clients)
    {
        client_close(container_of(pos, struct client, link), TERM_SHUTDOWN);
    }
    tunnel_close_all(w);
    upconn_pools_close(w);
    hend_free(&ex.client);
    for (uint32_t i = 0; i < ex.npods; i++)
        hend_free(&ex.pod[i]);
    state_reset(g);
    if (w->nclients || w->ntunnels || w->bufs.in_use || atomic_load(&conns_open)) {
        fprintf(stderr,
                "fuzz_exchange: LEAK after close-all: %u clients, %u tunnels, %llu buffers, "
                "%u connections counted\n",
                w->nclients, w->ntunnels, (unsigned long long)w->bufs.in_use,
                atomic_load(&conns_open));
        abort();
    }
    for (uint32_t i = 0; i < ex.nfds; i++) {
        if (fcntl(ex.fds[i], F_GETFD) != -1) {
            fprintf(stderr, "fuzz_exchange: LEAK: descriptor %d handed to tether is still open\n",
                    ex.fds[i]);
            abort();
        }
    }
}

/* FUZZ_EXCHANGE_TRACE=1: print the streams of each input (reproducing a find). */
static void
trace_bytes(const char *who, const struct ex_bytes *b)
{
    size_t n = b->len < 2048 ? b->len : 2048;
    fprintf(stderr, "--- %s (%zu bytes)\n", who, b->len);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b->p[i];
        if (c == '\n' || (c >= 32 && c < 127))
            fputc(c, stderr);
        else if (c != '\r')
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, "%s\n", n < b->len ? "\n[...]" : "");
}

static void
trace(bool quiet)
{
    static int on = -1;
    if (on < 0)
        on = getenv("FUZZ_EXCHANGE_TRACE") != NULL;
    if (!on)
        return;
    fprintf(stderr, "=== flags 0x%02x, %llu loop turns, %s, client %s\n", ex.flags,
            (unsigned long long)ex.iters, quiet ? "quiet" : "NOT quiet",
            ex.client.eof ? "saw EOF" : "open");
    trace_bytes("client sent", &ex.client.sent);
    trace_bytes("client got", &ex.client.got);
    for (uint32_t i = 0; i < ex.npods; i++) {
        char who[32];
        snprintf(who, sizeof(who), "pod %u got", i);
        trace_bytes(who, &ex.pod[i].got);
    }
}

static void
run_input(const uint8_t *data, size_t size)
{
    const uint8_t *end = data + size;
    const uint8_t *sep = memmem(data, size, EX_SEP, 2);
    const uint8_t *hdr_end = sep ? sep : end;
    ex.flags = hdr_end > data ? data[0] : 0;
    ex.addr = hdr_end - data > 1 ? data[1] : 1;
    ex.npods = ex.cur = 0;
    ex.refuse_next = ex.dead_next = ex.client_shut = false;
    ex.pods_reading = !(ex.flags & 0x40);
    ex.generated = 0;
    ex.iters = 0;
    ex.nfds = 0;
    ex.client.fd = -1;

    struct gen *g = ex.w->gen;
    accept_client(g);

    while (sep) {
        const uint8_t *s = sep + 2;
        sep = memmem(s, (size_t)(end - s), EX_SEP, 2);
        step(s, (size_t)((sep ? sep : end) - s));
    }
    /* The end: everyone reads, the loop runs dry, the oracle looks. */
    ex.client.reading = true;
    ex.pods_reading = true;
    for (uint32_t i = 0; i < ex.npods; i++)
        ex.pod[i].reading = true;
    bool quiet = pump(EX_TOTAL_ITERS);
    trace(quiet);

    struct ex_view v = {
        .client_sent = &ex.client.sent,
        .client_got = &ex.client.got,
        .npods = ex.npods,
        .proxy_protocol = (ex.flags & 0x04) != 0,
        .client_eof = ex.client.eof,
        .client_shut = ex.client_shut,
        .quiet = quiet,
        .max_head_bytes = (uint32_t)g->vservers[0].conf->max_head_bytes,
        .max_headers = g->vservers[0].conf->max_headers,
    };
    for (uint32_t i = 0; i < ex.npods; i++)
        v.pod_got[i] = &ex.pod[i].got;
    ex_oracle_check(&v);
    teardown(g);
}

/* ---- set-up and the exchange thread ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static const uint8_t *job_data;
static size_t job_size;
static bool job_ready, job_done;

static void *
exchange_thread(void *arg)
{
    (void)arg;
    worker_self = ex.w;
    qsbr_online(0);
    for (;;) {
        pthread_mutex_lock(&mu);
        while (!job_ready)
            pthread_cond_wait(&cv, &mu);
        job_ready = false;
        pthread_mutex_unlock(&mu);
        run_input(job_data, job_size);
        pthread_mutex_lock(&mu);
        job_done = true;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static void
remove_secret(void)
{
    unlink(ex.secret_path);
}

static void
setup(void)
{
    static const char secret[] = "fuzz-exchange-affinity-secret-0123456789\n";
    signal(SIGPIPE, SIG_IGN);
    atomic_store(&log_level, LOG_LVL_ERROR + 1); /* quiet: errors are the point */
    if (stats_init(2) < 0 || qsbr_init(1) < 0 || workers_create(1, 1u << 20) < 0)
        abort();
    ex.w = &workers[0];
    /* The harness drives the loop: no housekeeping tick, no QSBR hooks (one
     * thread), and a count of the events each turn. */
    ev_prepare_stop(ex.w->loop, &ex.w->prep);
    ev_check_stop(ex.w->loop, &ex.w->chk);
    ev_timer_stop(ex.w->loop, &ex.w->tick);
    ev_set_invoke_pending_cb(ex.w->loop, count_pending);
    upconn_open = ex_connect;

    snprintf(ex.secret_path, sizeof(ex.secret_path), "/tmp/fuzz_exchange.%ld.key", (long)getpid());
    int fd = open(ex.secret_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, secret, sizeof(secret) - 1) != (ssize_t)sizeof(secret) - 1)
        abort();
    close(fd);
    atexit(remove_secret);
    ex.w->gen = build_gen();
    state_reset(ex.w->gen);

    pthread_attr_t attr;
    pthread_t th;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8u << 20);
    if (pthread_create(&th, &attr, exchange_thread, NULL) != 0)
        abort();
    pthread_attr_destroy(&attr);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    pthread_mutex_lock(&mu);
    job_data = data;
    job_size = size;
    job_done = false;
    job_ready = true;
    pthread_cond_broadcast(&cv);
    while (!job_done)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return 0;
}
