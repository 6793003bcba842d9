/* SPDX-License-Identifier: MIT */
/* Socket addresses (parse/format) and socket set-up: nonblocking listeners with
 * SO_REUSEPORT, nonblocking connects, Unix sockets. */
#ifndef TETHER_SOCK_H
#define TETHER_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <tether/util.h>

/* Any address tether listens on or connects to. */
struct sock_addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
    socklen_t len; /* 0 when unset */
};

/* Longest formatted address ("[v6]:port" or "unix:/path"). */
#define SOCK_ADDR_STRLEN 128

/* Resolve host names in sock_addr_parse() (blocking getaddrinfo, first
 * address). Off until a program turns it on. */
void sock_resolve_names(bool on);

/* Parse "1.2.3.4:80", "[::1]:80", "*:80", "80", "unix:/path", and "name:80" when
 * host names are resolved (see above). A port is required unless <default_port>
 * > 0. 0 or -1 (message in <e>, no position). */
int sock_addr_parse(struct sock_addr *a, const char *text, int default_port, struct err *e);

/* Format as "1.2.3.4:80", "[::1]:80" or "unix:/path" into <out>. Returns <out>. */
char *sock_addr_format(const struct sock_addr *a, char *out, size_t outlen);
/* Format the IP only (no port) into <out>; returns the length written. */
size_t sock_addr_ip(const struct sock_addr *a, char *out, size_t outlen);

bool sock_addr_equal(const struct sock_addr *a, const struct sock_addr *b);

/* A listening socket: nonblocking, close-on-exec, SO_REUSEADDR, SO_REUSEPORT
 * (when <reuseport>), IPV6_V6ONLY for v6, TCP_DEFER_ACCEPT when <defer_accept>,
 * Unix sockets unlinked first and chmod'ed to <mode> (when non-zero). An
 * adopted socket of the same address (sock_adopt) is returned instead, as is.
 * Returns the fd or -1 with <e> = "cannot listen on ADDR: reason". */
int sock_listen(const struct sock_addr *a, int backlog, bool reuseport, bool defer_accept,
                unsigned mode, struct err *e);

/* Binary upgrade: offer the inherited listening socket <fd> to the next
 * sock_listen() of its address (getsockname), which then returns it instead of
 * binding. 0, or -1 when <fd> is not a listening stream socket (left open). */
int sock_adopt(int fd);
/* Adopted sockets of <a> not yet taken. */
uint32_t sock_adopted_count(const struct sock_addr *a);
/* Close the adopted sockets nobody took (addresses no longer configured);
 * returns how many. */
uint32_t sock_adopted_close(void);

/* Start a nonblocking connect. Returns the fd (connected or in progress) or -1
 * with errno set. Sets TCP_NODELAY on TCP sockets. */
int sock_connect(const struct sock_addr *a);

/* The pending error of a connecting socket (SO_ERROR): 0 when connected. */
int sock_error(int fd);

/* TCP_NODELAY on. */
void sock_nodelay(int fd);

/* Close with an RST instead of a FIN (SO_LINGER 0). */
void sock_reset(int fd);

/* A CIDR network for trusted-proxy lists. */
struct sock_cidr {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t bits;   /* prefix length */
    uint8_t addr[16];
};

int sock_cidr_parse(struct sock_cidr *c, const char *text, struct err *e);
bool sock_cidr_match(const struct sock_cidr *c, const struct sock_addr *a);

#endif
