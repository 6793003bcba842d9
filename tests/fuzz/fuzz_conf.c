/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the config lexer and loader: any bytes through
 * conf_doc_parse (the tree's invariants checked) and through conf_parse_text (the
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct err e;
    struct conf_doc *doc;

    e.msg[0] = '\0';
    doc = conf_doc_parse((const char *)data, size, "fuzz.conf", &e);
    int doc_ok = doc != NULL;
    if (doc)
        check_stmt(&doc->root, 0);
    else if (e.msg[0] == '\0')
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
