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

static clattn_status check_desc(const clattn_attention_map_desc *d, const float *probs,
                                const char *path, char *err, size_t err_len)
{
    if (!d || !probs || !path)
        return BAD("desc, probs and path must not be NULL");
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

/* Rendering and writing run without the context's lock (they use no context state); only a
   failure's message is recorded under it. */
clattn_status clattn_attention_map_png(clattn_context *ctx, const clattn_attention_map_desc *desc,
                                       const float *probs, const char *path)
{
    float *mean = NULL;
    char err[512] = "", title[96];
    clattn_status st = check_desc(desc, probs, path, err, sizeof err);
    if (st != CLATTN_SUCCESS)
        goto out;

    const size_t LqLk = (size_t)desc->seq_q * (size_t)desc->seq_kv;
    const float *entry = probs + (size_t)desc->batch_index * (size_t)desc->heads * LqLk;
    clattn_heatmap_opts o;
    memset(&o, 0, sizeof o);
    o.cell_px = desc->cell_px;
    o.vmin = desc->vmin;
    o.vmax = desc->vmax;
    o.row_labels = desc->q_labels;
    o.col_labels = desc->k_labels;
    o.zero_as_value = desc->zero_as_value;
    o.title = map_title(desc, title, sizeof title);

    if (desc->head == CLATTN_MAP_GRID) {
        st = clattn_heatmap_write_grid_png(&o, entry, desc->heads, desc->seq_q, desc->seq_kv, NULL, path,
                                           NULL, err, sizeof err);
    } else if (desc->head >= 0) {
        st = clattn_heatmap_write_png(&o, entry + (size_t)desc->head * LqLk, desc->seq_q, desc->seq_kv,
                                      path, NULL, err, sizeof err);
    } else {
        /* The mean in double; a key every head hides stays exactly 0, so it is still drawn grey. */
        mean = malloc(LqLk * sizeof *mean);
        if (!mean) {
            st = CLATTN_OUT_OF_MEMORY;
            snprintf(err, sizeof err, "out of host memory for the mean map");
            goto out;
        }
        for (size_t e = 0; e < LqLk; e++) {
            double acc = 0.0;
            for (int h = 0; h < desc->heads; h++)
                acc += entry[(size_t)h * LqLk + e];
            mean[e] = (float)(acc / desc->heads);
        }
        st = clattn_heatmap_write_png(&o, mean, desc->seq_q, desc->seq_kv, path, NULL, err, sizeof err);
    }
out:
    if (st != CLATTN_SUCCESS && ctx) {
        pthread_mutex_lock(&ctx->lock);
        clattn_fail(ctx, st, "attention map: %s", err);
        pthread_mutex_unlock(&ctx->lock);
    }
    free(mean);
    return st;
}
