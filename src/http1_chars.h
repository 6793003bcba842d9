/* SPDX-License-Identifier: MIT */
/* Byte classes of RFC 9110/9112 shared by the head parser and the chunked scanner,
 * so both read "token" and "field value" the same way. Private to src/http1*.c. */
#ifndef TETHER_HTTP1_CHARS_H
#define TETHER_HTTP1_CHARS_H

#include <stdint.h>

#define C_TCHAR  0x01 /* token character (tchar) */
#define C_LINE   0x02 /* may appear inside a head line or value: VCHAR, SP, HTAB, obs-text */
#define C_TARGET 0x04 /* request-target byte: VCHAR without obs-text */
#define C_HOST   0x08 /* reg-name byte: unreserved, sub-delims except ',' */
#define C_HEX    0x10 /* HEXDIG */
#define C_DIGIT  0x20 /* DIGIT */
#define C_QDTEXT 0x40 /* quoted-string byte other than '"' and '\\' */
#define C_OWS    0x80 /* SP, HTAB */

/* The rules, evaluated at compile time for every byte value. */
#define HC_ALPHA(c) ((unsigned)(((c) | 0x20) - 'a') < 26)
#define HC_DIGIT(c) ((unsigned)((c) - '0') < 10)
#define HC_TCHAR(c)                                                                                \
    (HC_ALPHA(c) || HC_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||         \
     (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||          \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define HC_LINE(c)   ((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f))
#define HC_TARGET(c) ((c) > 0x20 && (c) < 0x7f)
#define HC_HOST(c)                                                                                 \
    (HC_ALPHA(c) || HC_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' ||         \
     (c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||          \
     (c) == '*' || (c) == '+' || (c) == ';' || (c) == '=')
#define HC_HEX(c)    (HC_DIGIT(c) || (unsigned)(((c) | 0x20) - 'a') < 6)
#define HC_QDTEXT(c) (HC_LINE(c) && (c) != '"' && (c) != '\\')
#define HC_CLASS(c)                                                                                \
    ((HC_TCHAR(c) ? C_TCHAR : 0) | (HC_LINE(c) ? C_LINE : 0) | (HC_TARGET(c) ? C_TARGET : 0) |     \
     (HC_HOST(c) ? C_HOST : 0) | (HC_HEX(c) ? C_HEX : 0) | (HC_DIGIT(c) ? C_DIGIT : 0) |           \
     (HC_QDTEXT(c) ? C_QDTEXT : 0) | ((c) == ' ' || (c) == '\t' ? C_OWS : 0))
#define HC_R4(b)   HC_CLASS(b), HC_CLASS((b) + 1), HC_CLASS((b) + 2), HC_CLASS((b) + 3)
#define HC_R16(b)  HC_R4(b), HC_R4((b) + 4), HC_R4((b) + 8), HC_R4((b) + 12)
#define HC_R64(b)  HC_R16(b), HC_R16((b) + 16), HC_R16((b) + 32), HC_R16((b) + 48)
#define HC_R256(b) HC_R64(b), HC_R64((b) + 64), HC_R64((b) + 128), HC_R64((b) + 192)

/* One load and one test per byte. */
static const uint8_t http1_cls[256] = {HC_R256(0)};

#endif
