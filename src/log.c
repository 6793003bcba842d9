/* SPDX-License-Identifier: MIT */
/* Error log and access-log buffers. Every line is one write(2), so lines from
 * several threads never interleave. */
#include "config.h"

#include <tether/log.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_level = LOG_LVL_INFO;
_Atomic int access_log_fd = -1;
static _Atomic int error_fd = 2;
static char error_path[4096];

static const char *const level_names[] = {"debug", "info", "notice", "warn", "error"};

size_t
log_time_iso(char *out, size_t cap, uint64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n =
        snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
    return n < 0 ? 0 : MIN((size_t)n, cap - 1);
}

int
log_open(const char *target, int level, struct err *e)
{
    atomic_store(&log_level, level);
    if (!target || strcmp(target, "stderr") == 0) {
        error_path[0] = '\0';
        int old = atomic_exchange(&error_fd, 2);
        if (old > 2)
            close(old);
        return 0;
    }
    int fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return err_set(e, "cannot open error log \"%s\": %s", target, strerror(errno));
    snprintf(error_path, sizeof(error_path), "%s", target);
    int old = atomic_exchange(&error_fd, fd);
    if (old > 2)
        close(old);
    return 0;
}

void
log_reopen(void)
{
    if (error_path[0]) {
        char path[4096];
        snprintf(path, sizeof(path), "%s", error_path);
        log_open(path, atomic_load(&log_level), NULL);
    }
}

void
log_vmsg(int level, const char *fmt, va_list ap)
{
    char line[2048];
    size_t n;
    if (level < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    n = log_time_iso(line, sizeof(line), time_wall_ms());
    int k = snprintf(line + n, sizeof(line) - n, " [%s] ",
                     level_names[level < 0               ? 0
                                 : level > LOG_LVL_ERROR ? LOG_LVL_ERROR
                                                         : level]);
    if (k > 0)
        n += (size_t)k;
    k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    if (k > 0)
        n += MIN((size_t)k, sizeof(line) - n - 2);
    line[n++] = '\n';
    ssize_t w = write(atomic_load(&error_fd), line, n);
    (void)w;
}

void
log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

void
log_limited(struct log_limit *l, uint64_t interval_ms, int level, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    uint64_t now = time_mono_ms();
    uint64_t next = atomic_load(&l->next_ms);
    if (now < next || !atomic_compare_exchange_strong(&l->next_ms, &next, now + interval_ms)) {
        atomic_fetch_add(&l->suppressed, 1);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    uint64_t dropped = atomic_exchange(&l->suppressed, 0);
    if (dropped)
        log_msg(level, "%s (%llu similar messages suppressed)", msg, (unsigned long long)dropped);
    else
        log_msg(level, "%s", msg);
}

/* ---- access log ---- */

int
access_log_open(const char *path, struct err *e)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return err_set(e, "cannot open access log \"%s\": %s", path, strerror(errno));
    int old = atomic_exchange(&access_log_fd, fd);
    if (old >= 0)
        close(old);
    return 0;
}

void
access_log_reopen(const char *path)
{
    struct err e;
    if (path && access_log_open(path, &e) < 0)
        log_error("%s", e.msg);
}

void
access_log_close(void)
{
    int old = atomic_exchange(&access_log_fd, -1);
    if (old >= 0)
        close(old);
}

void
access_buf_init(struct access_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->cap = cap;
}

void
access_buf_fini(struct access_buf *b)
{
    access_buf_flush(b);
    free(b->data);
    b->data = NULL;
}

void
access_buf_flush(struct access_buf *b)
{
    int fd = atomic_load(&access_log_fd);
    size_t off = 0;
    while (fd >= 0 && off < b->len) {
        ssize_t w = write(fd, b->data + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    b->len = 0;
}

char *
access_buf_reserve(struct access_buf *b, size_t n)
{
    if (n > b->cap)
        return NULL;
    if (!b->data) {
        b->data = malloc(b->cap);
        if (!b->data)
            return NULL;
    }
    if (b->cap - b->len < n)
        access_buf_flush(b);
    return b->data + b->len;
}

void
access_buf_commit(struct access_buf *b, size_t n)
{
    b->len += n;
}

size_t
json_escape(char *out, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            if (o + 2 >= cap)
                break;
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            /* Non-ASCII bytes are escaped too: the log stays valid JSON whatever
             * bytes a client sent. */
            if (o + 6 >= cap)
                break;
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            if (o + 1 >= cap)
                break;
            out[o++] = (char)c;
        }
    }
    return o;
}
