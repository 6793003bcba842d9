/* SPDX-License-Identifier: MIT */
/* The directive engine shared by conf_main.c, conf_upstream.c and conf_server.c:
 * directive tables, typed setters, key=value parameters, defaults, errors. */
#ifndef TETHER_CONF_ENGINE_H
#define TETHER_CONF_ENGINE_H

#include <tether/conf.h>

/* State while turning a statement tree into a struct conf. */
struct conf_parse {
    struct conf *conf; /* being filled */
    struct arena *a;   /* conf->arena */
    struct err *e;     /* first error */
    bool applying_defaults;
};

struct conf_directive;

/* Setter: apply statement <st> to <obj> as directed by <d>. 0 or -1 (with p->e). */
typedef int (*conf_set_fn)(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                           const struct conf_directive *d);

#define CONF_ARGS_ANY 255

struct conf_directive {
    const char *name;
    uint8_t min_args;  /* arguments after the name */
    uint8_t max_args;  /* CONF_ARGS_ANY: no limit */
    bool block;        /* takes a { } block */
    bool multi;        /* may appear several times in one block */
    bool restart;      /* a change needs a restart (warned on reload) */
    conf_set_fn set;   /* typed setter */
    size_t offset;     /* field in the block's object, for the generic setters */
    uint64_t min, max; /* range for numeric setters (max 0: no limit) */
    const char *dflt;  /* default written as config text, applied by the same setter */
    const char *usage; /* "workers N|auto" */
};

/* All directives of one context. */
struct conf_table {
    unsigned ctx;     /* enum conf_ctx */
    const char *name; /* "main", "upstream", ... */
    const struct conf_directive *dirs;
    size_t n;
};

/* Every table, for "allowed in ..." hints and the directive dump. */
extern const struct conf_table conf_table_main, conf_table_stats, conf_table_admin,
    conf_table_redis, conf_table_upstream, conf_table_health, conf_table_outlier,
    conf_table_affinity, conf_table_server, conf_table_route;

/* Run the statements of <blk> (its children) against table <t> for <obj>. */
int conf_block_run(struct conf_parse *p, const struct conf_stmt *blk, const struct conf_table *t,
                   void *obj);
/* Apply the defaults of <t> to <obj>. */
int conf_defaults(struct conf_parse *p, const struct conf_table *t, void *obj);

/* Error at a statement's name or at one of its arguments. Return -1. */
int conf_err_stmt(struct conf_parse *p, const struct conf_stmt *st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int conf_err_arg(struct conf_parse *p, const struct conf_arg *a, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "missing ';'?" at the end of the token before argument <i> of <st> (i ==
 * nargs: before its '{'), for a statement that runs on to the next line. */
int conf_err_missing_semi(struct conf_parse *p, const struct conf_stmt *st, uint32_t i);

/* Generic setters over d->offset (single argument unless noted). */
int conf_set_u32(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                 const struct conf_directive *d);
int conf_set_duration(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                      const struct conf_directive *d); /* uint64_t ms */
int conf_set_size(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                  const struct conf_directive *d); /* uint64_t bytes */
int conf_set_bool(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                  const struct conf_directive *d); /* bool, on|off */
int conf_set_str(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                 const struct conf_directive *d); /* char * */
/* A header or cookie name (an RFC 9110 token). */
bool conf_token_ok(const char *s);
int conf_set_token(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                   const struct conf_directive *d);
int conf_set_percent(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                     const struct conf_directive *d); /* uint32_t 0..100 */

/* Argument parsers with positioned errors. */
int conf_arg_u32(struct conf_parse *p, const struct conf_arg *a, uint64_t min, uint64_t max,
                 uint32_t *out);
int conf_arg_duration(struct conf_parse *p, const struct conf_arg *a, uint64_t *out);
int conf_arg_size(struct conf_parse *p, const struct conf_arg *a, uint64_t *out);
int conf_arg_bool(struct conf_parse *p, const struct conf_arg *a, bool *out);
int conf_arg_addr(struct conf_parse *p, const struct conf_arg *a, int default_port,
                  struct sock_addr *out);
/* A rate-limit key such as "$remote_addr" or "$http_x_id$route". */
int conf_arg_key(struct conf_parse *p, const struct conf_arg *a, struct key_spec *out);

/* key=value parameters after the positional arguments. */
struct conf_param;
typedef int (*conf_param_fn)(struct conf_parse *p, const struct conf_arg *a, const char *value,
                             void *obj, const struct conf_param *pm);
struct conf_param {
    const char *key;  /* "weight" in weight=70 */
    bool flag;        /* bare word without =value (e.g. "nodelay") */
    conf_param_fn fn; /* NULL: generic by <kind> */
    size_t offset;
    uint64_t min, max;
};

/* Apply args[first..] of <st> as parameters from <params>. Unknown keys get a
 * "did you mean" hint. */
int conf_params(struct conf_parse *p, const struct conf_stmt *st, uint32_t first,
                const struct conf_param *params, size_t n, void *obj);

/* The value part of "key=value" (<value> points into <a>) as an argument of its
 * own, so errors point at the value's column. */
struct conf_arg conf_param_value(const struct conf_arg *a, const char *value);

/* Generic parameter setters. */
int conf_param_u32(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                   const struct conf_param *pm);
int conf_param_duration(struct conf_parse *p, const struct conf_arg *a, const char *value,
                        void *obj, const struct conf_param *pm);
int conf_param_size(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                    const struct conf_param *pm);
int conf_param_str(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                   const struct conf_param *pm);
int conf_param_flag(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                    const struct conf_param *pm);
int conf_param_bool(struct conf_parse *p, const struct conf_arg *a, const char *value, void *obj,
                    const struct conf_param *pm);

/* Append one element to an arena array (<*arr>, <*n>); returns the new zeroed slot. */
void *conf_push(struct conf_parse *p, void **arr, uint32_t *n, size_t size);

/* Cross-reference checks after all blocks were read (conf_server.c). */
int conf_check(struct conf_parse *p);

#endif
