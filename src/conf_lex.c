/* SPDX-License-Identifier: MIT */
/* Config text to a statement tree: a lexer with file:line:col positions, a
 * recursive statement parser, and `include` expanded in place with glob(3). */
#include "config.h"

#include <tether/conf_lex.h>

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Lexical rules.
 *
 * - Whitespace is space, tab, CR and LF. LF ends a line (so CR LF does too; a CR
 *   is just whitespace). Columns count bytes from 1; a tab is one column.
 * - A token starts at the first byte that is not whitespace. There:
 *     `#`  starts a comment that runs to the end of the line;
 *     `;`  is a statement end;
 *     `}`  always closes a block;
 *     `{`  opens a block when the next byte is EOF, whitespace, `;`, `{`, `}`, a
 *          quote or `#` (that is, when the `{` stands alone); otherwise it is the
 *          first byte of a bare word, so `{id}/x` is a word;
 *     `"` or `'` starts a quoted string;
 *     anything else starts a bare word.
 * - A bare word runs until whitespace, `;` or EOF. Inside a word `{`, `}` and `#`
 *   are ordinary bytes (`/webhook/{id}/`, `a#b`, `voice}` are single words). A
 *   quote inside a word is an error rather than a silent token split.
 * - A quoted string ends at the matching quote; it may hold whitespace, `;`,
 *   braces, `#` and newlines. Escapes: \" \' \\ \n \t \r; any other backslash pair
 *   is kept as written. The closing quote must be followed by whitespace, `;`,
 *   `{`, `}` or EOF.
 * - A NUL byte anywhere in a file is an error.
 *
 * Memory: every string and array of a document lives in one arena (a list of
 * chunks, doc->mem) freed by conf_doc_free. While parsing, the statements of the
 * blocks being read sit on one scratch stack: a block's children are copied into
 * the arena when its `}` is reached and the stack is cut back. Included files push
 * onto the same stack, which is how their statements replace the include.
 */

#define CONF_MAX_BLOCK_DEPTH  32
#define CONF_MAX_TOTAL_BYTES  (4 * (size_t)CONF_MAX_FILE_BYTES) /* all files of a doc */
#define ARENA_CHUNK_BYTES     (64u << 10)
#define ARENA_ALIGN           (sizeof(max_align_t))
#define INCLUDE_CHAIN_MAX_LEN 400

/* ---- arena ---- */

struct chunk {
    struct chunk *next; /* older chunks */
    size_t used;        /* bytes handed out from data */
    size_t cap;         /* bytes in data */
    max_align_t data[]; /* storage, maximally aligned */
};

static void
arena_free(struct chunk *c)
{
    while (c) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* <n> bytes aligned for any type, or NULL when out of memory. Large requests get a
 * chunk of their own, linked behind the head so its free space is kept. */
static void *
arena_alloc(struct chunk **head, size_t n)
{
    struct chunk *c = *head;
    size_t cap;
    void *p;

    if (n > SIZE_MAX - ARENA_ALIGN - sizeof(struct chunk))
        return NULL;
    n = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (c && c->cap - c->used >= n) {
        p = (char *)c->data + c->used;
        c->used += n;
        return p;
    }
    cap = n > ARENA_CHUNK_BYTES / 4 ? n : ARENA_CHUNK_BYTES;
    c = malloc(sizeof(*c) + cap);
    if (!c)
        return NULL;
    c->used = n;
    c->cap = cap;
    if (cap == n && *head) {
        c->next = (*head)->next;
        (*head)->next = c;
    } else {
        c->next = *head;
        *head = c;
    }
    return c->data;
}

/* ---- lexer ---- */

enum tok_type {
    TOK_EOF = 0,
    TOK_WORD,  /* bare word or quoted string */
    TOK_SEMI,  /* ; */
    TOK_OPEN,  /* { */
    TOK_CLOSE, /* } */
    TOK_ERR,   /* error already in lex->e */
};

struct tok {
    enum tok_type type;  /* what was read */
    struct conf_pos pos; /* where it starts */
    const char *s;       /* TOK_WORD: raw bytes (quoted: between the quotes) */
    size_t len;          /* TOK_WORD: number of raw bytes */
    bool quoted;         /* TOK_WORD: written in quotes */
    struct conf_pos end; /* TOK_WORD: just past its last byte */
};

struct lex {
    const char *p;          /* next byte to read */
    const char *end;        /* one past the last byte */
    const char *line_start; /* first byte of the current line */
    uint32_t line;          /* current line, 1-based */
    const char *file;       /* name used in positions (arena) */
    struct err *e;          /* where errors go */
};

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct conf_pos
lex_pos(const struct lex *lx, const char *at)
{
    struct conf_pos pos = {lx->file, lx->line, (uint32_t)(at - lx->line_start) + 1};
    return pos;
}

/* As err_at, at <pos>. Returns -1. */
__attribute__((format(printf, 3, 4))) static int
pos_err(struct err *e, const struct conf_pos *pos, const char *fmt, ...)
{
    char msg[sizeof(e->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_at(e, pos->file, (int)pos->line, (int)pos->col, "%s", msg);
}

/* True when a `{` followed by <c> stands alone and so opens a block. */
static bool
opens_block_before(char c)
{
    return is_space(c) || c == ';' || c == '{' || c == '}' || c == '"' || c == '\'' || c == '#';
}

static void
lex_quoted(struct lex *lx, struct tok *t)
{
    char q = *lx->p++;
    const char *start = lx->p;

    while (lx->p < lx->end && *lx->p != q) {
        if (*lx->p == '\\' && lx->p + 1 < lx->end)
            lx->p++;
        if (*lx->p == '\n') {
            lx->line++;
            lx->line_start = lx->p + 1;
        }
        lx->p++;
    }
    if (lx->p == lx->end) {
        pos_err(lx->e, &t->pos, "unterminated quoted string");
        t->type = TOK_ERR;
        return;
    }
    t->type = TOK_WORD;
    t->s = start;
    t->len = (size_t)(lx->p - start);
    t->quoted = true;
    lx->p++;
    t->end = lex_pos(lx, lx->p);
    if (lx->p < lx->end && !is_space(*lx->p) && *lx->p != ';' && *lx->p != '{' && *lx->p != '}') {
        struct conf_pos at = lex_pos(lx, lx->p);
        pos_err(lx->e, &at, "expected whitespace or ; after quoted string");
        t->type = TOK_ERR;
    }
}

static void
lex_next(struct lex *lx, struct tok *t)
{
    const char *p;

    memset(t, 0, sizeof(*t));
    for (;;) {
        while (lx->p < lx->end && is_space(*lx->p)) {
            if (*lx->p == '\n') {
                lx->line++;
                lx->line_start = lx->p + 1;
            }
            lx->p++;
        }
        if (lx->p < lx->end && *lx->p == '#') {
            const char *nl = memchr(lx->p, '\n', (size_t)(lx->end - lx->p));
            lx->p = nl ? nl : lx->end;
            continue;
        }
        break;
    }
    t->pos = lex_pos(lx, lx->p);
    if (lx->p == lx->end) {
        t->type = TOK_EOF;
        return;
    }
    p = lx->p;
    switch (*p) {
    case ';':
        t->type = TOK_SEMI;
        lx->p++;
        return;
    case '}':
        t->type = TOK_CLOSE;
        lx->p++;
        return;
    case '{':
        if (p + 1 == lx->end || opens_block_before(p[1])) {
            t->type = TOK_OPEN;
            lx->p++;
            return;
        }
        break;
    case '"':
    case '\'':
        lex_quoted(lx, t);
        return;
    default:
        break;
    }
    while (p < lx->end && !is_space(*p) && *p != ';' && *p != '"' && *p != '\'')
        p++;
    if (p < lx->end && (*p == '"' || *p == '\'')) {
        struct conf_pos at = lex_pos(lx, p);
        pos_err(lx->e, &at, "unexpected %c inside a word (quote the whole token)", *p);
        t->type = TOK_ERR;
        return;
    }
    t->type = TOK_WORD;
    t->s = lx->p;
    t->len = (size_t)(p - lx->p);
    lx->p = p;
    t->end = lex_pos(lx, p);
}

/* ---- parser ---- */

/* A file being read: for relative includes and cycle detection. */
struct frame {
    const char *name; /* as opened (arena) */
    dev_t dev;        /* identity, when known */
    ino_t ino;
    bool known; /* dev/ino are valid */
};

struct parser {
    struct chunk *arena;      /* everything the document keeps */
    struct err *e;            /* where errors go */
    struct conf_stmt *stmts;  /* scratch stack of statements of open blocks */
    size_t nstmts, cap_stmts; /* used and allocated entries of stmts */
    struct conf_arg *args;    /* scratch arguments of the statement being read */
    size_t nargs, cap_args;   /* used and allocated entries of args */
    struct frame files[CONF_MAX_INCLUDE_DEPTH + 1]; /* include chain, top file first */
    unsigned nfiles;                                /* entries used in files */
    size_t total_bytes;                             /* bytes read from all files */
};

static int
oom(struct parser *ps)
{
    return err_set(ps->e, "out of memory");
}

/* Make room for one more element after <used> in the scratch array <items> of
 * <*cap> elements of <size> bytes. Returns the array, maybe moved, or NULL. */
static void *
grow(void *items, size_t *cap, size_t used, size_t size)
{
    size_t ncap = *cap ? *cap * 2 : 16;
    void *n;

    if (used < *cap)
        return items;
    if (ncap > SIZE_MAX / size || !(n = realloc(items, ncap * size)))
        return NULL;
    *cap = ncap;
    return n;
}

static char *
arena_strdup(struct parser *ps, const char *s)
{
    size_t len = strlen(s) + 1;
    char *d = arena_alloc(&ps->arena, len);
    if (d)
        memcpy(d, s, len);
    return d;
}

static void *
arena_dup(struct parser *ps, const void *src, size_t n, size_t size)
{
    void *d;
    if (n == 0)
        return NULL;
    if (n > SIZE_MAX / size)
        return NULL;
    d = arena_alloc(&ps->arena, n * size);
    if (d)
        memcpy(d, src, n * size);
    return d;
}

/* Copy a token's text into the arena, applying escapes when quoted. */
static char *
tok_text(struct parser *ps, const struct tok *t, size_t *out_len)
{
    char *d = arena_alloc(&ps->arena, t->len + 1);
    size_t i, n = 0;

    if (!d)
        return NULL;
    for (i = 0; i < t->len; i++) {
        char c = t->s[i];
        if (t->quoted && c == '\\' && i + 1 < t->len) {
            const char *hit = strchr("\"'\\ntr", t->s[i + 1]);
            if (hit) { /* else keep the backslash; the next byte is copied next round */
                c = "\"'\\\n\t\r"[hit - "\"'\\ntr"];
                i++;
            }
        }
        d[n++] = c;
    }
    d[n] = '\0';
    *out_len = n;
    return d;
}

static int parse_block(struct parser *ps, struct lex *lx, unsigned depth,
                       const struct conf_pos *open);

/* Parse <len> bytes of <text> named <name> (arena) into the statement stack at
 * block depth <depth>. The file is pushed on the include chain while it is read. */
static int
parse_file(struct parser *ps, const char *text, size_t len, const char *name, const struct stat *st,
           unsigned depth)
{
    struct frame *f = &ps->files[ps->nfiles];
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    struct lex lx;
    int rc;

    if (nul) {
        uint32_t line = 1;
        const char *ls = text;
        for (const char *q = text; q < nul; q++) {
            if (*q == '\n') {
                line++;
                ls = q + 1;
            }
        }
        return err_at(ps->e, name, (int)line, (int)(nul - ls) + 1, "unexpected NUL byte");
    }
    f->name = name;
    f->known = st != NULL;
    f->dev = st ? st->st_dev : 0;
    f->ino = st ? st->st_ino : 0;
    ps->nfiles++;

    lx.p = lx.line_start = text;
    lx.end = text + len;
    lx.line = 1;
    lx.file = name;
    lx.e = ps->e;
    rc = parse_block(ps, &lx, depth, NULL);
    ps->nfiles--;
    return rc;
}

/* Read all of <fd> into a malloc'd <*out> of <*out_len> bytes. <hint> is the size
 * fstat saw; the file may change while read. 0, or -1 with errno (EFBIG when over
 * CONF_MAX_FILE_BYTES). */
static int
read_fd(int fd, size_t hint, char **out, size_t *out_len)
{
    size_t cap = MIN(MAX(hint + 1, 4096), (size_t)CONF_MAX_FILE_BYTES + 1), len = 0;
    char *buf = NULL, *nb;
    ssize_t n = 1;
    int saved;

    if (hint > CONF_MAX_FILE_BYTES) {
        errno = EFBIG;
        return -1;
    }
    while (n > 0) {
        if (len == cap && cap > CONF_MAX_FILE_BYTES) {
            errno = EFBIG;
            break;
        }
        if (!buf || len == cap) {
            cap = buf ? MIN(cap * 2, (size_t)CONF_MAX_FILE_BYTES + 1) : cap;
            nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        n = read(fd, buf + len, cap - len);
        if (n > 0)
            len += (size_t)n;
        else if (n < 0 && errno == EINTR)
            n = 1;
    }
    if (n == 0) {
        *out = buf;
        *out_len = len;
        return 0;
    }
    saved = errno;
    free(buf);
    errno = saved;
    return -1;
}

/* Read the file <path> named by the include statement <inc> and parse it in place.
 * Opened before the checks, so that a cycle is reported as such at any depth. */
static int
include_file(struct parser *ps, const struct conf_stmt *inc, const char *path, unsigned depth)
{
    const struct conf_pos *at = &inc->pos;
    const char *name;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return pos_err(ps->e, at, "cannot open \"%s\": %s", path, strerror(errno));
    if (fstat(fd, &st) < 0) {
        rc = pos_err(ps->e, at, "cannot stat \"%s\": %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = pos_err(ps->e, at, "cannot include \"%s\": not a regular file", path);
        goto fail;
    }
    for (unsigned i = 0; i < ps->nfiles; i++) {
        char chain[INCLUDE_CHAIN_MAX_LEN];
        size_t n = 0;
        if (!ps->files[i].known || ps->files[i].dev != st.st_dev || ps->files[i].ino != st.st_ino)
            continue;
        chain[0] = '\0';
        for (unsigned j = i; j < ps->nfiles && n < sizeof(chain); j++) {
            int w = snprintf(chain + n, sizeof(chain) - n, "%s -> ", ps->files[j].name);
            n = w < 0 ? sizeof(chain) : n + (size_t)w;
        }
        rc = pos_err(ps->e, at, "include cycle: %s%s", chain, path);
        goto fail;
    }
    if (ps->nfiles > CONF_MAX_INCLUDE_DEPTH) {
        rc = pos_err(ps->e, at, "includes nested too deeply (more than %d levels)",
                     CONF_MAX_INCLUDE_DEPTH);
        goto fail;
    }
    if (read_fd(fd, (size_t)st.st_size, &buf, &len) < 0) {
        if (errno == EFBIG)
            rc = pos_err(ps->e, at, "cannot include \"%s\": file too big (more than %u bytes)",
                         path, CONF_MAX_FILE_BYTES);
        else
            rc = pos_err(ps->e, at, "cannot read \"%s\": %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    ps->total_bytes += len;
    if (ps->total_bytes > CONF_MAX_TOTAL_BYTES) {
        rc = pos_err(ps->e, at,
                     "cannot include \"%s\": configuration too big (more than %zu bytes in all)",
                     path, CONF_MAX_TOTAL_BYTES);
        goto fail;
    }
    name = arena_strdup(ps, path);
    if (!name) {
        rc = oom(ps);
        goto fail;
    }
    rc = parse_file(ps, buf, len, name, &st, depth);
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Replace `include PATTERN;` <inc> with the statements of the files it names. A
 * relative pattern is joined to the including file's directory; glob characters
 * in that directory are escaped so only the pattern globs. */
static int
do_include(struct parser *ps, const struct conf_stmt *inc, unsigned depth)
{
    const struct conf_pos *at = &inc->pos;
    const char *pat = inc->args[0].s;
    const char *cur = ps->files[ps->nfiles - 1].name;
    const char *slash = strrchr(cur, '/');
    size_t dirlen = (pat[0] == '/' || !slash) ? 0 : (size_t)(slash - cur) + 1;
    bool globbing = strpbrk(pat, "*?[") != NULL;
    size_t patlen = inc->args[0].len, n = 0;
    char *path;
    glob_t g;
    int rc;

    if (dirlen > (SIZE_MAX - patlen - 1) / 2)
        return oom(ps);
    path = malloc(2 * dirlen + patlen + 1);
    if (!path)
        return oom(ps);
    for (size_t i = 0; i < dirlen; i++) {
        if (globbing && strchr("*?[\\", cur[i]))
            path[n++] = '\\';
        path[n++] = cur[i];
    }
    memcpy(path + n, pat, patlen + 1);
    if (!globbing) {
        rc = include_file(ps, inc, path, depth);
        free(path);
        return rc;
    }
    memset(&g, 0, sizeof(g));
    rc = glob(path, 0, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        rc = 0;
    } else if (rc == GLOB_NOSPACE) {
        rc = oom(ps);
    } else if (rc != 0) {
        rc = pos_err(ps->e, at, "cannot read \"%s\"", path);
    } else {
        for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
            rc = include_file(ps, inc, g.gl_pathv[i], depth);
    }
    globfree(&g);
    free(path);
    return rc;
}

/* Read the rest of the statement named <first> and push it on the statement stack
 * (or, for an include, the statements it names). */
static int
parse_stmt(struct parser *ps, struct lex *lx, const struct tok *first, unsigned depth)
{
    struct conf_stmt st, *stmts;
    struct conf_arg *a;
    size_t len;
    struct tok t;

    memset(&st, 0, sizeof(st));
    st.pos = first->pos;
    st.name_end = first->end;
    st.name = tok_text(ps, first, &len);
    if (!st.name)
        return oom(ps);
    ps->nargs = 0;
    for (lex_next(lx, &t); t.type == TOK_WORD; lex_next(lx, &t)) {
        if (ps->nargs >= UINT32_MAX)
            return pos_err(ps->e, &t.pos, "too many arguments");
        a = grow(ps->args, &ps->cap_args, ps->nargs, sizeof(*a));
        if (!a)
            return oom(ps);
        ps->args = a;
        a += ps->nargs;
        a->pos = t.pos;
        a->quoted = t.quoted;
        a->end = t.end;
        a->s = tok_text(ps, &t, &a->len);
        if (!a->s)
            return oom(ps);
        ps->nargs++;
    }
    if (t.type == TOK_CLOSE)
        return pos_err(ps->e, &t.pos, "unexpected '}', expecting ';'");
    if (t.type == TOK_EOF)
        return pos_err(ps->e, &t.pos, "unexpected end of file, expecting ';' or '{'");
    if (t.type == TOK_ERR)
        return -1; /* already reported */
    st.block = t.type == TOK_OPEN;
    if (st.block)
        st.block_pos = t.pos;
    st.nargs = (uint32_t)ps->nargs;
    if (ps->nargs) {
        st.args = arena_dup(ps, ps->args, ps->nargs, sizeof(*ps->args));
        if (!st.args)
            return oom(ps);
    }

    if (strcmp(st.name, "include") == 0) {
        if (st.block)
            return pos_err(ps->e, &st.block_pos, "unexpected '{': \"include\" takes no block");
        if (st.nargs != 1)
            return pos_err(ps->e, &st.pos, "\"include\" takes exactly one argument");
        return do_include(ps, &st, depth);
    }

    if (st.block) {
        size_t base = ps->nstmts;
        if (depth >= CONF_MAX_BLOCK_DEPTH)
            return pos_err(ps->e, &st.block_pos, "blocks nested too deeply (more than %d levels)",
                           CONF_MAX_BLOCK_DEPTH);
        if (parse_block(ps, lx, depth + 1, &st.block_pos) < 0)
            return -1;
        if (ps->nstmts - base > UINT32_MAX)
            return pos_err(ps->e, &st.block_pos, "too many statements in the block");
        st.nchildren = (uint32_t)(ps->nstmts - base);
        if (st.nchildren) {
            st.children = arena_dup(ps, ps->stmts + base, st.nchildren, sizeof(*ps->stmts));
            if (!st.children)
                return oom(ps);
        }
        ps->nstmts = base;
    }
    stmts = grow(ps->stmts, &ps->cap_stmts, ps->nstmts, sizeof(*stmts));
    if (!stmts)
        return oom(ps);
    ps->stmts = stmts;
    ps->stmts[ps->nstmts++] = st;
    return 0;
}

/* Parse statements until EOF (top of a file, <open> NULL) or the `}` matching the
 * `{` at <open>. */
static int
parse_block(struct parser *ps, struct lex *lx, unsigned depth, const struct conf_pos *open)
{
    struct tok t;

    for (;;) {
        lex_next(lx, &t);
        switch (t.type) {
        case TOK_WORD:
            if (parse_stmt(ps, lx, &t, depth) < 0)
                return -1;
            break;
        case TOK_EOF:
            if (!open)
                return 0;
            return pos_err(ps->e, &t.pos,
                           "unexpected end of file, expecting '}' to close the block opened at "
                           "line %u",
                           (unsigned)open->line);
        case TOK_CLOSE:
            if (open)
                return 0;
            return pos_err(ps->e, &t.pos, "unexpected '}'");
        case TOK_SEMI:
            return pos_err(ps->e, &t.pos, "unexpected ';'");
        case TOK_OPEN:
            return pos_err(ps->e, &t.pos, "unexpected '{'");
        default:
            return -1;
        }
    }
}

/* Parse the top file and wrap the result in a document. <st> identifies the file
 * on disk (for include cycles), NULL when unknown. */
static struct conf_doc *
doc_build(const char *text, size_t len, const char *name, const struct stat *st, struct err *e)
{
    struct parser ps;
    struct conf_doc *doc = NULL;
    struct conf_stmt *top = NULL;
    const char *fname;

    memset(&ps, 0, sizeof(ps));
    ps.e = e;
    ps.total_bytes = len;
    fname = arena_strdup(&ps, name);
    if (!fname) {
        oom(&ps);
        goto fail;
    }
    if (parse_file(&ps, text, len, fname, st, 0) < 0)
        goto fail;
    if (ps.nstmts > UINT32_MAX) {
        err_set(e, "%s: too many statements", name);
        goto fail;
    }
    if (ps.nstmts) {
        top = arena_dup(&ps, ps.stmts, ps.nstmts, sizeof(*ps.stmts));
        if (!top) {
            oom(&ps);
            goto fail;
        }
    }
    doc = arena_alloc(&ps.arena, sizeof(*doc));
    if (!doc) {
        oom(&ps);
        goto fail;
    }
    memset(doc, 0, sizeof(*doc));
    /* The root is a synthetic block statement named "" at line 1, column 1. */
    doc->root.name = (char *)fname + strlen(fname);
    doc->root.pos.file = fname;
    doc->root.pos.line = 1;
    doc->root.pos.col = 1;
    doc->root.block = true;
    doc->root.block_pos = doc->root.pos;
    doc->root.children = top;
    doc->root.nchildren = (uint32_t)ps.nstmts;
    doc->mem = ps.arena;
    free(ps.stmts);
    free(ps.args);
    return doc;
fail:
    free(ps.stmts);
    free(ps.args);
    arena_free(ps.arena);
    return NULL;
}

struct conf_doc *
conf_doc_parse(const char *text, size_t len, const char *name, struct err *e)
{
    struct stat st;
    bool known;

    if (!name)
        name = "(config)";
    if (len > CONF_MAX_FILE_BYTES) {
        err_set(e, "\"%s\": file too big (more than %u bytes)", name, CONF_MAX_FILE_BYTES);
        return NULL;
    }
    /* If <name> is a file on disk, a later include of it is a cycle. */
    known = stat(name, &st) == 0 && S_ISREG(st.st_mode);
    return doc_build(len ? text : "", len, name, known ? &st : NULL, e);
}

struct conf_doc *
conf_doc_load(const char *path, struct err *e)
{
    struct conf_doc *doc = NULL;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        err_set(e, "cannot open \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        err_set(e, "cannot stat \"%s\": %s", path, strerror(errno));
        goto out;
    }
    /* Not only regular files: `-c /dev/stdin` is useful. */
    if (read_fd(fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0, &buf, &len) < 0) {
        if (errno == EFBIG)
            err_set(e, "\"%s\": file too big (more than %u bytes)", path, CONF_MAX_FILE_BYTES);
        else
            err_set(e, "cannot read \"%s\": %s", path, strerror(errno));
        goto out;
    }
    doc = doc_build(buf, len, path, S_ISREG(st.st_mode) ? &st : NULL, e);
out:
    free(buf);
    close(fd);
    return doc;
}

void
conf_doc_free(struct conf_doc *doc)
{
    if (doc)
        arena_free(doc->mem);
}
