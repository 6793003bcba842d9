/* SPDX-License-Identifier: MIT */
/* Where log lines go: a file, stdout, stderr, or a syslog server (RFC 5424
 * over UDP or a Unix datagram socket, one datagram per line). Parses the
 * destination as written in the config, opens it, writes lines. */
#ifndef TETHER_LOG_SINK_H
#define TETHER_LOG_SINK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/sock.h>
#include <tether/util.h>

enum log_sink_kind {
    LOG_SINK_FILE = 0,
    LOG_SINK_STDOUT,
    LOG_SINK_STDERR,
    LOG_SINK_SYSLOG,
};

#define LOG_SINK_TAG_MAX 48 /* RFC 5424 APP-NAME */

struct log_sink {
    char text[4096];  /* the destination as configured */
    uint8_t kind;     /* enum log_sink_kind */
    uint8_t facility; /* syslog facility 0..23 */
    _Atomic int fd;   /* -1 until opened */
    char tag[LOG_SINK_TAG_MAX + 1];
    char host[256];        /* syslog HOSTNAME */
    long pid;              /* syslog PROCID */
    struct sock_addr addr; /* syslog server */
    struct log_sink *next; /* list of retired sinks (log.c) */
};

/* Parse <text>: "stdout", "stderr", "syslog:server=ADDR[,facility=F][,tag=T]"
 * (ADDR is HOST[:PORT], port 514 by default, or unix:PATH; F is kern, user,
 * daemon, auth, local0..local7 and the other RFC 5424 names, default local7;
 * T is 1..48 printable characters, default "tether") or a file path. A word
 * with ':' that is none of these ("foo:bar", "syslog:junk") is an error: write
 * "./foo:bar" for such a file. Fills <s> (fd -1). 0, or -1 with <e>. */
int log_sink_parse(struct log_sink *s, const char *text, struct err *e);

/* Open <s>: the file (O_APPEND, created 0640), a private duplicate of fd 1 or
 * 2, or a non-blocking datagram socket connected to the syslog server.
 * A file already open is opened again (log rotation). 0 or -1 with <e>. */
int log_sink_open(struct log_sink *s, struct err *e);

/* Close the descriptor of <s> (never fd 1 or 2 themselves). */
void log_sink_close(struct log_sink *s);

/* Write <len> bytes of whole lines. To syslog, each line is one datagram
 * with an RFC 5424 header (PRI from the facility and <severity> 0..7, time,
 * host, tag, pid, <msgid>); lines that cannot be sent are dropped. */
void log_sink_write(struct log_sink *s, int severity, const char *msgid, const char *buf,
                    size_t len);

#endif
