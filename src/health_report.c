/* SPDX-License-Identifier: MIT */
/* The pod's load report (a JSON object in its health answer), validated whole:
 * strict JSON syntax, bounded size and depth, and typed figures for the three
 * members tether reads. Pure; recursion depth is bounded by HREP_MAX_DEPTH. */
#include "config.h"

#include <tether/health_report.h>

#include <string.h>

struct scan {
    const char *p;  /* the text */
    size_t n;       /* its length */
    size_t i;       /* next byte */
    size_t err_off; /* where the first error was seen */
};

/* What a top-level member's value was, when it is one we read. */
struct val {
    const char *p; /* the value's bytes (strings without quotes) */
    size_t len;
    char kind; /* 's' string without escapes, 'n' number, 'x' anything else */
};

static int
fail(struct scan *s, int err)
{
    s->err_off = s->i < s->n ? s->i : s->n;
    return err;
}

static void
skip_ws(struct scan *s)
{
    while (s->i < s->n &&
           (s->p[s->i] == ' ' || s->p[s->i] == '\t' || s->p[s->i] == '\n' || s->p[s->i] == '\r'))
        s->i++;
}

static bool
is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string at s->i (the opening quote); <v> gets its inside. */
static int
scan_string(struct scan *s, struct val *v)
{
    bool esc = false;
    size_t start = ++s->i;
    while (s->i < s->n) {
        unsigned char c = (unsigned char)s->p[s->i];
        if (c == '"') {
            v->p = s->p + start;
            v->len = s->i - start;
            v->kind = esc ? 'x' : 's';
            s->i++;
            return 0;
        }
        if (c < 0x20)
            return fail(s, HREP_E_SYNTAX);
        if (c == '\\') {
            esc = true;
            if (++s->i >= s->n)
                return fail(s, HREP_E_SYNTAX);
            char e = s->p[s->i];
            if (e == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (s->i + (size_t)k >= s->n || !is_hex(s->p[s->i + (size_t)k]))
                        return fail(s, HREP_E_SYNTAX);
                s->i += 4;
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return fail(s, HREP_E_SYNTAX);
            }
        }
        s->i++;
    }
    return fail(s, HREP_E_SYNTAX);
}

static bool
is_digit(const struct scan *s)
{
    return s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9';
}

/* A number per RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
scan_number(struct scan *s, struct val *v)
{
    size_t start = s->i;
    if (s->p[s->i] == '-')
        s->i++;
    if (!is_digit(s))
        return fail(s, HREP_E_SYNTAX);
    if (s->p[s->i++] != '0')
        while (is_digit(s))
            s->i++;
    if (s->i < s->n && s->p[s->i] == '.') {
        s->i++;
        if (!is_digit(s))
            return fail(s, HREP_E_SYNTAX);
        while (is_digit(s))
            s->i++;
    }
    if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
        s->i++;
        if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-'))
            s->i++;
        if (!is_digit(s))
            return fail(s, HREP_E_SYNTAX);
        while (is_digit(s))
            s->i++;
    }
    v->p = s->p + start;
    v->len = s->i - start;
    v->kind = 'n';
    return 0;
}

static int scan_value(struct scan *s, unsigned depth, struct val *v);

/* An object or array at s->i; <depth> is its own depth. With <top>, the members
 * named in <f> are captured into <got> (first occurrence wins). */
static int
scan_container(struct scan *s, unsigned depth, const struct hrep_fields *f, struct val *got)
{
    char close = s->p[s->i] == '{' ? '}' : ']';
    bool obj = close == '}';
    if (depth > HREP_MAX_DEPTH)
        return fail(s, HREP_E_DEPTH);
    s->i++;
    skip_ws(s);
    if (s->i < s->n && s->p[s->i] == close) {
        s->i++;
        return 0;
    }
    for (;;) {
        struct val key = {0}, v = {0};
        int rc;
        skip_ws(s);
        if (obj) {
            if (s->i >= s->n || s->p[s->i] != '"')
                return fail(s, HREP_E_SYNTAX);
            if ((rc = scan_string(s, &key)) < 0)
                return rc;
            skip_ws(s);
            if (s->i >= s->n || s->p[s->i] != ':')
                return fail(s, HREP_E_SYNTAX);
            s->i++;
        }
        if ((rc = scan_value(s, depth, &v)) < 0)
            return rc;
        if (got && key.kind == 's') {
            const char *names[3] = {f->status, f->active, f->max};
            size_t lens[3] = {f->status_len, f->active_len, f->max_len};
            for (int k = 0; k < 3; k++)
                if (names[k] && key.len == lens[k] && memcmp(key.p, names[k], lens[k]) == 0 &&
                    !got[k].p)
                    got[k] = v;
        }
        skip_ws(s);
        if (s->i >= s->n)
            return fail(s, HREP_E_SYNTAX);
        if (s->p[s->i] == ',') {
            s->i++;
            continue;
        }
        if (s->p[s->i] == close) {
            s->i++;
            return 0;
        }
        return fail(s, HREP_E_SYNTAX);
    }
}

static int
scan_literal(struct scan *s, const char *lit, struct val *v)
{
    size_t l = strlen(lit);
    if (s->n - s->i < l || memcmp(s->p + s->i, lit, l) != 0)
        return fail(s, HREP_E_SYNTAX);
    v->p = s->p + s->i;
    v->len = l;
    v->kind = 'x';
    s->i += l;
    return 0;
}

/* Any value at s->i inside a container of depth <depth>. */
static int
scan_value(struct scan *s, unsigned depth, struct val *v)
{
    skip_ws(s);
    if (s->i >= s->n)
        return fail(s, HREP_E_SYNTAX);
    switch (s->p[s->i]) {
    case '"':
        return scan_string(s, v);
    case '{':
    case '[': {
        size_t start = s->i;
        int rc = scan_container(s, depth + 1, NULL, NULL);
        v->p = s->p + start;
        v->len = s->i - start;
        v->kind = 'x';
        return rc;
    }
    case 't':
        return scan_literal(s, "true", v);
    case 'f':
        return scan_literal(s, "false", v);
    case 'n':
        return scan_literal(s, "null", v);
    default:
        if (s->p[s->i] == '-' || (s->p[s->i] >= '0' && s->p[s->i] <= '9'))
            return scan_number(s, v);
        return fail(s, HREP_E_SYNTAX);
    }
}

/* A session figure: a non-negative integer (a zero fraction is fine), at most
 * HREP_MAX_SESSIONS. */
static int
to_count(const struct val *v, uint32_t *out)
{
    uint64_t x = 0;
    size_t i = 0;
    if (v->kind != 'n' || v->len == 0 || v->p[0] == '-')
        return -1;
    for (; i < v->len && v->p[i] >= '0' && v->p[i] <= '9'; i++) {
        x = x * 10 + (uint64_t)(v->p[i] - '0');
        if (x > HREP_MAX_SESSIONS)
            return -1;
    }
    if (i < v->len && v->p[i] == '.')
        for (i++; i < v->len && v->p[i] == '0'; i++)
            ;
    if (i != v->len) /* an exponent or a non-zero fraction */
        return -1;
    *out = (uint32_t)x;
    return 0;
}

int
health_report_parse(const char *p, size_t n, const struct hrep_fields *f, struct health_report *out,
                    size_t *err_off)
{
    struct scan s = {p, n, 0, 0};
    struct val got[3] = {{0}, {0}, {0}};
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (n > HREP_MAX_BYTES) {
        s.i = HREP_MAX_BYTES;
        rc = fail(&s, HREP_E_SIZE);
        goto done;
    }
    skip_ws(&s);
    if (s.i >= n || p[s.i] != '{') {
        rc = fail(&s, HREP_E_SYNTAX);
        goto done;
    }
    if ((rc = scan_container(&s, 1, f, got)) < 0)
        goto done;
    skip_ws(&s);
    if (s.i != n) {
        rc = fail(&s, HREP_E_SYNTAX);
        goto done;
    }
    s.i = got[0].p ? (size_t)(got[0].p - p) : 0;
    if (got[0].p) {
        static const char *const names[] = {"healthy", "degraded", "draining"};
        for (size_t k = 0; k < 3 && got[0].kind == 's'; k++)
            if (got[0].len == strlen(names[k]) && memcmp(got[0].p, names[k], got[0].len) == 0)
                out->status = (uint8_t)(HREP_HEALTHY + k);
        if (out->status == HREP_NONE) {
            rc = fail(&s, HREP_E_VALUE);
            goto done;
        }
    }
    if (!got[1].p) {
        s.i = n;
        rc = fail(&s, HREP_E_MISSING);
        goto done;
    }
    s.i = (size_t)(got[1].p - p);
    if (to_count(&got[1], &out->active) < 0) {
        rc = fail(&s, HREP_E_VALUE);
        goto done;
    }
    if (got[2].p) {
        s.i = (size_t)(got[2].p - p);
        if (to_count(&got[2], &out->max) < 0) {
            rc = fail(&s, HREP_E_VALUE);
            goto done;
        }
        out->has_max = true;
    }
done:
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    if (err_off)
        *err_off = rc < 0 ? s.err_off : 0;
    return rc;
}

const char *
health_report_strerror(int err)
{
    switch (err) {
    case HREP_E_SIZE:
        return "report too large";
    case HREP_E_SYNTAX:
        return "not a JSON object";
    case HREP_E_DEPTH:
        return "nested too deep";
    case HREP_E_VALUE:
        return "a member has an invalid value";
    case HREP_E_MISSING:
        return "no active sessions member";
    default:
        return "ok";
    }
}
