/* Attention maps as PNG heat maps (see heatmap.h): layout, a built-in colour map and font, an RGB
   canvas, and libpng for the file. */
#include "host/viz/viz.h"

#include "host/cache/cache_file.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CLATTN_HAVE_PNG
#include <png.h>
#endif

#define MAX_SIDE 2000          /* the image cap, in pixels */
#define GLYPH_W 5              /* font cell, before scaling */
#define GLYPH_H 7
#define ADVANCE 6              /* glyph plus one column of space */
#define LINE 9                 /* glyph plus two rows of space */
#define TICKS 5                /* colour-bar ticks: min, quarters, max */

static const unsigned char WHITE[3] = {255, 255, 255};
static const unsigned char INK[3] = {32, 32, 32};
static const unsigned char GREY[3] = {160, 160, 160};     /* masked (exactly 0) cells */
static const unsigned char MAGENTA[3] = {255, 0, 255};    /* NaN cells */

/* ---- colour map --------------------------------------------------------------------------------- */

/* viridis at t = 0, 1/8, ..., 1 (matplotlib's, as R's viridis(9) lists it): perceptually uniform and
   readable in grey scale and by colour-blind readers; interpolated linearly between the points. */
static const unsigned char VIRIDIS[9][3] = {
    {68, 1, 84}, {72, 40, 120}, {62, 74, 137}, {49, 104, 142}, {38, 130, 142},
    {31, 158, 137}, {53, 183, 121}, {109, 205, 89}, {253, 231, 37},
};

void clattn_heatmap_colour(float t, unsigned char rgb[3])
{
    if (isnan(t)) {
        memcpy(rgb, MAGENTA, 3);
        return;
    }
    double x = t < 0.0f ? 0.0 : t > 1.0f ? 8.0 : (double)t * 8.0;
    int i = (int)x;
    if (i > 7)
        i = 7;
    double f = x - i;
    for (int ch = 0; ch < 3; ch++)
        rgb[ch] = (unsigned char)lround(VIRIDIS[i][ch] * (1.0 - f) + VIRIDIS[i + 1][ch] * f);
}

void clattn_heatmap_value_colour(const clattn_heatmap_opts *opts, const clattn_heatmap_geometry *g,
                                 float v, unsigned char rgb[3])
{
    if (v == 0.0f && !(opts && opts->zero_as_value)) {
        memcpy(rgb, GREY, 3);
        return;
    }
    if (isnan(v)) {
        memcpy(rgb, MAGENTA, 3);
        return;
    }
    clattn_heatmap_colour((float)(((double)v - g->vmin) / ((double)g->vmax - g->vmin)), rgb);
}

/* ---- font: 5x7 ASCII 32..126, one byte per column, bit 0 the top row ---------------------------- */

static const unsigned char FONT[95][GLYPH_W] = {
    {0x00,0x00,0x00,0x00,0x00}, {0x00,0x00,0x5F,0x00,0x00}, {0x00,0x07,0x00,0x07,0x00}, /*  !" */
    {0x14,0x7F,0x14,0x7F,0x14}, {0x24,0x2A,0x7F,0x2A,0x12}, {0x23,0x13,0x08,0x64,0x62}, /* #$% */
    {0x36,0x49,0x55,0x22,0x50}, {0x00,0x05,0x03,0x00,0x00}, {0x00,0x1C,0x22,0x41,0x00}, /* &'( */
    {0x00,0x41,0x22,0x1C,0x00}, {0x14,0x08,0x3E,0x08,0x14}, {0x08,0x08,0x3E,0x08,0x08}, /* )*+ */
    {0x00,0x50,0x30,0x00,0x00}, {0x08,0x08,0x08,0x08,0x08}, {0x00,0x60,0x60,0x00,0x00}, /* ,-. */
    {0x20,0x10,0x08,0x04,0x02}, {0x3E,0x51,0x49,0x45,0x3E}, {0x00,0x42,0x7F,0x40,0x00}, /* /01 */
    {0x42,0x61,0x51,0x49,0x46}, {0x21,0x41,0x45,0x4B,0x31}, {0x18,0x14,0x12,0x7F,0x10}, /* 234 */
    {0x27,0x45,0x45,0x45,0x39}, {0x3C,0x4A,0x49,0x49,0x30}, {0x01,0x71,0x09,0x05,0x03}, /* 567 */
    {0x36,0x49,0x49,0x49,0x36}, {0x06,0x49,0x49,0x29,0x1E}, {0x00,0x36,0x36,0x00,0x00}, /* 89: */
    {0x00,0x56,0x36,0x00,0x00}, {0x08,0x14,0x22,0x41,0x00}, {0x14,0x14,0x14,0x14,0x14}, /* ;<= */
    {0x00,0x41,0x22,0x14,0x08}, {0x02,0x01,0x51,0x09,0x06}, {0x32,0x49,0x79,0x41,0x3E}, /* >?@ */
    {0x7E,0x11,0x11,0x11,0x7E}, {0x7F,0x49,0x49,0x49,0x36}, {0x3E,0x41,0x41,0x41,0x22}, /* ABC */
    {0x7F,0x41,0x41,0x22,0x1C}, {0x7F,0x49,0x49,0x49,0x41}, {0x7F,0x09,0x09,0x09,0x01}, /* DEF */
    {0x3E,0x41,0x49,0x49,0x7A}, {0x7F,0x08,0x08,0x08,0x7F}, {0x00,0x41,0x7F,0x41,0x00}, /* GHI */
    {0x20,0x40,0x41,0x3F,0x01}, {0x7F,0x08,0x14,0x22,0x41}, {0x7F,0x40,0x40,0x40,0x40}, /* JKL */
    {0x7F,0x02,0x0C,0x02,0x7F}, {0x7F,0x04,0x08,0x10,0x7F}, {0x3E,0x41,0x41,0x41,0x3E}, /* MNO */
    {0x7F,0x09,0x09,0x09,0x06}, {0x3E,0x41,0x51,0x21,0x5E}, {0x7F,0x09,0x19,0x29,0x46}, /* PQR */
    {0x46,0x49,0x49,0x49,0x31}, {0x01,0x01,0x7F,0x01,0x01}, {0x3F,0x40,0x40,0x40,0x3F}, /* STU */
    {0x1F,0x20,0x40,0x20,0x1F}, {0x3F,0x40,0x38,0x40,0x3F}, {0x63,0x14,0x08,0x14,0x63}, /* VWX */
    {0x07,0x08,0x70,0x08,0x07}, {0x61,0x51,0x49,0x45,0x43}, {0x00,0x7F,0x41,0x41,0x00}, /* YZ[ */
    {0x02,0x04,0x08,0x10,0x20}, {0x00,0x41,0x41,0x7F,0x00}, {0x04,0x02,0x01,0x02,0x04}, /* \]^ */
    {0x40,0x40,0x40,0x40,0x40}, {0x00,0x01,0x02,0x04,0x00}, {0x20,0x54,0x54,0x54,0x78}, /* _`a */
    {0x7F,0x48,0x44,0x44,0x38}, {0x38,0x44,0x44,0x44,0x20}, {0x38,0x44,0x44,0x48,0x7F}, /* bcd */
    {0x38,0x54,0x54,0x54,0x18}, {0x08,0x7E,0x09,0x01,0x02}, {0x0C,0x52,0x52,0x52,0x3E}, /* efg */
    {0x7F,0x08,0x04,0x04,0x78}, {0x00,0x44,0x7D,0x40,0x00}, {0x20,0x40,0x44,0x3D,0x00}, /* hij */
    {0x7F,0x10,0x28,0x44,0x00}, {0x00,0x41,0x7F,0x40,0x00}, {0x7C,0x04,0x18,0x04,0x78}, /* klm */
    {0x7C,0x08,0x04,0x04,0x78}, {0x38,0x44,0x44,0x44,0x38}, {0x7C,0x14,0x14,0x14,0x08}, /* nop */
    {0x08,0x14,0x14,0x18,0x7C}, {0x7C,0x08,0x04,0x04,0x08}, {0x48,0x54,0x54,0x54,0x20}, /* qrs */
    {0x04,0x3F,0x44,0x40,0x20}, {0x3C,0x40,0x40,0x20,0x7C}, {0x1C,0x20,0x40,0x20,0x1C}, /* tuv */
    {0x3C,0x40,0x30,0x40,0x3C}, {0x44,0x28,0x10,0x28,0x44}, {0x0C,0x50,0x50,0x50,0x3C}, /* wxy */
    {0x44,0x64,0x54,0x4C,0x44}, {0x00,0x08,0x36,0x41,0x00}, {0x00,0x00,0x7F,0x00,0x00}, /* z{| */
    {0x00,0x41,0x36,0x08,0x00}, {0x08,0x04,0x08,0x10,0x08},                             /* }~  */
};

/* A label as the font can draw it: one '?' per character outside printable ASCII (UTF-8 aware),
   cut to max characters with ".." when longer. Returns the length written (out holds max+1). */
static int label_text(const char *s, int max, char *out)
{
    int n = 0, total = 0;
    if (!s)
        s = "";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80)   /* continuation bytes belong to the previous character */
            total++;
    for (const unsigned char *p = (const unsigned char *)s; *p && n < max; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        out[n++] = (*p >= 32 && *p < 127) ? (char)*p : '?';
    }
    if (total > max && max >= 2)
        out[max - 2] = out[max - 1] = '.';
    out[n] = '\0';
    return n;
}

/* ---- canvas ------------------------------------------------------------------------------------- */

typedef struct {
    unsigned char *px;
    int w, h;
} canvas;

static void put(canvas *c, int x, int y, const unsigned char rgb[3])
{
    if (x >= 0 && y >= 0 && x < c->w && y < c->h)
        memcpy(c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3, rgb, 3);
}

static void rect(canvas *c, int x, int y, int w, int h, const unsigned char rgb[3])
{
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++)
            put(c, x + i, y + j, rgb);
}

/* Plain ASCII text at (x, y), its top-left corner, in pixels of s x s. down: rotated a quarter turn
   clockwise, reading top to bottom, with the letters' tops facing right; (x, y) is then the
   top-left corner of the rotated box (7s wide). */
static void text(canvas *c, int x, int y, const char *str, int s, int down)
{
    for (int k = 0; str[k]; k++) {
        unsigned char ch = (unsigned char)str[k];
        const unsigned char *g = FONT[(ch >= 32 && ch < 127 ? ch : '?') - 32];
        for (int col = 0; col < GLYPH_W; col++)
            for (int row = 0; row < GLYPH_H; row++) {
                if (!(g[col] >> row & 1))
                    continue;
                int u = (k * ADVANCE + col) * s, v = row * s;   /* along and across the line */
                if (down)
                    rect(c, x + (GLYPH_H - 1) * s - v, y + u, s, s, INK);
                else
                    rect(c, x + u, y + v, s, s, INK);
            }
    }
}

static int text_w(int chars, int s)
{
    return chars > 0 ? (chars * ADVANCE - 1) * s : 0;
}

/* ---- layout -------------------------------------------------------------------------------------- */

typedef struct {
    clattn_heatmap_geometry g;
    int s, pad, gap, title_h, cap_h, ylab_w, xlab_h, tile_w, tile_h;
    int cb_x, cb_y, cb_w, cb_h, bar_h, swatch;
    int label_chars;
    char ticks[TICKS][16];
} layout;

static int longest_label(const char *const *labels, int n, int max)
{
    char buf[256];
    int m = 0;
    for (int i = 0; labels && i < n; i++) {
        int len = label_text(labels[i], max, buf);
        if (len > m)
            m = len;
    }
    return m;
}

/* Places everything for a given cell size and font scale; map_w/map_h already set in L->g. */
static void place(const clattn_heatmap_opts *o, const char *const *captions, layout *L)
{
    clattn_heatmap_geometry *g = &L->g;
    const int s = L->s;
    const int n_y = longest_label(o->row_labels, g->rows, L->label_chars);
    const int n_x = longest_label(o->col_labels, g->cols, L->label_chars);
    int tick_chars = 6;   /* "masked" */

    L->pad = 8 * s;
    L->gap = 12 * s;
    L->title_h = o->title ? (LINE + 6) * s : 0;
    L->cap_h = captions ? (LINE + 3) * s : 0;
    L->ylab_w = n_y ? text_w(n_y, s) + 4 * s : 0;
    L->xlab_h = n_x ? text_w(n_x, s) + 4 * s : 0;
    L->tile_w = L->ylab_w + g->map_w;
    L->tile_h = L->cap_h + g->map_h + L->xlab_h;
    g->tile_dx = L->tile_w + L->gap;
    g->tile_dy = L->tile_h + L->gap;
    const int grid_w = g->grid_cols * L->tile_w + (g->grid_cols - 1) * L->gap;
    const int grid_h = g->grid_rows * L->tile_h + (g->grid_rows - 1) * L->gap;
    g->map_x = L->pad + L->ylab_w;
    g->map_y = L->pad + L->title_h + L->cap_h;

    for (int t = 0; t < TICKS; t++) {
        double v = g->vmin + (double)t / (TICKS - 1) * ((double)g->vmax - g->vmin);
        snprintf(L->ticks[t], sizeof L->ticks[t], "%.3g", fabs(v) < 1e-30 ? 0.0 : v);
        if ((int)strlen(L->ticks[t]) > tick_chars)
            tick_chars = (int)strlen(L->ticks[t]);
    }
    L->cb_w = o->no_colorbar ? 0 : 12 * s;
    L->cb_x = L->pad + grid_w + 10 * s;
    L->cb_y = g->map_y;
    L->cb_h = (g->grid_rows - 1) * g->tile_dy + g->map_h;
    L->swatch = !o->zero_as_value && L->cb_h >= 8 * LINE * s;
    L->bar_h = L->swatch ? L->cb_h - (LINE + 6) * s : L->cb_h;

    g->width = L->pad + grid_w + L->pad;
    if (!o->no_colorbar)
        g->width += 10 * s + L->cb_w + 5 * s + text_w(tick_chars, s);
    if (o->title) {
        char buf[256];
        int tw = text_w(label_text(o->title, 200, buf), s) + 2 * L->pad;
        if (tw > g->width)
            g->width = tw;
    }
    g->height = L->pad + L->title_h + grid_h + L->pad;
}

static clattn_status do_layout(const clattn_heatmap_opts *o, const float *data, int n_maps, int rows,
                               int cols, const char *const *captions, layout *L, char *err,
                               size_t err_len)
{
    const clattn_status bad = CLATTN_INVALID_ARGUMENT;
    clattn_heatmap_geometry *g = &L->g;

    if (!data || n_maps < 1 || rows < 1 || cols < 1)
        return clattn_fail_into(err, err_len, bad, "need data and n_maps, rows, cols >= 1 (got %d, %d, %d)",
                       n_maps, rows, cols);
    if ((size_t)rows * (size_t)cols > SIZE_MAX / sizeof(float) / (size_t)n_maps)
        return clattn_fail_into(err, err_len, bad, "%d maps of %d x %d are too large", n_maps, rows, cols);
    if (o->cell_px < 0 || o->cell_px > 256 || o->font_scale < 0 || o->font_scale > 8 ||
        o->label_chars < 0 || o->label_chars > 200 || o->grid_cols < 0)
        return clattn_fail_into(err, err_len, bad, "opts: cell_px 0..256, font_scale 0..8, label_chars "
                       "0..200, grid_cols >= 0");
    if (!isfinite(o->vmin) || !isfinite(o->vmax))
        return clattn_fail_into(err, err_len, bad, "opts: vmin and vmax must be finite");

    memset(L, 0, sizeof *L);
    g->rows = rows;
    g->cols = cols;
    g->n_maps = n_maps;
    g->grid_cols = o->grid_cols ? (o->grid_cols < n_maps ? o->grid_cols : n_maps)
                                : (int)ceil(sqrt((double)n_maps));
    g->grid_rows = (n_maps + g->grid_cols - 1) / g->grid_cols;
    L->label_chars = o->label_chars ? o->label_chars : 12;

    if (o->vmax > o->vmin) {
        g->vmin = o->vmin;
        g->vmax = o->vmax;
    } else {   /* auto: from 0 (or below) to the largest finite value */
        double lo = 0.0, hi = -INFINITY;
        for (size_t i = 0; i < (size_t)n_maps * (size_t)rows * (size_t)cols; i++)
            if (isfinite(data[i])) {
                lo = fmin(lo, data[i]);
                hi = fmax(hi, data[i]);
            }
        g->vmin = (float)lo;
        g->vmax = hi > lo ? (float)hi : (float)lo + 1.0f;
    }

    /* A cell size, then a font size; shrink the cells until the image fits the cap, and sample
       the matrix when even one pixel per cell is too many. */
    const int biggest = rows > cols ? rows : cols;
    const int target = n_maps == 1 ? 480 : 960 / g->grid_cols;
    for (int pass = 0; pass < 2; pass++) {
        int cell = o->cell_px ? o->cell_px : target / biggest;
        if (!o->cell_px)
            cell = cell < 4 ? 4 : cell > 32 ? 32 : cell;
        L->s = o->font_scale ? o->font_scale : pass + 1;
        for (;;) {
            g->map_w = cols * cell;
            g->map_h = rows * cell;
            place(o, captions, L);
            if ((g->width <= MAX_SIDE && g->height <= MAX_SIDE) || cell == 1)
                break;
            cell--;
        }
        g->cell_px = cell;
        if (g->width > MAX_SIDE || g->height > MAX_SIDE) {
            /* one factor for both sides, so that cells stay square */
            const int over_w = g->width - MAX_SIDE, over_h = g->height - MAX_SIDE;
            const int fit_w = g->map_w - (over_w > 0 ? (over_w + g->grid_cols - 1) / g->grid_cols : 0);
            const int fit_h = g->map_h - (over_h > 0 ? (over_h + g->grid_rows - 1) / g->grid_rows : 0);
            const double f = fmin((double)fit_w / cols, (double)fit_h / rows);
            g->map_w = (int)(cols * f);
            g->map_h = (int)(rows * f);
            if (g->map_w < 16 || g->map_h < 16)
                return clattn_fail_into(err, err_len, bad, "%d maps with these labels do not fit in %d px",
                               n_maps, MAX_SIDE);
            g->cell_px = 0;
            place(o, captions, L);
        }
        /* larger text once the maps are large enough to carry it */
        if (o->font_scale || (g->map_w < 320 && g->map_h < 320))
            break;
    }
    g->font_scale = L->s;
    return CLATTN_SUCCESS;
}

static const clattn_heatmap_opts DEFAULTS = {0};

clattn_status clattn_heatmap_layout(const clattn_heatmap_opts *opts, const float *data, int n_maps,
                                    int rows, int cols, const char *const *captions,
                                    clattn_heatmap_geometry *geom, char *err, size_t err_len)
{
    layout L;
    clattn_status st = do_layout(opts ? opts : &DEFAULTS, data, n_maps, rows, cols, captions, &L, err,
                                 err_len);
    if (st == CLATTN_SUCCESS && geom)
        *geom = L.g;
    return st;
}

void clattn_heatmap_cell_centre(const clattn_heatmap_geometry *g, int m, int r, int c, int *x, int *y)
{
    const int mx = g->map_x + (m % g->grid_cols) * g->tile_dx;
    const int my = g->map_y + (m / g->grid_cols) * g->tile_dy;
    /* the middle of the pixels that show the cell (see the sampling in render) */
    const long x0 = ((long)c * g->map_w + g->cols - 1) / g->cols, x1 = ((long)(c + 1) * g->map_w + g->cols - 1) / g->cols;
    const long y0 = ((long)r * g->map_h + g->rows - 1) / g->rows, y1 = ((long)(r + 1) * g->map_h + g->rows - 1) / g->rows;
    *x = mx + (int)((x0 + x1 - 1) / 2);
    *y = my + (int)((y0 + y1 - 1) / 2);
}

/* ---- rendering ---------------------------------------------------------------------------------- */

static void draw_map(canvas *cv, const clattn_heatmap_opts *o, const layout *L, const float *data,
                     int mx, int my)
{
    const clattn_heatmap_geometry *g = &L->g;
    unsigned char rgb[3];

    rect(cv, mx - 1, my - 1, g->map_w + 2, g->map_h + 2, INK);   /* a frame, so grey edges show */
    for (int py = 0; py < g->map_h; py++) {
        const int r = (int)((long)py * g->rows / g->map_h);
        for (int px = 0; px < g->map_w; px++) {
            const int c = (int)((long)px * g->cols / g->map_w);
            clattn_heatmap_value_colour(o, g, data[(size_t)r * (size_t)g->cols + (size_t)c], rgb);
            put(cv, mx + px, my + py, rgb);
        }
    }

    /* labels: every k-th when a cell is thinner than a line of text */
    char buf[256];
    const int s = L->s;
    if (o->row_labels) {
        const int k = (int)ceil((double)LINE * s * g->rows / g->map_h);
        for (int r = 0; r < g->rows; r += k) {
            int n = label_text(o->row_labels[r], L->label_chars, buf);
            int cy = my + (int)(((2L * r + 1) * g->map_h) / (2L * g->rows));
            text(cv, mx - 4 * s - text_w(n, s), cy - GLYPH_H * s / 2, buf, s, 0);
        }
    }
    if (o->col_labels) {
        const int k = (int)ceil((double)(GLYPH_H + 1) * s * g->cols / g->map_w);
        for (int c = 0; c < g->cols; c += k) {
            label_text(o->col_labels[c], L->label_chars, buf);
            int cx = mx + (int)(((2L * c + 1) * g->map_w) / (2L * g->cols));
            text(cv, cx - GLYPH_H * s / 2, my + g->map_h + 4 * s, buf, s, 1);
        }
    }
}

static void draw_colorbar(canvas *cv, const layout *L)
{
    const int s = L->s, x = L->cb_x, y = L->cb_y, w = L->cb_w, h = L->bar_h;
    unsigned char rgb[3];

    rect(cv, x - 1, y - 1, w + 2, h + 2, INK);
    for (int j = 0; j < h; j++) {
        clattn_heatmap_colour(h > 1 ? 1.0f - (float)j / (float)(h - 1) : 1.0f, rgb);
        rect(cv, x, y + j, w, 1, rgb);
    }
    for (int t = 0; t < TICKS; t++) {
        int ty = y + (int)lround((1.0 - (double)t / (TICKS - 1)) * (h - 1));
        rect(cv, x + w, ty, 3 * s, s, INK);
        text(cv, x + w + 5 * s, ty - GLYPH_H * s / 2, L->ticks[t], s, 0);
    }
    if (L->swatch) {
        const int sy = y + L->cb_h - LINE * s;
        rect(cv, x - 1, sy - 1, w + 2, LINE * s + 2, INK);
        rect(cv, x, sy, w, LINE * s, GREY);
        text(cv, x + w + 5 * s, sy + s, "masked", s, 0);
    }
}

clattn_status clattn_heatmap_render(const clattn_heatmap_opts *opts, const float *data, int n_maps,
                                    int rows, int cols, const char *const *captions,
                                    unsigned char **rgb, clattn_heatmap_geometry *geom,
                                    char *err, size_t err_len)
{
    const clattn_heatmap_opts *o = opts ? opts : &DEFAULTS;
    layout L;
    char buf[256];

    if (!rgb)
        return clattn_fail_into(err, err_len, CLATTN_INVALID_ARGUMENT, "rgb must not be NULL");
    *rgb = NULL;
    clattn_status st = do_layout(o, data, n_maps, rows, cols, captions, &L, err, err_len);
    if (st != CLATTN_SUCCESS)
        return st;
    const clattn_heatmap_geometry *g = &L.g;
    canvas cv = {malloc((size_t)g->width * (size_t)g->height * 3), g->width, g->height};
    if (!cv.px)
        return clattn_fail_into(err, err_len, CLATTN_OUT_OF_MEMORY, "no memory for a %d x %d image", g->width,
                       g->height);
    rect(&cv, 0, 0, cv.w, cv.h, WHITE);

    const int s = L.s;
    if (o->title) {
        int n = label_text(o->title, 200, buf);
        text(&cv, (g->width - text_w(n, s)) / 2, L.pad, buf, s, 0);
    }
    for (int m = 0; m < n_maps; m++) {
        const int mx = g->map_x + (m % g->grid_cols) * g->tile_dx;
        const int my = g->map_y + (m / g->grid_cols) * g->tile_dy;
        if (captions) {
            int max_chars = (g->map_w + s) / (ADVANCE * s);
            int n = label_text(captions[m], max_chars < 200 ? max_chars : 200, buf);
            text(&cv, mx + (g->map_w - text_w(n, s)) / 2, my - L.cap_h, buf, s, 0);
        }
        draw_map(&cv, o, &L, data + (size_t)m * (size_t)rows * (size_t)cols, mx, my);
    }
    if (!o->no_colorbar)
        draw_colorbar(&cv, &L);

    *rgb = cv.px;
    if (geom)
        *geom = L.g;
    return CLATTN_SUCCESS;
}

/* ---- the file ----------------------------------------------------------------------------------- */

#ifdef CLATTN_HAVE_PNG
typedef struct {
    char *err;
    size_t err_len;
} png_err_sink;

/* libpng would print and abort by default; keep its message and unwind to write_png instead. */
static void on_png_error(png_structp png, png_const_charp msg)
{
    png_err_sink *sink = png_get_error_ptr(png);
    clattn_fail_into(sink->err, sink->err_len, CLATTN_IO_ERROR, "libpng: %s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* The encoded image, grown as libpng writes. */
typedef struct {
    unsigned char *data;
    size_t len, cap;
} png_buffer;

static void on_png_write(png_structp png, png_bytep bytes, png_size_t n)
{
    png_buffer *b = png_get_io_ptr(png);
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (n > cap - b->len && cap <= SIZE_MAX / 2)
            cap *= 2;
        unsigned char *grown = n <= cap - b->len ? realloc(b->data, cap) : NULL;
        if (!grown)
            png_error(png, "out of memory for the encoded image");
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

static void on_png_flush(png_structp png)
{
    (void)png;
}
#endif

/* The image is encoded in memory, then replaces path atomically (clattn_cache_write_atomic: a new
   temporary beside it, O_EXCL | O_NOFOLLOW, renamed over it): a write that fails at any point,
   however late, leaves whatever was at path untouched, and a link at path is never written
   through. */
static clattn_status write_png(const char *path, const unsigned char *rgb, int w, int h, char *err,
                               size_t err_len)
{
#ifndef CLATTN_HAVE_PNG
    (void)rgb, (void)w, (void)h;
    return clattn_fail_into(err, err_len, CLATTN_UNSUPPORTED, "%s: clattn was built without libpng", path);
#else
    png_err_sink sink = {err, err_len};
    /* on the heap: libpng's write callback grows it between setjmp and a longjmp, after which a
       non-volatile local's value would be indeterminate (C11 7.13.2.1) */
    png_buffer *out = calloc(1, sizeof *out);
    png_structp png = NULL;
    png_infop info = NULL;
    volatile clattn_status st = CLATTN_IO_ERROR;
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, on_png_error, on_png_warning);
    info = png ? png_create_info_struct(png) : NULL;
    if (!info || !out) {
        clattn_fail_into(err, err_len, CLATTN_OUT_OF_MEMORY, "libpng could not start");
        st = CLATTN_OUT_OF_MEMORY;
        goto out;
    }
    if (setjmp(png_jmpbuf(png)))
        goto out;   /* on_png_error wrote the message */
    png_set_write_fn(png, out, on_png_write, on_png_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, rgb + (size_t)y * (size_t)w * 3);
    png_write_end(png, NULL);
    st = clattn_cache_write_atomic(path, out->data, out->len, err, err_len);
out:
    png_destroy_write_struct(&png, &info);
    if (out)
        free(out->data);
    free(out);
    return st;
#endif
}

static clattn_status render_and_write(const clattn_heatmap_opts *opts, const float *data, int n_maps,
                                      int rows, int cols, const char *const *captions,
                                      const char *path, clattn_heatmap_geometry *geom, char *err,
                                      size_t err_len)
{
    unsigned char *rgb = NULL;
    clattn_heatmap_geometry g;
    if (!path)
        return clattn_fail_into(err, err_len, CLATTN_INVALID_ARGUMENT, "path must not be NULL");
    clattn_status st = clattn_heatmap_render(opts, data, n_maps, rows, cols, captions, &rgb, &g, err,
                                             err_len);
    if (st != CLATTN_SUCCESS)
        goto out;
    st = write_png(path, rgb, g.width, g.height, err, err_len);
    if (st == CLATTN_SUCCESS && geom)
        *geom = g;
out:
    free(rgb);
    return st;
}

clattn_status clattn_heatmap_write_png(const clattn_heatmap_opts *opts, const float *data, int rows,
                                       int cols, const char *path, clattn_heatmap_geometry *geom,
                                       char *err, size_t err_len)
{
    return render_and_write(opts, data, 1, rows, cols, NULL, path, geom, err, err_len);
}

/* A grid without captions gets "head 0", "head 1", ... (in names, which must outlive their use). */
enum { AUTO_CAPTIONS = 64 };
static const char *const *grid_captions(int n_maps, const char *const *captions,
                                        char names[AUTO_CAPTIONS][16], const char *caps[AUTO_CAPTIONS])
{
    if (captions || n_maps < 1 || n_maps > AUTO_CAPTIONS)
        return captions;
    for (int m = 0; m < n_maps; m++) {
        snprintf(names[m], sizeof names[m], "head %d", m);
        caps[m] = names[m];
    }
    return caps;
}

clattn_status clattn_heatmap_write_grid_png(const clattn_heatmap_opts *opts, const float *data,
                                            int n_maps, int rows, int cols,
                                            const char *const *captions, const char *path,
                                            clattn_heatmap_geometry *geom, char *err,
                                            size_t err_len)
{
    char names[AUTO_CAPTIONS][16];
    const char *caps[AUTO_CAPTIONS];
    captions = grid_captions(n_maps, captions, names, caps);
    return render_and_write(opts, data, n_maps, rows, cols, captions, path, geom, err, err_len);
}

clattn_status clattn_heatmap_render_maps(const clattn_heatmap_opts *opts, const float *data, int n_maps,
                                         int rows, int cols, int grid, unsigned char **rgb,
                                         clattn_heatmap_geometry *geom, char *err, size_t err_len)
{
    char names[AUTO_CAPTIONS][16];
    const char *caps[AUTO_CAPTIONS];
    return clattn_heatmap_render(opts, data, n_maps, rows, cols,
                                 grid ? grid_captions(n_maps, NULL, names, caps) : NULL, rgb, geom, err,
                                 err_len);
}
