/* SPDX-License-Identifier: MIT */
/* A pod's load report in its health answer: a JSON object such as
 * {"status": "healthy", "active_sessions": 37, "max_sessions": 50}. Pure: bytes
 * in, figures out; bounded in size, depth and values (health_report.c). */
#ifndef TETHER_HEALTH_REPORT_H
#define TETHER_HEALTH_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest report accepted (bytes); a longer body is rejected, not truncated. */
#define HREP_MAX_BYTES 4096
/* Deepest nesting of objects/arrays accepted (the report itself is depth 1). */
#define HREP_MAX_DEPTH 8
/* Largest session figure accepted. */
#define HREP_MAX_SESSIONS 1000000u

enum hrep_status {
    HREP_NONE = 0, /* no status member */
    HREP_HEALTHY,
    HREP_DEGRADED,
    HREP_DRAINING,
};

enum hrep_error {
    HREP_E_SIZE = -1,    /* longer than HREP_MAX_BYTES */
    HREP_E_SYNTAX = -2,  /* not a JSON object (or trailing bytes) */
    HREP_E_DEPTH = -3,   /* nested deeper than HREP_MAX_DEPTH */
    HREP_E_VALUE = -4,   /* a known member with a value of the wrong type or range */
    HREP_E_MISSING = -5, /* no active-sessions member */
};

/* Member names to read (not NUL-terminated). */
struct hrep_fields {
    const char *status;
    size_t status_len;
    const char *active;
    size_t active_len;
    const char *max;
    size_t max_len;
};

struct health_report {
    uint8_t status;  /* enum hrep_status */
    bool has_max;    /* max member present */
    uint32_t active; /* active sessions */
    uint32_t max;    /* max sessions (when has_max) */
};

/* Parse the report in <p>[0..n) with member names <f>. Returns 0 and fills <out>,
 * or an enum hrep_error with <*err_off> (may be NULL) at the offending byte.
 * A member named twice: the first one counts. An unknown status string is
 * HREP_E_VALUE. Never reads outside <p>[0..n). */
int health_report_parse(const char *p, size_t n, const struct hrep_fields *f,
                        struct health_report *out, size_t *err_off);

/* Short text for an enum hrep_error. */
const char *health_report_strerror(int err);

#endif
