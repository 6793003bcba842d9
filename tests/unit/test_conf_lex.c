/* SPDX-License-Identifier: MIT */
/* Unit tests of the config lexer and statement-tree loader: tokens, quotes,
 * braces, comments, exact error messages, includes, line endings, limits. */
#include "config.h"

#include <tether/conf.h>
#include <tether/conf_lex.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

static char tmpdir[256];
static struct err last; /* error of the last parse or load */

/* <doc> when it parsed, else NULL with the error printed. */
static struct conf_doc *
ok(struct conf_doc *doc)
{
    if (!doc)
        fprintf(stderr, "  unexpected error: %s\n", last.msg);
    return doc;
}

/* The error message of a parse or load expected to fail. */
static const char *
fail(struct conf_doc *doc)
{
    if (!doc)
        return last.msg;
    conf_doc_free(doc);
    return "(no error)";
}

/* Path of <rel> inside the temporary directory (one of a few static buffers). */
static const char *
tpath(const char *rel)
{
    static char bufs[8][512];
    static unsigned i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, rel);
    return b;
}

/* Stop the test when <doc> is missing. */
#define CHECK_DOC(doc)                                                                             \
    do {                                                                                           \
        CHECK((doc) != NULL);                                                                      \
        if (!(doc))                                                                                \
            return;                                                                                \
    } while (0)

/* <levels> blocks "b {" nested one per line around <inner>, into <buf>. */
static const char *
nested(char *buf, size_t size, int levels, const char *inner)
{
    size_t n = 0;
    for (int i = 0; i < levels; i++)
        n += (size_t)snprintf(buf + n, size - n, "b {\n");
    n += (size_t)snprintf(buf + n, size - n, "%s", inner);
    for (int i = 0; i < levels; i++)
        n += (size_t)snprintf(buf + n, size - n, "}\n");
    return buf;
}

#define PARSE_N(text, n) conf_doc_parse((text), (n), "t.conf", &last)
#define PARSE(text)      PARSE_N((text), strlen(text))
#define LOAD(rel)        conf_doc_load(tpath(rel), &last)
#define parse(text)      ok(PARSE(text))
#define parse_fail(text) fail(PARSE(text))
#define load(rel)        ok(LOAD(rel))
#define load_fail(rel)   fail(LOAD(rel))

static void
write_file(const char *rel, const char *text)
{
    FILE *f = fopen(tpath(rel), "w");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", tpath(rel), strerror(errno));
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static void
make_dir(const char *rel)
{
    mkdir(tpath(rel), 0700);
}

static const char design_example[] =
    "workers 2;\n"
    "error_log stderr info;\n"
    "access_log /var/log/tether/access.log json;\n"
    "shutdown_timeout 30s;\n"
    "\n"
    "stats  { listen 127.0.0.1:9100; }\n"
    "admin  { listen unix:/run/tether/admin.sock; }\n"
    "redis  { server 127.0.0.1:6379; prefix \"tether:\"; timeout 200ms; }   # optional\n"
    "\n"
    "rate_limit_zone per_ip  key=$remote_addr rate=100r/s burst=50;\n"
    "rate_limit_zone per_sid key=$http_x_voice_session_id rate=20r/s burst=20 global;\n"
    "\n"
    "upstream voice {\n"
    "    balance least_conn;\n"
    "    region eu-west   weight=70 priority=0;\n"
    "    region me-central weight=30 priority=0;\n"
    "    region us-west   weight=100 priority=1;        # DR tier\n"
    "    server pod-a 10.0.0.1:8000 region=eu-west weight=1;\n"
    "    server pod-b 10.0.0.2:8000 region=eu-west;\n"
    "    server pod-c 10.0.1.1:8000 region=me-central;\n"
    "    server pod-d 10.0.2.1:8000 region=us-west;\n"
    "    keepalive 64;\n"
    "    connect_timeout 2s;\n"
    "    retries 2;\n"
    "    health_check { path /health; interval 10s; timeout 5s; rise 2; fall 3; expect 200-399; "
    "}\n"
    "    outlier { consecutive_errors 5; base_ejection 30s; max_ejected 50%; }\n"
    "}\n"
    "\n"
    "upstream static { server cdn 10.0.9.1:8080; }\n"
    "\n"
    "affinity {\n"
    "    cookie VOICE_AFFINITY max_age=900s secret_file=/etc/tether/affinity.key;\n"
    "    header X-Voice-Session-Id;\n"
    "    learn  header=X-Voice-Session-Id;          # or json=session_id\n"
    "    path   /webhook/{id}/;                     # where a session id sits in a path\n"
    "    ttl 900s;\n"
    "}\n"
    "\n"
    "server {\n"
    "    listen 0.0.0.0:443 tls;\n"
    "    listen 0.0.0.0:80;\n"
    "    tls_certificate     /etc/tether/voice.pem /etc/tether/voice.key;\n"
    "    limit_req per_ip;\n"
    "    limit_conn 50;\n"
    "    client_max_body_size 10m;\n"
    "\n"
    "    route = /session  { upstream voice; affinity none;    learn on; timeout 30s; }\n"
    "    route = /sdp      { upstream voice; affinity cookie;  timeout 30s; }\n"
    "    route /tools/     { upstream voice; affinity cookie;  timeout 300s; }\n"
    "    route /webhook/   { upstream voice; affinity session; timeout 30s; }\n"
    "    route /health     { upstream voice; timeout 5s; }\n"
    "    route /           { upstream static; timeout 30s; websocket_timeout 3600s; }\n"
    "}\n";

static void
test_design_example(void)
{
    struct conf_doc *doc = parse(design_example);
    const struct conf_stmt *top, *up, *hc, *aff, *srv, *route;

    CHECK_DOC(doc);
    CHECK_UINT_EQ(doc->root.nchildren, 13);
    CHECK_STR_EQ(doc->root.name, "");
    top = doc->root.children;
    CHECK_STR_EQ(top[0].name, "workers");
    CHECK_UINT_EQ(top[0].nargs, 1);
    CHECK_STR_EQ(top[0].args[0].s, "2");
    CHECK_UINT_EQ(top[0].pos.line, 1);
    CHECK_UINT_EQ(top[0].pos.col, 1);
    CHECK_STR_EQ(top[0].pos.file, "t.conf");
    CHECK(!top[0].block);
    CHECK_STR_EQ(top[2].args[0].s, "/var/log/tether/access.log");

    CHECK_STR_EQ(top[6].name, "redis");
    CHECK(top[6].block);
    CHECK_UINT_EQ(top[6].block_pos.line, 8);
    CHECK_UINT_EQ(top[6].block_pos.col, 8);
    CHECK_UINT_EQ(top[6].nchildren, 3);
    CHECK_STR_EQ(top[6].children[1].name, "prefix");
    CHECK_STR_EQ(top[6].children[1].args[0].s, "tether:");
    CHECK(top[6].children[1].args[0].quoted);
    CHECK_UINT_EQ(top[6].children[1].args[0].pos.col, 40);

    CHECK_STR_EQ(top[8].name, "rate_limit_zone");
    CHECK_UINT_EQ(top[8].nargs, 5);
    CHECK_STR_EQ(top[8].args[1].s, "key=$http_x_voice_session_id");
    CHECK_STR_EQ(top[8].args[2].s, "rate=20r/s");
    CHECK_STR_EQ(top[8].args[4].s, "global");
    CHECK(!top[8].args[4].quoted);

    up = &top[9];
    CHECK_STR_EQ(up->name, "upstream");
    CHECK_STR_EQ(up->args[0].s, "voice");
    CHECK_UINT_EQ(up->pos.line, 13);
    CHECK_UINT_EQ(up->nchildren, 13);
    CHECK_STR_EQ(up->children[3].args[0].s, "us-west");
    CHECK_STR_EQ(up->children[3].args[1].s, "weight=100");
    CHECK_UINT_EQ(up->children[3].args[1].pos.line, 17);
    CHECK_UINT_EQ(up->children[3].args[1].pos.col, 22);
    hc = &up->children[11];
    CHECK_STR_EQ(hc->name, "health_check");
    CHECK_UINT_EQ(hc->nchildren, 6);
    CHECK_STR_EQ(hc->children[5].name, "expect");
    CHECK_STR_EQ(hc->children[5].args[0].s, "200-399");
    CHECK_STR_EQ(up->children[12].children[2].args[0].s, "50%");

    aff = &top[11];
    CHECK_STR_EQ(aff->name, "affinity");
    CHECK_UINT_EQ(aff->nchildren, 5);
    CHECK_STR_EQ(aff->children[3].name, "path");
    CHECK_STR_EQ(aff->children[3].args[0].s, "/webhook/{id}/");
    CHECK_UINT_EQ(aff->children[3].args[0].len, 14);

    srv = &top[12];
    CHECK_STR_EQ(srv->name, "server");
    CHECK_UINT_EQ(srv->nargs, 0);
    CHECK_UINT_EQ(srv->nchildren, 12);
    route = &srv->children[6];
    CHECK_STR_EQ(route->name, "route");
    CHECK_UINT_EQ(route->nargs, 2);
    CHECK_STR_EQ(route->args[0].s, "=");
    CHECK_STR_EQ(route->args[1].s, "/session");
    CHECK_UINT_EQ(route->pos.line, 47);
    CHECK_UINT_EQ(route->pos.col, 5);
    CHECK(route->block);
    CHECK_UINT_EQ(route->block_pos.line, 47);
    CHECK_UINT_EQ(route->block_pos.col, 23);
    CHECK_UINT_EQ(route->nchildren, 4);
    CHECK_STR_EQ(route->children[3].name, "timeout");
    CHECK_STR_EQ(srv->children[11].args[0].s, "/");
    CHECK_STR_EQ(srv->children[11].children[2].args[0].s, "3600s");
    conf_doc_free(doc);
}

static void
test_comments(void)
{
    struct conf_doc *doc = parse("# leading\n"
                                 "a b#c d; # trailing ; { }\n"
                                 "  #indented\n"
                                 "e \"#x\" f;#glued to ;\n"
                                 "g {#after brace\n"
                                 "  h;}#after close\n"
                                 "i#j;\n"
                                 "# last line without newline");
    const struct conf_stmt *s;

    CHECK_DOC(doc);
    s = doc->root.children;
    CHECK_UINT_EQ(doc->root.nchildren, 4);
    CHECK_STR_EQ(s[0].name, "a");
    CHECK_UINT_EQ(s[0].nargs, 2);
    CHECK_STR_EQ(s[0].args[0].s, "b#c");
    CHECK_STR_EQ(s[0].args[1].s, "d");
    CHECK_STR_EQ(s[1].args[0].s, "#x");
    CHECK(s[1].args[0].quoted);
    CHECK_UINT_EQ(s[2].nchildren, 1);
    CHECK_STR_EQ(s[2].children[0].name, "h");
    CHECK_UINT_EQ(s[2].children[0].pos.line, 6);
    CHECK_UINT_EQ(s[2].children[0].pos.col, 3);
    CHECK_STR_EQ(s[3].name, "i#j");
    CHECK_UINT_EQ(s[3].nargs, 0);
    conf_doc_free(doc);
}

static void
test_quotes(void)
{
    struct conf_doc *doc = parse("s \"a\\\"b\" 'c\\'d' \"\\\\\" \"\\n\\t\\r\" \"\\q\\$\" \"\" '' "
                                 "\"x y;{}#\" 'say \"hi\"' \"it's\";\n"
                                 "m \"line1\n"
                                 "line2\" after;\n"
                                 "\"quoted name\" v;\n"
                                 "b \"in\"{ c; }\n"
                                 "d 'e';");
    const struct conf_stmt *s;
    const struct conf_arg *a;

    CHECK_DOC(doc);
    s = doc->root.children;
    CHECK_UINT_EQ(doc->root.nchildren, 5);
    a = s[0].args;
    CHECK_UINT_EQ(s[0].nargs, 10);
    CHECK_STR_EQ(a[0].s, "a\"b");
    CHECK_STR_EQ(a[1].s, "c'd");
    CHECK_STR_EQ(a[2].s, "\\");
    CHECK_STR_EQ(a[3].s, "\n\t\r");
    CHECK_STR_EQ(a[4].s, "\\q\\$");
    CHECK_STR_EQ(a[5].s, "");
    CHECK_UINT_EQ(a[5].len, 0);
    CHECK(a[5].quoted);
    CHECK_STR_EQ(a[6].s, "");
    CHECK_STR_EQ(a[7].s, "x y;{}#");
    CHECK_STR_EQ(a[8].s, "say \"hi\"");
    CHECK_STR_EQ(a[9].s, "it's");
    CHECK_UINT_EQ(a[0].pos.col, 3);
    CHECK_UINT_EQ(a[1].pos.col, 10);

    CHECK_STR_EQ(s[1].args[0].s, "line1\nline2");
    CHECK_UINT_EQ(s[1].args[0].pos.line, 2);
    CHECK_STR_EQ(s[1].args[1].s, "after");
    CHECK_UINT_EQ(s[1].args[1].pos.line, 3);
    CHECK_UINT_EQ(s[1].args[1].pos.col, 8);
    CHECK_STR_EQ(s[2].name, "quoted name");
    CHECK_UINT_EQ(s[2].pos.line, 4);
    CHECK(s[3].block);
    CHECK_STR_EQ(s[3].args[0].s, "in");
    CHECK_UINT_EQ(s[3].block_pos.col, 7);
    CHECK_STR_EQ(s[4].args[0].s, "e");
    conf_doc_free(doc);
}

static void
test_braces(void)
{
    struct conf_doc *doc = parse("path /webhook/{id}/;\n"
                                 "x {id} a{ b} c};\n"
                                 "r /x { y;}\n"
                                 "e {}\n"
                                 "f{ g;\n"
                                 "h {\"q\";}\n"
                                 "i { j { k { } } }\n");
    const struct conf_stmt *s;

    CHECK_DOC(doc);
    s = doc->root.children;
    CHECK_UINT_EQ(doc->root.nchildren, 7);
    CHECK_STR_EQ(s[0].args[0].s, "/webhook/{id}/");
    CHECK_UINT_EQ(s[1].nargs, 4);
    CHECK_STR_EQ(s[1].args[0].s, "{id}");
    CHECK_STR_EQ(s[1].args[1].s, "a{");
    CHECK_STR_EQ(s[1].args[2].s, "b}");
    CHECK_STR_EQ(s[1].args[3].s, "c}");
    CHECK(!s[1].block);
    CHECK(s[2].block);
    CHECK_UINT_EQ(s[2].nchildren, 1);
    CHECK_STR_EQ(s[2].children[0].name, "y");
    CHECK(s[3].block);
    CHECK_UINT_EQ(s[3].nchildren, 0);
    CHECK(s[3].children == NULL);
    CHECK_STR_EQ(s[4].name, "f{");
    CHECK_UINT_EQ(s[4].nargs, 1);
    CHECK_STR_EQ(s[4].args[0].s, "g");
    CHECK(!s[4].block);
    CHECK_STR_EQ(s[5].children[0].name, "q");
    CHECK_STR_EQ(s[6].children[0].children[0].name, "k");
    CHECK(s[6].children[0].children[0].block);
    CHECK_UINT_EQ(s[6].children[0].children[0].block_pos.col, 11);
    conf_doc_free(doc);

    /* "f{ g; }" leaves a stray '}' at the end of its line. */
    CHECK_STR_EQ(parse_fail("f{ g; }\n"), "t.conf:1:7: unexpected '}'");
    /* '{' followed by a word byte starts a word: the block never opens. */
    CHECK_STR_EQ(parse_fail("r /x {y;}"), "t.conf:1:9: unexpected '}'");
}

static void
test_errors(void)
{
    CHECK_STR_EQ(parse_fail("a;\n}"), "t.conf:2:1: unexpected '}'");
    CHECK_STR_EQ(parse_fail("a {\n  b;\n"),
                 "t.conf:3:1: unexpected end of file, expecting '}' to close the block opened at "
                 "line 1");
    CHECK_STR_EQ(parse_fail("x;\na {\n  b { c; }"),
                 "t.conf:3:11: unexpected end of file, expecting '}' to close the block opened at "
                 "line 2");
    CHECK_STR_EQ(parse_fail("a b"), "t.conf:1:4: unexpected end of file, expecting ';' or '{'");
    CHECK_STR_EQ(parse_fail("a b\n"), "t.conf:2:1: unexpected end of file, expecting ';' or '{'");
    CHECK_STR_EQ(parse_fail("a { b }"), "t.conf:1:7: unexpected '}', expecting ';'");
    CHECK_STR_EQ(parse_fail(";"), "t.conf:1:1: unexpected ';'");
    CHECK_STR_EQ(parse_fail("a; ;"), "t.conf:1:4: unexpected ';'");
    CHECK_STR_EQ(parse_fail("a { ; }"), "t.conf:1:5: unexpected ';'");
    CHECK_STR_EQ(parse_fail("{ a; }"), "t.conf:1:1: unexpected '{'");
    CHECK_STR_EQ(parse_fail("a {\n  { b; }\n}"), "t.conf:2:3: unexpected '{'");
    CHECK_STR_EQ(parse_fail("a \"bc"), "t.conf:1:3: unterminated quoted string");
    CHECK_STR_EQ(parse_fail("a\n 'b\\'"), "t.conf:2:2: unterminated quoted string");
    CHECK_STR_EQ(parse_fail("a \"b\"c;"),
                 "t.conf:1:6: expected whitespace or ; after quoted string");
    CHECK_STR_EQ(parse_fail("a \"b\"\"c\";"),
                 "t.conf:1:6: expected whitespace or ; after quoted string");
    CHECK_STR_EQ(parse_fail("a 'b'#c\n;"),
                 "t.conf:1:6: expected whitespace or ; after quoted string");
    CHECK_STR_EQ(parse_fail("a b\"c\";"),
                 "t.conf:1:4: unexpected \" inside a word (quote the whole token)");
    CHECK_STR_EQ(parse_fail("it's;"),
                 "t.conf:1:3: unexpected ' inside a word (quote the whole token)");
    CHECK_STR_EQ(parse_fail("include;"), "t.conf:1:1: \"include\" takes exactly one argument");
    CHECK_STR_EQ(parse_fail("a;\n  include x y;"),
                 "t.conf:2:3: \"include\" takes exactly one argument");
    CHECK_STR_EQ(parse_fail("include x { }"),
                 "t.conf:1:11: unexpected '{': \"include\" takes no block");
}

static void
test_nesting_limit(void)
{
    char buf[512];
    struct conf_doc *doc = parse(nested(buf, sizeof(buf), 32, ""));

    CHECK(doc != NULL);
    conf_doc_free(doc);
    CHECK_STR_EQ(parse_fail(nested(buf, sizeof(buf), 33, "")),
                 "t.conf:33:3: blocks nested too deeply (more than 32 levels)");
}

static void
test_nul_byte(void)
{
    static const char text[] = "a;\nb\0c;";
    static const char text2[] = "a \"x\0y\";";
    CHECK_STR_EQ(fail(PARSE_N(text, sizeof(text) - 1)), "t.conf:2:2: unexpected NUL byte");
    CHECK_STR_EQ(fail(PARSE_N(text2, sizeof(text2) - 1)), "t.conf:1:5: unexpected NUL byte");
    CHECK_STR_EQ(fail(PARSE_N("\0", 1)), "t.conf:1:1: unexpected NUL byte");
    /* Even inside a comment. */
    CHECK_STR_EQ(fail(PARSE_N("# \0\n", 4)), "t.conf:1:3: unexpected NUL byte");
}

static void
test_crlf_and_tabs(void)
{
    struct conf_doc *doc = parse("a 1;\r\nb {\r\n\tc 2;\r\n}\r\n\r\nd \"x\r\ny\" z;\r\n");
    const struct conf_stmt *s;

    CHECK_DOC(doc);
    s = doc->root.children;
    CHECK_UINT_EQ(doc->root.nchildren, 3);
    CHECK_STR_EQ(s[0].args[0].s, "1");
    CHECK_UINT_EQ(s[1].children[0].pos.line, 3);
    CHECK_UINT_EQ(s[1].children[0].pos.col, 2);
    CHECK_UINT_EQ(s[1].children[0].args[0].pos.col, 4);
    CHECK_UINT_EQ(s[2].pos.line, 6);
    CHECK_STR_EQ(s[2].args[0].s, "x\r\ny");
    CHECK_UINT_EQ(s[2].args[1].pos.line, 7);
    CHECK_UINT_EQ(s[2].args[1].pos.col, 4);
    conf_doc_free(doc);

    CHECK_STR_EQ(parse_fail("a;\r\nb\r\n"),
                 "t.conf:3:1: unexpected end of file, expecting ';' or '{'");
    CHECK_STR_EQ(parse_fail("a;\r\n\t}\r\n"), "t.conf:2:2: unexpected '}'");
    /* A lone CR is whitespace, not a line end. */
    CHECK_STR_EQ(parse_fail("a;\rb;\r}"), "t.conf:1:7: unexpected '}'");
}

static void
test_empty(void)
{
    const char *texts[] = {"", "   \n\t\r\n", "# only a comment", "#\n#\n"};
    for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
        struct conf_doc *doc = parse(texts[i]);
        CHECK(doc != NULL);
        if (doc) {
            CHECK_UINT_EQ(doc->root.nchildren, 0);
            CHECK(doc->root.children == NULL);
        }
        conf_doc_free(doc);
    }
    conf_doc_free(ok(conf_doc_parse(NULL, 0, "empty.conf", &last)));
    conf_doc_free(NULL);
}

static void
test_big_file(void)
{
    static const char line[] = "server pod-a 10.0.0.1:8000 region=eu-west weight=1;\n";
    size_t n = 0, cap = (1u << 20) + sizeof(line) + 64, count = 0;
    char *text = malloc(cap);
    struct conf_doc *doc;
    uint64_t t0, ms;

    if (!text)
        return;
    n = (size_t)snprintf(text, cap, "upstream big {\n");
    while (n + sizeof(line) + 4 < cap) {
        memcpy(text + n, line, sizeof(line) - 1);
        n += sizeof(line) - 1;
        count++;
    }
    memcpy(text + n, "}\n", 3);
    n += 2;
    CHECK(n >= (1u << 20));
    t0 = time_mono_ms();
    doc = conf_doc_parse(text, n, "big.conf", NULL);
    ms = time_mono_ms() - t0;
    CHECK(doc != NULL);
    if (doc) {
        CHECK_UINT_EQ(doc->root.nchildren, 1);
        CHECK_UINT_EQ(doc->root.children[0].nchildren, count);
        CHECK_STR_EQ(doc->root.children[0].children[count - 1].args[3].s, "weight=1");
        CHECK_UINT_EQ(doc->root.children[0].children[count - 1].pos.line, count + 1);
    }
    CHECK(ms < 1000);
    conf_doc_free(doc);

    /* Too big for a document held in memory. */
    {
        size_t big = (size_t)CONF_MAX_FILE_BYTES + 1;
        char *huge = malloc(big);
        if (huge) {
            memset(huge, ' ', big);
            CHECK_STR_EQ(fail(PARSE_N(huge, big)),
                         "\"t.conf\": file too big (more than 16777216 bytes)");
            free(huge);
        }
    }
    free(text);
}

static void
test_load(void)
{
    struct conf_doc *doc;
    char expect[700];
    int fd;

    write_file("plain.conf", "a 1;\nb { c; }\n");
    doc = load("plain.conf");
    CHECK(doc != NULL);
    if (doc) {
        CHECK_UINT_EQ(doc->root.nchildren, 2);
        CHECK_STR_EQ(doc->root.children[1].children[0].pos.file, tpath("plain.conf"));
    }
    conf_doc_free(doc);

    snprintf(expect, sizeof(expect), "cannot open \"%s\": No such file or directory",
             tpath("nope.conf"));
    CHECK_STR_EQ(load_fail("nope.conf"), expect);

    /* A sparse file bigger than the limit is refused before it is read. */
    fd = open(tpath("huge.conf"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(ftruncate(fd, (off_t)CONF_MAX_FILE_BYTES + 1) == 0);
        close(fd);
        snprintf(expect, sizeof(expect), "\"%s\": file too big (more than 16777216 bytes)",
                 tpath("huge.conf"));
        CHECK_STR_EQ(load_fail("huge.conf"), expect);
        write_file("inc_huge.conf", "include huge.conf;\n");
        snprintf(expect, sizeof(expect),
                 "%s:1:1: cannot include \"%s\": file too big (more than 16777216 bytes)",
                 tpath("inc_huge.conf"), tpath("huge.conf"));
        CHECK_STR_EQ(load_fail("inc_huge.conf"), expect);
        unlink(tpath("huge.conf"));
    }

    write_file("broken.conf", "a {\n  b;\n");
    snprintf(expect, sizeof(expect),
             "%s:3:1: unexpected end of file, expecting '}' to close the block opened at line 1",
             tpath("broken.conf"));
    CHECK_STR_EQ(load_fail("broken.conf"), expect);
}

static void
test_include_basic(void)
{
    struct conf_doc *doc;
    const struct conf_stmt *s;
    char expect[700];

    make_dir("sub");
    write_file("main.conf", "a;\ninclude sub/one.conf;\nb;\n");
    write_file("sub/one.conf", "x 1;\ninclude two.conf;\n");
    write_file("sub/two.conf", "\n  y 2;\n");
    doc = load("main.conf");
    CHECK(doc != NULL);
    if (doc) {
        s = doc->root.children;
        CHECK_UINT_EQ(doc->root.nchildren, 4);
        CHECK_STR_EQ(s[0].name, "a");
        CHECK_STR_EQ(s[1].name, "x");
        CHECK_STR_EQ(s[1].pos.file, tpath("sub/one.conf"));
        CHECK_UINT_EQ(s[1].pos.line, 1);
        CHECK_STR_EQ(s[2].name, "y");
        CHECK_STR_EQ(s[2].pos.file, tpath("sub/two.conf"));
        CHECK_UINT_EQ(s[2].pos.line, 2);
        CHECK_UINT_EQ(s[2].pos.col, 3);
        CHECK_STR_EQ(s[2].args[0].pos.file, tpath("sub/two.conf"));
        CHECK_STR_EQ(s[3].name, "b");
        CHECK_STR_EQ(s[3].pos.file, tpath("main.conf"));
    }
    conf_doc_free(doc);

    /* conf_doc_parse takes relative includes from the directory of <name>. */
    doc = ok(conf_doc_parse("include sub/two.conf;", 21, tpath("virtual.conf"), &last));
    CHECK(doc != NULL);
    if (doc) {
        CHECK_UINT_EQ(doc->root.nchildren, 1);
        CHECK_STR_EQ(doc->root.children[0].name, "y");
    }
    conf_doc_free(doc);

    /* An absolute pattern is used as is. */
    snprintf(expect, sizeof(expect), "abs;\ninclude \"%s\";\n", tpath("sub/two.conf"));
    write_file("abs.conf", expect);
    doc = load("abs.conf");
    CHECK(doc != NULL);
    if (doc)
        CHECK_UINT_EQ(doc->root.nchildren, 2);
    conf_doc_free(doc);

    /* A missing plain file is an error at the include statement. */
    write_file("missing.conf", "a;\n  include missing-file.conf;\n");
    snprintf(expect, sizeof(expect), "%s:2:3: cannot open \"%s\": No such file or directory",
             tpath("missing.conf"), tpath("missing-file.conf"));
    CHECK_STR_EQ(load_fail("missing.conf"), expect);

    /* Errors inside an included file name that file. */
    write_file("sub/bad.conf", "ok;\nbad {\n");
    write_file("incbad.conf", "include sub/bad.conf;\n");
    snprintf(expect, sizeof(expect),
             "%s:3:1: unexpected end of file, expecting '}' to close the block opened at line 2",
             tpath("sub/bad.conf"));
    CHECK_STR_EQ(load_fail("incbad.conf"), expect);

    /* A block must close in the file that opened it. */
    write_file("sub/close.conf", "}\n");
    write_file("incclose.conf", "a {\n  include sub/close.conf;\n");
    snprintf(expect, sizeof(expect), "%s:1:1: unexpected '}'", tpath("sub/close.conf"));
    CHECK_STR_EQ(load_fail("incclose.conf"), expect);

    /* A directory is not a config file. */
    write_file("incdir.conf", "include sub;\n");
    snprintf(expect, sizeof(expect), "%s:1:1: cannot include \"%s\": not a regular file",
             tpath("incdir.conf"), tpath("sub"));
    CHECK_STR_EQ(load_fail("incdir.conf"), expect);
}

static void
test_include_glob(void)
{
    struct conf_doc *doc;
    const struct conf_stmt *s;

    make_dir("conf.d");
    write_file("conf.d/c.conf", "c;\n");
    write_file("conf.d/a.conf", "a1;\na2;\n");
    write_file("conf.d/b.conf", "# nothing but a comment\n");
    write_file("conf.d/d.conf.bak", "never;\n");
    write_file("glob.conf", "first;\ninclude conf.d/*.conf;\ninclude none/*.conf;\n"
                            "include conf.d/[z]*;\nlast;\n");
    doc = load("glob.conf");
    CHECK(doc != NULL);
    if (doc) {
        s = doc->root.children;
        CHECK_UINT_EQ(doc->root.nchildren, 5);
        CHECK_STR_EQ(s[0].name, "first");
        CHECK_STR_EQ(s[1].name, "a1");
        CHECK_STR_EQ(s[1].pos.file, tpath("conf.d/a.conf"));
        CHECK_STR_EQ(s[2].name, "a2");
        CHECK_STR_EQ(s[3].name, "c");
        CHECK_STR_EQ(s[3].pos.file, tpath("conf.d/c.conf"));
        CHECK_STR_EQ(s[4].name, "last");
    }
    conf_doc_free(doc);

    /* Glob characters in the including file's directory are taken literally. */
    make_dir("we[ir]d*");
    write_file("we[ir]d*/main.conf", "include ?.conf;\n");
    write_file("we[ir]d*/x.conf", "wx;\n");
    write_file("we[ir]d*/yy.conf", "never;\n");
    doc = load("we[ir]d*/main.conf");
    CHECK(doc != NULL);
    if (doc) {
        CHECK_UINT_EQ(doc->root.nchildren, 1);
        CHECK_STR_EQ(doc->root.children[0].name, "wx");
        CHECK_STR_EQ(doc->root.children[0].pos.file, tpath("we[ir]d*/x.conf"));
    }
    conf_doc_free(doc);
}

static void
test_include_in_block(void)
{
    struct conf_doc *doc;
    const struct conf_stmt *srv;

    write_file("routes.conf", "route /a { upstream x; }\nroute /b { upstream y; }\n");
    write_file("block.conf", "server {\n    include routes.conf;\n    listen 80;\n}\n");
    doc = load("block.conf");
    CHECK_DOC(doc);
    CHECK_UINT_EQ(doc->root.nchildren, 1);
    srv = &doc->root.children[0];
    CHECK_UINT_EQ(srv->nchildren, 3);
    CHECK_STR_EQ(srv->children[0].name, "route");
    CHECK_STR_EQ(srv->children[0].args[0].s, "/a");
    CHECK_STR_EQ(srv->children[0].children[0].args[0].s, "x");
    CHECK_STR_EQ(srv->children[1].args[0].s, "/b");
    CHECK_UINT_EQ(srv->children[1].pos.line, 2);
    CHECK_STR_EQ(srv->children[1].pos.file, tpath("routes.conf"));
    CHECK_STR_EQ(srv->children[2].name, "listen");
    CHECK_UINT_EQ(srv->children[2].pos.line, 3);
    conf_doc_free(doc);

    /* Block depth counts across includes. */
    {
        char buf[512], expect[700];
        write_file("deep1.conf", nested(buf, sizeof(buf), 31, "include deep2.conf;\n"));
        write_file("deep2.conf", "ok { }\nc { d { } }\n");
        snprintf(expect, sizeof(expect), "%s:2:7: blocks nested too deeply (more than 32 levels)",
                 tpath("deep2.conf"));
        CHECK_STR_EQ(load_fail("deep1.conf"), expect);
    }
}

static void
test_include_cycle(void)
{
    char expect[900];
    struct conf_doc *doc;

    write_file("self.conf", "a;\ninclude self.conf;\n");
    snprintf(expect, sizeof(expect), "%s:2:1: include cycle: %s -> %s", tpath("self.conf"),
             tpath("self.conf"), tpath("self.conf"));
    CHECK_STR_EQ(load_fail("self.conf"), expect);

    write_file("cyc_a.conf", "include cyc_b.conf;\n");
    write_file("cyc_b.conf", "x {\n  include cyc_*.conf;\n}\n");
    snprintf(expect, sizeof(expect), "%s:2:3: include cycle: %s -> %s -> %s", tpath("cyc_b.conf"),
             tpath("cyc_a.conf"), tpath("cyc_b.conf"), tpath("cyc_a.conf"));
    CHECK_STR_EQ(load_fail("cyc_a.conf"), expect);

    /* The same file twice, side by side, is not a cycle. */
    write_file("leaf.conf", "leaf;\n");
    write_file("twice.conf", "include leaf.conf;\ninclude leaf.conf;\n");
    doc = load("twice.conf");
    CHECK(doc != NULL);
    if (doc)
        CHECK_UINT_EQ(doc->root.nchildren, 2);
    conf_doc_free(doc);

    /* conf_doc_parse of text named after a real file knows that file. */
    snprintf(expect, sizeof(expect), "%s:1:1: include cycle: %s -> %s", tpath("self.conf"),
             tpath("self.conf"), tpath("self.conf"));
    CHECK_STR_EQ(fail(conf_doc_parse("include self.conf;", 18, tpath("self.conf"), &last)), expect);
}

static void
test_include_depth(void)
{
    char name[64], text[128], expect[700];
    struct conf_doc *doc;

    /* d0 includes d1 ... includes d16: 16 levels of include, allowed. */
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof(name), "d%d.conf", i);
        snprintf(text, sizeof(text), "l%d;\ninclude d%d.conf;\n", i, i + 1);
        write_file(name, text);
    }
    write_file("d16.conf", "l16;\n");
    doc = load("d0.conf");
    CHECK(doc != NULL);
    if (doc) {
        CHECK_UINT_EQ(doc->root.nchildren, 17);
        CHECK_STR_EQ(doc->root.children[16].name, "l16");
    }
    conf_doc_free(doc);

    /* One more is too many. */
    write_file("d16.conf", "l16;\ninclude d17.conf;\n");
    write_file("d17.conf", "l17;\n");
    snprintf(expect, sizeof(expect), "%s:2:1: includes nested too deeply (more than 16 levels)",
             tpath("d16.conf"));
    CHECK_STR_EQ(load_fail("d0.conf"), expect);
}

/* The effective text (tether -T): words that would read back as something
 * else are quoted, and the text reads back to itself. */
static void
test_dump_round_trip(void)
{
    static const char src[] = "a \"{{x\" \"{}\" \"{#\" {a \"#b\" \"}c\" \"x y\" \"\" a#b;\n"
                              "b 'q\"\\\\z\\n' { c \"{\"; d; }   # comment\n";
    static const char want[] = "# configuration file t.conf\n"
                               "a \"{{x\" \"{}\" \"{#\" {a \"#b\" \"}c\" \"x y\" \"\" a#b;\n"
                               "b \"q\\\"\\\\z\\n\" {\n    c \"{\";\n    d;\n}\n";
    struct err e;
    size_t len, len2;
    struct conf_doc *doc = conf_doc_parse(src, strlen(src), "t.conf", &e);
    CHECK(doc != NULL);
    if (!doc)
        return;
    char *text = conf_doc_text(doc, &len);
    CHECK_STR_EQ(text, want);
    CHECK_UINT_EQ(len, strlen(want));
    struct conf_doc *again = conf_doc_parse(text, len, "t.conf", &e);
    CHECK(again != NULL);
    char *text2 = again ? conf_doc_text(again, &len2) : NULL;
    CHECK_STR_EQ(text2, text);
    CHECK_STR_EQ(again->root.children[0].args[0].s, "{{x");
    CHECK_STR_EQ(again->root.children[1].args[0].s, "q\"\\z\n");
    free(text);
    free(text2);
    conf_doc_free(again);
    conf_doc_free(doc);
}

int
main(void)
{
    const char *base = getenv("TMPDIR");
    char cmd[600];

    snprintf(tmpdir, sizeof(tmpdir), "%s/test_conf_lex.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    RUN(test_design_example);
    RUN(test_comments);
    RUN(test_quotes);
    RUN(test_braces);
    RUN(test_errors);
    RUN(test_nesting_limit);
    RUN(test_nul_byte);
    RUN(test_crlf_and_tabs);
    RUN(test_empty);
    RUN(test_big_file);
    RUN(test_load);
    RUN(test_include_basic);
    RUN(test_include_glob);
    RUN(test_include_in_block);
    RUN(test_include_cycle);
    RUN(test_include_depth);
    RUN(test_dump_round_trip);
    snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return unit_summary();
}
