/* The attention tests' shared helpers; see testutil.h for the tolerances. Nothing here uses CMocka
 * assertions, so every helper may run on any thread (test_threads.c calls them from four). */
#include "testutil.h"

#include "host/attention/attention.h"
#include "host/attention/defaults.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers -------------------------------------------------------------------------- */

void tu_rng_seed(tu_rng *r, uint64_t seed)
{
    r->state = seed;
    r->has_spare = 0;
    r->spare = 0.0;
}

/* splitmix64: tiny, fast, and every seed (0 included) gives a good stream. */
uint64_t tu_rng_u64(tu_rng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double tu_rng_uniform(tu_rng *r)
{
    return (double)(tu_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);   /* 53 bits / 2^53 */
}

double tu_rng_normal(tu_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    /* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]. */
    double u1 = 1.0 - tu_rng_uniform(r);
    double u2 = tu_rng_uniform(r);
    double radius = sqrt(-2.0 * log(u1));
    double angle = 6.283185307179586 * u2;
    r->spare = radius * sin(angle);
    r->has_spare = 1;
    return radius * cos(angle);
}

int tu_rng_below(tu_rng *r, int n)
{
    return (int)(tu_rng_u64(r) % (uint64_t)n);
}

/* ---- tensors --------------------------------------------------------------------------------- */

void *tu_alloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        /* A test helper, not the library: there is no sensible way to go on. */
        fprintf(stderr, "testutil: out of host memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

float tu_get(const void *t, clattn_dtype dtype, size_t i)
{
    return clattn_storage_get(t, dtype, i);
}

void tu_set(void *t, clattn_dtype dtype, size_t i, float x)
{
    clattn_storage_set(t, dtype, i, x);
}

void tu_fill_normal(void *t, clattn_dtype dtype, size_t n, float scale, tu_rng *r)
{
    for (size_t i = 0; i < n; i++)
        tu_set(t, dtype, i, (float)tu_rng_normal(r) * scale);
}

void tu_fill_value(void *t, clattn_dtype dtype, size_t n, float x)
{
    for (size_t i = 0; i < n; i++)
        tu_set(t, dtype, i, x);
}

float *tu_widen(const void *t, clattn_dtype dtype, size_t n)
{
    float *w = tu_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        w[i] = tu_get(t, dtype, i);
    return w;
}

/* ---- the device fixture ---------------------------------------------------------------------- */

clattn_context *tu_context_or_skip(const char *selector)
{
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(selector, &ctx);
    const char *shown = selector && *selector ? selector : getenv("CLATTN_DEVICE");
    if (st == CLATTN_DEVICE_NOT_FOUND) {
        printf("SKIP: no OpenCL device%s%s%s\n", shown && *shown ? " matches \"" : "",
               shown && *shown ? shown : "", shown && *shown ? "\"" : "");
        fflush(stdout);
        exit(77);
    }
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn_context_create(%s): %s\n", shown ? shown : "default",
                clattn_status_string(st));
        exit(1);
    }
    printf("device: %s\n", clattn_context_device_name(ctx));
    fflush(stdout);
    return ctx;
}

int tu_group_setup(void **state)
{
    *state = tu_context_or_skip(NULL);
    return 0;
}

int tu_group_teardown(void **state)
{
    clattn_context_release(*state);
    *state = NULL;
    return 0;
}

/* ---- buffers kept to the end of a run --------------------------------------------------------- */

void tu_keep_add(tu_keep *k, cl_mem mem)
{
    if (!mem)
        return;
    for (size_t i = 0; i < k->n; i++)
        if (k->mems[i] == mem)
            return;
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 64;
        cl_mem *mems = realloc(k->mems, cap * sizeof *mems);
        if (!mems) {
            fprintf(stderr, "testutil: out of host memory keeping %zu buffers\n", cap);
            abort();
        }
        k->mems = mems;
        k->cap = cap;
    }
    clRetainMemObject(mem);
    k->mems[k->n++] = mem;
}

void tu_keep_scratch(tu_keep *k, const clattn_context *ctx)
{
    for (int i = 0; i < CLATTN_SCRATCH_COUNT; i++)
        tu_keep_add(k, clattn_test_scratch(ctx, (clattn_scratch_slot)i));
}

void tu_keep_release(tu_keep *k)
{
    for (size_t i = 0; i < k->n; i++)
        clReleaseMemObject(k->mems[i]);
    free(k->mems);
    k->mems = NULL;
    k->n = k->cap = 0;
}

/* ---- comparison ------------------------------------------------------------------------------ */

/* x rounded to dtype and back. */
static float tu_get_rounded(clattn_dtype dtype, float x)
{
    uint16_t b;
    clattn_storage_set(&b, dtype, 0, x);
    return clattn_storage_get(&b, dtype, 0);
}

double tu_out_tolerance(clattn_dtype dtype, const float *ref, size_t n, double kappa)
{
    double t = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i]))
            continue;
        /* 16-bit storage: the rounding of out itself; float: its size */
        double e = dtype != CLATTN_F32 ? fabs((double)tu_get_rounded(dtype, ref[i]) - ref[i])
                                       : fabs((double)ref[i]);
        if (e > t)
            t = e;
    }
    return dtype != CLATTN_F32 ? 2.0 * t + 1e-3 : 1e-5 * (t > 1.0 ? t : 1.0) * kappa;
}

/* One pair: records it in d and says whether it is within bound. */
static int compare_one(double got, double ref, double bound, size_t i, tu_diff *d)
{
    int within;
    if (isnan(ref) || isnan(got))
        within = isnan(ref) && isnan(got);
    else if (isinf(ref) || isinf(got))
        within = got == ref;
    else {
        double e = fabs(got - ref);
        if (e > d->err) {
            d->err = e;
            if (!d->mismatches) {
                d->worst = i;
                d->got = got;
                d->ref = ref;
            }
        }
        within = e <= bound;
        if (bound > 0 && e / bound > d->ratio)
            d->ratio = e / bound;
    }
    if (!within && d->mismatches++ == 0) {
        d->worst = i;
        d->got = got;
        d->ref = ref;
    }
    return within;
}

int tu_compare_out(clattn_dtype dtype, const void *got, const float *ref, size_t n, double tol,
                   tu_diff *d)
{
    memset(d, 0, sizeof *d);
    d->tol = tol;
    for (size_t i = 0; i < n; i++)
        compare_one(tu_get(got, dtype, i), ref[i], tol, i, d);
    return d->mismatches == 0;
}

int tu_compare_rel(const float *got, const float *ref, size_t n, double rel, tu_diff *d)
{
    memset(d, 0, sizeof *d);
    d->tol = rel;
    for (size_t i = 0; i < n; i++) {
        double mag = fabs((double)ref[i]);
        compare_one(got[i], ref[i], rel * (mag > 1.0 ? mag : 1.0), i, d);
    }
    return d->mismatches == 0;
}

/* ---- one attention case ---------------------------------------------------------------------- */

static const char *causal_name(clattn_causal c)
{
    return c == CLATTN_CAUSAL_BOTTOM_RIGHT ? "BR" : c == CLATTN_CAUSAL_TOP_LEFT ? "TL" : "none";
}

static const char *mask_name(clattn_mask_type m)
{
    switch (m) {
    case CLATTN_MASK_ADDITIVE_F32: return "addF32";
    case CLATTN_MASK_ADDITIVE_F16: return "addF16";
    case CLATTN_MASK_BOOL_U8: return "bool";
    default: return "none";
    }
}

static const char *path_name(clattn_path p)
{
    return p == CLATTN_PATH_UNFUSED ? "unfused" : p == CLATTN_PATH_FUSED ? "fused" : "auto";
}

void tu_case_string(const tu_case *c, char *buf, size_t len)
{
    static const char *kinds[] = {"dense", "broadcast", "padded", "keypad"};
    _Static_assert(sizeof kinds / sizeof kinds[0] == TU_MASK_KIND_COUNT, "a name per mask kind");
    const clattn_attention_desc *d = &c->desc;
    snprintf(buf, len,
             "B=%d Hq=%d Hkv=%d Lq=%d Lk=%d d=%d dv=%d %s%s %s causal=%s mask=%s%s%s path=%s%s%s%s%s "
             "%s seed=%llu",
             d->batch, d->heads_q, d->heads_kv, d->seq_q, d->seq_kv, d->head_dim, d->head_dim_v,
             d->dtype == CLATTN_F16 ? "F16" : d->dtype == CLATTN_BF16 ? "BF16" : "F32",
             d->kv_storage == CLATTN_KV_INT8 ? " kv=int8" : "", d->layout == CLATTN_LAYOUT_BSHD ? "BSHD" : "BHSD",
             causal_name(d->causal), mask_name(d->mask_type), d->mask_type ? "/" : "",
             d->mask_type ? kinds[c->mask_kind % TU_MASK_KIND_COUNT] : "", path_name(d->path),
             c->want_probs ? " probs" : "", c->want_lse ? " lse" : "",
             c->q_scale > 1.0f ? " large-logits" : "",
             c->nan_in_q ? " nan" : c->nan_in_v ? " nan-in-v" : "",
             c->use_buffers ? "cl_mem" : "host", (unsigned long long)c->seed);
}

/* Element offset of (b, h, i, 0) in a tensor of H heads, L rows of width w, in layout. */
static size_t row_offset(clattn_layout layout, int H, int L, int w, int b, int h, int i)
{
    if (layout == CLATTN_LAYOUT_BHSD)
        return (((size_t)b * H + h) * L + i) * w;
    return (((size_t)b * L + i) * H + h) * w;
}

double tu_score_magnitude(const clattn_attention_desc *d, const float *q, const float *k)
{
    int hkv = d->heads_kv ? d->heads_kv : d->heads_q;
    double scale = d->scale != 0.0f ? fabs((double)d->scale) : 1.0 / sqrt((double)d->head_dim);
    double mag = 0.0;
    for (int b = 0; b < d->batch; b++)
        for (int h = 0; h < d->heads_q; h++)
            for (int i = 0; i < d->seq_q; i++) {
                const float *qr = q + row_offset(d->layout, d->heads_q, d->seq_q, d->head_dim, b, h, i);
                for (int j = 0; j < d->seq_kv; j++) {
                    const float *kr = k + row_offset(d->layout, hkv, d->seq_kv, d->head_dim, b,
                                                     h / (d->heads_q / hkv), j);
                    double sum = 0.0;
                    for (int x = 0; x < d->head_dim; x++)
                        sum += fabs((double)qr[x] * kr[x]);
                    if (sum * scale > mag)   /* false for NaN: a poisoned row does not count */
                        mag = sum * scale;
                }
            }
    /* The variants' terms round at their own size: a capped score within tanh's few ulps of the
       cap (the product's own error shrinks through tanh), the ALiBi bias at its largest. */
    if (d->softcap > 0.0f)
        mag = fmin(mag, (double)d->softcap) * 4.0;
    for (int h = 0; d->alibi_slopes && h < d->heads_q; h++) {
        const double bias = fabs((double)d->alibi_slopes[h]) * (d->seq_q + d->seq_kv);
        mag = bias > mag ? bias : mag;
    }
    return mag;
}

double tu_conditioning(double score_magnitude)
{
    return score_magnitude > TU_SCORE_REF ? score_magnitude / TU_SCORE_REF : 1.0;
}

static void set_mask_strides(clattn_attention_desc *d, tu_mask_kind kind)
{
    long Lq = d->seq_q, Lk = d->seq_kv, Hq = d->heads_q;
    switch (kind) {
    case TU_MASK_BROADCAST:
        d->mask_batch_stride = 0;
        d->mask_head_stride = 0;
        d->mask_row_stride = 0;
        break;
    case TU_MASK_PADDED:
        d->mask_row_stride = Lk + 3;
        d->mask_head_stride = Lq * (Lk + 3);
        d->mask_batch_stride = 0;
        break;
    case TU_MASK_KEYPAD:
        d->mask_row_stride = 0;
        d->mask_head_stride = 0;
        d->mask_batch_stride = Lk;
        d->mask_rows_broadcast = 1;
        break;
    default:
        d->mask_row_stride = 0;
        d->mask_head_stride = Lq * Lk;
        d->mask_batch_stride = Hq * Lq * Lk;
        break;
    }
}

static void hide(void *mask, clattn_mask_type type, size_t e)
{
    if (type == CLATTN_MASK_ADDITIVE_F32)
        ((float *)mask)[e] = -INFINITY;
    else if (type == CLATTN_MASK_ADDITIVE_F16)
        ((uint16_t *)mask)[e] = 0xfc00u;   /* -inf */
    else
        ((unsigned char *)mask)[e] = 0;
}

/* Random mask values, some keys hidden, and every row i with i % 7 == 3 hidden entirely (with
   rows broadcast: every key of batch entry 1, a sequence that is all padding). */
static void fill_mask(void *mask, size_t bytes, const clattn_attention_desc *d, tu_rng *r)
{
    size_t n = bytes / clattn_mask_elem_size(d->mask_type);
    for (size_t e = 0; e < n; e++) {
        double u = tu_rng_uniform(r);
        switch (d->mask_type) {
        case CLATTN_MASK_ADDITIVE_F32:
            ((float *)mask)[e] = u < 0.1 ? -INFINITY : (float)tu_rng_normal(r);
            break;
        case CLATTN_MASK_ADDITIVE_F16:
            ((uint16_t *)mask)[e] = clattn_float_to_half(u < 0.1 ? -INFINITY : (float)tu_rng_normal(r));
            break;
        default:   /* any nonzero byte attends, not only 1 */
            ((unsigned char *)mask)[e] = u < 0.2 ? 0 : (unsigned char)(1 + tu_rng_below(r, 255));
            break;
        }
    }
    if (d->mask_rows_broadcast) {
        for (int j = 0; d->batch > 1 && j < d->seq_kv; j++)
            hide(mask, d->mask_type, (size_t)(d->mask_batch_stride + j));
        return;
    }
    long rs = d->mask_row_stride ? d->mask_row_stride : d->seq_kv;
    for (int b = 0; b < d->batch; b++)
        for (int h = 0; h < d->heads_q; h++)
            for (int i = 3; i < d->seq_q; i += 7)
                for (int j = 0; j < d->seq_kv; j++)
                    hide(mask, d->mask_type,
                         (size_t)(b * d->mask_batch_stride + h * d->mask_head_stride + i * rs + j));
}

/* The mask of d written out densely, [B,Hq,Lq,Lk], element by element through d's own strides
   (rows broadcast or not), with dense's strides set to match: the reference then sees a mask
   that needs no broadcasting. */
static void *densify_mask(const clattn_attention_desc *d, const void *mask,
                          clattn_attention_desc *dense)
{
    const size_t es = clattn_mask_elem_size(d->mask_type);
    const long B = d->batch, Hq = d->heads_q, Lq = d->seq_q, Lk = d->seq_kv;
    const long rs = d->mask_rows_broadcast ? 0 : d->mask_row_stride ? d->mask_row_stride : Lk;
    unsigned char *out = tu_alloc((size_t)(B * Hq * Lq * Lk) * es + 1);
    for (long b = 0; b < B; b++)
        for (long h = 0; h < Hq; h++)
            for (long i = 0; i < Lq; i++)
                for (long j = 0; j < Lk; j++)
                    memcpy(out + (size_t)(((b * Hq + h) * Lq + i) * Lk + j) * es,
                           (const unsigned char *)mask +
                               (size_t)(b * d->mask_batch_stride + h * d->mask_head_stride + i * rs + j) * es,
                           es);
    *dense = *d;
    dense->mask_batch_stride = Hq * Lq * Lk;
    dense->mask_head_stride = Lq * Lk;
    dense->mask_row_stride = 0;
    dense->mask_rows_broadcast = 0;
    return out;
}

/* A device buffer holding bytes of src (or uninitialised when src is NULL); NULL when bytes is 0. */
static cl_mem make_buffer(clattn_context *ctx, size_t bytes, const void *src, cl_int *err)
{
    if (bytes == 0)
        return NULL;
    cl_mem_flags flags = src ? CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR : CL_MEM_READ_WRITE;
    return clCreateBuffer(clattn_context_cl_context(ctx), flags, bytes, (void *)src, err);
}

/* The device call through cl_mem buffers: upload, run, read back. */
static clattn_status run_with_buffers(clattn_context *ctx, const clattn_attention_desc *desc,
                                      const clattn_tensor_sizes *s, const void *q, const void *k,
                                      const void *v, const void *mask, void *out, float *probs,
                                      float *lse, tu_keep *keep, char *why, size_t why_len)
{
    cl_int err = CL_SUCCESS;
    clattn_status st = CLATTN_OPENCL_ERROR;
    /* int8 K/V: the desc's host scales become device buffers */
    clattn_attention_desc dd = *desc;
    const clattn_attention_desc *d = &dd;
    const size_t scale_bytes = desc->kv_storage == CLATTN_KV_INT8 ? tu_kv_scale_bytes(desc) : 0;
    cl_mem bks = make_buffer(ctx, scale_bytes, desc->k_scale_host, &err);
    cl_mem bvs = make_buffer(ctx, scale_bytes, desc->v_scale_host, &err);
    dd.k_scale = bks;
    dd.v_scale = bvs;
    dd.k_scale_host = dd.v_scale_host = NULL;
    cl_mem bq = make_buffer(ctx, s->q, q, &err);
    cl_mem bk = make_buffer(ctx, s->k, k, &err);
    cl_mem bv = make_buffer(ctx, s->v, v, &err);
    cl_mem bm = mask ? make_buffer(ctx, s->mask, mask, &err) : NULL;
    cl_mem bo = make_buffer(ctx, s->out, NULL, &err);
    cl_mem bp = probs ? make_buffer(ctx, s->probs, NULL, &err) : NULL;
    cl_mem bl = lse ? make_buffer(ctx, s->lse, NULL, &err) : NULL;
    cl_command_queue queue = clattn_context_queue(ctx);
    if (err != CL_SUCCESS) {
        snprintf(why, why_len, "clCreateBuffer failed (%d)", (int)err);
        goto out;
    }
    st = clattn_attention(ctx, d, bq, bk, bv, bm, bo, bp, bl);
    if (st != CLATTN_SUCCESS) {
        snprintf(why, why_len, "%s", clattn_context_last_error(ctx));
        goto out;
    }
    struct { cl_mem mem; size_t bytes; void *dst; } reads[] = {
        {bo, s->out, out}, {bp, s->probs, probs}, {bl, s->lse, lse}};
    for (int i = 0; i < 3 && err == CL_SUCCESS; i++)
        if (reads[i].mem)
            err = clEnqueueReadBuffer(queue, reads[i].mem, CL_TRUE, 0, reads[i].bytes, reads[i].dst, 0,
                                      NULL, NULL);
    if (err != CL_SUCCESS) {
        st = CLATTN_OPENCL_ERROR;
        snprintf(why, why_len, "clEnqueueReadBuffer failed (%d)", (int)err);
    }
out:
    clFinish(queue);
    cl_mem all[] = {bq, bk, bv, bm, bo, bp, bl, bks, bvs};
    for (int i = 0; i < 9; i++) {
        if (keep)
            tu_keep_add(keep, all[i]);
        if (all[i])
            clReleaseMemObject(all[i]);
    }
    return st;
}

/* Appends ": what: N bad, max error E (tolerance T), first bad [i] = got vs ref" to buf. */
static size_t append_diff(char *buf, size_t len, size_t at, const char *what, const tu_diff *d)
{
    if (at >= len)
        return at;
    int n = snprintf(buf + at, len - at, ": %s: %d bad, max error %.3g (tolerance %.3g), first bad [%zu] = %.9g vs %.9g",
                     what, d->mismatches, d->err, d->tol, d->worst, d->got, d->ref);
    return n < 0 ? at : at + (size_t)n;
}

clattn_status tu_run_case(clattn_context *ctx, const tu_case *c, tu_outcome *res)
{
    clattn_attention_desc d = c->desc;
    clattn_tensor_sizes s;
    tu_rng r;
    memset(res, 0, sizeof *res);
    if (d.mask_type != CLATTN_MASK_NONE)
        set_mask_strides(&d, c->mask_kind);
    tu_case_string(c, res->msg, sizeof res->msg);
    if (clattn_attention_sizes(&d, &s) != CLATTN_SUCCESS) {
        res->status = CLATTN_INVALID_ARGUMENT;
        strncat(res->msg, ": the test made a desc the library refuses", sizeof res->msg - strlen(res->msg) - 1);
        return res->status;
    }

    const int int8 = d.kv_storage == CLATTN_KV_INT8;
    size_t es = clattn_dtype_size(d.dtype), kv_es = int8 ? 1 : es;
    size_t nq = s.q / es, nk = s.k / kv_es, nv = s.v / kv_es, no = s.out / es;
    size_t np = s.probs / sizeof(float), nl = s.lse / sizeof(float);
    /* k and v in the storage type; with int8 K/V, quantized from these (k8, v8 and their scales) */
    void *q = tu_alloc(s.q), *k = tu_alloc(nk * es), *v = tu_alloc(nv * es);
    signed char *k8 = NULL, *v8 = NULL;
    float *k_scale = NULL, *v_scale = NULL;
    void *mask = d.mask_type != CLATTN_MASK_NONE ? tu_alloc(s.mask) : NULL;
    void *out = tu_alloc(s.out);
    float *probs = c->want_probs ? tu_alloc(s.probs) : NULL;
    float *lse = c->want_lse ? tu_alloc(s.lse) : NULL;
    float *ref_out = tu_alloc(no * sizeof(float)), *ref_probs = tu_alloc(s.probs), *ref_lse = tu_alloc(s.lse);
    float *q32 = NULL, *k32 = NULL, *v32 = NULL;
    void *ref_mask = NULL;

    tu_rng_seed(&r, c->seed);
    tu_fill_normal(q, d.dtype, nq, c->q_scale > 0.0f ? c->q_scale : 1.0f, &r);
    tu_fill_normal(k, d.dtype, nk, 1.0f, &r);
    tu_fill_normal(v, d.dtype, nv, 1.0f, &r);
    if (mask)
        fill_mask(mask, s.mask, &d, &r);
    if (c->nan_in_v && nv > 0) {
        int hkv = d.heads_kv ? d.heads_kv : d.heads_q;
        int dv = d.head_dim_v ? d.head_dim_v : d.head_dim;
        tu_set(v, d.dtype, row_offset(d.layout, hkv, d.seq_kv, dv, d.batch - 1, hkv - 1, d.seq_kv / 2),
               NAN);
    }
    if (c->nan_in_q && nq > 0)
        tu_set(q, d.dtype, row_offset(d.layout, d.heads_q, d.seq_q, d.head_dim, d.batch - 1, d.heads_q - 1, d.seq_q / 2),
               NAN);
    if (int8) {
        const size_t rows = tu_kv_scale_bytes(&d) / sizeof(float);
        k8 = tu_alloc(nk + 1);
        v8 = tu_alloc(nv + 1);
        k_scale = tu_alloc(rows * sizeof(float) + 1);
        v_scale = tu_alloc(rows * sizeof(float) + 1);
        if (clattn_quantize_kv_host(&d, CLATTN_KV_KEYS, k, k8, k_scale) != CLATTN_SUCCESS ||
            clattn_quantize_kv_host(&d, CLATTN_KV_VALUES, v, v8, v_scale) != CLATTN_SUCCESS) {
            strncat(res->msg, ": clattn_quantize_kv_host refused the case",
                    sizeof res->msg - strlen(res->msg) - 1);
            res->status = CLATTN_INVALID_ARGUMENT;
            goto out;
        }
        d.k_scale_host = k_scale;
        d.v_scale_host = v_scale;
    }
    const void *k_dev = int8 ? (const void *)k8 : k, *v_dev = int8 ? (const void *)v8 : v;
    /* A sentinel in the outputs: a result the device never wrote cannot pass. */
    tu_fill_value(out, d.dtype, no, -77.0f);
    if (probs)
        tu_fill_value(probs, CLATTN_F32, np, -77.0f);
    if (lse)
        tu_fill_value(lse, CLATTN_F32, nl, -77.0f);

    char why[512] = "";
    if (c->use_buffers)
        res->status = run_with_buffers(ctx, &d, &s, q, k_dev, v_dev, mask, out, probs, lse, c->keep,
                                       why, sizeof why);
    else {
        res->status = clattn_attention_host(ctx, &d, q, k_dev, v_dev, mask, out, probs, lse);
        if (res->status != CLATTN_SUCCESS)
            snprintf(why, sizeof why, "%s", clattn_context_last_error(ctx));
    }
    size_t at = strlen(res->msg);
    if (res->status != CLATTN_SUCCESS) {   /* before the reference: an unsupported case costs nothing */
        snprintf(res->msg + at, sizeof res->msg - at, ": %s: %s", clattn_status_string(res->status), why);
        goto out;
    }

    /* The reference in F32 on the same values, so that the F16 tolerance sees it unrounded. */
    clattn_attention_desc d32 = d;
    d32.dtype = CLATTN_F32;
    q32 = tu_widen(q, d.dtype, nq);
    if (int8) {
        /* the reference reads the int8 values and their scales itself; k32 and v32 are what they
           stand for, for the score magnitude */
        k32 = tu_dequantize(&d, CLATTN_KV_KEYS, k8, k_scale);
        v32 = tu_dequantize(&d, CLATTN_KV_VALUES, v8, v_scale);
    } else {
        k32 = tu_widen(k, d.dtype, nk);
        v32 = tu_widen(v, d.dtype, nv);
    }
    /* A broadcast mask reaches the reference written out densely, so that the reference does not
       share the library's reading of mask_rows_broadcast. */
    if (mask && d.mask_rows_broadcast) {
        ref_mask = densify_mask(&d, mask, &d32);
        d32.dtype = CLATTN_F32;
    }
    clattn_status rst = clattn_attention_reference(&d32, q32, int8 ? (const void *)k8 : k32,
                                                   int8 ? (const void *)v8 : v32,
                                                   ref_mask ? ref_mask : mask, ref_out, ref_probs,
                                                   ref_lse);
    if (rst != CLATTN_SUCCESS) {
        snprintf(res->msg + at, sizeof res->msg - at, ": reference failed: %s", clattn_status_string(rst));
        res->status = rst;
        goto out;
    }
    res->score_mag = tu_score_magnitude(&d, q32, k32);
    res->kappa = tu_conditioning(res->score_mag);
    int ok = tu_compare_out(d.dtype, out, ref_out, no, tu_out_tolerance(d.dtype, ref_out, no, res->kappa),
                            &res->out);
    if (!ok)
        at = append_diff(res->msg, sizeof res->msg, at, "out", &res->out);
    if (probs && !tu_compare_rel(probs, ref_probs, np, TU_PROBS_REL * res->kappa, &res->probs)) {
        ok = 0;
        at = append_diff(res->msg, sizeof res->msg, at, "probs", &res->probs);
    }
    if (lse && !tu_compare_rel(lse, ref_lse, nl, TU_LSE_REL * res->kappa, &res->lse)) {
        ok = 0;
        at = append_diff(res->msg, sizeof res->msg, at, "lse", &res->lse);
    }
    res->ok = ok;

out:
    free(q);
    free(k);
    free(v);
    free(mask);
    free(out);
    free(probs);
    free(lse);
    free(ref_out);
    free(ref_probs);
    free(ref_lse);
    free(q32);
    free(k32);
    free(v32);
    free(ref_mask);
    free(k8);
    free(v8);
    free(k_scale);
    free(v_scale);
    return res->status;
}

size_t tu_kv_scale_bytes(const clattn_attention_desc *d)
{
    const int hkv = d->heads_kv ? d->heads_kv : d->heads_q;
    return (size_t)d->batch * (size_t)hkv * (size_t)d->seq_kv * sizeof(float);
}

float *tu_dequantize(const clattn_attention_desc *d, clattn_kv_tensor which, const signed char *x8,
                     const float *scale)
{
    const int dim = which == CLATTN_KV_KEYS ? d->head_dim : d->head_dim_v ? d->head_dim_v : d->head_dim;
    const size_t rows = tu_kv_scale_bytes(d) / sizeof(float);
    float *out = tu_alloc(rows * (size_t)dim * sizeof(float) + 1);
    for (size_t t = 0; t < rows; t++)
        for (int c = 0; c < dim; c++)
            out[t * (size_t)dim + (size_t)c] = (float)x8[t * (size_t)dim + (size_t)c] * scale[t];
    return out;
}

/* ---- memory objects the library must refuse or see through ---------------------------------- */

size_t tu_sub_buffer_align(clattn_context *ctx)
{
    cl_uint bits = 0;
    if (clGetDeviceInfo(clattn_context_device(ctx), CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof bits, &bits,
                        NULL) != CL_SUCCESS || bits < 8)
        bits = 4096 * 8;   /* the largest alignment seen in practice: safe if the query fails */
    return bits / 8;
}

cl_mem tu_sub_buffer(cl_mem parent, size_t origin, size_t size)
{
    cl_buffer_region region = {origin, size};
    cl_int err;
    cl_mem m = clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
    if (!m) {
        /* A NULL would reach the library as "no buffer" and test something else. */
        fprintf(stderr, "testutil: clCreateSubBuffer(origin %zu, size %zu): %d\n", origin, size, (int)err);
        abort();
    }
    return m;
}

cl_mem tu_image_or_null(clattn_context *ctx, size_t min_bytes)
{
    cl_bool images = CL_FALSE;
    clGetDeviceInfo(clattn_context_device(ctx), CL_DEVICE_IMAGE_SUPPORT, sizeof images, &images, NULL);
    if (!images) {
        printf("  the device has no image support: the image cases are skipped\n");
        return NULL;
    }
    const size_t width = 64, pixel = 4 * sizeof(float);
    cl_image_format format = {CL_RGBA, CL_FLOAT};
    cl_image_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.image_type = CL_MEM_OBJECT_IMAGE2D;
    desc.image_width = width;
    desc.image_height = min_bytes / (width * pixel) + 1;
    cl_int err;
    cl_mem m = clCreateImage(clattn_context_cl_context(ctx), CL_MEM_READ_WRITE, &format, &desc, NULL,
                             &err);
    if (!m) {
        fprintf(stderr, "testutil: clCreateImage(%zu x %zu RGBA float): %d\n", desc.image_width,
                desc.image_height, (int)err);
        abort();
    }
    return m;
}

clattn_status tu_run_fused_with(clattn_context *ctx, const clattn_attention_desc *d, int block_m,
                                int splits, uint64_t seed, tu_keep *keep, int *ok, tu_diff *dout,
                                tu_diff *dlse)
{
    *ok = 0;
    clattn_problem p;
    if (clattn_problem_init(d, &p, NULL, 0) != CLATTN_SUCCESS)
        return CLATTN_INVALID_ARGUMENT;
    tu_rng r;
    tu_rng_seed(&r, seed);
    float *q = tu_alloc(p.bytes.q), *k = tu_alloc(p.bytes.k), *v = tu_alloc(p.bytes.v);
    float *out = tu_alloc(p.bytes.out), *ref = tu_alloc(p.bytes.out);
    float *lse = tu_alloc(p.bytes.lse), *ref_lse = tu_alloc(p.bytes.lse);
    tu_fill_normal(q, CLATTN_F32, p.bytes.q / 4, 1, &r);
    tu_fill_normal(k, CLATTN_F32, p.bytes.k / 4, 1, &r);
    tu_fill_normal(v, CLATTN_F32, p.bytes.v / 4, 1, &r);
    cl_int err = CL_SUCCESS;
    cl_mem bq = make_buffer(ctx, p.bytes.q, q, &err);
    cl_mem bk = make_buffer(ctx, p.bytes.k, k, &err);
    cl_mem bv = make_buffer(ctx, p.bytes.v, v, &err);
    cl_mem bo = make_buffer(ctx, p.bytes.out, NULL, &err);
    cl_mem bl = make_buffer(ctx, p.bytes.lse, NULL, &err);
    const clattn_family *fam = clattn_flash_family_for(clattn_test_device(ctx), &p);
    clattn_params params;
    char why[256];
    clattn_test_lock(ctx);
    clattn_status st = err == CL_SUCCESS ? clattn_params_lookup(ctx, fam, &p, &params)
                                         : CLATTN_OPENCL_ERROR;
    if (st == CLATTN_SUCCESS && block_m > 0) {
        params.v[P_BLOCK_M] = block_m;
        if (!fam->valid(&params, clattn_test_device(ctx), &p, why, sizeof why)) {
            printf("     %s BLOCK_M=%d: %s\n", fam->name, block_m, why);
            st = CLATTN_INVALID_ARGUMENT;
        }
    }
    if (st == CLATTN_SUCCESS)
        st = clattn_flash_enqueue_with(ctx, &p, &params, splits, bq, bk, bv, NULL, bo, bl);
    clattn_test_unlock(ctx);
    if (st == CLATTN_SUCCESS) {
        cl_command_queue queue = clattn_context_queue(ctx);
        err = clEnqueueReadBuffer(queue, bo, CL_TRUE, 0, p.bytes.out, out, 0, NULL, NULL);
        if (err == CL_SUCCESS)
            err = clEnqueueReadBuffer(queue, bl, CL_TRUE, 0, p.bytes.lse, lse, 0, NULL, NULL);
        if (err != CL_SUCCESS)
            st = CLATTN_OPENCL_ERROR;
    }
    if (err != CL_SUCCESS)
        printf("     OpenCL error %d making or reading the buffers\n", (int)err);
    if (st == CLATTN_SUCCESS) {
        const size_t no = p.bytes.out / 4;
        *ok = clattn_attention_reference(d, q, k, v, NULL, ref, NULL, ref_lse) == CLATTN_SUCCESS &&
              tu_compare_out(CLATTN_F32, out, ref, no, tu_out_tolerance(CLATTN_F32, ref, no, 1),
                             dout) &&
              tu_compare_rel(lse, ref_lse, p.bytes.lse / 4, TU_LSE_REL, dlse);
    }
    if (keep)
        tu_keep_scratch(keep, ctx);
    cl_mem all[] = {bq, bk, bv, bo, bl};
    for (int i = 0; i < 5; i++) {
        if (keep)
            tu_keep_add(keep, all[i]);
        if (all[i])
            clReleaseMemObject(all[i]);
    }
    free(q), free(k), free(v), free(out), free(ref), free(lse), free(ref_lse);
    return st;
}
