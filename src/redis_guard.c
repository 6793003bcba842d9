/* SPDX-License-Identifier: MIT */
/* Reply-shape checks on Redis connections (see redis_guard.h). */
#include "config.h"

#include "redis_guard.h"

#include <tether/log.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

#include <hiredis/hiredis.h>

static redisReplyObjectFunctions base; /* hiredis's own reply builders */
static redisReplyObjectFunctions guarded;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t refused;
static struct log_limit refuse_limit;

/* The context a reader task belongs to (the reader's privdata). */
static redisAsyncContext *
task_ctx(const redisReadTask *t)
{
    return t->privdata;
}

static bool
refuse(const redisReadTask *t, const char *why)
{
    const redisContext *c = &task_ctx(t)->c;
    atomic_fetch_add_explicit(&refused, 1, memory_order_relaxed);
    log_limited(&refuse_limit, 1000, LOG_LVL_WARN,
                "redis %s:%d: malformed reply on a%s connection (%s); dropping it",
                c->tcp.host ? c->tcp.host : "(unix socket)", c->tcp.host ? c->tcp.port : 0,
                (c->flags & REDIS_SUBSCRIBED) ? " subscriber" : "", why);
    return false;
}

/* Is a reply starting with this task one that hiredis dispatches without a
 * waiting callback? Then it must be a well-formed pub/sub push. */
static bool
unsolicited(const redisReadTask *root)
{
    redisAsyncContext *ac = task_ctx(root);
    return ac && ac->replies.head == NULL;
}

/* The checks, for a value of <type> about to be built by <t> (<n>: the
 * elements of an array; hiredis sets t->elements only after building it). */
static bool
allowed(const redisReadTask *t, int type, int n)
{
    if (!t->parent) {
        /* A whole reply. */
        if (!unsolicited(t))
            return true;
        redisAsyncContext *ac = task_ctx(t);
        if (type == REDIS_REPLY_ERROR)
            return true; /* hiredis closes the connection on it */
        if (!(ac->c.flags & REDIS_SUBSCRIBED))
            return refuse(t, "a reply nobody asked for");
        if (type == REDIS_REPLY_ARRAY && n < 3)
            return refuse(t, "a pub/sub push of fewer than 3 elements");
        return true;
    }
    if (t->parent->parent || !unsolicited(t->parent))
        return true;
    /* An element of a pub/sub push: kind, channel (or pattern), then data. */
    const redisReply *push = t->parent->obj;
    if (t->idx <= 1 && type != REDIS_REPLY_STRING)
        return refuse(t, t->idx == 0 ? "the kind of a pub/sub push is not a string"
                                     : "the channel of a pub/sub push is not a string");
    if (t->idx == 2 && push && push->elements > 0 && push->element[0]) {
        const redisReply *kind = push->element[0];
        const char *k = kind->str;
        if (kind->len > 0 && (k[0] == 'p' || k[0] == 'P'))
            k++;
        if (strcasecmp(k, "unsubscribe") == 0 && type != REDIS_REPLY_INTEGER)
            return refuse(t, "the count of an unsubscribe is not an integer");
    }
    return true;
}

static void *
g_string(const redisReadTask *t, char *s, size_t len)
{
    return allowed(t, t->type, 0) ? base.createString(t, s, len) : NULL;
}

static void *
g_array(const redisReadTask *t, int n)
{
    return allowed(t, REDIS_REPLY_ARRAY, n) ? base.createArray(t, n) : NULL;
}

static void *
g_integer(const redisReadTask *t, long long v)
{
    return allowed(t, REDIS_REPLY_INTEGER, 0) ? base.createInteger(t, v) : NULL;
}

static void *
g_nil(const redisReadTask *t)
{
    return allowed(t, REDIS_REPLY_NIL, 0) ? base.createNil(t) : NULL;
}

static void
init(void)
{
    redisReader *r = redisReaderCreate();
    if (r) {
        base = *r->fn;
        redisReaderFree(r);
    }
    guarded = base;
    guarded.createString = g_string;
    guarded.createArray = g_array;
    guarded.createInteger = g_integer;
    guarded.createNil = g_nil;
}

void
redis_guard_attach(redisAsyncContext *ac)
{
    pthread_once(&once, init);
    if (!ac || !ac->c.reader || !base.createString)
        return;
    ac->c.reader->fn = &guarded;
    ac->c.reader->privdata = ac;
}

uint64_t
redis_guard_refused(void)
{
    return atomic_load_explicit(&refused, memory_order_relaxed);
}
