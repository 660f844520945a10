#include "transform.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <vips/vips.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_rc = -1;
static const char *init_prog = "fpesa-handler";

/* libvips warns through GLib for every damaged row of a bad upload: the
 * failure is reported once, as the transform's error, instead. */
static void quiet(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data) {
    (void)domain, (void)level, (void)message, (void)data;
}

static void start(void) {
    init_rc = VIPS_INIT(init_prog) == 0 ? 0 : -1;
    if (init_rc == 0) {
        /* Decoding an upload must not touch the file system or spend memory
         * on caching results nobody asks for twice. */
        vips_cache_set_max(0);
        g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE, quiet, NULL);
    }
}

int transform_init(const char *prog) {
    if (prog)
        init_prog = prog;
    pthread_once(&once, start);
    return init_rc;
}

/* The decode budget (see transform.h). */
static pthread_mutex_t budget_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t budget_cv = PTHREAD_COND_INITIALIZER;
static size_t budget_used;

static void budget_take(size_t bytes) {
    pthread_mutex_lock(&budget_mu);
    while (budget_used + bytes > TRANSFORM_DECODE_BUDGET)
        pthread_cond_wait(&budget_cv, &budget_mu);
    budget_used += bytes;
    pthread_mutex_unlock(&budget_mu);
}

static void budget_give(size_t bytes) {
    pthread_mutex_lock(&budget_mu);
    budget_used -= bytes;
    pthread_cond_broadcast(&budget_cv);
    pthread_mutex_unlock(&budget_mu);
}

void transform_free(void *buf) {
    g_free(buf);
}

static void take_error(char *err, size_t errlen) {
    const char *e = vips_error_buffer();
    size_t l;

    snprintf(err, errlen, "%s",
             e && *e ? e : "the image could not be decoded (corrupt or truncated data)");
    l = strlen(err);
    /* One line: libvips ends each message with a newline. */
    for (size_t i = 0; i < l; i++)
        if (err[i] == '\n')
            err[i] = i + 1 == l ? '\0' : ' ';
    vips_error_clear();
}

int transform_thumbnail(const void *data, size_t len, int size, const char *stamp, void **out,
                        size_t *out_len, const char **out_type, char *err, size_t errlen) {
    VipsImage *base = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(base), 14);
    const char *loader = vips_foreign_find_load_buffer(data, len);
    VipsImage *img, *final;
    double white[3] = {255, 255, 255}, black[3] = {0, 0, 0};
    int is_jpeg, rc = -1, x, y, tw, th;
    size_t reserved = 0;
    double need;

    *out = NULL;
    *out_len = 0;
    if (!loader) {
        take_error(err, errlen);
        goto out;
    }
    is_jpeg = strcasestr(loader, "jpeg") != NULL;
    if (!is_jpeg && !strcasestr(loader, "png")) {
        snprintf(err, errlen, "not a PNG or JPEG image (%s)", loader);
        goto out;
    }
    /* The header first: a small file may claim a huge picture. */
    t[0] = vips_image_new_from_buffer(data, len, "", "fail_on", VIPS_FAIL_ON_ERROR, "access",
                                      VIPS_ACCESS_SEQUENTIAL, NULL);
    if (!t[0])
        goto out_vips;
    if ((double)t[0]->Xsize * t[0]->Ysize > TRANSFORM_MAX_PIXELS) {
        snprintf(err, errlen, "the picture is too large (%dx%d pixels, at most %d)", t[0]->Xsize,
                 t[0]->Ysize, TRANSFORM_MAX_PIXELS);
        goto out;
    }
    /* What decoding will hold, from the header alone: refused when more
     * than the whole budget, else waited for. */
    need = (double)t[0]->Xsize * t[0]->Ysize * t[0]->Bands * vips_format_sizeof(t[0]->BandFmt);
    if (need > TRANSFORM_DECODE_BUDGET) {
        snprintf(err, errlen,
                 "the picture would take %.0f MiB decoded (%dx%d, %d bands), more than the "
                 "decode budget of %u MiB",
                 need / 1048576.0, t[0]->Xsize, t[0]->Ysize, t[0]->Bands,
                 TRANSFORM_DECODE_BUDGET / 1048576u);
        goto out;
    }
    reserved = (size_t)need;
    budget_take(reserved);
    /* Decoded whole before anything else, so that damaged pixel data is an
     * error here rather than a picture with grey or garbage rows. */
    t[1] = vips_image_copy_memory(t[0]);
    if (!t[1] ||
        vips_thumbnail_image(t[1], &t[2], size, "height", size, "size", VIPS_SIZE_DOWN, NULL) ||
        vips_colourspace(t[2], &t[3], VIPS_INTERPRETATION_sRGB, NULL))
        goto out_vips;
    img = t[3];
    if (vips_image_hasalpha(img)) {
        if (vips_flatten(img, &t[11], "background", vips_array_double_newv(3, 255.0, 255.0, 255.0),
                         NULL))
            goto out_vips;
        img = t[11];
    }
    if (vips_cast_uchar(img, &t[12], NULL))
        goto out_vips;
    img = t[12];
    /* The stamp: white text as a mask, at most the picture's width. */
    if (vips_text(&t[4], stamp, "width", img->Xsize > 8 ? img->Xsize - 4 : 4, "dpi", 72, "font",
                  "sans 10", NULL))
        goto out_vips;
    /* Cut to what fits: a picture a few pixels wide keeps the part of the
     * stamp that fits on it. */
    x = img->Xsize > 6 ? 2 : 0;
    y = img->Ysize - t[4]->Ysize - 2 > 0 ? img->Ysize - t[4]->Ysize - 2 : 0;
    tw = t[4]->Xsize < img->Xsize - x - 1 ? t[4]->Xsize : img->Xsize - x - 1;
    th = t[4]->Ysize < img->Ysize - y - 1 ? t[4]->Ysize : img->Ysize - y - 1;
    if (tw < 1 || th < 1) {
        final = img; /* one pixel wide or high: no room for any of it */
    } else {
        if (vips_extract_area(t[4], &t[13], 0, 0, tw, th, NULL) ||
            vips_embed(t[13], &t[5], x, y, img->Xsize, img->Ysize, NULL))
            goto out_vips;
        /* White text over its black shadow, one pixel down and right, so the
         * stamp reads on light and dark pictures alike. */
        if (vips_embed(t[13], &t[8], x + 1, y + 1, img->Xsize, img->Ysize, NULL))
            goto out_vips;
        t[9] = vips_image_new_from_image(img, black, 3);
        if (!t[9] || vips_ifthenelse(t[8], t[9], img, &t[10], "blend", TRUE, NULL))
            goto out_vips;
        t[6] = vips_image_new_from_image(img, white, 3);
        if (!t[6] || vips_ifthenelse(t[5], t[6], t[10], &t[7], "blend", TRUE, NULL))
            goto out_vips;
        final = t[7];
    }
    if (is_jpeg ? vips_jpegsave_buffer(final, out, out_len, "Q", 90, "strip", TRUE, NULL)
                : vips_pngsave_buffer(final, out, out_len, "strip", TRUE, NULL))
        goto out_vips;
    *out_type = is_jpeg ? "image/jpeg" : "image/png";
    rc = 0;
    goto out;

out_vips:
    take_error(err, errlen);
out:
    g_object_unref(base);
    if (reserved)
        budget_give(reserved);
    return rc;
}
