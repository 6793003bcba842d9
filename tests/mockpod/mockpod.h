/* SPDX-License-Identifier: MIT */
/* mockpod private header: configuration, per-thread workers, connections, and the entry
 * points shared by mockpod.c, mp_conn.c, mp_http.c, mp_parse.c, mp_util.c and mp_ws.c. */
#ifndef MOCKPOD_H
#define MOCKPOD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <openssl/ssl.h>

#define MP_BUF_SIZE     (32 * 1024) /* pooled I/O buffer, also the request-head limit */
#define MP_CHUNK_MAX    (16 * 1024) /* largest chunk the pod sends */
#define MP_WS_MAX_FRAME (16u << 20) /* largest WebSocket payload accepted */
#define MP_LINGER_MS    2000        /* how long a closing connection drains its input */
#define MP_NAME_MAX     64          /* longest --name */

/* Growable byte string; p == NULL means no storage yet. */
struct sbuf {
    char *p;    /* the bytes */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
};

/* Process-wide settings, written by main() before the workers start, then read-only. */
struct mp_conf {
    const char *name;      /* --name */
    struct sbuf name_json; /* the name escaped for a JSON string, without quotes */
    struct sbuf pod_hdr;   /* "X-Pod: NAME\r\n" */
    const char *sess_hdr;  /* response header of /session, NULL with --no-session-header */
    char sess_in[128];     /* lower-case request header read as the session id */
    int log_fd;            /* --request-log file, -1 when off */
    int quiet;             /* --quiet: no notices on stderr */
    SSL_CTX *tls;          /* context of the --tls-listen listeners, NULL when off */
    int report;            /* --report-sessions: /health answers a JSON load report */
    uint64_t max_sessions; /* --max-sessions N: reported as max_sessions (0: not reported) */
};

extern struct mp_conf mp_conf;

enum mp_health {
    MP_HEALTH_OK = 0,
    MP_HEALTH_FAIL,
    MP_HEALTH_DRAINING,
    MP_HEALTH_FLAP,
    MP_HEALTH_DEGRADED, /* reported as "degraded" (200) */
};

/* What /health sends with --report-sessions (/control/report/...). */
enum mp_report {
    MP_REPORT_OK = 0,
    MP_REPORT_BAD,  /* malformed JSON */
    MP_REPORT_HUGE, /* a valid report padded to 64 KiB */
};

/* Per-thread counters: written by the owning thread only, summed by any with relaxed loads. */
struct mp_stats {
    uint64_t requests; /* requests parsed, /control/ excluded */
    uint64_t accepted; /* connections accepted */
    uint64_t open;     /* connections open */
    uint64_t ws_open;  /* connections switched to WebSocket and still open */
};

struct worker;

/* One listening socket of one worker (SO_REUSEPORT: each worker has its own). */
struct listener {
    ev_io io;         /* readable: connections to accept */
    ev_timer retry;   /* re-arms io after running out of descriptors */
    struct worker *w; /* owner */
    int fd;           /* the socket */
    int tls;          /* 1 for a --tls-listen socket */
};

/* One thread with its own loop; a connection lives on one worker for its whole life. */
struct worker {
    struct ev_loop *loop;    /* this thread's loop */
    pthread_t thread;        /* the thread running loop */
    struct listener *ls;     /* listening sockets */
    int nls;                 /* number of ls */
    struct mp_stats st;      /* counters, see struct mp_stats */
    struct conn *free_conns; /* LIFO of spare connection structs */
    unsigned n_free_conns;   /* length of free_conns */
    void *free_bufs;         /* LIFO of spare MP_BUF_SIZE buffers (next pointer inside) */
    unsigned n_free_bufs;    /* length of free_bufs */
    struct sbuf scratch;     /* response bodies being built */
    struct sbuf logline;     /* request-log line being built */
    uint64_t rng;            /* xorshift state for session ids */
} __attribute__((aligned(64)));

/* Endpoints, chosen from the path without its query. */
enum mp_ep {
    EP_DEFAULT = 0,
    EP_SESSION,
    EP_HEALTH,
    EP_ECHO,
    EP_ECHO_BODY,
    EP_UPLOAD,
    EP_CTL_STATS,
    EP_CTL_FAIL,
    EP_CTL_OK,
    EP_CTL_FLAP,
    EP_CTL_DRAINING,
    EP_CTL_DEGRADED,
    EP_CTL_REPORT_OK,
    EP_CTL_REPORT_BAD,
    EP_CTL_REPORT_HUGE,
    EP_CTL_SESSION_END,
    EP_CTL_UNKNOWN,
};

/* Knobs read from the query string. */
struct qopts {
    uint64_t delay_ms;        /* delay=MS before the response head */
    uint64_t bytes;           /* bytes=N generated body size */
    uint64_t reset_after;     /* reset_after=N body bytes, then RST */
    uint64_t period_ms;       /* period=MS of /control/health/flap */
    int status;               /* status=N, 0 when absent */
    unsigned has_bytes : 1;   /* bytes= given */
    unsigned chunked : 1;     /* chunked=1 */
    unsigned close : 1;       /* close=1 */
    unsigned hang : 1;        /* hang=1 */
    unsigned reset : 1;       /* reset=1 */
    unsigned has_reset : 1;   /* reset_after= given */
    unsigned garbage : 1;     /* garbage=1 */
    unsigned no_continue : 1; /* continue=0 */
    unsigned early : 1;       /* early=1 */
    unsigned ws_refuse : 1;   /* ws_refuse=1 */
    unsigned has_headers : 1; /* at least one header= */
};

enum mp_body {
    MP_BODY_NONE = 0,
    MP_BODY_LENGTH,
    MP_BODY_CHUNKED,
};

/* A parsed request head; offsets are relative to the head, pinned in the input buffer at
 * in.start while the request is active. */
struct req {
    uint32_t head_len;       /* bytes of the head; 0 when no request is active */
    uint32_t method_len;     /* the method is at offset 0 */
    uint32_t target_off;     /* request target */
    uint32_t target_len;     /* its length */
    uint32_t path_off;       /* path inside the target (absolute-form skipped) */
    uint32_t path_len;       /* path length, query excluded */
    uint32_t query_off;      /* query after '?' */
    uint32_t query_len;      /* its length, 0 without a query */
    uint32_t hdr_off;        /* first header line */
    uint32_t sess_off;       /* session header value */
    uint32_t sess_len;       /* its length, 0 when absent */
    uint32_t key_off;        /* Sec-WebSocket-Key value */
    uint32_t key_len;        /* its length, 0 when absent */
    uint64_t content_length; /* Content-Length when body == MP_BODY_LENGTH */
    struct qopts q;          /* query knobs */
    uint8_t minor;           /* HTTP/1.<minor>: 0 or 1 */
    uint8_t body;            /* enum mp_body */
    uint8_t ep;              /* enum mp_ep */
    unsigned keep_alive : 1; /* the connection stays open after the response */
    unsigned is_head : 1;    /* HEAD: headers only */
    unsigned expect : 1;     /* Expect: 100-continue */
    unsigned upgrade_ws : 1; /* Upgrade: websocket */
    unsigned conn_upg : 1;   /* Connection: upgrade */
    unsigned ws : 1;         /* answered with 101 */
    unsigned echo : 1;       /* /echo/body streams the body back */
    unsigned logged : 1;     /* request-log line written */
};

/* Chunked request-body decoder states. */
enum chunk_state {
    CD_SIZE = 0, /* first hex digit of a chunk size */
    CD_SIZE_MORE,
    CD_EXT,
    CD_SIZE_LF,
    CD_DATA, /* <left> data bytes follow */
    CD_DATA_CR,
    CD_DATA_LF,
    CD_TRAILER,
    CD_TRAILER_LINE,
    CD_TRAILER_LF,
    CD_DONE,
};

struct chunk_dec {
    uint64_t left;  /* data bytes left in the current chunk */
    uint8_t state;  /* enum chunk_state */
    uint8_t digits; /* hex digits read in the size */
};

/* WebSocket echo state: frames are streamed, header first, payload as it arrives. */
struct ws_frame {
    uint64_t left;    /* payload bytes still to echo */
    uint8_t mask[4];  /* masking key */
    uint8_t moff;     /* payload offset modulo 4 */
    uint8_t opcode;   /* opcode of the frame in progress */
    uint8_t masked;   /* the frame is masked */
    uint8_t in_frame; /* a payload is in progress */
    uint8_t drop;     /* payload is read and dropped (client pong) */
};

enum conn_state {
    CS_TLS_HS = 0,  /* TLS handshake */
    CS_HEAD,        /* waiting for a request head */
    CS_BODY,        /* counting the request body */
    CS_DELAY,       /* delay= timer before the answer */
    CS_ECHO,        /* /echo/body: body streamed back */
    CS_RESP,        /* generated body streaming */
    CS_HANG,        /* hang=1: input discarded, no answer */
    CS_WS,          /* WebSocket frames */
    CS_FLUSH_CLOSE, /* flush the output, then close (lingering) */
    CS_FLUSH_RESET, /* flush the output, then reset */
    CS_RESET_WAIT,  /* waiting for the kernel to send our bytes before the reset */
    CS_LINGER,      /* write side shut, input drained until EOF or MP_LINGER_MS */
};

/* Input buffer: [start, start + head_len) pinned head, [pos, end) unparsed bytes. */
struct inbuf {
    char *p;        /* MP_BUF_SIZE bytes from the pool, NULL when none */
    uint32_t start; /* pinned head of the active request, == pos otherwise */
    uint32_t pos;   /* next byte to parse */
    uint32_t end;   /* end of received bytes */
};

/* One client connection. */
struct conn {
    ev_io rio;              /* readable */
    ev_io wio;              /* writable */
    ev_timer timer;         /* delay, linger and reset-wait timer */
    struct worker *w;       /* owner */
    SSL *ssl;               /* TLS session, NULL on plain connections */
    int fd;                 /* the socket */
    enum conn_state state;  /* see enum conn_state */
    unsigned rd_on : 1;     /* rio started */
    unsigned wr_on : 1;     /* wio started */
    unsigned rd_eof : 1;    /* the client shut its side */
    unsigned more : 1;      /* work left after a bounded run: come back soon */
    unsigned tls_rww : 1;   /* SSL_read wants the socket writable */
    unsigned tls_wwr : 1;   /* SSL_write wants the socket readable */
    unsigned hs_r : 1;      /* handshake wants readable */
    unsigned hs_w : 1;      /* handshake wants writable */
    unsigned is_ws : 1;     /* counted in ws_open */
    unsigned echo_chk : 1;  /* /echo/body answer is chunked */
    unsigned resp_chk : 1;  /* generated body is chunked */
    unsigned resp_rst : 1;  /* reset once the generated body is sent */
    uint32_t scan;          /* head search resumes here (relative to in.pos) */
    uint32_t waits;         /* reset-wait ticks */
    struct inbuf in;        /* input */
    struct sbuf out;        /* output, from the pool while bytes are pending */
    size_t out_sent;        /* bytes of out already sent */
    struct req req;         /* the active request */
    struct chunk_dec cd;    /* chunked request body */
    uint64_t body_left;     /* Content-Length bytes left */
    uint64_t body_bytes;    /* request body bytes received */
    uint64_t resp_left;     /* generated body bytes left to produce */
    uint64_t resp_off;      /* generated body bytes produced */
    struct ws_frame ws;     /* WebSocket frame in progress */
    struct conn *next_free; /* link in the worker's free list */
};

/* Results of the state handlers run by conn_process(). */
enum proc_result {
    PROC_WAIT = 0, /* waiting for input, a timer or the peer */
    PROC_AGAIN,    /* state changed: run the new state */
    PROC_OUT_FULL, /* flush the output, then call again */
    PROC_CLOSED,   /* the connection is gone: do not touch it */
};

/* mp_util.c */
void *xmalloc(size_t n);
void sb_grow(struct sbuf *b, size_t need);
void sb_put(struct sbuf *b, const void *s, size_t n);
void sb_puts(struct sbuf *b, const char *s);
void sb_put_u64(struct sbuf *b, uint64_t v);
void sb_put_hex(struct sbuf *b, uint64_t v);
void sb_json(struct sbuf *b, const char *s, size_t n);
const char *status_reason(int status);
void pattern_init(void);
void pattern_put(struct sbuf *b, uint64_t off, size_t n);

/* mp_parse.c: pure parsers */
struct hdr {
    const char *name; /* header name */
    size_t nlen;      /* its length */
    const char *val;  /* value without surrounding whitespace */
    size_t vlen;      /* its length */
};

struct kv {
    const char *k; /* raw key */
    size_t klen;   /* its length */
    const char *v; /* raw value (still URL-encoded) */
    size_t vlen;   /* its length */
};

void parse_init(void);
int is_token(const char *s, size_t n);
int hdr_next(const char *h, size_t hlen, size_t *off, struct hdr *out);
int req_parse(const char *p, size_t len, uint32_t *scan, struct req *r, const char *sess_lc);
int query_next(const char *q, size_t qlen, size_t *off, struct kv *kv);
void query_parse(const char *q, size_t qlen, struct qopts *o);
int url_decode(const char *s, size_t n, char *dst, size_t cap);
int chunk_frame(struct chunk_dec *d, const char *p, size_t len, size_t *used);

/* mockpod.c */
int health_get(void);
void health_set(int mode, uint64_t period_ms);
void stats_sum(struct mp_stats *out);
size_t session_make(struct worker *w, char *dst, size_t cap);
/* Sessions created by /session and not ended by /control/sessions/end. */
uint64_t sessions_active(void);
void session_end(void);
int report_mode_get(void);
void report_mode_set(int mode);

/* mp_conn.c */
void worker_init(struct worker *w);
void *worker_run(void *arg);
struct sbuf *conn_out(struct conn *c);
size_t conn_out_room(struct conn *c);
const char *conn_head(const struct conn *c);
void conn_drop_head(struct conn *c);
void conn_close(struct conn *c);
void conn_reset(struct conn *c);
void conn_timer_start(struct conn *c, uint64_t ms, int repeat);

/* mp_http.c */
int http_on_head(struct conn *c);
int http_on_body(struct conn *c);
int http_on_echo(struct conn *c);
int http_on_resp(struct conn *c);
int http_answer(struct conn *c);
void http_put_extra_headers(struct conn *c, struct sbuf *o);

/* mp_ws.c */
int ws_answer(struct conn *c);
int ws_on_data(struct conn *c);

static inline void
stat_add(uint64_t *v, int64_t d)
{
    /* single writer: a relaxed load and store, no locked instruction */
    __atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + (uint64_t)d, __ATOMIC_RELAXED);
}

#endif
