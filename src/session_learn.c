/* SPDX-License-Identifier: MIT */
/* Finding a session id: the id syntax, a top-level member of a (possibly partial)
 * JSON body, and a "{id}" path pattern. Pure: bytes in, slices out. */
#include "config.h"

#include <tether/session.h>

#include <string.h>

/* Nesting deeper than this inside a skipped value is refused (-1) rather than
 * tracked: session responses are shallow, and it keeps the scanner's state small
 * and fixed. */
#define JSON_MAX_DEPTH 256

static bool
id_char(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '.':
    case '_':
    case '~':
    case ':':
    case '@':
    case '+':
    case '=':
    case '-':
        return true;
    default:
        return false;
    }
}

bool
session_id_valid(const char *p, size_t n)
{
    if (n == 0 || n > SESSION_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!id_char((unsigned char)p[i]))
            return false;
    return true;
}

/* ---- JSON scanning ----
 * Every helper returns 1 (done; *i past the item), 0 (the text ended first) or
 * -1 (not JSON). Values are skipped without decoding them. */

static bool
json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t
skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && json_ws(p[i]))
        i++;
    return i;
}

static bool
is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string starting at the quote p[*i]; sets *escaped when it holds a backslash. */
static int
scan_string(const char *p, size_t n, size_t *i, bool *escaped)
{
    size_t k = *i + 1;
    *escaped = false;
    while (k < n) {
        unsigned char c = (unsigned char)p[k];
        if (c == '"') {
            *i = k + 1;
            return 1;
        }
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            k++;
            continue;
        }
        *escaped = true;
        if (k + 1 >= n)
            return 0;
        switch (p[k + 1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            k += 2;
            break;
        case 'u':
            for (size_t h = 0; h < 4; h++) {
                if (k + 2 + h >= n)
                    return 0;
                if (!is_hex(p[k + 2 + h]))
                    return -1;
            }
            k += 6;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* Bytes that may end a scalar (number or literal) in valid JSON. */
static bool
scalar_end(char c)
{
    return json_ws(c) || c == ',' || c == '}' || c == ']';
}

/* JSON number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool
valid_number(const char *p, size_t n)
{
    size_t i = 0;
    if (i < n && p[i] == '-')
        i++;
    if (i >= n)
        return false;
    if (p[i] == '0') {
        i++;
    } else if (p[i] >= '1' && p[i] <= '9') {
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    } else {
        return false;
    }
    if (i < n && p[i] == '.') {
        size_t d = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    return i == n;
}

/* A number or true/false/null at p[*i]. A scalar running to the end of the text
 * may continue in the next chunk ("12" of "123"), so that is 0, not done. */
static int
scan_scalar(const char *p, size_t n, size_t *i, bool *number)
{
    size_t s = *i, k = s;
    while (k < n && !scalar_end(p[k]))
        k++;
    if (k >= n)
        return 0;
    size_t len = k - s;
    *number = false;
    if ((len == 4 && memcmp(p + s, "true", 4) == 0) ||
        (len == 5 && memcmp(p + s, "false", 5) == 0) ||
        (len == 4 && memcmp(p + s, "null", 4) == 0)) {
        *i = k;
        return 1;
    }
    if (!valid_number(p + s, len))
        return -1;
    *number = true;
    *i = k;
    return 1;
}

/* Skip an object or array starting at p[*i], tracking which closer each opener
 * needs in a bit stack (1 = object). Members are not checked beyond brackets,
 * strings and scalars: we only need to find where the value ends. */
static int
skip_container(const char *p, size_t n, size_t *i)
{
    uint64_t stack[JSON_MAX_DEPTH / 64] = {0};
    size_t depth = 0, k = *i;
    while (k < n) {
        char c = p[k];
        if (c == '{' || c == '[') {
            if (depth >= JSON_MAX_DEPTH)
                return -1;
            if (c == '{')
                stack[depth / 64] |= 1ULL << (depth % 64);
            else
                stack[depth / 64] &= ~(1ULL << (depth % 64));
            depth++;
            k++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return -1;
            depth--;
            bool obj = (stack[depth / 64] >> (depth % 64)) & 1;
            if (obj != (c == '}'))
                return -1;
            k++;
            if (depth == 0) {
                *i = k;
                return 1;
            }
        } else if (c == '"') {
            bool esc;
            int rc = scan_string(p, n, &k, &esc);
            if (rc <= 0)
                return rc;
        } else if (json_ws(c) || c == ',' || c == ':') {
            k++;
        } else {
            bool num;
            int rc = scan_scalar(p, n, &k, &num);
            if (rc <= 0)
                return rc;
        }
    }
    return 0;
}

static int
skip_value(const char *p, size_t n, size_t *i)
{
    char c = p[*i];
    bool dummy;
    if (c == '"')
        return scan_string(p, n, i, &dummy);
    if (c == '{' || c == '[')
        return skip_container(p, n, i);
    return scan_scalar(p, n, i, &dummy);
}

/* The value of the member we look for: a string without escapes (so the slice
 * is the id itself, no decoding needed) or a number. */
static int
take_value(const char *p, size_t n, size_t i, struct slice *val)
{
    char c = p[i];
    if (c == '"') {
        size_t k = i;
        bool esc;
        int rc = scan_string(p, n, &k, &esc);
        if (rc <= 0)
            return rc;
        if (esc)
            return -1;
        val->p = p + i + 1;
        val->len = k - i - 2;
        return 1;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        size_t k = i;
        bool num;
        int rc = scan_scalar(p, n, &k, &num);
        if (rc <= 0)
            return rc;
        val->p = p + i;
        val->len = k - i;
        return 1;
    }
    return -1;
}

int
learn_json_field(const char *p, size_t n, const char *name, size_t name_len, struct slice *val)
{
    size_t i = skip_ws(p, n, 0);
    if (i >= n)
        return 0;
    if (p[i] != '{')
        return -1;
    i = skip_ws(p, n, i + 1);
    if (i >= n)
        return 0;
    if (p[i] == '}')
        return 0; /* a complete, empty object: not there */

    for (;;) {
        /* key */
        if (p[i] != '"')
            return -1;
        size_t ks = i;
        bool kesc;
        int rc = scan_string(p, n, &i, &kesc);
        if (rc <= 0)
            return rc;
        /* A key spelled with escapes is compared raw, so it never matches: names
         * tether is configured with are plain ASCII, and servers write them so. */
        bool match = !kesc && i - ks - 2 == name_len && memcmp(p + ks + 1, name, name_len) == 0;

        i = skip_ws(p, n, i);
        if (i >= n)
            return 0;
        if (p[i] != ':')
            return -1;
        i = skip_ws(p, n, i + 1);
        if (i >= n)
            return 0;
        if (match)
            return take_value(p, n, i, val);
        rc = skip_value(p, n, &i);
        if (rc <= 0)
            return rc;

        i = skip_ws(p, n, i);
        if (i >= n)
            return 0;
        if (p[i] == '}')
            return 0; /* the whole object seen: not there */
        if (p[i] != ',')
            return -1;
        i = skip_ws(p, n, i + 1);
        if (i >= n)
            return 0;
    }
}

/* ---- path patterns ---- */

int
path_pattern_parse(struct path_pattern *pat, const char *text, struct err *e)
{
    static const char ph[] = "{id}";
    const char *at = strstr(text, ph);
    memset(pat, 0, sizeof(*pat));
    if (text[0] != '/')
        return err_set(e, "path pattern \"%s\" must start with '/'", text);
    if (!at)
        return err_set(e, "path pattern \"%s\" has no {id} placeholder", text);
    const char *suffix = at + sizeof(ph) - 1;
    size_t plen = (size_t)(at - text), slen = strlen(suffix);
    /* Any other brace is a typo such as "{session}" or a second placeholder. */
    if (memchr(text, '{', plen) || memchr(text, '}', plen) || strchr(suffix, '{') ||
        strchr(suffix, '}'))
        return err_set(e, "path pattern \"%s\" must contain exactly one {id} and no other braces",
                       text);
    if (plen >= sizeof(pat->prefix))
        return err_set(e, "path pattern \"%s\": text before {id} longer than %zu bytes", text,
                       sizeof(pat->prefix) - 1);
    if (slen >= sizeof(pat->suffix))
        return err_set(e, "path pattern \"%s\": text after {id} longer than %zu bytes", text,
                       sizeof(pat->suffix) - 1);
    memcpy(pat->prefix, text, plen);
    memcpy(pat->suffix, suffix, slen);
    pat->prefix_len = (uint16_t)plen;
    pat->suffix_len = (uint16_t)slen;
    return 0;
}

int
path_pattern_match(const struct path_pattern *pat, const char *path, size_t n, struct slice *id)
{
    if (n < pat->prefix_len || memcmp(path, pat->prefix, pat->prefix_len) != 0)
        return 0;
    /* The id ends at the suffix's first byte, and always at '/' or '?' (which no
     * id contains), so a query never becomes part of the id. */
    size_t s = pat->prefix_len, k = s;
    char stop = pat->suffix_len ? pat->suffix[0] : '/';
    while (k < n && path[k] != stop && path[k] != '/' && path[k] != '?')
        k++;
    if (!session_id_valid(path + s, k - s))
        return 0;
    bool ok;
    if (pat->suffix_len == 0)
        ok = true;
    else if (n - k >= pat->suffix_len && memcmp(path + k, pat->suffix, pat->suffix_len) == 0)
        ok = true;
    else /* "/webhook/{id}/" also takes "/webhook/abc" and "/webhook/abc?x" */
        ok = pat->suffix_len == 1 && pat->suffix[0] == '/' && (k == n || path[k] == '?');
    if (!ok)
        return 0;
    id->p = path + s;
    id->len = k - s;
    return 1;
}
