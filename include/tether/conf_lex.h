/* SPDX-License-Identifier: MIT */
/* Config text to a statement tree: tokens with file:line:column, quoted strings,
 * `{ } ;`, `#` comments, and `include` with globs expanded in place. Knows no
 * directive: conf.c gives the tree its meaning. */
#ifndef TETHER_CONF_LEX_H
#define TETHER_CONF_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/util.h>

/* Where a token starts. <file> points into the document and lives as long as it. */
struct conf_pos {
    const char *file; /* path as given (or as found by include) */
    uint32_t line;    /* 1-based */
    uint32_t col;     /* 1-based, in bytes */
};

struct conf_arg {
    char *s;             /* NUL-terminated text, quotes removed and escapes applied */
    size_t len;          /* length of s (may contain no NUL: NUL bytes are rejected) */
    struct conf_pos pos; /* where the token starts (its opening quote if quoted) */
    bool quoted;         /* written in quotes */
    struct conf_pos end; /* just past its last byte (its closing quote if quoted) */
};

/* One statement: `name arg... ;` or `name arg... { children }`. */
struct conf_stmt {
    char *name;               /* directive name (the first token) */
    struct conf_pos pos;      /* position of the name */
    struct conf_pos name_end; /* just past the name */
    struct conf_arg *args;    /* nargs arguments after the name */
    uint32_t nargs;
    struct conf_stmt *children; /* nchildren statements of the block, in order */
    uint32_t nchildren;
    bool block;                /* had a { } block (possibly empty) */
    struct conf_pos block_pos; /* position of the '{' when block */
};

/* A parsed document: the top-level statements, includes already spliced in. */
struct conf_doc {
    struct conf_stmt root; /* root.children are the top-level statements */
    void *mem;             /* private: allocation list freed by conf_doc_free */
};

/* Limits of the loader. */
#define CONF_MAX_INCLUDE_DEPTH 16
#define CONF_MAX_FILE_BYTES    (16u << 20)

/* Read and parse <path>. `include PATTERN;` statements (anywhere) are replaced by
 * the statements of the matching files, in sorted order; a relative pattern is
 * taken from the including file's directory. A pattern with glob characters may
 * match nothing; a plain path must exist. Include cycles and depth > 16 are errors.
 * On error returns NULL and fills <e> with "file:line:col: message". */
struct conf_doc *conf_doc_load(const char *path, struct err *e);

/* Parse text held in memory; <name> is used in positions and as the base for
 * relative includes (its directory). */
struct conf_doc *conf_doc_parse(const char *text, size_t len, const char *name, struct err *e);

void conf_doc_free(struct conf_doc *doc);

#endif
