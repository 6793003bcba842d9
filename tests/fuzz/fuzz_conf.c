/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the config lexer and loader: any bytes through
 * conf_doc_parse, the tree's invariants checked, everything freed. */
#include "config.h"

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
    if (doc)
        check_stmt(&doc->root, 0);
    else if (e.msg[0] == '\0')
        abort(); /* a failure always says why */
    conf_doc_free(doc);
    return 0;
}
