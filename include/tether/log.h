/* SPDX-License-Identifier: MIT */
/* Error log with levels (stderr or a file, one write per line, rate-limited
 * variants for noisy events) and the access log: per-worker line buffers flushed
 * with one write, reopened on SIGUSR1. */
#ifndef TETHER_LOG_H
#define TETHER_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/conf.h>

/* Messages below this level are dropped. */
extern _Atomic int log_level;

/* Route the error log to <target> (a destination as log_sink_parse reads it;
 * NULL or "stderr": file descriptor 2) at <level>, as JSON lines when <json>.
 * 0 or -1. */
int log_open(const char *target, int level, bool json, struct err *e);
/* Reopen the error log file (log rotation). */
void log_reopen(void);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (atomic_load_explicit(&log_level, memory_order_relaxed) <= LOG_LVL_DEBUG)               \
            log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                                   \
    } while (0)
#define log_info(...)   log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...)  log_msg(LOG_LVL_ERROR, __VA_ARGS__)

/* A rate limit for one noisy event: at most one line per <interval_ms>; the
 * count of suppressed lines is appended to the next one. */
struct log_limit {
    _Atomic uint64_t next_ms;    /* monotonic time the next line may be written */
    _Atomic uint64_t suppressed; /* lines dropped since the last one written */
};

void log_limited(struct log_limit *l, uint64_t interval_ms, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- access log ---- */

/* The access log's descriptor (file, stdout/stderr or syslog socket), -1
 * when off: read as "is the access log on". */
extern _Atomic int access_log_fd;

/* Send the access log to <dest> (as log_sink_parse reads it); a file is opened
 * again. 0 or -1. */
int access_log_open(const char *dest, struct err *e);
void access_log_reopen(const char *dest);
void access_log_close(void);

/* A per-worker line buffer: lines are appended and written out together. */
struct access_buf {
    char *data;
    size_t len;
    size_t cap;
};

void access_buf_init(struct access_buf *b, size_t cap);
void access_buf_fini(struct access_buf *b);
/* Room for at least <n> more bytes (flushes first when needed); returns the
 * write position, or NULL when the line cannot fit. */
char *access_buf_reserve(struct access_buf *b, size_t n);
void access_buf_commit(struct access_buf *b, size_t n);
void access_buf_flush(struct access_buf *b);

/* Write <n> bytes of <s> JSON-escaped (without quotes) into <out> of <cap>
 * bytes; returns the length written (truncates safely). */
size_t json_escape(char *out, size_t cap, const char *s, size_t n);

/* "2026-11-22T10:16:38.123Z" for wall-clock <ms> into <out> (>= 25 bytes). */
size_t log_time_iso(char *out, size_t cap, uint64_t ms);

#endif
