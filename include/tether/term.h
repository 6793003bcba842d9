/* SPDX-License-Identifier: MIT */
/* Why an exchange, a connection or a tunnel ended: the access log's "term"
 * (split out of proxy-types.h so the I/O layers that report it need not see
 * the request's type). */
#ifndef TETHER_TERM_H
#define TETHER_TERM_H

/* Why an exchange ended (access log "term"; HAProxy's termination state). */
enum term_reason {
    TERM_OK = 0,
    TERM_CLIENT_ABORT,    /* client closed or reset before the end */
    TERM_CLIENT_TIMEOUT,  /* client too slow (header, body, idle) */
    TERM_BAD_REQUEST,     /* malformed request: 400/431/501/505 */
    TERM_TOO_LARGE,       /* 413 */
    TERM_NO_ROUTE,        /* 404 */
    TERM_RATE_LIMITED,    /* 429/503 by a zone */
    TERM_CONN_LIMITED,    /* limit_conn */
    TERM_NO_SERVER,       /* no usable server: 503 */
    TERM_SERVER_REFUSED,  /* connect refused/failed: 502 */
    TERM_CONNECT_TIMEOUT, /* 504 while connecting */
    TERM_SERVER_RESET,    /* server closed/reset before or during the response */
    TERM_SERVER_TIMEOUT,  /* response timeout: 504 */
    TERM_BAD_RESPONSE,    /* unparsable response: 502 */
    TERM_SHUTDOWN,        /* tether stopping */
    TERM_INTERNAL,        /* out of memory or similar */
    TERM_TUNNEL_CLOSED,   /* a tunnel ended normally */
    TERM_TUNNEL_TIMEOUT,  /* a tunnel idled out */
    TERM__COUNT
};

/* Human name of a termination reason ("server_reset"), access_log.c. */
const char *term_name(unsigned term);

#endif
