/* A varlen desc resolved into the envelope problem the fused kernel is planned and built for, the
 * sizes of its tensors and tables, and the one check of host copies of the tables. */
#include "host/serving/serving.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BAD(...) do { snprintf(err, err_len, __VA_ARGS__); return CLATTN_INVALID_ARGUMENT; } while (0)

/* a*b in size_t, SIZE_MAX on overflow */
static size_t mul(size_t a, size_t b)
{
    return a && b > SIZE_MAX / a ? SIZE_MAX : a * b;
}

static size_t mul4(size_t a, size_t b, size_t c, size_t d)
{
    return mul(mul(mul(a, b), c), d);
}

void clattn_varlen_dense_desc(const clattn_varlen_desc *desc, int batch, int seq_q, int seq_kv,
                              clattn_attention_desc *d)
{
    memset(d, 0, sizeof *d);
    d->batch = batch;
    d->heads_q = desc->heads_q;
    d->heads_kv = desc->heads_kv;
    d->seq_q = seq_q;
    d->seq_kv = seq_kv;
    d->head_dim = desc->head_dim;
    d->head_dim_v = desc->head_dim_v;
    d->scale = desc->scale;
    d->dtype = desc->dtype;
    d->layout = CLATTN_LAYOUT_BSHD;
    d->causal = desc->causal;
    d->window = desc->window;
    d->window_left = desc->window_left;
    d->window_right = desc->window_right;
    d->softcap = desc->softcap;
    d->alibi_slopes = desc->alibi_slopes;
    d->sinks = desc->sinks;
    d->kv_storage = desc->kv_storage;
}

clattn_status clattn_varlen_problem_init(const clattn_varlen_desc *desc, clattn_varlen_problem *vp,
                                         char *err, size_t err_len)
{
    char scratch[8];
    if (!err) {
        err = scratch;
        err_len = sizeof scratch;
    }
    if (!desc)
        BAD("desc is NULL");
    memset(vp, 0, sizeof *vp);
    if (desc->total_q < 0)
        BAD("desc->total_q = %d: must be >= 0", desc->total_q);
    if (desc->max_seqlen_q < 0 || desc->max_seqlen_k < 0)
        BAD("desc->max_seqlen_q = %d, max_seqlen_k = %d: must be >= 0", desc->max_seqlen_q,
            desc->max_seqlen_k);
    if (desc->check_indices != 0 && desc->check_indices != 1)
        BAD("desc->check_indices = %d: must be 0 or 1", desc->check_indices);
    const int paged = desc->block_size != 0;
    if (!paged) {
        if (desc->total_k < 0)
            BAD("desc->total_k = %d: must be >= 0", desc->total_k);
        if (desc->num_blocks || desc->max_blocks_per_seq)
            BAD("desc->num_blocks = %d, max_blocks_per_seq = %d with block_size = 0 (packed keys): "
                "set block_size for a paged cache", desc->num_blocks, desc->max_blocks_per_seq);
    } else {
        const int bs = desc->block_size;
        if (bs < 1 || bs > CLATTN_MAX_BLOCK_SIZE || (bs & (bs - 1)) != 0)
            BAD("desc->block_size = %d: must be 0 (packed keys) or a power of two in 1..%d", bs,
                CLATTN_MAX_BLOCK_SIZE);
        if (desc->total_k != 0)
            BAD("desc->total_k = %d with a paged cache: must be 0 (the cache holds num_blocks * "
                "block_size slots)", desc->total_k);
        if (desc->num_blocks < 0 || desc->max_blocks_per_seq < 0)
            BAD("desc->num_blocks = %d, max_blocks_per_seq = %d: must be >= 0", desc->num_blocks,
                desc->max_blocks_per_seq);
        if ((long long)desc->num_blocks * bs > INT_MAX)
            BAD("desc->num_blocks * block_size = %lld slots: at most %d", (long long)desc->num_blocks * bs,
                INT_MAX);
    }
    if ((desc->kv_storage != CLATTN_KV_INT8) &&
        (desc->k_scale || desc->v_scale || desc->k_scale_host || desc->v_scale_host))
        BAD("desc->k_scale/v_scale (or their _host) given but desc->kv_storage is not "
            "CLATTN_KV_INT8");

    /* The shape and variants are an attention desc's: the dense check covers them. */
    clattn_attention_desc d;
    clattn_varlen_dense_desc(desc, desc->batch, desc->max_seqlen_q, desc->max_seqlen_k, &d);
    d.path = CLATTN_PATH_FUSED;
    d.kv_storage = desc->kv_storage;
    clattn_problem *p = &vp->p;
    char inner[400];
    if (clattn_problem_init(&d, p, inner, sizeof inner) != CLATTN_SUCCESS) {
        /* the dense names: seq_q and seq_kv are this desc's max_seqlen_q and max_seqlen_k */
        snprintf(err, err_len, "%s", inner);
        return CLATTN_INVALID_ARGUMENT;
    }

    /* Valid tables have total_q = cu_seqlens_q[B] <= B * max_seqlen_q (and so for the keys): what
       the split partials are sized by. */
    if ((long long)desc->total_q > (long long)p->B * p->Lq)
        BAD("desc->total_q = %d: more than batch * max_seqlen_q = %lld rows, which no valid "
            "cu_seqlens_q gives", desc->total_q, (long long)p->B * p->Lq);
    if (!paged && (long long)desc->total_k > (long long)p->B * p->Lk)
        BAD("desc->total_k = %d: more than batch * max_seqlen_k = %lld rows, which no valid "
            "cu_seqlens_k gives", desc->total_k, (long long)p->B * p->Lk);

    /* Each sequence's bounds are relative to its own Lk - Lq, worked out in the kernel: the
       right edge is min(causal_abs, Lk - Lq + causal_offset), the left Lk - Lq + lo_offset. */
    p->varlen = 1;
    p->paged = paged;
    const int wr = desc->window ? desc->window_right : -1, wl = desc->window ? desc->window_left : -1;
    p->causal_bound = desc->causal != CLATTN_CAUSAL_NONE || wr >= 0;
    p->causal_offset = INT_MAX;
    if (desc->causal == CLATTN_CAUSAL_BOTTOM_RIGHT)
        p->causal_offset = 0;
    if (wr >= 0 && wr < p->causal_offset)
        p->causal_offset = wr;
    p->window_lo = wl >= 0;
    p->lo_offset = wl >= 0 ? -wl : 0;

    clattn_flash_tables *t = &vp->t;
    t->total_q = desc->total_q;
    t->total_k = paged ? 0 : desc->total_k;
    t->num_blocks = paged ? desc->num_blocks : 0;
    t->max_blocks = paged ? desc->max_blocks_per_seq : 0;
    t->page_shift = 0;
    while (paged && (1 << t->page_shift) < desc->block_size)
        t->page_shift++;
    t->causal_abs = desc->causal == CLATTN_CAUSAL_TOP_LEFT ? 0 : INT_MAX;
    vp->paged = paged;
    vp->block_size = desc->block_size;

    const size_t es = clattn_dtype_size(p->dtype), kv_es = p->kv_int8 ? 1 : es;
    const size_t kv_rows = paged ? (size_t)desc->num_blocks * (size_t)desc->block_size
                                 : (size_t)desc->total_k;
    vp->q_bytes = mul4((size_t)desc->total_q, (size_t)p->Hq, (size_t)p->d, es);
    vp->out_bytes = mul4((size_t)desc->total_q, (size_t)p->Hq, (size_t)p->dv, es);
    vp->lse_bytes = mul4((size_t)desc->total_q, (size_t)p->Hq, 1, sizeof(float));
    vp->k_bytes = mul4(kv_rows, (size_t)p->Hkv, (size_t)p->d, kv_es);
    vp->v_bytes = mul4(kv_rows, (size_t)p->Hkv, (size_t)p->dv, kv_es);
    vp->scale_bytes = p->kv_int8 ? mul4(kv_rows, (size_t)p->Hkv, 1, sizeof(float)) : 0;
    vp->cu_q_bytes = ((size_t)p->B + 1) * sizeof(int);
    vp->cu_k_bytes = paged ? 0 : ((size_t)p->B + 1) * sizeof(int);
    vp->seqlens_bytes = paged ? (size_t)p->B * sizeof(int) : 0;
    vp->table_bytes = paged ? mul4((size_t)p->B, (size_t)desc->max_blocks_per_seq, 1, sizeof(int)) : 0;
    const size_t limit = (size_t)1 << 62;
    if (vp->q_bytes >= limit || vp->out_bytes >= limit || vp->k_bytes >= limit ||
        vp->v_bytes >= limit || vp->table_bytes >= limit)
        BAD("problem too large to address (total_q=%d, %zu key rows, Hq=%d, d=%d)", desc->total_q,
            kv_rows, p->Hq, p->d);
    /* What the kernel's scratch and the dense helpers size by: the envelope's dense tensors are
       never allocated, so only the packed sizes above count. */
    return CLATTN_SUCCESS;
}

/* cu[0..B] of n rows: starts at 0, never decreases, ends at n, no step above max_len. */
static clattn_status check_cu(const char *name, const int *cu, int B, int n, int max_len, char *err,
                              size_t err_len)
{
    if (cu[0] != 0)
        BAD("%s[0] = %d: must be 0", name, cu[0]);
    for (int b = 0; b < B; b++) {
        if (cu[b + 1] < cu[b])
            BAD("%s[%d] = %d is below %s[%d] = %d: the prefix sums must not decrease", name, b + 1,
                cu[b + 1], name, b, cu[b]);
        if ((long)cu[b + 1] - cu[b] > max_len)
            BAD("%s[%d] - %s[%d] = %ld: sequence %d is longer than max_seqlen (%d)", name, b + 1, name,
                b, (long)cu[b + 1] - cu[b], b, max_len);
        if (cu[b + 1] > n)
            BAD("%s[%d] = %d: past the %d rows of the tensor", name, b + 1, cu[b + 1], n);
    }
    if (cu[B] != n)
        BAD("%s[%d] = %d: must equal the tensor's rows (%d)", name, B, cu[B], n);
    return CLATTN_SUCCESS;
}

clattn_status clattn_varlen_tables_check(const clattn_varlen_problem *vp, const int *cu_q,
                                         const int *cu_k, const int *seqlens_k,
                                         const int *block_table, char *err, size_t err_len)
{
    const clattn_problem *p = &vp->p;
    clattn_status st = check_cu("cu_seqlens_q", cu_q, p->B, vp->t.total_q, p->Lq, err, err_len);
    if (st != CLATTN_SUCCESS || !vp->paged)
        return st != CLATTN_SUCCESS ? st
                                    : check_cu("cu_seqlens_k", cu_k, p->B, vp->t.total_k, p->Lk, err,
                                               err_len);
    const long slots = (long)vp->t.max_blocks * vp->block_size;
    for (int b = 0; b < p->B; b++) {
        const int n = seqlens_k[b];
        if (n < 0 || n > p->Lk || n > slots)
            BAD("seqlens_k[%d] = %d: must be in 0..%ld (max_seqlen_k %d, max_blocks_per_seq * "
                "block_size %ld)", b, n, p->Lk < slots ? (long)p->Lk : slots, p->Lk, slots);
        const int used = (n + vp->block_size - 1) / vp->block_size;
        for (int i = 0; i < used; i++) {
            const int id = block_table[(long)b * vp->t.max_blocks + i];
            if (id < 0 || id >= vp->t.num_blocks)
                BAD("block_table[%d][%d] = %d: not a block of the cache (0..%d)", b, i, id,
                    vp->t.num_blocks - 1);
        }
    }
    return CLATTN_SUCCESS;
}

clattn_status clattn_varlen_scales_check(const clattn_varlen_problem *vp, const int *cu_k,
                                         const int *seqlens_k, const int *block_table,
                                         const float *k_scale, const float *v_scale, char *err,
                                         size_t err_len)
{
    const clattn_problem *p = &vp->p;
    for (int b = 0; b < p->B; b++) {
        const int n = vp->paged ? seqlens_k[b] : cu_k[b + 1] - cu_k[b];
        for (int j = 0; j < n; j++) {
            const long row = vp->paged ? (long)block_table[(long)b * vp->t.max_blocks +
                                                           j / vp->block_size] * vp->block_size +
                                             j % vp->block_size
                                       : (long)cu_k[b] + j;
            for (int h = 0; h < p->Hkv; h++) {
                const long at = row * p->Hkv + h;
                if (!isfinite(k_scale[at]) || !isfinite(v_scale[at]))
                    BAD("desc->%s_scale_host[%ld] = %g (sequence %d, key %d, KV head %d): the "
                        "scales of the keys a sequence reads must be finite",
                        isfinite(k_scale[at]) ? "v" : "k", at,
                        (double)(isfinite(k_scale[at]) ? v_scale[at] : k_scale[at]), b, j, h);
            }
        }
    }
    return CLATTN_SUCCESS;
}

clattn_status clattn_varlen_host_tables_given(const clattn_varlen_problem *vp,
                                             const clattn_varlen_desc *desc, char *err,
                                             size_t err_len)
{
    if (desc->cu_seqlens_q || desc->cu_seqlens_k || desc->seqlens_k || desc->block_table ||
        desc->k_scale || desc->v_scale)
        BAD("desc->cu_seqlens_q (or another device buffer) given to a call that reads host arrays: "
            "set the *_host fields");
    if (vp->paged && desc->cu_seqlens_k_host)
        BAD("desc->cu_seqlens_k_host given with a paged cache (block_size %d): the keys are counted "
            "by seqlens_k_host", vp->block_size);
    if (!vp->paged && (desc->seqlens_k_host || desc->block_table_host))
        BAD("desc->seqlens_k_host/block_table_host given with packed keys (block_size 0): set "
            "block_size for a paged cache");
    return CLATTN_SUCCESS;
}

clattn_status clattn_varlen_sizes(const clattn_varlen_desc *desc, clattn_tensor_sizes *sizes,
                                  size_t *scale_bytes)
{
    clattn_varlen_problem vp;
    clattn_status st = clattn_varlen_problem_init(desc, &vp, NULL, 0);
    if (st != CLATTN_SUCCESS)
        return st;
    if (sizes) {
        memset(sizes, 0, sizeof *sizes);
        sizes->q = vp.q_bytes;
        sizes->k = vp.k_bytes;
        sizes->v = vp.v_bytes;
        sizes->out = vp.out_bytes;
        sizes->lse = vp.lse_bytes;
    }
    if (scale_bytes)
        *scale_bytes = vp.scale_bytes;
    return CLATTN_SUCCESS;
}
