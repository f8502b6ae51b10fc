/* Attention maps: clattn_attention_map_png on a known probs tensor (decoded back with libpng: the
 * size the layout gives, the colour of known weights, masked cells grey, the mean and the grid),
 * clattn_attention_map_rgb equal to it pixel for pixel, their refusals, and tools/clattn-viz's demo run once ($CLATTN_VIZ names the binary; the PNGs it
 * writes stay in the working directory for a person to look at). The demo's map must show what it
 * claims: head 0 peaks on the diagonal, head 1 one key to the left, and with --causal nothing above
 * the diagonal. Built without libpng, the writer must answer CLATTN_UNSUPPORTED.
 */
#include "host/viz/viz.h"
#include "testutil.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#ifdef CLATTN_HAVE_PNG
#include <png.h>
#endif

enum { B = 2, H = 3, LQ = 5, LK = 7 };


/* probs [B,H,Lq,Lk]: a causal pattern (bottom-right, j <= i + 2) whose visible weights are distinct
   and known; masked cells exactly 0. Element (b, h, i, j) is 0.02*(j+1) + 0.1*h + 0.01*i + 0.3*b. */
static void known_probs(float *p)
{
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < LQ; i++)
                for (int j = 0; j < LK; j++)
                    p[((b * H + h) * LQ + i) * LK + j] =
                        j <= i + 2 ? 0.02f * (float)(j + 1) + 0.1f * (float)h + 0.01f * (float)i +
                                         0.3f * (float)b
                                   : 0.0f;
}

#ifdef CLATTN_HAVE_PNG
static const unsigned char GREY[3] = {160, 160, 160};   /* heatmap.c's masked cells */

static unsigned char *decode(const char *path, int *w, int *h)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        fail_msg("%s is not a readable PNG: %s", path, img.message);
    img.format = PNG_FORMAT_RGB;
    unsigned char *rgb = tu_alloc(PNG_IMAGE_SIZE(img));
    if (!png_image_finish_read(&img, NULL, rgb, 0, NULL))
        fail_msg("%s: %s", path, img.message);
    *w = (int)img.width;
    *h = (int)img.height;
    return rgb;
}

static const unsigned char *pixel(const unsigned char *rgb, int w, int x, int y)
{
    return rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
}

static void assert_rgb(const unsigned char *got, const unsigned char *want, const char *what)
{
    if (memcmp(got, want, 3) != 0)
        fail_msg("%s: colour (%d,%d,%d), expected (%d,%d,%d)", what, got[0], got[1], got[2], want[0],
                 want[1], want[2]);
}
#endif

#ifdef CLATTN_HAVE_PNG
/* The heat-map options the public call derives from desc (title given explicitly), so that the test
   can ask heatmap.c where each cell landed. */
static void opts_of(const clattn_attention_map_desc *d, clattn_heatmap_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cell_px = d->cell_px;
    o->vmin = d->vmin;
    o->vmax = d->vmax;
    o->title = d->title && d->title[0] ? d->title : NULL;
    o->row_labels = d->q_labels;
    o->col_labels = d->k_labels;
    o->zero_as_value = d->zero_as_value;
}
#endif

/* One head of one batch entry, the mean over heads, and the grid: each decoded, sized as the layout
   says, and every cell's centre coloured as its weight. */
static void test_map_known_weights(void **state)
{
    clattn_context *ctx = *state;
    float p[B * H * LQ * LK];
    known_probs(p);
    const char *rows[LQ] = {"q0", "q1", "q2", "q3", "q4"};
    const char *cols[LK] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6"};
    clattn_attention_map_desc d = {0};
    d.batch = B, d.heads = H, d.seq_q = LQ, d.seq_kv = LK;
    d.batch_index = 1, d.head = 2;
    d.q_labels = rows, d.k_labels = cols;
    d.title = "known weights";
    d.cell_px = 12;
    d.vmin = 0.0f, d.vmax = 1.0f;

    const int modes[3] = {2, CLATTN_MAP_MEAN, CLATTN_MAP_GRID};
    const char *paths[3] = {"test_viz_head.png", "test_viz_mean.png", "test_viz_grid.png"};
    for (int mode = 0; mode < 3; mode++) {
        d.head = modes[mode];
        clattn_status st = clattn_attention_map_png(ctx, &d, p, paths[mode]);
#ifndef CLATTN_HAVE_PNG
        assert_int_equal(st, CLATTN_UNSUPPORTED);
        assert_non_null(strstr(clattn_context_last_error(ctx), "libpng"));
        continue;
#else
        if (st != CLATTN_SUCCESS)
            fail_msg("%s: %s", paths[mode], clattn_context_last_error(ctx));
        /* what each map holds: head 2, the mean of the 3 heads, or all 3 */
        const int n_maps = d.head == CLATTN_MAP_GRID ? H : 1;
        float maps[H * LQ * LK];
        for (int m = 0; m < n_maps; m++)
            for (int e = 0; e < LQ * LK; e++) {
                const float *entry = p + (size_t)1 * H * LQ * LK;
                if (d.head >= 0)
                    maps[e] = entry[d.head * LQ * LK + e];
                else if (d.head == CLATTN_MAP_GRID)
                    maps[m * LQ * LK + e] = entry[m * LQ * LK + e];
                else
                    maps[e] = (float)(((double)entry[e] + entry[LQ * LK + e] + entry[2 * LQ * LK + e]) / 3);
            }
        clattn_heatmap_opts o;
        clattn_heatmap_geometry g;
        char err[256];
        opts_of(&d, &o);
        const char *captions[H] = {"head 0", "head 1", "head 2"};   /* the grid writer's default */
        assert_int_equal(clattn_heatmap_layout(&o, maps, n_maps, LQ, LK, n_maps > 1 ? captions : NULL,
                                               &g, err, sizeof err), CLATTN_SUCCESS);
        int w, h;
        unsigned char *rgb = decode(paths[mode], &w, &h);
        assert_int_equal(w, g.width);
        assert_int_equal(h, g.height);
        assert_int_equal(g.cell_px, 12);
        for (int m = 0; m < n_maps; m++)
            for (int i = 0; i < LQ; i++)
                for (int j = 0; j < LK; j++) {
                    const float v = maps[(m * LQ + i) * LK + j];
                    unsigned char want[3];
                    int x, y;
                    clattn_heatmap_colour(v, want);   /* the scale is 0..1 */
                    clattn_heatmap_cell_centre(&g, m, i, j, &x, &y);
                    assert_rgb(pixel(rgb, w, x, y), v == 0.0f ? GREY : want, paths[mode]);
                }
        /* one known weight, spelled out: head 2 of entry 1, (i 3, j 5) = 0.12 + 0.2 + 0.03 + 0.3 */
        if (d.head == 2) {
            int x, y;
            unsigned char want[3];
            clattn_heatmap_colour(0.65f, want);
            clattn_heatmap_cell_centre(&g, 0, 3, 5, &x, &y);
            assert_rgb(pixel(rgb, w, x, y), want, "head 2, (3, 5)");
            clattn_heatmap_cell_centre(&g, 0, 0, 6, &x, &y);   /* hidden by the causal pattern */
            assert_rgb(pixel(rgb, w, x, y), GREY, "head 2, (0, 6)");
        }
        /* the same picture as pixels, without libpng: the size query, then byte for byte */
        int rw = 0, rh = 0;
        assert_int_equal(clattn_attention_map_rgb(ctx, &d, p, NULL, 0, &rw, &rh), CLATTN_SUCCESS);
        assert_int_equal(rw, w);
        assert_int_equal(rh, h);
        unsigned char *px = tu_alloc((size_t)w * (size_t)h * 3);
        assert_int_equal(clattn_attention_map_rgb(ctx, &d, p, px, (size_t)w * (size_t)h * 3, &rw, &rh),
                         CLATTN_SUCCESS);
        assert_memory_equal(px, rgb, (size_t)w * (size_t)h * 3);
        free(px);
        printf("  %-18s %d x %d px, %d map%s checked cell by cell, the RGB call equal to the PNG\n",
               paths[mode], w, h, n_maps, n_maps > 1 ? "s" : "");
        free(rgb);
        remove(paths[mode]);
#endif
    }
}

static void test_map_refusals(void **state)
{
    clattn_context *ctx = *state;
    float p[B * H * LQ * LK];
    known_probs(p);
    clattn_attention_map_desc d = {0};
    d.batch = B, d.heads = H, d.seq_q = LQ, d.seq_kv = LK;
    const clattn_attention_map_desc good = d;

    d.head = H;
    assert_int_equal(clattn_attention_map_png(ctx, &d, p, "x.png"), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "head 3"));
    d = good;
    d.head = -3;
    assert_int_equal(clattn_attention_map_png(ctx, &d, p, "x.png"), CLATTN_INVALID_ARGUMENT);
    d = good;
    d.batch_index = B;
    assert_int_equal(clattn_attention_map_png(ctx, &d, p, "x.png"), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "batch_index"));
    d = good;
    d.seq_kv = 0;
    assert_int_equal(clattn_attention_map_png(ctx, &d, p, "x.png"), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_map_png(ctx, &good, NULL, "x.png"), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_map_png(ctx, NULL, p, "x.png"), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_map_png(NULL, &good, p, NULL), CLATTN_INVALID_ARGUMENT);
    d = good;
    d.cell_px = -1;   /* heatmap.c's own check, carried to the context */
    assert_int_equal(clattn_attention_map_png(ctx, &d, p, "x.png"), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "cell_px"));
    FILE *f = fopen("x.png", "rb");
    assert_null(f);

    const char *bad_path = "no-such-directory-for-clattn/map.png";
    clattn_status st = clattn_attention_map_png(ctx, &good, p, bad_path);
#ifdef CLATTN_HAVE_PNG
    assert_int_equal(st, CLATTN_IO_ERROR);
    assert_non_null(strstr(clattn_context_last_error(ctx), bad_path));
#else
    assert_int_equal(st, CLATTN_UNSUPPORTED);
#endif

    /* the RGB call: the same desc checks, its own NULLs, and a buffer too small is not written */
    int w = 0, h = 0;
    d = good;
    d.head = H;
    assert_int_equal(clattn_attention_map_rgb(ctx, &d, p, NULL, 0, &w, &h), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "head 3"));
    assert_int_equal(clattn_attention_map_rgb(ctx, &good, p, NULL, 0, NULL, &h), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_map_rgb(NULL, &good, NULL, NULL, 0, &w, &h), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_map_rgb(ctx, NULL, p, NULL, 0, &w, &h), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_map_rgb(ctx, &good, p, NULL, 0, &w, &h), CLATTN_SUCCESS);
    assert_true(w > 0 && h > 0);
    unsigned char small[64];
    memset(small, 0xA5, sizeof small);
    int w2 = -1, h2 = -1;
    assert_int_equal(clattn_attention_map_rgb(ctx, &good, p, small, sizeof small, &w2, &h2),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "rgb holds 64 bytes"));
    for (size_t i = 0; i < sizeof small; i++)
        assert_int_equal(small[i], 0xA5);
    assert_int_equal(w2, -1);
    assert_int_equal(h2, -1);
    printf("  refusals: bad head, batch_index, sizes, NULLs, cell_px; unwritable path -> %s; "
           "RGB: NULLs, a %d x %d picture into 64 bytes\n", clattn_status_string(st), w, h);
}

/* Runs the tool; returns its exit status, or -1 when it could not run. */
static int run_tool(const char *tool, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s", tool, args);
    printf("  $ %s\n", cmd);
    fflush(stdout);
    int st = system(cmd);
    return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

#ifdef CLATTN_HAVE_PNG
/* Where the tool's single map of L x L cells landed: it uses the automatic layout, which depends on
   L, the labels, the title and (through the colour bar's tick labels, here as wide as "masked"
   for any scale 0 .. max < 1) the data, so laying out the same map finds every cell. */
static void demo_geometry(int L, const char *title, clattn_heatmap_geometry *g)
{
    char **labels = tu_alloc((size_t)L * sizeof *labels);
    float *dummy = calloc((size_t)L * (size_t)L, sizeof *dummy);   /* the scale: 0 .. 1 */
    assert_non_null(dummy);
    for (int i = 0; i < L; i++) {
        labels[i] = tu_alloc(16);
        snprintf(labels[i], 16, "t%d", i);
    }
    dummy[0] = 1.0f;
    clattn_heatmap_opts o = {0};
    o.title = title;
    o.row_labels = o.col_labels = (const char *const *)labels;
    char err[256];
    assert_int_equal(clattn_heatmap_layout(&o, dummy, 1, L, L, NULL, g, err, sizeof err), CLATTN_SUCCESS);
    for (int i = 0; i < L; i++)
        free(labels[i]);
    free(labels);
    free(dummy);
}

/* Brightness of a viridis colour: it rises monotonically along the map (dark purple -> yellow). */
static int brightness(const unsigned char *c)
{
    return c[0] + c[1] + c[2];
}
#endif

static void test_tool_demo(void **state)
{
    (void)state;
    const char *tool = getenv("CLATTN_VIZ");
    if (!tool || !*tool) {
        printf("  CLATTN_VIZ not set: the tool's demo is not run\n");
        return;
    }
    const int L = 24;
    char args[256];
    snprintf(args, sizeof args, "--len %d --head 1 --out clattn-viz-demo-head1.png", L);
    int rc = run_tool(tool, args);
#ifndef CLATTN_HAVE_PNG
    assert_int_equal(rc, 1);   /* the writer is unsupported; the tool says so */
    return;
#else
    assert_int_equal(rc, 0);
    snprintf(args, sizeof args, "--len %d --head 0 --causal --out clattn-viz-demo-causal-head0.png", L);
    assert_int_equal(run_tool(tool, args), 0);
    assert_int_equal(run_tool(tool, "--out clattn-viz-demo-grid.png"), 0);
    assert_int_equal(run_tool(tool, "--causal --head mean --out clattn-viz-demo-causal-mean.png"), 0);
    assert_int_equal(run_tool(tool, "--head 9"), 1);      /* the demo has 4 heads */
    assert_int_equal(run_tool(tool, "--len 0"), 2);       /* a usage error */

    /* head 1 attends to the previous token: in each row i >= 1 the brightest cell is (i, i-1) */
    clattn_heatmap_geometry g;
    int w, h, x, y;
    demo_geometry(L, "batch 0, head 1", &g);
    unsigned char *rgb = decode("clattn-viz-demo-head1.png", &w, &h);
    assert_int_equal(w, g.width);
    assert_int_equal(h, g.height);
    for (int i = 1; i < L; i++) {
        int best = 0, best_b = -1;
        for (int j = 0; j < L; j++) {
            clattn_heatmap_cell_centre(&g, 0, i, j, &x, &y);
            int b = brightness(pixel(rgb, w, x, y));
            if (b > best_b)
                best_b = b, best = j;
        }
        if (best != i - 1)
            fail_msg("demo head 1, row %d: brightest key %d, expected %d", i, best, i - 1);
    }
    free(rgb);

    /* causal, head 0: the diagonal is the brightest of each row and everything above it is grey */
    demo_geometry(L, "batch 0, head 0", &g);
    rgb = decode("clattn-viz-demo-causal-head0.png", &w, &h);
    assert_int_equal(w, g.width);
    for (int i = 0; i < L; i++) {
        int best = 0, best_b = -1;
        for (int j = 0; j < L; j++) {
            clattn_heatmap_cell_centre(&g, 0, i, j, &x, &y);
            const unsigned char *c = pixel(rgb, w, x, y);
            if (j > i) {
                assert_rgb(c, GREY, "causal demo, above the diagonal");
                continue;
            }
            if (brightness(c) > best_b)
                best_b = brightness(c), best = j;
        }
        if (best != i)
            fail_msg("causal demo head 0, row %d: brightest key %d, expected %d", i, best, i);
    }
    free(rgb);
    printf("  demo: head 1 peaks at key i-1 in every row; causal head 0 peaks on the diagonal, "
           "grey above it\n");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_known_weights),
        cmocka_unit_test(test_map_refusals),
        cmocka_unit_test(test_tool_demo),
    };
    return cmocka_run_group_tests_name("viz", tests, tu_group_setup, tu_group_teardown);
}
