/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the pod's load report parser: any bytes, with the default
 * member names or fuzzer-chosen ones; results must be in range, errors must point
 * inside the input, and a report must parse the same with a trailing newline. */
#include "config.h"

#include <tether/health_report.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const char *p, size_t n, const struct hrep_fields *f)
{
    struct health_report r;
    size_t off = 0;
    int rc = health_report_parse(p, n, f, &r, &off);
    if (rc > 0 || rc < HREP_E_MISSING)
        abort();
    if (rc < 0) {
        if (off > n || r.active || r.max || r.has_max || r.status)
            abort();
        return;
    }
    if (r.active > HREP_MAX_SESSIONS || r.max > HREP_MAX_SESSIONS || r.status > HREP_DRAINING ||
        (!r.has_max && r.max))
        abort();
    if (n < HREP_MAX_BYTES) {
        /* Trailing whitespace changes nothing. */
        char *q = malloc(n + 1);
        struct health_report r2;
        if (!q)
            return;
        memcpy(q, p, n);
        q[n] = '\n';
        if (health_report_parse(q, n + 1, f, &r2, NULL) != 0 || memcmp(&r, &r2, sizeof(r)) != 0)
            abort();
        free(q);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct hrep_fields dflt = {"status", 6, "active_sessions", 15, "max_sessions", 12};
    if (size < 1)
        return 0;
    if (!(data[0] & 0x80)) {
        check((const char *)data + 1, size - 1, &dflt);
        return 0;
    }
    /* mode 1: three short names taken from the input, then the report. */
    size_t l1 = data[0] & 7, l2 = (data[0] >> 3) & 7, l3 = 3;
    if (size - 1 < l1 + l2 + l3)
        return 0;
    const char *q = (const char *)data + 1;
    struct hrep_fields f = {q, l1, q + l1, l2, q + l1 + l2, l3};
    check(q + l1 + l2 + l3, size - 1 - l1 - l2 - l3, &f);
    return 0;
}
