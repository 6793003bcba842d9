/* SPDX-License-Identifier: MIT */
/* Private to h2_conn.c, h2_stream.c, h2_downstream.c and h2_tunnel.c: the
 * HTTP/2 connection and stream. */
#ifndef TETHER_H2_INT_H
#define TETHER_H2_INT_H

#include <tether/buf.h>
#include <tether/conn.h>
#include <tether/http1.h>
#include <tether/list.h>
#include <tether/sock.h>

#include <nghttp2/nghttp2.h>

struct h2_limits {
    uint32_t max_streams;
    uint32_t max_header_list;
    uint32_t stream_window;
    uint32_t conn_window;
    double idle_secs, header_secs, send_secs;
    uint32_t max_resets, reset_rate;
    uint32_t max_control, control_rate;
    uint32_t max_continuations;
};

/* A token bucket: <burst> tokens, <rate> more per second. */
struct h2_bucket {
    double tokens;
    double at;
};

struct h2_conn {
    struct conn c;
    struct worker *w;
    nghttp2_session *sess;
    struct list link;         /* in the worker's h2 list */
    struct list streams;      /* struct h2_stream */
    struct listen_fds *socks; /* the listen (NULL: h2_adopt_fd) */
    struct vserver *vs;       /* its server block when adopted (streams use the current one) */
    struct h2_limits lim;
    struct sock_addr peer;
    char peer_ip[48];
    uint8_t peer_ip_len;
    bool tls;
    bool goaway; /* GOAWAY submitted: no new streams */
    bool dead;   /* close without sending more */
    bool finish; /* close once what is queued was written (best effort) */
    bool freed;
    bool in_io;      /* inside h2_io: close is deferred to its end */
    ev_prepare turn; /* once per loop turn: notify exchanges, then one flush */
    uint32_t nkick;  /* streams with an exchange to notify (kick_read/kick_write) */
    struct conn_slot *limit;
    struct buf *obuf;     /* frames waiting for the socket */
    const uint8_t *spend; /* rest of the last nghttp2_session_mem_send chunk */
    size_t spend_len;
    ev_timer tick; /* 1 s housekeeping: idle, header and send timeouts */
    double started, last_frame, last_progress;
    uint32_t nstreams; /* streams alive */
    uint32_t ncont;    /* CONTINUATION frames in the current header block */
    uint64_t nrequests;
    struct h2_bucket resets, control;
    /* WINDOW_UPDATEs a client may send without drawing on <control>: two per
     * DATA frame tether sent (one for the stream, one for the connection),
     * at most H2_WU_CREDIT_MAX banked. A client reading a fast download
     * acknowledges every frame; one that sends updates with nothing to
     * acknowledge is a flood. */
    uint32_t wu_credit;
};

#define H2_WU_CREDIT_MAX 1024u

struct h2_stream {
    struct h2_conn *h;
    struct list link;
    int32_t id;
    /* request head, as received */
    char *hdr; /* regular fields as HTTP/1.1 lines "name: value\r\n" */
    uint32_t hdr_len, hdr_cap;
    char *cookie; /* cookie fields joined by "; " (RFC 9113 §8.2.3) */
    uint32_t cookie_len, cookie_cap;
    char *method, *path, *authority, *host, *protocol; /* in arena or malloc'd */
    char arena[192];
    uint16_t arena_used;
    uint32_t hlist; /* header list size so far (RFC 9113 §6.5.2) */
    double begun;   /* first HEADERS byte */
    bool head_done; /* END_HEADERS of the request seen */
    bool too_large; /* header list over the limit: 431 */
    bool bad;       /* refused: RST_STREAM PROTOCOL_ERROR */
    bool has_cl;
    uint64_t cl;           /* its content-length (UINT64_MAX: not a number) */
    bool chunked;          /* request body framed as chunks in ib (no content-length) */
    bool req_end;          /* END_STREAM received */
    bool is_head;          /* HEAD: the response has no body */
    bool ws;               /* extended CONNECT :protocol websocket (RFC 8441) */
    struct h2_tunnel *tun; /* after the pod's 101: the stream is a tunnel (h2_tunnel.c) */
    size_t unconsumed;     /* DATA bytes received and not yet given back as window */
    /* the response */
    uint8_t rbody;           /* enum http1_body */
    struct http1_chunked ck; /* de-chunking the response body */
    bool submitted;          /* response HEADERS submitted */
    bool deferred;           /* data provider said DEFERRED */
    bool ended;              /* EOF given to nghttp2 */
    /* the exchange carrying an ordinary stream (h2_downstream.c) */
    struct request *x; /* NULL before END_HEADERS and once it ended */
    struct gen *gen;   /* generation reference held for x */
    struct buf *ib;    /* request head, then body bytes (ops->input) */
    struct buf *ob;    /* response body bytes for the data provider */
    uint32_t fresh;    /* bytes added to ib since the last ops->read */
    uint32_t reserve;  /* ib bytes kept for chunk framing (no content-length) */
    double dl;         /* downstream deadline (ds_tmo), 0 none */
    bool ib_own;       /* ib was malloc'd (larger than a pool buffer) */
    bool closed;       /* nghttp2 closed the stream: submit nothing more */
    bool kick_read;    /* body bytes arrived: exchange_readable this turn */
    bool kick_write;   /* ob drained while the exchange waited: exchange_writable */
    bool wblocked;     /* ops->write said IO_AGAIN */
    bool resp_eof;     /* the response ended: END_STREAM once ob is empty */
    bool rst_after;    /* RST_STREAM NO_ERROR after our END_STREAM (body unread) */
};

/* h2_conn.c */
/* Bracket every event handler that touches a connection (stream events): the
 * leave flushes frames and closes the connection when it is done. */
void h2_event_enter(struct h2_conn *h);
void h2_event_leave(struct h2_conn *h);
void h2_flush(struct h2_conn *h);
/* A stream began: housekeeping every second again (it slows down when idle). */
void h2_tick_fast(struct h2_conn *h);
/* End the connection for abuse: GOAWAY ENHANCE_YOUR_CALM, a counter, a log line. */
void h2_abuse(struct h2_conn *h, const char *why);
void h2_progress(struct h2_conn *h);
/* Frames are waiting or an exchange must be notified: one flush this loop turn. */
void h2_want_turn(struct h2_conn *h);
bool h2_bucket_take(struct h2_bucket *b, double now, uint32_t burst, uint32_t rate);

/* h2_stream.c: nghttp2 callbacks for streams */
int h2s_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud);
int h2s_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                  const uint8_t *value, size_t valuelen, uint8_t flags, void *ud);
int h2s_on_frame_recv(struct h2_conn *h, const nghttp2_frame *f);
int h2s_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                void *ud);
int h2s_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud);
void h2s_free(struct h2_stream *st);
/* A stream that has stalled or is overdue (timeouts): true when overdue. */
bool h2s_header_overdue(const struct h2_stream *st, double now, double limit);
bool h2s_send_pending(const struct h2_stream *st);

/* The server block streams of <h> go to (follows reloads); NULL when the
 * listen left the configuration. */
struct vserver *h2_stream_vserver(struct h2_conn *h);
/* tether's own short answer without an exchange (431, 501, 503). */
void h2s_answer(struct h2_stream *st, unsigned status);

/* h2_downstream.c: an ordinary stream is an exchange (downstream.h) */
void h2x_start(struct h2_stream *st, bool end_stream);
int h2x_on_data(struct h2_stream *st, const uint8_t *data, size_t len);
void h2x_body_end(struct h2_stream *st);
/* Notify the exchanges of the bytes that came and the room that opened. */
void h2x_run_kicks(struct h2_conn *h);
/* The stream goes (closed, connection gone): end its exchange with <term>. */
void h2x_release(struct h2_stream *st, unsigned term);
/* The stream's downstream deadline passed (h2_conn.c tick). */
void h2x_tick(struct h2_stream *st, double now);
/* Our END_STREAM went out (RST_STREAM NO_ERROR if the client still sends). */
void h2x_frame_sent(struct h2_stream *st, const nghttp2_frame *f);

/* h2_tunnel.c: a WebSocket stream after the pod's 101 (RFC 8441) */
struct tunnel_args;
/* Submit the 200 <nv> and become a tunnel: the pod socket and its first bytes
 * are taken from <ta>, <early> (DATA that came before) goes to the pod first.
 * 0, or -1 (nothing taken). */
int h2t_open(struct h2_stream *st, struct tunnel_args *ta, const nghttp2_nv *nv, size_t nn,
             const char *early, size_t early_len);
void h2t_on_data(struct h2_stream *st, const uint8_t *data, size_t len);
/* END_STREAM from the client: FIN to the pod once its bytes are written. */
void h2t_body_end(struct h2_stream *st);
bool h2t_send_pending(const struct h2_stream *st);
/* The stream goes: close the pod socket, log and uncount the tunnel. */
void h2t_free(struct h2_stream *st);

#endif
