/* SPDX-License-Identifier: MIT */
/* PROXY protocol v1 and v2 parsing. */
#include "config.h"

#include <tether/proxy_proto.h>

#include <arpa/inet.h>
#include <string.h>

static const char v2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";

static int
parse_v1(const char *p, size_t n, struct sock_addr *src)
{
    char line[108];
    const char *nl = memchr(p, '\n', n < 107 ? n : 107);
    char *tok[6], *save = NULL;
    int nt = 0;
    uint64_t port;
    if (!nl)
        return n >= 107 ? -1 : 0;
    size_t len = (size_t)(nl - p) + 1;
    if (len < 8 || p[len - 2] != '\r')
        return -1;
    memcpy(line, p, len - 2);
    line[len - 2] = '\0';
    for (char *t = strtok_r(line, " ", &save); t && nt < 6; t = strtok_r(NULL, " ", &save))
        tok[nt++] = t;
    if (nt < 2 || strcmp(tok[0], "PROXY") != 0)
        return -1;
    memset(src, 0, sizeof(*src));
    if (strcmp(tok[1], "UNKNOWN") == 0)
        return (int)len;
    if (nt != 6 || parse_u64(tok[4], strlen(tok[4]), &port) < 0 || port == 0 || port > 65535)
        return -1;
    if (strcmp(tok[1], "TCP4") == 0) {
        if (inet_pton(AF_INET, tok[2], &src->u.in.sin_addr) != 1)
            return -1;
        src->u.in.sin_family = AF_INET;
        src->u.in.sin_port = htons((uint16_t)port);
        src->len = sizeof(src->u.in);
    } else if (strcmp(tok[1], "TCP6") == 0) {
        if (inet_pton(AF_INET6, tok[2], &src->u.in6.sin6_addr) != 1)
            return -1;
        src->u.in6.sin6_family = AF_INET6;
        src->u.in6.sin6_port = htons((uint16_t)port);
        src->len = sizeof(src->u.in6);
    } else {
        return -1;
    }
    return (int)len;
}

static int
parse_v2(const unsigned char *p, size_t n, struct sock_addr *src)
{
    if (n < 16)
        return 0;
    unsigned ver = p[12] >> 4, cmd = p[12] & 15, fam = p[13];
    size_t len = 16 + ((size_t)p[14] << 8 | p[15]);
    if (ver != 2 || cmd > 1 || len > PROXY_PROTO_MAX)
        return -1;
    if (n < len)
        return 0;
    memset(src, 0, sizeof(*src));
    if (cmd == 0)
        return (int)len; /* LOCAL: health check from the balancer itself */
    if (fam == 0x11) {
        if (len < 16 + 12)
            return -1;
        src->u.in.sin_family = AF_INET;
        memcpy(&src->u.in.sin_addr, p + 16, 4);
        memcpy(&src->u.in.sin_port, p + 24, 2);
        src->len = sizeof(src->u.in);
    } else if (fam == 0x21) {
        if (len < 16 + 36)
            return -1;
        src->u.in6.sin6_family = AF_INET6;
        memcpy(&src->u.in6.sin6_addr, p + 16, 16);
        memcpy(&src->u.in6.sin6_port, p + 48, 2);
        src->len = sizeof(src->u.in6);
    } else if (fam != 0x00) {
        /* UNIX or unknown families: keep the socket's address. */
    }
    return (int)len;
}

int
proxy_proto_parse(const char *p, size_t n, struct sock_addr *src)
{
    if (n == 0)
        return 0;
    if (p[0] == 'P') {
        size_t k = n < 6 ? n : 6;
        if (memcmp(p, "PROXY ", k) != 0)
            return -1;
        return n < 6 ? 0 : parse_v1(p, n, src);
    }
    if (p[0] == '\r') {
        size_t k = n < 12 ? n : 12;
        if (memcmp(p, v2_sig, k) != 0)
            return -1;
        return n < 12 ? 0 : parse_v2((const unsigned char *)p, n, src);
    }
    return -1;
}
