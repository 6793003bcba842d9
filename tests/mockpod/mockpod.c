/* SPDX-License-Identifier: MIT */
/* mockpod: a small, fast voice-pod simulator for tether's integration tests, demo and
 * benchmarks. This file: options, listeners, threads, signals, health state, counters. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <openssl/err.h>

#include "mockpod.h"

#define MAX_LISTEN 2048 /* --listen plus --tls-listen addresses (bench: 1,000 pods) */

struct mp_conf mp_conf = {.log_fd = -1};

static struct worker *workers; /* nworkers of them */
static int nworkers;
static const char *pidfile;

static int health_mode;          /* enum mp_health, atomic */
static uint64_t flap_period_ms;  /* MP_HEALTH_FLAP: half period */
static uint64_t flap_start_ms;   /* MP_HEALTH_FLAP: when flapping started */
static uint64_t session_counter; /* last session number handed out, atomic */
static uint64_t sessions_ended;  /* ended by /control/sessions/end, atomic */
static int report_mode;          /* enum mp_report, atomic */

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sets the /health answer; with MP_HEALTH_FLAP it alternates fail/ok every <period_ms>. */
void
health_set(int mode, uint64_t period_ms)
{
    if (mode == MP_HEALTH_FLAP) {
        __atomic_store_n(&flap_period_ms, period_ms ? period_ms : 1000, __ATOMIC_RELAXED);
        __atomic_store_n(&flap_start_ms, mono_ms(), __ATOMIC_RELAXED);
    }
    __atomic_store_n(&health_mode, mode, __ATOMIC_RELEASE);
}

/* Returns MP_HEALTH_OK, MP_HEALTH_FAIL or MP_HEALTH_DRAINING (flapping resolved). */
int
health_get(void)
{
    int m = __atomic_load_n(&health_mode, __ATOMIC_ACQUIRE);
    uint64_t period, start;

    if (m != MP_HEALTH_FLAP)
        return m;
    period = __atomic_load_n(&flap_period_ms, __ATOMIC_RELAXED);
    start = __atomic_load_n(&flap_start_ms, __ATOMIC_RELAXED);
    return (mono_ms() - start) / period % 2 == 0 ? MP_HEALTH_FAIL : MP_HEALTH_OK;
}

uint64_t
sessions_active(void)
{
    uint64_t made = __atomic_load_n(&session_counter, __ATOMIC_ACQUIRE);
    uint64_t ended = __atomic_load_n(&sessions_ended, __ATOMIC_ACQUIRE);
    return made > ended ? made - ended : 0;
}

void
session_end(void)
{
    if (sessions_active() > 0)
        __atomic_add_fetch(&sessions_ended, 1, __ATOMIC_RELEASE);
}

int
report_mode_get(void)
{
    return __atomic_load_n(&report_mode, __ATOMIC_ACQUIRE);
}

void
report_mode_set(int mode)
{
    __atomic_store_n(&report_mode, mode, __ATOMIC_RELEASE);
}

/* Sums the workers' counters into <out>. */
void
stats_sum(struct mp_stats *out)
{
    int i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < nworkers; i++) {
        out->requests += __atomic_load_n(&workers[i].st.requests, __ATOMIC_RELAXED);
        out->accepted += __atomic_load_n(&workers[i].st.accepted, __ATOMIC_RELAXED);
        out->open += __atomic_load_n(&workers[i].st.open, __ATOMIC_RELAXED);
        out->ws_open += __atomic_load_n(&workers[i].st.ws_open, __ATOMIC_RELAXED);
    }
}

/* Writes a new session id NAME-<counter>-<8 hex> into <dst>; returns its length. */
size_t
session_make(struct worker *w, char *dst, size_t cap)
{
    uint64_t n = __atomic_add_fetch(&session_counter, 1, __ATOMIC_RELAXED);
    uint64_t x = w->rng;
    int k;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->rng = x;
    k = snprintf(dst, cap, "%s-%llu-%08x", mp_conf.name, (unsigned long long)n,
                 (unsigned)(x >> 32));
    if (k < 0)
        return 0;
    return (size_t)k >= cap ? cap - 1 : (size_t)k;
}

static void
usage(FILE *f)
{
    fputs("usage: mockpod --listen HOST:PORT [--listen HOST:PORT ...] --name NAME\n"
          "               [--threads N] [--session-header NAME | --no-session-header]\n"
          "               [--health-fail] [--request-log FILE]\n"
          "               [--report-sessions [--max-sessions N]]\n"
          "               [--tls-listen HOST:PORT --cert FILE --key FILE]\n"
          "               [--pidfile FILE] [--quiet]\n",
          f);
}

static void
die(const char *what, const char *arg)
{
    fprintf(stderr, "mockpod: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
    exit(2);
}

/* Resolves "HOST:PORT" or "[V6]:PORT" (HOST empty or * for any) into <ss>. */
static socklen_t
addr_parse(const char *s, struct sockaddr_storage *ss)
{
    struct addrinfo hints, *res;
    char host[256];
    const char *port, *end;
    size_t hl;
    socklen_t len;

    if (s[0] == '[') {
        end = strchr(s, ']');
        if (!end || end[1] != ':')
            die("bad address", s);
        hl = (size_t)(end - s - 1);
        port = end + 2;
        s++;
    } else {
        end = strrchr(s, ':');
        if (!end)
            die("bad address (HOST:PORT expected)", s);
        hl = (size_t)(end - s);
        port = end + 1;
    }
    if (hl >= sizeof(host) || !*port)
        die("bad address", s);
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (hl == 0 || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        die("cannot resolve", s);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    len = res->ai_addrlen;
    freeaddrinfo(res);
    return len;
}

/* Binds a socket to <ss>; with <reuseport> other SO_REUSEPORT sockets may share the port. */
static int
bind_socket(const struct sockaddr_storage *ss, socklen_t len, const char *what, int reuseport)
{
    int fd, one = 1;

    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) < 0) {
        fprintf(stderr, "mockpod: bind %s: %s\n", what, strerror(errno));
        exit(1);
    }
    return fd;
}

/* A listening socket for one worker; with <shared>, the workers share the port through
 * SO_REUSEPORT. */
static int
listen_socket(const struct sockaddr_storage *ss, socklen_t len, const char *what, int shared)
{
    int fd = bind_socket(ss, len, what, shared);

    if (listen(fd, 65535) < 0) {
        fprintf(stderr, "mockpod: listen %s: %s\n", what, strerror(errno));
        exit(1);
    }
    return fd;
}

/* ALPN: take http/1.1 when offered, else go on without ALPN. */
static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
    unsigned int i = 0, l;

    (void)ssl;
    (void)arg;
    while (i < inlen) {
        l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *
tls_ctx_new(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx)
        die("SSL_CTX_new failed", NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ERR_print_errors_fp(stderr);
        die("cannot load certificate or key", cert);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return ctx;
}

static void
conf_finish(const char *sess_hdr, int no_sess)
{
    const char *in = sess_hdr ? sess_hdr : "X-Voice-Session-Id";
    size_t i, n = strlen(mp_conf.name);

    if (n == 0 || n > MP_NAME_MAX)
        die("--name must have 1 to 64 characters", NULL);
    for (i = 0; i < n; i++)
        if ((unsigned char)mp_conf.name[i] <= 0x20 || mp_conf.name[i] == 0x7f)
            die("--name must not contain spaces or control characters", mp_conf.name);
    if (sess_hdr && (!is_token(sess_hdr, strlen(sess_hdr)) || strlen(sess_hdr) > 100))
        die("bad --session-header", sess_hdr);
    sb_json(&mp_conf.name_json, mp_conf.name, n);
    sb_puts(&mp_conf.pod_hdr, "X-Pod: ");
    sb_puts(&mp_conf.pod_hdr, mp_conf.name);
    sb_puts(&mp_conf.pod_hdr, "\r\n");
    mp_conf.sess_hdr = no_sess ? NULL : in;
    for (i = 0; in[i] && i + 1 < sizeof(mp_conf.sess_in); i++)
        mp_conf.sess_in[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] | 0x20 : in[i]);
}

static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void
notice(const char *msg)
{
    if (!mp_conf.quiet) {
        fprintf(stderr, "mockpod %s: %s\n", mp_conf.name, msg);
        fflush(stderr);
    }
}

/* The main thread only waits for signals; workers never see them (blocked). */
static void
signal_loop(const sigset_t *set)
{
    int sig;

    for (;;) {
        sig = sigwaitinfo(set, NULL);
        switch (sig) {
        case SIGUSR1:
            health_set(MP_HEALTH_FAIL, 0);
            notice("health: fail");
            break;
        case SIGUSR2:
            health_set(MP_HEALTH_OK, 0);
            notice("health: ok");
            break;
        case SIGTERM:
        case SIGINT:
            if (pidfile)
                unlink(pidfile);
            for (int i = 0; i < nworkers; i++)
                for (int j = 0; j < workers[i].nls; j++)
                    close(workers[i].ls[j].fd);
            fflush(stdout);
            fflush(stderr);
            _exit(0); /* no waiting for connections, no teardown racing the workers */
        default:
            break;
        }
    }
}

enum {
    OPT_LISTEN = 256,
    OPT_NAME,
    OPT_THREADS,
    OPT_SESS,
    OPT_NO_SESS,
    OPT_HEALTH_FAIL,
    OPT_LOG,
    OPT_TLS_LISTEN,
    OPT_CERT,
    OPT_KEY,
    OPT_PIDFILE,
    OPT_QUIET,
    OPT_REPORT,
    OPT_MAX_SESSIONS,
    OPT_HELP,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"name", required_argument, NULL, OPT_NAME},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"session-header", required_argument, NULL, OPT_SESS},
    {"no-session-header", no_argument, NULL, OPT_NO_SESS},
    {"health-fail", no_argument, NULL, OPT_HEALTH_FAIL},
    {"request-log", required_argument, NULL, OPT_LOG},
    {"tls-listen", required_argument, NULL, OPT_TLS_LISTEN},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"pidfile", required_argument, NULL, OPT_PIDFILE},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"report-sessions", no_argument, NULL, OPT_REPORT},
    {"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

int
main(int argc, char **argv)
{
    const char *addrs[MAX_LISTEN], *sess_hdr = NULL, *log_path = NULL, *cert = NULL;
    const char *key = NULL;
    struct sockaddr_storage ss[MAX_LISTEN];
    socklen_t sslen[MAX_LISTEN];
    int tls[MAX_LISTEN], naddr = 0, ntls = 0, threads = 1, no_sess = 0, health_fail = 0;
    int opt, i, j;
    sigset_t set;
    FILE *f;

    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN:
        case OPT_TLS_LISTEN:
            if (naddr == MAX_LISTEN)
                die("too many listen addresses", NULL);
            tls[naddr] = opt == OPT_TLS_LISTEN;
            ntls += tls[naddr];
            addrs[naddr++] = optarg;
            break;
        case OPT_NAME:
            mp_conf.name = optarg;
            break;
        case OPT_THREADS:
            threads = atoi(optarg);
            if (threads < 1 || threads > 256)
                die("--threads must be 1 to 256", optarg);
            break;
        case OPT_SESS:
            sess_hdr = optarg;
            break;
        case OPT_NO_SESS:
            no_sess = 1;
            break;
        case OPT_HEALTH_FAIL:
            health_fail = 1;
            break;
        case OPT_LOG:
            log_path = optarg;
            break;
        case OPT_CERT:
            cert = optarg;
            break;
        case OPT_KEY:
            key = optarg;
            break;
        case OPT_PIDFILE:
            pidfile = optarg;
            break;
        case OPT_REPORT:
            mp_conf.report = 1;
            break;
        case OPT_MAX_SESSIONS:
            mp_conf.max_sessions = strtoull(optarg, NULL, 10);
            if (mp_conf.max_sessions < 1 || mp_conf.max_sessions > 1000000)
                die("--max-sessions must be 1 to 1000000", optarg);
            break;
        case OPT_QUIET:
            mp_conf.quiet = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || naddr == 0 || !mp_conf.name) {
        usage(stderr);
        return 2;
    }
    if (ntls && (!cert || !key))
        die("--tls-listen needs --cert and --key", NULL);

    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    parse_init();
    pattern_init();
    conf_finish(sess_hdr, no_sess);
    if (health_fail)
        health_set(MP_HEALTH_FAIL, 0);
    if (log_path) {
        mp_conf.log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (mp_conf.log_fd < 0)
            die(strerror(errno), log_path);
    }
    if (ntls)
        mp_conf.tls = tls_ctx_new(cert, key);
    for (i = 0; i < naddr; i++)
        sslen[i] = addr_parse(addrs[i], &ss[i]);

    nworkers = threads;
    if (posix_memalign((void **)&workers, 64, sizeof(*workers) * (size_t)threads) != 0)
        die("out of memory", NULL);
    memset(workers, 0, sizeof(*workers) * (size_t)threads);
    for (i = 0; i < threads; i++) {
        workers[i].ls = calloc((size_t)naddr, sizeof(struct listener));
        if (!workers[i].ls)
            die("out of memory", NULL);
        workers[i].nls = naddr;
        for (j = 0; j < naddr; j++) {
            /* a plain bind first: a port another process holds, even with SO_REUSEPORT,
             * is refused instead of silently shared with it */
            if (i == 0 && threads > 1)
                close(bind_socket(&ss[j], sslen[j], addrs[j], 0));
            workers[i].ls[j].fd = listen_socket(&ss[j], sslen[j], addrs[j], threads > 1);
            workers[i].ls[j].tls = tls[j];
        }
        if (getrandom(&workers[i].rng, sizeof(workers[i].rng), 0) != sizeof(workers[i].rng))
            workers[i].rng = (uint64_t)time(NULL) * 2654435761u + (uint64_t)i;
        workers[i].rng |= 1;
    }

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (i = 0; i < threads; i++) {
        worker_init(&workers[i]);
        if (pthread_create(&workers[i].thread, NULL, worker_run, &workers[i]) != 0)
            die("pthread_create failed", NULL);
    }
    if (pidfile) {
        f = fopen(pidfile, "w");
        if (!f)
            die(strerror(errno), pidfile);
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
    for (i = 0; i < naddr; i++)
        printf("mockpod %s listening on %s\n", mp_conf.name, addrs[i]);
    fflush(stdout);
    signal_loop(&set);
    return 0;
}
