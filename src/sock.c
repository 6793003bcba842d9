/* SPDX-License-Identifier: MIT */
/* Socket addresses and socket set-up. */
#include "config.h"

#include <tether/sock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Off by default, so the fuzzers and the corpus replay never touch DNS; the
 * programs turn it on. */
static bool resolve_names;

void
sock_resolve_names(bool on)
{
    resolve_names = on;
}

/* Host name -> first address getaddrinfo() gives (IPv4 or IPv6), once, when the
 * configuration is read, as HAProxy and nginx do. */
static int
resolve_host(struct sock_addr *a, const char *host, uint16_t port, struct err *e)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res)
        return err_set(e, "cannot resolve host name \"%s\": %s", host,
                       rc != 0 ? gai_strerror(rc) : "no address");
    memset(a, 0, sizeof(*a));
    if (res->ai_family == AF_INET6) {
        memcpy(&a->u.in6, res->ai_addr, sizeof(a->u.in6));
        a->u.in6.sin6_port = htons(port);
        a->len = sizeof(a->u.in6);
    } else {
        memcpy(&a->u.in, res->ai_addr, sizeof(a->u.in));
        a->u.in.sin_port = htons(port);
        a->len = sizeof(a->u.in);
    }
    freeaddrinfo(res);
    return 0;
}

static int
parse_port(const char *s, size_t len, uint16_t *port)
{
    uint64_t v;
    if (parse_u64(s, len, &v) < 0 || v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int
sock_addr_parse(struct sock_addr *a, const char *text, int default_port, struct err *e)
{
    char host[256];
    const char *colon;
    uint16_t port = 0;
    size_t tlen = strlen(text);

    memset(a, 0, sizeof(*a));
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        if (*path == '\0' || strlen(path) >= sizeof(a->u.un.sun_path))
            return err_set(e, "invalid unix socket path \"%s\"", path);
        a->u.un.sun_family = AF_UNIX;
        memcpy(a->u.un.sun_path, path, strlen(path) + 1);
        a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
        return 0;
    }
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || (size_t)(end - text - 1) >= sizeof(host))
            return err_set(e, "invalid address \"%s\"", text);
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        if (end[1] == ':') {
            if (parse_port(end + 2, strlen(end + 2), &port) < 0)
                return err_set(e, "invalid port in \"%s\"", text);
        } else if (end[1] != '\0' || default_port <= 0) {
            return err_set(e, "missing port in \"%s\"", text);
        } else {
            port = (uint16_t)default_port;
        }
        if (inet_pton(AF_INET6, host, &a->u.in6.sin6_addr) != 1)
            return err_set(e, "invalid IPv6 address \"%s\"", host);
        a->u.in6.sin6_family = AF_INET6;
        a->u.in6.sin6_port = htons(port);
        a->len = sizeof(a->u.in6);
        return 0;
    }
    colon = strrchr(text, ':');
    if (!colon) {
        /* A bare port means all IPv4 addresses; a bare host takes the default port. */
        if (parse_port(text, tlen, &port) == 0) {
            a->u.in.sin_family = AF_INET;
            a->u.in.sin_addr.s_addr = htonl(INADDR_ANY);
            a->u.in.sin_port = htons(port);
            a->len = sizeof(a->u.in);
            return 0;
        }
        if (default_port <= 0)
            return err_set(e, "missing port in \"%s\"", text);
        port = (uint16_t)default_port;
        colon = text + tlen;
    } else if (parse_port(colon + 1, strlen(colon + 1), &port) < 0) {
        return err_set(e, "invalid port in \"%s\"", text);
    }
    if ((size_t)(colon - text) >= sizeof(host))
        return err_set(e, "invalid address \"%s\"", text);
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    a->u.in.sin_family = AF_INET;
    a->u.in.sin_port = htons(port);
    a->len = sizeof(a->u.in);
    if (strcmp(host, "*") == 0 || host[0] == '\0') {
        a->u.in.sin_addr.s_addr = htonl(INADDR_ANY);
        return 0;
    }
    if (strcmp(host, "localhost") == 0) {
        a->u.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return 0;
    }
    if (inet_pton(AF_INET, host, &a->u.in.sin_addr) == 1)
        return 0;
    if (!resolve_names || strspn(host, "0123456789.") == strlen(host))
        return err_set(e, "invalid IPv4 address \"%s\"", host);
    return resolve_host(a, host, port, e);
}

/* Dotted quad without printf machinery (done for every accepted connection). */
static size_t
ipv4_format(const uint8_t *b, char *out, size_t outlen)
{
    char tmp[16];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            tmp[n++] = (char)('0' + v / 100);
        if (v >= 10)
            tmp[n++] = (char)('0' + v / 10 % 10);
        tmp[n++] = (char)('0' + v % 10);
        tmp[n++] = i < 3 ? '.' : '\0';
    }
    if (n > outlen)
        return 0;
    memcpy(out, tmp, n);
    return n - 1;
}

size_t
sock_addr_ip(const struct sock_addr *a, char *out, size_t outlen)
{
    out[0] = '\0';
    if (a->u.sa.sa_family == AF_INET)
        return ipv4_format((const uint8_t *)&a->u.in.sin_addr, out, outlen);
    else if (a->u.sa.sa_family == AF_INET6) {
        /* Show v4-mapped peers as plain IPv4, as operators expect in logs. */
        if (IN6_IS_ADDR_V4MAPPED(&a->u.in6.sin6_addr))
            return ipv4_format(&a->u.in6.sin6_addr.s6_addr[12], out, outlen);
        else
            inet_ntop(AF_INET6, &a->u.in6.sin6_addr, out, (socklen_t)outlen);
    } else if (a->u.sa.sa_family == AF_UNIX)
        snprintf(out, outlen, "unix");
    return strlen(out);
}

char *
sock_addr_format(const struct sock_addr *a, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];
    switch (a->u.sa.sa_family) {
    case AF_INET:
        inet_ntop(AF_INET, &a->u.in.sin_addr, ip, sizeof(ip));
        snprintf(out, outlen, "%s:%u", ip, ntohs(a->u.in.sin_port));
        break;
    case AF_INET6:
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, ip, sizeof(ip));
        snprintf(out, outlen, "[%s]:%u", ip, ntohs(a->u.in6.sin6_port));
        break;
    case AF_UNIX:
        snprintf(out, outlen, "unix:%s", a->u.un.sun_path);
        break;
    default:
        snprintf(out, outlen, "-");
    }
    return out;
}

bool
sock_addr_equal(const struct sock_addr *a, const struct sock_addr *b)
{
    return a->len == b->len && memcmp(&a->u, &b->u, a->len) == 0;
}

/* ---- listening sockets handed over by a binary upgrade ---- */

/* An inherited listening socket not yet taken by sock_listen(). */
struct adopted_sock {
    int fd;
    struct sock_addr addr; /* from getsockname() */
};
static struct adopted_sock *adopted; /* heap, grown on demand */
static uint32_t nadopted, adopted_cap;

/* Same address, whatever the length a parser or getsockname() gave. */
static bool
addr_same(const struct sock_addr *a, const struct sock_addr *b)
{
    if (a->u.sa.sa_family != b->u.sa.sa_family)
        return false;
    switch (a->u.sa.sa_family) {
    case AF_INET:
        return a->u.in.sin_port == b->u.in.sin_port &&
               a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr;
    case AF_INET6:
        return a->u.in6.sin6_port == b->u.in6.sin6_port &&
               memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16) == 0;
    case AF_UNIX:
        return strncmp(a->u.un.sun_path, b->u.un.sun_path, sizeof(a->u.un.sun_path)) == 0;
    default:
        return false;
    }
}

int
sock_adopt(int fd)
{
    struct sock_addr a;
    int type = 0, listening = 0;
    socklen_t tl = sizeof(type), ll = sizeof(listening);
    memset(&a, 0, sizeof(a));
    a.len = sizeof(a.u);
    if (nadopted == adopted_cap) {
        uint32_t cap = adopted_cap ? adopted_cap * 2 : 16;
        struct adopted_sock *p = realloc(adopted, cap * sizeof(*p));
        if (!p)
            return -1;
        adopted = p;
        adopted_cap = cap;
    }
    if (getsockname(fd, &a.u.sa, &a.len) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) < 0 || !listening)
        return -1;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    adopted[nadopted].fd = fd;
    adopted[nadopted].addr = a;
    nadopted++;
    return 0;
}

uint32_t
sock_adopted_count(const struct sock_addr *a)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < nadopted; i++)
        n += addr_same(&adopted[i].addr, a);
    return n;
}

/* Take an adopted socket of <a>, or -1. */
static int
adopted_take(const struct sock_addr *a)
{
    for (uint32_t i = 0; i < nadopted; i++) {
        if (!addr_same(&adopted[i].addr, a))
            continue;
        int fd = adopted[i].fd;
        adopted[i] = adopted[--nadopted];
        return fd;
    }
    return -1;
}

uint32_t
sock_adopted_close(void)
{
    uint32_t n = nadopted;
    for (uint32_t i = 0; i < nadopted; i++)
        close(adopted[i].fd);
    free(adopted);
    adopted = NULL;
    nadopted = adopted_cap = 0;
    return n;
}

int
sock_listen(const struct sock_addr *a, int backlog, bool reuseport, bool defer_accept,
            unsigned mode, struct err *e)
{
    char name[SOCK_ADDR_STRLEN];
    int one = 1;
    int fd = adopted_take(a);
    if (fd >= 0) {
        /* Handed over by the process we replace: its accept queue comes with
         * it. Only the settings that may have changed are applied again. */
        if (a->u.sa.sa_family == AF_UNIX && mode)
            chmod(a->u.un.sun_path, mode);
        listen(fd, backlog);
        return fd;
    }
    fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sock_addr_format(a, name, sizeof(name));
    if (fd < 0)
        return err_set(e, "cannot listen on %s: %s", name, strerror(errno));
    if (a->u.sa.sa_family == AF_UNIX) {
        unlink(a->u.un.sun_path);
    } else {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
            goto fail;
        if (a->u.sa.sa_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, &a->u.sa, a->len) < 0)
        goto fail;
    if (a->u.sa.sa_family == AF_UNIX && mode && chmod(a->u.un.sun_path, mode) < 0)
        goto fail;
    if (listen(fd, backlog) < 0)
        goto fail;
    /* Accepted sockets inherit TCP_NODELAY: no setsockopt per connection. */
    if (a->u.sa.sa_family != AF_UNIX)
        sock_nodelay(fd);
    if (defer_accept && a->u.sa.sa_family != AF_UNIX) {
        int secs = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
    }
    return fd;
fail:
    err_set(e, "cannot listen on %s: %s", name, strerror(errno));
    close(fd);
    return -1;
}

void
sock_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int
sock_connect(const struct sock_addr *a)
{
    int fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (a->u.sa.sa_family != AF_UNIX)
        sock_nodelay(fd);
    if (connect(fd, &a->u.sa, a->len) < 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int
sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

void
sock_reset(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

int
sock_cidr_parse(struct sock_cidr *c, const char *text, struct err *e)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
    uint64_t bits;
    memset(c, 0, sizeof(*c));
    if (hlen == 0 || hlen >= sizeof(host))
        return err_set(e, "invalid network \"%s\"", text);
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, c->addr) == 1) {
        c->family = AF_INET;
        bits = 32;
    } else if (inet_pton(AF_INET6, host, c->addr) == 1) {
        c->family = AF_INET6;
        bits = 128;
    } else {
        return err_set(e, "invalid network \"%s\"", text);
    }
    if (slash) {
        uint64_t b;
        if (parse_u64(slash + 1, strlen(slash + 1), &b) < 0 || b > bits)
            return err_set(e, "invalid prefix length in \"%s\"", text);
        bits = b;
    }
    c->bits = (uint8_t)bits;
    return 0;
}

static bool
prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        return (a[full] & mask) == (b[full] & mask);
    }
    return true;
}

bool
sock_cidr_match(const struct sock_cidr *c, const struct sock_addr *a)
{
    if (a->u.sa.sa_family == AF_INET)
        return c->family == AF_INET &&
               prefix_match(c->addr, (const uint8_t *)&a->u.in.sin_addr, c->bits);
    if (a->u.sa.sa_family == AF_INET6) {
        const uint8_t *v6 = a->u.in6.sin6_addr.s6_addr;
        if (c->family == AF_INET6)
            return prefix_match(c->addr, v6, c->bits);
        if (IN6_IS_ADDR_V4MAPPED(&a->u.in6.sin6_addr))
            return prefix_match(c->addr, v6 + 12, c->bits);
    }
    return false;
}
