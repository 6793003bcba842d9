/* SPDX-License-Identifier: MIT */
/* Unit tests for TLS: real handshakes over socketpairs with throwaway certificates
 * (SNI with wildcards and CN fallback, ALPN, versions, verification), data through
 * the io_ops (coalesced and partial writes, 1 MiB), tickets across instances. */
#include "config.h"

#include <tether/conf.h>
#include <tether/conn.h>
#include <tether/tls.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "unit.h"

static struct ev_loop *loop;
static char dir[64];
static char ca_pem[128], ca2_pem[128], a_pem[128], a_key[128], b_pem[128], b_key[128], c_pem[128],
    c_key[128], tk1[128], tk2[128], tk21[128], tkbad[128];

static void
noop_cb(struct ev_loop *l, ev_io *w, int ev)
{
    (void)l, (void)w, (void)ev;
}

/* CA, wrong CA, a.test (RSA), *.b.test (ECDSA), c.test (ECDSA, CN only, no SAN),
 * ticket key files: tk1 (2 keys), tk2 (1 key), tk21 (tk2's key then tk1's), bad. */
static int
certs_make(void)
{
    static const char script[] =
        "set -e\n"
        "ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout $1.key -out $1.pem -days 2 -subj \"/CN=$2\" "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign; }\n"
        "leaf() { openssl req -new -newkey $2 -nodes -keyout $1.key -out $1.csr -subj \"/CN=$3\"\n"
        "  if [ -n \"$4\" ]; then echo \"subjectAltName=$4\" > $1.ext; else : > $1.ext; fi\n"
        "  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile $1.ext -out $1.pem; }\n"
        "ca ca 'test CA'; ca ca2 'other CA'\n"
        "leaf a rsa:2048 a.test DNS:a.test\n"
        "leaf b 'ec -pkeyopt ec_paramgen_curve:P-256' b.test 'DNS:*.b.test'\n"
        "leaf c 'ec -pkeyopt ec_paramgen_curve:P-256' c.test ''\n"
        "head -c 160 /dev/urandom > tk1; head -c 80 /dev/urandom > tk2\n"
        "cat tk2 tk1 > tk21; head -c 79 /dev/urandom > tkbad\n";
    char cmd[4096];
    char tmpl[] = "/tmp/tether-tls-XXXXXX";

    if (!mkdtemp(tmpl))
        return -1;
    snprintf(dir, sizeof(dir), "%s", tmpl);
#define P(var, name) snprintf(var, sizeof(var), "%s/%s", dir, name)
    P(ca_pem, "ca.pem");
    P(ca2_pem, "ca2.pem");
    P(a_pem, "a.pem");
    P(a_key, "a.key");
    P(b_pem, "b.pem");
    P(b_key, "b.key");
    P(c_pem, "c.pem");
    P(c_key, "c.key");
    P(tk1, "tk1");
    P(tk2, "tk2");
    P(tk21, "tk21");
    P(tkbad, "tkbad");
#undef P
    snprintf(cmd, sizeof(cmd), "( cd '%s' && %s ) >/dev/null 2>&1", dir, script);
    return system(cmd) == 0 ? 0 : -1;
}

static void
certs_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static struct conf_cert certs[3];

/* A server block with certificates a (default), b, c and <ticket_file>. */
static struct tls_server *
server_make(const char *ticket_file, struct err *e)
{
    static struct conf_vserver vs;
    memset(&vs, 0, sizeof(vs));
    certs[0] = (struct conf_cert){a_pem, a_key, {"test.conf", 3, 5}};
    certs[1] = (struct conf_cert){b_pem, b_key, {"test.conf", 4, 5}};
    certs[2] = (struct conf_cert){c_pem, c_key, {"test.conf", 5, 5}};
    vs.pos = (struct conf_pos){"test.conf", 1, 1};
    vs.certs = certs;
    vs.ncerts = 3;
    vs.ticket_key_file = (char *)ticket_file;
    memset(e, 0, sizeof(*e));
    return tls_server_build(&vs, e);
}

static struct tls_client *
client_make(bool verify, const char *ca, const char *sni)
{
    struct conf_server s;
    struct err e = {{0}};
    struct tls_client *t;

    memset(&s, 0, sizeof(s));
    s.name = (char *)"pod";
    s.pos = (struct conf_pos){"test.conf", 10, 9};
    s.tls = true;
    s.verify = verify;
    s.ca_file = (char *)ca;
    s.sni = (char *)sni;
    t = tls_client_build(&s, &e);
    if (!t)
        fprintf(stderr, "tls_client_build: %s\n", e.msg);
    return t;
}

/* Both ends of one TLS connection over a nonblocking socketpair. */
struct link {
    struct conn s, c;          /* server side, client side */
    int rs, rc;                /* tls_handshake results */
    char serr[192], cerr[192]; /* tls_last_error() right after a failure */
};

static void
link_open(struct link *l, struct tls_server *srv, struct tls_client *cli)
{
    int sv[2];
    memset(l, 0, sizeof(*l));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("socketpair");
        abort();
    }
    conn_init(&l->s, sv[0], noop_cb, noop_cb);
    conn_init(&l->c, sv[1], noop_cb, noop_cb);
    CHECK_INT_EQ(tls_accept_attach(&l->s, srv), 0);
    CHECK_INT_EQ(tls_connect_attach(&l->c, cli), 0);
}

static void
link_handshake(struct link *l)
{
    bool shut = false;
    for (int k = 0; k < 200 && (l->rs == 0 || l->rc == 0); k++) {
        if (l->rs == 0 && (l->rs = tls_handshake(&l->s)) < 0)
            snprintf(l->serr, sizeof(l->serr), "%s", tls_last_error());
        if (l->rc == 0 && (l->rc = tls_handshake(&l->c)) < 0)
            snprintf(l->cerr, sizeof(l->cerr), "%s", tls_last_error());
        if (!shut && (l->rs < 0 || l->rc < 0)) { /* let the other side see EOF */
            shutdown(l->rs < 0 ? l->s.fd : l->c.fd, SHUT_WR);
            shut = true;
        }
    }
}

static void
link_close(struct link *l)
{
    conn_close(loop, &l->s, false);
    conn_close(loop, &l->c, false);
}

static void
peer_cn(struct conn *c, char *out, int n)
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    out[0] = '\0';
    if (x) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, n);
        X509_free(x);
    }
}

/* Read exactly <n> bytes from <c> (the peer wrote them already). */
static size_t
read_n(struct conn *c, char *buf, size_t n)
{
    size_t got = 0;
    for (int k = 0; k < 1000 && got < n; k++) {
        ssize_t r = conn_read(c, buf + got, n - got);
        if (r > 0)
            got += (size_t)r;
        else if (r != IO_AGAIN)
            break;
    }
    return got;
}

/* SNI <name> through a non-verifying client: which certificate comes back. */
static void
sni_expect(struct tls_server *srv, const char *name, const char *cn)
{
    struct tls_client *cli = client_make(false, NULL, name);
    struct link l;
    char got[64];

    link_open(&l, srv, cli);
    link_handshake(&l);
    CHECK_INT_EQ(l.rs, 1);
    CHECK_INT_EQ(l.rc, 1);
    peer_cn(&l.c, got, sizeof(got));
    if (strcmp(got, cn) != 0)
        UNIT_FAIL("SNI \"%s\": got certificate %s, expected %s", name ? name : "(none)", got, cn);
    link_close(&l);
    tls_client_free(cli);
}

static void
test_sni(void)
{
    struct err e;
    struct tls_server *srv = server_make(NULL, &e);
    CHECK(srv != NULL);
    if (!srv) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    sni_expect(srv, "a.test", "a.test");
    sni_expect(srv, "x.b.test", "b.test");
    sni_expect(srv, "X.B.Test", "b.test");   /* case-insensitive */
    sni_expect(srv, "b.test", "a.test");     /* *.b.test needs one more label */
    sni_expect(srv, "y.x.b.test", "a.test"); /* and only one */
    sni_expect(srv, "c.test", "c.test");     /* CN when no subjectAltName */
    sni_expect(srv, "unknown.test", "a.test");
    sni_expect(srv, NULL, "a.test");
    tls_server_free(srv);
}

/* Verifying client (CA + name): ALPN, RSA/ECDSA cipher choice after SNI. */
static void
test_verify_alpn(void)
{
    struct err e;
    struct tls_server *srv = server_make(NULL, &e);
    struct tls_client *ca = client_make(true, ca_pem, "a.test");
    struct tls_client *cb = client_make(true, ca_pem, "www.b.test");
    struct link l;
    const unsigned char *p;
    unsigned int n;

    CHECK(srv && ca && cb);
    if (!srv || !ca || !cb)
        goto out;
    link_open(&l, srv, ca);
    link_handshake(&l);
    CHECK_INT_EQ(l.rs, 1);
    CHECK_INT_EQ(l.rc, 1);
    SSL_get0_alpn_selected(l.s.ssl, &p, &n);
    CHECK_MEM_EQ(p, n, "http/1.1");
    SSL_get0_alpn_selected(l.c.ssl, &p, &n);
    CHECK_MEM_EQ(p, n, "http/1.1");
    CHECK_STR_EQ(SSL_get_version(l.s.ssl), "TLSv1.3");
    CHECK_INT_EQ(tls_session_reused(&l.s), false);
    link_close(&l);

    /* TLS 1.2 with SNI moving to the ECDSA certificate: an ECDSA suite. */
    link_open(&l, srv, cb);
    SSL_set_max_proto_version(l.c.ssl, TLS1_2_VERSION);
    link_handshake(&l);
    CHECK_INT_EQ(l.rs, 1);
    CHECK_INT_EQ(l.rc, 1);
    CHECK_STR_EQ(SSL_get_version(l.c.ssl), "TLSv1.2");
    CHECK_STR_EQ(SSL_get_cipher_name(l.c.ssl), "ECDHE-ECDSA-AES128-GCM-SHA256");
    link_close(&l);

    /* No ALPN offered: proceed, nothing selected. */
    link_open(&l, srv, ca);
    SSL_set_alpn_protos(l.c.ssl, NULL, 0);
    link_handshake(&l);
    CHECK_INT_EQ(l.rs, 1);
    CHECK_INT_EQ(l.rc, 1);
    SSL_get0_alpn_selected(l.s.ssl, &p, &n);
    CHECK_UINT_EQ(n, 0);
    link_close(&l);

    /* Only h2 offered: no_application_protocol. */
    link_open(&l, srv, ca);
    SSL_set_alpn_protos(l.c.ssl, (const unsigned char *)"\x02h2", 3);
    link_handshake(&l);
    CHECK_INT_EQ(l.rs, -1);
    CHECK_INT_EQ(l.rc, -1);
    CHECK_STR_EQ(l.serr, "no application protocol");
    CHECK(strstr(l.cerr, "no application protocol") != NULL);
    link_close(&l);
out:
    tls_client_free(ca);
    tls_client_free(cb);
    tls_server_free(srv);
}

static void
test_failures(void)
{
    struct err e;
    struct tls_server *srv = server_make(NULL, &e);
    struct tls_client *wrong_ca = client_make(true, ca2_pem, "a.test");
    struct tls_client *wrong_name = client_make(true, ca_pem, "other.test");
    struct tls_client *chain_only = client_make(true, ca_pem, NULL);
    struct tls_client *ip_name = client_make(true, ca_pem, "127.0.0.1");
    struct tls_client *noverify = client_make(false, NULL, "a.test");
    struct link l;

    CHECK(srv && wrong_ca && wrong_name && chain_only && ip_name && noverify);
    if (!srv || !wrong_ca || !wrong_name || !chain_only || !ip_name || !noverify)
        goto out;

    link_open(&l, srv, wrong_ca);
    link_handshake(&l);
    CHECK_INT_EQ(l.rc, -1);
    CHECK_INT_EQ(l.rs, -1);
    CHECK_STR_EQ(l.cerr, "certificate verify failed: unable to get local issuer certificate");
    CHECK(strstr(l.serr, "unknown ca") != NULL);
    link_close(&l);

    link_open(&l, srv, wrong_name);
    link_handshake(&l);
    CHECK_INT_EQ(l.rc, -1);
    CHECK_STR_EQ(l.cerr, "certificate verify failed: hostname mismatch");
    link_close(&l);

    link_open(&l, srv, ip_name); /* an address: checked, not sent as SNI */
    link_handshake(&l);
    CHECK_INT_EQ(l.rc, -1);
    CHECK_STR_EQ(l.cerr, "certificate verify failed: IP address mismatch");
    CHECK(SSL_get_servername(l.s.ssl, TLSEXT_NAMETYPE_host_name) == NULL);
    link_close(&l);

    link_open(&l, srv, chain_only); /* verify on, no sni: chain only */
    link_handshake(&l);
    CHECK_INT_EQ(l.rc, 1);
    CHECK_INT_EQ(l.rs, 1);
    link_close(&l);

    /* A TLS 1.1-only client. */
    link_open(&l, srv, noverify);
    SSL_set_security_level(l.c.ssl, 0);
    SSL_set_cipher_list(l.c.ssl, "DEFAULT:@SECLEVEL=0");
    SSL_set_min_proto_version(l.c.ssl, TLS1_1_VERSION);
    SSL_set_max_proto_version(l.c.ssl, TLS1_1_VERSION);
    link_handshake(&l);
    CHECK_INT_EQ(l.rs, -1);
    CHECK_INT_EQ(l.rc, -1);
    CHECK_STR_EQ(l.serr, "unsupported protocol");
    link_close(&l);

    /* Plain HTTP on a TLS port. */
    {
        static const char req[] = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
        int sv[2];
        struct conn s;
        CHECK_INT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        conn_init(&s, sv[0], noop_cb, noop_cb);
        CHECK_INT_EQ(tls_accept_attach(&s, srv), 0);
        CHECK_INT_EQ(write(sv[1], req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
        CHECK_INT_EQ(tls_handshake(&s), -1);
        CHECK_STR_EQ(tls_last_error(), "http request");
        conn_close(loop, &s, false);
        close(sv[1]);
    }
    /* The peer goes away mid-handshake. */
    {
        int sv[2];
        struct conn s;
        CHECK_INT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        conn_init(&s, sv[0], noop_cb, noop_cb);
        CHECK_INT_EQ(tls_accept_attach(&s, srv), 0);
        CHECK_INT_EQ(tls_handshake(&s), 0);
        CHECK_UINT_EQ(s.flags & CONN_TLS_READ_WANTS_WRITE, 0);
        close(sv[1]);
        /* Nothing was ever sent: a port probe, told apart from a failure. */
        CHECK_INT_EQ(tls_handshake(&s), -2);
        CHECK_STR_EQ(tls_last_error(), "peer closed");
        conn_close(loop, &s, false);
    }
    /* The peer sends the start of a ClientHello, then goes away: a failure. */
    {
        static const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01};
        int sv[2];
        struct conn s;
        CHECK_INT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        conn_init(&s, sv[0], noop_cb, noop_cb);
        CHECK_INT_EQ(tls_accept_attach(&s, srv), 0);
        CHECK_INT_EQ(write(sv[1], hello, sizeof(hello)), (ssize_t)sizeof(hello));
        CHECK_INT_EQ(tls_handshake(&s), 0);
        close(sv[1]);
        CHECK_INT_EQ(tls_handshake(&s), -1);
        conn_close(loop, &s, false);
    }
out:
    tls_client_free(wrong_ca);
    tls_client_free(wrong_name);
    tls_client_free(chain_only);
    tls_client_free(ip_name);
    tls_client_free(noverify);
    tls_server_free(srv);
}

static void
test_roundtrip(void)
{
    struct err e;
    struct tls_server *srv = server_make(NULL, &e);
    struct tls_client *cli = client_make(true, ca_pem, "a.test");
    struct link l;
    char buf[256];
    struct iovec iov[3] = {
        {(void *)"GET / HTTP/1.1\r\n", 16},
        {(void *)"Host: a.test\r\n", 14},
        {(void *)"\r\n", 2},
    };

    CHECK(srv && cli);
    if (!srv || !cli)
        goto out;
    link_open(&l, srv, cli);
    link_handshake(&l);
    CHECK_INT_EQ(l.rs, 1);
    CHECK_INT_EQ(l.rc, 1);
    CHECK_INT_EQ(conn_read(&l.s, buf, sizeof(buf)), IO_AGAIN);
    CHECK_INT_EQ(conn_writev(&l.c, iov, 3), 32);
    /* One TLS 1.3 record: 5 header + 32 data + 1 type + 16 tag. */
    CHECK_INT_EQ(recv(l.s.fd, buf, sizeof(buf), MSG_PEEK), 54);
    CHECK_UINT_EQ(read_n(&l.s, buf, 32), 32);
    CHECK_MEM_EQ(buf, 32, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    CHECK_INT_EQ(conn_read(&l.s, buf, sizeof(buf)), IO_AGAIN);
    CHECK_INT_EQ(conn_write_all(&l.s, "HTTP/1.1 200 OK\r\n\r\n", 19), 19);
    CHECK_UINT_EQ(read_n(&l.c, buf, 19), 19);
    CHECK_MEM_EQ(buf, 19, "HTTP/1.1 200 OK\r\n\r\n");

    /* Client half-closes with close_notify: EOF on the server, which can still
     * answer (as with a TCP half-close). */
    l.c.ops->shutdown_write(&l.c);
    CHECK_INT_EQ(conn_read(&l.s, buf, sizeof(buf)), IO_CLOSED);
    CHECK_INT_EQ(conn_read(&l.s, buf, sizeof(buf)), IO_CLOSED);
    CHECK_INT_EQ(conn_write_all(&l.s, "bye", 3), 3);
    CHECK_UINT_EQ(read_n(&l.c, buf, 3), 3);
    CHECK_MEM_EQ(buf, 3, "bye");
    l.s.ops->shutdown_write(&l.s);
    CHECK_INT_EQ(conn_read(&l.c, buf, sizeof(buf)), IO_CLOSED);
    link_close(&l);
    CHECK(l.s.ssl == NULL && l.s.fd == -1);

    /* EOF without close_notify reads as EOF. */
    link_open(&l, srv, cli);
    link_handshake(&l);
    CHECK_INT_EQ(conn_write_all(&l.c, "abc", 3), 3);
    shutdown(l.c.fd, SHUT_WR);
    CHECK_UINT_EQ(read_n(&l.s, buf, 3), 3);
    CHECK_INT_EQ(conn_read(&l.s, buf, sizeof(buf)), IO_CLOSED);
    link_close(&l);

    /* Writing to a closed peer: an error, never SIGPIPE (default action here). */
    signal(SIGPIPE, SIG_DFL);
    link_open(&l, srv, cli);
    link_handshake(&l);
    conn_close(loop, &l.c, false);
    {
        static char big[65536];
        struct iovec one = {big, sizeof(big)};
        ssize_t w = 0;
        for (int k = 0; k < 100 && w >= 0; k++)
            w = conn_writev(&l.s, &one, 1);
        CHECK_INT_EQ(w, IO_ERROR);
        CHECK_INT_EQ(errno, EPIPE);
    }
    signal(SIGPIPE, SIG_IGN);
    link_close(&l);
out:
    tls_client_free(cli);
    tls_server_free(srv);
}

/* Send 1 MiB from client to server through small socket buffers. <mode>:
 * 0 many 5000-byte iovecs (coalesced; after IO_AGAIN or a short count the same
 * bytes are offered again, sometimes with more iovecs after them),
 * 1 one iovec (direct), 2 a 100-byte head then the rest (head + body). */
static void
transfer(struct tls_server *srv, struct tls_client *cli, int mode)
{
    const size_t total = 1u << 20, seg = 5000;
    unsigned char *src = malloc(total), *dst = malloc(total);
    size_t sent = 0, recvd = 0, must_end = 0; /* must_end: offered, not yet accepted */
    int again = 0, partial = 0, nio = 1, k = 0, sz = 16384;
    struct link l;

    for (size_t i = 0; i < total; i++)
        src[i] = (unsigned char)(i * 7 + (i >> 10));
    link_open(&l, srv, cli);
    link_handshake(&l);
    CHECK_INT_EQ(l.rc, 1);
    setsockopt(l.c.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(l.s.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    for (long it = 0; recvd < total && it < 1000000; it++) {
        if (sent < total) {
            struct iovec iov[8];
            size_t offered = 0, at = sent; /* the caller re-presents what it offered */
            int n = 0;
            if (mode == 1) {
                iov[n++] = (struct iovec){src + at, total - at};
            } else if (mode == 2) {
                size_t head = total - at < 100 ? total - at : 100;
                iov[n++] = (struct iovec){src + at, head};
                if (at + head < total)
                    iov[n++] = (struct iovec){src + at + head, total - at - head};
            } else {
                while (n < 8 && (n < nio || at < must_end) && at < total) {
                    size_t end = (at / seg + 1) * seg;
                    if (end > total)
                        end = total;
                    iov[n++] = (struct iovec){src + at, end - at};
                    at = end;
                }
            }
            for (int i = 0; i < n; i++)
                offered += iov[i].iov_len;
            if (at > must_end)
                must_end = at;
            ssize_t w = conn_writev(&l.c, iov, n);
            if (w == IO_AGAIN) {
                again++;
                nio = nio < 8 ? nio + 1 : 8; /* same bytes, and more */
            } else if (w > 0) {
                partial += (size_t)w < offered;
                sent += (size_t)w;
                nio = 1 + (k++ % 8);
            } else {
                UNIT_FAIL("mode %d: writev %zd at %zu: %s", mode, w, sent, tls_last_error());
                break;
            }
        }
        /* Vary read sizes, some smaller than a record. */
        size_t want = (it % 3 == 0) ? 1000 : 65536;
        if (want > total - recvd)
            want = total - recvd;
        ssize_t r = conn_read(&l.s, dst + recvd, want);
        if (r > 0)
            recvd += (size_t)r;
        else if (r != IO_AGAIN) {
            UNIT_FAIL("mode %d: read %zd at %zu: %s", mode, r, recvd, tls_last_error());
            break;
        }
    }
    CHECK_UINT_EQ(recvd, total);
    CHECK(memcmp(src, dst, total) == 0);
    CHECK(again > 0);
    if (mode != 1)
        CHECK(partial > 0);
    link_close(&l);
    free(src);
    free(dst);
}

static void
test_transfer(void)
{
    struct err e;
    struct tls_server *srv = server_make(NULL, &e);
    struct tls_client *cli = client_make(true, ca_pem, "a.test");
    CHECK(srv && cli);
    if (srv && cli) {
        for (int mode = 0; mode < 3; mode++)
            transfer(srv, cli, mode);
    }
    tls_client_free(cli);
    tls_server_free(srv);
}

/* One connection offering <sess>: reused or not; returns the session held after
 * reading a little data (the TLS 1.3 ticket arrives after the handshake). */
static SSL_SESSION *
resume(struct tls_server *srv, struct tls_client *cli, SSL_SESSION *sess, int max_version,
       bool *reused)
{
    struct link l;
    char buf[8];
    SSL_SESSION *out;

    link_open(&l, srv, cli);
    if (sess)
        SSL_set_session(l.c.ssl, sess);
    if (max_version)
        SSL_set_max_proto_version(l.c.ssl, max_version);
    link_handshake(&l);
    CHECK_INT_EQ(l.rs, 1);
    CHECK_INT_EQ(l.rc, 1);
    *reused = tls_session_reused(&l.s);
    CHECK_INT_EQ(tls_session_reused(&l.c), *reused);
    CHECK_INT_EQ(conn_write_all(&l.s, "ok", 2), 2);
    CHECK_UINT_EQ(read_n(&l.c, buf, 2), 2);
    out = SSL_get1_session(l.c.ssl);
    /* Without a close_notify, OpenSSL marks the client's session not resumable. */
    l.c.ops->shutdown_write(&l.c);
    link_close(&l);
    return out;
}

static void
test_tickets(void)
{
    struct err e;
    struct tls_server *s1 = server_make(tk1, &e), *s2 = server_make(tk1, &e);
    struct tls_server *s3 = server_make(tk2, &e), *s21 = server_make(tk21, &e);
    struct tls_server *p1 = server_make(NULL, &e), *p2 = server_make(NULL, &e);
    struct tls_client *cli = client_make(true, ca_pem, "a.test");
    static const int versions[] = {0, TLS1_2_VERSION};

    CHECK(s1 && s2 && s3 && s21 && p1 && p2 && cli);
    if (!s1 || !s2 || !s3 || !s21 || !p1 || !p2 || !cli)
        goto out;
    for (size_t v = 0; v < 2; v++) {
        int max = versions[v];
        bool reused;
        SSL_SESSION *a = resume(s1, cli, NULL, max, &reused), *b;
        CHECK(!reused);
        CHECK(a && SSL_SESSION_is_resumable(a));
        b = resume(s2, cli, a, max, &reused); /* another instance, same key file */
        if (!reused)
            UNIT_FAIL("version %d: not resumed across instances sharing a key file", max);
        SSL_SESSION_free(b);
        b = resume(s3, cli, a, max, &reused); /* a different key */
        CHECK(!reused);
        SSL_SESSION_free(b);
        b = resume(s21, cli, a, max, &reused); /* tk1's key rotated to second */
        if (!reused)
            UNIT_FAIL("version %d: not resumed with a decrypt-only key", max);
        SSL_SESSION_free(b);
        SSL_SESSION_free(a);

        a = resume(p1, cli, NULL, max, &reused); /* no file: the process key */
        b = resume(p2, cli, a, max, &reused);
        if (!reused)
            UNIT_FAIL("version %d: not resumed across generations without a key file", max);
        SSL_SESSION_free(b);
        SSL_SESSION_free(a);
    }
out:
    tls_client_free(cli);
    tls_server_free(s1);
    tls_server_free(s2);
    tls_server_free(s3);
    tls_server_free(s21);
    tls_server_free(p1);
    tls_server_free(p2);
}

/* Server freed while a connection it accepted is still open. */
static void
test_free_order(void)
{
    struct err e;
    struct tls_server *srv = server_make(NULL, &e);
    struct tls_client *cli = client_make(false, NULL, "x.b.test");
    struct link l;
    char buf[4];

    CHECK(srv && cli);
    if (!srv || !cli)
        return;
    link_open(&l, srv, cli);
    tls_server_free(srv);
    tls_client_free(cli);
    link_handshake(&l);
    CHECK_INT_EQ(l.rs, 1);
    CHECK_INT_EQ(l.rc, 1);
    CHECK_INT_EQ(conn_write_all(&l.c, "ping", 4), 4);
    CHECK_UINT_EQ(read_n(&l.s, buf, 4), 4);
    link_close(&l);
}

static void
expect_cert_error(const struct conf_cert *cc, const char *expect)
{
    struct conf_vserver vs;
    struct err e = {{0}};
    struct tls_server *t;

    memset(&vs, 0, sizeof(vs));
    vs.pos = (struct conf_pos){"test.conf", 1, 1};
    vs.certs = (struct conf_cert *)cc;
    vs.ncerts = 1;
    t = tls_server_build(&vs, &e);
    CHECK(t == NULL);
    CHECK_STR_EQ(e.msg, expect);
    tls_server_free(t);
}

static void
test_load_errors(void)
{
    char want[512];
    struct err e;
    struct tls_server *t;
    struct conf_cert cc = {(char *)"/nonexistent/cert.pem", NULL, {"test.conf", 7, 5}};

    expect_cert_error(&cc, "test.conf:7:5: cannot load certificate \"/nonexistent/cert.pem\": "
                           "No such file or directory");
    cc = (struct conf_cert){tk1, NULL, {"test.conf", 8, 5}};
    snprintf(want, sizeof(want),
             "test.conf:8:5: cannot load certificate \"%s\": no PEM certificate found", tk1);
    expect_cert_error(&cc, want);
    cc = (struct conf_cert){a_pem, b_key, {"test.conf", 9, 5}};
    snprintf(want, sizeof(want),
             "test.conf:9:5: cannot load certificate \"%s\": key \"%s\": private key does not "
             "match the certificate",
             a_pem, b_key);
    expect_cert_error(&cc, want);
    cc = (struct conf_cert){a_pem, NULL, {"test.conf", 10, 5}}; /* no key in a.pem */
    snprintf(want, sizeof(want),
             "test.conf:10:5: cannot load certificate \"%s\": no PEM private key found", a_pem);
    expect_cert_error(&cc, want);

    {
        struct conf_vserver vs;
        memset(&vs, 0, sizeof(vs));
        vs.pos = (struct conf_pos){"test.conf", 2, 1};
        vs.certs = certs;
        vs.ncerts = 1;
        vs.ciphers = (char *)"NOPE";
        CHECK(tls_server_build(&vs, &e) == NULL);
        CHECK_STR_EQ(e.msg, "test.conf:2:1: tls_ciphers \"NOPE\": no cipher match");
        vs.ciphers = NULL;
        vs.ciphersuites = (char *)"TLS_NOPE";
        CHECK(tls_server_build(&vs, &e) == NULL);
        CHECK_STR_EQ(e.msg, "test.conf:2:1: tls_ciphersuites \"TLS_NOPE\": no cipher match");
        vs.ciphersuites = (char *)"TLS_AES_256_GCM_SHA384";
        vs.ciphers = (char *)"ECDHE-RSA-AES256-GCM-SHA384";
        t = tls_server_build(&vs, &e);
        CHECK(t != NULL);
        tls_server_free(t);
    }
    t = server_make(tkbad, &e);
    CHECK(t == NULL);
    snprintf(want, sizeof(want),
             "tls_ticket_key_file \"%s\": 79 bytes; expected 80 bytes per key (16 name, 32 "
             "HMAC, 32 AES), 1 to 64 keys",
             tkbad);
    CHECK_STR_EQ(e.msg, want);
    t = server_make("/nonexistent/ticket.key", &e);
    CHECK(t == NULL);
    CHECK_STR_EQ(e.msg, "tls_ticket_key_file \"/nonexistent/ticket.key\": No such file or "
                        "directory");
    {
        struct conf_server s;
        struct err ce = {{0}};
        memset(&s, 0, sizeof(s));
        s.pos = (struct conf_pos){"test.conf", 12, 9};
        s.verify = true;
        s.ca_file = (char *)"/nonexistent/ca.pem";
        CHECK(tls_client_build(&s, &ce) == NULL);
        CHECK_STR_EQ(ce.msg, "test.conf:12:9: cannot load CA file \"/nonexistent/ca.pem\": No "
                             "such file or directory");
    }
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    loop = ev_default_loop(0);
    tls_global_init();
    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("skip: no openssl command to make test certificates\n");
        return 77; /* automake: skipped */
    }
    if (certs_make() < 0) {
        fprintf(stderr, "cannot make test certificates with the openssl command\n");
        certs_remove();
        return 1;
    }
    RUN(test_sni);
    RUN(test_verify_alpn);
    RUN(test_failures);
    RUN(test_roundtrip);
    RUN(test_transfer);
    RUN(test_tickets);
    RUN(test_free_order);
    RUN(test_load_errors);
    certs_remove();
    ev_loop_destroy(loop);
    return unit_summary();
}
