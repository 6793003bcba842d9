/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the config lexer and loader: any bytes through
 * conf_doc_parse (the tree's invariants checked, and its text as tether -T
 * writes it reads back to the same text) and through conf_parse_text (the
 * directive tables, setters and cross-checks), everything freed. */
#include "config.h"

#include <tether/conf.h>
#include <tether/conf_lex.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every string is NUL-free and as long as it says; every position is real; blocks
 * nest at most 32 deep below the root. */
static void
check_stmt(const struct conf_stmt *st, int depth)
{
    if (depth > 33 || !st->name || !st->pos.file)
        abort();
    for (uint32_t i = 0; i < st->nargs; i++) {
        const struct conf_arg *a = &st->args[i];
        if (!a->s || strlen(a->s) != a->len || !a->pos.file || a->pos.line == 0 || a->pos.col == 0)
            abort();
    }
    if (st->nchildren && !st->block)
        abort();
    for (uint32_t i = 0; i < st->nchildren; i++) {
        if (st->children[i].pos.line == 0 || st->children[i].pos.col == 0)
            abort();
        check_stmt(&st->children[i], depth + 1);
    }
}

/* <text> without its "# configuration file" lines (an include's file name
 * does not survive a round trip through one file). malloc'd. */
static char *
strip_marks(const char *text, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    const char *p = text, *end = text + len;
    if (!out)
        abort();
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        const char *q = p;
        while (q < p + n && *q == ' ')
            q++;
        if (strncmp(q, "# configuration file ", 21) != 0) {
            memcpy(o, p, n);
            o += n;
        }
        p += n;
    }
    *o = '\0';
    return out;
}

/* The effective text of <doc> parses, and its own text is the same. */
static void
check_round_trip(const struct conf_doc *doc)
{
    struct err e;
    size_t len, len2;
    char *text = conf_doc_text(doc, &len);
    if (!text)
        abort();
    struct conf_doc *again = conf_doc_parse(text, len, "fuzz.conf", &e);
    if (!again)
        abort();
    char *text2 = conf_doc_text(again, &len2);
    char *a = strip_marks(text, len), *b = strip_marks(text2, len2);
    if (strcmp(a, b) != 0)
        abort();
    free(a);
    free(b);
    free(text);
    free(text2);
    conf_doc_free(again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct err e;
    struct conf_doc *doc;

    e.msg[0] = '\0';
    doc = conf_doc_parse((const char *)data, size, "fuzz.conf", &e);
    int doc_ok = doc != NULL;
    if (doc) {
        check_stmt(&doc->root, 0);
        check_round_trip(doc);
    } else if (e.msg[0] == '\0')
        abort(); /* a failure always says why */
    conf_doc_free(doc);

    /* The whole loader: a text the lexer rejects is rejected, and a failure says
     * why. */
    struct err e2;
    struct conf *c;
    e2.msg[0] = '\0';
    c = conf_parse_text((const char *)data, size, "fuzz.conf", &e2);
    if (c && !doc_ok)
        abort();
    if (!c && e2.msg[0] == '\0')
        abort();
    conf_free(c);
    return 0;
}
