/* Merging attention results computed over disjoint key sets: the split-KV partials of one device
 * (clattn_merge_enqueue_contiguous) and the caller's parts from several devices or ring steps
 * (clattn_merge_partials, and clattn_merge_partials_host on the CPU). The algebra is in cl/merge.cl. */
#include "host/core/buffer_check.h"
#include "host/attention/attention.h"
#include "host/attention/defaults.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The public call stages its parts in scratch; above this it merges in tiles, so that a large merge
   does not pin a device-sized scratch buffer for the life of the context. */
#define MERGE_STAGE_BYTES ((size_t)256 << 20)

/* ---- the kernel family ----------------------------------------------------------------------- */

static int merge_valid(const clattn_params *params, const clattn_device_info *dev,
                       const clattn_problem *p, char *why, size_t why_len)
{
    int wgs = params->v[P_WGS], vec = params->v[P_VEC];
    if (!clattn_params_in_range(clattn_merge_params, CLATTN_MERGE_PARAMS, params, why, why_len))
        return 0;
    if (!clattn_is_vector_width(vec)) {
        snprintf(why, why_len, "VEC=%d is not a vector width (1, 2, 4, 8, 16)", vec);
        return 0;
    }
    if ((size_t)wgs > dev->max_work_group || (size_t)wgs > dev->max_work_item[0]) {
        snprintf(why, why_len, "WGS=%d exceeds the device's work-group limit %zu", wgs,
                 dev->max_work_group);
        return 0;
    }
    /* Wider than a row only idles lanes. */
    if (vec > 1 && vec > p->dv) {
        snprintf(why, why_len, "VEC=%d is wider than dv=%d", vec, p->dv);
        return 0;
    }
    return 1;
}

static size_t merge_work_group_size(const clattn_params *params)
{
    return (size_t)params->v[P_WGS];
}

/* cl/merge.cl declares no local memory. */
static size_t merge_local_bytes(const clattn_params *params, const clattn_problem *p)
{
    (void)params, (void)p;
    return 0;
}

const clattn_family clattn_family_merge = {"merge", "merge.cl", CLATTN_MERGE_PARAMS, clattn_merge_params,
                                           merge_valid, NULL, NULL, merge_local_bytes,
                                           merge_work_group_size};

/* ---- one launch ------------------------------------------------------------------------------ */

/* A tile of nb batch entries x Hq heads x ni query rows, starting at (b0, i0) of problem p. The parts
   sit in part_out with strides p_* (storage type: float, or p's when part_data says so), their lses
   in part_lse as [parts][nb][Hq][ni]. */
typedef struct merge_tile {
    int parts, b0, nb, i0, ni;
    cl_mem part_out;
    int part_data;
    int part_ml;        /* part_lse holds split-KV maxima (base 2) and sums, not lses */
    long p_ps, p_bs, p_hs, p_rs;
    cl_mem part_lse;
    long l_ps;
} merge_tile;

clattn_status clattn_merge_kernel(clattn_context *ctx, const clattn_problem *p,
                                 const clattn_params *params, int part_data, int part_ml,
                                 cl_kernel *out)
{
    char options[256];
    snprintf(options, sizeof options, "-DUSE_F16=%d -DUSE_BF16=%d -DPART_DATA=%d -DPART_ML=%d",
             p->dtype == CLATTN_F16, p->dtype == CLATTN_BF16, part_data, part_ml);
    if (clattn_params_defines(&clattn_family_merge, params, options, sizeof options))
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "merge kernel options too long");
    return clattn_kernel_get(ctx, clattn_family_merge.file, options, "merge_parts", out);
}

clattn_status clattn_merge_fill_maxima(clattn_context *ctx, const clattn_problem *p,
                                       const clattn_params *params, cl_mem part_lse, long n)
{
    char options[256];
    snprintf(options, sizeof options, "-DUSE_F16=%d -DUSE_BF16=%d -DPART_DATA=0 -DPART_ML=1",
             p->dtype == CLATTN_F16, p->dtype == CLATTN_BF16);
    if (clattn_params_defines(&clattn_family_merge, params, options, sizeof options))
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "merge kernel options too long");
    cl_kernel k;
    clattn_status st = clattn_kernel_get(ctx, clattn_family_merge.file, options, "fill_floats", &k);
    const float value = -INFINITY;
    const cl_long count = n;
    if (st == CLATTN_SUCCESS && (st = clattn_set_arg(ctx, k, 0, sizeof part_lse, &part_lse)) ==
                                    CLATTN_SUCCESS &&
        (st = clattn_set_arg(ctx, k, 1, sizeof value, &value)) == CLATTN_SUCCESS &&
        (st = clattn_set_arg(ctx, k, 2, sizeof count, &count)) == CLATTN_SUCCESS) {
        const size_t global = (size_t)n;
        st = clattn_launch(ctx, k, 1, &global, NULL, "fill_floats");
    }
    return st;
}

static clattn_status merge_launch(clattn_context *ctx, const clattn_problem *p,
                                  const clattn_params *params, const merge_tile *t, cl_mem out,
                                  cl_mem lse)
{
    cl_kernel k;
    clattn_status st = clattn_merge_kernel(ctx, p, params, t->part_data, t->part_ml, &k);
    if (st != CLATTN_SUCCESS)
        return st;

    const int Hq = p->Hq, dv = p->dv;
    const long rows = (long)t->nb * p->Hq * t->ni;
    const long o_base = t->b0 * p->o_bs + t->i0 * p->o_rs;
    const long lse_bs = (long)p->Hq * p->Lq, lse_hs = p->Lq;
    const long lse_base = t->b0 * lse_bs + t->i0;
    cl_uint a = 0;
#define ARG(x)                                                                                    \
    do {                                                                                          \
        st = clattn_set_arg(ctx, k, a++, sizeof(x), &(x));                                        \
        if (st != CLATTN_SUCCESS)                                                                 \
            return st;                                                                            \
    } while (0)
    ARG(t->parts);
    ARG(Hq);
    ARG(t->ni);
    ARG(dv);
    ARG(rows);
    ARG(t->part_out);
    ARG(t->p_ps);
    ARG(t->p_bs);
    ARG(t->p_hs);
    ARG(t->p_rs);
    ARG(t->part_lse);
    ARG(t->l_ps);
    ARG(out);
    ARG(o_base);
    ARG(p->o_bs);
    ARG(p->o_hs);
    ARG(p->o_rs);
    /* A NULL buffer argument reaches the kernel as a NULL pointer: lse is optional. */
    ARG(lse);
    ARG(lse_base);
    ARG(lse_bs);
    ARG(lse_hs);
#undef ARG
    const int vec = params->v[P_VEC];
    size_t global = (size_t)rows * (size_t)((dv + vec - 1) / vec);
    size_t local = merge_work_group_size(params);
    return clattn_launch(ctx, k, 1, &global, &local, "merge_parts");
}

/* ---- split-KV -------------------------------------------------------------------------------- */

clattn_status clattn_merge_enqueue_contiguous(clattn_context *ctx, const clattn_problem *p,
                                              const clattn_params *params, int splits, cl_mem part_out,
                                              cl_mem part_lse, cl_mem out, cl_mem lse)
{
    long row_elems = (long)p->Lq * p->dv;
    merge_tile t = {
        .parts = splits, .b0 = 0, .nb = p->B, .i0 = 0, .ni = p->Lq,
        .part_out = part_out, .part_data = 0, .part_ml = 1,
        .p_ps = (long)p->B * p->Hq * row_elems, .p_bs = (long)p->Hq * row_elems, .p_hs = row_elems,
        .p_rs = p->dv,
        .part_lse = part_lse, .l_ps = (long)p->B * p->Hq * p->Lq,
    };
    return merge_launch(ctx, p, params, &t, out, lse);
}

/* ---- the public merge ------------------------------------------------------------------------ */

/* Only the fields that shape out and lse are read: the rest of an attention desc (which keys, how
   they were masked) stayed with the parts. */
static clattn_status merge_problem(const clattn_attention_desc *desc, clattn_problem *p, char *err,
                                   size_t err_len)
{
    if (!desc) {
        snprintf(err, err_len, "desc is NULL");
        return CLATTN_INVALID_ARGUMENT;
    }
    if (desc->head_dim_v < 0 || desc->head_dim_v > CLATTN_MAX_HEAD_DIM) {
        snprintf(err, err_len, "desc->head_dim_v = %d: must be 0 (head_dim) or in 1..%d",
                 desc->head_dim_v, CLATTN_MAX_HEAD_DIM);
        return CLATTN_INVALID_ARGUMENT;
    }
    clattn_attention_desc d;
    memset(&d, 0, sizeof d);
    d.batch = desc->batch;
    d.heads_q = desc->heads_q;
    d.seq_q = desc->seq_q;
    d.head_dim = desc->head_dim_v ? desc->head_dim_v : desc->head_dim;
    d.head_dim_v = d.head_dim;
    d.dtype = desc->dtype;
    d.layout = desc->layout;
    return clattn_problem_init(&d, p, err, err_len);
}

static clattn_status merge_check(clattn_context *ctx, int parts, const cl_mem *outs, const cl_mem *lses,
                                 const clattn_attention_desc *desc, cl_mem out, cl_mem lse,
                                 clattn_problem *p)
{
    char err[512];
    if (merge_problem(desc, p, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    if (parts < 1 || parts > (INT_MAX - 2) / 2)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "parts = %d: must be in 1..%d", parts,
                           (INT_MAX - 2) / 2);
    if (!outs || !lses)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s is NULL", !outs ? "outs" : "lses");
    /* out may be exactly an outs[p] and lse an lses[p] (in-place accumulation): every part is staged
       before the kernel writes, tile by tile, and a tile's writes land on its own rows only. A
       partial overlap would let a tile's writes reach rows a later tile still has to stage. */
    const int n = 2 * parts + 2;
    clattn_buffer_arg *bufs = calloc((size_t)n, sizeof *bufs);
    if (!bufs)
        return clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "no host memory to check the buffers of %d parts",
                           parts);
    for (int i = 0; i < parts; i++) {
        bufs[2 * i] = (clattn_buffer_arg){.name = "outs", .in_array = 1, .index = i, .mem = outs[i],
                                          .need = p->bytes.out};
        bufs[2 * i + 1] = (clattn_buffer_arg){.name = "lses", .in_array = 1, .index = i,
                                              .mem = lses[i], .need = p->bytes.lse};
    }
    bufs[n - 2] = (clattn_buffer_arg){.name = "out", .mem = out, .need = p->bytes.out,
                                      .role = CLATTN_BUFFER_OUTPUT, .in_place_of = "outs"};
    bufs[n - 1] = (clattn_buffer_arg){.name = "lse", .mem = lse, .need = p->bytes.lse,
                                      .role = CLATTN_BUFFER_OUTPUT, .optional = 1,
                                      .in_place_of = "lses"};
    clattn_status st = clattn_buffers_check(ctx, bufs, n);
    free(bufs);
    return st;
}

/* Copies part `part`'s slice of tile t (in the tile's staged layout) into the stage buffers. */
static clattn_status stage_part(clattn_context *ctx, const clattn_problem *p, const merge_tile *t,
                                int part, cl_mem src_out, cl_mem src_lse)
{
    const size_t es = clattn_dtype_size(p->dtype);
    const size_t row = (size_t)p->dv * es;                 /* one query row of one head */
    const size_t Hq = (size_t)p->Hq, Lq = (size_t)p->Lq;
    cl_int err;
    if (t->ni == p->Lq || p->layout == CLATTN_LAYOUT_BSHD) {
        /* Whole batch entries, or rows i0.. of one BSHD entry (all heads interleaved): contiguous. */
        size_t first = ((size_t)t->b0 * Lq + (size_t)t->i0) * Hq * row;
        size_t bytes = (size_t)t->nb * (size_t)t->ni * Hq * row;
        err = clEnqueueCopyBuffer(ctx->queue, src_out, t->part_out, first,
                                  (size_t)part * (size_t)t->p_ps * es, bytes, 0, NULL, NULL);
    } else {
        /* Rows i0.. of every head of one BHSD entry: one rectangle, a row per head. */
        size_t src_origin[3] = {(size_t)t->i0 * row, 0, (size_t)t->b0};
        size_t dst_origin[3] = {0, 0, (size_t)part};
        size_t region[3] = {(size_t)t->ni * row, Hq, 1};
        err = clEnqueueCopyBufferRect(ctx->queue, src_out, t->part_out, src_origin, dst_origin, region,
                                      Lq * row, Hq * Lq * row, (size_t)t->ni * row,
                                      Hq * (size_t)t->ni * row, 0, NULL, NULL);
    }
    if (err != CL_SUCCESS)
        return clattn_fail_cl(ctx, err, "staging a part's out for the merge");
    if (t->ni == p->Lq) {
        size_t bytes = (size_t)t->nb * Hq * Lq * sizeof(float);
        err = clEnqueueCopyBuffer(ctx->queue, src_lse, t->part_lse, (size_t)t->b0 * Hq * Lq * sizeof(float),
                                  (size_t)part * (size_t)t->l_ps * sizeof(float), bytes, 0, NULL, NULL);
    } else {
        size_t src_origin[3] = {(size_t)t->i0 * sizeof(float), 0, (size_t)t->b0};
        size_t dst_origin[3] = {0, 0, (size_t)part};
        size_t region[3] = {(size_t)t->ni * sizeof(float), Hq, 1};
        err = clEnqueueCopyBufferRect(ctx->queue, src_lse, t->part_lse, src_origin, dst_origin, region,
                                      Lq * sizeof(float), Hq * Lq * sizeof(float),
                                      (size_t)t->ni * sizeof(float), Hq * (size_t)t->ni * sizeof(float),
                                      0, NULL, NULL);
    }
    if (err != CL_SUCCESS)
        return clattn_fail_cl(ctx, err, "staging a part's lse for the merge");
    return CLATTN_SUCCESS;
}

/* clattn_step_build_fn for the merge of staged parts (in the storage type, with lses). */
static clattn_status build_staged_merge(clattn_context *ctx, const clattn_plan_step *step,
                                        const void *arg, cl_kernel *out)
{
    (void)arg;
    return clattn_merge_kernel(ctx, &step->p, &step->params, 1, 0, out);
}

clattn_status clattn_merge_enqueue_staged(clattn_context *ctx, const clattn_problem *p, int parts,
                                          const cl_mem *outs, const cl_mem *lses, cl_mem out, cl_mem lse,
                                          size_t stage_bytes)
{
    if (p->B == 0 || p->Lq == 0)
        return CLATTN_SUCCESS;
    clattn_plan_step merge;
    cl_kernel kernel;
    clattn_status st = clattn_plan_params_built(ctx, &clattn_family_merge, p, NULL, build_staged_merge,
                                                NULL, &merge, &kernel);
    if (st != CLATTN_SUCCESS)
        return st;
    /* Tiles of whole batch entries while one entry of every part fits the stage, else of query rows
       within one entry. A query row (every head) is counted at the larger of its out and its lse
       bytes, so that both stages fit. */
    const size_t es = clattn_dtype_size(p->dtype);
    size_t row = (size_t)p->Hq * (size_t)p->dv * es;
    if (row < (size_t)p->Hq * sizeof(float))
        row = (size_t)p->Hq * sizeof(float);
    const size_t max_alloc = (size_t)ctx->info.max_alloc_bytes;
    size_t limit = stage_bytes < max_alloc ? stage_bytes : max_alloc;
    if ((size_t)parts > max_alloc / row)
        return clattn_fail(ctx, CLATTN_OUT_OF_MEMORY,
                           "merging %d parts stages %d x %zu bytes per query row, more than the "
                           "device's maximum allocation of %zu: merge fewer parts at a time",
                           parts, parts, row, max_alloc);
    const size_t per_row = row * (size_t)parts;     /* one query row of every head of every part */
    if (per_row > limit)
        limit = max_alloc;   /* past the cap rather than fail while the device can hold a row */
    size_t rows_fit = limit / per_row;
    int nb = 1, ni = p->Lq;
    if (rows_fit >= (size_t)p->Lq) {
        size_t entries = rows_fit / (size_t)p->Lq;
        nb = entries < (size_t)p->B ? (int)entries : p->B;
    } else {
        ni = (int)rows_fit;
    }

    merge_tile t;
    memset(&t, 0, sizeof t);
    t.parts = parts;
    t.part_data = 1;   /* staged in the storage type */
    size_t tile_rows = (size_t)nb * (size_t)p->Hq * (size_t)ni;
    st = clattn_scratch_get(ctx, CLATTN_SCRATCH_WORK0,
                                          tile_rows * (size_t)p->dv * es * (size_t)parts, &t.part_out);
    if (st != CLATTN_SUCCESS)
        return st;
    st = clattn_scratch_get(ctx, CLATTN_SCRATCH_WORK1, tile_rows * sizeof(float) * (size_t)parts,
                            &t.part_lse);
    if (st != CLATTN_SUCCESS)
        return st;

    /* The stage keeps the layout of the parts, so the kernel reads it as coalesced as the caller's
       buffers; its strides are those of a problem of nb entries and ni query rows. */
    for (int b0 = 0; b0 < p->B; b0 += nb) {
        for (int i0 = 0; i0 < p->Lq; i0 += ni) {
            t.b0 = b0;
            t.nb = p->B - b0 < nb ? p->B - b0 : nb;
            t.i0 = i0;
            t.ni = p->Lq - i0 < ni ? p->Lq - i0 : ni;
            long hs_rows = (long)t.ni * p->dv;
            t.p_ps = (long)t.nb * p->Hq * hs_rows;
            t.p_bs = (long)p->Hq * hs_rows;
            if (p->layout == CLATTN_LAYOUT_BHSD) {
                t.p_hs = hs_rows;
                t.p_rs = p->dv;
            } else {
                t.p_hs = p->dv;
                t.p_rs = (long)p->Hq * p->dv;
            }
            t.l_ps = (long)t.nb * p->Hq * t.ni;
            /* Every part is copied before the kernel reads any, and each tile's writes land outside
               the later tiles' sources: out and lse may be inputs too. (clattn_launch orders the
               kernel before the next tile's copies on an out-of-order queue.) */
            for (int q = 0; q < parts; q++)
                if ((st = stage_part(ctx, p, &t, q, outs[q], lses[q])) != CLATTN_SUCCESS)
                    return st;
            if (ctx->queue_out_of_order) {
                cl_int err = clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL);
                if (err != CL_SUCCESS)
                    return clattn_fail_cl(ctx, err, "ordering the merge after its staging copies");
            }
            if ((st = merge_launch(ctx, p, &merge.params, &t, out, lse)) != CLATTN_SUCCESS)
                return st;
        }
    }
    return CLATTN_SUCCESS;
}

clattn_status clattn_merge_partials(clattn_context *ctx, int parts, const cl_mem *outs, const cl_mem *lses,
                                    const clattn_attention_desc *desc, cl_mem out, cl_mem lse)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&ctx->lock);
    clattn_problem p;
    clattn_status st = merge_check(ctx, parts, outs, lses, desc, out, lse, &p);
    if (st == CLATTN_SUCCESS)
        st = clattn_merge_enqueue_staged(ctx, &p, parts, outs, lses, out, lse, MERGE_STAGE_BYTES);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}

/* ---- on the CPU ------------------------------------------------------------------------------ */

clattn_status clattn_merge_partials_host(int parts, const void *const *outs, const float *const *lses,
                                         const clattn_attention_desc *desc, void *out, float *lse)
{
    clattn_problem p;
    if (merge_problem(desc, &p, NULL, 0) != CLATTN_SUCCESS || parts < 1 || !outs || !lses)
        return CLATTN_INVALID_ARGUMENT;
    if (p.B == 0 || p.Lq == 0)
        return CLATTN_SUCCESS;
    if (!out)
        return CLATTN_INVALID_ARGUMENT;
    for (int q = 0; q < parts; q++)
        if (!outs[q] || !lses[q])
            return CLATTN_INVALID_ARGUMENT;

    double acc[CLATTN_MAX_HEAD_DIM];
    for (int b = 0; b < p.B; b++) {
        for (int h = 0; h < p.Hq; h++) {
            for (int i = 0; i < p.Lq; i++) {
                long r = ((long)b * p.Hq + h) * p.Lq + i;
                long o = b * p.o_bs + h * p.o_hs + i * p.o_rs;
                /* Each row is read whole before it is written: out and lse may be inputs too. */
                double m = -INFINITY;
                for (int q = 0; q < parts; q++) {
                    double l = lses[q][r];
                    m = isnan(m) || isnan(l) ? NAN : fmax(m, l);
                }
                double sum = 0.0;
                for (int c = 0; c < p.dv; c++)
                    acc[c] = 0.0;
                if (m != -INFINITY) {
                    for (int q = 0; q < parts; q++) {
                        double l = lses[q][r];
                        if (l == -INFINITY)
                            continue;   /* saw no key: its out is not read */
                        double w = exp(l - m);
                        sum += w;
                        for (int c = 0; c < p.dv; c++)
                            acc[c] += w * clattn_storage_get(outs[q], p.dtype, o + c);
                    }
                    for (int c = 0; c < p.dv; c++)
                        acc[c] /= sum;
                }
                for (int c = 0; c < p.dv; c++)
                    clattn_storage_set(out, p.dtype, o + c, acc[c]);
                if (lse)
                    lse[r] = m == -INFINITY ? -INFINITY : (float)(m + log(sum));
            }
        }
    }
    return CLATTN_SUCCESS;
}
