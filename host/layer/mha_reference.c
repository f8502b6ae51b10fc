/* The multi-head attention layer on the CPU in double precision: the yardstick for the device path
   and the code that reproduces PyTorch's fixtures (tests/data/mha_*). Written for clarity, not
   speed: every product is a plain loop. The attention between the projections is the library's one
   CPU attention (reference.c) on the desc the device path runs (clattn_mha_attention_desc), so the
   two cannot disagree on masks, causal modes, grouped heads or NaN. */
#include "host/attention/attention.h"
#include "host/layer/layer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a * b, or 0 with *overflow set when it does not fit in size_t */
static size_t mul(size_t a, size_t b, int *overflow)
{
    if (b != 0 && a > SIZE_MAX / b) {
        *overflow = 1;
        return 0;
    }
    return a * b;
}

/* Elements between the mask rows of consecutive queries: 0 when every row reads the same one. */
static size_t mask_row_stride(const clattn_mha_desc *desc, int Lk)
{
    return desc->mask_rows_broadcast ? 0
           : desc->mask_row_stride   ? (size_t)desc->mask_row_stride
                                     : (size_t)Lk;
}

clattn_status clattn_mha_shape_init(const clattn_mha_desc *desc, clattn_mha_shape *s,
                                    char *err, size_t err_len)
{
    const clattn_status bad = CLATTN_INVALID_ARGUMENT;
    int of = 0;

    if (!desc || !s)
        return clattn_fail_into(err, err_len, bad, "desc and shape must not be NULL");
    if (desc->batch < 0 || desc->seq_q < 0 || desc->seq_kv < 0)
        return clattn_fail_into(err, err_len, bad, "batch %d, seq_q %d, seq_kv %d: must be >= 0",
                        desc->batch, desc->seq_q, desc->seq_kv);
    if (desc->embed_dim < 1 || desc->kdim < 0 || desc->vdim < 0)
        return clattn_fail_into(err, err_len, bad, "embed_dim %d must be >= 1, kdim %d and vdim %d >= 0",
                        desc->embed_dim, desc->kdim, desc->vdim);
    if (desc->heads_q < 1 || desc->embed_dim % desc->heads_q != 0)
        return clattn_fail_into(err, err_len, bad, "heads_q %d must be >= 1 and divide embed_dim %d",
                        desc->heads_q, desc->embed_dim);
    if (desc->embed_dim / desc->heads_q > CLATTN_MAX_HEAD_DIM)
        return clattn_fail_into(err, err_len, CLATTN_UNSUPPORTED, "head width embed_dim/heads_q = %d > %d",
                        desc->embed_dim / desc->heads_q, CLATTN_MAX_HEAD_DIM);
    if (desc->heads_kv < 0 || (desc->heads_kv > 0 && desc->heads_q % desc->heads_kv != 0))
        return clattn_fail_into(err, err_len, bad, "heads_kv %d must be 0 (= heads_q) or divide heads_q %d",
                        desc->heads_kv, desc->heads_q);
    if (!isfinite(desc->scale))
        return clattn_fail_into(err, err_len, bad, "scale must be finite");
    if ((desc->in_bias != 0 && desc->in_bias != 1) || (desc->out_bias != 0 && desc->out_bias != 1))
        return clattn_fail_into(err, err_len, bad, "in_bias %d and out_bias %d must be 0 or 1",
                        desc->in_bias, desc->out_bias);
    if ((int)desc->causal < CLATTN_CAUSAL_NONE || desc->causal > CLATTN_CAUSAL_TOP_LEFT)
        return clattn_fail_into(err, err_len, bad, "causal %d is not a clattn_causal", (int)desc->causal);
    if ((int)desc->mask_type < CLATTN_MASK_NONE || desc->mask_type > CLATTN_MASK_BOOL_U8)
        return clattn_fail_into(err, err_len, bad, "mask_type %d is not a clattn_mask_type",
                        (int)desc->mask_type);
    if (desc->mask_type != CLATTN_MASK_NONE &&
        (desc->mask_batch_stride < 0 || desc->mask_head_stride < 0 || desc->mask_row_stride < 0))
        return clattn_fail_into(err, err_len, bad, "mask strides must be >= 0");
    if (desc->mask_rows_broadcast != 0 && desc->mask_rows_broadcast != 1)
        return clattn_fail_into(err, err_len, bad, "mask_rows_broadcast %d must be 0 or 1",
                        desc->mask_rows_broadcast);
    if (desc->mask_rows_broadcast && desc->mask_row_stride != 0)
        return clattn_fail_into(err, err_len, bad, "mask_row_stride %ld with mask_rows_broadcast: every row "
                        "reads the same mask row, so the row stride must be 0",
                        desc->mask_row_stride);

    memset(s, 0, sizeof *s);
    s->B = desc->batch;
    s->Lq = desc->seq_q;
    s->Lk = desc->seq_kv;
    s->E = desc->embed_dim;
    s->kdim = desc->kdim ? desc->kdim : s->E;
    s->vdim = desc->vdim ? desc->vdim : s->E;
    s->Hq = desc->heads_q;
    s->Hkv = desc->heads_kv ? desc->heads_kv : s->Hq;
    s->dh = s->E / s->Hq;
    s->kv_width = s->Hkv * s->dh;
    s->scale = desc->scale != 0.0f ? desc->scale : (float)(1.0 / sqrt((double)s->dh));

    const size_t B = (size_t)s->B, Lq = (size_t)s->Lq, Lk = (size_t)s->Lk, E = (size_t)s->E;
    const size_t kvw = (size_t)s->kv_width;
    s->x_q = mul(mul(B, Lq, &of), E, &of);
    s->x_k = mul(mul(B, Lk, &of), (size_t)s->kdim, &of);
    s->x_v = mul(mul(B, Lk, &of), (size_t)s->vdim, &of);
    s->out = s->x_q;
    s->q_proj_weight = mul(E, E, &of);
    s->k_proj_weight = mul(kvw, (size_t)s->kdim, &of);
    s->v_proj_weight = mul(kvw, (size_t)s->vdim, &of);
    s->in_proj_weight = s->kdim == s->E && s->vdim == s->E ? mul(E + 2 * kvw, E, &of) : 0;
    s->in_proj_bias = desc->in_bias ? E + 2 * kvw : 0;
    s->out_proj_weight = s->q_proj_weight;
    s->out_proj_bias = desc->out_bias ? E : 0;
    s->weights = mul(mul(mul(B, (size_t)s->Hq, &of), Lq, &of), Lk, &of);
    if (desc->mask_type != CLATTN_MASK_NONE && s->weights > 0) {
        size_t rs = mask_row_stride(desc, s->Lk);
        size_t last = mul(B - 1, (size_t)desc->mask_batch_stride, &of);
        size_t h_off = mul((size_t)s->Hq - 1, (size_t)desc->mask_head_stride, &of);
        size_t r_off = mul(Lq - 1, rs, &of);
        s->mask = last + h_off + r_off + Lk;
        if (s->mask < last)
            of = 1;
    }
    if (of)
        return clattn_fail_into(err, err_len, bad, "the layer's tensors are too large to address");
    /* The variants are the attention's: checked by its rules (and named by its field names, which
       the layer's desc shares). */
    clattn_attention_desc a;
    clattn_problem p;
    clattn_mha_attention_desc(desc, &a);
    return clattn_problem_init(&a, &p, err, err_len);
}

void clattn_mha_attention_desc(const clattn_mha_desc *desc, clattn_attention_desc *a)
{
    memset(a, 0, sizeof *a);
    a->batch = desc->batch;
    a->heads_q = desc->heads_q;
    a->heads_kv = desc->heads_kv;
    a->seq_q = desc->seq_q;
    a->seq_kv = desc->seq_kv;
    a->head_dim = desc->embed_dim / desc->heads_q;
    a->head_dim_v = a->head_dim;
    a->scale = desc->scale;
    a->dtype = CLATTN_F32;
    a->layout = CLATTN_LAYOUT_BSHD;   /* [B,L,H*dh] is what the projections produce */
    a->causal = desc->causal;
    a->mask_type = desc->mask_type;
    a->mask_batch_stride = desc->mask_batch_stride;
    a->mask_head_stride = desc->mask_head_stride;
    a->mask_row_stride = desc->mask_row_stride;
    a->mask_rows_broadcast = desc->mask_rows_broadcast;
    a->path = CLATTN_PATH_AUTO;
    a->window = desc->window;
    a->window_left = desc->window_left;
    a->window_right = desc->window_right;
    a->softcap = desc->softcap;
    a->alibi_slopes = desc->alibi_slopes;
    a->sinks = desc->sinks;
}

/* y[r, o] = sum_c x[r, c] * w[o, c] + bias[o]: a row of x times the transposed weight, PyTorch's
   nn.Linear. x is float (an input) or double (the concatenated heads). */
static void linear_f(const float *x, size_t rows, int in, const float *w, const float *bias,
                     int outw, double *y)
{
    for (size_t r = 0; r < rows; r++)
        for (int o = 0; o < outw; o++) {
            double acc = bias ? (double)bias[o] : 0.0;
            for (int c = 0; c < in; c++)
                acc += (double)x[r * (size_t)in + (size_t)c] * (double)w[(size_t)o * (size_t)in + (size_t)c];
            y[r * (size_t)outw + (size_t)o] = acc;
        }
}

static void linear_d(const double *x, size_t rows, int in, const float *w, const float *bias,
                     int outw, double *y)
{
    for (size_t r = 0; r < rows; r++)
        for (int o = 0; o < outw; o++) {
            double acc = bias ? (double)bias[o] : 0.0;
            for (int c = 0; c < in; c++)
                acc += x[r * (size_t)in + (size_t)c] * (double)w[(size_t)o * (size_t)in + (size_t)c];
            y[r * (size_t)outw + (size_t)o] = acc;
        }
}

/* The caller's weights, resolved to one pointer per projection. */
typedef struct {
    const float *wq, *wk, *wv, *bq, *bk, *bv;
} projections;

static clattn_status check_weights(const clattn_mha_desc *desc, const clattn_mha_shape *s,
                                   const clattn_mha_weights *w, projections *pr, char *err,
                                   size_t err_len)
{
    const clattn_status bad = CLATTN_INVALID_ARGUMENT;
    const int separate = w->q_proj_weight || w->k_proj_weight || w->v_proj_weight;

    if (w->in_proj_weight && separate)
        return clattn_fail_into(err, err_len, bad, "give in_proj_weight or q/k/v_proj_weight, not both");
    if (w->in_proj_weight) {
        if (s->kdim != s->E || s->vdim != s->E)
            return clattn_fail_into(err, err_len, bad, "in_proj_weight needs kdim == vdim == embed_dim "
                            "(%d, %d, %d); use q/k/v_proj_weight", s->kdim, s->vdim, s->E);
        pr->wq = w->in_proj_weight;
        pr->wk = pr->wq + (size_t)s->E * (size_t)s->E;
        pr->wv = pr->wk + (size_t)s->kv_width * (size_t)s->E;
    } else {
        if (!w->q_proj_weight || !w->k_proj_weight || !w->v_proj_weight)
            return clattn_fail_into(err, err_len, bad, "in_proj_weight, or all of q/k/v_proj_weight, "
                            "must be given");
        pr->wq = w->q_proj_weight;
        pr->wk = w->k_proj_weight;
        pr->wv = w->v_proj_weight;
    }
    if (!w->out_proj_weight)
        return clattn_fail_into(err, err_len, bad, "out_proj_weight must be given");
    if (!desc->in_bias != !w->in_proj_bias)
        return clattn_fail_into(err, err_len, bad, "desc->in_bias is %d but in_proj_bias is %s",
                        desc->in_bias, w->in_proj_bias ? "given" : "NULL");
    if (!desc->out_bias != !w->out_proj_bias)
        return clattn_fail_into(err, err_len, bad, "desc->out_bias is %d but out_proj_bias is %s",
                        desc->out_bias, w->out_proj_bias ? "given" : "NULL");
    pr->bq = w->in_proj_bias;
    pr->bk = pr->bq ? pr->bq + s->E : NULL;
    pr->bv = pr->bk ? pr->bk + s->kv_width : NULL;
    return CLATTN_SUCCESS;
}

clattn_status clattn_mha_reference(const clattn_mha_desc *desc, const clattn_mha_weights *w,
                                   const float *x_q, const float *x_k, const float *x_v,
                                   const void *mask, float *out, float *weights,
                                   char *err, size_t err_len)
{
    const clattn_status bad = CLATTN_INVALID_ARGUMENT;
    clattn_mha_shape s;
    clattn_attention_desc ad;
    clattn_problem p;
    projections pr = {0};
    double *Q = NULL, *K = NULL, *V = NULL, *cat = NULL, *y = NULL;
    clattn_status st = clattn_mha_shape_init(desc, &s, err, err_len);
    if (st != CLATTN_SUCCESS)
        return st;
    if (!w)
        return clattn_fail_into(err, err_len, bad, "weights must not be NULL");
    st = check_weights(desc, &s, w, &pr, err, err_len);
    if (st != CLATTN_SUCCESS)
        return st;
    if (!x_k) {
        if (s.kdim != s.E || s.Lk != s.Lq)
            return clattn_fail_into(err, err_len, bad, "x_k NULL (self-attention) needs kdim == embed_dim "
                            "and seq_kv == seq_q");
        x_k = x_q;
    }
    if (!x_v) {
        if (s.vdim != s.kdim)
            return clattn_fail_into(err, err_len, bad, "x_v NULL (value = key) needs vdim == kdim");
        x_v = x_k;
    }
    if ((s.x_q && !x_q) || (s.x_k && !x_k))
        return clattn_fail_into(err, err_len, bad, "x_q and x_k must not be NULL for a non-empty layer");
    if (s.mask && !mask)
        return clattn_fail_into(err, err_len, bad, "mask_type is set but mask is NULL");
    if (s.out == 0 || (!out && !weights))
        return CLATTN_SUCCESS;
    /* The heads' attention: Q, K, V [B,L,H*dh] are BSHD with head stride dh. A desc that passed
       clattn_mha_shape_init resolves; the check keeps a disagreement from going unnoticed. */
    clattn_mha_attention_desc(desc, &ad);
    st = clattn_problem_init(&ad, &p, err, err_len);
    if (st != CLATTN_SUCCESS)
        return st;

    /* Everything is allocated before anything the caller owns is written (the attention allocates
       its scratch before writing weights). Without out, V and the output projection are skipped. */
    const size_t kv_elems = (size_t)s.B * (size_t)s.Lk * (size_t)s.kv_width;
    Q = malloc(s.x_q * sizeof *Q);
    K = malloc((kv_elems ? kv_elems : 1) * sizeof *K);
    if (out) {
        V = malloc((kv_elems ? kv_elems : 1) * sizeof *V);
        cat = malloc(s.out * sizeof *cat);
        y = malloc(s.out * sizeof *y);
    }
    if (!Q || !K || (out && (!V || !cat || !y))) {
        st = clattn_fail_into(err, err_len, CLATTN_OUT_OF_MEMORY, "host allocation for the reference failed");
        goto out;
    }

    linear_f(x_q, (size_t)s.B * (size_t)s.Lq, s.E, pr.wq, pr.bq, s.E, Q);
    linear_f(x_k, (size_t)s.B * (size_t)s.Lk, s.kdim, pr.wk, pr.bk, s.kv_width, K);
    if (out)
        linear_f(x_v, (size_t)s.B * (size_t)s.Lk, s.vdim, pr.wv, pr.bv, s.kv_width, V);

    st = clattn_attention_reference_run(&p, CLATTN_REF_F64, Q, K, V, mask, cat, weights, NULL);
    if (st != CLATTN_SUCCESS) {
        st = clattn_fail_into(err, err_len, st, "host allocation for the reference failed");
        goto out;
    }
    if (out) {
        linear_d(cat, (size_t)s.B * (size_t)s.Lq, s.E, w->out_proj_weight, w->out_proj_bias, s.E, y);
        for (size_t n = 0; n < s.out; n++)
            out[n] = (float)y[n];
    }
out:
    free(Q);
    free(K);
    free(V);
    free(cat);
    free(y);
    return st;
}
