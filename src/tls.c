/* SPDX-License-Identifier: MIT */
/* TLS I/O for struct conn: the io_ops over OpenSSL (a MSG_NOSIGNAL socket BIO,
 * small writes coalesced into one record), the handshake driver and short
 * failure reasons for the logs. Contexts are built in tls_ctx.c. */
#include "config.h"

#include <tether/conn.h>
#include <tether/tls.h>

#include "tls_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

/*
 * Writes. The caller hands over iovecs (often a small head plus a body slice)
 * and advances by the count returned. Each SSL_write below is given at most one
 * record's worth (16 KiB): several small iovecs are first copied into one
 * per-thread buffer so they leave as one record (one send, 22-29 bytes of
 * framing) instead of one record each.
 *
 * OpenSSL requires that an SSL_write which returned WANT_WRITE/WANT_READ is
 * retried with the same bytes and the same length (the record is already
 * encrypted; ACCEPT_MOVING_WRITE_BUFFER lets the bytes come from another
 * address). So the length of a blocked SSL_write is kept with the SSL, and the
 * next call first retries exactly that many bytes, taken from the head of the
 * iovecs presented. Keeping each SSL_write to one record also means a retry
 * completes with exactly the pending length instead of starting a new record.
 *
 * Caller contract (stricter than plain sockets): after IO_AGAIN or a short
 * count, the next call must offer again at least the bytes it offered and that
 * were not accepted; more may follow. A proxy that always offers all of its
 * pending output does. Offering less fails with IO_ERROR.
 *
 * Reads. One recv may bring several records (read-ahead), so a read continues
 * while OpenSSL holds bytes and the buffer has room. When the buffer fills
 * (return == n), OpenSSL may still hold plaintext that will not make the socket
 * readable: the caller must read again before waiting for readiness (for
 * example right after resuming a paused read).
 */
#define TLS_RECORD_MAX 16384

static BIO_METHOD *bio_meth; /* socket BIO sending with MSG_NOSIGNAL */
static int pending_idx = -1; /* SSL ex_data: length of a blocked SSL_write */
static bool init_ok;         /* tls_global_init() succeeded */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static _Thread_local char last_error[192];
static _Thread_local unsigned char coalesce_buf[TLS_RECORD_MAX];

/* --- socket BIO ------------------------------------------------------------ */

/* OpenSSL's own socket BIO uses write(2), which raises SIGPIPE on a reset
 * connection; this one uses send(MSG_NOSIGNAL). The fd is the BIO's data. */

static int
bio_fd(BIO *b)
{
    return (int)(intptr_t)BIO_get_data(b);
}

static int
bio_write(BIO *b, const char *buf, int n)
{
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t r = send(bio_fd(b), buf, (size_t)n, MSG_NOSIGNAL);
        if (r >= 0)
            return (int)r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(b);
        return -1;
    }
}

static int
bio_read(BIO *b, char *buf, int n)
{
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t r = recv(bio_fd(b), buf, (size_t)n, 0);
        if (r >= 0)
            return (int)r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        return -1;
    }
}

static long
bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP:
        return 1;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = bio_fd(b);
        return bio_fd(b);
    default:
        return 0;
    }
}

static int
bio_create(BIO *b)
{
    BIO_set_data(b, (void *)(intptr_t)-1);
    return 1;
}

/* --- errors ---------------------------------------------------------------- */

/* Keep a short reason for the failure <err> of an SSL call on <ssl> for
 * tls_last_error(), and empty OpenSSL's queue so it cannot leak into the next
 * connection handled by this thread. */
static void
error_note(SSL *ssl, int err)
{
    unsigned long code = 0, x;
    int sys = errno;
    const char *why;

    /* The first error raised by libssl names the cause best ("no shared cipher",
     * "tlsv1 alert unknown ca"); lower layers come first in the queue. */
    while ((x = ERR_get_error()) != 0) {
        if (code == 0 || (ERR_GET_LIB(x) == ERR_LIB_SSL && ERR_GET_LIB(code) != ERR_LIB_SSL))
            code = x;
    }
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && code == 0 && sys == 0)) {
        snprintf(last_error, sizeof(last_error), "peer closed");
        errno = sys;
        return;
    }
    if (err == SSL_ERROR_SYSCALL && code == 0) {
        snprintf(last_error, sizeof(last_error), "%s", strerror(sys));
        errno = sys;
        return;
    }
    if (code == 0) {
        snprintf(last_error, sizeof(last_error), "TLS error %d", err);
        errno = sys;
        return;
    }
    why = ERR_reason_error_string(code);
    if (ERR_GET_LIB(code) == ERR_LIB_SSL &&
        ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED && ssl &&
        SSL_get_verify_result(ssl) != X509_V_OK) {
        snprintf(last_error, sizeof(last_error), "certificate verify failed: %s",
                 X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    } else if (why) {
        snprintf(last_error, sizeof(last_error), "%s", why);
    } else {
        snprintf(last_error, sizeof(last_error), "error %08lx", code);
    }
    errno = sys;
}

const char *
tls_last_error(void)
{
    return last_error[0] ? last_error : "no error";
}

/* --- io_ops ---------------------------------------------------------------- */

static ssize_t
tls_read(struct conn *c, void *buf, size_t n)
{
    SSL *ssl = c->ssl;
    size_t got = 0;

    c->flags &= ~CONN_TLS_READ_WANTS_WRITE;
    if (n > INT_MAX)
        n = INT_MAX;
    /* Read until the caller's buffer is full or OpenSSL holds nothing more:
     * with read-ahead, one recv may bring several records, and bytes left in
     * OpenSSL would not make the socket readable again. */
    while (got < n) {
        int r, err;
        errno = 0;
        r = SSL_read(ssl, (char *)buf + got, (int)(n - got));
        if (r > 0) {
            got += (size_t)r;
            if (!SSL_has_pending(ssl))
                break;
            continue;
        }
        err = SSL_get_error(ssl, r);
        switch (err) {
        case SSL_ERROR_WANT_READ:
            return got ? (ssize_t)got : IO_AGAIN;
        case SSL_ERROR_WANT_WRITE:
            c->flags |= CONN_TLS_READ_WANTS_WRITE;
            return got ? (ssize_t)got : IO_AGAIN;
        case SSL_ERROR_ZERO_RETURN: /* close_notify, or EOF (IGNORE_UNEXPECTED_EOF) */
            return got ? (ssize_t)got : IO_CLOSED;
        case SSL_ERROR_SYSCALL:
            if (ERR_peek_error() == 0 && errno == 0)
                return got ? (ssize_t)got : IO_CLOSED; /* bare EOF */
            /* fall through */
        default:
            error_note(ssl, err);
            if (errno == 0)
                errno = EPROTO;
            return got ? (ssize_t)got : IO_ERROR;
        }
    }
    return (ssize_t)got;
}

static size_t
pending_get(SSL *ssl)
{
    return (size_t)(uintptr_t)SSL_get_ex_data(ssl, pending_idx);
}

static void
pending_set(SSL *ssl, size_t len)
{
    if (len || SSL_get_ex_data(ssl, pending_idx))
        SSL_set_ex_data(ssl, pending_idx, (void *)(uintptr_t)len);
}

/* Copy up to <max> bytes from iov[i] + off onwards into <dst>. */
static size_t
iov_gather(unsigned char *dst, size_t max, const struct iovec *iov, int iovcnt, int i, size_t off)
{
    size_t n = 0;
    for (; i < iovcnt && n < max; i++, off = 0) {
        size_t take = iov[i].iov_len - off;
        if (take > max - n)
            take = max - n;
        memcpy(dst + n, (const char *)iov[i].iov_base + off, take);
        n += take;
    }
    return n;
}

static ssize_t
tls_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    SSL *ssl = c->ssl;
    size_t pend = pending_get(ssl), done = 0, off = 0;
    int i = 0;

    c->flags &= ~CONN_TLS_WRITE_WANTS_READ;
    for (;;) {
        const void *p;
        size_t left, lim, len;
        int r, err;

        while (i < iovcnt && off == iov[i].iov_len)
            i++, off = 0;
        if (i == iovcnt)
            break;
        left = iov[i].iov_len - off;
        lim = pend ? pend : TLS_RECORD_MAX;
        if (left >= lim || i == iovcnt - 1) {
            p = (const char *)iov[i].iov_base + off; /* no copy */
            len = left < lim ? left : lim;
        } else {
            p = coalesce_buf;
            len = iov_gather(coalesce_buf, lim, iov, iovcnt, i, off);
        }
        if (len < pend) {
            /* The caller presented fewer bytes than the blocked write held:
             * OpenSSL cannot complete the record it already encrypted. */
            snprintf(last_error, sizeof(last_error), "TLS write retried with less data");
            errno = EINVAL;
            return done ? (ssize_t)done : IO_ERROR;
        }
        errno = 0;
        r = SSL_write(ssl, p, (int)len);
        if (r > 0) {
            size_t w = (size_t)r;
            pend = 0;
            done += w;
            while (w > 0) { /* advance over what was written */
                size_t step = iov[i].iov_len - off;
                if (step > w)
                    step = w;
                off += step;
                w -= step;
                if (off == iov[i].iov_len)
                    i++, off = 0;
            }
            continue;
        }
        err = SSL_get_error(ssl, r);
        if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
            if (err == SSL_ERROR_WANT_READ)
                c->flags |= CONN_TLS_WRITE_WANTS_READ;
            pending_set(ssl, len);
            return done ? (ssize_t)done : IO_AGAIN;
        }
        error_note(ssl, err);
        pending_set(ssl, 0);
        if (errno == 0)
            errno = err == SSL_ERROR_SYSCALL ? EPIPE : EPROTO;
        return done ? (ssize_t)done : IO_ERROR;
    }
    pending_set(ssl, 0);
    return (ssize_t)done;
}

static void
tls_shutdown_write(struct conn *c)
{
    SSL *ssl = c->ssl;

    /* One close_notify, best effort: a fatal error or an unfinished handshake
     * has no close_notify to send, and a full socket drops it (the FIN still
     * goes). Never a second SSL_shutdown waiting for the peer's. */
    if (ssl && SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
        SSL_shutdown(ssl);
    ERR_clear_error();
    shutdown(c->fd, SHUT_WR);
}

static void
tls_free(struct conn *c)
{
    SSL_free(c->ssl); /* frees the BIO too; the fd stays for conn_close() */
    c->ssl = NULL;
    c->flags &= ~(CONN_TLS_READ_WANTS_WRITE | CONN_TLS_WRITE_WANTS_READ);
}

static const struct io_ops tls_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .shutdown_write = tls_shutdown_write,
    .free = tls_free,
};

/* --- set-up ---------------------------------------------------------------- */

static void
global_init_once(void)
{
    int type;

    if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL) !=
        1)
        return;
    type = BIO_get_new_index();
    if (type < 0)
        return;
    bio_meth = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "tether socket");
    if (!bio_meth || BIO_meth_set_write(bio_meth, bio_write) != 1 ||
        BIO_meth_set_read(bio_meth, bio_read) != 1 || BIO_meth_set_ctrl(bio_meth, bio_ctrl) != 1 ||
        BIO_meth_set_create(bio_meth, bio_create) != 1)
        return;
    pending_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (pending_idx < 0 || tls_ctx_init() < 0)
        return;
    init_ok = true;
}

void
tls_global_init(void)
{
    pthread_once(&init_once, global_init_once);
    if (!init_ok) {
        fprintf(stderr, "tether: OpenSSL initialisation failed\n");
        abort();
    }
}

/* Bind <ssl> to <c>'s socket and switch <c> to the TLS ops. Takes <ssl>. */
static int
attach(struct conn *c, SSL *ssl)
{
    BIO *b = BIO_new(bio_meth);

    if (!b) {
        error_note(ssl, SSL_ERROR_SSL);
        SSL_free(ssl);
        return -1;
    }
    BIO_set_data(b, (void *)(intptr_t)c->fd);
    BIO_set_init(b, 1);
    SSL_set_bio(ssl, b, b);
    c->ssl = ssl;
    c->ops = &tls_ops;
    c->flags &= ~(CONN_TLS_READ_WANTS_WRITE | CONN_TLS_WRITE_WANTS_READ);
    return 0;
}

int
tls_accept_attach(struct conn *c, struct tls_server *t)
{
    SSL *ssl = SSL_new(tls_server_ctx(t));

    if (!ssl) {
        error_note(NULL, SSL_ERROR_SSL);
        return -1;
    }
    SSL_set_accept_state(ssl);
    return attach(c, ssl);
}

/* True when <s> is an IPv4 or IPv6 literal (never sent as SNI, RFC 6066 §3). */
static bool
is_ip_literal(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

int
tls_connect_attach(struct conn *c, struct tls_client *t)
{
    const char *sni;
    bool verify;
    SSL *ssl = SSL_new(tls_client_ctx(t, &sni, &verify));

    if (!ssl) {
        error_note(NULL, SSL_ERROR_SSL);
        return -1;
    }
    if (sni) {
        bool ip = is_ip_literal(sni);
        int ok = 1;
        if (!ip)
            ok = SSL_set_tlsext_host_name(ssl, sni) == 1;
        /* Without a name, verification checks the chain only. */
        if (ok && verify)
            ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni) == 1
                    : SSL_set1_host(ssl, sni) == 1;
        if (!ok) {
            error_note(ssl, SSL_ERROR_SSL);
            SSL_free(ssl);
            return -1;
        }
    }
    SSL_set_connect_state(ssl);
    return attach(c, ssl);
}

int
tls_handshake(struct conn *c)
{
    SSL *ssl = c->ssl;
    int r, err;

    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(ssl);
    if (r == 1) {
        c->flags &= ~CONN_TLS_READ_WANTS_WRITE;
        return 1;
    }
    err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
        c->flags &= ~CONN_TLS_READ_WANTS_WRITE;
        return 0;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        c->flags |= CONN_TLS_READ_WANTS_WRITE;
        return 0;
    }
    error_note(ssl, err);
    /* Connected, then closed or reset without a byte: a port probe (an L4
     * balancer's TCP check), which callers need not count or log as a failure. */
    if (BIO_number_read(SSL_get_rbio(ssl)) == 0)
        return -2;
    return -1;
}

bool
tls_session_reused(const struct conn *c)
{
    return c->ssl && SSL_session_reused((SSL *)c->ssl) == 1;
}

void
tls_offer_h2(struct conn *c)
{
    if (c->ssl)
        SSL_set_app_data((SSL *)c->ssl, (void *)1);
}

bool
tls_alpn_h2(const struct conn *c)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    if (!c->ssl)
        return false;
    SSL_get0_alpn_selected((const SSL *)c->ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}
