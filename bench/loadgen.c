/* SPDX-License-Identifier: MIT */
/* loadgen: the small load generator of tether's benchmarks, for what wrk cannot do.
 *
 *   loadgen -m tls  ...  new TLS connection per request: connect, full handshake (or a
 *                        resumed one with --resume), GET with "Connection: close", read the
 *                        answer until the server closes; repeat. Rate = handshakes/s.
 *   loadgen -m ws   ...  WebSocket echo: upgrade once per connection (over TLS with --tls),
 *                        then send a masked binary frame and wait for its echo, repeat.
 *                        Rate = messages/s (one message = one round trip).
 *   loadgen -m idle ...  open N WebSocket tunnels (upgrade, read the 101), then hold them
 *                        idle; prints "established N" once all are up and keeps them until
 *                        stdin reaches EOF, SIGTERM/SIGINT, or -d seconds.
 *
 * One thread, epoll (edge-triggered), non-blocking sockets and OpenSSL. Every loop is
 * bounded by -d seconds (and -n operations). Output: one line of key=value pairs.
 * Build: cc -O2 -o loadgen loadgen.c -lssl -lcrypto */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum mode { M_TLS, M_WS, M_IDLE };

enum state {
    S_FREE = 0,
    S_CONNECTING,
    S_HANDSHAKE,
    S_SEND,      /* writing c->out */
    S_READ_EOF,  /* tls mode: read the answer until the server closes */
    S_READ_101,  /* ws/idle: read the upgrade answer head */
    S_ECHO_RECV, /* ws: read the echoed frame */
    S_IDLE,      /* idle: tunnel up, nothing to do */
};

struct conn {
    int fd;
    enum state st;
    SSL *ssl;
    SSL_SESSION *sess; /* --resume: the session to offer on the next connection */
    const char *out;
    size_t outlen, outoff;
    char head[1024]; /* 101 head (ws/idle) or the answer's first bytes (tls) */
    size_t headlen;
    size_t need, got; /* ws echo: bytes expected / received */
    uint64_t t0;      /* start of the current operation (ns) */
};

/* options */
static enum mode mode = M_TLS;
static struct sockaddr_in target;
static int use_tls;
static int resume;
static int nconns = 50;
static double duration = 10;
static uint64_t max_ops = UINT64_MAX;
static size_t msg_size = 64;
static const char *path = "/";
static const char *host_hdr = "localhost";
static const char *sni = "localhost";
static int ramp = 256; /* idle: connections being set up at once */
static int quiet;

/* state */
static SSL_CTX *ctx;
static int ep;
static struct conn *conns;
static int total_target; /* idle: tunnels wanted */
static int setting_up, established, dropped;
static volatile sig_atomic_t stop_flag;
static uint64_t ops, errors, reused, fulls, bad_status;
static uint64_t t_start, t_end;
static char *req_buf, *frame_buf;
static size_t req_len, frame_len, echo_len;
static char proto_seen[32], cipher_seen[64], group_seen[32];

/* latency histogram: 1 µs buckets below 100 ms, 1 ms buckets up to 100 s */
#define HIST_US 100000
#define HIST_MS 100000
static uint32_t *hist, *hist_ms;
static uint64_t hist_over;

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void
die(const char *fmt, const char *arg)
{
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(2);
}

static void
record(uint64_t t0)
{
    uint64_t us = (now_ns() - t0) / 1000;

    ops++;
    if (us < HIST_US)
        hist[us]++;
    else if (us / 1000 < HIST_MS)
        hist_ms[us / 1000]++;
    else
        hist_over++;
}

static double
percentile(double p)
{
    uint64_t total = 0, want, acc = 0;
    size_t i;

    for (i = 0; i < HIST_US; i++)
        total += hist[i];
    for (i = 0; i < HIST_MS; i++)
        total += hist_ms[i];
    total += hist_over;
    if (!total)
        return 0;
    want = (uint64_t)(p / 100.0 * (double)total + 0.5);
    if (want < 1)
        want = 1;
    for (i = 0; i < HIST_US; i++) {
        acc += hist[i];
        if (acc >= want)
            return (double)i + 0.5;
    }
    for (i = 0; i < HIST_MS; i++) {
        acc += hist_ms[i];
        if (acc >= want)
            return (double)i * 1000 + 500;
    }
    return (double)HIST_MS * 1000;
}

static int conn_open(struct conn *c);

static void
conn_close(struct conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->st = S_FREE;
}

/* Ends the connection after a failure; opens a new one unless stopping. */
static void
conn_fail(struct conn *c)
{
    errors++;
    if (mode == M_IDLE) {
        if (c->st == S_IDLE) {
            established--;
            dropped++;
        } else if (c->st != S_FREE) {
            setting_up--;
        }
    }
    conn_close(c);
    if (mode != M_IDLE && !stop_flag)
        conn_open(c); /* the idle opener reuses free slots itself */
}

/* Reads up to <cap> bytes: >0 read, 0 EOF, -1 would block, -2 error. */
static ssize_t
io_read(struct conn *c, char *buf, size_t cap)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, (int)cap);
        if (r > 0)
            return r;
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return -1;
        case SSL_ERROR_ZERO_RETURN:
            return 0;
        case SSL_ERROR_SYSCALL:
            return errno == 0 ? 0 : -2;
        default:
            ERR_clear_error();
            return -2;
        }
    }
    for (;;) {
        ssize_t r = read(c->fd, buf, cap);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN ? -1 : -2;
    }
}

static ssize_t
io_write(struct conn *c, const char *buf, size_t len)
{
    if (c->ssl) {
        int r = SSL_write(c->ssl, buf, (int)len);
        if (r > 0)
            return r;
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return -1;
        default:
            ERR_clear_error();
            return -2;
        }
    }
    for (;;) {
        ssize_t r = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN ? -1 : -2;
    }
}

static void
set_out(struct conn *c, const char *p, size_t n)
{
    c->out = p;
    c->outlen = n;
    c->outoff = 0;
    c->st = S_SEND;
}

/* After the TCP (and TLS) connection is up: what to send first. */
static void
begin_exchange(struct conn *c)
{
    c->headlen = 0;
    set_out(c, req_buf, req_len);
}

/* Runs the connection's state machine until it would block. */
static void
drive(struct conn *c, uint32_t events)
{
    char buf[16384];
    ssize_t n;

    for (;;) {
        switch (c->st) {
        case S_FREE:
            return;
        case S_CONNECTING: {
            int err = 0;
            socklen_t el = sizeof(err);
            if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                return;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
                conn_fail(c);
                return;
            }
            if (use_tls) {
                c->ssl = SSL_new(ctx);
                if (!c->ssl) {
                    conn_fail(c);
                    return;
                }
                SSL_set_fd(c->ssl, c->fd);
                SSL_set_tlsext_host_name(c->ssl, sni);
                if (resume && c->sess)
                    SSL_set_session(c->ssl, c->sess);
                c->st = S_HANDSHAKE;
            } else {
                begin_exchange(c);
            }
            break;
        }
        case S_HANDSHAKE: {
            int r = SSL_connect(c->ssl), e;
            if (r == 1) {
                if (SSL_session_reused(c->ssl))
                    reused++;
                else
                    fulls++;
                if (!proto_seen[0]) {
                    const char *g;
                    snprintf(proto_seen, sizeof(proto_seen), "%s", SSL_get_version(c->ssl));
                    snprintf(cipher_seen, sizeof(cipher_seen), "%s",
                             SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
                    g = SSL_group_to_name(c->ssl, SSL_get_negotiated_group(c->ssl));
                    snprintf(group_seen, sizeof(group_seen), "%s", g ? g : "?");
                }
                begin_exchange(c);
                break;
            }
            e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            ERR_clear_error();
            conn_fail(c);
            return;
        }
        case S_SEND:
            while (c->outoff < c->outlen) {
                n = io_write(c, c->out + c->outoff, c->outlen - c->outoff);
                if (n == -1)
                    return;
                if (n < 0) {
                    conn_fail(c);
                    return;
                }
                c->outoff += (size_t)n;
            }
            if (c->out == frame_buf) {
                c->st = S_ECHO_RECV;
                c->got = 0;
            } else if (mode == M_TLS) {
                c->st = S_READ_EOF;
            } else {
                c->st = S_READ_101;
            }
            break;
        case S_READ_EOF:
            n = io_read(c, buf, sizeof(buf));
            if (n == -1)
                return;
            if (n > 0) {
                if (c->headlen < 12) {
                    size_t k = (size_t)n < 12 - c->headlen ? (size_t)n : 12 - c->headlen;
                    memcpy(c->head + c->headlen, buf, k);
                    c->headlen += k;
                }
                break;
            }
            /* EOF (or reset after a complete answer): one operation done */
            if (c->headlen >= 12 && memcmp(c->head, "HTTP/1.1 200", 12) == 0) {
                if (!stop_flag)
                    record(c->t0);
            } else {
                bad_status++;
                errors++;
            }
            /* a clean end: without this SSL_free() would mark the session not resumable */
            if (c->ssl)
                SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            if (resume && c->ssl) {
                SSL_SESSION *s = SSL_get1_session(c->ssl);
                if (s) {
                    if (c->sess)
                        SSL_SESSION_free(c->sess);
                    c->sess = s;
                }
            }
            conn_close(c);
            if (!stop_flag && ops < max_ops)
                conn_open(c);
            return;
        case S_READ_101: {
            char *end;
            n = io_read(c, c->head + c->headlen, sizeof(c->head) - 1 - c->headlen);
            if (n == -1)
                return;
            if (n <= 0) {
                conn_fail(c);
                return;
            }
            c->headlen += (size_t)n;
            c->head[c->headlen] = 0;
            end = strstr(c->head, "\r\n\r\n");
            if (!end) {
                if (c->headlen >= sizeof(c->head) - 1) {
                    conn_fail(c);
                    return;
                }
                break;
            }
            if (strncmp(c->head, "HTTP/1.1 101", 12) != 0) {
                bad_status++;
                if (!quiet && bad_status == 1)
                    fprintf(stderr, "loadgen: upgrade refused: %.*s\n",
                            (int)(strcspn(c->head, "\r\n")), c->head);
                conn_fail(c);
                return;
            }
            if (mode == M_IDLE) {
                c->st = S_IDLE;
                setting_up--;
                established++;
                break;
            }
            /* bytes after the head would be a frame we did not ask for */
            c->t0 = now_ns();
            set_out(c, frame_buf, frame_len);
            break;
        }
        case S_ECHO_RECV:
            n = io_read(c, buf, sizeof(buf));
            if (n == -1)
                return;
            if (n <= 0) {
                conn_fail(c);
                return;
            }
            c->got += (size_t)n;
            if (c->got < echo_len)
                break;
            if (c->got > echo_len) { /* more than one echo: not what we sent */
                conn_fail(c);
                return;
            }
            if (!stop_flag)
                record(c->t0);
            if (stop_flag || ops >= max_ops)
                return;
            c->t0 = now_ns();
            set_out(c, frame_buf, frame_len);
            break;
        case S_IDLE:
            n = io_read(c, buf, sizeof(buf));
            if (n == -1)
                return;
            if (n > 0)
                break; /* unexpected data: ignore */
            conn_fail(c);
            return;
        }
    }
}

static int
conn_open(struct conn *c)
{
    struct epoll_event ev;
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        errors++;
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->t0 = now_ns();
    c->st = S_CONNECTING;
    if (mode == M_IDLE)
        setting_up++;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        close(c->fd);
        c->fd = -1;
        c->st = S_FREE;
        errors++;
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&target, sizeof(target)) < 0 && errno != EINPROGRESS) {
        conn_fail(c);
        return -1;
    }
    return 0;
}

static void
usage(FILE *f)
{
    fputs("usage: loadgen -m tls|ws|idle -a HOST:PORT [-c CONNS] [-d SECS] [-n OPS]\n"
          "               [--tls] [--resume] [-s MSG_BYTES] [-p PATH] [--host NAME]\n"
          "               [--sni NAME] [--ramp N] [-q]\n"
          "  tls:  new TLS connection per request (full handshakes; --resume: resumed)\n"
          "  ws:   WebSocket echo round trips on -c connections (--tls for wss)\n"
          "  idle: open -c WebSocket tunnels, print 'established N', hold them until\n"
          "        stdin EOF, SIGTERM or -d seconds\n",
          f);
}

static void
parse_addr(const char *s)
{
    char h[64];
    const char *colon = strrchr(s, ':');

    if (!colon || (size_t)(colon - s) >= sizeof(h))
        die("bad address %s", s);
    memcpy(h, s, (size_t)(colon - s));
    h[colon - s] = 0;
    memset(&target, 0, sizeof(target));
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, h, &target.sin_addr) != 1)
        die("bad IPv4 address %s", h);
}

static void
build_buffers(void)
{
    size_t i, hl;
    unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    unsigned char *f;

    req_buf = malloc(1024);
    if (mode == M_TLS)
        req_len = (size_t)snprintf(req_buf, 1024,
                                   "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
                                   host_hdr);
    else
        req_len = (size_t)snprintf(req_buf, 1024,
                                   "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                   "Sec-WebSocket-Version: 13\r\n\r\n",
                                   path, host_hdr);
    hl = msg_size < 126 ? 2 : 4;
    if (msg_size > 65535)
        die("%s", "message size must be at most 65535");
    frame_len = hl + 4 + msg_size;
    echo_len = hl + msg_size;
    frame_buf = malloc(frame_len);
    f = (unsigned char *)frame_buf;
    f[0] = 0x82; /* FIN, binary */
    if (hl == 2) {
        f[1] = 0x80 | (unsigned char)msg_size;
    } else {
        f[1] = 0x80 | 126;
        f[2] = (unsigned char)(msg_size >> 8);
        f[3] = (unsigned char)msg_size;
    }
    memcpy(f + hl, mask, 4);
    for (i = 0; i < msg_size; i++)
        f[hl + 4 + i] = (unsigned char)('a' + i % 26) ^ mask[i % 4];
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {{"tls", no_argument, 0, 'T'},
                                       {"resume", no_argument, 0, 'R'},
                                       {"host", required_argument, 0, 'H'},
                                       {"sni", required_argument, 0, 'S'},
                                       {"ramp", required_argument, 0, 'r'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    struct epoll_event evs[512];
    struct rlimit rl;
    const char *addr = NULL;
    int opt, i, announced = 0, stdin_open, cursor = 0;
    uint64_t deadline;

    while ((opt = getopt_long(argc, argv, "m:a:c:d:n:s:p:qh", lo, NULL)) != -1) {
        switch (opt) {
        case 'm':
            if (!strcmp(optarg, "tls"))
                mode = M_TLS;
            else if (!strcmp(optarg, "ws"))
                mode = M_WS;
            else if (!strcmp(optarg, "idle"))
                mode = M_IDLE;
            else
                die("unknown mode %s", optarg);
            break;
        case 'a':
            addr = optarg;
            break;
        case 'c':
            nconns = atoi(optarg);
            break;
        case 'd':
            duration = atof(optarg);
            break;
        case 'n':
            max_ops = strtoull(optarg, NULL, 10);
            break;
        case 's':
            msg_size = (size_t)atol(optarg);
            break;
        case 'p':
            path = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'T':
            use_tls = 1;
            break;
        case 'R':
            resume = 1;
            break;
        case 'H':
            host_hdr = optarg;
            break;
        case 'S':
            sni = optarg;
            break;
        case 'r':
            ramp = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!addr || nconns < 1 || duration <= 0 || ramp < 1) {
        usage(stderr);
        return 2;
    }
    if (mode == M_TLS)
        use_tls = 1;
    parse_addr(addr);
    build_buffers();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (use_tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx)
            die("%s", "SSL_CTX_new failed");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
        SSL_CTX_set_session_cache_mode(ctx, resume ? SSL_SESS_CACHE_CLIENT : SSL_SESS_CACHE_OFF);
    }
    hist = calloc(HIST_US, sizeof(*hist));
    hist_ms = calloc(HIST_MS, sizeof(*hist_ms));
    conns = calloc((size_t)nconns, sizeof(*conns));
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!hist || !hist_ms || !conns || ep < 0)
        die("%s", "out of memory");
    for (i = 0; i < nconns; i++)
        conns[i].fd = -1;

    t_start = now_ns();
    deadline = t_start + (uint64_t)(duration * 1e9);
    total_target = nconns;
    stdin_open = (mode == M_IDLE);
    if (mode != M_IDLE)
        for (i = 0; i < nconns; i++)
            conn_open(&conns[i]);

    while (!stop_flag) {
        int n, timeout = 100;
        uint64_t t = now_ns();

        if (t >= deadline)
            break;
        if (mode != M_IDLE && ops >= max_ops)
            break;
        if (mode == M_IDLE) {
            /* keep at most <ramp> tunnels in set-up; none reopened once announced */
            int scanned = 0;
            while (!announced && setting_up < ramp && established + setting_up < total_target &&
                   scanned++ < nconns) {
                struct conn *c = &conns[cursor];
                cursor = (cursor + 1) % nconns;
                if (c->st == S_FREE)
                    conn_open(c);
            }
            if (!announced && established == total_target) {
                printf("established %d\n", established);
                fflush(stdout);
                announced = 1;
            }
            if (errors > (uint64_t)total_target) {
                fprintf(stderr, "loadgen: too many failures (%llu) setting up tunnels\n",
                        (unsigned long long)errors);
                break;
            }
            if (announced && stdin_open) {
                struct pollfd p = {0, POLLIN, 0};
                if (poll(&p, 1, 0) > 0) {
                    char b[256];
                    if (read(0, b, sizeof(b)) <= 0)
                        break; /* stdin closed: done */
                }
            }
        }
        n = epoll_wait(ep, evs, 512, timeout);
        for (i = 0; i < n; i++)
            drive(evs[i].data.ptr, evs[i].events);
    }
    t_end = now_ns();
    stop_flag = 1;
    {
        double secs = (double)(t_end - t_start) / 1e9;
        if (mode == M_IDLE)
            printf("mode=idle established=%d dropped=%d errors=%llu secs=%.3f\n", established,
                   dropped, (unsigned long long)errors, secs);
        else
            printf("mode=%s ops=%llu secs=%.3f rate=%.1f p50_us=%.1f p99_us=%.1f errors=%llu "
                   "bad_status=%llu full=%llu reused=%llu proto=%s cipher=%s group=%s\n",
                   mode == M_TLS ? "tls"
                   : use_tls     ? "wss"
                                 : "ws",
                   (unsigned long long)ops, secs, (double)ops / secs, percentile(50),
                   percentile(99), (unsigned long long)errors, (unsigned long long)bad_status,
                   (unsigned long long)fulls, (unsigned long long)reused,
                   proto_seen[0] ? proto_seen : "-", cipher_seen[0] ? cipher_seen : "-",
                   group_seen[0] ? group_seen : "-");
    }
    for (i = 0; i < nconns; i++) {
        conns[i].st = S_FREE;
        conn_close(&conns[i]);
        if (conns[i].sess)
            SSL_SESSION_free(conns[i].sess);
    }
    return 0;
}
