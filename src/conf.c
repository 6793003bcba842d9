/* SPDX-License-Identifier: MIT */
/* The directive engine: walks a statement tree against directive tables, checks
 * context, arity and type, applies defaults, reports file:line:col errors. */
#include "config.h"

#include <tether/conf_engine.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct conf_table *const all_tables[] = {
    &conf_table_main,     &conf_table_stats,  &conf_table_admin,   &conf_table_redis,
    &conf_table_upstream, &conf_table_health, &conf_table_outlier, &conf_table_affinity,
    &conf_table_server,   &conf_table_route,
};

int
conf_err_stmt(struct conf_parse *p, const struct conf_stmt *st, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->applying_defaults)
        return err_set(p->e, "default for \"%s\": %s", st->name, msg);
    return err_at(p->e, st->pos.file, (int)st->pos.line, (int)st->pos.col, "%s", msg);
}

int
conf_err_arg(struct conf_parse *p, const struct conf_arg *a, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->applying_defaults)
        return err_set(p->e, "default value: %s", msg);
    return err_at(p->e, a->pos.file, (int)a->pos.line, (int)a->pos.col, "%s", msg);
}

void *
conf_push(struct conf_parse *p, void **arr, uint32_t *n, size_t size)
{
    /* Capacity is the next power of two: reallocate only when n is one. */
    if (*n == 0 || (*n & (*n - 1)) == 0)
        *arr = arena_grow(p->a, *arr, *n, *n ? (size_t)*n * 2 : 4, size);
    return (char *)*arr + (size_t)(*n)++ * size;
}

static const struct conf_directive *
table_find(const struct conf_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->dirs[i].name, name) == 0)
            return &t->dirs[i];
    return NULL;
}

/* "unknown directive" with the closest name of this context, or where it belongs. */
static int
unknown_directive(struct conf_parse *p, const struct conf_stmt *st, const struct conf_table *t)
{
    char where[200] = "";
    size_t wl = 0;
    const char *best = NULL;
    unsigned best_d = 1000;

    for (size_t i = 0; i < ARRAY_SIZE(all_tables); i++) {
        const struct conf_table *o = all_tables[i];
        if (o != t && table_find(o, st->name)) {
            int n = snprintf(where + wl, sizeof(where) - wl, "%s%s", wl ? ", " : "", o->name);
            if (n > 0 && (size_t)n < sizeof(where) - wl)
                wl += (size_t)n;
        }
    }
    if (wl)
        return conf_err_stmt(p, st, "\"%s\" is not allowed in the %s context; it belongs in: %s",
                             st->name, t->name, where);
    for (size_t i = 0; i < t->n; i++) {
        unsigned d = edit_distance(st->name, t->dirs[i].name);
        if (d < best_d) {
            best_d = d;
            best = t->dirs[i].name;
        }
    }
    if (best && best_d <= 1 + strlen(st->name) / 3)
        return conf_err_stmt(p, st,
                             "unknown directive \"%s\" in the %s context; did you mean \"%s\"?",
                             st->name, t->name, best);
    return conf_err_stmt(p, st, "unknown directive \"%s\" in the %s context", st->name, t->name);
}

/* A statement that runs on past a line end where it would have been complete
 * (`workers 2` then `server {` on the next line) lacks a ';' there: report that
 * place. Returns -1 when it did, 0 when the mistake is something else. */
static int
missing_semicolon(struct conf_parse *p, const struct conf_stmt *st, const struct conf_directive *d)
{
    struct conf_pos end = st->name_end;
    if (p->applying_defaults || d->block || end.line == 0)
        return 0;
    for (uint32_t i = 0; i <= st->nargs; i++) {
        const struct conf_pos *next = i < st->nargs ? &st->args[i].pos : &st->block_pos;
        if (i == st->nargs && !st->block)
            break;
        if (next->line > end.line && i >= d->min_args &&
            (d->max_args == CONF_ARGS_ANY || i <= d->max_args))
            return conf_err_missing_semi(p, st, i);
        if (i < st->nargs)
            end = st->args[i].end;
    }
    return 0;
}

int
conf_err_missing_semi(struct conf_parse *p, const struct conf_stmt *st, uint32_t i)
{
    const struct conf_pos *end = i ? &st->args[i - 1].end : &st->name_end;
    const struct conf_pos *next = i < st->nargs ? &st->args[i].pos : &st->block_pos;
    return err_at(p->e, end->file, (int)end->line, (int)end->col,
                  "missing ';'? expected ';' here to end \"%s\"; the statement goes on at line %u "
                  "with \"%s\"",
                  st->name, next->line, i < st->nargs ? st->args[i].s : "{");
}

static int
run_one(struct conf_parse *p, const struct conf_stmt *st, const struct conf_directive *d, void *obj)
{
    bool arity =
        st->nargs < d->min_args || (d->max_args != CONF_ARGS_ANY && st->nargs > d->max_args);
    if ((arity || d->block != st->block) && missing_semicolon(p, st, d) < 0)
        return -1;
    if (st->nargs < d->min_args || (d->max_args != CONF_ARGS_ANY && st->nargs > d->max_args)) {
        if (d->min_args == d->max_args)
            return conf_err_stmt(p, st, "\"%s\" takes %u argument%s (usage: %s)", st->name,
                                 d->min_args, d->min_args == 1 ? "" : "s", d->usage);
        return conf_err_stmt(p, st, "wrong number of arguments to \"%s\" (usage: %s)", st->name,
                             d->usage);
    }
    if (d->block && !st->block)
        return conf_err_stmt(p, st, "\"%s\" needs a { } block (usage: %s)", st->name, d->usage);
    if (!d->block && st->block)
        return conf_err_stmt(p, st, "\"%s\" takes no block; expected ';' (usage: %s)", st->name,
                             d->usage);
    return d->set(p, st, obj, d);
}

int
conf_block_run(struct conf_parse *p, const struct conf_stmt *blk, const struct conf_table *t,
               void *obj)
{
    /* First position of each directive, to report duplicates. */
    const struct conf_stmt *seen[64] = {0};

    for (uint32_t i = 0; i < blk->nchildren; i++) {
        const struct conf_stmt *st = &blk->children[i];
        const struct conf_directive *d = table_find(t, st->name);
        if (!d)
            return unknown_directive(p, st, t);
        size_t idx = (size_t)(d - t->dirs);
        if (!d->multi && idx < ARRAY_SIZE(seen)) {
            if (seen[idx])
                return conf_err_stmt(p, st, "duplicate \"%s\" (first set at %s:%u)", st->name,
                                     seen[idx]->pos.file, seen[idx]->pos.line);
            seen[idx] = st;
        }
        if (run_one(p, st, d, obj) < 0)
            return -1;
    }
    return 0;
}

int
conf_defaults(struct conf_parse *p, const struct conf_table *t, void *obj)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct conf_directive *d = &t->dirs[i];
        char buf[256], *save = NULL, *tok;
        struct conf_arg args[8];
        struct conf_stmt st = {0};
        if (!d->dflt)
            continue;
        snprintf(buf, sizeof(buf), "%s", d->dflt);
        for (tok = strtok_r(buf, " ", &save); tok && st.nargs < ARRAY_SIZE(args);
             tok = strtok_r(NULL, " ", &save)) {
            args[st.nargs] = (struct conf_arg){.s = tok, .len = strlen(tok)};
            st.nargs++;
        }
        st.name = (char *)d->name;
        st.args = args;
        p->applying_defaults = true;
        int rc = d->set(p, &st, obj, d);
        p->applying_defaults = false;
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- argument parsers ---- */

int
conf_arg_u32(struct conf_parse *p, const struct conf_arg *a, uint64_t min, uint64_t max,
             uint32_t *out)
{
    uint64_t v;
    if (max == 0 || max > UINT32_MAX)
        max = UINT32_MAX;
    if (parse_u64(a->s, a->len, &v) < 0)
        return conf_err_arg(p, a, "invalid number \"%s\"; expected an integer", a->s);
    if (v < min || v > max)
        return conf_err_arg(p, a, "%s is out of range; expected %llu..%llu", a->s,
                            (unsigned long long)min, (unsigned long long)max);
    *out = (uint32_t)v;
    return 0;
}

int
conf_arg_duration(struct conf_parse *p, const struct conf_arg *a, uint64_t *out)
{
    if (parse_duration_ms(a->s, a->len, out) < 0)
        return conf_err_arg(
            p, a, "invalid duration \"%s\"; expected a number with ms, s, m, h or d", a->s);
    return 0;
}

int
conf_arg_size(struct conf_parse *p, const struct conf_arg *a, uint64_t *out)
{
    if (parse_size(a->s, a->len, out) < 0)
        return conf_err_arg(p, a, "invalid size \"%s\"; expected a number with k, m or g", a->s);
    return 0;
}

int
conf_arg_bool(struct conf_parse *p, const struct conf_arg *a, bool *out)
{
    if (parse_bool(a->s, a->len, out) < 0)
        return conf_err_arg(p, a, "invalid value \"%s\"; expected on or off", a->s);
    return 0;
}

int
conf_arg_addr(struct conf_parse *p, const struct conf_arg *a, int default_port,
              struct sock_addr *out)
{
    struct err e2;
    if (sock_addr_parse(out, a->s, default_port, &e2) < 0)
        return conf_err_arg(p, a, "%s", e2.msg);
    return 0;
}

/* One "$name" variable at <s>; returns its length or 0. */
static size_t
key_var_len(const char *s)
{
    size_t n = 1;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
           (s[n] >= '0' && s[n] <= '9') || s[n] == '_')
        n++;
    return n;
}

int
conf_arg_key(struct conf_parse *p, const struct conf_arg *a, struct key_spec *out)
{
    const char *s = a->s;
    memset(out, 0, sizeof(*out));
    out->text = arena_strdup(p->a, a->s);
    if (*s != '$')
        return conf_err_arg(p, a,
                            "invalid key \"%s\"; expected variables such as $remote_addr, "
                            "$http_NAME, $cookie_NAME, $route",
                            a->s);
    while (*s) {
        struct key_part *kp = conf_push(p, (void **)&out->parts, &out->nparts, sizeof(*kp));
        if (*s != '$') {
            size_t n = strcspn(s, "$");
            kp->kind = KEY_LITERAL;
            kp->name = arena_strndup(p->a, s, n);
            kp->len = n;
            s += n;
            continue;
        }
        size_t n = key_var_len(s);
        if (n == 12 && strncmp(s, "$remote_addr", 12) == 0) {
            kp->kind = KEY_REMOTE_ADDR;
        } else if (n == 6 && strncmp(s, "$route", 6) == 0) {
            kp->kind = KEY_ROUTE;
        } else if (n > 6 && strncmp(s, "$http_", 6) == 0) {
            kp->kind = KEY_HTTP_HEADER;
            kp->name = arena_strndup(p->a, s + 6, n - 6);
            kp->len = n - 6;
            for (size_t i = 0; i < kp->len; i++)
                if (kp->name[i] == '_')
                    kp->name[i] = '-';
        } else if (n > 8 && strncmp(s, "$cookie_", 8) == 0) {
            kp->kind = KEY_COOKIE;
            kp->name = arena_strndup(p->a, s + 8, n - 8);
            kp->len = n - 8;
        } else {
            return conf_err_arg(p, a,
                                "unknown variable \"%.*s\" in key; expected $remote_addr, "
                                "$http_NAME, $cookie_NAME or $route",
                                (int)n, s);
        }
        s += n;
    }
    return 0;
}

/* ---- generic setters ---- */

#define FIELD(obj, d, type) ((type *)(void *)((char *)(obj) + (d)->offset))

int
conf_set_u32(struct conf_parse *p, const struct conf_stmt *st, void *obj,
             const struct conf_directive *d)
{
    return conf_arg_u32(p, &st->args[0], d->min, d->max, FIELD(obj, d, uint32_t));
}

int
conf_set_duration(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                  const struct conf_directive *d)
{
    uint64_t v;
    if (conf_arg_duration(p, &st->args[0], &v) < 0)
        return -1;
    if (v < d->min && !d->max)
        return conf_err_arg(p, &st->args[0], "%s is too short; expected at least %llums",
                            st->args[0].s, (unsigned long long)d->min);
    if (v < d->min || (d->max && v > d->max))
        return conf_err_arg(p, &st->args[0], "%s is out of range; expected %llums..%llums",
                            st->args[0].s, (unsigned long long)d->min, (unsigned long long)d->max);
    *FIELD(obj, d, uint64_t) = v;
    return 0;
}

int
conf_set_size(struct conf_parse *p, const struct conf_stmt *st, void *obj,
              const struct conf_directive *d)
{
    uint64_t v;
    if (conf_arg_size(p, &st->args[0], &v) < 0)
        return -1;
    if (v < d->min || (d->max && v > d->max))
        return conf_err_arg(p, &st->args[0], "%s is out of range; expected %llu..%llu bytes",
                            st->args[0].s, (unsigned long long)d->min, (unsigned long long)d->max);
    *FIELD(obj, d, uint64_t) = v;
    return 0;
}

int
conf_set_bool(struct conf_parse *p, const struct conf_stmt *st, void *obj,
              const struct conf_directive *d)
{
    return conf_arg_bool(p, &st->args[0], FIELD(obj, d, bool));
}

int
conf_set_str(struct conf_parse *p, const struct conf_stmt *st, void *obj,
             const struct conf_directive *d)
{
    if (st->args[0].len == 0)
        return conf_err_arg(p, &st->args[0], "empty value for \"%s\"", st->name);
    *FIELD(obj, d, char *) = arena_strdup(p->a, st->args[0].s);
    return 0;
}

bool
conf_token_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

int
conf_set_token(struct conf_parse *p, const struct conf_stmt *st, void *obj,
               const struct conf_directive *d)
{
    if (!conf_token_ok(st->args[0].s))
        return conf_err_arg(p, &st->args[0],
                            "invalid name \"%s\" (letters, digits and !#$%%&'*+-.^_`|~)",
                            st->args[0].s);
    *FIELD(obj, d, char *) = arena_strdup(p->a, st->args[0].s);
    return 0;
}

int
conf_set_percent(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                 const struct conf_directive *d)
{
    unsigned v;
    if (parse_percent(st->args[0].s, st->args[0].len, &v) < 0)
        return conf_err_arg(p, &st->args[0], "invalid percentage \"%s\"; expected 0%%..100%%",
                            st->args[0].s);
    *FIELD(obj, d, uint32_t) = v;
    return 0;
}

/* ---- key=value parameters ---- */

#define PFIELD(obj, pm, type) ((type *)(void *)((char *)(obj) + (pm)->offset))

struct conf_arg
conf_param_value(const struct conf_arg *a, const char *value)
{
    struct conf_arg v = {.s = (char *)value, .len = strlen(value), .pos = a->pos};
    v.pos.col += (uint32_t)(value - a->s);
    return v;
}

int
conf_param_u32(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
               const struct conf_param *pm)
{
    struct conf_arg v = conf_param_value(a, value);
    return conf_arg_u32(p, &v, pm->min, pm->max, PFIELD(obj, pm, uint32_t));
}

int
conf_param_duration(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                    const struct conf_param *pm)
{
    struct conf_arg v = conf_param_value(a, value);
    return conf_arg_duration(p, &v, PFIELD(obj, pm, uint64_t));
}

int
conf_param_size(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                const struct conf_param *pm)
{
    struct conf_arg v = conf_param_value(a, value);
    return conf_arg_size(p, &v, PFIELD(obj, pm, uint64_t));
}

int
conf_param_str(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
               const struct conf_param *pm)
{
    if (*value == '\0')
        return conf_err_arg(p, a, "empty value for \"%s\"", pm->key);
    *PFIELD(obj, pm, char *) = arena_strdup(p->a, value);
    return 0;
}

int
conf_param_flag(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                const struct conf_param *pm)
{
    (void)p;
    (void)a;
    (void)value;
    *PFIELD(obj, pm, bool) = true;
    return 0;
}

int
conf_param_bool(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                const struct conf_param *pm)
{
    struct conf_arg v = conf_param_value(a, value);
    return conf_arg_bool(p, &v, PFIELD(obj, pm, bool));
}

int
conf_params(struct conf_parse *p, const struct conf_stmt *st, uint32_t first,
            const struct conf_param *params, size_t n, void *obj)
{
    for (uint32_t i = first; i < st->nargs; i++) {
        const struct conf_arg *a = &st->args[i];
        const char *eq = strchr(a->s, '=');
        size_t klen = eq ? (size_t)(eq - a->s) : a->len;
        const struct conf_param *pm = NULL;
        const char *best = NULL;
        unsigned best_d = 1000;
        char key[64];

        for (size_t j = 0; j < n; j++) {
            if (strlen(params[j].key) == klen && strncmp(params[j].key, a->s, klen) == 0) {
                pm = &params[j];
                break;
            }
        }
        /* A bare unknown word on a new line: more likely the next statement. */
        uint32_t prev_line = i > 0 ? st->args[i - 1].end.line : st->name_end.line;
        if (!pm && !eq && !p->applying_defaults && prev_line > 0 && a->pos.line > prev_line)
            return conf_err_missing_semi(p, st, i);
        if (!pm) {
            snprintf(key, sizeof(key), "%.*s", (int)MIN(klen, sizeof(key) - 1), a->s);
            for (size_t j = 0; j < n; j++) {
                unsigned dist = edit_distance(key, params[j].key);
                if (dist < best_d) {
                    best_d = dist;
                    best = params[j].key;
                }
            }
            if (best && best_d <= 2)
                return conf_err_arg(p, a,
                                    "unknown parameter \"%s\" of \"%s\"; did you mean \"%s\"?", key,
                                    st->name, best);
            return conf_err_arg(p, a, "unknown parameter \"%s\" of \"%s\"", key, st->name);
        }
        if (pm->flag && eq)
            return conf_err_arg(p, a, "\"%s\" takes no value", pm->key);
        if (!pm->flag && !eq)
            return conf_err_arg(p, a, "\"%s\" needs a value (%s=...)", pm->key, pm->key);
        if (pm->fn(p, a, eq ? eq + 1 : "", obj, pm) < 0)
            return -1;
    }
    return 0;
}

void
conf_dump_directives(void (*emit)(void *ctx, const char *ctxname, const char *name,
                                  const char *usage, const char *dflt),
                     void *ctx)
{
    emit(ctx, "any", "include", "include PATTERN", NULL);
    for (size_t i = 0; i < ARRAY_SIZE(all_tables); i++)
        for (size_t j = 0; j < all_tables[i]->n; j++) {
            const struct conf_directive *d = &all_tables[i]->dirs[j];
            emit(ctx, all_tables[i]->name, d->name, d->usage, d->dflt);
        }
}
