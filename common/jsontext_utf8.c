/* UTF-8 for the exact JSON reader and for the texts put into JSON answers:
 * the validity of one sequence, escaping bytes into a JSON string, and
 * cleaning bytes into valid UTF-8 (jsontext.h). */
#include "jsontext.h"
#include "jsontext_int.h"

#include <string.h>

size_t jtext_utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];

    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && s[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && s[1] >= 0xa0)
            return 0; /* a surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && s[1] < 0x90)
            return 0;
        if (c == 0xf4 && s[1] >= 0x90)
            return 0;
        return 4;
    }
    return 0;
}

size_t jtext_escape(char *dst, size_t cap, const char *src, size_t len) {
    static const char hex[] = "0123456789abcdef";
    size_t w = 0, i = 0;

    if (cap == 0)
        return 0;
    while (i < len) {
        unsigned char ch = (unsigned char)src[i];
        char tmp[8];
        size_t n, adv = 1;

        if (ch == '"' || ch == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)ch;
            n = 2;
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(tmp, "\\u00", 4);
            tmp[4] = hex[ch >> 4];
            tmp[5] = hex[ch & 15];
            n = 6;
        } else if (ch < 0x80) {
            tmp[0] = (char)ch;
            n = 1;
        } else {
            adv = jtext_utf8_seq((const unsigned char *)src + i, len - i);
            if (adv == 0) {
                adv = 1;
                memcpy(tmp, "\xef\xbf\xbd", 3); /* U+FFFD */
                n = 3;
            } else {
                memcpy(tmp, src + i, adv);
                n = adv;
            }
        }
        if (w + n + 1 > cap)
            break;
        memcpy(dst + w, tmp, n);
        w += n;
        i += adv;
    }
    dst[w] = '\0';
    return w;
}

size_t jtext_utf8_clean(char *dst, size_t cap, const char *src, size_t len) {
    size_t w = 0, i = 0;

    if (cap == 0)
        return 0;
    while (i < len) {
        unsigned char ch = (unsigned char)src[i];
        size_t n = 1, adv = 1;
        const char *from = src + i;

        if (ch == 0) {
            from = "\xef\xbf\xbd";
            n = 3;
        } else if (ch >= 0x80) {
            adv = jtext_utf8_seq((const unsigned char *)src + i, len - i);
            if (adv == 0) {
                adv = 1;
                from = "\xef\xbf\xbd"; /* U+FFFD */
                n = 3;
            } else {
                n = adv;
            }
        }
        if (w + n + 1 > cap)
            break;
        memcpy(dst + w, from, n);
        w += n;
        i += adv;
    }
    dst[w] = '\0';
    return w;
}
