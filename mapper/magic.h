/* Recognising a file by its bytes rather than by the name a client gave it.
 *
 * A declared media type is believed only when the body starts with that
 * format's signature and ends the way a complete file of that format ends, so
 * that a truncated upload or a text file sent as image/png is refused:
 *   image/png        \x89PNG\r\n\x1a\n ... an IEND chunk
 *   image/jpeg       \xff\xd8\xff ... \xff\xd9 (end of image)
 *   image/gif        GIF87a or GIF89a ... the 0x3b trailer
 *   image/webp       RIFF <size> WEBP, the RIFF size matching the body
 *   application/pdf  %PDF- ... %%EOF in the last 1 KiB
 */
#ifndef FPESA_MAPPER_MAGIC_H
#define FPESA_MAPPER_MAGIC_H

#include <stdbool.h>
#include <stddef.h>

/* True when type (borrowed; a bare media type such as "image/png", compared
 * case-insensitively) is one whose bytes magic_matches can check. */
bool magic_is_known(const char *type);

/* True when data[0..len) (borrowed) is a complete file of type as far as its
 * signature and its ending tell. Always true for a type magic_is_known does
 * not know: there is nothing to check it against. */
bool magic_matches(const char *type, const void *data, size_t len);

#endif
