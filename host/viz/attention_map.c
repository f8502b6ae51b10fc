/* clattn_attention_map_png: one batch entry's attention weights as a PNG heat map, through the
 * renderer and writer of heatmap.c. This file only picks the matrix (one head, the mean over heads,
 * or every head for a grid), names it, and carries failures to the context. */
#include "host/viz/viz.h"
#include "host/core/core.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD(...) (snprintf(err, err_len, __VA_ARGS__), CLATTN_INVALID_ARGUMENT)

static clattn_status check_desc(const clattn_attention_map_desc *d, const float *probs, char *err,
                                size_t err_len)
{
    if (!d || !probs)
        return BAD("desc and probs must not be NULL");
    if (d->batch < 1 || d->heads < 1 || d->seq_q < 1 || d->seq_kv < 1)
        return BAD("batch %d, heads %d, seq_q %d and seq_kv %d must be >= 1 for a map", d->batch,
                   d->heads, d->seq_q, d->seq_kv);
    if (d->batch_index < 0 || d->batch_index >= d->batch)
        return BAD("batch_index %d is not in 0..%d", d->batch_index, d->batch - 1);
    if (d->head != CLATTN_MAP_MEAN && d->head != CLATTN_MAP_GRID && (d->head < 0 || d->head >= d->heads))
        return BAD("head %d is not in 0..%d, CLATTN_MAP_MEAN or CLATTN_MAP_GRID", d->head, d->heads - 1);
    /* probs is addressed with size_t; a larger tensor could not be in memory anyway */
    if ((size_t)d->heads > SIZE_MAX / (size_t)d->seq_q / (size_t)d->seq_kv / sizeof(float) /
                               (size_t)d->batch)
        return BAD("the probs tensor [%d,%d,%d,%d] is too large to address", d->batch, d->heads,
                   d->seq_q, d->seq_kv);
    return CLATTN_SUCCESS;
}

/* The picture's title: the caller's, none for "", else what the map shows. */
static const char *map_title(const clattn_attention_map_desc *d, char *buf, size_t len)
{
    if (d->title)
        return d->title[0] ? d->title : NULL;
    if (d->head >= 0)
        snprintf(buf, len, "batch %d, head %d", d->batch_index, d->head);
    else if (d->head == CLATTN_MAP_MEAN)
        snprintf(buf, len, "batch %d, mean over %d heads", d->batch_index, d->heads);
    else
        snprintf(buf, len, "batch %d, %d heads", d->batch_index, d->heads);
    return buf;
}

/* The matrices a map draws: one head's, the mean over heads (into *mean, which the caller frees),
   or every head's for a grid. */
static clattn_status pick_maps(const clattn_attention_map_desc *d, const float *probs, float **mean,
                               const float **data, int *n_maps, char *err, size_t err_len)
{
    const size_t LqLk = (size_t)d->seq_q * (size_t)d->seq_kv;
    const float *entry = probs + (size_t)d->batch_index * (size_t)d->heads * LqLk;
    *mean = NULL;
    *n_maps = 1;
    if (d->head == CLATTN_MAP_GRID) {
        *data = entry;
        *n_maps = d->heads;
    } else if (d->head >= 0) {
        *data = entry + (size_t)d->head * LqLk;
    } else {
        /* The mean in double; a key every head hides stays exactly 0, so it is still drawn grey. */
        float *m = malloc(LqLk * sizeof *m);
        if (!m)
            return clattn_fail_into(err, err_len, CLATTN_OUT_OF_MEMORY, "out of host memory for the mean map");
        for (size_t e = 0; e < LqLk; e++) {
            double acc = 0.0;
            for (int h = 0; h < d->heads; h++)
                acc += entry[(size_t)h * LqLk + e];
            m[e] = (float)(acc / d->heads);
        }
        *mean = m;
        *data = m;
    }
    return CLATTN_SUCCESS;
}

static void opts_of(const clattn_attention_map_desc *d, char *title, size_t title_len, clattn_heatmap_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cell_px = d->cell_px;
    o->vmin = d->vmin;
    o->vmax = d->vmax;
    o->row_labels = d->q_labels;
    o->col_labels = d->k_labels;
    o->zero_as_value = d->zero_as_value;
    o->title = map_title(d, title, title_len);
}

static clattn_status report(clattn_context *ctx, clattn_status st, const char *err)
{
    if (st != CLATTN_SUCCESS && ctx) {
        pthread_mutex_lock(&ctx->lock);
        clattn_fail(ctx, st, "attention map: %s", err);
        pthread_mutex_unlock(&ctx->lock);
    }
    return st;
}

/* Rendering and writing run without the context's lock (they use no context state); only a
   failure's message is recorded under it. */
clattn_status clattn_attention_map_png(clattn_context *ctx, const clattn_attention_map_desc *desc,
                                       const float *probs, const char *path)
{
    float *mean = NULL;
    const float *data;
    int n_maps;
    char err[512] = "", title[96];
    clattn_heatmap_opts o;
    clattn_status st = check_desc(desc, probs, err, sizeof err);
    if (st == CLATTN_SUCCESS && !path)
        st = clattn_fail_into(err, sizeof err, CLATTN_INVALID_ARGUMENT, "path must not be NULL");
    if (st == CLATTN_SUCCESS)
        st = pick_maps(desc, probs, &mean, &data, &n_maps, err, sizeof err);
    if (st == CLATTN_SUCCESS) {
        opts_of(desc, title, sizeof title, &o);
        if (desc->head == CLATTN_MAP_GRID)
            st = clattn_heatmap_write_grid_png(&o, data, n_maps, desc->seq_q, desc->seq_kv, NULL, path,
                                               NULL, err, sizeof err);
        else
            st = clattn_heatmap_write_png(&o, data, desc->seq_q, desc->seq_kv, path, NULL, err, sizeof err);
    }
    free(mean);
    return report(ctx, st, err);
}

clattn_status clattn_attention_map_rgb(clattn_context *ctx, const clattn_attention_map_desc *desc,
                                       const float *probs, unsigned char *rgb, size_t rgb_len,
                                       int *width, int *height)
{
    float *mean = NULL;
    unsigned char *img = NULL;
    const float *data;
    int n_maps;
    char err[512] = "", title[96];
    clattn_heatmap_opts o;
    clattn_heatmap_geometry g = {0};
    clattn_status st = check_desc(desc, probs, err, sizeof err);
    if (st == CLATTN_SUCCESS && (!width || !height))
        st = clattn_fail_into(err, sizeof err, CLATTN_INVALID_ARGUMENT, "width and height must not be NULL");
    if (st == CLATTN_SUCCESS)
        st = pick_maps(desc, probs, &mean, &data, &n_maps, err, sizeof err);
    if (st != CLATTN_SUCCESS)
        goto out;
    opts_of(desc, title, sizeof title, &o);
    /* the size query renders too (at most 2000 x 2000 pixels): one layout rule, no second copy */
    st = clattn_heatmap_render_maps(&o, data, n_maps, desc->seq_q, desc->seq_kv,
                                    desc->head == CLATTN_MAP_GRID, &img, &g, err, sizeof err);
    if (st == CLATTN_SUCCESS && rgb && rgb_len < (size_t)g.width * (size_t)g.height * 3)
        st = clattn_fail_into(err, sizeof err, CLATTN_INVALID_ARGUMENT,
                              "rgb holds %zu bytes; the %d x %d image needs %zu", rgb_len, g.width,
                              g.height, (size_t)g.width * (size_t)g.height * 3);
    if (st == CLATTN_SUCCESS && rgb)
        memcpy(rgb, img, (size_t)g.width * (size_t)g.height * 3);
    if (st == CLATTN_SUCCESS) {
        *width = g.width;
        *height = g.height;
    }
out:
    free(img);
    free(mean);
    return report(ctx, st, err);
}
