/* Attention-map PNGs: the colour map's anchors, the layout, and files decoded back with libpng
   (size, the colour of known cells, masked cells grey). Built without libpng, the writers must
   answer CLATTN_UNSUPPORTED, and the rest still runs. PNGs go to the working directory and are
   removed. */
#include "host/viz/viz.h"

#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#ifdef CLATTN_HAVE_PNG
#include <png.h>
#endif

static const unsigned char GREY[3] = {160, 160, 160};
static const unsigned char VIRIDIS_0[3] = {68, 1, 84};
static const unsigned char VIRIDIS_HALF[3] = {38, 130, 142};
static const unsigned char VIRIDIS_1[3] = {253, 231, 37};

#define assert_rgb(got, want)                                                                 \
    do {                                                                                      \
        const unsigned char *g_ = (got), *w_ = (want);                                        \
        if (memcmp(g_, w_, 3) != 0)                                                           \
            fail_msg("colour (%d,%d,%d), expected (%d,%d,%d)", g_[0], g_[1], g_[2], w_[0],     \
                     w_[1], w_[2]);                                                           \
    } while (0)

/* A causal 5 x 7 map (rows != cols, to catch a transpose): row i sees keys j <= i + 2, weights
   rising along the row; masked cells are exactly 0. The largest value is 0.8 at (4, 6). */
static void causal_map(float *w)
{
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 7; j++)
            w[i * 7 + j] = j <= i + 2 ? 0.05f * (float)(j + 1) + 0.01f * (float)i : 0.0f;
    w[4 * 7 + 6] = 0.8f;
}

/* Decodes path as RGB; *rgb is malloc'ed. Returns 0 when it is not a readable PNG. */
static int decode(const char *path, unsigned char **rgb, int *w, int *h)
{
#ifdef CLATTN_HAVE_PNG
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return 0;
    img.format = PNG_FORMAT_RGB;
    *rgb = malloc(PNG_IMAGE_SIZE(img));
    assert_non_null(*rgb);
    if (!png_image_finish_read(&img, NULL, *rgb, 0, NULL)) {
        free(*rgb);
        return 0;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    return 1;
#else
    (void)path, (void)rgb, (void)w, (void)h;
    return 0;
#endif
}

static const unsigned char *pixel(const unsigned char *rgb, int w, int x, int y)
{
    return rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
}

/* Writes, or checks that a build without libpng refuses; returns 1 when a file was written. */
static int write_or_unsupported(clattn_status st, const char *err)
{
#ifdef CLATTN_HAVE_PNG
    if (st != CLATTN_SUCCESS)
        fail_msg("write failed: %s", err);
    return 1;
#else
    assert_int_equal(st, CLATTN_UNSUPPORTED);
    assert_non_null(strstr(err, "libpng"));
    return 0;
#endif
}

static void test_colour_map(void **state)
{
    (void)state;
    unsigned char c[3];
    clattn_heatmap_colour(0.0f, c);
    assert_rgb(c, VIRIDIS_0);
    clattn_heatmap_colour(0.5f, c);
    assert_rgb(c, VIRIDIS_HALF);
    clattn_heatmap_colour(1.0f, c);
    assert_rgb(c, VIRIDIS_1);
    clattn_heatmap_colour(1.0f / 16.0f, c);   /* half way between the first two control points */
    assert_rgb(c, ((const unsigned char[3]){70, 21, 102}));
    clattn_heatmap_colour(-3.0f, c);
    assert_rgb(c, VIRIDIS_0);
    clattn_heatmap_colour(7.0f, c);
    assert_rgb(c, VIRIDIS_1);
    clattn_heatmap_colour(NAN, c);
    assert_rgb(c, ((const unsigned char[3]){255, 0, 255}));
    /* the grey of masked cells is no colour of the map */
    for (int i = 0; i <= 1000; i++) {
        clattn_heatmap_colour((float)i / 1000.0f, c);
        assert_false(abs(c[0] - GREY[0]) + abs(c[1] - GREY[1]) + abs(c[2] - GREY[2]) < 60);
    }
}

/* The whole file: decodes, has the layout's size, every cell's centre has its weight's colour. */
static void test_single_map(void **state)
{
    (void)state;
    const char *path = "test_heatmap_single.png";
    float w[35];
    char err[256] = "";
    clattn_heatmap_geometry g;
    causal_map(w);
    clattn_heatmap_opts o = {0};
    o.title = "causal";
    clattn_status st = clattn_heatmap_write_png(&o, w, 5, 7, path, &g, err, sizeof err);
    if (!write_or_unsupported(st, err))
        return;
    assert_true(g.vmin == 0.0f && g.vmax == 0.8f);   /* auto scale: 0 .. data max */
    assert_true(g.cell_px >= 4);
    assert_int_equal(g.map_w, 7 * g.cell_px);
    assert_int_equal(g.map_h, 5 * g.cell_px);
    assert_true(g.width <= 2000 && g.height <= 2000);

    unsigned char *rgb = NULL;
    int W, H;
    assert_true(decode(path, &rgb, &W, &H));
    assert_int_equal(W, g.width);
    assert_int_equal(H, g.height);
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 7; c++) {
            unsigned char want[3];
            int x, y;
            clattn_heatmap_cell_centre(&g, 0, r, c, &x, &y);
            assert_int_equal(x, g.map_x + c * g.cell_px + (g.cell_px - 1) / 2);
            assert_int_equal(y, g.map_y + r * g.cell_px + (g.cell_px - 1) / 2);
            clattn_heatmap_colour(w[r * 7 + c] / 0.8f, want);
            assert_rgb(pixel(rgb, W, x, y), w[r * 7 + c] == 0.0f ? GREY : want);
            /* the cell is a solid block: its corners match its centre */
            assert_memory_equal(pixel(rgb, W, g.map_x + c * g.cell_px, g.map_y + r * g.cell_px),
                                pixel(rgb, W, x, y), 3);
            assert_memory_equal(pixel(rgb, W, g.map_x + (c + 1) * g.cell_px - 1,
                                      g.map_y + (r + 1) * g.cell_px - 1), pixel(rgb, W, x, y), 3);
        }
    int x, y;
    clattn_heatmap_cell_centre(&g, 0, 4, 6, &x, &y);   /* the maximum */
    assert_rgb(pixel(rgb, W, x, y), VIRIDIS_1);
    clattn_heatmap_cell_centre(&g, 0, 0, 5, &x, &y);   /* masked by the causal rule */
    assert_rgb(pixel(rgb, W, x, y), GREY);

    /* the file holds exactly what the renderer drew */
    unsigned char *drawn = NULL;
    assert_int_equal(clattn_heatmap_render(&o, w, 1, 5, 7, NULL, &drawn, NULL, err, sizeof err),
                     CLATTN_SUCCESS);
    assert_memory_equal(drawn, rgb, (size_t)W * (size_t)H * 3);
    free(drawn);
    free(rgb);
    remove(path);
}

/* A fixed scale, zeros as values, labels on both axes, a chosen cell size. */
static void test_fixed_scale_and_labels(void **state)
{
    (void)state;
    const char *path = "test_heatmap_fixed.png";
    const float w[6] = {0.5f, 0.0f, 2.0f, 0.25f, -1.0f, 1.0f};
    const char *rows[2] = {"query", "na\xc3\xafve-and-rather-long-token"};
    const char *cols[3] = {"k0", NULL, "\xe2\x96\x81the"};
    char err[256] = "";
    clattn_heatmap_geometry g;
    clattn_heatmap_opts o = {0};
    o.vmin = 0.0f;
    o.vmax = 1.0f;
    o.zero_as_value = 1;
    o.cell_px = 20;
    o.row_labels = rows;
    o.col_labels = cols;
    o.label_chars = 8;
    clattn_status st = clattn_heatmap_write_png(&o, w, 2, 3, path, &g, err, sizeof err);
    if (!write_or_unsupported(st, err))
        return;
    assert_int_equal(g.cell_px, 20);
    assert_true(g.vmin == 0.0f && g.vmax == 1.0f);
    unsigned char *rgb = NULL;
    int W, H, x, y;
    assert_true(decode(path, &rgb, &W, &H));
    assert_int_equal(W, g.width);
    assert_int_equal(H, g.height);
    const unsigned char *want[6] = {VIRIDIS_HALF, VIRIDIS_0, VIRIDIS_1, NULL, VIRIDIS_0, VIRIDIS_1};
    for (int i = 0; i < 6; i++) {
        if (!want[i])
            continue;
        clattn_heatmap_cell_centre(&g, 0, i / 3, i % 3, &x, &y);
        assert_rgb(pixel(rgb, W, x, y), want[i]);
    }
    /* labels sit outside the map: something is drawn left of row 1 and below column 0 */
    int ink_left = 0, ink_below = 0;
    for (int xx = 0; xx < g.map_x - 2; xx++)
        ink_left += pixel(rgb, W, xx, g.map_y + 30)[0] < 128;
    for (int yy = g.map_y + g.map_h + 2; yy < H; yy++)
        ink_below += pixel(rgb, W, g.map_x + 10, yy)[0] < 128;
    assert_true(ink_left > 0);
    assert_true(ink_below > 0);
    free(rgb);
    remove(path);
}

/* Several heads in one image with one scale; map m's cells sit at tile offsets. */
static void test_grid(void **state)
{
    (void)state;
    const char *path = "test_heatmap_grid.png";
    enum { N = 5, R = 4, C = 6 };
    float w[N * R * C];
    char err[256] = "";
    clattn_heatmap_geometry g;
    for (int i = 0; i < N * R * C; i++)
        w[i] = (float)(i % 17) / 16.0f;
    w[3 * R * C + 2 * C + 5] = 2.0f;   /* the maximum of all maps, in head 3 */
    clattn_heatmap_opts o = {0};
    o.grid_cols = 3;
    clattn_status st = clattn_heatmap_write_grid_png(&o, w, N, R, C, NULL, path, &g, err, sizeof err);
    if (!write_or_unsupported(st, err))
        return;
    assert_int_equal(g.grid_cols, 3);
    assert_int_equal(g.grid_rows, 2);
    assert_true(g.vmax == 2.0f);
    unsigned char *rgb = NULL;
    int W, H, x, y;
    assert_true(decode(path, &rgb, &W, &H));
    assert_int_equal(W, g.width);
    assert_int_equal(H, g.height);
    for (int m = 0; m < N; m++)
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) {
                float v = w[(m * R + r) * C + c];
                unsigned char want[3];
                clattn_heatmap_colour(v / 2.0f, want);
                clattn_heatmap_cell_centre(&g, m, r, c, &x, &y);
                assert_rgb(pixel(rgb, W, x, y), v == 0.0f ? GREY : want);
            }
    clattn_heatmap_cell_centre(&g, 3, 2, 5, &x, &y);
    assert_rgb(pixel(rgb, W, x, y), VIRIDIS_1);
    free(rgb);
    remove(path);
}

/* A long sequence is sampled to fit the cap, with square cells. */
static void test_sampled(void **state)
{
    (void)state;
    enum { R = 3000, C = 2500 };
    float *w = malloc(sizeof(float) * R * C);
    unsigned char *rgb = NULL;
    char err[256] = "";
    clattn_heatmap_geometry g;
    assert_non_null(w);
    for (size_t i = 0; i < (size_t)R * C; i++)
        w[i] = (float)(i % 7 + 1);
    assert_int_equal(clattn_heatmap_render(NULL, w, 1, R, C, NULL, &rgb, &g, err, sizeof err),
                     CLATTN_SUCCESS);
    assert_true(g.width <= 2000 && g.height <= 2000);
    assert_int_equal(g.cell_px, 0);
    assert_true(abs(g.map_w * R - g.map_h * C) <= R + C);   /* aspect kept */
    for (int r = 0; r < R; r += 997)
        for (int c = 0; c < C; c += 811) {
            int x, y;
            unsigned char want[3];
            clattn_heatmap_cell_centre(&g, 0, r, c, &x, &y);
            const int px = x - g.map_x, py = y - g.map_y;
            /* pixel (px, py) shows cell (py*R/map_h, px*C/map_w), which is (r, c) when the cell
               got a pixel at all */
            const int rr = (int)((long)py * R / g.map_h), cc = (int)((long)px * C / g.map_w);
            clattn_heatmap_value_colour(NULL, &g, w[(size_t)rr * C + (size_t)cc], want);
            assert_rgb(pixel(rgb, g.width, x, y), want);
        }
    free(rgb);
    free(w);
}

static void test_errors(void **state)
{
    (void)state;
    float w[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    char err[256] = "";
    unsigned char *rgb = (unsigned char *)&err;   /* must come back NULL on failure */
    clattn_heatmap_opts o = {0};
    assert_int_equal(clattn_heatmap_write_png(NULL, w, 0, 2, "x.png", NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_heatmap_write_png(NULL, NULL, 2, 2, "x.png", NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_heatmap_write_png(NULL, w, 2, 2, NULL, NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    o.vmax = INFINITY;
    assert_int_equal(clattn_heatmap_render(&o, w, 1, 2, 2, NULL, &rgb, NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    assert_null(rgb);
    o.vmax = 0.0f;
    o.cell_px = -1;
    assert_int_equal(clattn_heatmap_layout(&o, w, 1, 2, 2, NULL, NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "cell_px"));

    const char *bad = "no-such-directory-for-clattn/map.png";
    clattn_status st = clattn_heatmap_write_png(NULL, w, 2, 2, bad, NULL, err, sizeof err);
#ifdef CLATTN_HAVE_PNG
    assert_int_equal(st, CLATTN_IO_ERROR);
    assert_non_null(strstr(err, bad));
#else
    assert_int_equal(st, CLATTN_UNSUPPORTED);
#endif
    FILE *f = fopen(bad, "rb");
    assert_null(f);
}

/* The bytes of path (malloc'ed), or NULL when it cannot be read. */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    if (!f)
        return NULL;
    buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

/* Entries of the working directory whose names start with prefix and hold ".tmp". */
static int temporaries(const char *prefix)
{
    DIR *d = opendir(".");
    int n = 0;
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        n += !strncmp(e->d_name, prefix, strlen(prefix)) && strstr(e->d_name, ".tmp");
    closedir(d);
    return n;
}

/* A write that fails late, mid-image, leaves what was at the path byte for byte, and no temporary
   beside it. The failure is the file size limit (RLIMIT_FSIZE binds root too, unlike a read-only
   folder): past its first 512 bytes the image cannot be written. A symbolic link at the path is
   replaced by the image, never written through. */
static void test_failed_write_keeps_old_file(void **state)
{
    (void)state;
#ifndef CLATTN_HAVE_PNG
    skip();
#else
    const char *path = "test_heatmap_keep.png", *link_path = "test_heatmap_keep_link.png";
    const char *victim = "test_heatmap_keep_victim.txt";
    enum { H = 2, LQ = 30, LK = 40 };
    unsigned char old[4000], *now;
    size_t len = 0;
    float probs[H * LQ * LK];
    for (size_t i = 0; i < sizeof old; i++)
        old[i] = (unsigned char)(i * 7 + 3);
    for (int i = 0; i < H * LQ * LK; i++)
        probs[i] = (float)((i * 37) % 101) / 101.0f;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(old, 1, sizeof old, f), sizeof old);
    assert_int_equal(fclose(f), 0);

    clattn_attention_map_desc d;
    memset(&d, 0, sizeof d);
    d.batch = 1;
    d.heads = H;
    d.seq_q = LQ;
    d.seq_kv = LK;
    d.head = CLATTN_MAP_GRID;
    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 512;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);   /* EFBIG, not a signal, past the limit */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    clattn_status st = clattn_attention_map_png(NULL, &d, probs, path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(st, CLATTN_IO_ERROR);

    now = slurp(path, &len);
    if (!now)
        fail_msg("the file at the path is gone after a failed write");
    assert_int_equal(len, sizeof old);
    assert_memory_equal(now, old, sizeof old);
    free(now);
    assert_int_equal(temporaries("test_heatmap_keep"), 0);

    /* without the limit the same call replaces the file with the image */
    assert_int_equal(clattn_attention_map_png(NULL, &d, probs, path), CLATTN_SUCCESS);
    unsigned char *rgb = NULL;
    int w = 0, h = 0;
    assert_true(decode(path, &rgb, &w, &h));
    free(rgb);
    assert_int_equal(temporaries("test_heatmap_keep"), 0);

    /* a link at the path: the link is replaced, the file it names is not touched */
    f = fopen(victim, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite("precious", 1, 8, f), 8);
    assert_int_equal(fclose(f), 0);
    remove(link_path);
    assert_int_equal(symlink(victim, link_path), 0);
    assert_int_equal(clattn_attention_map_png(NULL, &d, probs, link_path), CLATTN_SUCCESS);
    now = slurp(victim, &len);
    assert_non_null(now);
    assert_int_equal(len, 8);
    assert_memory_equal(now, "precious", 8);
    free(now);
    struct stat sb;
    assert_int_equal(lstat(link_path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    remove(path);
    remove(link_path);
    remove(victim);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colour_map),
        cmocka_unit_test(test_single_map),
        cmocka_unit_test(test_fixed_scale_and_labels),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_sampled),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_failed_write_keeps_old_file),
    };
    return cmocka_run_group_tests_name("heatmap", tests, NULL, NULL);
}
