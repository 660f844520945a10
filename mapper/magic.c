#include "magic.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

enum kind { K_NONE, K_PNG, K_JPEG, K_GIF, K_WEBP, K_PDF };

static enum kind kind_of(const char *type) {
    static const struct {
        const char *type;
        enum kind kind;
    } table[] = {
        {"image/png", K_PNG}, {"image/jpeg", K_JPEG}, {"image/jpg", K_JPEG},
        {"image/gif", K_GIF}, {"image/webp", K_WEBP}, {"application/pdf", K_PDF},
    };

    if (!type)
        return K_NONE;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcasecmp(type, table[i].type) == 0)
            return table[i].kind;
    return K_NONE;
}

bool magic_is_known(const char *type) {
    return kind_of(type) != K_NONE;
}

static bool starts(const uint8_t *d, size_t len, const void *sig, size_t n) {
    return len >= n && memcmp(d, sig, n) == 0;
}

static bool ends(const uint8_t *d, size_t len, const void *tail, size_t n) {
    return len >= n && memcmp(d + len - n, tail, n) == 0;
}

static bool is_png(const uint8_t *d, size_t len) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    /* An empty IEND chunk: length 0, type, CRC. */
    static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};

    /* The signature, an IHDR chunk (8 + 13 + 4 bytes) and IEND at least. */
    return len >= 8 + 25 + 12 && starts(d, len, sig, 8) && memcmp(d + 12, "IHDR", 4) == 0 &&
           ends(d, len, iend, 12);
}

static bool is_jpeg(const uint8_t *d, size_t len) {
    static const uint8_t soi[3] = {0xff, 0xd8, 0xff};
    size_t n = len;

    if (len < 6 || !starts(d, len, soi, 3))
        return false;
    /* Some encoders pad after the end-of-image marker; allow a little. */
    for (size_t pad = 0; pad < 64 && n >= 5; pad++, n--) {
        if (d[n - 2] == 0xff && d[n - 1] == 0xd9)
            return true;
        if (d[n - 1] != 0 && d[n - 1] != '\n' && d[n - 1] != '\r')
            return false;
    }
    return false;
}

static bool is_gif(const uint8_t *d, size_t len) {
    return len >= 14 && (starts(d, len, "GIF87a", 6) || starts(d, len, "GIF89a", 6)) &&
           d[len - 1] == 0x3b;
}

static bool is_webp(const uint8_t *d, size_t len) {
    uint32_t riff;

    if (len < 20 || !starts(d, len, "RIFF", 4) || memcmp(d + 8, "WEBP", 4) != 0)
        return false;
    riff = (uint32_t)d[4] | (uint32_t)d[5] << 8 | (uint32_t)d[6] << 16 | (uint32_t)d[7] << 24;
    /* The RIFF size counts everything after itself, padded to even. */
    return (size_t)riff + 8 == len || (size_t)riff + 9 == len;
}

static bool is_pdf(const uint8_t *d, size_t len) {
    size_t from = len > 1024 ? len - 1024 : 0;

    return len >= 10 && starts(d, len, "%PDF-", 5) && memmem(d + from, len - from, "%%EOF", 5);
}

bool magic_matches(const char *type, const void *data, size_t len) {
    const uint8_t *d = data;

    switch (kind_of(type)) {
    case K_PNG:
        return is_png(d, len);
    case K_JPEG:
        return is_jpeg(d, len);
    case K_GIF:
        return is_gif(d, len);
    case K_WEBP:
        return is_webp(d, len);
    case K_PDF:
        return is_pdf(d, len);
    case K_NONE:
        break;
    }
    return true;
}
