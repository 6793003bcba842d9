/* SPDX-License-Identifier: MIT */
/* Error log and access-log buffers over log sinks (log_sink.c). Every line is
 * one write(2) or one datagram, so lines from several threads never
 * interleave. */
#include "config.h"

#include <tether/log.h>
#include <tether/log_sink.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_level = LOG_LVL_INFO;
_Atomic int access_log_fd = -1;
/* The error log's destination; NULL: file descriptor 2 as it is. */
static _Atomic(struct log_sink *) error_sink;
static _Atomic bool error_json;
static _Atomic(struct log_sink *) access_sink;
/* Sinks replaced by a reload. A thread may still hold one for the line it is
 * writing, so they are kept (one per change of destination, a few KiB each). */
static struct log_sink *retired;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;

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

/* Point <slot> at a sink for <text> (a file is opened again, as on every
 * reload), retiring the one it replaces. <text> NULL: no sink. */
static int
sink_set(_Atomic(struct log_sink *) *slot, const char *text, struct err *e)
{
    struct log_sink *cur, *s = NULL;
    int rc = 0;
    pthread_mutex_lock(&sink_lock);
    cur = atomic_load(slot);
    if (text && cur && strcmp(cur->text, text) == 0) {
        rc = log_sink_open(cur, e);
        goto out;
    }
    if (text) {
        s = malloc(sizeof(*s));
        if (!s) {
            rc = err_set(e, "out of memory");
            goto out;
        }
        if (log_sink_parse(s, text, e) < 0 || log_sink_open(s, e) < 0) {
            free(s);
            rc = -1;
            goto out;
        }
    }
    atomic_store(slot, s);
    if (cur) {
        log_sink_close(cur);
        cur->next = retired;
        retired = cur;
    }
out:
    pthread_mutex_unlock(&sink_lock);
    return rc;
}

int
log_open(const char *target, int level, bool json, struct err *e)
{
    if (sink_set(&error_sink, !target || strcmp(target, "stderr") == 0 ? NULL : target, e) < 0)
        return -1;
    atomic_store(&log_level, level);
    atomic_store(&error_json, json);
    return 0;
}

void
log_reopen(void)
{
    struct err e;
    struct log_sink *s = atomic_load(&error_sink);
    if (s && s->kind == LOG_SINK_FILE && log_sink_open(s, &e) < 0)
        log_error("%s", e.msg);
}

void
log_vmsg(int level, const char *fmt, va_list ap)
{
    char msg[1800], line[2048], esc[1800];
    size_t n;
    int k;
    if (level < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    level = level < 0 ? 0 : level > LOG_LVL_ERROR ? LOG_LVL_ERROR : level;
    k = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t mlen = k < 0 ? 0 : MIN((size_t)k, sizeof(msg) - 1);
    struct log_sink *s = atomic_load(&error_sink);
    bool syslog = s && s->kind == LOG_SINK_SYSLOG;
    if (atomic_load_explicit(&error_json, memory_order_relaxed)) {
        char t[32];
        log_time_iso(t, sizeof(t), time_wall_ms());
        size_t en = json_escape(esc, sizeof(esc), msg, mlen);
        k = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%.*s\"}", t,
                     level_names[level], (int)en, esc);
        n = k < 0 ? 0 : MIN((size_t)k, sizeof(line) - 2);
    } else if (syslog) {
        /* The syslog header carries the time and the severity. */
        n = mlen;
        memcpy(line, msg, n);
    } else {
        n = log_time_iso(line, sizeof(line), time_wall_ms());
        k = snprintf(line + n, sizeof(line) - n, " [%s] %.*s", level_names[level], (int)mlen, msg);
        n = k < 0 ? n : MIN(n + (size_t)k, sizeof(line) - 2);
    }
    line[n++] = '\n';
    if (s) {
        /* RFC 5424 severities: error 3, warning 4, notice 5, info 6, debug 7. */
        log_sink_write(s, 7 - level, "error", line, n);
        return;
    }
    ssize_t w = write(2, line, n);
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
access_log_open(const char *dest, struct err *e)
{
    if (sink_set(&access_sink, dest, e) < 0)
        return -1;
    struct log_sink *s = atomic_load(&access_sink);
    atomic_store(&access_log_fd, s ? atomic_load(&s->fd) : -1);
    return 0;
}

void
access_log_reopen(const char *dest)
{
    struct err e;
    if (dest && access_log_open(dest, &e) < 0)
        log_error("%s", e.msg);
}

void
access_log_close(void)
{
    struct err e;
    sink_set(&access_sink, NULL, &e);
    atomic_store(&access_log_fd, -1);
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
    struct log_sink *s = atomic_load(&access_sink);
    if (s && b->len)
        log_sink_write(s, 6, "access", b->data, b->len); /* severity info */
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
