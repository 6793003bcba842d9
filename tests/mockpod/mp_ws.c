/* SPDX-License-Identifier: MIT */
/* mockpod WebSocket (RFC 6455): the 101 handshake, then every frame echoed as it streams
 * in — same opcode, FIN and payload, unmasked; ping becomes pong; close is echoed. */
#include <string.h>

#include <openssl/evp.h>

#include "mockpod.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Sec-WebSocket-Accept for <key>: base64(SHA-1(key + GUID)) into <out> (29 bytes). */
static int
ws_accept_key(const char *key, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char buf[128 + sizeof(ws_guid)];

    if (len > 128)
        return -1;
    memcpy(buf, key, len);
    memcpy(buf + len, ws_guid, sizeof(ws_guid) - 1);
    if (EVP_Digest(buf, len + sizeof(ws_guid) - 1, md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return 0;
}

/* Answers the upgrade with 101 and switches the connection to frame echoing. */
int
ws_answer(struct conn *c)
{
    const struct req *r = &c->req;
    struct sbuf *o = conn_out(c);
    char acc[32];

    if (ws_accept_key(conn_head(c) + r->key_off, r->key_len, acc) < 0) {
        sb_puts(o, "HTTP/1.1 400 Bad Request\r\n");
        sb_put(o, mp_conf.pod_hdr.p, mp_conf.pod_hdr.len);
        sb_puts(o, "Content-Length: 0\r\nConnection: close\r\n\r\n");
        conn_drop_head(c);
        c->state = CS_FLUSH_CLOSE;
        return PROC_AGAIN;
    }
    sb_puts(o, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    sb_puts(o, acc);
    sb_put(o, "\r\n", 2);
    sb_put(o, mp_conf.pod_hdr.p, mp_conf.pod_hdr.len);
    http_put_extra_headers(c, o);
    sb_put(o, "\r\n", 2);
    conn_drop_head(c);
    memset(&c->ws, 0, sizeof(c->ws));
    c->state = CS_WS;
    c->is_ws = 1;
    stat_add(&c->w->st.ws_open, 1);
    return PROC_AGAIN;
}

/* Appends a frame header: FIN flag, opcode and payload length, unmasked. */
static void
ws_put_header(struct sbuf *o, int fin, unsigned op, uint64_t len)
{
    uint8_t h[10];
    size_t n = 0;
    int i;

    h[n++] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        h[n++] = (uint8_t)len;
    } else if (len <= 0xffff) {
        h[n++] = 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = 127;
        for (i = 7; i >= 0; i--)
            h[n++] = (uint8_t)(len >> (8 * i));
    }
    sb_put(o, h, n);
}

/* Protocol error from the client: send a close frame with <code>, then close. */
static int
ws_fail(struct conn *c, unsigned code)
{
    struct sbuf *o = conn_out(c);
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};

    if (c->ws.in_frame) {
        c->state = CS_FLUSH_CLOSE; /* inside an echoed frame: cannot insert one */
        return PROC_AGAIN;
    }
    ws_put_header(o, 1, 8, 2);
    sb_put(o, p, 2);
    c->state = CS_FLUSH_CLOSE;
    return PROC_AGAIN;
}

static int
ws_need_more(struct conn *c)
{
    if (c->rd_eof) {
        conn_close(c);
        return PROC_CLOSED;
    }
    return PROC_WAIT;
}

/* Reads a frame header at the input position; returns PROC_AGAIN once the echo header is
 * written and the payload can stream, or what the caller must return. */
static int
ws_frame_start(struct conn *c)
{
    struct inbuf *in = &c->in;
    struct ws_frame *f = &c->ws;
    size_t avail = in->end - in->pos, hl = 2;
    const uint8_t *p;
    uint64_t len;
    unsigned op;
    int fin, masked, i;

    if (avail < 2)
        return ws_need_more(c);
    p = (const uint8_t *)in->p + in->pos;
    len = p[1] & 0x7f;
    masked = p[1] & 0x80;
    if (len == 126)
        hl += 2;
    else if (len == 127)
        hl += 8;
    if (masked)
        hl += 4;
    if (avail < hl)
        return ws_need_more(c);
    fin = p[0] & 0x80;
    op = p[0] & 0x0f;
    if (p[0] & 0x70)
        return ws_fail(c, 1002); /* no extension negotiated: RSV bits must be 0 */
    if (len == 126) {
        len = (uint64_t)p[2] << 8 | p[3];
    } else if (len == 127) {
        len = 0;
        for (i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
    }
    if (op > 2 && op != 8 && op != 9 && op != 10)
        return ws_fail(c, 1002);
    if ((op & 8) && (!fin || len > 125))
        return ws_fail(c, 1002);
    if (len > MP_WS_MAX_FRAME)
        return ws_fail(c, 1009);
    if (conn_out_room(c) < 16)
        return PROC_OUT_FULL;
    f->drop = op == 10; /* an unsolicited pong needs no answer */
    if (!f->drop)
        ws_put_header(&c->out, fin, op == 9 ? 10 : op, len);
    if (masked)
        memcpy(f->mask, p + hl - 4, 4);
    f->masked = masked ? 1 : 0;
    f->moff = 0;
    f->left = len;
    f->opcode = (uint8_t)op;
    f->in_frame = 1;
    in->pos += (uint32_t)hl;
    return PROC_AGAIN;
}

/* Copies (unmasking) <n> payload bytes into the output. */
static void
ws_copy(struct conn *c, const uint8_t *src, size_t n)
{
    struct ws_frame *f = &c->ws;
    uint8_t *dst = (uint8_t *)c->out.p + c->out.len;
    size_t i;

    if (!f->masked) {
        memcpy(dst, src, n);
    } else {
        for (i = 0; i < n; i++)
            dst[i] = src[i] ^ f->mask[(f->moff + i) & 3];
    }
    c->out.len += n;
}

int
ws_on_data(struct conn *c)
{
    struct inbuf *in = &c->in;
    struct ws_frame *f = &c->ws;
    size_t avail, n, room;
    int r;

    for (;;) {
        if (!f->in_frame && (r = ws_frame_start(c)) != PROC_AGAIN)
            return r;
        if (c->state != CS_WS)
            return PROC_AGAIN;
        while (f->left > 0) {
            avail = in->end - in->pos;
            if (avail == 0)
                return ws_need_more(c);
            n = avail < f->left ? avail : (size_t)f->left;
            if (!f->drop) {
                room = conn_out_room(c);
                if (room == 0)
                    return PROC_OUT_FULL;
                if (n > room)
                    n = room;
                ws_copy(c, (const uint8_t *)in->p + in->pos, n);
            }
            in->pos += (uint32_t)n;
            f->left -= n;
            f->moff = (uint8_t)((f->moff + n) & 3);
        }
        f->in_frame = 0;
        if (f->opcode == 8) {
            c->state = CS_FLUSH_CLOSE; /* close echoed: we are done */
            return PROC_AGAIN;
        }
    }
}
