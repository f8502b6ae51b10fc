/* The fused path: online-softmax attention in one kernel (cl/flash_attention.cl), and split-KV
 * decoding, where several work-groups share one row's keys and cl/merge.cl combines their partial
 * results. Nothing here grows with Lq·Lk: the only scratch is the split partials,
 * B·Hq·Lq·splits·dv floats. */
#include "host/attention/attention.h"
#include "host/attention/defaults.h"

#include <string.h>
#include <stdio.h>

/* Query rows per KV head (Hq/Hkv · Lq) up to which a problem is decode-shaped: it takes the
   flash_split family, whose defaults suit a handful of rows and long key ranges. */
#define DECODE_ROWS 16
/* A split chunk keeps at least this many keys, so that loading the Q block and the merge stay small
   next to the chunk's work. */
#define MIN_SPLIT_KEYS 256
#define MAX_SPLITS 64
/* Split partials above this stay unsplit: the point of splitting is a small problem. */
#define MAX_PARTIAL_BYTES ((size_t)256 << 20)
/* A ragged batch is split as if its sequences were on average this many times shorter than its
   longest (which the host cannot see: the lengths are on the device), so that the longest does
   not finish alone while the device has nothing else to do; chunks past a short sequence's keys
   return at once. Measured on the 2-core CPU (clattn-bench --serving, paged decode, medians of
   two runs): 16 sequences up to 4k keys: 8 (no split) 20.6-22.1 ms, 64 (2 splits) 17.7-18.0 ms,
   which the tuner also chose; 64 sequences up to 16k: 8 123.8 ms, 64 111.4 ms, 256 111.1 ms, 1024
   115.1 ms; chunks of 2048 keys whatever the batch (8 splits there) 109.7 ms. */
#define VARLEN_SKEW 64


/* Local memory the kernel declares, mirroring cl/flash_attention.cl: Ql, Kl, Vl, Sl, v_bad,
   red_m/red_s when several work-items share a row, and the ragged and paged tables' flags and rows. */
static size_t flash_local_bytes(const clattn_params *pr, const clattn_problem *p)
{
    const int d = p->d, dv = p->dv;
    size_t bm = (size_t)pr->v[P_BLOCK_M], bn = (size_t)pr->v[P_BLOCK_N], wpr = (size_t)pr->v[P_WPR];
    size_t step = wpr * (size_t)pr->v[P_UNROLL];
    size_t dvp = ((size_t)dv + step - 1) / step * step;
    size_t kd = (size_t)d + (wpr > 1 ? 1 : 0);
    size_t sld = bm + (pr->v[P_VW] == 1 && wpr > 1 ? 1 : 0);
    size_t floats = (size_t)d * bm + bn * kd + bn * dvp + bn * sld + (wpr > 1 ? 2 * wpr * bm : 0);
    /* v_bad; a ragged batch's q_bad; a paged one's row table Rl and index_bad */
    size_t ints = 1 + (p->varlen ? 1 : 0) + (p->paged ? bn + 1 : 0);
    return floats * sizeof(float) + ints * sizeof(int);
}

/* One work-group serves BLOCK_M rows, VW*RM rows per work-item, WPR work-items per row. */
static size_t flash_work_group_size(const clattn_params *pr)
{
    return (size_t)(pr->v[P_BLOCK_M] / (pr->v[P_VW] * pr->v[P_RM])) * (size_t)pr->v[P_WPR];
}

static int flash_valid(const clattn_params *pr, const clattn_device_info *dev,
                       const clattn_problem *p, char *why, size_t why_len)
{
    const int bm = pr->v[P_BLOCK_M], bn = pr->v[P_BLOCK_N], vw = pr->v[P_VW], rm = pr->v[P_RM];
    const int wpr = pr->v[P_WPR], unroll = pr->v[P_UNROLL];
    if (!clattn_params_in_range(clattn_flash_params, P_COUNT, pr, why, why_len))
        return 0;
    if (!clattn_is_vector_width(vw)) {
        snprintf(why, why_len, "VW=%d is not a vector width (1, 2, 4, 8, 16)", vw);
        return 0;
    }
    /* two values up to CLATTN_PARAM_MAX multiply past an int (65536 * 65536 wraps to 0), never
       past a long long */
    const long long rows_per_item = (long long)vw * rm, keys_per_step = (long long)wpr * unroll;
    if (bm % rows_per_item != 0) {
        snprintf(why, why_len, "BLOCK_M=%d is not a multiple of VW*RM=%lld", bm, rows_per_item);
        return 0;
    }
    if (bn % keys_per_step != 0) {
        snprintf(why, why_len, "BLOCK_N=%d is not a multiple of WPR*UNROLL=%lld", bn, keys_per_step);
        return 0;
    }
    size_t wgs = flash_work_group_size(pr);
    if (wgs > dev->max_work_group || wgs > dev->max_work_item[0]) {
        snprintf(why, why_len, "work-group of %zu exceeds the device's limit %zu", wgs,
                 dev->max_work_group);
        return 0;
    }
    /* Under a loop-iteration cap (llvmpipe, host/core/loop_cap.c) only VW 1, RM 1 and UNROLL 4
       leave loops the compiler unrolls; every other point reaches the cap within a few tiles. Keys
       one work-group walks correctly, measured: d = 64, VW 16: 96, VW 4: 288; d = 128, VW 1:
       UNROLL 1: 208, 2: 432, 8: 176, RM 2: 144, and UNROLL 4, RM 1: 864 (3504 with WPR 4). The
       split count then bounds the keys per work-group. */
    if ((vw != 1 || rm != 1 || unroll != 4) && clattn_device_loop_cap(dev)) {
        snprintf(why, why_len, "VW=%d RM=%d UNROLL=%d: this implementation ends loops after %ld "
                 "iterations, which these reach; VW 1, RM 1, UNROLL 4 only", vw, rm, unroll,
                 clattn_device_loop_cap(dev));
        return 0;
    }
    size_t local = flash_local_bytes(pr, p);
    if (local > dev->local_mem_bytes) {
        snprintf(why, why_len, "tiles need %zu bytes of local memory, the device has %llu", local,
                 (unsigned long long)dev->local_mem_bytes);
        return 0;
    }
    return 1;
}

/* SPLIT_OCC only sets the split count: values giving the same count launch the same work, so pr
   takes ref's value, or else the first of the family's candidates (defs), that gives its count. */
static void canonical_occ(const clattn_param_def *defs, clattn_params *pr, const clattn_params *ref,
                          const clattn_device_info *dev, const clattn_problem *p)
{
    int splits = clattn_flash_splits_on(dev, p, pr);
    clattn_params alt = *pr;
    alt.v[P_SPLIT_OCC] = ref->v[P_SPLIT_OCC];
    if (clattn_flash_splits_on(dev, p, &alt) == splits) {
        *pr = alt;
        return;
    }
    const clattn_param_def *occ = &defs[P_SPLIT_OCC];
    for (int i = 0; i < occ->n_candidates; i++) {
        alt.v[P_SPLIT_OCC] = occ->candidates[i];
        if (clattn_flash_splits_on(dev, p, &alt) == splits) {
            *pr = alt;
            return;
        }
    }
}

static void flash_canonical(clattn_params *pr, const clattn_params *ref,
                            const clattn_device_info *dev, const clattn_problem *p)
{
    canonical_occ(clattn_flash_params, pr, ref, dev, p);
}

/* A sliding window: a block's keys span the window plus the positions of its rows, so a tall block
   reads keys that most of its rows do not see. The default block is cut (by halves, to one row
   vector at least) until its positions are at most 1/WINDOW_BLOCK_SHARE of the window. Measured
   on the 2-core CPU (window 512, L 8192, bench long-window512, quiet machine), once the Q block
   was staged in runs rather than element by element: BLOCK_M 128 40.3 ms, 64 41.6 ms, 32 44.3 ms,
   16 46.1 ms (BLOCK_N 16 and 32 alike, 64 worse); so 4, which keeps 128 at window 512 and cuts
   for narrower windows only. */
#define WINDOW_BLOCK_SHARE 4
static void flash_fit_defaults(clattn_params *pr, const clattn_problem *p)
{
    if (!p->window_lo || !p->causal_bound)
        return;
    const long seen = (long)p->causal_offset - p->lo_offset + 1;   /* keys a row sees, at most */
    const int min_bm = pr->v[P_VW] * pr->v[P_RM];
    while (pr->v[P_BLOCK_M] / 2 >= min_bm &&
           (long)pr->v[P_BLOCK_M] * WINDOW_BLOCK_SHARE > seen * p->group)
        pr->v[P_BLOCK_M] /= 2;
}

const clattn_family clattn_family_flash = {"flash", "flash_attention.cl", P_COUNT, clattn_flash_params,
                                           flash_valid, flash_canonical, flash_fit_defaults,
                                           flash_local_bytes, flash_work_group_size};
const clattn_family clattn_family_flash_split = {"flash_split", "flash_attention.cl", P_COUNT,
                                                 clattn_flash_split_params, flash_valid, flash_canonical,
                                                 NULL, flash_local_bytes, flash_work_group_size};

/* ---- flash_decode (cl/flash_decode.cl) ------------------------------------------------------- */

/* Lanes along d in cl/flash_decode.cl, and the head dimensions it takes: its private arrays hold
   a row's q and accumulator, BLOCK_M rows at a time. */
#define DECODE_LANES 16
#define DECODE_MAX_DIM 256

/* Whether cl/flash_decode.cl serves p on dev, and if not, why (one rule, for the routing and for
   valid()). What it does not serve runs on flash_split, which serves everything. */
static int decode_serves(const clattn_device_info *dev, const clattn_problem *p, char *why,
                         size_t why_len)
{
    const char *no = NULL;
    if (dev->cls != CLATTN_CLASS_CPU)
        no = "its vector lanes along d suit CPUs only";
    else if (clattn_device_loop_cap(dev))
        no = "the device ends long loops early";
    else if ((long)p->group * p->Lq > DECODE_ROWS)
        no = "more than 16 query rows per KV head";
    else if (p->d % DECODE_LANES || p->dv % DECODE_LANES || p->d > DECODE_MAX_DIM ||
             p->dv > DECODE_MAX_DIM)
        no = "d and dv must be multiples of 16, at most 256";
    else if (p->mask_type != CLATTN_MASK_NONE)
        no = "no mask";
    else if (clattn_problem_variants(p) &
             ~(CLATTN_VARIANT_KV_INT8 | CLATTN_VARIANT_VARLEN | CLATTN_VARIANT_PAGED))
        no = "no window, soft-cap, ALiBi or sinks";
    if (no && why)
        snprintf(why, why_len, "flash_decode: %s", no);
    return !no;
}

static int decode_valid(const clattn_params *pr, const clattn_device_info *dev,
                        const clattn_problem *p, char *why, size_t why_len)
{
    if (!clattn_params_in_range(clattn_flash_decode_params, P_COUNT, pr, why, why_len) ||
        !decode_serves(dev, p, why, why_len))
        return 0;
    if (pr->v[P_BLOCK_N] != DECODE_LANES || pr->v[P_VW] != DECODE_LANES || pr->v[P_RM] != 1 ||
        pr->v[P_WPR] != 1 || pr->v[P_UNROLL] != 1 || pr->v[P_LVW] != 1) {
        snprintf(why, why_len, "flash_decode takes BLOCK_N=VW=16 and RM=WPR=UNROLL=LVW=1");
        return 0;
    }
    return 1;
}

/* SPLIT_OCC of the default for a ragged batch. Its split count comes from VARLEN_SKEW against
   SPLIT_OCC (clattn_flash_splits_on): the host cannot see the lengths, and a long sequence among
   short ones needs short chunks. Measured (clattn-bench --serving, paged decode of 64 sequences
   up to 16k keys, 2-core Xeon): 83.5 ms at 256 (chunks of 256 keys) against 131-138 ms at 16, the
   dense default (defaults.c), which splits the longest sequence only 4 ways. */
#define DECODE_VARLEN_OCC 256

/* Rows per work-item cut to the problem's rows (a power of two at least): more only idle. */
static void decode_cut_rows(clattn_params *pr, const clattn_problem *p)
{
    const long rows = (long)p->group * p->Lq;
    while (pr->v[P_BLOCK_M] / 2 >= rows && pr->v[P_BLOCK_M] > 1)
        pr->v[P_BLOCK_M] /= 2;
}

static void decode_fit_defaults(clattn_params *pr, const clattn_problem *p)
{
    decode_cut_rows(pr, p);
    if (p->varlen)
        pr->v[P_SPLIT_OCC] = DECODE_VARLEN_OCC;
}

static void decode_canonical(clattn_params *pr, const clattn_params *ref,
                             const clattn_device_info *dev, const clattn_problem *p)
{
    decode_cut_rows(pr, p);
    canonical_occ(clattn_flash_decode_params, pr, ref, dev, p);
}

/* No local memory, one work-item a work-group. */
static size_t decode_local_bytes(const clattn_params *pr, const clattn_problem *p)
{
    (void)pr;
    (void)p;
    return 0;
}

static size_t decode_work_group_size(const clattn_params *pr)
{
    (void)pr;
    return 1;
}

const clattn_family clattn_family_flash_decode = {"flash_decode", "flash_decode.cl", P_COUNT,
                                                  clattn_flash_decode_params, decode_valid,
                                                  decode_canonical, decode_fit_defaults,
                                                  decode_local_bytes, decode_work_group_size};

const clattn_family *clattn_flash_family_for(const clattn_device_info *dev, const clattn_problem *p)
{
    if ((long)p->group * p->Lq > DECODE_ROWS)
        return &clattn_family_flash;
    return decode_serves(dev, p, NULL, 0) ? &clattn_family_flash_decode
                                          : &clattn_family_flash_split;
}

/* Work-groups of the unsplit launch. */
static long row_groups(const clattn_problem *p, const clattn_params *pr)
{
    long rows = (long)p->group * p->Lq;
    return (long)p->B * p->Hkv * ((rows + pr->v[P_BLOCK_M] - 1) / pr->v[P_BLOCK_M]);
}

int clattn_flash_splits(const clattn_context *ctx, const clattn_problem *p, const clattn_params *pr)
{
    return clattn_flash_splits_on(&ctx->info, p, pr);
}

static int dense_splits(const clattn_device_info *dev, const clattn_problem *p,
                        const clattn_params *pr);

/* splits held to the key length (MIN_SPLIT_KEYS a chunk), MAX_SPLITS and MAX_PARTIAL_BYTES. */
static int bounded_splits(const clattn_problem *p, long splits)
{
    long by_length = p->Lk / MIN_SPLIT_KEYS;
    if (splits > by_length)
        splits = by_length;
    if (splits > MAX_SPLITS)
        splits = MAX_SPLITS;
    size_t per_split = (size_t)p->B * p->Hq * p->Lq * ((size_t)p->dv + 1) * sizeof(float);
    while (splits > 1 && per_split * (size_t)splits > MAX_PARTIAL_BYTES)
        splits--;
    return splits > 1 ? (int)splits : 1;
}

int clattn_flash_splits_on(const clattn_device_info *dev, const clattn_problem *p,
                           const clattn_params *pr)
{
    int splits = dense_splits(dev, p, pr);
    if (!p->varlen || clattn_flash_keys_under_cap(dev, p->d, p->dv, pr->v[P_RM]))
        return splits;   /* under a loop cap, the cap's splits (dense_splits) are what counts */
    const long groups = row_groups(p, pr), target = (long)dev->compute_units * pr->v[P_SPLIT_OCC];
    const int by_skew = bounded_splits(p, (VARLEN_SKEW * target + groups - 1) /
                                              (groups > 0 ? groups : 1));
    return by_skew > splits ? by_skew : splits;
}

static int dense_splits(const clattn_device_info *dev, const clattn_problem *p,
                        const clattn_params *pr)
{
    long groups = row_groups(p, pr);
    long target = (long)dev->compute_units * pr->v[P_SPLIT_OCC];
    /* Under a loop-iteration cap, enough splits that no work-group walks more keys than it can
       (whole tiles of them); more than MAX_SPLITS leaves the plan to refuse the problem. */
    const int capped = clattn_flash_keys_under_cap(dev, p->d, p->dv, pr->v[P_RM]);
    const int tile = pr->v[P_BLOCK_N] > 0 ? pr->v[P_BLOCK_N] : 1;
    const long cap_keys = capped ? (capped >= tile ? capped / tile * tile : tile) : 0;
    const long needed = capped ? (p->Lk + cap_keys - 1) / cap_keys : 1;
    if (needed > 1)
        return needed < MAX_SPLITS ? (int)needed : MAX_SPLITS;
    if (groups <= 0 || groups >= target)
        return 1;
    return bounded_splits(p, (target + groups - 1) / groups);
}

/* The split count rounded so that every range is whole tiles and none is empty. */
static void split_ranges(const clattn_problem *p, const clattn_params *pr, int splits, int *out_splits,
                         int *keys)
{
    const int bn = pr->v[P_BLOCK_N];
    *out_splits = 1;
    *keys = p->Lk;
    if (splits <= 1)
        return;
    int chunk = (p->Lk + splits - 1) / splits;
    chunk = (chunk + bn - 1) / bn * bn;
    if (chunk <= 0)
        return;
    *out_splits = (p->Lk + chunk - 1) / chunk;
    *keys = *out_splits > 1 ? chunk : p->Lk;
}

/* The merge step that combines split partials, when there is more than one. */
static clattn_status add_merge(clattn_context *ctx, const clattn_plan_config *cfg, clattn_plan *plan)
{
    if (plan->splits <= 1)
        return CLATTN_SUCCESS;
    return clattn_plan_params(ctx, &clattn_family_merge, &plan->p, cfg, &plan->step[plan->n_steps++]);
}

/* The fused steps of plan under cfg, with splits key ranges (< 0: as many as the device calls
   for with the step's parameters). */
static clattn_status fill_plan(clattn_context *ctx, const clattn_problem *p,
                               const clattn_plan_config *cfg, int splits, clattn_plan *plan)
{
    clattn_plan_step *s = &plan->step[0];
    clattn_status st = clattn_plan_params(ctx, clattn_flash_family_for(&ctx->info, p), p, cfg, s);
    if (st != CLATTN_SUCCESS)
        return st;
    plan->n_steps = 1;
    if (splits < 0)
        splits = clattn_flash_splits_on(&ctx->info, p, &s->params);
    split_ranges(p, &s->params, splits, &plan->splits, &plan->split_keys);
    const int cap_keys = clattn_flash_keys_under_cap(&ctx->info, p->d, p->dv, s->params.v[P_RM]);
    if (cap_keys && plan->split_keys > cap_keys)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED,
                           "fused path: %d keys per work-group (Lk = %d in %d splits) exceed the %d "
                           "that %s runs correctly (it ends loops after %ld iterations); use the "
                           "unfused path or fewer keys", plan->split_keys, p->Lk, plan->splits,
                           cap_keys, ctx->info.name, clattn_device_loop_cap(&ctx->info));
    return add_merge(ctx, cfg, plan);
}

clattn_status clattn_flash_plan(clattn_context *ctx, const clattn_problem *p,
                                const clattn_plan_config *cfg, clattn_plan *plan)
{
    return fill_plan(ctx, p, cfg, -1, plan);
}

#define ARG(x)                                                                                    \
    do {                                                                                          \
        st = clattn_set_arg(ctx, kernel, a++, sizeof(x), &(x));                                   \
        if (st != CLATTN_SUCCESS)                                                                 \
            goto out;                                                                             \
    } while (0)

clattn_status clattn_flash_kernel(clattn_context *ctx, const clattn_plan *plan, cl_kernel *out)
{
    const clattn_problem *p = &plan->p;
    /* The head dimensions are compile-time, so that the kernel's loops over them unroll. */
    char options[512];
    snprintf(options, sizeof options, "-DHEAD_D=%d -DHEAD_DV=%d -DSPLIT=%d", p->d, p->dv,
             plan->splits > 1);
    if (clattn_problem_defines(p, options, sizeof options) ||
        clattn_params_defines(plan->step[0].family, &plan->step[0].params, options, sizeof options))
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "flash kernel options too long");
    /* each fused kernel is named as its file (flash_attention.cl: flash_attention) */
    const char *file = plan->step[0].family->file;
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(file, "."), file);
    return clattn_kernel_get(ctx, file, options, name, out);
}

/* The problem the merge of a ragged batch's partials writes: one "batch entry" of total_q packed
   rows, token-major, which is out's [total_q, Hq, dv] and lse's [Hq, total_q]. */
static clattn_status varlen_merge_problem(clattn_context *ctx, const clattn_problem *p, int total_q,
                                          clattn_problem *pm)
{
    clattn_attention_desc d;
    memset(&d, 0, sizeof d);
    d.batch = 1;
    d.heads_q = p->Hq;
    d.seq_q = total_q;
    d.head_dim = p->dv;
    d.dtype = p->dtype;
    d.layout = CLATTN_LAYOUT_BSHD;
    char err[256];
    if (clattn_problem_init(&d, pm, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "varlen merge: %s", err);
    return CLATTN_SUCCESS;
}

static clattn_status flash_launch(clattn_context *ctx, const clattn_plan *plan,
                                  const clattn_flash_tables *t, cl_mem q, cl_mem k, cl_mem v,
                                  cl_mem mask, cl_mem out, cl_mem lse);

clattn_status clattn_flash_run(clattn_context *ctx, const clattn_plan *plan, cl_mem q, cl_mem k,
                               cl_mem v, cl_mem mask, cl_mem out, cl_mem lse)
{
    return flash_launch(ctx, plan, NULL, q, k, v, mask, out, lse);
}

clattn_status clattn_flash_run_varlen(clattn_context *ctx, const clattn_plan *plan,
                                      const clattn_flash_tables *t, cl_mem q, cl_mem k, cl_mem v,
                                      cl_mem out, cl_mem lse)
{
    return flash_launch(ctx, plan, t, q, k, v, NULL, out, lse);
}

static clattn_status flash_launch(clattn_context *ctx, const clattn_plan *plan,
                                  const clattn_flash_tables *t, cl_mem q, cl_mem k, cl_mem v,
                                  cl_mem mask, cl_mem out, cl_mem lse)
{
    clattn_status st = CLATTN_SUCCESS;
    const clattn_problem *p = &plan->p;
    const clattn_params *pr = &plan->step[0].params;
    const int bm = pr->v[P_BLOCK_M];
    const int splits = plan->splits, split = splits > 1;
    const int chunk = plan->split_keys;

    cl_kernel kernel;
    st = clattn_flash_kernel(ctx, plan, &kernel);
    if (st != CLATTN_SUCCESS)
        return st;

    cl_mem dst = out, dst_lse = lse;
    long o_bs = p->o_bs, o_hs = p->o_hs, o_rs = p->o_rs, o_split = 0, lse_split = 0;
    /* A ragged batch's rows are packed: Hq*total_q of them, row (h, t) at h*total_q + t. */
    const long seq_rows = t ? t->total_q : p->Lq;
    if (split) {
        /* Partials: float [splits][B*Hq*Lq][dv], and [2][splits][B*Hq*Lq] (row maxima, then
           sums), as the merge reads them. */
        const long all_rows = (t ? 1 : (long)p->B) * p->Hq * seq_rows;
        o_rs = p->dv;
        o_hs = seq_rows * p->dv;
        o_bs = t ? 0 : (long)p->Hq * o_hs;
        o_split = all_rows * p->dv;
        lse_split = all_rows;
        st = clattn_scratch_get(ctx, CLATTN_SCRATCH_PARTIAL_OUT,
                                (size_t)splits * (size_t)o_split * sizeof(float), &dst);
        if (st == CLATTN_SUCCESS)
            st = clattn_scratch_get(ctx, CLATTN_SCRATCH_PARTIAL_LSE,
                                    2 * (size_t)splits * (size_t)all_rows * sizeof(float), &dst_lse);
        /* A ragged batch's rows that no sequence covers (tables with gaps or skipped sequences:
           only corrupt ones) read as "saw no key": the merge writes them 0 and lse -inf, never
           stale scratch. A kernel, not clEnqueueFillBuffer: oclgrind's checker takes a filled
           buffer for uninitialised. */
        if (st == CLATTN_SUCCESS && t)
            st = clattn_merge_fill_maxima(ctx, p, &plan->step[1].params, dst_lse,
                                          (long)splits * all_rows);
        if (st != CLATTN_SUCCESS)
            return st;
    }
    /* Scores in base 2: exp2 in the kernel, log2(e) folded into the query scale, or into the cap
       that multiplies tanh with soft-capping. */
    const int capped = p->softcap > 0.0f;
    const float qscale = capped ? clattn_variant_score_scale(p)
                                : (float)((double)p->scale * 1.4426950408889634);
    const float softcap_l2 = (float)((double)p->softcap * 1.4426950408889634);
    clattn_variant_args va;
    st = clattn_variant_args_make(ctx, p, &va);
    if (st != CLATTN_SUCCESS)
        return st;
    cl_uint a = 0;
    ARG(q);
    ARG(k);
    ARG(v);
    ARG(mask);   /* NULL without a mask: the kernel never reads it */
    ARG(dst);
    ARG(dst_lse); /* NULL when the caller wants no lse */
    ARG(p->Hq);
    ARG(p->Hkv);
    ARG(p->Lq);
    ARG(p->Lk);
    ARG(qscale);
    ARG(p->causal_offset);
    ARG(chunk);
    ARG(p->q_bs);
    ARG(p->q_hs);
    ARG(p->q_rs);
    ARG(p->k_bs);
    ARG(p->k_hs);
    ARG(p->k_rs);
    ARG(p->v_bs);
    ARG(p->v_hs);
    ARG(p->v_rs);
    ARG(o_bs);
    ARG(o_hs);
    ARG(o_rs);
    ARG(o_split);
    ARG(lse_split);
    ARG(p->mask_bs);
    ARG(p->mask_hs);
    ARG(p->mask_rs);
    ARG(p->lo_offset);
    ARG(softcap_l2);
    ARG(va.alibi);   /* NULL when the call has none: the kernel never reads it */
    ARG(va.sinks);
    ARG(p->k_scale);   /* NULL unless K/V are int8 */
    ARG(p->v_scale);
    ARG(p->s_bs);
    ARG(p->s_hs);
    ARG(p->s_rs);
    {
        const clattn_flash_tables none = {0};
        const clattn_flash_tables *vt = t ? t : &none;   /* NULL buffers and zeros: dense */
        ARG(vt->cu_q);
        ARG(vt->cu_k);
        ARG(vt->seqlens_k);
        ARG(vt->block_table);
        ARG(vt->total_q);
        ARG(vt->total_k);
        ARG(vt->num_blocks);
        ARG(vt->max_blocks);
        ARG(vt->page_shift);
        ARG(vt->causal_abs);
    }

    const size_t wgs = plan->step[0].family->work_group_size(pr);
    const long rows = (long)p->group * p->Lq;
    const size_t global[3] = {(size_t)((rows + bm - 1) / bm) * wgs, (size_t)p->B * (size_t)p->Hkv,
                              (size_t)splits};
    const size_t local[3] = {wgs, 1, 1};
    st = clattn_launch(ctx, kernel, 3, global, local, plan->step[0].family->name);
    if (st == CLATTN_SUCCESS && split) {
        clattn_problem pm;
        const clattn_problem *merged = p;
        if (t) {
            st = varlen_merge_problem(ctx, p, t->total_q, &pm);
            merged = &pm;
        }
        if (st == CLATTN_SUCCESS)
            st = clattn_merge_enqueue_contiguous(ctx, merged, &plan->step[1].params, splits, dst,
                                                 dst_lse, out, lse);
    }
out:
    clattn_variant_args_release(&va);
    return st;
}

clattn_status clattn_flash_enqueue_with(clattn_context *ctx, const clattn_problem *p,
                                        const clattn_params *params, int splits, cl_mem q, cl_mem k,
                                        cl_mem v, cl_mem mask, cl_mem out, cl_mem lse)
{
    clattn_plan plan;
    clattn_plan_config cfg = {clattn_flash_family_for(&ctx->info, p), *params, 0};
    memset(&plan, 0, sizeof plan);
    plan.path = CLATTN_PATH_FUSED;
    plan.p = *p;
    clattn_status st = fill_plan(ctx, p, &cfg, splits < 1 ? 1 : splits, &plan);
    if (st != CLATTN_SUCCESS)
        return st;
    return clattn_flash_run(ctx, &plan, q, k, v, mask, out, lse);
}
