/* clattn_attention_varlen_reference: each sequence of a ragged batch as the dense problem it is
 * (batch 1, its own Lq and Lk, token-major), computed by clattn_attention_reference. Packed rows
 * are read in place; paged keys are gathered from their blocks first. */
#include "host/serving/serving.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD(st, ...) do { snprintf(err, err_len, __VA_ARGS__); return (st); } while (0)

/* Copies sequence b's n keys (rows of width elements of es bytes) from a paged cache into dst. */
static void gather(const clattn_varlen_problem *vp, const int *table_row, int n, const void *cache,
                   size_t row_bytes, void *dst)
{
    const int bs = vp->block_size;
    for (int j = 0; j < n; j++) {
        const size_t slot = (size_t)table_row[j / bs] * (size_t)bs + (size_t)(j % bs);
        memcpy((char *)dst + (size_t)j * row_bytes, (const char *)cache + slot * row_bytes, row_bytes);
    }
}

clattn_status clattn_attention_varlen_reference(const clattn_varlen_desc *desc, const void *q,
                                                const void *k, const void *v, void *out, float *lse,
                                                char *err, size_t err_len)
{
    char scratch[8];
    if (!err) {
        err = scratch;
        err_len = sizeof scratch;
    }
    clattn_varlen_problem vp;
    if (clattn_varlen_problem_init(desc, &vp, err, err_len) != CLATTN_SUCCESS)
        return CLATTN_INVALID_ARGUMENT;
    if (clattn_varlen_host_tables_given(&vp, desc, err, err_len) != CLATTN_SUCCESS)
        return CLATTN_INVALID_ARGUMENT;
    const clattn_problem *p = &vp.p;
    if (p->B == 0 || vp.t.total_q == 0 || (!out && !lse))
        return CLATTN_SUCCESS;
    if (!q || !k || !v || !desc->cu_seqlens_q_host ||
        (vp.paged ? !desc->seqlens_k_host || !desc->block_table_host : !desc->cu_seqlens_k_host) ||
        (p->kv_int8 && (!desc->k_scale_host || !desc->v_scale_host)))
        BAD(CLATTN_INVALID_ARGUMENT, "q, k, v and the host tables (and scales) the desc needs must "
            "be given");
    if (clattn_varlen_tables_check(&vp, desc->cu_seqlens_q_host, desc->cu_seqlens_k_host,
                                   desc->seqlens_k_host, desc->block_table_host, err,
                                   err_len) != CLATTN_SUCCESS)
        return CLATTN_INVALID_ARGUMENT;
    if (p->kv_int8 &&
        clattn_varlen_scales_check(&vp, desc->cu_seqlens_k_host, desc->seqlens_k_host,
                                   desc->block_table_host, desc->k_scale_host, desc->v_scale_host,
                                   err, err_len) != CLATTN_SUCCESS)
        return CLATTN_INVALID_ARGUMENT;

    const size_t es = clattn_dtype_size(p->dtype), kv_es = p->kv_int8 ? 1 : es;
    const size_t q_row = (size_t)p->Hq * p->d * es, o_row = (size_t)p->Hq * p->dv * es;
    const size_t k_row = (size_t)p->Hkv * p->d * kv_es, v_row = (size_t)p->Hkv * p->dv * kv_es;
    const size_t s_row = (size_t)p->Hkv * sizeof(float);
    /* paged: one sequence's keys gathered (the longest a valid table allows) */
    void *kg = NULL, *vg = NULL;
    float *ksg = NULL, *vsg = NULL, *lse_b = NULL;
    if (vp.paged) {
        kg = malloc((size_t)p->Lk * k_row + 1);
        vg = malloc((size_t)p->Lk * v_row + 1);
        ksg = malloc((size_t)p->Lk * s_row + 1);
        vsg = malloc((size_t)p->Lk * s_row + 1);
    }
    lse_b = malloc((size_t)p->Lq * p->Hq * sizeof(float) + 1);
    clattn_status st = CLATTN_SUCCESS;
    if ((vp.paged && (!kg || !vg || !ksg || !vsg)) || !lse_b) {
        snprintf(err, err_len, "out of host memory");
        st = CLATTN_OUT_OF_MEMORY;
    }
    for (int b = 0; b < p->B && st == CLATTN_SUCCESS; b++) {
        const int q0 = desc->cu_seqlens_q_host[b], lq = desc->cu_seqlens_q_host[b + 1] - q0;
        if (lq == 0)
            continue;
        const void *kb, *vb;
        const float *ksb = NULL, *vsb = NULL;
        int lk;
        if (vp.paged) {
            lk = desc->seqlens_k_host[b];
            const int *row = desc->block_table_host + (size_t)b * vp.t.max_blocks;
            gather(&vp, row, lk, k, k_row, kg);
            gather(&vp, row, lk, v, v_row, vg);
            if (p->kv_int8) {
                gather(&vp, row, lk, desc->k_scale_host, s_row, ksg);
                gather(&vp, row, lk, desc->v_scale_host, s_row, vsg);
            }
            kb = kg, vb = vg, ksb = ksg, vsb = vsg;
        } else {
            const int k0 = desc->cu_seqlens_k_host[b];
            lk = desc->cu_seqlens_k_host[b + 1] - k0;
            kb = (const char *)k + (size_t)k0 * k_row;
            vb = (const char *)v + (size_t)k0 * v_row;
            if (p->kv_int8) {
                ksb = desc->k_scale_host + (size_t)k0 * p->Hkv;
                vsb = desc->v_scale_host + (size_t)k0 * p->Hkv;
            }
        }
        clattn_attention_desc d;
        clattn_varlen_dense_desc(desc, 1, lq, lk, &d);
        d.k_scale_host = p->kv_int8 ? ksb : NULL;
        d.v_scale_host = p->kv_int8 ? vsb : NULL;
        void *ob = out ? (char *)out + (size_t)q0 * o_row : NULL;
        st = clattn_attention_reference(&d, (const char *)q + (size_t)q0 * q_row, kb, vb, NULL, ob,
                                        NULL, lse ? lse_b : NULL);
        if (st != CLATTN_SUCCESS) {
            snprintf(err, err_len, "sequence %d: the dense reference refused it (status %d)", b, (int)st);
            break;
        }
        for (int h = 0; lse && h < p->Hq; h++)
            for (int i = 0; i < lq; i++)
                lse[(size_t)h * vp.t.total_q + (size_t)(q0 + i)] = lse_b[(size_t)h * lq + i];
    }
    free(kg);
    free(vg);
    free(ksg);
    free(vsg);
    free(lse_b);
    return st;
}
