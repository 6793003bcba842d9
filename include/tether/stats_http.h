/* SPDX-License-Identifier: MIT */
/* The stats listener: /metrics (Prometheus text), /stats (JSON) and / (the live
 * status page). Served by the control thread (stats_http.c); the documents are
 * written by metrics.c (both formats, from one snapshot) and status_page.c. */
#ifndef TETHER_STATS_HTTP_H
#define TETHER_STATS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct gen;

/* Open, keep or move the stats listener for <g>'s settings. */
void stats_http_sync(struct gen *g);
void stats_http_stop(void);

/* A growable output buffer. On allocation failure <oom> is set and later
 * appends are ignored, so writers check once at the end. */
struct strbuf {
    char *p;    /* heap bytes, not NUL-terminated (NULL until the first append) */
    size_t len; /* bytes written */
    size_t cap; /* bytes allocated */
    bool oom;   /* an append failed: the content is incomplete */
};

void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_free(struct strbuf *b);

/* Append every metric of the current state to <out>: Prometheus text format
 * 0.0.4 (metrics_write_prometheus) or one JSON object (metrics_write_json).
 * Control thread only (reads plans and the current generation). */
void metrics_write_prometheus(struct strbuf *out);
void metrics_write_json(struct strbuf *out);

/* Append the self-contained HTML status page to <out>. */
void status_page_write(struct strbuf *out);

#endif
