/* SPDX-License-Identifier: MIT */
/* The redis { } block: one or several "server" endpoints or a set of sentinels
 * with the master's name, authentication (inline or from a file) and the
 * bounded queue of writes kept while no primary is known. */
#include "config.h"

#include <tether/conf_engine.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int
add_ep(struct conf_parse *p, const struct conf_arg *a, int port, struct conf_redis_ep *eps,
       uint32_t *n, const char *what)
{
    if (*n == REDIS_EP_MAX)
        return conf_err_arg(p, a, "too many %ss (at most %d)", what, REDIS_EP_MAX);
    struct conf_redis_ep *ep = &eps[*n];
    if (conf_arg_addr(p, a, port, &ep->addr) < 0)
        return -1;
    sock_addr_format(&ep->addr, ep->text, sizeof(ep->text));
    (*n)++;
    return 0;
}

static int
set_server(struct conf_parse *p, const struct conf_stmt *st, void *obj,
           const struct conf_directive *d)
{
    struct conf_redis *r = obj;
    (void)d;
    if (add_ep(p, &st->args[0], 6379, r->servers, &r->nservers, "server") < 0)
        return -1;
    if (r->nservers == 1) {
        r->addr = r->servers[0].addr;
        memcpy(r->addr_text, r->servers[0].text, sizeof(r->addr_text));
    }
    return 0;
}

static int
set_sentinel(struct conf_parse *p, const struct conf_stmt *st, void *obj,
             const struct conf_directive *d)
{
    struct conf_redis *r = obj;
    (void)d;
    for (uint32_t i = 0; i < st->nargs; i++)
        if (add_ep(p, &st->args[i], 26379, r->sentinels, &r->nsentinels, "sentinel") < 0)
            return -1;
    return 0;
}

static const struct conf_directive redis_dirs[] = {
    {"server", 1, 1, .multi = true, .set = set_server, .usage = "server HOST[:PORT]|unix:PATH"},
    {"sentinel", 1, REDIS_EP_MAX, .set = set_sentinel, .usage = "sentinel HOST[:PORT]..."},
    {"master", 1, 1, .set = conf_set_str, .offset = offsetof(struct conf_redis, master),
     .usage = "master NAME"},
    {"prefix", 1, 1, .set = conf_set_str, .offset = offsetof(struct conf_redis, prefix),
     .dflt = "tether:", .usage = "prefix STRING"},
    {"timeout", 1, 1, .set = conf_set_duration, .offset = offsetof(struct conf_redis, timeout_ms),
     .min = 1, .max = 60000, .dflt = "200ms", .usage = "timeout DURATION"},
    {"user", 1, 1, .set = conf_set_str, .offset = offsetof(struct conf_redis, user),
     .usage = "user NAME"},
    {"password", 1, 1, .set = conf_set_str, .offset = offsetof(struct conf_redis, password),
     .usage = "password STRING"},
    {"password_file", 1, 1, .set = conf_set_str,
     .offset = offsetof(struct conf_redis, password_file), .usage = "password_file PATH"},
    {"db", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf_redis, db), .max = 1000,
     .usage = "db N"},
    {"queue_size", 1, 1, .set = conf_set_u32, .offset = offsetof(struct conf_redis, queue_size),
     .max = 1000000, .dflt = "10000", .usage = "queue_size N"},
    {"check_interval", 1, 1, .set = conf_set_duration,
     .offset = offsetof(struct conf_redis, check_interval_ms), .min = 100, .max = 60000,
     .dflt = "1s", .usage = "check_interval DURATION"},
};
const struct conf_table conf_table_redis = {CONF_REDIS, "redis", redis_dirs,
                                            ARRAY_SIZE(redis_dirs)};

/* The password from <r->password_file>: its first line. The error names the
 * file and the reason, never the content. */
static int
read_password(struct conf_parse *p, const struct conf_stmt *st, struct conf_redis *r)
{
    char buf[1024];
    FILE *f = fopen(r->password_file, "r");
    if (!f)
        return conf_err_stmt(p, st, "cannot read password_file \"%s\": %s", r->password_file,
                             strerror(errno));
    size_t n = fread(buf, 1, sizeof(buf), f);
    bool more = n == sizeof(buf) && fgetc(f) != EOF;
    fclose(f);
    size_t len = 0;
    while (len < n && buf[len] != '\n' && buf[len] != '\r')
        len++;
    if (more && len == n)
        return conf_err_stmt(p, st, "password_file \"%s\": the password is longer than %zu bytes",
                             r->password_file, sizeof(buf) - 1);
    if (len == 0)
        return conf_err_stmt(p, st, "password_file \"%s\" is empty", r->password_file);
    r->password = arena_strndup(p->a, buf, len);
    memset(buf, 0, sizeof(buf));
    return 0;
}

int
conf_redis_block(struct conf_parse *p, const struct conf_stmt *st, void *obj,
                 const struct conf_directive *d)
{
    struct conf *c = obj;
    struct conf_redis *r = &c->redis;
    (void)d;
    if (conf_defaults(p, &conf_table_redis, r) < 0 ||
        conf_block_run(p, st, &conf_table_redis, r) < 0)
        return -1;
    if (r->nservers && r->nsentinels)
        return conf_err_stmt(p, st,
                             "the redis block takes \"server\" or \"sentinel\", not both (with "
                             "sentinels the primary is found through them)");
    if (!r->nservers && !r->nsentinels)
        return conf_err_stmt(p, st,
                             "the redis block needs \"server HOST:PORT\" or \"sentinel ADDR...\"");
    if (r->nsentinels && !r->master)
        return conf_err_stmt(p, st,
                             "\"sentinel\" needs \"master NAME\" (the sentinels' name of "
                             "the primary)");
    if (r->master && !r->nsentinels)
        return conf_err_stmt(p, st, "\"master\" is only used with \"sentinel\"");
    if (r->password && r->password_file)
        return conf_err_stmt(p, st, "\"password\" and \"password_file\" exclude each other");
    if (r->password_file && read_password(p, st, r) < 0)
        return -1;
    if (r->user && !r->password)
        return conf_err_stmt(p, st, "\"user\" needs \"password\" or \"password_file\"");
    r->enabled = true;
    return 0;
}
