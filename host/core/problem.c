/* A desc validated and resolved: defaults applied, every stride and buffer size spelled out. */
#include "host/core/core.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

size_t clattn_dtype_size(clattn_dtype dtype)
{
    return dtype == CLATTN_F16 || dtype == CLATTN_BF16 ? 2 : 4;
}

size_t clattn_mask_elem_size(clattn_mask_type type)
{
    switch (type) {
    case CLATTN_MASK_ADDITIVE_F32: return 4;
    case CLATTN_MASK_ADDITIVE_F16: return 2;
    case CLATTN_MASK_BOOL_U8: return 1;
    default: return 0;
    }
}

/* a*b*c*... in size_t, or SIZE_MAX on overflow. */
static size_t mul(size_t a, size_t b)
{
    if (a && b > SIZE_MAX / a)
        return SIZE_MAX;
    return a * b;
}

static size_t tensor_bytes(size_t n0, size_t n1, size_t n2, size_t n3, size_t elem)
{
    return mul(mul(mul(mul(n0, n1), n2), n3), elem);
}

/* Element strides [batch, head, row] of a tensor with H heads, L rows of width w. */
static void strides(clattn_layout layout, long H, long L, long w, long *bs, long *hs, long *rs)
{
    if (layout == CLATTN_LAYOUT_BHSD) {
        *bs = H * L * w;
        *hs = L * w;
        *rs = w;
    } else {
        *bs = L * H * w;
        *hs = w;
        *rs = H * w;
    }
}

#define BAD(...) do { snprintf(err, err_len, __VA_ARGS__); return CLATTN_INVALID_ARGUMENT; } while (0)

clattn_status clattn_problem_init(const clattn_attention_desc *desc, clattn_problem *p, char *err,
                                  size_t err_len)
{
    char scratch[8];
    if (!err) {
        err = scratch;
        err_len = sizeof scratch;
    }
    if (!desc)
        BAD("desc is NULL");
    memset(p, 0, sizeof *p);
    if (desc->batch < 0)
        BAD("desc->batch = %d: must be >= 0", desc->batch);
    if (desc->heads_q < 1)
        BAD("desc->heads_q = %d: must be >= 1", desc->heads_q);
    if (desc->heads_kv < 0)
        BAD("desc->heads_kv = %d: must be >= 0 (0 means heads_q)", desc->heads_kv);
    int hkv = desc->heads_kv ? desc->heads_kv : desc->heads_q;
    if (desc->heads_q % hkv != 0)
        BAD("desc->heads_q = %d is not a multiple of desc->heads_kv = %d", desc->heads_q, hkv);
    if (desc->seq_q < 0)
        BAD("desc->seq_q = %d: must be >= 0", desc->seq_q);
    if (desc->seq_kv < 0)
        BAD("desc->seq_kv = %d: must be >= 0", desc->seq_kv);
    if (desc->head_dim < 1 || desc->head_dim > CLATTN_MAX_HEAD_DIM_QK)
        BAD("desc->head_dim = %d: must be in 1..%d", desc->head_dim, CLATTN_MAX_HEAD_DIM_QK);
    if (desc->head_dim_v == 0 && desc->head_dim > CLATTN_MAX_HEAD_DIM)
        BAD("desc->head_dim_v = 0 means head_dim = %d, above the %d a value head may have: set "
            "head_dim_v (MLA: 512)", desc->head_dim, CLATTN_MAX_HEAD_DIM);
    if (desc->head_dim_v < 0 || desc->head_dim_v > CLATTN_MAX_HEAD_DIM)
        BAD("desc->head_dim_v = %d: must be 0 (head_dim) or in 1..%d", desc->head_dim_v,
            CLATTN_MAX_HEAD_DIM);
    if (!isfinite(desc->scale))
        BAD("desc->scale = %g: must be finite (0 means 1/sqrt(head_dim))", (double)desc->scale);
    if ((unsigned)desc->dtype > CLATTN_BF16)
        BAD("desc->dtype = %d: not a clattn_dtype", (int)desc->dtype);
    if ((unsigned)desc->layout > CLATTN_LAYOUT_BSHD)
        BAD("desc->layout = %d: not a clattn_layout", (int)desc->layout);
    if ((unsigned)desc->causal > CLATTN_CAUSAL_TOP_LEFT)
        BAD("desc->causal = %d: not a clattn_causal", (int)desc->causal);
    if ((unsigned)desc->mask_type > CLATTN_MASK_BOOL_U8)
        BAD("desc->mask_type = %d: not a clattn_mask_type", (int)desc->mask_type);
    if ((unsigned)desc->path > CLATTN_PATH_FUSED)
        BAD("desc->path = %d: not a clattn_path", (int)desc->path);
    if (desc->mask_batch_stride < 0 || desc->mask_head_stride < 0 || desc->mask_row_stride < 0)
        BAD("desc->mask_*_stride (%ld, %ld, %ld): strides must be >= 0", desc->mask_batch_stride,
            desc->mask_head_stride, desc->mask_row_stride);
    if (desc->mask_rows_broadcast != 0 && desc->mask_rows_broadcast != 1)
        BAD("desc->mask_rows_broadcast = %d: must be 0 or 1", desc->mask_rows_broadcast);
    if (desc->mask_rows_broadcast && desc->mask_row_stride != 0)
        BAD("desc->mask_row_stride = %ld with mask_rows_broadcast: every row reads the same mask "
            "row, so the row stride must be 0", desc->mask_row_stride);
    if (desc->window != 0 && desc->window != 1)
        BAD("desc->window = %d: must be 0 (none) or 1 (window_left, window_right)", desc->window);
    if (desc->window && (desc->window_left < -1 || desc->window_right < -1))
        BAD("desc->window_left = %d, window_right = %d: each must be >= 0, or -1 (unbounded)",
            desc->window_left, desc->window_right);
    if (!desc->window && (desc->window_left || desc->window_right))
        BAD("desc->window_left = %d, window_right = %d with window = 0: set window = 1 to use them",
            desc->window_left, desc->window_right);
    if (desc->softcap != 0.0f && !(desc->softcap > 0.0f && isfinite(desc->softcap)))
        BAD("desc->softcap = %g: must be 0 (none) or finite and > 0", (double)desc->softcap);
    for (int h = 0; desc->alibi_slopes && h < desc->heads_q; h++)
        if (!isfinite(desc->alibi_slopes[h]))
            BAD("desc->alibi_slopes[%d] = %g: slopes must be finite", h, (double)desc->alibi_slopes[h]);
    for (int h = 0; desc->sinks && h < desc->heads_q; h++)
        if (isnan(desc->sinks[h]) || desc->sinks[h] == INFINITY)
            BAD("desc->sinks[%d] = %g: sink logits must be finite or -inf", h, (double)desc->sinks[h]);

    if ((unsigned)desc->kv_storage > CLATTN_KV_INT8)
        BAD("desc->kv_storage = %d: not a clattn_kv_storage", (int)desc->kv_storage);
    if (desc->kv_storage == CLATTN_KV_SAME &&
        (desc->k_scale || desc->v_scale || desc->k_scale_host || desc->v_scale_host))
        BAD("desc->k_scale/v_scale (or their _host) given but desc->kv_storage is CLATTN_KV_SAME: "
            "set CLATTN_KV_INT8 to use them");

    p->B = desc->batch;
    p->Hq = desc->heads_q;
    p->Hkv = hkv;
    p->group = desc->heads_q / hkv;
    p->Lq = desc->seq_q;
    p->Lk = desc->seq_kv;
    p->d = desc->head_dim;
    p->dv = desc->head_dim_v ? desc->head_dim_v : desc->head_dim;
    p->scale = desc->scale != 0.0f ? desc->scale : (float)(1.0 / sqrt((double)desc->head_dim));
    p->dtype = desc->dtype;
    p->layout = desc->layout;
    p->causal = desc->causal;
    p->causal_offset = desc->causal == CLATTN_CAUSAL_BOTTOM_RIGHT ? p->Lk - p->Lq : 0;
    p->causal_bound = desc->causal != CLATTN_CAUSAL_NONE;
    /* A window's edges are bounds on j - i, like the causal one: the right edge joins (or is) the
       causal bound, and an edge that hides nothing is dropped, so that its kernel is the plain one.
       In long arithmetic: window_left may be INT_MAX. */
    if (desc->window && desc->window_right >= 0) {
        long hi = (long)p->Lk - p->Lq + desc->window_right;
        if (hi < (long)p->Lk - 1 || p->causal_bound) {
            hi = p->causal_bound && p->causal_offset < hi ? p->causal_offset : hi;
            p->causal_offset = (int)(hi < p->Lk ? hi : p->Lk);
            p->causal_bound = 1;
        }
    }
    if (desc->window && desc->window_left >= 0) {
        long lo = (long)p->Lk - p->Lq - desc->window_left;
        if (lo > 1 - (long)p->Lq) {      /* some row i < Lq has a lower bound above key 0 */
            p->window_lo = 1;
            p->lo_offset = (int)lo;
        }
    }
    p->window = desc->window;
    p->window_left = desc->window_left;
    p->window_right = desc->window_right;
    p->softcap = desc->softcap;
    p->alibi = desc->alibi_slopes;
    p->sinks = desc->sinks;
    p->kv_int8 = desc->kv_storage == CLATTN_KV_INT8;
    p->k_scale = desc->k_scale;
    p->v_scale = desc->v_scale;
    p->k_scale_host = desc->k_scale_host;
    p->v_scale_host = desc->v_scale_host;
    p->mask_type = desc->mask_type;
    p->mask_bs = desc->mask_batch_stride;
    p->mask_hs = desc->mask_head_stride;
    /* the kernels and the reference address row i at i*mask_rs: 0 repeats row 0 */
    p->mask_rs = desc->mask_rows_broadcast ? 0 : desc->mask_row_stride ? desc->mask_row_stride : p->Lk;
    p->path = desc->path;

    strides(p->layout, p->Hq, p->Lq, p->d, &p->q_bs, &p->q_hs, &p->q_rs);
    strides(p->layout, p->Hkv, p->Lk, p->d, &p->k_bs, &p->k_hs, &p->k_rs);
    strides(p->layout, p->Hkv, p->Lk, p->dv, &p->v_bs, &p->v_hs, &p->v_rs);
    strides(p->layout, p->Hq, p->Lq, p->dv, &p->o_bs, &p->o_hs, &p->o_rs);

    strides(p->layout, p->Hkv, p->Lk, 1, &p->s_bs, &p->s_hs, &p->s_rs);

    size_t es = clattn_dtype_size(p->dtype), kv_es = p->kv_int8 ? 1 : es;
    clattn_tensor_sizes *s = &p->bytes;
    s->q = tensor_bytes(p->B, p->Hq, p->Lq, p->d, es);
    s->k = tensor_bytes(p->B, p->Hkv, p->Lk, p->d, kv_es);
    s->v = tensor_bytes(p->B, p->Hkv, p->Lk, p->dv, kv_es);
    p->scale_bytes = p->kv_int8 ? tensor_bytes(p->B, p->Hkv, p->Lk, 1, sizeof(float)) : 0;
    s->out = tensor_bytes(p->B, p->Hq, p->Lq, p->dv, es);
    s->probs = tensor_bytes(p->B, p->Hq, p->Lq, p->Lk, sizeof(float));
    s->lse = tensor_bytes(p->B, p->Hq, p->Lq, 1, sizeof(float));
    s->mask = 0;
    if (p->mask_type != CLATTN_MASK_NONE && p->B > 0 && p->Lq > 0 && p->Lk > 0) {
        /* The last element any (b, h, i, j) can address, plus one. */
        size_t last = mul((size_t)(p->B - 1), (size_t)p->mask_bs);
        size_t t1 = mul((size_t)(p->Hq - 1), (size_t)p->mask_hs);
        size_t t2 = mul((size_t)(p->Lq - 1), (size_t)p->mask_rs);
        if (last == SIZE_MAX || t1 == SIZE_MAX || t2 == SIZE_MAX || last > SIZE_MAX / 4 ||
            t1 > SIZE_MAX / 4 || t2 > SIZE_MAX / 4)
            BAD("mask strides (%ld, %ld, %ld) overflow the address space", p->mask_bs, p->mask_hs,
                p->mask_rs);
        last += t1 + t2 + (size_t)p->Lk;
        s->mask = mul(last, clattn_mask_elem_size(p->mask_type));
    }
    size_t limit = (size_t)1 << 62;   /* kernels index with 64-bit longs */
    if (s->q >= limit || s->k >= limit || s->v >= limit || s->out >= limit || s->probs >= limit ||
        s->mask >= limit)
        BAD("problem too large to address (B=%d Hq=%d Lq=%d Lk=%d d=%d dv=%d)", p->B, p->Hq, p->Lq, p->Lk,
            p->d, p->dv);
    return CLATTN_SUCCESS;
}

int clattn_problem_variants(const clattn_problem *p)
{
    return (p->window_lo ? CLATTN_VARIANT_WINDOW : 0) | (p->softcap > 0.0f ? CLATTN_VARIANT_SOFTCAP : 0) |
           (p->alibi ? CLATTN_VARIANT_ALIBI : 0) | (p->sinks ? CLATTN_VARIANT_SINKS : 0) |
           (p->kv_int8 ? CLATTN_VARIANT_KV_INT8 : 0) | (p->varlen ? CLATTN_VARIANT_VARLEN : 0) |
           (p->paged ? CLATTN_VARIANT_PAGED : 0);
}

clattn_status clattn_attention_sizes(const clattn_attention_desc *desc, clattn_tensor_sizes *sizes)
{
    clattn_problem p;
    clattn_status st = clattn_problem_init(desc, &p, NULL, 0);
    if (st == CLATTN_SUCCESS && sizes)
        *sizes = p.bytes;
    return st;
}

void clattn_problem_shape_desc(const clattn_problem *p, clattn_attention_desc *desc)
{
    memset(desc, 0, sizeof *desc);
    desc->batch = p->B;
    desc->heads_q = p->Hq;
    desc->heads_kv = p->Hkv;
    desc->seq_q = p->Lq;
    desc->seq_kv = p->Lk;
    desc->head_dim = p->d;
    desc->head_dim_v = p->dv;
    desc->scale = p->scale;
    desc->dtype = p->dtype;
    desc->layout = p->layout;
    desc->causal = p->causal;
    desc->path = p->path;
    desc->window = p->window;
    desc->window_left = p->window_left;
    desc->window_right = p->window_right;
    desc->softcap = p->softcap;
    desc->alibi_slopes = p->alibi;
    desc->sinks = p->sinks;
}
