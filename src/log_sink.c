/* SPDX-License-Identifier: MIT */
/* Log destinations: files, stdout/stderr and syslog (RFC 5424 framing over
 * RFC 5426 UDP or a Unix datagram socket such as /dev/log). */
#include "config.h"

#include <tether/log.h>
#include <tether/log_sink.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define SYSLOG_DEFAULT_PORT     514
#define SYSLOG_DEFAULT_FACILITY 23 /* local7, as nginx */
#define SYSLOG_DATAGRAM_MAX     8192

static const char *const facilities[] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "syslog", "lpr",    "news",
    "uucp",   "cron",   "authpriv", "ftp",    "ntp",    "audit",  "alert",  "clock",
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7",
};

static int
parse_facility(struct log_sink *s, const char *v, size_t n, struct err *e)
{
    for (size_t i = 0; i < ARRAY_SIZE(facilities); i++) {
        if (strlen(facilities[i]) == n && strncmp(facilities[i], v, n) == 0) {
            s->facility = (uint8_t)i;
            return 0;
        }
    }
    return err_set(e,
                   "unknown syslog facility \"%.*s\"; expected kern, user, mail, daemon, auth, "
                   "syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock or "
                   "local0..local7",
                   (int)n, v);
}

static int
parse_tag(struct log_sink *s, const char *v, size_t n, struct err *e)
{
    if (n == 0 || n > LOG_SINK_TAG_MAX)
        return err_set(e, "syslog tag must be 1 to %d characters", LOG_SINK_TAG_MAX);
    for (size_t i = 0; i < n; i++)
        if (v[i] < 33 || v[i] > 126)
            return err_set(e, "syslog tag \"%.*s\" has a character other than printable ASCII",
                           (int)n, v);
    memcpy(s->tag, v, n);
    s->tag[n] = '\0';
    return 0;
}

static int
parse_syslog(struct log_sink *s, const char *params, struct err *e)
{
    const char *p = params;
    bool have_server = false;
    s->kind = LOG_SINK_SYSLOG;
    s->facility = SYSLOG_DEFAULT_FACILITY;
    snprintf(s->tag, sizeof(s->tag), "tether");
    if (!*p)
        return err_set(e, "\"syslog:\" needs server=ADDR (syslog:server=HOST[:PORT] or "
                          "syslog:server=unix:PATH)");
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        if (!eq)
            return err_set(e,
                           "invalid syslog parameter \"%.*s\"; expected server=, facility= "
                           "or tag=",
                           (int)n, p);
        size_t kn = (size_t)(eq - p), vn = n - kn - 1;
        const char *v = eq + 1;
        if (kn == 6 && strncmp(p, "server", 6) == 0) {
            char addr[SOCK_ADDR_STRLEN + 8];
            struct err e2;
            if (vn == 0 || vn >= sizeof(addr))
                return err_set(e, "invalid syslog server \"%.*s\"", (int)vn, v);
            memcpy(addr, v, vn);
            addr[vn] = '\0';
            if (sock_addr_parse(&s->addr, addr, SYSLOG_DEFAULT_PORT, &e2) < 0)
                return err_set(e, "syslog server: %s", e2.msg);
            have_server = true;
        } else if (kn == 8 && strncmp(p, "facility", 8) == 0) {
            if (parse_facility(s, v, vn, e) < 0)
                return -1;
        } else if (kn == 3 && strncmp(p, "tag", 3) == 0) {
            if (parse_tag(s, v, vn, e) < 0)
                return -1;
        } else {
            return err_set(e, "unknown syslog parameter \"%.*s\"; expected server, facility or tag",
                           (int)kn, p);
        }
        p += n;
        if (*p == ',' && !*++p)
            return err_set(e, "empty syslog parameter after ','");
    }
    if (!have_server)
        return err_set(e, "\"syslog:\" needs server=ADDR");
    return 0;
}

int
log_sink_parse(struct log_sink *s, const char *text, struct err *e)
{
    memset(s, 0, sizeof(*s));
    atomic_init(&s->fd, -1);
    if (strlen(text) >= sizeof(s->text))
        return err_set(e, "log destination is too long");
    snprintf(s->text, sizeof(s->text), "%s", text);
    if (strcmp(text, "stdout") == 0) {
        s->kind = LOG_SINK_STDOUT;
        return 0;
    }
    if (strcmp(text, "stderr") == 0) {
        s->kind = LOG_SINK_STDERR;
        return 0;
    }
    if (strncmp(text, "syslog:", 7) == 0)
        return parse_syslog(s, text + 7, e);
    if (text[0] != '/' && text[0] != '.' && strchr(text, ':'))
        return err_set(e,
                       "unknown log destination \"%s\"; expected stdout, stderr, "
                       "syslog:server=ADDR[,facility=F][,tag=T] or a file path (write ./%s for "
                       "a file)",
                       text, text);
    if (!*text)
        return err_set(e, "empty log destination");
    s->kind = LOG_SINK_FILE;
    return 0;
}

int
log_sink_open(struct log_sink *s, struct err *e)
{
    int fd = -1;
    switch (s->kind) {
    case LOG_SINK_STDOUT:
    case LOG_SINK_STDERR:
        if (atomic_load(&s->fd) >= 0)
            return 0;
        fd = fcntl(s->kind == LOG_SINK_STDOUT ? 1 : 2, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            return err_set(e, "cannot use %s for logs: %s", s->text, strerror(errno));
        break;
    case LOG_SINK_SYSLOG: {
        if (atomic_load(&s->fd) >= 0)
            return 0;
        if (gethostname(s->host, sizeof(s->host) - 1) < 0 || !s->host[0])
            snprintf(s->host, sizeof(s->host), "-");
        for (char *h = s->host; *h; h++)
            if (*h < 33 || *h > 126)
                *h = '_';
        s->pid = (long)getpid();
        fd = socket(s->addr.u.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, &s->addr.u.sa, s->addr.len) < 0) {
            char a[SOCK_ADDR_STRLEN];
            int saved = errno;
            if (fd >= 0)
                close(fd);
            return err_set(e, "cannot reach syslog server %s: %s",
                           sock_addr_format(&s->addr, a, sizeof(a)), strerror(saved));
        }
        break;
    }
    default:
        fd = open(s->text, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return err_set(e, "cannot open log file \"%s\": %s", s->text, strerror(errno));
        break;
    }
    int old = atomic_exchange(&s->fd, fd);
    if (old > 2)
        close(old);
    return 0;
}

void
log_sink_close(struct log_sink *s)
{
    int old = atomic_exchange(&s->fd, -1);
    if (old > 2)
        close(old);
}

static void
syslog_line(struct log_sink *s, int fd, int severity, const char *msgid, const char *line, size_t n)
{
    char head[512], t[32];
    log_time_iso(t, sizeof(t), time_wall_ms());
    int hn = snprintf(head, sizeof(head), "<%d>1 %s %s %s %ld %s - ",
                      s->facility * 8 + (severity & 7), t, s->host, s->tag, s->pid, msgid);
    if (hn <= 0 || (size_t)hn >= sizeof(head))
        return;
    struct iovec iov[2] = {{head, (size_t)hn},
                           {(void *)line, MIN(n, (size_t)SYSLOG_DATAGRAM_MAX - (size_t)hn)}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t w;
    do
        w = sendmsg(fd, &m, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    /* A full or absent receiver drops the line: logging never blocks. */
}

void
log_sink_write(struct log_sink *s, int severity, const char *msgid, const char *buf, size_t len)
{
    int fd = atomic_load(&s->fd);
    if (fd < 0)
        return;
    if (s->kind == LOG_SINK_SYSLOG) {
        while (len) {
            const char *nl = memchr(buf, '\n', len);
            size_t n = nl ? (size_t)(nl - buf) : len;
            if (n)
                syslog_line(s, fd, severity, msgid, buf, n);
            n += nl ? 1 : 0;
            buf += n;
            len -= n;
        }
        return;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}
