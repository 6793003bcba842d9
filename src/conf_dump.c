/* SPDX-License-Identifier: MIT */
/* The effective configuration as text: the statement tree written back out,
 * includes expanded in place, each run of statements from one file under a
 * "# configuration file PATH" comment; and its SHA-256 (tether -T, show conf,
 * tether_config_info). */
#include "config.h"

#include <tether/conf.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
    char *buf;
    size_t len, cap;
    bool oom;
    const char *file; /* file of the last marker written */
};

static void
out_put(struct out *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->cap - o->len < n + 1) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap - o->len < n + 1)
            cap *= 2;
        char *nb = realloc(o->buf, cap);
        if (!nb) {
            o->oom = true;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void
out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void
out_indent(struct out *o, unsigned depth)
{
    for (unsigned i = 0; i < depth; i++)
        out_put(o, "    ", 4);
}

/* A "# configuration file PATH" line when the statements now come from
 * another file than the last marker named. */
static void
out_mark(struct out *o, const char *file, unsigned depth)
{
    if (!file || (o->file && strcmp(o->file, file) == 0))
        return;
    o->file = file;
    out_indent(o, depth);
    out_str(o, "# configuration file ");
    for (const char *p = file; *p; p++)
        out_put(o, *p == '\n' || *p == '\r' ? "?" : p, 1);
    out_put(o, "\n", 1);
}

/* True when <s> reads back as the same single bare word. */
static bool
bare_ok(const char *s, size_t len)
{
    /* A '{' standing before these would open a block (conf_lex.c). */
    if (len == 0 || s[0] == '#' || s[0] == '}' ||
        (s[0] == '{' && (len == 1 || strchr("{}#", s[1]))))
        return false;
    for (size_t i = 0; i < len; i++)
        if (strchr(" \t\r\n;\"'", s[i]) || s[i] == '\0')
            return false;
    return true;
}

static void
out_word(struct out *o, const char *s, size_t len)
{
    if (bare_ok(s, len)) {
        out_put(o, s, len);
        return;
    }
    out_put(o, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '"':
            out_put(o, "\\\"", 2);
            break;
        case '\\':
            out_put(o, "\\\\", 2);
            break;
        case '\n':
            out_put(o, "\\n", 2);
            break;
        case '\t':
            out_put(o, "\\t", 2);
            break;
        case '\r':
            out_put(o, "\\r", 2);
            break;
        default:
            out_put(o, s + i, 1);
        }
    }
    out_put(o, "\"", 1);
}

static void
out_stmts(struct out *o, const struct conf_stmt *blk, unsigned depth)
{
    for (uint32_t i = 0; i < blk->nchildren; i++) {
        const struct conf_stmt *st = &blk->children[i];
        out_mark(o, st->pos.file, depth);
        out_indent(o, depth);
        out_word(o, st->name, strlen(st->name));
        for (uint32_t j = 0; j < st->nargs; j++) {
            out_put(o, " ", 1);
            out_word(o, st->args[j].s, st->args[j].len);
        }
        if (!st->block) {
            out_put(o, ";\n", 2);
            continue;
        }
        out_put(o, " {\n", 3);
        out_stmts(o, st, depth + 1);
        /* The '}' is in the file of the '{'. */
        out_mark(o, st->pos.file, depth + 1);
        out_indent(o, depth);
        out_put(o, "}\n", 2);
    }
}

char *
conf_doc_text(const struct conf_doc *doc, size_t *len)
{
    struct out o = {0};
    out_stmts(&o, &doc->root, 0);
    if (o.len == 0)
        out_put(&o, "", 0);
    if (o.oom || !o.buf) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}

int
conf_effective_build(struct conf *c, const struct conf_doc *doc, struct err *e)
{
    size_t len = 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char *text = conf_doc_text(doc, &len);
    if (!text)
        return err_set(e, "out of memory writing the effective configuration");
    c->text = arena_alloc(&c->arena, len + 1);
    memcpy(c->text, text, len + 1);
    c->text_len = len;
    free(text);
    if (!EVP_Digest(c->text, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return err_set(e, "cannot compute the configuration's SHA-256");
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(c->hash + 2 * i, 3, "%02x", md[i]);
    return 0;
}
