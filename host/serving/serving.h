/* The serving module: attention over ragged batches and a paged KV cache (clattn_varlen_desc), and
 * writing new tokens into that cache. The fused kernel does the work (cl/flash_attention.cl with
 * VARLEN and PAGED); this module resolves a varlen desc into the batch's envelope problem and its
 * tables, checks the caller's tables when asked, and provides the host, reference and cache-write
 * calls. Depends on core/ and attention/. Never installed.
 *
 * Exports (files of host/serving/):
 *   varlen_problem.c  clattn_varlen_problem_init, clattn_varlen_dense_desc, the table and scale
 *                     checks, public clattn_varlen_sizes
 *   varlen.c          the public clattn_attention_varlen
 *   varlen_host.c     the public clattn_attention_varlen_host
 *   varlen_reference.c the public clattn_attention_varlen_reference
 *   cache_write.c     the public clattn_reshape_and_cache
 */
#ifndef CLATTN_SERVING_H
#define CLATTN_SERVING_H

#include "host/attention/attention.h"

/* The largest block_size: the kernel looks up a tile's rows with a shift and mask. */
#define CLATTN_MAX_BLOCK_SIZE 256

/* A varlen desc resolved. p is the envelope the plan and kernel build take: B sequences, Lq and Lk
   the bounds max_seqlen_q and max_seqlen_k, token-major strides, varlen (and paged) set, and
   causal_offset / lo_offset relative to each sequence's Lk - Lq (t.causal_abs the absolute bound of
   top-left causality). */
typedef struct clattn_varlen_problem {
    clattn_problem p;
    clattn_flash_tables t;      /* the buffers left NULL: a call fills them from its desc */
    int paged, block_size;
    size_t q_bytes, k_bytes, v_bytes, out_bytes, lse_bytes, scale_bytes;
    size_t cu_q_bytes, cu_k_bytes, seqlens_bytes, table_bytes;   /* int32 tables */
} clattn_varlen_problem;

/* The dense desc of batch sequences of seq_q queries and seq_kv keys with desc's heads, dims, scale,
   storage, causality, variants and K/V storage, token-major (no scales, no mask, path AUTO). */
void clattn_varlen_dense_desc(const clattn_varlen_desc *desc, int batch, int seq_q, int seq_kv,
                              clattn_attention_desc *d);
/* Validates desc's shape and variants (not its tables, nor which pointers are given) and fills vp.
   On failure writes a message naming the field into err. */
clattn_status clattn_varlen_problem_init(const clattn_varlen_desc *desc, clattn_varlen_problem *vp,
                                         char *err, size_t err_len);
/* Whether host copies of the tables are valid (clattn.h); on failure names the first bad entry.
   cu_k for packed keys, seqlens_k and block_table for paged ones. */
clattn_status clattn_varlen_tables_check(const clattn_varlen_problem *vp, const int *cu_q,
                                         const int *cu_k, const int *seqlens_k,
                                         const int *block_table, char *err, size_t err_len);

/* A host call's desc names host tables only, and only those its keys use. */
clattn_status clattn_varlen_host_tables_given(const clattn_varlen_problem *vp,
                                             const clattn_varlen_desc *desc, char *err,
                                             size_t err_len);
/* The int8 scales of every key a sequence reads (of valid tables) are finite; on failure names
   the first that is not. */
clattn_status clattn_varlen_scales_check(const clattn_varlen_problem *vp, const int *cu_k,
                                         const int *seqlens_k, const int *block_table,
                                         const float *k_scale, const float *v_scale, char *err,
                                         size_t err_len);

#endif /* CLATTN_SERVING_H */
