/* File signatures: a declared type is believed only for complete files. */
#include "../../../mapper/magic.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

/* A 1x1 PNG (the smallest complete one is 67 bytes). */
static const uint8_t png[] = {
    0x89, 'P',  'N',  'G',  '\r', '\n', 0x1a, '\n', 0,    0,    0,   13,  'I',  'H',  'D',  'R',  0,
    0,    0,    1,    0,    0,    0,    1,    8,    6,    0,    0,   0,   0x1f, 0x15, 0xc4, 0x89, 0,
    0,    0,    10,   'I',  'D',  'A',  'T',  0x78, 0x9c, 0x63, 0,   1,   0,    0,    5,    0,    1,
    0x0d, 0x0a, 0x2d, 0xb4, 0,    0,    0,    0,    'I',  'E',  'N', 'D', 0xae, 0x42, 0x60, 0x82,
};

static const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J',  'F',
                               'I',  'F',  0,    1,    2, 3,  0xff, 0xd9};

Test(magic, known_types) {
    cr_assert(magic_is_known("image/png"));
    cr_assert(magic_is_known("IMAGE/JPEG"));
    cr_assert(magic_is_known("image/gif"));
    cr_assert(magic_is_known("image/webp"));
    cr_assert(magic_is_known("application/pdf"));
    cr_assert_not(magic_is_known("text/csv"));
    cr_assert_not(magic_is_known(NULL));
    /* Nothing to check an unknown type against. */
    cr_assert(magic_matches("text/csv", "anything", 8));
}

Test(magic, png) {
    cr_assert(magic_matches("image/png", png, sizeof(png)));
    for (size_t n = 0; n < sizeof(png); n++)
        cr_assert_not(magic_matches("image/png", png, n), "truncated to %zu accepted", n);
    cr_assert_not(magic_matches("image/jpeg", png, sizeof(png)));
    cr_assert_not(
        magic_matches("image/png", "hello, I am text pretending to be a png file ok!", 48));
}

Test(magic, jpeg) {
    uint8_t padded[sizeof(jpeg) + 2];

    cr_assert(magic_matches("image/jpeg", jpeg, sizeof(jpeg)));
    cr_assert(magic_matches("image/jpg", jpeg, sizeof(jpeg)));
    cr_assert_not(magic_matches("image/jpeg", jpeg, sizeof(jpeg) - 1));
    cr_assert_not(magic_matches("image/jpeg", jpeg, 3));
    memcpy(padded, jpeg, sizeof(jpeg));
    padded[sizeof(jpeg)] = '\r';
    padded[sizeof(jpeg) + 1] = '\n';
    cr_assert(magic_matches("image/jpeg", padded, sizeof(padded)));
    cr_assert_not(magic_matches("image/png", jpeg, sizeof(jpeg)));
}

Test(magic, gif_webp_pdf) {
    static const char gif[] = "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00;";
    static const char webp[] = "RIFF\x0c\x00\x00\x00WEBPVP8 ";
    static const char pdf[] = "%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n";

    cr_assert(magic_matches("image/gif", gif, sizeof(gif) - 1));
    cr_assert_not(magic_matches("image/gif", gif, sizeof(gif) - 2));
    cr_assert_not(magic_matches("image/gif", "GIF90a........;", 15));
    cr_assert(magic_matches("image/webp", webp, 20));
    cr_assert_not(magic_matches("image/webp", webp, 19));
    cr_assert(magic_matches("application/pdf", pdf, sizeof(pdf) - 1));
    cr_assert_not(magic_matches("application/pdf", pdf, 20));
    cr_assert_not(magic_matches("application/pdf", "%PDX-1.4 %%EOF", 14));
}
