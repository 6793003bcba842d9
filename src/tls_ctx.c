/* SPDX-License-Identifier: MIT */
/* TLS contexts: one server SSL_CTX per certificate, chosen by SNI against the
 * certificates' DNS names; cipher policy, ALPN http/1.1, session tickets keyed
 * from a shared file; and the client contexts used for TLS to pods. */
#include "config.h"

#include <tether/tls.h>
#include <tether/util.h>

#include "tls_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/*
 * Default cipher policy for client-facing listeners (used when a server block
 * sets no tls_ciphers / tls_ciphersuites):
 *
 *   protocols    TLS 1.2 and TLS 1.3 only
 *   TLS 1.2      ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:
 *                ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:
 *                ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305
 *                (forward secrecy and AEAD only: no RSA key exchange, no CBC)
 *   TLS 1.3      TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:
 *                TLS_CHACHA20_POLY1305_SHA256
 *   groups       X25519:P-256:P-384
 *   order        the server's preference; no renegotiation, no compression
 *
 * This is Mozilla's "intermediate" profile: every client of the last years
 * (and every voice SDK we know of) negotiates TLS 1.3 or an ECDHE+AEAD suite.
 */
#define TLS_DEFAULT_CIPHERS                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_DEFAULT_SUITES                                                                         \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_DEFAULT_GROUPS "X25519:P-256:P-384"

/* Session ticket keys, as stored in tls_ticket_key_file: 80 bytes per key. */
#define TICKET_NAME_LEN 16
#define TICKET_HMAC_LEN 32
#define TICKET_AES_LEN  32
#define TICKET_KEY_LEN  (TICKET_NAME_LEN + TICKET_HMAC_LEN + TICKET_AES_LEN)
#define TICKET_MAX_KEYS 64

/* A DNS name a certificate answers for. */
struct tls_name {
    char *name;    /* exact name, or for "*.example.com" the suffix ".example.com" */
    size_t len;    /* length of name */
    uint32_t cert; /* index in tls_server.ctx */
    bool wildcard; /* name is a suffix matching exactly one more label */
};

/*
 * Ownership: ctx[0] owns the whole struct. Every accepted SSL holds a reference
 * to ctx[0] (as its session context) even after SNI moved it to another context,
 * so the struct, the other contexts and the keys stay alive while any
 * connection of this generation does; tls_server_free() only drops the build's
 * reference to ctx[0], and OpenSSL calls owner_free() when the last one goes.
 */
struct tls_server {
    SSL_CTX **ctx;          /* one per certificate, in configuration order */
    uint32_t nctx;          /* contexts built */
    struct tls_name *names; /* SNI names of all certificates, in order */
    uint32_t nnames;
    uint8_t *keys; /* nkeys * 80 bytes: name, HMAC key, AES key; keys[0] encrypts */
    uint32_t nkeys;
};

struct tls_client {
    SSL_CTX *ctx; /* shared by all connections to the pod */
    char *sni;    /* server name sent and verified, or NULL */
    bool verify;  /* verify the pod's certificate (chain, and name when sni) */
};

static int owner_idx = -1;  /* SSL_CTX ex_data: the tls_server owned (ctx[0] only) */
static int server_idx = -1; /* SSL_CTX ex_data: the tls_server (every context) */
/* Ticket key used when no file is configured: one per process, shared by every
 * generation, so a reload does not invalidate the tickets clients hold. */
static uint8_t process_key[TICKET_KEY_LEN];

static void
server_destroy(struct tls_server *t, bool free_default)
{
    for (uint32_t i = free_default ? 0 : 1; i < t->nctx; i++)
        SSL_CTX_free(t->ctx[i]);
    for (uint32_t i = 0; i < t->nnames; i++)
        free(t->names[i].name);
    if (t->keys) {
        OPENSSL_cleanse(t->keys, (size_t)t->nkeys * TICKET_KEY_LEN);
        free(t->keys);
    }
    free(t->names);
    free(t->ctx);
    free(t);
}

/* ex_data free hook: called for every SSL_CTX freed; acts on the owner only. */
static void
owner_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr)
        server_destroy(ptr, false);
}

int
tls_ctx_init(void)
{
    owner_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, owner_free);
    server_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (owner_idx < 0 || server_idx < 0)
        return -1;
    if (RAND_bytes(process_key, sizeof(process_key)) != 1)
        return -1;
    return 0;
}

/* The first queued OpenSSL error as a short reason, in <buf>; clears the queue. */
static const char *
ssl_reason(char *buf, size_t len)
{
    unsigned long code = ERR_peek_error();
    int lib = ERR_GET_LIB(code), reason = ERR_GET_REASON(code);
    const char *s;

    if (code == 0)
        snprintf(buf, len, "unknown error");
    else if (lib == ERR_LIB_X509 &&
             (reason == X509_R_KEY_VALUES_MISMATCH || reason == X509_R_KEY_TYPE_MISMATCH))
        snprintf(buf, len, "private key does not match the certificate");
    else if (ERR_SYSTEM_ERROR(code))
        snprintf(buf, len, "%s", strerror(reason));
    else if ((s = ERR_reason_error_string(code)) != NULL)
        snprintf(buf, len, "%s", s);
    else
        snprintf(buf, len, "error %08lx", code);
    ERR_clear_error();
    return buf;
}

/* 0 when <path> can be opened for reading, else -1 with errno. */
static int
readable(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/* Ticket key callback (RFC 5077 format, as OpenSSL does it: AES-256-CBC and
 * HMAC-SHA256). Encrypt with keys[0]; decrypt with any key, and ask for a fresh
 * ticket when the key was not the first (it is being rotated out). */
static int
ticket_cb(SSL *s, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *cctx,
          EVP_MAC_CTX *hctx, int enc)
{
    const struct tls_server *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), server_idx);
    const uint8_t *k = NULL;
    int ret = 1;
    OSSL_PARAM params[3];

    if (!t || t->nkeys == 0)
        return -1;
    if (enc) {
        k = t->keys;
        if (RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(name, k, TICKET_NAME_LEN);
        if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k + TICKET_NAME_LEN + TICKET_HMAC_LEN,
                               iv) != 1)
            return -1;
    } else {
        for (uint32_t i = 0; i < t->nkeys && !k; i++) {
            if (memcmp(name, t->keys + (size_t)i * TICKET_KEY_LEN, TICKET_NAME_LEN) == 0) {
                k = t->keys + (size_t)i * TICKET_KEY_LEN;
                /* TLS 1.3 clients use a ticket once: always send a fresh one,
                 * or every other reconnect would be a full handshake. */
                ret = (i == 0 && SSL_version(s) < TLS1_3_VERSION) ? 1 : 2;
            }
        }
        if (!k)
            return 0; /* unknown key: full handshake, new ticket */
        if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k + TICKET_NAME_LEN + TICKET_HMAC_LEN,
                               iv) != 1)
            return -1;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)(k + TICKET_NAME_LEN),
                                                  TICKET_HMAC_LEN);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    return ret;
}

/* Index of the certificate answering for <host>, or -1. Exact names first, then
 * single-label wildcards, each in configuration order. Linear: a server block
 * holds a handful of certificates, and this runs once per full handshake. */
static int
sni_lookup(const struct tls_server *t, const char *host, size_t len)
{
    const char *dot;

    if (len > 0 && host[len - 1] == '.')
        len--;
    for (uint32_t i = 0; i < t->nnames; i++) {
        const struct tls_name *n = &t->names[i];
        if (!n->wildcard && n->len == len && mem_ieq(n->name, host, len))
            return (int)n->cert;
    }
    dot = memchr(host, '.', len);
    if (!dot || dot == host)
        return -1;
    for (uint32_t i = 0; i < t->nnames; i++) {
        const struct tls_name *n = &t->names[i];
        size_t slen = len - (size_t)(dot - host);
        if (n->wildcard && n->len == slen && mem_ieq(n->name, dot, slen))
            return (int)n->cert;
    }
    return -1;
}

/* Servername callback: move the connection to the certificate's context. An
 * unknown or absent name keeps the default certificate. */
static int
sni_cb(SSL *s, int *alert, void *arg)
{
    const struct tls_server *t = arg;
    const char *host;
    int i;

    (void)alert;
    if (t->nctx < 2)
        return SSL_TLSEXT_ERR_OK;
    host = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (!host)
        return SSL_TLSEXT_ERR_OK;
    i = sni_lookup(t, host, strlen(host));
    if (i > 0 && SSL_get_SSL_CTX(s) != t->ctx[i])
        SSL_set_SSL_CTX(s, t->ctx[i]);
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN: "h2" when the listen offers HTTP/2 (tls_offer_h2 marked the SSL) and
 * the client offers it, else "http/1.1". A client that offers ALPN without
 * either gets a no_application_protocol alert (RFC 7301 §3.2); a client
 * offering no ALPN at all is served HTTP/1.1. */
static int
alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
        unsigned int inlen, void *arg)
{
    bool h2_ok = SSL_get_app_data(s) != NULL;
    const unsigned char *h1 = NULL;
    (void)arg;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (h2_ok && l == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        if (!h1 && l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0)
            h1 = in + i + 1;
        i += 1 + l;
    }
    if (h1) {
        *out = h1;
        *outlen = 8;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int
name_add(struct tls_server *t, const unsigned char *p, size_t len, uint32_t cert)
{
    struct tls_name *n;
    bool wild = false;

    if (len == 0 || memchr(p, '\0', len))
        return 0; /* empty or embedded NUL: never matches, skip */
    if (len > 2 && p[0] == '*' && p[1] == '.') {
        wild = true;
        p++, len--;
    }
    n = realloc(t->names, (t->nnames + 1) * sizeof(*n));
    if (!n)
        return -1;
    t->names = n;
    n = &t->names[t->nnames];
    n->name = malloc(len + 1);
    if (!n->name)
        return -1;
    memcpy(n->name, p, len);
    n->name[len] = '\0';
    n->len = len;
    n->cert = cert;
    n->wildcard = wild;
    t->nnames++;
    return 0;
}

/* Record the DNS subjectAltNames of certificate <cert>, or its CN when it has
 * none. 0 or -1 (out of memory). */
static int
names_collect(struct tls_server *t, X509 *x, uint32_t cert)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    uint32_t before = t->nnames;
    int rc = 0;

    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && rc == 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS)
            rc = name_add(t, ASN1_STRING_get0_data(g->d.dNSName),
                          (size_t)ASN1_STRING_length(g->d.dNSName), cert);
    }
    GENERAL_NAMES_free(gens);
    if (rc == 0 && t->nnames == before) {
        const X509_NAME *subj = X509_get_subject_name(x);
        int at = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        if (at >= 0) {
            const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, at));
            rc = name_add(t, ASN1_STRING_get0_data(cn), (size_t)ASN1_STRING_length(cn), cert);
        }
    }
    return rc;
}

/* Load the chain and key of <cc> into <ctx>. 0 or -1 with <e> at the cert's pos. */
static int
cert_load(SSL_CTX *ctx, const struct conf_cert *cc, struct err *e)
{
    const char *key = cc->key_file ? cc->key_file : cc->cert_file;
    char why[160], tmp[128];

    if (readable(cc->cert_file) < 0) {
        snprintf(why, sizeof(why), "%s", strerror(errno));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cc->cert_file) != 1) {
        unsigned long code = ERR_peek_error();
        if (ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE)
            snprintf(why, sizeof(why), "no PEM certificate found");
        else
            ssl_reason(why, sizeof(why));
        goto fail;
    }
    if (readable(key) < 0) {
        snprintf(tmp, sizeof(tmp), "%s", strerror(errno));
        snprintf(why, sizeof(why), "key \"%s\": %s", key, tmp);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long code = ERR_peek_error();
        if ((ERR_GET_LIB(code) == ERR_LIB_OSSL_DECODER &&
             ERR_GET_REASON(code) == ERR_R_UNSUPPORTED) ||
            (ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE))
            snprintf(tmp, sizeof(tmp), "no PEM private key found");
        else
            ssl_reason(tmp, sizeof(tmp));
        goto fail_key;
    }
    /* A key of another type lands in another slot: "no certificate assigned". */
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(tmp, sizeof(tmp), "private key does not match the certificate");
        goto fail_key;
    }
    return 0;
fail_key:
    if (cc->key_file)
        snprintf(why, sizeof(why), "key \"%s\": %s", key, tmp);
    else
        snprintf(why, sizeof(why), "%s", tmp);
fail:
    ERR_clear_error();
    return err_at(e, cc->pos.file, (int)cc->pos.line, (int)cc->pos.col,
                  "cannot load certificate \"%s\": %s", cc->cert_file, why);
}

/* One server context for certificate <cc>, with the policy of <vs>. */
static SSL_CTX *
server_ctx_new(const struct conf_vserver *vs, const struct conf_cert *cc, struct tls_server *t,
               struct err *e)
{
    const struct conf_pos *p = &vs->pos;
    const char *ciphers = vs->ciphers ? vs->ciphers : TLS_DEFAULT_CIPHERS;
    const char *suites = vs->ciphersuites ? vs->ciphersuites : TLS_DEFAULT_SUITES;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[160];

    if (!ctx) {
        err_at(e, p->file, (int)p->line, (int)p->col, "cannot create a TLS context: %s",
               ssl_reason(why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_ex_data(ctx, server_idx, t);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        err_at(e, p->file, (int)p->line, (int)p->col, "cannot set TLS versions: %s",
               ssl_reason(why, sizeof(why)));
        goto fail;
    }
    /* An EOF without close_notify reads as EOF, as on a plain socket: HTTP framing
     * detects truncation, and a half-closed client can still get its response. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* RELEASE_BUFFERS: an idle connection holds no 16 KiB record buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Read whole socket buffers, not header then body: half the recv calls. */
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        err_at(e, p->file, (int)p->line, (int)p->col, "tls_ciphers \"%s\": %s", ciphers,
               ssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
        err_at(e, p->file, (int)p->line, (int)p->col, "tls_ciphersuites \"%s\": %s", suites,
               ssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_set1_groups_list(ctx, TLS_DEFAULT_GROUPS) != 1) {
        err_at(e, p->file, (int)p->line, (int)p->col, "cannot set TLS groups: %s",
               ssl_reason(why, sizeof(why)));
        goto fail;
    }
    /* Resumption by stateless tickets only: replicas share the ticket key file,
     * and no per-session state is kept here. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tether", 6);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, t);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, t);
    if (cert_load(ctx, cc, e) < 0)
        goto fail;
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/* Fill t->keys from <path> (80 bytes per key), or the process key. */
static int
keys_load(struct tls_server *t, const char *path, struct err *e)
{
    uint8_t buf[TICKET_KEY_LEN * TICKET_MAX_KEYS + 1];
    size_t n = 0;
    int fd;

    if (!path) {
        t->keys = malloc(TICKET_KEY_LEN);
        if (!t->keys)
            return err_set(e, "out of memory");
        memcpy(t->keys, process_key, TICKET_KEY_LEN);
        t->nkeys = 1;
        return 0;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, "tls_ticket_key_file \"%s\": %s", path, strerror(errno));
    while (n < sizeof(buf)) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int saved = errno;
            close(fd);
            OPENSSL_cleanse(buf, n);
            return err_set(e, "tls_ticket_key_file \"%s\": %s", path, strerror(saved));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n == 0 || n % TICKET_KEY_LEN != 0 || n > TICKET_KEY_LEN * TICKET_MAX_KEYS) {
        OPENSSL_cleanse(buf, n);
        return err_set(e,
                       "tls_ticket_key_file \"%s\": %s%zu bytes; expected 80 bytes per key "
                       "(16 name, 32 HMAC, 32 AES), 1 to %d keys",
                       path, n > TICKET_KEY_LEN * TICKET_MAX_KEYS ? "more than " : "", n,
                       TICKET_MAX_KEYS);
    }
    t->keys = malloc(n);
    if (!t->keys) {
        OPENSSL_cleanse(buf, n);
        return err_set(e, "out of memory");
    }
    memcpy(t->keys, buf, n);
    OPENSSL_cleanse(buf, n);
    t->nkeys = (uint32_t)(n / TICKET_KEY_LEN);
    return 0;
}

struct tls_server *
tls_server_build(const struct conf_vserver *vs, struct err *e)
{
    struct tls_server *t;

    tls_global_init();
    if (vs->ncerts == 0) {
        err_at(e, vs->pos.file, (int)vs->pos.line, (int)vs->pos.col,
               "server has no tls_certificate");
        return NULL;
    }
    t = calloc(1, sizeof(*t));
    if (!t || !(t->ctx = calloc(vs->ncerts, sizeof(*t->ctx)))) {
        free(t);
        err_set(e, "out of memory");
        return NULL;
    }
    if (keys_load(t, vs->ticket_key_file, e) < 0)
        goto fail;
    for (uint32_t i = 0; i < vs->ncerts; i++) {
        SSL_CTX *ctx = server_ctx_new(vs, &vs->certs[i], t, e);
        if (!ctx)
            goto fail;
        t->ctx[t->nctx++] = ctx;
        if (names_collect(t, SSL_CTX_get0_certificate(ctx), i) < 0) {
            err_set(e, "out of memory");
            goto fail;
        }
    }
    /* From here on ctx[0] owns t (see struct tls_server). */
    if (SSL_CTX_set_ex_data(t->ctx[0], owner_idx, t) != 1) {
        err_set(e, "out of memory");
        goto fail;
    }
    return t;
fail:
    ERR_clear_error();
    server_destroy(t, true);
    return NULL;
}

void
tls_server_free(struct tls_server *t)
{
    if (t)
        SSL_CTX_free(t->ctx[0]); /* owner_free() runs once no SSL refers to it */
}

struct ssl_ctx_st *
tls_server_ctx(const struct tls_server *t)
{
    return t->ctx[0];
}

struct tls_client *
tls_client_build(const struct conf_server *s, struct err *e)
{
    const struct conf_pos *p = &s->pos;
    struct tls_client *t;
    char why[160];

    tls_global_init();
    t = calloc(1, sizeof(*t));
    if (!t) {
        err_set(e, "out of memory");
        return NULL;
    }
    t->verify = s->verify;
    if (s->sni && !(t->sni = strdup(s->sni))) {
        err_set(e, "out of memory");
        goto fail;
    }
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        err_at(e, p->file, (int)p->line, (int)p->col, "cannot create a TLS context: %s",
               ssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1) {
        err_at(e, p->file, (int)p->line, (int)p->col, "cannot set TLS versions: %s",
               ssl_reason(why, sizeof(why)));
        goto fail;
    }
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                    SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(t->ctx, 1);
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
    /* Pods speak HTTP/1.1; saying so keeps ALPN-aware pods from guessing. */
    if (SSL_CTX_set_alpn_protos(t->ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) {
        err_set(e, "out of memory");
        goto fail;
    }
    if (!s->verify) {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    } else if (s->ca_file) {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        if (readable(s->ca_file) < 0) {
            err_at(e, p->file, (int)p->line, (int)p->col, "cannot load CA file \"%s\": %s",
                   s->ca_file, strerror(errno));
            goto fail;
        }
        if (SSL_CTX_load_verify_file(t->ctx, s->ca_file) != 1) {
            err_at(e, p->file, (int)p->line, (int)p->col, "cannot load CA file \"%s\": %s",
                   s->ca_file, ssl_reason(why, sizeof(why)));
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
            err_at(e, p->file, (int)p->line, (int)p->col, "cannot load the system CA store: %s",
                   ssl_reason(why, sizeof(why)));
            goto fail;
        }
    }
    return t;
fail:
    ERR_clear_error();
    tls_client_free(t);
    return NULL;
}

void
tls_client_free(struct tls_client *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t->sni);
    free(t);
}

struct ssl_ctx_st *
tls_client_ctx(const struct tls_client *t, const char **sni, bool *verify)
{
    *sni = t->sni;
    *verify = t->verify;
    return t->ctx;
}
