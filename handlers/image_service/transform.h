/* The image transform of the image example: a thumbnail with the time
 * stamped on it, with libvips. */
#ifndef IMAGE_TRANSFORM_H
#define IMAGE_TRANSFORM_H

#include <stddef.h>

/* Largest picture decoded: 40 megapixels (about 160 MB as RGBA). */
#define TRANSFORM_MAX_PIXELS 40000000

/* Bytes of decoded pixels all transforms of a process may hold at once.
 * A transform reserves its picture's decoded size (width x height x bands x
 * bytes per band, read from the header) before decoding and gives it back
 * when done; past the budget it waits for others to finish, and a picture
 * larger than the whole budget is refused without being decoded. So the
 * memory of a host stays bounded whatever is uploaded and however many
 * transform instances run. */
#define TRANSFORM_DECODE_BUDGET (192u * 1024 * 1024)

/* Starts libvips once per process (safe to call from every init). 0 or -1. */
int transform_init(const char *prog);

/* Makes a thumbnail of the image in data[0..len) (borrowed; PNG or JPEG, as
 * libvips detects it by its bytes) that fits in size x size pixels, writes
 * stamp (borrowed UTF-8 text) on its lower left corner and encodes it in the
 * original's format. On success stores a new buffer in *out (free with
 * transform_free), its length in *out_len and its media type
 * (static) in *out_type, and returns 0; on failure returns -1 with libvips'
 * reason in err. */
int transform_thumbnail(const void *data, size_t len, int size, const char *stamp, void **out,
                        size_t *out_len, const char **out_type, char *err, size_t errlen);

/* Frees a buffer transform_thumbnail returned. NULL is fine. */
void transform_free(void *buf);

#endif
