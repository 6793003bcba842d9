/* SPDX-License-Identifier: MIT */
/* mockpod parsers, pure (no I/O, no globals but a constant table): request heads, header
 * lines, query strings, URL decoding and chunked request-body framing. */
#include <string.h>

#include "mockpod.h"

static uint8_t tchar[256]; /* 1 for RFC 9110 token characters */

void
parse_init(void)
{
    const char *x = "!#$%&'*+-.^_`|~";
    int ch;

    for (ch = '0'; ch <= '9'; ch++)
        tchar[ch] = 1;
    for (ch = 'a'; ch <= 'z'; ch++)
        tchar[ch] = 1;
    for (ch = 'A'; ch <= 'Z'; ch++)
        tchar[ch] = 1;
    for (; *x; x++)
        tchar[(unsigned char)*x] = 1;
}

int
is_token(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (!tchar[(unsigned char)s[i]])
            return 0;
    return 1;
}

/* 1 when the <n> bytes at <s> equal the lower-case string <lit>, ignoring ASCII case. */
static int
ci_eq(const char *s, size_t n, const char *lit)
{
    size_t i;
    unsigned char ch;

    for (i = 0; i < n; i++) {
        ch = (unsigned char)s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch |= 0x20;
        if (lit[i] == '\0' || ch != (unsigned char)lit[i])
            return 0;
    }
    return lit[n] == '\0';
}

/* 1 when the comma-separated list <v> holds the token <lit> (lower case). With <last>, only
 * the last element counts (the final transfer coding). */
static int
list_has(const char *v, size_t n, const char *lit, int last)
{
    size_t i = 0, s, e;
    int found = 0;

    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i == n)
            break;
        s = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        found = ci_eq(v + s, e - s, lit);
        if (found && !last)
            return 1;
    }
    return found;
}

static int
parse_u64(const char *s, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    size_t i;

    if (n == 0 || n > 19)
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    *v = x;
    return 0;
}

static int
path_is(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

static uint8_t
classify(const char *s, size_t n)
{
    if (n < 5 || n > 24)
        return EP_DEFAULT; /* "/sdp", "/tools/...": no lookup */
    if (path_is(s, n, "/session"))
        return EP_SESSION;
    if (path_is(s, n, "/health"))
        return EP_HEALTH;
    if (path_is(s, n, "/echo"))
        return EP_ECHO;
    if (path_is(s, n, "/echo/body"))
        return EP_ECHO_BODY;
    if (path_is(s, n, "/upload"))
        return EP_UPLOAD;
    if (n < 8 || memcmp(s, "/control", 8) != 0 || (n > 8 && s[8] != '/'))
        return EP_DEFAULT;
    if (path_is(s, n, "/control/stats"))
        return EP_CTL_STATS;
    if (path_is(s, n, "/control/health/fail"))
        return EP_CTL_FAIL;
    if (path_is(s, n, "/control/health/ok"))
        return EP_CTL_OK;
    if (path_is(s, n, "/control/health/flap"))
        return EP_CTL_FLAP;
    if (path_is(s, n, "/control/health/draining"))
        return EP_CTL_DRAINING;
    if (path_is(s, n, "/control/health/degraded"))
        return EP_CTL_DEGRADED;
    if (path_is(s, n, "/control/report/ok"))
        return EP_CTL_REPORT_OK;
    if (path_is(s, n, "/control/report/bad"))
        return EP_CTL_REPORT_BAD;
    if (path_is(s, n, "/control/report/huge"))
        return EP_CTL_REPORT_HUGE;
    if (path_is(s, n, "/control/sessions/end"))
        return EP_CTL_SESSION_END;
    return EP_CTL_UNKNOWN;
}

/* Reads the header line at <*off> of the head <h> (<hlen> bytes, ending with its empty
 * line). Returns 1 with <out> set and <*off> past the line, 0 at the final empty line, -1
 * when the line is malformed (no name, space before the colon, obs-fold, CTL, bare CR). */
int
hdr_next(const char *h, size_t hlen, size_t *off, struct hdr *out)
{
    size_t i = *off, ns, vs, ve;
    unsigned char ch;

    if (i >= hlen)
        return -1;
    if ((h[i] == '\n' && i + 1 == hlen) || (h[i] == '\r' && i + 2 == hlen))
        return 0;
    ns = i;
    while (i < hlen && tchar[(unsigned char)h[i]])
        i++;
    if (i == ns || i >= hlen || h[i] != ':')
        return -1;
    out->name = h + ns;
    out->nlen = i - ns;
    i++;
    while (i < hlen && (h[i] == ' ' || h[i] == '\t'))
        i++;
    vs = i;
    for (;; i++) {
        if (i >= hlen)
            return -1;
        ch = (unsigned char)h[i];
        if (ch == '\n')
            break;
        if (ch == '\r') {
            if (i + 1 >= hlen || h[i + 1] != '\n')
                return -1;
            break;
        }
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -1;
    }
    ve = i;
    while (ve > vs && (h[ve - 1] == ' ' || h[ve - 1] == '\t'))
        ve--;
    out->val = h + vs;
    out->vlen = ve - vs;
    *off = h[i] == '\r' ? i + 2 : i + 1;
    return 1;
}

/* Splits the request target at <r->target_off> into path and query. */
static void
target_split(const char *p, struct req *r)
{
    const char *t = p + r->target_off, *q, *s;
    size_t tl = r->target_len, ps = 0;

    if (tl > 7 && (ci_eq(t, 7, "http://") || (tl > 8 && ci_eq(t, 8, "https://")))) {
        /* absolute-form: skip scheme and authority */
        s = memchr(t, ':', tl);
        ps = (size_t)(s - t) + 3;
        while (ps < tl && t[ps] != '/' && t[ps] != '?')
            ps++;
    }
    q = memchr(t + ps, '?', tl - ps);
    r->path_off = r->target_off + (uint32_t)ps;
    r->path_len = (uint32_t)((q ? (size_t)(q - t) : tl) - ps);
    if (q) {
        r->query_off = r->target_off + (uint32_t)(q - t) + 1;
        r->query_len = (uint32_t)(tl - (size_t)(q - t) - 1);
    }
}

/* Finds and parses the request head at <p> (<len> bytes, leading empty lines already
 * skipped). <*scan> is where the search for the empty line resumes (0 for a new head; kept
 * between calls so trickled heads are not searched again). <sess_lc> is the lower-case name
 * of the session header. Returns the head length (and fills <r>), 0 when more bytes are
 * needed, -400 for a malformed head, -505 for an unsupported HTTP version. */
int
req_parse(const char *p, size_t len, uint32_t *scan, struct req *r, const char *sess_lc)
{
    size_t i = *scan, hlen, le, lend, ts, off;
    const char *e;
    struct hdr h;
    uint64_t cl;
    int rc, te = 0, chunked = 0, has_cl = 0, c_close = 0, c_ka = 0;

    for (;;) {
        if (i > 0) {
            if (i < len && p[i] == '\n') {
                hlen = i + 1;
                break;
            }
            if (i + 1 < len && p[i] == '\r' && p[i + 1] == '\n') {
                hlen = i + 2;
                break;
            }
            if (i + 1 >= len) {
                *scan = (uint32_t)i;
                return 0;
            }
        }
        e = memchr(p + i, '\n', len - i);
        if (!e) {
            *scan = (uint32_t)i;
            return 0;
        }
        i = (size_t)(e - p) + 1;
    }

    memset(r, 0, sizeof(*r));
    le = (size_t)((const char *)memchr(p, '\n', hlen) - p);
    lend = le > 0 && p[le - 1] == '\r' ? le - 1 : le;
    for (i = 0; i < lend && tchar[(unsigned char)p[i]]; i++)
        ;
    if (i == 0 || i >= lend || p[i] != ' ')
        return -400;
    r->method_len = (uint32_t)i;
    ts = ++i;
    while (i < lend && (unsigned char)p[i] > 0x20 && p[i] != 0x7f)
        i++;
    if (i == ts || i >= lend || p[i] != ' ')
        return -400;
    r->target_off = (uint32_t)ts;
    r->target_len = (uint32_t)(i - ts);
    i++;
    if (lend - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 5] < '0' || p[i + 5] > '9' ||
        p[i + 6] != '.' || p[i + 7] < '0' || p[i + 7] > '9')
        return -400;
    if (p[i + 5] != '1')
        return -505;
    r->minor = p[i + 7] == '0' ? 0 : 1;
    target_split(p, r);

    off = le + 1;
    r->hdr_off = (uint32_t)off;
    while ((rc = hdr_next(p, hlen, &off, &h)) > 0) {
        switch (h.nlen) {
        case 6:
            if (ci_eq(h.name, 6, "expect") && ci_eq(h.val, h.vlen, "100-continue"))
                r->expect = 1;
            break;
        case 7:
            if (ci_eq(h.name, 7, "upgrade") && list_has(h.val, h.vlen, "websocket", 0))
                r->upgrade_ws = 1;
            break;
        case 10:
            if (!ci_eq(h.name, 10, "connection"))
                break;
            c_close |= list_has(h.val, h.vlen, "close", 0);
            c_ka |= list_has(h.val, h.vlen, "keep-alive", 0);
            if (list_has(h.val, h.vlen, "upgrade", 0))
                r->conn_upg = 1;
            break;
        case 14:
            if (!ci_eq(h.name, 14, "content-length"))
                break;
            if (parse_u64(h.val, h.vlen, &cl) < 0 || (has_cl && cl != r->content_length))
                return -400;
            has_cl = 1;
            r->content_length = cl;
            break;
        case 17:
            if (ci_eq(h.name, 17, "transfer-encoding")) {
                te = 1;
                chunked = list_has(h.val, h.vlen, "chunked", 1);
            } else if (ci_eq(h.name, 17, "sec-websocket-key") && h.vlen > 0) {
                r->key_off = (uint32_t)(h.val - p);
                r->key_len = (uint32_t)h.vlen;
            }
            break;
        default:
            break;
        }
        if (r->sess_len == 0 && h.vlen > 0 &&
            (ci_eq(h.name, h.nlen, sess_lc) || ci_eq(h.name, h.nlen, "x-voice-session-id"))) {
            r->sess_off = (uint32_t)(h.val - p);
            r->sess_len = (uint32_t)h.vlen;
        }
    }
    if (rc < 0)
        return -400;
    if (te && !chunked)
        return -400; /* a request body must end with chunked to be framed */
    if (te)
        r->body = MP_BODY_CHUNKED;
    else if (has_cl)
        r->body = MP_BODY_LENGTH;
    r->keep_alive = r->minor ? !c_close : c_ka && !c_close;
    if (te && has_cl)
        r->keep_alive = 0; /* RFC 9112 6.1: framing was ambiguous, do not reuse */
    r->is_head = r->method_len == 4 && memcmp(p, "HEAD", 4) == 0;
    r->ep = classify(p + r->path_off, r->path_len);
    r->head_len = (uint32_t)hlen;
    return (int)hlen;
}

/* Iterates the key=value pairs of the query <q>; <*off> starts at 0. Returns 1 with <kv>
 * set, 0 at the end. */
int
query_next(const char *q, size_t qlen, size_t *off, struct kv *kv)
{
    size_t i = *off, s, e;
    const char *eq;

    while (i < qlen) {
        s = i;
        while (i < qlen && q[i] != '&')
            i++;
        e = i;
        if (i < qlen)
            i++;
        if (e == s)
            continue;
        eq = memchr(q + s, '=', e - s);
        kv->k = q + s;
        kv->klen = eq ? (size_t)(eq - (q + s)) : e - s;
        kv->v = eq ? eq + 1 : q + e;
        kv->vlen = eq ? (size_t)(q + e - (eq + 1)) : 0;
        *off = i;
        return 1;
    }
    *off = i;
    return 0;
}

static int
kv_is(const struct kv *kv, const char *key)
{
    return kv->klen == strlen(key) && memcmp(kv->k, key, kv->klen) == 0;
}

/* A flag is on unless its value is 0, false, no or off ("?chunked" alone is on). */
static unsigned
kv_flag(const struct kv *kv)
{
    return !(ci_eq(kv->v, kv->vlen, "0") || ci_eq(kv->v, kv->vlen, "false") ||
             ci_eq(kv->v, kv->vlen, "no") || ci_eq(kv->v, kv->vlen, "off"));
}

/* Reads the knobs of the query <q> into <o>; unknown keys and bad numbers are ignored. */
void
query_parse(const char *q, size_t qlen, struct qopts *o)
{
    size_t off = 0;
    struct kv kv;
    uint64_t v;

    memset(o, 0, sizeof(*o));
    while (query_next(q, qlen, &off, &kv)) {
        if (kv_is(&kv, "delay")) {
            if (parse_u64(kv.v, kv.vlen, &v) == 0)
                o->delay_ms = v;
        } else if (kv_is(&kv, "status")) {
            if (parse_u64(kv.v, kv.vlen, &v) == 0 && v >= 100 && v <= 999)
                o->status = (int)v;
        } else if (kv_is(&kv, "bytes")) {
            if (parse_u64(kv.v, kv.vlen, &v) == 0) {
                o->bytes = v;
                o->has_bytes = 1;
            }
        } else if (kv_is(&kv, "reset_after")) {
            if (parse_u64(kv.v, kv.vlen, &v) == 0) {
                o->reset_after = v;
                o->has_reset = 1;
            }
        } else if (kv_is(&kv, "period")) {
            if (parse_u64(kv.v, kv.vlen, &v) == 0)
                o->period_ms = v;
        } else if (kv_is(&kv, "chunked")) {
            o->chunked = kv_flag(&kv);
        } else if (kv_is(&kv, "close")) {
            o->close = kv_flag(&kv);
        } else if (kv_is(&kv, "hang")) {
            o->hang = kv_flag(&kv);
        } else if (kv_is(&kv, "reset")) {
            o->reset = kv_flag(&kv);
        } else if (kv_is(&kv, "garbage")) {
            o->garbage = kv_flag(&kv);
        } else if (kv_is(&kv, "header")) {
            o->has_headers = 1;
        } else if (kv_is(&kv, "continue")) {
            o->no_continue = !kv_flag(&kv);
        } else if (kv_is(&kv, "early")) {
            o->early = kv_flag(&kv);
        } else if (kv_is(&kv, "ws_refuse")) {
            o->ws_refuse = kv_flag(&kv);
        }
    }
}

static int
hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes %XX and '+' of <s> into <dst>. Returns the decoded length, or -1 when <cap> is too
 * small or an escape is malformed. */
int
url_decode(const char *s, size_t n, char *dst, size_t cap)
{
    size_t i, o = 0;
    int hi, lo;

    for (i = 0; i < n; i++) {
        if (o >= cap)
            return -1;
        if (s[i] == '+') {
            dst[o++] = ' ';
        } else if (s[i] == '%') {
            if (i + 2 >= n)
                return -1;
            hi = hexval((unsigned char)s[i + 1]);
            lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            dst[o++] = s[i];
        }
    }
    return (int)o;
}

/* Runs the chunked framing of a request body over <p> (<len> bytes) until data or the end.
 * Returns 1 when <d> is at data (d->left bytes follow <*used> framing bytes), 2 when the
 * body ended (last chunk and trailer consumed), 0 when all <len> bytes were framing and
 * more are needed, -1 on a malformed frame. The caller consumes data itself and then sets
 * the state to CD_DATA_CR. */
int
chunk_frame(struct chunk_dec *d, const char *p, size_t len, size_t *used)
{
    size_t i = 0;
    unsigned char ch;
    int v;

    for (; i < len && d->state != CD_DATA && d->state != CD_DONE; i++) {
        ch = (unsigned char)p[i];
        switch (d->state) {
        case CD_SIZE:
            if ((v = hexval(ch)) < 0)
                goto bad;
            d->left = (uint64_t)v;
            d->digits = 1;
            d->state = CD_SIZE_MORE;
            break;
        case CD_SIZE_MORE:
            if ((v = hexval(ch)) >= 0) {
                if (++d->digits > 15)
                    goto bad;
                d->left = d->left << 4 | (uint64_t)v;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                d->state = CD_EXT;
            } else if (ch == '\r') {
                d->state = CD_SIZE_LF;
            } else if (ch == '\n') {
                d->state = d->left ? CD_DATA : CD_TRAILER;
            } else {
                goto bad;
            }
            break;
        case CD_EXT:
            if (ch == '\r')
                d->state = CD_SIZE_LF;
            else if (ch == '\n')
                d->state = d->left ? CD_DATA : CD_TRAILER;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                goto bad;
            break;
        case CD_SIZE_LF:
            if (ch != '\n')
                goto bad;
            d->state = d->left ? CD_DATA : CD_TRAILER;
            break;
        case CD_DATA_CR:
            if (ch == '\r')
                d->state = CD_DATA_LF;
            else if (ch == '\n')
                d->state = CD_SIZE;
            else
                goto bad;
            break;
        case CD_DATA_LF:
            if (ch != '\n')
                goto bad;
            d->state = CD_SIZE;
            break;
        case CD_TRAILER:
            if (ch == '\r')
                d->state = CD_TRAILER_LF;
            else if (ch == '\n')
                d->state = CD_DONE;
            else
                d->state = CD_TRAILER_LINE;
            break;
        case CD_TRAILER_LINE:
            if (ch == '\n')
                d->state = CD_TRAILER;
            else if (ch == '\0')
                goto bad;
            break;
        case CD_TRAILER_LF:
            if (ch != '\n')
                goto bad;
            d->state = CD_DONE;
            break;
        default:
            goto bad;
        }
    }
    *used = i;
    if (d->state == CD_DATA)
        return 1;
    return d->state == CD_DONE ? 2 : 0;
bad:
    *used = i;
    return -1;
}
