/* The unfused path: Q·Kᵀ (cl/qk_scores.cl), a row softmax (cl/softmax.cl) and P·V (cl/pv.cl), through
 * a float score matrix.
 *
 * The scores live in the caller's probs buffer when there is one ([B,Hq,Lq,Lk], written in place, one
 * launch of each kernel), else in context scratch. Scratch is taken in chunks: whole heads while a
 * head's Lq*Lk scores fit the chunk, else ranges of query rows of one head, so that no allocation
 * exceeds the device's maximum or the cap below. The kernels take the chunk's first head and row
 * (bh0, row0) and its per-head stride, so one set of kernels serves both cases. A CL_MEM_WRITE_ONLY
 * probs buffer may not be read by kernels: then the scores go through scratch too, and each chunk's
 * probabilities are copied out. */
#include "host/attention/attention.h"
#include "host/attention/defaults.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* The most score scratch one chunk uses. Beyond a few hundred MiB a larger chunk no longer saves
   launches worth measuring, and the memory is the caller's device memory held for the context's
   lifetime. */
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define UNFUSED_CHUNK_BYTES ((size_t)256 << 20)

/* ---- parameters ------------------------------------------------------------------------------ */


/* Constraints shared by the two GEMM kernels; local_bytes is what the kernel's tiles take. */
static int gemm_valid(const clattn_params *pr, const clattn_device_info *dev, size_t local_bytes,
                      char *why, size_t why_len)
{
    const int tm = pr->v[P_TILE_M], tn = pr->v[P_TILE_N], tk = pr->v[P_TILE_K];
    const int wm = pr->v[P_WPT_M], wn = pr->v[P_WPT_N];
    if (tm < 1 || tn < 1 || tk < 1 || wm < 1 || !clattn_is_vector_width(wn)) {
        snprintf(why, why_len, "tile sizes must be positive and WPT_N a vector width (1,2,4,8,16)");
        return 0;
    }
    /* The staging copies move runs of 4, 8 or 16 elements along TILE_K (and TILE_N in P·V). */
    if (tk != 4 && tk != 8 && tk % 16) {
        snprintf(why, why_len, "TILE_K = %d: must be 4, 8 or a multiple of 16", tk);
        return 0;
    }
    if (tm % wm || tn % wn) {
        snprintf(why, why_len, "TILE_M %% WPT_M or TILE_N %% WPT_N is not 0 (%d/%d, %d/%d)", tm, wm, tn, wn);
        return 0;
    }
    /* More accumulators than any device keeps in registers. */
    if ((long long)wm * wn > 128) {
        snprintf(why, why_len, "WPT_M*WPT_N = %lld exceeds 128 accumulators", (long long)wm * wn);
        return 0;
    }
    const size_t threads_n = (size_t)(tn / wn), threads_m = (size_t)(tm / wm);
    if (threads_n * threads_m > dev->max_work_group || threads_n > dev->max_work_item[0] ||
        threads_m > dev->max_work_item[1]) {
        snprintf(why, why_len, "work-group %zux%zu exceeds the device's limits", threads_n, threads_m);
        return 0;
    }
    if (local_bytes > dev->local_mem_bytes) {
        snprintf(why, why_len, "tiles need %zu bytes of local memory, the device has %llu", local_bytes,
                 (unsigned long long)dev->local_mem_bytes);
        return 0;
    }
    return 1;
}

/* The local arrays of cl/qk_scores.cl: qs[TILE_M][TILE_K + 1], ks[TILE_K][TILE_N + WPT_N]. */
static size_t qk_local_bytes(const clattn_params *pr, const clattn_problem *p)
{
    (void)p;
    const size_t tm = (size_t)pr->v[P_TILE_M], tn = (size_t)pr->v[P_TILE_N];
    const size_t tk = (size_t)pr->v[P_TILE_K], wn = (size_t)pr->v[P_WPT_N];
    return (tm * (tk + 1) + tk * (tn + wn)) * sizeof(float);
}

/* The local arrays of cl/pv.cl: ps[TILE_M][TILE_K + 1], vs[TILE_K][TILE_N] and one flag. */
static size_t pv_local_bytes(const clattn_params *pr, const clattn_problem *p)
{
    (void)p;
    const size_t tm = (size_t)pr->v[P_TILE_M], tn = (size_t)pr->v[P_TILE_N];
    const size_t tk = (size_t)pr->v[P_TILE_K];
    return (tm * (tk + 1) + tk * tn) * sizeof(float) + sizeof(int);
}

/* The local array of cl/softmax.cl: red[SM_WG]. */
static size_t softmax_local_bytes(const clattn_params *pr, const clattn_problem *p)
{
    (void)p;
    return (size_t)pr->v[P_SM_WG] * sizeof(float);
}

static int qk_valid(const clattn_params *pr, const clattn_device_info *dev, const clattn_problem *p,
                    char *why, size_t why_len)
{
    (void)p;
    if (!clattn_params_in_range(clattn_qk_params, CLATTN_GEMM_PARAMS, pr, why, why_len))
        return 0;
    return gemm_valid(pr, dev, qk_local_bytes(pr, p), why, why_len);
}

static int pv_valid(const clattn_params *pr, const clattn_device_info *dev, const clattn_problem *p,
                    char *why, size_t why_len)
{
    (void)p;
    if (!clattn_params_in_range(clattn_pv_params, CLATTN_GEMM_PARAMS, pr, why, why_len))
        return 0;
    const size_t tn = (size_t)pr->v[P_TILE_N];
    if (tn != 8 && tn % 16) {
        snprintf(why, why_len, "TILE_N = %zu: must be 8 or a multiple of 16 for P·V", tn);
        return 0;
    }
    return gemm_valid(pr, dev, pv_local_bytes(pr, p), why, why_len);
}

static int softmax_valid(const clattn_params *pr, const clattn_device_info *dev, const clattn_problem *p,
                         char *why, size_t why_len)
{
    (void)p;
    const int wg = pr->v[P_SM_WG], vec = pr->v[P_SM_VEC];
    if (!clattn_params_in_range(clattn_softmax_params, CLATTN_SOFTMAX_PARAMS, pr, why, why_len))
        return 0;
    if (wg < 1 || (wg & (wg - 1)) || !clattn_is_vector_width(vec)) {
        snprintf(why, why_len, "SM_WG must be a power of two and SM_VEC a vector width (1,2,4,8,16)");
        return 0;
    }
    if ((size_t)wg > dev->max_work_group || (size_t)wg > dev->max_work_item[0]) {
        snprintf(why, why_len, "SM_WG = %d exceeds the device's work-group limit", wg);
        return 0;
    }
    if (softmax_local_bytes(pr, p) > dev->local_mem_bytes) {
        snprintf(why, why_len, "SM_WG = %d needs more local memory than the device has", wg);
        return 0;
    }
    return 1;
}

/* A row tile taller than the rows there are (decode: one row, or a GQA group folded into rows)
   computes zeros: the shortest tile that still covers them, down to one row per work-item row. */
static void fit_rows(clattn_params *pr, const clattn_problem *p)
{
    while (pr->v[P_TILE_M] > clattn_qk_params[P_TILE_M].candidates[0] && pr->v[P_TILE_M] / 2 >= p->Lq &&
           pr->v[P_TILE_M] / 2 >= pr->v[P_WPT_M])
        pr->v[P_TILE_M] /= 2;
}

/* qk and pv: a work-item per WPT_M x WPT_N outputs of the TILE_M x TILE_N tile. */
static size_t gemm_work_group_size(const clattn_params *pr)
{
    return (size_t)(pr->v[P_TILE_N] / pr->v[P_WPT_N]) * (size_t)(pr->v[P_TILE_M] / pr->v[P_WPT_M]);
}

static size_t softmax_work_group_size(const clattn_params *pr)
{
    return (size_t)pr->v[P_SM_WG];
}

/* For the tuner: a row tile taller than fit_rows() would make only adds rows of zeros, so the
   fitted height stands for it (timing it would be time spent on a point known to be worse). */
static void tile_rows_canonical(clattn_params *pr, const clattn_params *ref,
                                const clattn_device_info *dev, const clattn_problem *p)
{
    (void)ref, (void)dev;
    fit_rows(pr, p);
}

const clattn_family clattn_family_qk = {"qk", "qk_scores.cl", CLATTN_GEMM_PARAMS, clattn_qk_params,
                                        qk_valid, tile_rows_canonical, fit_rows, qk_local_bytes,
                                        gemm_work_group_size};
const clattn_family clattn_family_softmax = {"softmax", "softmax.cl", CLATTN_SOFTMAX_PARAMS,
                                             clattn_softmax_params, softmax_valid, NULL, NULL,
                                             softmax_local_bytes, softmax_work_group_size};
const clattn_family clattn_family_pv = {"pv", "pv.cl", CLATTN_GEMM_PARAMS, clattn_pv_params,
                                        pv_valid, tile_rows_canonical, fit_rows, pv_local_bytes,
                                        gemm_work_group_size};

/* ---- kernels --------------------------------------------------------------------------------- */

/* The kernel of a plan step (the -D options are also the program-cache key). */
clattn_status clattn_unfused_kernel(clattn_context *ctx, const clattn_plan_step *step, cl_kernel *out)
{
    const char *kernel_name = step->family == &clattn_family_qk        ? "qk_scores"
                              : step->family == &clattn_family_softmax ? "softmax_rows"
                                                                       : "pv";
    char options[512] = "";
    if (clattn_problem_defines(&step->p, options, sizeof options) ||
        clattn_params_defines(step->family, &step->params, options, sizeof options))
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "%s kernel options do not fit %zu bytes",
                           step->family->name, sizeof options);
    return clattn_kernel_get(ctx, step->family->file, options, kernel_name, out);
}

/* Sets a run of kernel arguments from first on; stops at the first failure. */
typedef struct kernel_arg {
    size_t size;
    const void *value;
} kernel_arg;

#define ARG(x) {sizeof(x), &(x)}

static clattn_status set_args(clattn_context *ctx, cl_kernel kernel, cl_uint first, const kernel_arg *args,
                              int n)
{
    for (int i = 0; i < n; i++) {
        clattn_status st = clattn_set_arg(ctx, kernel, first + (cl_uint)i, args[i].size, args[i].value);
        if (st != CLATTN_SUCCESS)
            return st;
    }
    return CLATTN_SUCCESS;
}

/* The three kernels with their launch shapes, arguments set but for the per-chunk ones. */
typedef struct unfused_kernels {
    cl_kernel qk, sm, pv;
    int qk_tile_m, qk_tile_n, pv_tile_m, pv_tile_n;
    size_t qk_local[3], sm_local[2], pv_local[3];
    cl_int n_common_qk, n_common_sm, n_common_pv;   /* index of each kernel's first per-chunk argument */
} unfused_kernels;

static clattn_status prepare_kernels(clattn_context *ctx, const clattn_plan *plan, unfused_kernels *uk)
{
    const clattn_params qk_pr = plan->step[0].params, sm_pr = plan->step[1].params,
                        pv_pr = plan->step[2].params;
    clattn_status st;
    st = clattn_unfused_kernel(ctx, &plan->step[0], &uk->qk);
    if (st == CLATTN_SUCCESS)
        st = clattn_unfused_kernel(ctx, &plan->step[1], &uk->sm);
    if (st == CLATTN_SUCCESS)
        st = clattn_unfused_kernel(ctx, &plan->step[2], &uk->pv);
    if (st != CLATTN_SUCCESS)
        return st;
    uk->qk_tile_m = qk_pr.v[P_TILE_M];
    uk->qk_tile_n = qk_pr.v[P_TILE_N];
    uk->pv_tile_m = pv_pr.v[P_TILE_M];
    uk->pv_tile_n = pv_pr.v[P_TILE_N];
    uk->qk_local[0] = (size_t)(qk_pr.v[P_TILE_N] / qk_pr.v[P_WPT_N]);
    uk->qk_local[1] = (size_t)(qk_pr.v[P_TILE_M] / qk_pr.v[P_WPT_M]);
    uk->qk_local[2] = 1;
    uk->sm_local[0] = (size_t)sm_pr.v[P_SM_WG];
    uk->sm_local[1] = 1;
    uk->pv_local[0] = (size_t)(pv_pr.v[P_TILE_N] / pv_pr.v[P_WPT_N]);
    uk->pv_local[1] = (size_t)(pv_pr.v[P_TILE_M] / pv_pr.v[P_WPT_M]);
    uk->pv_local[2] = 1;
    /* Each kernel's CL_KERNEL_WORK_GROUP_SIZE was held against these when the plan was resolved
       (clattn_params_try). */
    return CLATTN_SUCCESS;
}

/* Arguments that are the same for every chunk. A NULL mask, lse or (Lk == 0) score buffer is passed
   as a NULL pointer, which OpenCL allows for __global pointers: the kernels never touch it. */
static clattn_status set_common_args(clattn_context *ctx, const clattn_problem *p, unfused_kernels *uk,
                                     cl_mem q, cl_mem k, cl_mem v, cl_mem mask, cl_mem out, cl_mem scores,
                                     cl_mem lse, const clattn_variant_args *va)
{
    const cl_long q_bs = p->q_bs, q_hs = p->q_hs, q_rs = p->q_rs;
    const cl_long k_bs = p->k_bs, k_hs = p->k_hs, k_rs = p->k_rs;
    const cl_long v_bs = p->v_bs, v_hs = p->v_hs, v_rs = p->v_rs;
    const cl_long o_bs = p->o_bs, o_hs = p->o_hs, o_rs = p->o_rs;
    const cl_long m_bs = p->mask_bs, m_hs = p->mask_hs, m_rs = p->mask_rs;
    const cl_long s_bs = p->s_bs, s_hs = p->s_hs, s_rs = p->s_rs;   /* int8 K/V scales */
    const cl_int Lq = p->Lq, Lk = p->Lk, d = p->d, dv = p->dv, Hq = p->Hq, group = p->group;
    const cl_int causal_offset = p->causal_offset, lo_offset = p->lo_offset;
    const cl_float scale = clattn_variant_score_scale(p), softcap = p->softcap;
    const kernel_arg qk_args[] = {ARG(q),    ARG(k),    ARG(mask), ARG(scores), ARG(Lk),
                                  ARG(d),    ARG(Hq),   ARG(group), ARG(q_bs),  ARG(q_hs),
                                  ARG(q_rs), ARG(k_bs), ARG(k_hs), ARG(k_rs),   ARG(m_bs),
                                  ARG(m_hs), ARG(m_rs), ARG(scale), ARG(causal_offset),
                                  ARG(Lq),   ARG(lo_offset), ARG(softcap), ARG(va->alibi),
                                  ARG(p->k_scale), ARG(s_bs), ARG(s_hs), ARG(s_rs)};
    const kernel_arg sm_args[] = {ARG(scores), ARG(lse), ARG(Lq), ARG(Lk), ARG(Hq), ARG(va->sinks)};
    const kernel_arg pv_args[] = {ARG(scores), ARG(v),    ARG(out),  ARG(Lk),   ARG(dv),
                                  ARG(Hq),     ARG(group), ARG(v_bs), ARG(v_hs), ARG(v_rs),
                                  ARG(o_bs),   ARG(o_hs), ARG(o_rs), ARG(causal_offset),
                                  ARG(lo_offset), ARG(p->v_scale), ARG(s_bs), ARG(s_hs), ARG(s_rs)};
    clattn_status st;
    uk->n_common_qk = COUNT(qk_args);
    uk->n_common_sm = COUNT(sm_args);
    uk->n_common_pv = COUNT(pv_args);
    if ((st = set_args(ctx, uk->qk, 0, qk_args, COUNT(qk_args))) != CLATTN_SUCCESS ||
        (st = set_args(ctx, uk->sm, 0, sm_args, COUNT(sm_args))) != CLATTN_SUCCESS)
        return st;
    return set_args(ctx, uk->pv, 0, pv_args, COUNT(pv_args));
}

/* ---- chunks ---------------------------------------------------------------------------------- */

/* Full chunks cover heads_per_chunk heads of rows_per_chunk rows; the last of each may be short. */
typedef struct chunk_plan {
    int heads_per_chunk;
    int rows_per_chunk;
    size_t scratch_bytes;  /* 0: the scores go to probs (or there are none) */
    cl_mem copy_to;        /* probs, when the scores go through scratch and are copied there */
} chunk_plan;

static clattn_status plan_chunks(clattn_context *ctx, const clattn_problem *p, cl_mem probs,
                                 size_t chunk_bytes, chunk_plan *plan)
{
    const int n_bh = p->B * p->Hq;
    plan->heads_per_chunk = n_bh;
    plan->rows_per_chunk = p->Lq;
    plan->scratch_bytes = 0;
    plan->copy_to = NULL;
    if (p->Lk == 0)
        return CLATTN_SUCCESS;
    if (probs) {
        cl_mem_flags flags = 0;
        cl_int err = clGetMemObjectInfo(probs, CL_MEM_FLAGS, sizeof flags, &flags, NULL);
        if (err != CL_SUCCESS)
            return clattn_fail_cl(ctx, err, "clGetMemObjectInfo(probs, CL_MEM_FLAGS)");
        if (!(flags & CL_MEM_WRITE_ONLY))
            return CLATTN_SUCCESS;
        plan->copy_to = probs;
    }

    size_t cap = chunk_bytes;
    if (cap > ctx->info.max_alloc_bytes)
        cap = (size_t)ctx->info.max_alloc_bytes;
    const size_t row_bytes = (size_t)p->Lk * sizeof(float);
    const size_t head_bytes = row_bytes * (size_t)p->Lq;
    if (head_bytes <= cap) {
        size_t heads = cap / head_bytes;
        if (heads < (size_t)n_bh)
            plan->heads_per_chunk = (int)heads;
    } else {
        size_t rows = cap / row_bytes;
        if (rows == 0)
            return clattn_fail(ctx, CLATTN_OUT_OF_MEMORY,
                               "one row of %d scores (%zu bytes) exceeds the unfused path's scratch "
                               "limit of %zu bytes; use the fused path",
                               p->Lk, row_bytes, cap);
        /* A multiple of the largest row tile, so that no tile straddles two chunks. A chunk is then
           whole heads or rows of one head: one contiguous range of probs, for the copy. */
        if (rows > 128)
            rows -= rows % 128;
        plan->heads_per_chunk = 1;
        plan->rows_per_chunk = (int)rows;
    }
    plan->scratch_bytes = (size_t)plan->heads_per_chunk * (size_t)plan->rows_per_chunk * row_bytes;
    return CLATTN_SUCCESS;
}

static size_t groups(size_t n, int tile)
{
    return (n + (size_t)tile - 1) / (size_t)tile;
}

/* The three launches of one chunk: heads [bh0, bh0 + heads), rows [row0, row0 + rows). */
static clattn_status enqueue_chunk(clattn_context *ctx, const clattn_problem *p, const unfused_kernels *uk,
                                   const chunk_plan *plan, cl_mem scores, cl_int bh0, int heads,
                                   cl_int row0, cl_int rows, cl_long s_bhs)
{
    const kernel_arg chunk_args[] = {ARG(bh0), ARG(row0), ARG(rows), ARG(s_bhs)};
    const kernel_arg sm_chunk_args[] = {ARG(bh0), ARG(row0), ARG(s_bhs)};
    /* Work-groups tile (keys or dv) x rows x heads. */
    const size_t qk_global[3] = {groups((size_t)p->Lk, uk->qk_tile_n) * uk->qk_local[0],
                                 groups((size_t)rows, uk->qk_tile_m) * uk->qk_local[1], (size_t)heads};
    const size_t sm_global[2] = {(size_t)rows * uk->sm_local[0], (size_t)heads};
    const size_t pv_global[3] = {groups((size_t)p->dv, uk->pv_tile_n) * uk->pv_local[0],
                                 groups((size_t)rows, uk->pv_tile_m) * uk->pv_local[1], (size_t)heads};
    clattn_status st;
    st = set_args(ctx, uk->qk, (cl_uint)uk->n_common_qk, chunk_args, COUNT(chunk_args));
    if (st == CLATTN_SUCCESS)
        st = set_args(ctx, uk->sm, (cl_uint)uk->n_common_sm, sm_chunk_args, COUNT(sm_chunk_args));
    if (st == CLATTN_SUCCESS)
        st = set_args(ctx, uk->pv, (cl_uint)uk->n_common_pv, chunk_args, COUNT(chunk_args));
    if (st != CLATTN_SUCCESS)
        return st;
    /* Lk == 0 gives qk an empty range, which clattn_launch skips; softmax still writes lse -inf and
       P·V zeros. */
    st = clattn_launch(ctx, uk->qk, 3, qk_global, uk->qk_local, "qk_scores");
    if (st == CLATTN_SUCCESS)
        st = clattn_launch(ctx, uk->sm, 2, sm_global, uk->sm_local, "softmax_rows");
    if (st != CLATTN_SUCCESS)
        return st;
    if (plan->copy_to) {
        /* Ordered after softmax (in-order queue, or clattn_launch's barrier), and before the barrier
           that follows P·V, so the next chunk cannot overwrite the scratch under it. */
        const size_t row_bytes = (size_t)p->Lk * sizeof(float);
        const size_t offset = ((size_t)bh0 * (size_t)p->Lq + (size_t)row0) * row_bytes;
        cl_int err = clEnqueueCopyBuffer(ctx->queue, scores, plan->copy_to, 0, offset,
                                         (size_t)heads * (size_t)rows * row_bytes, 0, NULL, NULL);
        if (err != CL_SUCCESS)
            return clattn_fail_cl(ctx, err, "copying probabilities to the write-only probs buffer");
    }
    return clattn_launch(ctx, uk->pv, 3, pv_global, uk->pv_local, "pv");
}

/* ---- enqueue --------------------------------------------------------------------------------- */

/* Decode (one query row) with grouped KV heads: the group's query heads all read the same K and V,
   and their rows lie at one stride from each other in q, out, probs, lse and the mask (Lq = 1), so
   the problem is the same as Hkv heads of `group` query rows each. Tiles then fill with rows that
   share their K/V loads instead of holding one row each. Only where causality hides nothing from
   the single row (the folded rows would otherwise see different keys). */
static int fold_group_rows(const clattn_problem *p, clattn_problem *f)
{
    /* The folded rows are heads, not positions: no per-head term (ALiBi, sinks) may follow them. */
    if (p->Lq != 1 || p->group == 1 || (p->causal_bound && p->causal_offset < p->Lk - 1) ||
        p->window_lo || p->alibi || p->sinks)
        return 0;
    *f = *p;
    f->Hq = p->Hkv;
    f->group = 1;
    f->Lq = p->group;
    f->causal = CLATTN_CAUSAL_NONE;
    f->causal_bound = 0;
    f->causal_offset = 0;
    f->q_rs = p->q_hs, f->q_hs = p->q_hs * p->group;
    f->o_rs = p->o_hs, f->o_hs = p->o_hs * p->group;
    f->mask_rs = p->mask_hs, f->mask_hs = p->mask_hs * p->group;
    return 1;
}

clattn_status clattn_unfused_plan(clattn_context *ctx, const clattn_problem *p,
                                  const clattn_plan_config *cfg, clattn_plan *plan)
{
    static const clattn_family *const families[3] = {&clattn_family_qk, &clattn_family_softmax,
                                                     &clattn_family_pv};
    clattn_problem folded;
    if (fold_group_rows(p, &folded))
        p = &folded;
    if ((long)p->B * p->Hq > INT_MAX)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "batch*heads_q = %ld exceeds the unfused path's limit %d",
                           (long)p->B * p->Hq, INT_MAX);
    /* llvmpipe ends loops early (host/core/loop_cap.c): refuse what it would cut short. */
    const int cap_keys = clattn_unfused_keys_under_cap(&ctx->info);
    if (cap_keys && p->Lk > cap_keys)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED,
                           "unfused path: Lk = %d exceeds the %d keys that %s runs correctly (it ends "
                           "loops after %ld iterations)", p->Lk, cap_keys, ctx->info.name,
                           clattn_device_loop_cap(&ctx->info));
    for (int i = 0; i < 3; i++) {
        clattn_status st = clattn_plan_params(ctx, families[i], p, cfg, &plan->step[i]);
        if (st != CLATTN_SUCCESS)
            return st;
    }
    plan->n_steps = 3;
    return CLATTN_SUCCESS;
}

clattn_status clattn_unfused_run(clattn_context *ctx, const clattn_plan *plan, cl_mem q, cl_mem k,
                                 cl_mem v, cl_mem mask, cl_mem out, cl_mem probs, cl_mem lse,
                                 size_t chunk_bytes)
{
    unfused_kernels uk;
    chunk_plan chunks;
    cl_mem scores = NULL;
    clattn_status st;
    const clattn_problem *p = &plan->step[0].p;   /* folded or not, every step runs the same one */

    if ((st = prepare_kernels(ctx, plan, &uk)) != CLATTN_SUCCESS ||
        (st = plan_chunks(ctx, p, probs, chunk_bytes ? chunk_bytes : UNFUSED_CHUNK_BYTES, &chunks)) !=
            CLATTN_SUCCESS)
        return st;
    if (!chunks.scratch_bytes)
        scores = probs;   /* in place, or NULL when Lk == 0 */
    else if ((st = clattn_scratch_get(ctx, CLATTN_SCRATCH_SCORES, chunks.scratch_bytes, &scores)) !=
             CLATTN_SUCCESS)
        return st;
    clattn_variant_args va;
    if ((st = clattn_variant_args_make(ctx, p, &va)) != CLATTN_SUCCESS)
        return st;
    if ((st = set_common_args(ctx, p, &uk, q, k, v, mask, out, scores, lse, &va)) != CLATTN_SUCCESS) {
        clattn_variant_args_release(&va);
        return st;
    }

    /* Chunks reuse one scratch buffer: the queue's order (or clattn_launch's barriers on an
       out-of-order queue) keeps a chunk's Q·Kᵀ from overwriting scores the previous P·V still reads. */
    const int n_bh = p->B * p->Hq;
    const cl_long s_bhs = (cl_long)chunks.rows_per_chunk * p->Lk;
    for (int bh0 = 0; bh0 < n_bh; bh0 += chunks.heads_per_chunk) {
        const int heads = n_bh - bh0 < chunks.heads_per_chunk ? n_bh - bh0 : chunks.heads_per_chunk;
        for (int row0 = 0; row0 < p->Lq; row0 += chunks.rows_per_chunk) {
            const int rows = p->Lq - row0 < chunks.rows_per_chunk ? p->Lq - row0 : chunks.rows_per_chunk;
            st = enqueue_chunk(ctx, p, &uk, &chunks, scores, bh0, heads, row0, rows, s_bhs);
            if (st != CLATTN_SUCCESS)
                break;
        }
        if (st != CLATTN_SUCCESS)
            break;
    }
    clattn_variant_args_release(&va);
    return st;
}

clattn_status clattn_unfused_enqueue_chunked(clattn_context *ctx, const clattn_problem *p, cl_mem q,
                                             cl_mem k, cl_mem v, cl_mem mask, cl_mem out, cl_mem probs,
                                             cl_mem lse, size_t chunk_bytes)
{
    clattn_plan plan;
    clattn_problem up = *p;
    up.path = CLATTN_PATH_UNFUSED;
    clattn_status st = clattn_plan_resolve(ctx, &up, probs != NULL, NULL, &plan);
    if (st != CLATTN_SUCCESS || plan.n_steps == 0)
        return st;
    return clattn_unfused_run(ctx, &plan, q, k, v, mask, out, probs, lse, chunk_bytes);
}
