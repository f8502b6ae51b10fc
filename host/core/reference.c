/* clattn_attention_reference: the semantics of include/clattn.h on the CPU in double precision, with
 * no OpenCL. Every device path is tested against it, so it favours plainness over speed; the only
 * concession is widening each K/V head to double once, not once per query row.
 *
 * It is the one CPU attention: the multi-head layer's reference (mha_reference.c) runs its heads
 * through clattn_attention_reference_run on double tensors, so that the rules for hidden keys,
 * empty rows and NaN are written once.
 *
 * Addressing comes from clattn_problem_init, the same resolution the device paths use, so that the
 * two agree on what every stride means; tests/test_reference.c checks that resolution against
 * closed-form cases, since a shared mistake would otherwise pass every device comparison. */
#include "host/core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The element types of q, k, v and out widened to double. */
static double load(const void *base, clattn_ref_elem elem, long index)
{
    switch (elem) {
    case CLATTN_REF_F16: return clattn_half_to_float(((const uint16_t *)base)[index]);
    case CLATTN_REF_BF16: return clattn_bf16_to_float(((const uint16_t *)base)[index]);
    case CLATTN_REF_F64: return ((const double *)base)[index];
    default: return ((const float *)base)[index];
    }
}

/* A K or V element: in the storage type, or int8 times its token's scale (CLATTN_KV_INT8). */
static double load_kv(const clattn_problem *p, const void *base, clattn_ref_elem elem,
                      const float *scale, long scale_index, long index)
{
    if (p->kv_int8)
        return (double)((const signed char *)base)[index] * (double)scale[scale_index];
    return load(base, elem, index);
}

/* Rounded once from double to float, then to half. The double rounding can differ from a direct
   double -> half rounding only when the float lands exactly on a half tie, far below every tolerance
   the tests apply to F16 results. */
static void store(void *base, clattn_ref_elem elem, long index, double x)
{
    switch (elem) {
    case CLATTN_REF_F16: ((uint16_t *)base)[index] = clattn_float_to_half((float)x); break;
    case CLATTN_REF_BF16: ((uint16_t *)base)[index] = clattn_float_to_bf16((float)x); break;
    case CLATTN_REF_F64: ((double *)base)[index] = x; break;
    default: ((float *)base)[index] = (float)x; break;
    }
}

/* The additive term of the mask element at index: the value, or 0 / -inf for a bool mask. */
static double mask_term(const void *mask, clattn_mask_type type, long index)
{
    switch (type) {
    case CLATTN_MASK_ADDITIVE_F32: return ((const float *)mask)[index];
    case CLATTN_MASK_ADDITIVE_F16: return clattn_half_to_float(((const uint16_t *)mask)[index]);
    case CLATTN_MASK_BOOL_U8: return ((const unsigned char *)mask)[index] ? 0.0 : -INFINITY;
    default: return 0.0;
    }
}

/* Scratch for one (batch, head): K and V of its KV head in double, one query row, one row of scores;
   and the element type of q, k, v and out. */
typedef struct head_scratch {
    double *k, *v, *q, *s;
    clattn_ref_elem elem;
} head_scratch;

/* One query row (b, h, i): scores, softmax and the weighted sum of V. */
static void reference_row(const clattn_problem *p, const head_scratch *hs, const void *q,
                          const void *mask, void *out, float *probs, float *lse, int b, int h, int i)
{
    const long row = ((long)b * p->Hq + h) * p->Lq + i;   /* index into [B,Hq,Lq] */
    const long q_off = b * p->q_bs + h * p->q_hs + i * p->q_rs;
    const long m_off = b * p->mask_bs + h * p->mask_hs + i * p->mask_rs;
    double m = -INFINITY;

    for (int x = 0; x < p->d; x++)
        hs->q[x] = load(q, hs->elem, q_off + x);
    for (int j = 0; j < p->Lk; j++) {
        double s = -INFINITY;
        /* A key hidden by the causal rule or the window is never read, as in the kernels: a NaN
           there stays out of the row. The variants in the order of clattn.h. */
        if ((!p->causal_bound || (long)j <= (long)i + p->causal_offset) &&
            (!p->window_lo || (long)j >= (long)i + p->lo_offset)) {
            double dot = 0.0;
            for (int x = 0; x < p->d; x++)
                dot += hs->q[x] * hs->k[(long)j * p->d + x];
            s = dot * (double)p->scale;
            if (p->softcap > 0.0f)
                s = p->softcap * tanh(s / p->softcap);
            if (p->mask_type != CLATTN_MASK_NONE)
                s += mask_term(mask, p->mask_type, m_off + j);
            if (p->alibi)
                s -= (double)p->alibi[h] * fabs((double)i + p->Lk - p->Lq - j);
        }
        hs->s[j] = s;
        /* NaN wins the max, so that it reaches every output of the row. */
        if (isnan(s) || isnan(m))
            m = m + s;
        else if (s > m)
            m = s;
    }

    /* A sink joins the max and the sum, not the values. */
    const double sink = p->sinks ? (double)p->sinks[h] : -INFINITY;
    if (!isnan(m) && sink > m)
        m = sink;
    if (m == -INFINITY) {   /* no key visible: zeros and -inf, never 0/0 */
        if (out)
            for (int x = 0; x < p->dv; x++)
                store(out, hs->elem, b * p->o_bs + h * p->o_hs + i * p->o_rs + x, 0.0);
        if (probs)
            for (int j = 0; j < p->Lk; j++)
                probs[row * p->Lk + j] = 0.0f;
        if (lse)
            lse[row] = -INFINITY;
        return;
    }

    /* w_j = exp(s_j - m) once per key; a hidden key is marked -1 (no weight is negative) so that it
       is skipped below rather than weighted by 0, which keeps a NaN in its V out of the row. */
    double sum = sink == -INFINITY ? 0.0 : exp(sink - m);
    for (int j = 0; j < p->Lk; j++) {
        double s = hs->s[j];
        hs->s[j] = s == -INFINITY ? -1.0 : exp(s - m);   /* NaN counts as visible */
        if (hs->s[j] != -1.0)
            sum += hs->s[j];
    }
    /* A NaN row is NaN throughout, hidden keys included: "propagates to its row" (clattn.h), and
       what a softmax computing exp(s - m) with m NaN gives. */
    if (probs)
        for (int j = 0; j < p->Lk; j++)
            probs[row * p->Lk + j] = isnan(m) ? NAN : hs->s[j] == -1.0 ? 0.0f : (float)(hs->s[j] / sum);
    if (lse)
        lse[row] = (float)(m + log(sum));
    if (out) {
        for (int x = 0; x < p->dv; x++) {
            double acc = 0.0;
            for (int j = 0; j < p->Lk; j++)
                if (hs->s[j] != -1.0)
                    acc += hs->s[j] * hs->v[(long)j * p->dv + x];
            store(out, hs->elem, b * p->o_bs + h * p->o_hs + i * p->o_rs + x, acc / sum);
        }
    }
}

clattn_status clattn_attention_reference(const clattn_attention_desc *desc, const void *q, const void *k,
                                         const void *v, const void *mask, void *out, float *probs,
                                         float *lse)
{
    clattn_problem p;
    clattn_status st = clattn_problem_init(desc, &p, NULL, 0);
    if (st != CLATTN_SUCCESS)
        return st;
    if (p.B == 0 || p.Lq == 0)
        return CLATTN_SUCCESS;
    /* The same agreement rules as the device entry points, so that a call the reference accepts is
       one the device accepts too. */
    if (p.mask_type == CLATTN_MASK_NONE && mask)
        return CLATTN_INVALID_ARGUMENT;
    int any_out = out || probs || lse;
    if (p.Lk > 0 && any_out && (!q || !k || (p.mask_type != CLATTN_MASK_NONE && !mask)))
        return CLATTN_INVALID_ARGUMENT;
    if (p.Lk > 0 && out && !v)
        return CLATTN_INVALID_ARGUMENT;
    /* Int8 K/V: the host scales, finite (the device buffers are for clattn_attention). */
    if (p.k_scale || p.v_scale)
        return CLATTN_INVALID_ARGUMENT;
    if (p.kv_int8 && p.Lk > 0 && any_out &&
        (clattn_kv_scales_check(&p, out != NULL, NULL, 0) != CLATTN_SUCCESS))
        return CLATTN_INVALID_ARGUMENT;
    if (!any_out)
        return CLATTN_SUCCESS;
    return clattn_attention_reference_run(&p, clattn_ref_elem_of(p.dtype),
                                          q, k, v, mask, out, probs, lse);
}

clattn_ref_elem clattn_ref_elem_of(clattn_dtype dtype)
{
    return dtype == CLATTN_F16 ? CLATTN_REF_F16 : dtype == CLATTN_BF16 ? CLATTN_REF_BF16 : CLATTN_REF_F32;
}

clattn_status clattn_attention_reference_run(const clattn_problem *p, clattn_ref_elem elem,
                                             const void *q, const void *k, const void *v,
                                             const void *mask, void *out, float *probs, float *lse)
{
    clattn_status st = CLATTN_SUCCESS;
    head_scratch hs = {NULL, NULL, NULL, NULL, elem};
    if (p->B == 0 || p->Lq == 0 || !(out || probs || lse))
        return CLATTN_SUCCESS;

    size_t lk = p->Lk > 0 ? (size_t)p->Lk : 1;   /* malloc(0) may return NULL */
    hs.k = malloc(lk * (size_t)p->d * sizeof(double));
    hs.v = malloc(lk * (size_t)p->dv * sizeof(double));
    hs.q = malloc((size_t)p->d * sizeof(double));
    hs.s = malloc(lk * sizeof(double));
    if (!hs.k || !hs.v || !hs.q || !hs.s) {
        st = CLATTN_OUT_OF_MEMORY;
        goto out;
    }

    for (int b = 0; b < p->B; b++) {
        for (int h = 0; h < p->Hq; h++) {
            const int kvh = h / p->group;
            /* Query heads of one group share a KV head, but widening it again per query head keeps
               the loop plain; its cost is small next to the Lq*Lk*d products. */
            for (int j = 0; j < p->Lk; j++) {
                const long s_at = b * p->s_bs + kvh * p->s_hs + j * p->s_rs;
                for (int x = 0; x < p->d; x++)
                    hs.k[(long)j * p->d + x] =
                        load_kv(p, k, elem, p->k_scale_host, s_at,
                                b * p->k_bs + kvh * p->k_hs + j * p->k_rs + x);
                if (out)
                    for (int x = 0; x < p->dv; x++)
                        hs.v[(long)j * p->dv + x] =
                            load_kv(p, v, elem, p->v_scale_host, s_at,
                                    b * p->v_bs + kvh * p->v_hs + j * p->v_rs + x);
            }
            for (int i = 0; i < p->Lq; i++)
                reference_row(p, &hs, q, mask, out, probs, lse, b, h, i);
        }
    }

out:
    free(hs.k);
    free(hs.v);
    free(hs.q);
    free(hs.s);
    return st;
}

clattn_status clattn_kv_scales_check(const clattn_problem *p, int need_v, char *err, size_t err_len)
{
    char scratch[8];
    if (!err) {
        err = scratch;
        err_len = sizeof scratch;
    }
    const long n = (long)p->B * p->Hkv * p->Lk;
    const float *arrays[2] = {p->k_scale_host, need_v ? p->v_scale_host : NULL};
    const char *names[2] = {"desc->k_scale_host", "desc->v_scale_host"};
    for (int a = 0; a < 2 && n > 0; a++) {
        if (!arrays[a]) {
            if (a == 1 && !need_v)
                continue;
            snprintf(err, err_len, "%s is NULL but desc->kv_storage is CLATTN_KV_INT8", names[a]);
            return CLATTN_INVALID_ARGUMENT;
        }
        for (long t = 0; t < n; t++)
            if (!isfinite(arrays[a][t])) {
                snprintf(err, err_len, "%s[%ld] = %g: int8 scales must be finite", names[a], t,
                         (double)arrays[a][t]);
                return CLATTN_INVALID_ARGUMENT;
            }
    }
    return CLATTN_SUCCESS;
}
