/* The multi-head attention layer: its resolved shape, the attention it runs, and the double-precision
 * CPU reference (clattn_mha_reference; it and the descriptor and weights are public, clattn.h).
 *
 * Conventions are PyTorch's nn.MultiheadAttention with batch_first=True, so that a trained layer's
 * tensors load as they are (all float32, row-major):
 *
 *   Q = Xq·W_qᵀ + b_q     [B,Lq,E]        W_q [E, E]
 *   K = Xk·W_kᵀ + b_k     [B,Lk,Hkv*dh]   W_k [Hkv*dh, kdim]      dh = E / Hq
 *   V = Xv·W_vᵀ + b_v     [B,Lk,Hkv*dh]   W_v [Hkv*dh, vdim]
 *   head h: O_h = softmax(Q_h·K_gᵀ·scale + mask) · V_g,  g = h / (Hq/Hkv),
 *           Q_h = columns h*dh .. (h+1)*dh-1 of Q (likewise K_g, V_g)
 *   out = concat(O_0 .. O_{Hq-1})·W_oᵀ + b_o       [B,Lq,E]    W_o [E, E]
 *
 * Q, K, V and the concatenated heads are then exactly CLATTN_LAYOUT_BSHD tensors, so a device path
 * is three GEMMs, clattn_attention() with clattn_mha_attention_desc(), and one more GEMM.
 * With Hkv == Hq this is PyTorch's layer; Hkv < Hq (grouped-query attention) has no PyTorch
 * counterpart: K and V projections then have Hkv*dh rows.
 * Not supported (PyTorch options): add_bias_kv, add_zero_attn, dropout (inference only).
 * The causal modes, masks and the fully-masked-row rule (out 0, weights 0) are clattn.h's.
 */
#ifndef CLATTN_MHA_REFERENCE_H
#define CLATTN_MHA_REFERENCE_H

#include "clattn.h"

#include <stddef.h>

/* clattn_mha_desc and clattn_mha_weights are public (include/clattn.h). */

/* A desc with defaults resolved, and the element count of every tensor of the layer. */
typedef struct clattn_mha_shape {
    int B, Lq, Lk, E, kdim, vdim, Hq, Hkv, dh;
    int kv_width;                  /* Hkv * dh: columns of K and V */
    float scale;
    size_t x_q, x_k, x_v, out;     /* inputs [B,Lq,E], [B,Lk,kdim], [B,Lk,vdim]; out [B,Lq,E] */
    size_t in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight;
    size_t in_proj_bias, out_proj_weight, out_proj_bias;
    size_t weights;                /* per-head attention weights [B,Hq,Lq,Lk] */
    size_t mask;                   /* elements the mask strides can address; 0 without a mask */
} clattn_mha_shape;

/* Validates desc and fills shape. On failure writes a message naming the field into err. */
clattn_status clattn_mha_shape_init(const clattn_mha_desc *desc, clattn_mha_shape *shape,
                                    char *err, size_t err_len);

/* The per-head attention the layer runs on its projections: BSHD layout, float32, the layer's
   heads, scale, causal mode and mask. desc must have passed clattn_mha_shape_init(). */
void clattn_mha_attention_desc(const clattn_mha_desc *desc, clattn_attention_desc *out);

/* clattn_mha_reference(), the layer on the CPU in double precision, is public (include/clattn.h). */

#endif /* CLATTN_MHA_REFERENCE_H */
