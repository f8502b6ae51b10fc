/* Attention maps as PNG heat maps: one float matrix [rows, cols] (query rows, key columns), or a
 * grid of several (one per head) sharing one colour scale.
 *
 * Picture: cells of cell_px x cell_px pixels coloured by a viridis colour map (dark purple = low,
 * yellow = high), a colour bar with tick labels on the right, optional title, per-map captions in a
 * grid, and optional token labels (rows to the left of the map, columns below it, written top to
 * bottom) in a built-in 5x7 pixel font. Labels longer than label_chars end in "..", bytes outside
 * printable ASCII are drawn as '?' (one per UTF-8 character), and when cells are smaller than a
 * line of text only every k-th label is drawn.
 * Cells exactly 0.0 are drawn neutral grey (160,160,160), which the colour map never produces, so
 * masked keys (a causal triangle, padding) stand apart from small weights; the colour bar shows a
 * grey swatch "masked". A weight that underflows to 0 in float32 (a score ~104 below its row's
 * maximum) is grey too. Set zero_as_value to colour zeros like any value. NaN cells are magenta
 * (255,0,255). Matrices too large for the image cap (2000 px a side) are sampled, cells kept
 * square: pixel x of a map shows column x*cols/map_w (nearest, no averaging).
 *
 * Everything is computed on the CPU; only writing the file needs libpng (CLATTN_HAVE_PNG).
 */
#ifndef CLATTN_HEATMAP_H
#define CLATTN_HEATMAP_H

#include "clattn.h"

#include <stddef.h>

typedef struct clattn_heatmap_opts {   /* zero-initialise, then set; NULL opts: all defaults */
    int cell_px;                 /* pixel size of a cell; 0 -> auto (4..32, the image kept <= 2000 px) */
    float vmin, vmax;            /* colour scale; vmax <= vmin -> auto: min(0, data min) .. data max */
    const char *title;           /* NULL: none */
    const char *const *row_labels;   /* rows entries (query tokens) or NULL; an entry may be NULL */
    const char *const *col_labels;   /* cols entries (key tokens) or NULL */
    int label_chars;             /* longest label drawn, in characters; 0 -> 12 */
    int font_scale;              /* text size in multiples of the 5x7 font; 0 -> auto (1 or 2) */
    int zero_as_value;           /* 0: cells exactly 0 are grey (masked); 1: colour-mapped */
    int no_colorbar;             /* 1: omit the colour bar */
    int grid_cols;               /* grid: maps per row; 0 -> ceil(sqrt(n_maps)) */
} clattn_heatmap_opts;

/* Where things landed, for callers that place or check pixels. */
typedef struct clattn_heatmap_geometry {
    int width, height;           /* of the image */
    int rows, cols, n_maps;
    int grid_cols, grid_rows;
    int map_x, map_y;            /* top-left pixel of map 0 */
    int map_w, map_h;            /* pixels of one map; cell (r, c) covers x in [c*map_w/cols,
                                    (c+1)*map_w/cols) from map_x, likewise y */
    int tile_dx, tile_dy;        /* from one map to the next along a grid row / column */
    int cell_px;                 /* pixels per cell, or 0 when the matrix is sampled */
    int font_scale;
    float vmin, vmax;            /* the colour scale used */
} clattn_heatmap_geometry;

/* The colour of t in [0, 1] (clamped; NaN gives the magenta NaN colour) on the built-in map. */
void clattn_heatmap_colour(float t, unsigned char rgb[3]);

/* The colour a cell of value v gets under geom's scale and opts (grey zeros, NaN). */
void clattn_heatmap_value_colour(const clattn_heatmap_opts *opts, const clattn_heatmap_geometry *geom,
                                 float v, unsigned char rgb[3]);

/* The centre pixel of cell (r, c) of map m. */
void clattn_heatmap_cell_centre(const clattn_heatmap_geometry *geom, int m, int r, int c, int *x,
                                int *y);

/* Lays out n_maps maps of [rows, cols] (data: n_maps*rows*cols floats, needed for the auto scale);
   captions: n_maps strings or NULL. CLATTN_INVALID_ARGUMENT with a message in err on bad input. */
clattn_status clattn_heatmap_layout(const clattn_heatmap_opts *opts, const float *data, int n_maps,
                                    int rows, int cols, const char *const *captions,
                                    clattn_heatmap_geometry *geom, char *err, size_t err_len);

/* Renders into a new RGB buffer (width*height*3 bytes, rows top to bottom; free() it). */
clattn_status clattn_heatmap_render(const clattn_heatmap_opts *opts, const float *data, int n_maps,
                                    int rows, int cols, const char *const *captions,
                                    unsigned char **rgb, clattn_heatmap_geometry *geom,
                                    char *err, size_t err_len);

/* clattn_heatmap_render for one map (grid 0) or a grid of n_maps, captioned "head 0", "head 1", ...
   as clattn_heatmap_write_grid_png captions them. */
clattn_status clattn_heatmap_render_maps(const clattn_heatmap_opts *opts, const float *data, int n_maps,
                                         int rows, int cols, int grid, unsigned char **rgb,
                                         clattn_heatmap_geometry *geom, char *err, size_t err_len);

/* Writes one map as an 8-bit RGB PNG. The file is replaced atomically: written to a new temporary
   file beside path, then renamed over it (a symbolic link at path is replaced, not followed).
   CLATTN_IO_ERROR when it cannot be written: only the temporary is removed, and whatever was at
   path is left as it was. CLATTN_UNSUPPORTED when built without libpng. geom may be NULL. */
clattn_status clattn_heatmap_write_png(const clattn_heatmap_opts *opts, const float *data, int rows,
                                       int cols, const char *path, clattn_heatmap_geometry *geom,
                                       char *err, size_t err_len);

/* Writes n_maps maps [n_maps, rows, cols] as a grid with one shared colour scale and a caption
   above each (captions NULL: "head 0", "head 1", ...). */
clattn_status clattn_heatmap_write_grid_png(const clattn_heatmap_opts *opts, const float *data,
                                            int n_maps, int rows, int cols,
                                            const char *const *captions, const char *path,
                                            clattn_heatmap_geometry *geom, char *err,
                                            size_t err_len);

#endif /* CLATTN_HEATMAP_H */
