/* What the exact JSON reader (jsontext.c) and its UTF-8 helpers
 * (jsontext_utf8.c) share; not for other callers. */
#ifndef FPESA_COMMON_JSONTEXT_INT_H
#define FPESA_COMMON_JSONTEXT_INT_H

#include <stddef.h>

/* Length of the UTF-8 sequence at s[0..n) (first byte >= 0x80), or 0 when it
 * is not valid UTF-8 (overlong, surrogate, beyond U+10FFFF or cut). */
size_t jtext_utf8_seq(const unsigned char *s, size_t n);

#endif
