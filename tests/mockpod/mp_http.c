/* SPDX-License-Identifier: MIT */
/* mockpod HTTP: what a parsed request becomes — endpoints, query knobs, request bodies
 * (counted or echoed, never stored) and generated responses, all streamed. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "mockpod.h"

/* How a response body is delimited. */
enum framing {
    FR_LENGTH = 0, /* Content-Length */
    FR_CHUNKED,    /* Transfer-Encoding: chunked */
    FR_CLOSE,      /* until the connection closes */
    FR_NONE,       /* no body at all (1xx, 204, 304) */
};

static const char garbage[] = "\x00\x01garbage\r\n\r\n";

static int
status_has_no_body(int status)
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

/* Appends the headers asked for with header=Name:Value (URL-encoded) to <o>; malformed
 * ones are skipped so a test cannot make the pod emit a broken head by accident. */
void
http_put_extra_headers(struct conn *c, struct sbuf *o)
{
    const struct req *r = &c->req;
    const char *q, *colon;
    char buf[2048];
    size_t off = 0, nl, vs, i;
    unsigned char ch;
    struct kv kv;
    int n, ok;

    if (!r->q.has_headers)
        return;
    q = conn_head(c) + r->query_off;
    while (query_next(q, r->query_len, &off, &kv)) {
        if (kv.klen != 6 || memcmp(kv.k, "header", 6) != 0)
            continue;
        n = url_decode(kv.v, kv.vlen, buf, sizeof(buf));
        if (n <= 0 || !(colon = memchr(buf, ':', (size_t)n)))
            continue;
        nl = (size_t)(colon - buf);
        if (!is_token(buf, nl))
            continue;
        vs = nl + 1;
        while (vs < (size_t)n && (buf[vs] == ' ' || buf[vs] == '\t'))
            vs++;
        ok = 1;
        for (i = vs; i < (size_t)n; i++) {
            ch = (unsigned char)buf[i];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                ok = 0;
        }
        if (!ok)
            continue;
        sb_put(o, buf, nl);
        sb_put(o, ": ", 2);
        sb_put(o, buf + vs, (size_t)n - vs);
        sb_put(o, "\r\n", 2);
    }
}

/* Writes the response head. <clen> is used with FR_LENGTH; <sid> (may be NULL) goes into
 * the session header. FR_CLOSE turns keep-alive off. */
static void
resp_head(struct conn *c, int status, const char *ctype, uint64_t clen, enum framing fr,
          const char *sid, size_t sid_len)
{
    struct sbuf *o = conn_out(c);

    if (fr == FR_CLOSE)
        c->req.keep_alive = 0;
    sb_put(o, "HTTP/1.1 ", 9);
    sb_put_u64(o, (uint64_t)status);
    sb_put(o, " ", 1);
    sb_puts(o, status_reason(status));
    sb_put(o, "\r\n", 2);
    sb_put(o, mp_conf.pod_hdr.p, mp_conf.pod_hdr.len);
    if (ctype && fr != FR_NONE) {
        sb_put(o, "Content-Type: ", 14);
        sb_puts(o, ctype);
        sb_put(o, "\r\n", 2);
    }
    if (fr == FR_LENGTH) {
        sb_put(o, "Content-Length: ", 16);
        sb_put_u64(o, clen);
        sb_put(o, "\r\n", 2);
    } else if (fr == FR_CHUNKED) {
        sb_puts(o, "Transfer-Encoding: chunked\r\n");
    }
    if (sid_len && mp_conf.sess_hdr) {
        sb_puts(o, mp_conf.sess_hdr);
        sb_put(o, ": ", 2);
        sb_put(o, sid, sid_len);
        sb_put(o, "\r\n", 2);
    }
    http_put_extra_headers(c, o);
    if (!c->req.keep_alive)
        sb_puts(o, "Connection: close\r\n");
    else if (c->req.minor == 0)
        sb_puts(o, "Connection: keep-alive\r\n");
    sb_put(o, "\r\n", 2);
}

/* The request as JSON: method, full target, version, headers in received order, body
 * bytes; with <pod> the pod name first (the /echo answer), else a request-log record. */
static void
req_json(struct conn *c, struct sbuf *b, int pod)
{
    const struct req *r = &c->req;
    const char *h = conn_head(c);
    size_t off = r->hdr_off;
    struct hdr hd;
    int first = 1;

    sb_put(b, "{", 1);
    if (pod) {
        sb_puts(b, "\"pod\":\"");
        sb_put(b, mp_conf.name_json.p, mp_conf.name_json.len);
        sb_put(b, "\",", 2);
    }
    sb_puts(b, "\"method\":\"");
    sb_json(b, h, r->method_len);
    sb_puts(b, "\",\"path\":\"");
    sb_json(b, h + r->target_off, r->target_len);
    sb_puts(b, r->minor ? "\",\"version\":\"HTTP/1.1\",\"headers\":["
                        : "\",\"version\":\"HTTP/1.0\",\"headers\":[");
    while (hdr_next(h, r->head_len, &off, &hd) > 0) {
        sb_puts(b, first ? "[\"" : ",[\"");
        first = 0;
        sb_json(b, hd.name, hd.nlen);
        sb_put(b, "\",\"", 3);
        sb_json(b, hd.val, hd.vlen);
        sb_put(b, "\"]", 2);
    }
    sb_puts(b, "],\"body_bytes\":");
    sb_put_u64(b, c->body_bytes);
    sb_put(b, "}", 1);
}

/* Appends the request-log line, once per request, with one write so lines from several
 * threads never interleave (O_APPEND). */
static void
req_log(struct conn *c)
{
    struct sbuf *b = &c->w->logline;
    size_t off = 0;
    ssize_t k;

    if (mp_conf.log_fd < 0 || c->req.logged)
        return;
    c->req.logged = 1;
    b->len = 0;
    req_json(c, b, 0);
    sb_put(b, "\n", 1);
    while (off < b->len) {
        k = write(mp_conf.log_fd, b->p + off, b->len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
}

static void
send_continue(struct conn *c)
{
    const struct req *r = &c->req;

    if (!r->expect || r->minor == 0 || r->q.no_continue || r->body == MP_BODY_NONE ||
        (r->body == MP_BODY_LENGTH && r->content_length == 0))
        return;
    sb_puts(conn_out(c), "HTTP/1.1 100 Continue\r\n\r\n");
}

/* Answers a request the pod cannot parse, then closes (input discarded). */
static int
http_error(struct conn *c, int status)
{
    struct sbuf *o = conn_out(c);
    const char *reason = status_reason(status);

    sb_put(o, "HTTP/1.1 ", 9);
    sb_put_u64(o, (uint64_t)status);
    sb_put(o, " ", 1);
    sb_puts(o, reason);
    sb_put(o, "\r\n", 2);
    sb_put(o, mp_conf.pod_hdr.p, mp_conf.pod_hdr.len);
    sb_puts(o, "Content-Type: text/plain\r\nContent-Length: ");
    sb_put_u64(o, strlen(reason) + 1);
    sb_puts(o, "\r\nConnection: close\r\n\r\n");
    sb_puts(o, reason);
    sb_put(o, "\n", 1);
    c->req.head_len = 0;
    c->in.start = c->in.pos = c->in.end;
    c->state = CS_FLUSH_CLOSE;
    return PROC_AGAIN;
}

/* The answer is complete: next request, or close. */
static int
http_done(struct conn *c)
{
    conn_drop_head(c);
    c->state = c->req.keep_alive ? CS_HEAD : CS_FLUSH_CLOSE;
    return PROC_AGAIN;
}

/* Copies what fits of <n> echoed body bytes into the output (as a chunk when the answer is
 * chunked). Returns the bytes taken, 0 when the output is full. */
static size_t
echo_put(struct conn *c, const char *p, size_t n)
{
    size_t room = conn_out_room(c);

    if (c->echo_chk) {
        if (room <= 32)
            return 0;
        if (n > room - 32)
            n = room - 32;
        sb_put_hex(&c->out, n);
        sb_put(&c->out, "\r\n", 2);
        sb_put(&c->out, p, n);
        sb_put(&c->out, "\r\n", 2);
        return n;
    }
    if (room == 0)
        return 0;
    if (n > room)
        n = room;
    sb_put(&c->out, p, n);
    return n;
}

/* Consumes the request body bytes in the input, counting them and with <echo> copying
 * them to the output. Returns 1 when the body is complete, 0 when more input is needed, 2
 * when the output is full, -1 on a malformed chunked body. */
static int
body_feed(struct conn *c, int echo)
{
    struct inbuf *in = &c->in;
    uint64_t *left;
    size_t avail, n, used;
    int r;

    for (;;) {
        if (c->req.body == MP_BODY_NONE)
            return 1;
        if (c->req.body == MP_BODY_LENGTH || c->cd.state == CD_DATA) {
            left = c->req.body == MP_BODY_LENGTH ? &c->body_left : &c->cd.left;
            if (*left == 0)
                return 1; /* Content-Length done (chunk data never sits at 0) */
            avail = in->end - in->pos;
            if (avail == 0)
                return 0;
            n = avail < *left ? avail : (size_t)*left;
            if (echo && (n = echo_put(c, in->p + in->pos, n)) == 0)
                return 2;
            in->pos += (uint32_t)n;
            *left -= n;
            c->body_bytes += n;
            if (c->req.body == MP_BODY_CHUNKED && c->cd.left == 0)
                c->cd.state = CD_DATA_CR;
            continue;
        }
        if (in->end == in->pos)
            return 0;
        r = chunk_frame(&c->cd, in->p + in->pos, in->end - in->pos, &used);
        in->pos += (uint32_t)used;
        if (r < 0)
            return -1;
        if (r == 2)
            return 1;
        if (r == 0)
            return 0;
    }
}

/* Waits delay= milliseconds (if any) before answering. */
static int
http_delay(struct conn *c)
{
    if (c->req.q.delay_ms > 0) {
        c->state = CS_DELAY;
        conn_timer_start(c, c->req.q.delay_ms, 0);
        return PROC_WAIT;
    }
    return http_answer(c);
}

/* A head was parsed (pinned in the input): decide how the request is served. */
static int
http_begin(struct conn *c)
{
    struct req *r = &c->req;

    query_parse(conn_head(c) + r->query_off, r->query_len, &r->q);
    if (r->ep < EP_CTL_STATS)
        stat_add(&c->w->st.requests, 1);
    c->body_left = r->body == MP_BODY_LENGTH ? r->content_length : 0;
    c->body_bytes = 0;
    memset(&c->cd, 0, sizeof(c->cd));
    if (r->q.close || r->q.early || r->q.garbage)
        r->keep_alive = 0;
    if (r->upgrade_ws && r->conn_upg && r->key_len > 0 && !r->q.ws_refuse && !r->q.hang &&
        !r->q.reset && !r->q.garbage) {
        r->ws = 1;
        req_log(c);
        return http_delay(c);
    }
    if (r->q.early) {
        req_log(c);
        return http_delay(c);
    }
    r->echo = r->ep == EP_ECHO_BODY && !r->is_head && !r->q.has_bytes && !r->q.has_reset &&
              !r->q.hang && !r->q.reset && !r->q.garbage && !status_has_no_body(r->q.status);
    if (r->echo)
        return http_delay(c); /* body read while answering */
    send_continue(c);
    if (r->body != MP_BODY_NONE) {
        c->state = CS_BODY;
        return PROC_AGAIN;
    }
    req_log(c);
    return http_delay(c);
}

/* No more input will come: close once the output is out. */
static int
close_when_flushed(struct conn *c)
{
    if (c->out.len > c->out_sent)
        return PROC_OUT_FULL;
    conn_close(c);
    return PROC_CLOSED;
}

int
http_on_head(struct conn *c)
{
    struct inbuf *in = &c->in;
    int rc;

    for (;;) {
        if (c->out.len - c->out_sent > MP_BUF_SIZE / 2)
            return PROC_OUT_FULL; /* pipelined answers piled up: send them first */
        if (c->scan == 0)
            while (in->pos < in->end && (in->p[in->pos] == '\r' || in->p[in->pos] == '\n'))
                in->pos++;
        in->start = in->pos;
        if (in->pos == in->end)
            return c->rd_eof ? close_when_flushed(c) : PROC_WAIT;
        rc = req_parse(in->p + in->pos, in->end - in->pos, &c->scan, &c->req, mp_conf.sess_in);
        if (rc == 0) {
            if (in->end - in->pos >= MP_BUF_SIZE) {
                c->scan = 0;
                return http_error(c, 431);
            }
            return c->rd_eof ? close_when_flushed(c) : PROC_WAIT;
        }
        c->scan = 0;
        if (rc < 0)
            return http_error(c, -rc);
        in->pos += (uint32_t)rc;
        rc = http_begin(c);
        if (rc != PROC_AGAIN || c->state != CS_HEAD)
            return rc;
    }
}

int
http_on_body(struct conn *c)
{
    int r = body_feed(c, 0);

    if (r < 0)
        return http_error(c, 400);
    if (r == 0) {
        if (c->rd_eof) {
            conn_close(c);
            return PROC_CLOSED;
        }
        return PROC_WAIT;
    }
    req_log(c);
    return http_delay(c);
}

/* /echo/body: the head now, then the body as it arrives. */
static int
echo_start(struct conn *c)
{
    const struct req *r = &c->req;
    enum framing fr = FR_LENGTH;
    uint64_t len = 0;

    send_continue(c);
    if (r->body == MP_BODY_LENGTH)
        len = r->content_length;
    else if (r->body == MP_BODY_CHUNKED)
        fr = r->minor ? FR_CHUNKED : FR_CLOSE;
    if (r->q.close)
        fr = FR_CLOSE;
    resp_head(c, r->q.status ? r->q.status : 200, "application/octet-stream", len, fr, NULL, 0);
    c->echo_chk = fr == FR_CHUNKED;
    c->state = CS_ECHO;
    return PROC_AGAIN;
}

int
http_on_echo(struct conn *c)
{
    int r = body_feed(c, 1);

    if (r == 2)
        return PROC_OUT_FULL;
    if (r < 0) {
        conn_close(c); /* the head is out: nothing better to say */
        return PROC_CLOSED;
    }
    if (r == 0) {
        if (c->rd_eof) {
            conn_close(c);
            return PROC_CLOSED;
        }
        return PROC_WAIT;
    }
    if (c->echo_chk) {
        if (conn_out_room(c) < 8)
            return PROC_OUT_FULL;
        sb_put(&c->out, "0\r\n\r\n", 5);
    }
    req_log(c);
    return http_done(c);
}

/* Streams the generated a..z body with back-pressure: at most what the buffer holds. */
int
http_on_resp(struct conn *c)
{
    size_t room, n;

    while (c->resp_left > 0) {
        room = conn_out_room(c);
        if (room < 64)
            return PROC_OUT_FULL;
        n = room - 32;
        if (c->resp_chk && n > MP_CHUNK_MAX)
            n = MP_CHUNK_MAX;
        if (n > c->resp_left)
            n = (size_t)c->resp_left;
        if (c->resp_chk) {
            sb_put_hex(&c->out, n);
            sb_put(&c->out, "\r\n", 2);
        }
        pattern_put(&c->out, c->resp_off, n);
        if (c->resp_chk)
            sb_put(&c->out, "\r\n", 2);
        c->resp_left -= n;
        c->resp_off += n;
    }
    if (c->resp_chk) {
        if (conn_out_room(c) < 8)
            return PROC_OUT_FULL;
        sb_put(&c->out, "0\r\n\r\n", 5);
    }
    if (c->resp_rst) {
        c->state = CS_FLUSH_RESET;
        return PROC_AGAIN;
    }
    return http_done(c);
}

/* The /health answer with --report-sessions: {"status", "active_sessions",
 * "max_sessions"} (or a malformed or huge one, /control/report/...); 503 when
 * failing. */
static int
health_report(struct sbuf *b)
{
    int hs = health_get(), mode = report_mode_get();
    if (mode == MP_REPORT_BAD) {
        sb_puts(b, "{\"status\": \"healthy\", \"active_sessions\": ");
        return 200;
    }
    sb_puts(b, "{\"status\":\"");
    sb_puts(b, hs == MP_HEALTH_DRAINING   ? "draining"
               : hs == MP_HEALTH_DEGRADED ? "degraded"
                                          : "healthy");
    sb_puts(b, "\",\"active_sessions\":");
    sb_put_u64(b, sessions_active());
    if (mp_conf.max_sessions) {
        sb_puts(b, ",\"max_sessions\":");
        sb_put_u64(b, mp_conf.max_sessions);
    }
    if (mode == MP_REPORT_HUGE) {
        sb_puts(b, ",\"pad\":\"");
        for (int i = 0; i < 1024; i++)
            sb_puts(b, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        sb_puts(b, "\"");
    }
    sb_puts(b, "}");
    return hs == MP_HEALTH_FAIL ? 503 : 200;
}

/* Fills <b> with the endpoint's body; returns the status and sets the content type. */
static int
endpoint_body(struct conn *c, struct sbuf *b, const char **ctype, char *sid, size_t *sid_len)
{
    const struct req *r = &c->req;
    const char *h = conn_head(c);
    struct mp_stats st;
    int hs;

    *ctype = "application/json";
    switch (r->ep) {
    case EP_SESSION:
        *sid_len = session_make(c->w, sid, 128);
        sb_puts(b, "{\"session_id\":\"");
        sb_json(b, sid, *sid_len);
        sb_puts(b, "\",\"pod\":\"");
        sb_put(b, mp_conf.name_json.p, mp_conf.name_json.len);
        sb_puts(b, "\"}");
        return 200;
    case EP_HEALTH:
        if (mp_conf.report)
            return health_report(b);
        *ctype = "text/plain";
        hs = health_get();
        sb_puts(b, hs == MP_HEALTH_FAIL ? "fail" : hs == MP_HEALTH_DRAINING ? "draining" : "ok");
        return hs == MP_HEALTH_FAIL ? 503 : 200;
    case EP_CTL_FAIL:
    case EP_CTL_OK:
    case EP_CTL_FLAP:
    case EP_CTL_DRAINING:
    case EP_CTL_DEGRADED:
    case EP_CTL_REPORT_OK:
    case EP_CTL_REPORT_BAD:
    case EP_CTL_REPORT_HUGE:
    case EP_CTL_SESSION_END:
        if (r->ep == EP_CTL_DEGRADED)
            health_set(MP_HEALTH_DEGRADED, 0);
        else if (r->ep >= EP_CTL_REPORT_OK && r->ep <= EP_CTL_REPORT_HUGE)
            report_mode_set(MP_REPORT_OK + (r->ep - EP_CTL_REPORT_OK));
        else if (r->ep == EP_CTL_SESSION_END)
            session_end();
        else if (r->ep == EP_CTL_FAIL)
            health_set(MP_HEALTH_FAIL, 0);
        else if (r->ep == EP_CTL_OK)
            health_set(MP_HEALTH_OK, 0);
        else if (r->ep == EP_CTL_DRAINING)
            health_set(MP_HEALTH_DRAINING, 0);
        else
            health_set(MP_HEALTH_FLAP, r->q.period_ms ? r->q.period_ms : 1000);
        *ctype = "text/plain";
        sb_puts(b, "ok");
        return 200;
    case EP_CTL_STATS:
        stats_sum(&st);
        sb_puts(b, "{\"pod\":\"");
        sb_put(b, mp_conf.name_json.p, mp_conf.name_json.len);
        sb_puts(b, "\",\"requests\":");
        sb_put_u64(b, st.requests);
        sb_puts(b, ",\"connections_accepted\":");
        sb_put_u64(b, st.accepted);
        sb_puts(b, ",\"connections_open\":");
        sb_put_u64(b, st.open);
        sb_puts(b, ",\"websockets_open\":");
        sb_put_u64(b, st.ws_open);
        sb_put(b, "}", 1);
        return 200;
    case EP_CTL_UNKNOWN:
        sb_puts(b, "{\"error\":\"unknown control path\"}");
        return 404;
    case EP_ECHO:
        req_json(c, b, 1);
        return 200;
    case EP_UPLOAD:
        sb_puts(b, "{\"pod\":\"");
        sb_put(b, mp_conf.name_json.p, mp_conf.name_json.len);
        sb_puts(b, "\",\"bytes\":");
        sb_put_u64(b, c->body_bytes);
        sb_put(b, "}", 1);
        return 200;
    default:
        break;
    }
    sb_puts(b, "{\"pod\":\"");
    sb_put(b, mp_conf.name_json.p, mp_conf.name_json.len);
    if (r->upgrade_ws && r->conn_upg && r->q.ws_refuse) {
        sb_puts(b, "\",\"error\":\"websocket refused\"}");
        return 403;
    }
    sb_puts(b, "\",\"path\":\"");
    sb_json(b, h + r->path_off, r->path_len);
    sb_puts(b, "\",\"session\":\"");
    sb_json(b, h + r->sess_off, r->sess_len);
    sb_puts(b, "\"}");
    return 200;
}

/* The ordinary answer: endpoint body or generated body, shaped by the query knobs. */
static int
http_respond(struct conn *c)
{
    struct req *r = &c->req;
    struct sbuf *b = &c->w->scratch;
    const char *ctype;
    char sid[128];
    size_t sid_len = 0;
    enum framing fr = FR_LENGTH;
    uint64_t len;
    int status, gen = 0;

    b->len = 0;
    status = endpoint_body(c, b, &ctype, sid, &sid_len);
    if (r->q.status)
        status = r->q.status;
    len = b->len;
    if (r->q.has_reset) {
        gen = 1;
        len =
            r->q.has_bytes && r->q.bytes > r->q.reset_after ? r->q.bytes : r->q.reset_after + 65536;
    } else if (r->q.has_bytes) {
        gen = 1;
        len = r->q.bytes;
    }
    if (gen)
        ctype = "application/octet-stream";
    if (status_has_no_body(status))
        fr = FR_NONE;
    else if (r->q.has_reset)
        fr = FR_LENGTH; /* the declared length is the point */
    else if (r->q.close)
        fr = FR_CLOSE;
    else if (r->q.chunked)
        fr = r->minor ? FR_CHUNKED : FR_CLOSE;
    resp_head(c, status, ctype, len, fr, sid, sid_len);
    if (fr == FR_NONE || r->is_head) {
        if (r->q.has_reset) {
            c->state = CS_FLUSH_RESET;
            return PROC_AGAIN;
        }
        return http_done(c);
    }
    if (gen) {
        c->resp_left = r->q.has_reset && r->q.reset_after < len ? r->q.reset_after : len;
        c->resp_off = 0;
        c->resp_chk = fr == FR_CHUNKED;
        c->resp_rst = r->q.has_reset;
        c->state = CS_RESP;
        return PROC_AGAIN;
    }
    if (fr == FR_CHUNKED) {
        if (len) {
            sb_put_hex(&c->out, len);
            sb_put(&c->out, "\r\n", 2);
            sb_put(&c->out, b->p, b->len);
            sb_put(&c->out, "\r\n", 2);
        }
        sb_put(&c->out, "0\r\n\r\n", 5);
    } else {
        sb_put(&c->out, b->p, b->len);
    }
    return http_done(c);
}

/* Answers the active request (after its body, or early), as the knobs say. */
int
http_answer(struct conn *c)
{
    const struct req *r = &c->req;

    if (r->q.hang) {
        conn_drop_head(c);
        c->state = CS_HANG;
        return PROC_AGAIN;
    }
    if (r->q.reset) {
        conn_reset(c);
        return PROC_CLOSED;
    }
    if (r->q.garbage) {
        sb_put(conn_out(c), garbage, sizeof(garbage) - 1);
        conn_drop_head(c);
        c->state = CS_FLUSH_CLOSE;
        return PROC_AGAIN;
    }
    if (r->ws)
        return ws_answer(c);
    if (r->echo)
        return echo_start(c);
    return http_respond(c);
}
