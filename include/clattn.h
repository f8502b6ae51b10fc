/* clattn: portable OpenCL attention.
 *
 *   O = softmax(Q·Kᵀ·scale + mask) · V      per head, per batch entry
 *
 * Kernels are compiled at run time for the device in hand. All fallible calls return a clattn_status;
 * the detail of a failure (which argument, the OpenCL error code, the kernel build log) is kept on the
 * context and read with clattn_context_last_error(). The library never prints, exits or aborts.
 *
 * Shapes (element counts, row-major, innermost last):
 *   CLATTN_LAYOUT_BHSD: q [B,Hq,Lq,d]  k [B,Hkv,Lk,d]  v [B,Hkv,Lk,dv]  out [B,Hq,Lq,dv]
 *   CLATTN_LAYOUT_BSHD: q [B,Lq,Hq,d]  k [B,Lk,Hkv,d]  v [B,Lk,Hkv,dv]  out [B,Lq,Hq,dv]
 *     (tokens outer, heads interleaved, as a fused QKV projection produces them)
 *   probs: float32 [B,Hq,Lq,Lk] and lse: float32 [B,Hq,Lq] in every layout.
 *   Query head h reads KV head h / (Hq/Hkv) (multi-query and grouped-query attention).
 *
 * Causal masking:
 *   CLATTN_CAUSAL_BOTTOM_RIGHT (FlashAttention >= 2.1, KV-cache decoding): query i sees key j iff
 *     j <= i + (Lk - Lq).
 *   CLATTN_CAUSAL_TOP_LEFT (PyTorch is_causal): query i sees key j iff j <= i.
 *   The two agree when Lq == Lk.
 *
 * Masks: the element for (b, h, i, j), h being the query head, sits at
 *   b*mask_batch_stride + h*mask_head_stride + i*mask_row_stride + j     (mask_row_stride 0 means Lk).
 *   Additive masks (F32 or F16) are added to the scaled scores; -inf is allowed and hides the key.
 *   Bool masks (one byte per element): nonzero means "attend", zero hides the key.
 *   A mask and a causal mode may be combined.
 *
 * Edge cases:
 *   A row that sees no key (fully masked, Lk == 0, or causal with Lq > Lk) gives out 0, probs 0 and
 *   lse -inf, never NaN. A NaN in the inputs propagates to its row as NaN; it is not zeroed.
 *   B == 0 or Lq == 0: success, nothing is written.
 *   Whatever the storage type, both products and the softmax accumulate in float32; probs and lse are
 *   always float32; lse is the natural log of the row's sum of exp(scaled, masked score).
 *
 * Threads: every call that takes a context may be made from several threads at once. Calls on one
 * context are serialised by a lock held while arguments are checked and kernels are enqueued (kernel
 * objects are shared per context); use one context per thread for concurrency on the host side.
 * clattn_context_last_error() reports the most recent failure on the context, from whichever thread.
 */
#ifndef CLATTN_H
#define CLATTN_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stddef.h>

#include "clattn_version.h"

#if defined(_WIN32)
#  if defined(CLATTN_BUILDING)
#    define CLATTN_API __declspec(dllexport)
#  else
#    define CLATTN_API
#  endif
#elif defined(__GNUC__)
#  define CLATTN_API __attribute__((visibility("default")))
#else
#  define CLATTN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ---------------------------------------------------------------------------------- */

typedef enum clattn_status {
    CLATTN_SUCCESS = 0,
    CLATTN_INVALID_ARGUMENT,  /* caller error; detail in clattn_context_last_error() */
    CLATTN_UNSUPPORTED,       /* valid request this device or build cannot serve */
    CLATTN_OUT_OF_MEMORY,     /* host or device allocation failed, or the problem cannot fit */
    CLATTN_DEVICE_NOT_FOUND,
    CLATTN_BUILD_FAILED,      /* kernel compilation failed; build log in last_error */
    CLATTN_OPENCL_ERROR,      /* any other OpenCL failure; the cl_int code in last_error */
    CLATTN_IO_ERROR           /* a file the library reads or writes */
} clattn_status;

/* A static, human-readable name for the code ("CLATTN_INVALID_ARGUMENT: ..."); never NULL. */
CLATTN_API const char *clattn_status_string(clattn_status status);

/* "MAJOR.MINOR.PATCH" of the library actually linked (compare with CLATTN_VERSION_STRING). */
CLATTN_API const char *clattn_version(void);

/* ---- context --------------------------------------------------------------------------------- */

typedef struct clattn_context clattn_context;

/* selector: NULL or "" reads $CLATTN_DEVICE; empty too -> first GPU, else accelerator, else CPU.
   Accepts "P:D" (platform and device index), "gpu", "cpu", "accelerator", or a case-insensitive
   substring of the device name. On failure *out is NULL. */
CLATTN_API clattn_status clattn_context_create(const char *selector, clattn_context **out);
/* Wraps the caller's queue (retained, never released by us beyond our reference). Its context and
   device are used for every buffer and kernel; profiling need not be enabled on it. */
CLATTN_API clattn_status clattn_context_create_from_queue(cl_command_queue queue, clattn_context **out);
/* Waits for nothing; releases what the context owns. NULL is a no-op. */
CLATTN_API void clattn_context_release(clattn_context *ctx);
CLATTN_API cl_command_queue clattn_context_queue(const clattn_context *ctx);
CLATTN_API cl_context clattn_context_cl_context(const clattn_context *ctx);
CLATTN_API cl_device_id clattn_context_device(const clattn_context *ctx);
CLATTN_API const char *clattn_context_device_name(const clattn_context *ctx);
/* The message of the most recent failure on this context; "" when none (NULL ctx gives ""). */
CLATTN_API const char *clattn_context_last_error(const clattn_context *ctx);
/* High-water mark, in bytes, of the device scratch the context has allocated for its own use
   (score matrices of the unfused path, split-KV partials). */
CLATTN_API size_t clattn_context_scratch_bytes(const clattn_context *ctx);

/* ---- attention ------------------------------------------------------------------------------- */

typedef enum { CLATTN_F32 = 0, CLATTN_F16 } clattn_dtype;       /* F16: IEEE binary16 storage */
typedef enum { CLATTN_LAYOUT_BHSD = 0, CLATTN_LAYOUT_BSHD } clattn_layout;
typedef enum { CLATTN_CAUSAL_NONE = 0, CLATTN_CAUSAL_BOTTOM_RIGHT, CLATTN_CAUSAL_TOP_LEFT } clattn_causal;
typedef enum { CLATTN_MASK_NONE = 0, CLATTN_MASK_ADDITIVE_F32, CLATTN_MASK_ADDITIVE_F16,
               CLATTN_MASK_BOOL_U8 } clattn_mask_type;
/* AUTO picks the fused kernel unless probs are requested. UNFUSED: Q·Kᵀ, softmax, P·V as three
   kernels through a score matrix. FUSED: online softmax, never stores scores (no probs). */
typedef enum { CLATTN_PATH_AUTO = 0, CLATTN_PATH_UNFUSED, CLATTN_PATH_FUSED } clattn_path;

typedef struct clattn_attention_desc {   /* zero-initialise, then set; 0 means "default" where noted */
    int batch;            /* B >= 0 */
    int heads_q;          /* Hq >= 1 */
    int heads_kv;         /* Hkv, 0 -> Hq; Hq % Hkv == 0 (MQA/GQA) */
    int seq_q, seq_kv;    /* Lq, Lk >= 0 */
    int head_dim;         /* d, 1..512 */
    int head_dim_v;       /* dv, 0 -> d; 1..512 */
    float scale;          /* 0 -> 1/sqrt(d); must be finite; negative is valid */
    clattn_dtype dtype;   /* storage of q, k, v, out; arithmetic is float32 */
    clattn_layout layout; /* of q, k, v and out */
    clattn_causal causal;
    clattn_mask_type mask_type;
    long mask_batch_stride, mask_head_stride, mask_row_stride; /* elements; 0,0 broadcast; row 0 -> Lk */
    clattn_path path;
} clattn_attention_desc;

/* Device buffers. Enqueues on the context's queue and returns without waiting. mask, probs and lse
   may be NULL. probs: float32 [B,Hq,Lq,Lk]; lse: float32 [B,Hq,Lq] (natural log).
   Every argument, including each buffer's CL_MEM_SIZE, is checked before anything is enqueued. */
CLATTN_API clattn_status clattn_attention(clattn_context *ctx, const clattn_attention_desc *desc,
                                          cl_mem q, cl_mem k, cl_mem v, cl_mem mask,
                                          cl_mem out, cl_mem probs, cl_mem lse);
/* Host memory: copies in, runs, copies out, returns when done. F16 data is uint16_t bits.
   On failure nothing the caller owns is written. */
CLATTN_API clattn_status clattn_attention_host(clattn_context *ctx, const clattn_attention_desc *desc,
                                               const void *q, const void *k, const void *v,
                                               const void *mask, void *out, float *probs, float *lse);
/* The same semantics on the CPU in double precision, with no OpenCL at all. Results are rounded to
   the storage type at the end. mask, out, probs and lse may be NULL (out NULL: not computed). */
CLATTN_API clattn_status clattn_attention_reference(const clattn_attention_desc *desc,
                                                    const void *q, const void *k, const void *v,
                                                    const void *mask, void *out, float *probs,
                                                    float *lse);

/* Bytes each tensor of the problem occupies, for allocating buffers (0 for a tensor that is empty).
   mask: the smallest buffer the desc's mask strides can address. Returns CLATTN_INVALID_ARGUMENT
   for a desc the library would refuse. Any pointer may be NULL. */
typedef struct clattn_tensor_sizes {
    size_t q, k, v, out, mask, probs, lse;
} clattn_tensor_sizes;
CLATTN_API clattn_status clattn_attention_sizes(const clattn_attention_desc *desc,
                                                clattn_tensor_sizes *sizes);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_H */
