/* clattn: portable OpenCL attention.
 *
 *   O = softmax(Q·Kᵀ·scale + mask) · V      per head, per batch entry
 *
 * Kernels are compiled at run time for the device in hand. All fallible calls return a clattn_status;
 * the detail of a failure (which argument, the OpenCL error code, the kernel build log) is kept on the
 * context and read with clattn_context_last_error(). Problems a call goes on despite are warnings
 * (clattn_context_last_warning(), the log callback). The library never exits or aborts, and prints
 * only when asked to through the environment (CLATTN_LOG=plan with no log callback: stderr).
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
 *   With mask_rows_broadcast = 1 every query row reads the same row (i*mask_row_stride drops out;
 *   mask_row_stride must be 0): a key-padding mask [B,Lk] is mask_batch_stride = Lk,
 *   mask_head_stride = 0, mask_rows_broadcast = 1, with no [B,Lq,Lk] copy.
 *   Additive masks (F32 or F16) are added to the scaled scores; -inf is allowed and hides the key.
 *   A finite value, however negative, does not hide it: a row whose keys all carry -FLT_MAX
 *   (torch.finfo(float32).min, as Hugging Face builds padding masks) is the softmax of equal
 *   scores, as in PyTorch, on every path; its lse is -FLT_MAX.
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
 * Contexts may be created from several threads at once: clattn serialises its device enumeration
 * process-wide, because some drivers (PoCL 3.1) crash when a process's first enumerations overlap.
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

typedef enum clattn_log_level {
    CLATTN_LOG_WARNING = 1,   /* what clattn_context_last_warning() keeps */
    CLATTN_LOG_PLAN = 2       /* the plan of each attention call (options.log_plans, CLATTN_LOG=plan) */
} clattn_log_level;
/* Receives each message as it happens, on the thread of the call, while that call holds the
   context's lock: it must not call clattn functions on the same context. message is valid for the
   duration of the callback only. */
typedef void (*clattn_log_fn)(void *user, clattn_log_level level, const char *message);

/* selector: NULL or "" reads $CLATTN_DEVICE; empty too -> a GPU, else an accelerator, else a CPU;
   among several of that type, the one with a compiler, then with fp64, then with the most local
   memory, then the first in the ICD loader's order ("gpu", "cpu", "accelerator" choose the same
   way within their type). Accepts "P:D" (platform and device index), "gpu", "cpu",
   "accelerator", or a case-insensitive substring of the device name. On failure *out is NULL. */
CLATTN_API clattn_status clattn_context_create(const char *selector, clattn_context **out);
/* Wraps the caller's queue (retained, never released by us beyond our reference). Its context and
   device are used for every buffer and kernel; profiling need not be enabled on it. */
CLATTN_API clattn_status clattn_context_create_from_queue(cl_command_queue queue, clattn_context **out);

/* How a context behaves, set by the application instead of the environment. Zero-initialised, every
   field says "as the environment says" (the CLATTN_* variables below), which is exactly what
   clattn_context_create does; ignore_environment = 1 makes the unset fields take the built-in
   defaults instead, so an embedding application is not steered by its users' variables. */
typedef enum clattn_switch {
    CLATTN_SWITCH_DEFAULT = 0,   /* the environment's value, else the built-in default */
    CLATTN_SWITCH_ON,
    CLATTN_SWITCH_OFF
} clattn_switch;

/* Whose default kernel parameters and search spaces a context plans with. */
typedef enum {
    CLATTN_DEVICE_CLASS_REPORTED = 0,   /* the device's own CL_DEVICE_TYPE */
    CLATTN_DEVICE_CLASS_CPU,
    CLATTN_DEVICE_CLASS_GPU,
    CLATTN_DEVICE_CLASS_ACCELERATOR
} clattn_device_class_choice;

typedef struct clattn_context_options {
    int ignore_environment;      /* 1: no CLATTN_* (nor XDG_CACHE_HOME/HOME) variable is read */
    clattn_switch cache;         /* the on-disk caches (tuning file, program binaries); default on
                                    ($CLATTN_CACHE=off turns them off) */
    const char *cache_dir;       /* NULL: $CLATTN_CACHE_DIR, else $XDG_CACHE_HOME/clattn, else
                                    $HOME/.cache/clattn; with ignore_environment, NULL turns the
                                    cache off (no folder is named) */
    clattn_switch tuning;        /* use tuning results; default on ($CLATTN_TUNING) */
    clattn_switch autotune;      /* tune an untuned shape class after its first call; default off
                                    ($CLATTN_AUTOTUNE) */
    double autotune_budget_s;    /* > 0; 0: $CLATTN_AUTOTUNE_BUDGET, else 10 seconds */
    const char *kernel_dir;      /* a folder of .cl files replacing the embedded kernels (kernel
                                    development); NULL: $CLATTN_KERNEL_DIR, else the embedded ones */
    const char *binary_dir;      /* offline-built program binaries for devices without a compiler
                                    (FPGAs, clattn_export_binaries); NULL: $CLATTN_BINARY_DIR */
    clattn_log_fn log;           /* warnings (and plans, with log_plans) go here; NULL: nowhere */
    void *log_user;
    clattn_switch log_plans;     /* describe each attention call's plan to log; default off
                                    ($CLATTN_LOG=plan, which with no log callback writes to stderr) */
    /* Testing and misreporting devices. device_class: plan with another class's defaults and
       search space ($CLATTN_DEVICE_CLASS=cpu|gpu|accelerator): GPU mappings run on a CPU, say, or
       a device that calls itself a CPU gets the GPU's. max_local_mem_bytes, max_work_group_size
       (> 0): plan as if the device had at most this much local memory and at most this many
       work-items per group and per dimension ($CLATTN_MAX_LOCAL_MEM, $CLATTN_MAX_WORK_GROUP),
       to exercise the fallbacks of small devices on a large one. Each keys its own tuning file. */
    clattn_device_class_choice device_class;
    unsigned long max_local_mem_bytes;
    unsigned long max_work_group_size;
} clattn_context_options;

/* clattn_context_create and clattn_context_create_from_queue with options (NULL: all default).
   The strings are copied; a device selector given here is not read from $CLATTN_DEVICE unless
   selector is NULL or "" and ignore_environment is 0. */
CLATTN_API clattn_status clattn_context_create_with_options(const char *selector,
                                                            const clattn_context_options *options,
                                                            clattn_context **out);
CLATTN_API clattn_status clattn_context_create_from_queue_with_options(
    cl_command_queue queue, const clattn_context_options *options, clattn_context **out);
/* Waits for nothing; releases what the context owns. NULL is a no-op. */
CLATTN_API void clattn_context_release(clattn_context *ctx);
CLATTN_API cl_command_queue clattn_context_queue(const clattn_context *ctx);
CLATTN_API cl_context clattn_context_cl_context(const clattn_context *ctx);
CLATTN_API cl_device_id clattn_context_device(const clattn_context *ctx);
CLATTN_API const char *clattn_context_device_name(const clattn_context *ctx);
/* The message of the most recent failure on this context; "" when none (NULL ctx gives ""). Only a
   call that fails writes it. Safe to call while other threads use the context: the pointer is to
   this thread's own copy, valid until this thread's next last_error/last_warning call. */
CLATTN_API const char *clattn_context_last_error(const clattn_context *ctx);
/* The same message copied into buf (len bytes, NUL-terminated, cut to fit); returns its full length,
   so a return >= len means it was cut. buf may be NULL with len 0. */
CLATTN_API size_t clattn_context_last_error_copy(const clattn_context *ctx, char *buf, size_t len);
/* The most recent warning: a problem a call went on despite (a corrupt cache file ignored, a cache
   folder that cannot be written, an automatic tuning run that failed). Never a failure: the call
   that warned succeeded. "" when none. Same thread rules as clattn_context_last_error. */
CLATTN_API const char *clattn_context_last_warning(const clattn_context *ctx);

/* Sets (fn NULL: removes) the context's log callback; replaces the one from its options. */
CLATTN_API void clattn_context_set_log(clattn_context *ctx, clattn_log_fn fn, void *user);
/* High-water mark, in bytes, of the device scratch the context has allocated for its own use
   (score matrices of the unfused path, split-KV partials). */
CLATTN_API size_t clattn_context_scratch_bytes(const clattn_context *ctx);

/* ---- attention ------------------------------------------------------------------------------- */

/* F16: IEEE binary16 storage; BF16: bfloat16 (a float's top 16 bits; rounded to nearest even). */
typedef enum { CLATTN_F32 = 0, CLATTN_F16, CLATTN_BF16 } clattn_dtype;
typedef enum { CLATTN_LAYOUT_BHSD = 0, CLATTN_LAYOUT_BSHD } clattn_layout;
typedef enum { CLATTN_CAUSAL_NONE = 0, CLATTN_CAUSAL_BOTTOM_RIGHT, CLATTN_CAUSAL_TOP_LEFT } clattn_causal;
typedef enum { CLATTN_MASK_NONE = 0, CLATTN_MASK_ADDITIVE_F32, CLATTN_MASK_ADDITIVE_F16,
               CLATTN_MASK_BOOL_U8 } clattn_mask_type;
/* AUTO picks the fused kernel unless probs are requested, and the unfused path (with a warning)
   where no fused configuration runs on the device (a large head_dim on a small device). UNFUSED:
   Q·Kᵀ, softmax, P·V as three kernels through a score matrix. FUSED: online softmax, never stores scores (no probs). */
typedef enum { CLATTN_PATH_AUTO = 0, CLATTN_PATH_UNFUSED, CLATTN_PATH_FUSED } clattn_path;
/* Who computes the multi-head layer's projection GEMMs: AUTO picks by measured speed (the tuning
   file) or the device class's default; OWN is clattn's kernel (cl/proj_gemm.cl); CLBLAST is
   CLBlast's Xgemm with the parameters clattn tuned for the device, if any. */
typedef enum { CLATTN_PROJ_AUTO = 0, CLATTN_PROJ_OWN, CLATTN_PROJ_CLBLAST } clattn_projection_impl;
/* How k and v are stored. SAME: in desc.dtype, like q and out. INT8: signed 8-bit values with one
   float32 scale per token and KV head (symmetric: k[b,h,j,c] = k8[b,h,j,c] · k_scale[b,h,j], v
   likewise), as clattn_quantize_kv makes them; q and out stay in desc.dtype. The scales are laid
   out as their tensor without its last dimension: [B,Hkv,Lk] (BHSD) or [B,Lk,Hkv] (BSHD), float32,
   B·Hkv·Lk·4 bytes each. A non-finite scale makes the rows that read its token NaN. */
typedef enum { CLATTN_KV_SAME = 0, CLATTN_KV_INT8 } clattn_kv_storage;

typedef struct clattn_attention_desc {   /* zero-initialise, then set; 0 means "default" where noted */
    int batch;            /* B >= 0 */
    int heads_q;          /* Hq >= 1 */
    int heads_kv;         /* Hkv, 0 -> Hq; Hq % Hkv == 0 (MQA/GQA) */
    int seq_q, seq_kv;    /* Lq, Lk >= 0 */
    int head_dim;         /* d, 1..576 (576: MLA, DeepSeek's 512 + 64 rotary dims) */
    int head_dim_v;       /* dv, 0 -> d; 1..512 (so d > 512 needs it set) */
    float scale;          /* 0 -> 1/sqrt(d); must be finite; negative is valid */
    clattn_dtype dtype;   /* storage of q, k, v, out; arithmetic is float32 */
    clattn_layout layout; /* of q, k, v and out */
    clattn_causal causal;
    clattn_mask_type mask_type;
    long mask_batch_stride, mask_head_stride, mask_row_stride; /* elements; 0,0 broadcast; row 0 -> Lk */
    clattn_path path;
    int mask_rows_broadcast;  /* 0 or 1: every query row reads mask row 0 (key padding), above */

    /* Variants (zero keeps plain attention). With i' = i + Lk - Lq, query i's position aligned
       bottom-right (FlashAttention's convention), the score of query i and key j is
         s = scale·q_i·k_j;  s = softcap·tanh(s / softcap);  s += mask - slope[h]·|i' - j|
       and s is -inf (the key is hidden: never read) outside the causal bound and the window.
       Both paths, F32, F16 and BF16, GQA and both layouts; split-KV included. */
    int window;               /* 0: none; 1: sliding window, key j visible from query i iff
                                 i' - window_left <= j <= i' + window_right (and the causal rule) */
    int window_left, window_right;   /* >= 0, or -1 for unbounded (Mistral: 4095, 0) */
    float softcap;            /* 0: none; > 0 and finite: logit soft-capping (Gemma 2: 50) */
    const float *alibi_slopes;   /* NULL: none; host array [Hq] of finite slopes (ALiBi: BLOOM, MPT) */
    const float *sinks;       /* NULL: none; host array [Hq] of attention-sink logits, finite or
                                 -inf (none for that head): sink h joins each row's softmax
                                 denominator as exp(sinks[h]) with no value (gpt-oss), so out
                                 sums V with weights below 1, lse includes it, and probs sum to
                                 1 - exp(sinks[h] - lse). A row that sees no key gives out 0 and
                                 lse sinks[h]. Not scaled, not capped. */

    /* Quantized K/V (zero: k and v in dtype). With CLATTN_KV_INT8, k and v are int8 and their scales
       come with the desc: device buffers for clattn_attention (and clattn_plan_describe ignores
       them), host arrays for clattn_attention_host and clattn_attention_reference; the other pair
       must be NULL. Both paths (each kernel multiplies a value by its token's scale as it loads
       it), split-KV, GQA, both layouts, every variant. Not for the multi-head layer. */
    clattn_kv_storage kv_storage;
    cl_mem k_scale, v_scale;                  /* float32, see clattn_kv_storage */
    const float *k_scale_host, *v_scale_host; /* float32, finite */
} clattn_attention_desc;

/* Device buffers. Enqueues on the context's queue and returns without waiting. mask, probs and lse
   may be NULL. probs: float32 [B,Hq,Lq,Lk]; lse: float32 [B,Hq,Lq] (natural log).
   Each is a buffer object (CL_MEM_OBJECT_BUFFER, not an image) of the context's cl_context, read
   from its offset 0. The inputs q, k, v and mask may share memory; an output (out, probs, lse) may
   overlap no other argument. Overlap is by memory, not by handle: the bytes the call touches,
   through sub-buffers (of one parent, or a parent and its sub-buffer) and CL_MEM_USE_HOST_PTR
   buffers over the same host memory. Disjoint sub-buffers of one parent are fine.
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

/* What clattn_attention would run for desc on this context, in words, without running it: the path,
   and per kernel the problem it runs (reshaped where the path folds GQA rows or splits the keys),
   its parameters and where they came from (tuned for the exact shape class, tuned for the nearest
   one, the device class's default, a fallback when the defaults do not fit). with_probs: whether
   the call would ask for probs (AUTO takes the unfused path then). The text ends with a NUL, cut to
   len. A context made with options.log_plans (or CLATTN_LOG=plan) logs this for every call. */
CLATTN_API clattn_status clattn_plan_describe(clattn_context *ctx, const clattn_attention_desc *desc,
                                              int with_probs, char *buf, size_t len);

/* Bytes each tensor of the problem occupies, for allocating buffers (0 for a tensor that is empty).
   mask: the smallest buffer the desc's mask strides can address; k and v one byte per element
   with CLATTN_KV_INT8 (each scale array is B·Hkv·Lk·4 bytes). Returns CLATTN_INVALID_ARGUMENT
   for a desc the library would refuse. Any pointer may be NULL. */
typedef struct clattn_tensor_sizes {
    size_t q, k, v, out, mask, probs, lse;
} clattn_tensor_sizes;
CLATTN_API clattn_status clattn_attention_sizes(const clattn_attention_desc *desc,
                                                clattn_tensor_sizes *sizes);

/* Quantizes one K or V tensor for CLATTN_KV_INT8: per token and KV head, scale = max|x| / 127 and
   x8 = round-to-nearest-even(x / scale), so |x - x8·scale| <= scale/2 (a row of zeros gets scale 0;
   a row holding inf or NaN gets a NaN scale). Reads batch, heads_q/heads_kv, seq_kv, head_dim
   (KEYS) or head_dim_v (VALUES), dtype (of src) and layout of desc; src [.., Lk, Hkv, dim] as k or v
   would be, dst the same elements as int8, scale as described at clattn_kv_storage. Device buffers,
   enqueued and not waited for; dst and scale may overlap nothing. */
typedef enum { CLATTN_KV_KEYS = 0, CLATTN_KV_VALUES } clattn_kv_tensor;
CLATTN_API clattn_status clattn_quantize_kv(clattn_context *ctx, const clattn_attention_desc *desc,
                                            clattn_kv_tensor which, cl_mem src, cl_mem dst,
                                            cl_mem scale);
/* The same on the CPU over host memory (F16/BF16 src: uint16_t bits), with no OpenCL at all. */
CLATTN_API clattn_status clattn_quantize_kv_host(const clattn_attention_desc *desc,
                                                 clattn_kv_tensor which, const void *src,
                                                 signed char *dst, float *scale);

/* ---- serving: ragged batches and a paged KV cache --------------------------------------------- */

/* B sequences of different lengths in one call, FlashAttention's varlen convention: sequence b owns
   query rows cu_seqlens_q[b] .. cu_seqlens_q[b+1]-1 of the packed q and out, and its keys are either
     packed  (block_size 0): rows cu_seqlens_k[b] .. cu_seqlens_k[b+1]-1 of k and v, or
     paged   (block_size > 0): seqlens_k[b] keys, key j of it in slot j % block_size of block
             block_table[b*max_blocks_per_seq + j / block_size] of k_cache and v_cache.
   Sequence b's queries attend only to sequence b's keys, with the causal mode and the variants
   applied per sequence (i' = i + Lk_b - Lq_b: bottom-right is what chunked prefill and decoding
   need). Shapes (elements, innermost last; always token-major, the BSHD of clattn_attention):
     q [total_q, Hq, d]   out [total_q, Hq, dv]   lse float32 [Hq, total_q]
     packed: k [total_k, Hkv, d]   v [total_k, Hkv, dv]
     paged:  k_cache [num_blocks, block_size, Hkv, d]   v_cache [num_blocks, block_size, Hkv, dv]
     index tables int32: cu_seqlens_q [B+1]; cu_seqlens_k [B+1] (packed) or seqlens_k [B] and
     block_table [B, max_blocks_per_seq] (paged)
     int8 K/V scales float32, the K/V tensor without its last dimension: [total_k, Hkv] or
     [num_blocks, block_size, Hkv].
   Runs on the fused path (split-KV for long keys; no probs). Not supported: masks (use causal
   modes and windows), probs, the unfused path, the BHSD layout.

   Valid tables: cu_seqlens_* start at 0, never decrease and end at total_q (total_k); no length
   exceeds max_seqlen_q (max_seqlen_k); 0 <= seqlens_k[b] <= min(max_seqlen_k,
   max_blocks_per_seq*block_size); the block ids a sequence uses (its first ceil(seqlens_k[b] /
   block_size)) lie in 0..num_blocks-1; other entries are not read. Blocks may be shared between
   sequences (a common prefix).
   The tables live in device memory and are not trusted: whatever they hold, the kernels read and
   write only inside the buffers given, and no two sequences write the same row. A sequence whose
   query range is invalid, or comes after a decreasing step of cu_seqlens_q, is skipped (its rows
   are not written); a sequence whose key range, length or any block id it uses is invalid
   writes NaN to all its out and lse rows; rows that no valid sequence covers are left unwritten, or
   written 0 (lse -inf) when the keys are split. check_indices = 1 reads the tables back (a
   blocking read) and validates them first: CLATTN_INVALID_ARGUMENT naming the first bad entry,
   nothing enqueued. The host entry point always validates. */
typedef struct clattn_varlen_desc {   /* zero-initialise, then set */
    int batch;                /* B sequences, >= 0 */
    int heads_q, heads_kv;    /* Hq >= 1; Hkv 0 -> Hq; Hq % Hkv == 0 */
    int head_dim, head_dim_v; /* as clattn_attention_desc */
    float scale;              /* 0 -> 1/sqrt(d) */
    clattn_dtype dtype;       /* q, out (and k, v unless kv_storage says otherwise) */
    clattn_causal causal;     /* per sequence */
    int total_q;              /* query rows of q and out */
    int max_seqlen_q;         /* >= every sequence's query count (sizes the launch) */
    int max_seqlen_k;         /* >= every sequence's key count (sizes the key splits) */
    int total_k;              /* packed: rows of k and v; paged: 0 */
    int block_size;           /* 0: packed keys; else paged, a power of two 1..256 */
    int num_blocks;           /* paged: blocks in k_cache and v_cache */
    int max_blocks_per_seq;   /* paged: columns of block_table */
    int check_indices;        /* 0 or 1: validate the device tables before enqueueing */
    /* variants and int8 K/V, as in clattn_attention_desc */
    int window, window_left, window_right;
    float softcap;
    const float *alibi_slopes, *sinks;
    clattn_kv_storage kv_storage;
    /* the index tables and int8 scales: device buffers for clattn_attention_varlen and
       clattn_reshape_and_cache, host arrays for the _host and _reference calls (the other set
       NULL). Which are needed: cu_seqlens_q always; cu_seqlens_k (packed) or seqlens_k and
       block_table (paged); k_scale and v_scale with CLATTN_KV_INT8. */
    cl_mem cu_seqlens_q, cu_seqlens_k, seqlens_k, block_table, k_scale, v_scale;
    const int *cu_seqlens_q_host, *cu_seqlens_k_host, *seqlens_k_host, *block_table_host;
    const float *k_scale_host, *v_scale_host;
} clattn_varlen_desc;

/* Device buffers (k, v: the packed tensors or the caches). Enqueues and returns without waiting
   (check_indices: after its blocking read of the tables). lse may be NULL. The same buffer rules
   as clattn_attention: outputs overlap nothing, every size checked before anything is enqueued. */
CLATTN_API clattn_status clattn_attention_varlen(clattn_context *ctx, const clattn_varlen_desc *desc,
                                                 cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                                 cl_mem lse);
/* Host memory and host tables: validates the tables, copies in, runs, copies out, returns when
   done. On failure nothing the caller owns is written. */
CLATTN_API clattn_status clattn_attention_varlen_host(clattn_context *ctx,
                                                      const clattn_varlen_desc *desc, const void *q,
                                                      const void *k, const void *v, void *out,
                                                      float *lse);
/* The same on the CPU in double precision with no OpenCL (host tables): each sequence gathered
   into a dense problem for clattn_attention_reference. out and lse may be NULL. */
CLATTN_API clattn_status clattn_attention_varlen_reference(const clattn_varlen_desc *desc,
                                                           const void *q, const void *k,
                                                           const void *v, void *out, float *lse,
                                                           char *err, size_t err_len);
/* Bytes of each tensor of a varlen/paged problem (q, k, v, out, lse; k and v are the caches when
   paged), and of each int8 scale array in *scale_bytes (0 unless CLATTN_KV_INT8). */
CLATTN_API clattn_status clattn_varlen_sizes(const clattn_varlen_desc *desc, clattn_tensor_sizes *sizes,
                                             size_t *scale_bytes);

/* Writes num_tokens new tokens' keys and values into their slots of a paged cache, as vLLM's
   reshape_and_cache: token t's k_new [num_tokens, Hkv, d] and v_new [num_tokens, Hkv, dv] rows go
   to slot slot_mapping[t] (int32; block slot / block_size, offset slot % block_size) of k_cache and
   v_cache. A negative slot (padding) is skipped, as is any slot >= num_blocks*block_size (untrusted:
   never written outside the caches); two tokens given one slot race (either may win, row by row,
   with its int8 scale or the other's). The desc is checked whole, as for clattn_attention_varlen;
   what the call uses of it: heads_kv, head_dim(_v), dtype (of k_new and v_new), block_size,
   num_blocks and kv_storage. With CLATTN_KV_INT8 each row is quantized as clattn_quantize_kv does
   and its scale written to desc->k_scale / v_scale. Enqueued, not waited for; the caches may
   overlap nothing else. */
CLATTN_API clattn_status clattn_reshape_and_cache(clattn_context *ctx, const clattn_varlen_desc *desc,
                                                  int num_tokens, cl_mem slot_mapping, cl_mem k_new,
                                                  cl_mem v_new, cl_mem k_cache, cl_mem v_cache);

/* ---- merging partial results ----------------------------------------------------------------- */

/* Combines attention results computed over disjoint key sets (ring attention, several devices, a
   long KV cache in pieces) into the attention over their union, exact up to float rounding:
     m = max_p lses[p],  w_p = exp(lses[p] - m),  out = Σ w_p outs[p] / Σ w_p,  lse = m + log Σ w_p.
   outs[p]: desc's dtype and layout, [B,Hq,Lq,dv] (BHSD) or [B,Lq,Hq,dv] (BSHD); lses[p]: float32
   [B,Hq,Lq], as clattn_attention writes them. Only batch, heads_q, seq_q, head_dim_v (0 -> head_dim),
   dtype and layout of desc are read.
   A part whose lse is -inf (it saw no key) contributes nothing, whatever its out holds (even NaN);
   a row where every part is -inf gives out 0 and lse -inf. A NaN lse makes its row NaN.
   lse may be NULL. out may be exactly the memory of any outs[p] and lse of any lses[p] (in-place
   accumulation: merge(running, next) -> running): the same buffer, or another handle (a sub-buffer)
   on the same bytes. Any other overlap of out or lse with an argument, judged by memory as for
   clattn_attention (sub-buffers included), is refused with CLATTN_INVALID_ARGUMENT: out partly over
   an outs[p], out over an lses[p], out and lse over each other. The parts may share memory.
   Enqueues on the context's queue and returns without waiting; the parts are staged in device
   scratch (in tiles of at most 256 MiB unless one query row needs more). */
CLATTN_API clattn_status clattn_merge_partials(clattn_context *ctx, int parts, const cl_mem *outs,
                                               const cl_mem *lses, const clattn_attention_desc *desc,
                                               cl_mem out, cl_mem lse);
/* The same merge on the CPU in double precision over host memory (F16: uint16_t bits), with no
   OpenCL at all; results rounded to the storage type at the end. In place as above: out may be the
   pointer outs[p] and lse lses[p]; other overlaps of plain pointers cannot be told and are not
   supported. */
CLATTN_API clattn_status clattn_merge_partials_host(int parts, const void *const *outs,
                                                    const float *const *lses,
                                                    const clattn_attention_desc *desc, void *out,
                                                    float *lse);

/* ---- several devices in one process ------------------------------------------------------- */

/* A group of contexts, usually on different devices (a GPU and a CPU, two GPUs), that share one
   attention call out between them:
     CLATTN_SPLIT_HEADS: the (batch entry, KV head) units (a GQA group's query heads stay together)
       in contiguous ranges, in proportion to each device's measured speed for the shape class
       (clattn_group_calibrate, kept in each device's tuning file; equal shares until measured);
       each device computes its units' rows exactly as one device would (bit-exact where the
       device's kernel is the same);
     CLATTN_SPLIT_KEYS: the keys in contiguous ranges, each device computing every query over its
       range with its lse, the parts merged by lse on the host (clattn_merge_partials_host): for
       decoding and very long keys. Equal to the one-device result within the merge's rounding
       (with F16/BF16 storage each part's output is rounded to it before the merge). Shares as
       for HEADS. Only where a key range is a problem of its own: no probs, no ALiBi, no window,
       no additive mask (a row every key of which is at -FLT_MAX would be weighted by part, not
       by key), causal none or bottom-right (the causal bound of a range becomes its window's
       right edge); sinks join one part only.
     CLATTN_SPLIT_AUTO: KEYS for decode-like calls (Lq <= 16), and for non-causal calls with very
       long keys (Lk >= 32768) or fewer units than devices, where KEYS applies; HEADS otherwise
       (causal prefill split by keys would give the first range most of the work).
   The devices work on threads of the group's call: a context's log callback then runs on one
   of those threads. Devices on one PoCL platform take turns (PoCL 3.1 asserts when several of
   its devices launch the same kernels at once); the gathers and scatters still overlap. */
#define CLATTN_GROUP_MAX 16
typedef struct clattn_group clattn_group;
typedef enum { CLATTN_SPLIT_AUTO = 0, CLATTN_SPLIT_HEADS, CLATTN_SPLIT_KEYS } clattn_split;

/* n (1..CLATTN_GROUP_MAX) devices by selector (as clattn_context_create takes them; the group
   makes and owns their contexts), all with options (NULL: defaults). On failure *out is NULL and
   the status is the failing device's; clattn_group_last_error(NULL) is not kept, so the message
   goes to err (err_len bytes, may be NULL). */
CLATTN_API clattn_status clattn_group_create(int n, const char *const *selectors,
                                             const clattn_context_options *options,
                                             clattn_group **out, char *err, size_t err_len);
/* A group over the caller's contexts, borrowed: they must outlive the group. Each context once
   (CLATTN_INVALID_ARGUMENT for one given twice). */
CLATTN_API clattn_status clattn_group_create_from_contexts(int n, clattn_context *const *contexts,
                                                           clattn_group **out);
CLATTN_API void clattn_group_release(clattn_group *group);   /* NULL is a no-op */
CLATTN_API int clattn_group_size(const clattn_group *group);
CLATTN_API clattn_context *clattn_group_context(const clattn_group *group, int i);
/* The message of the group's most recent failure ("" when none): which device failed, and its
   own last_error. Same thread rules as clattn_context_last_error. */
CLATTN_API const char *clattn_group_last_error(const clattn_group *group);

/* How a call is shared out: the split, each device's share, and per device the range it takes
   (HEADS: units u = g*B + b, for KV head g and batch entry b, first[i] .. first[i+1]-1; KEYS: keys
   first[i] .. first[i+1]-1); a device with an empty range sits the call out. */
typedef struct clattn_group_plan {
    clattn_split split;           /* HEADS or KEYS, never AUTO */
    int n;                        /* devices */
    int units;                    /* HEADS: B*Hkv; KEYS: Lk */
    int first[CLATTN_GROUP_MAX + 1];
    double share[CLATTN_GROUP_MAX];   /* fractions summing to 1 */
    int measured;                 /* 1: every share from a measured speed; 0: some equal by default */
} clattn_group_plan;
/* The plan the call with desc (with_probs: probs asked for) and split would run; nothing runs.
   CLATTN_INVALID_ARGUMENT for a bad desc, or a forced KEYS split the desc does not allow. */
CLATTN_API clattn_status clattn_group_plan_for(clattn_group *group, const clattn_attention_desc *desc,
                                               int with_probs, clattn_split split,
                                               clattn_group_plan *plan);
/* clattn_attention_host's semantics and arguments, shared out over the group's devices as plan_for
   says, the devices working at once (a thread each). Returns when every device is done. If any
   device fails, the call returns that device's status (the first failing device's, by index), its
   message is in clattn_group_last_error, and nothing the caller owns is written. */
CLATTN_API clattn_status clattn_group_attention_host(clattn_group *group,
                                                     const clattn_attention_desc *desc,
                                                     clattn_split split, const void *q,
                                                     const void *k, const void *v, const void *mask,
                                                     void *out, float *probs, float *lse);
/* Measures each device alone on desc's problem (inputs of zeros, the median of repeats runs after a
   warm-up; repeats 0: 3; int8 K/V timed as the same shape in desc's dtype) and records its time
   in the device's tuning table, saved to its tuning file, under desc's shape class: later splits
   of that class share in proportion to speed. Devices of one kind share one tuning file, so the
   file keeps one time for them. ms (may be NULL): n times. */
CLATTN_API clattn_status clattn_group_calibrate(clattn_group *group, const clattn_attention_desc *desc,
                                                int repeats, double *ms);

/* ---- multi-head attention layer -------------------------------------------------------------- */

/* PyTorch's nn.MultiheadAttention forward (batch_first=True, inference), so that a trained layer's
 * tensors load as they are (row-major):
 *
 *   Q = Xq·W_qᵀ + b_q     [B,Lq,E]        W_q [E, E]
 *   K = Xk·W_kᵀ + b_k     [B,Lk,Hkv*dh]   W_k [Hkv*dh, kdim]      dh = E / Hq
 *   V = Xv·W_vᵀ + b_v     [B,Lk,Hkv*dh]   W_v [Hkv*dh, vdim]
 *   head h: O_h = softmax(Q_h·K_gᵀ·scale + mask) · V_g,  g = h / (Hq/Hkv),
 *           Q_h = columns h*dh .. (h+1)*dh-1 of Q (likewise K_g, V_g)
 *   out = concat(O_0 .. O_{Hq-1})·W_oᵀ + b_o       [B,Lq,E]    W_o [E, E]
 *
 * With Hkv == Hq this is PyTorch's layer; Hkv < Hq is grouped-query attention (the K and V
 * projections then have Hkv*dh rows). Not supported: add_bias_kv, add_zero_attn, dropout.
 * Causal modes and masks are the attention's (top of this file), addressed per query head:
 * PyTorch's is_causal is CLATTN_CAUSAL_TOP_LEFT; its bool attn_mask (true = hidden) is the
 * negation of CLATTN_MASK_BOOL_U8 (nonzero = attend); a key_padding_mask alone is a [B,Lk] mask
 * (mask_batch_stride Lk, mask_head_stride 0, mask_rows_broadcast 1); with an attn_mask it folds
 * into a [B,Lq,Lk] mask (mask_batch_stride Lq*Lk). A row that sees no key gives weights 0 and
 * heads' output 0.
 * Attention weights are PyTorch's average_attn_weights=False: float32 [B,Hq,Lq,Lk].
 */
typedef struct clattn_mha_desc {   /* zero-initialise, then set */
    int batch;            /* B >= 0 */
    int seq_q;            /* Lq >= 0: query tokens */
    int seq_kv;           /* Lk >= 0: key/value tokens (== seq_q for self-attention) */
    int embed_dim;        /* E >= 1: query input, attention and output width */
    int kdim, vdim;       /* key and value input widths; 0 -> E (PyTorch's kdim, vdim) */
    int heads_q;          /* Hq >= 1, E % Hq == 0; head width dh = E / Hq, at most 512 */
    int heads_kv;         /* Hkv, 0 -> Hq; Hq % Hkv == 0 */
    float scale;          /* 0 -> 1/sqrt(dh); must be finite */
    int in_bias;          /* 1: in_proj_bias is given (PyTorch bias=True), 0: none */
    int out_bias;         /* 1: out_proj.bias is given (PyTorch bias=True), 0: none */
    clattn_causal causal; /* PyTorch's is_causal / square subsequent mask is CLATTN_CAUSAL_TOP_LEFT */
    clattn_mask_type mask_type;   /* addressed per query head as in the attention */
    long mask_batch_stride, mask_head_stride, mask_row_stride;
    clattn_dtype dtype;   /* device storage of inputs, weights, biases and out. F16 runs on every
                             device with clattn's own projections; CLBlast's (HGEMM) need
                             cl_khr_fp16, else CLATTN_UNSUPPORTED. Host pointers are float32 either
                             way; attention weights are float32. */
    clattn_path path;     /* of the attention inside the layer; AUTO: fused unless weights wanted */
    int mask_rows_broadcast;  /* 0 or 1, as in the attention: every query row reads mask row 0 */
    clattn_projection_impl projections;   /* AUTO (0): the faster on this device and shape */
    /* The attention variants, as in clattn_attention_desc (zero: none): a sliding window, logit
       soft-capping, ALiBi slopes and sink logits (host arrays [heads_q]). */
    int window, window_left, window_right;
    float softcap;
    const float *alibi_slopes, *sinks;
} clattn_mha_desc;

/* The layer's tensors in host memory, float32, as PyTorch's state_dict holds them. Either
   in_proj_weight (packed q, k, v rows; only when kdim == vdim == E) or all three of
   q/k/v_proj_weight, never both. */
typedef struct clattn_mha_weights {
    const float *in_proj_weight;   /* [E + 2*Hkv*dh, E]: rows of W_q, then W_k, then W_v */
    const float *q_proj_weight;    /* [E, E] */
    const float *k_proj_weight;    /* [Hkv*dh, kdim] */
    const float *v_proj_weight;    /* [Hkv*dh, vdim] */
    const float *in_proj_bias;     /* [E + 2*Hkv*dh] (packed even with separate weights); iff in_bias */
    const float *out_proj_weight;  /* [E, E] ("out_proj.weight") */
    const float *out_proj_bias;    /* [E] ("out_proj.bias"); iff out_bias */
} clattn_mha_weights;

/* The same tensors as device buffers in desc->dtype, each read from offset 0; the same rules on
   which are given. Upload them once and reuse them across calls. */
typedef struct clattn_mha_weight_buffers {
    cl_mem in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight;
    cl_mem in_proj_bias, out_proj_weight, out_proj_bias;
} clattn_mha_weight_buffers;

/* Device buffers in desc->dtype: x_q [B,Lq,E], x_k [B,Lk,kdim], x_v [B,Lk,vdim], out [B,Lq,E].
   x_k NULL: x_k = x_q (self-attention; needs kdim == E and seq_kv == seq_q). x_v NULL: x_v = x_k
   (needs vdim == kdim). mask: desc's mask_type, NULL without one. attn_weights: NULL, or float32
   [B,Hq,Lq,Lk] (the unfused path computes them). out and attn_weights may overlap no input (x_q,
   x_k, x_v, mask, the weights) nor each other, judged by memory as for clattn_attention
   (sub-buffers included); the inputs may share memory.
   The projections are GEMMs on the context's queue (desc->projections: clattn's own kernel, with
   the bias fused, or CLBlast's), written straight into the BSHD layout the attention reads; Q, K,
   V and the heads' output live in the context's scratch, reused by the next call. Every argument,
   including each buffer's CL_MEM_SIZE, is checked before anything is enqueued; then the call
   enqueues and returns without waiting (on a caller's out-of-order queue it starts behind the
   commands enqueued before it and orders its own steps with barriers).
   CLATTN_UNSUPPORTED: CLATTN_PROJ_CLBLAST in a build without CLBlast, or with F16 storage on a
   device without cl_khr_fp16. */
CLATTN_API clattn_status clattn_mha_forward(clattn_context *ctx, const clattn_mha_desc *desc,
                                            const clattn_mha_weight_buffers *w, cl_mem x_q,
                                            cl_mem x_k, cl_mem x_v, cl_mem mask, cl_mem out,
                                            cl_mem attn_weights);
/* Host memory, float32 whatever desc->dtype (F16 storage: converted on the way in and out); the
   same NULL rules. Copies in, runs, copies out, returns when done. On failure nothing the caller
   owns is written. */
CLATTN_API clattn_status clattn_mha_forward_host(clattn_context *ctx, const clattn_mha_desc *desc,
                                                 const clattn_mha_weights *w, const float *x_q,
                                                 const float *x_k, const float *x_v,
                                                 const void *mask, float *out,
                                                 float *attn_weights);
/* The layer on the CPU in double precision, rounded to float32 at the end (desc->dtype and
   desc->path are not read), with no OpenCL at all. The same NULL rules; out and weights may each
   be NULL (not computed). On failure nothing is written and err (when not NULL) says why. */
CLATTN_API clattn_status clattn_mha_reference(const clattn_mha_desc *desc,
                                              const clattn_mha_weights *w, const float *x_q,
                                              const float *x_k, const float *x_v,
                                              const void *mask, float *out, float *weights,
                                              char *err, size_t err_len);

/* ---- attention maps -------------------------------------------------------------------------- */

enum {
    CLATTN_MAP_MEAN = -1,   /* the mean over heads */
    CLATTN_MAP_GRID = -2    /* every head, in one image with one colour scale */
};

typedef struct clattn_attention_map_desc {   /* zero-initialise, then set */
    int batch, heads, seq_q, seq_kv;   /* of probs: float32 [B,H,Lq,Lk], as clattn_attention's
                                          probs or clattn_mha_forward's attn_weights */
    int batch_index;                   /* the batch entry drawn, 0..B-1 */
    int head;                          /* 0..H-1, CLATTN_MAP_MEAN or CLATTN_MAP_GRID */
    const char *const *q_labels;       /* Lq token labels for the rows, or NULL */
    const char *const *k_labels;       /* Lk token labels for the columns, or NULL */
    const char *title;                 /* NULL: "batch b, head h" (or mean, all heads); "": none */
    int cell_px;                       /* pixels per cell; 0 -> auto (the image kept <= 2000 px) */
    float vmin, vmax;                  /* colour scale; vmax <= vmin -> auto: min(0, data) .. max */
    int zero_as_value;                 /* 0: weights exactly 0 (masked keys) are drawn grey */
} clattn_attention_map_desc;

/* Writes an attention map as an RGB PNG heat map: queries down, keys across, a viridis colour
   scale with a colour bar, token labels when given (ASCII; long ones shortened), masked cells
   grey. Long sequences are sampled to fit 2000 px. Computed on the CPU; needs no device.
   ctx may be NULL; when given, a failure's detail is kept for clattn_context_last_error().
   The file is replaced atomically (a temporary beside it, renamed over it; a symbolic link at
   path is replaced, not followed). CLATTN_INVALID_ARGUMENT for a bad desc, CLATTN_IO_ERROR when
   the file cannot be written (whatever was at path is left untouched, and no partial file is
   left), CLATTN_UNSUPPORTED when the library was built without libpng. */
CLATTN_API clattn_status clattn_attention_map_png(clattn_context *ctx,
                                                  const clattn_attention_map_desc *desc,
                                                  const float *probs, const char *path);

/* The same picture as clattn_attention_map_png, as 8-bit RGB pixels (rows top to bottom, 3 bytes a
   pixel) into rgb, rgb_len bytes; needs no libpng. rgb NULL: only *width and *height are set, to
   size the buffer (width*height*3 bytes). CLATTN_INVALID_ARGUMENT when rgb is too small (nothing
   written). */
CLATTN_API clattn_status clattn_attention_map_rgb(clattn_context *ctx,
                                                  const clattn_attention_map_desc *desc,
                                                  const float *probs, unsigned char *rgb,
                                                  size_t rgb_len, int *width, int *height);

/* ---- tuning and caches ----------------------------------------------------------------------- */

/* Kernel parameters come, per kernel family and problem, from the device's tuning file (the exact
   shape class, else the nearest one of the same d), else from built-in defaults for the device
   class. The file is one per device under options.cache_dir ($CLATTN_CACHE_DIR; default
   $XDG_CACHE_HOME/clattn, else ~/.cache/clattn), read once when the context is created; built
   programs are kept beside it so a later process compiles nothing. options.cache off
   (CLATTN_CACHE=off): no cache file is read or written. options.tuning off (CLATTN_TUNING=off, or
   clattn_context_set_tuning(ctx, 0)): tuning results are not used. options.autotune on
   (CLATTN_AUTOTUNE=1): the first call of a shape class with no exact tuning entry tunes it
   afterwards, within options.autotune_budget_s (CLATTN_AUTOTUNE_BUDGET) seconds, default 10.
   clattn_plan_describe says which parameters a call takes and from where. docs/tuning.md,
   docs/caches.md. */

/* 0: lookups ignore tuning results (device-class defaults) and CLATTN_AUTOTUNE rests; 1: back to
   normal. clattn_tune still works and records its results either way. */
CLATTN_API void clattn_context_set_tuning(clattn_context *ctx, int enabled);

#define CLATTN_TUNE_MAX_FAMILIES 8

typedef struct clattn_tune_progress_info {
    const char *family;          /* kernel family being tuned: "qk", "softmax", "pv", "flash", ... */
    int family_index, n_families;
    int tried, failed;           /* candidates of this family so far (the default included) */
    const char *params;          /* the candidate just measured, "NAME=value ..." */
    double candidate_ms;         /* its median time of the whole call; < 0 when it failed */
    double default_ms, best_ms;  /* this family at its defaults / the best so far */
    double elapsed_s, budget_s;
} clattn_tune_progress_info;

/* Called after each candidate, from clattn_tune's thread while it holds ctx's lock: it must not
   call clattn functions on that context. */
typedef void (*clattn_tune_progress_fn)(void *user, const clattn_tune_progress_info *info);

typedef struct clattn_tune_options {   /* zero-initialise; 0 means "default" */
    double budget_s;             /* wall-clock bound for the whole call; default 60 */
    int max_candidates;          /* per family, the default included; default: the budget decides */
    unsigned long long seed;     /* of the random sampling; 0: a fixed seed (runs repeat) */
    int repeats;                 /* timed runs per candidate, the median counts; default 5 */
    const char *families;        /* comma-separated subset ("qk,pv"); NULL: every family used */
    int no_save;                 /* 1: keep the winners in this context, not in the tuning file */
    clattn_tune_progress_fn progress;
    void *progress_user;
} clattn_tune_options;

typedef struct clattn_tune_family_report {
    char family[24];
    long space;                  /* points in the family's search space */
    long valid;                  /* of which fit this device and shape and launch distinct work;
                                    -1 when the space was sampled rather than listed */
    int tried;                   /* candidates measured, the default included */
    int failed;                  /* of which failed to build or run, or gave a wrong result */
    double default_ms, best_ms;  /* the whole call with this family at its defaults / the winner */
    char default_params[160], best_params[160];
    char first_failure[256];     /* why the first failed candidate failed, "" when none */
} clattn_tune_family_report;

typedef struct clattn_tune_report {
    clattn_path path;            /* the path tuned (AUTO resolves as clattn_attention would) */
    int n_families;
    clattn_tune_family_report families[CLATTN_TUNE_MAX_FAMILIES];
    double default_ms, best_ms;  /* the whole call: every family at its defaults / at its winner */
    double elapsed_s;
    int timed_with_events;       /* 1: OpenCL profiling events; 0: the wall clock (no profiling) */
    int saved;                   /* the winners were merged into the tuning file */
    char note[512];              /* why not saved, or what cut the search short; "" otherwise */
} clattn_tune_report;

/* Tunes the kernel families desc's path uses for desc's shape class (dtype, d, dv, Lq class 1 /
   <=16 / <=128 / larger, Lk power-of-two bucket, causal or not, Hq/Hkv, and the variants that
   change the kernel: a window's lower edge, soft-capping, ALiBi, sinks): every candidate is built,
   checked against clattn_attention_reference on a small problem of the class and against the
   defaults' output at full size (a failing or wrong one is recorded, never chosen), then timed on
   desc's shape after a warm-up (median of repeats). A space larger than the budget allows is
   sampled at random, then refined by local search around the best point. The winners apply to ctx
   at once and are merged into the tuning file (under its lock) unless no_save. The mask and probs
   are not part of the class: tuning runs without them. Int8 K/V is tuned as its plain twin (the
   same desc with CLATTN_KV_SAME), whose parameters int8 calls then take as the nearest tuned
   class. A class with variants never tuned takes the nearest class's (fewest variants apart). Blocks until done; uses its own buffers
   and a private context on ctx's queue. opt and report may be NULL. */
CLATTN_API clattn_status clattn_tune(clattn_context *ctx, const clattn_attention_desc *desc,
                                     const clattn_tune_options *opt, clattn_tune_report *report);

/* Tunes the fused kernel for a ragged batch (clattn_attention_varlen): desc's host tables give the
   lengths of the batch to tune on (a typical serving step, say 64 sequences of mixed context
   lengths decoding one token each), the tensors are random. Every candidate is checked against
   clattn_attention_varlen_reference on the same tables with each sequence cut short (at most 16
   queries and 300 keys; the same bounds, so the same shape class and splits), then timed on the
   whole batch. The winners are filed under the batch's shape class (max_seqlen_q and max_seqlen_k
   as Lq and Lk, and the varlen, paged and other variants: docs/caches.md), which varlen calls of
   that class take; int8 K/V is tuned as its plain twin. Otherwise as clattn_tune. */
CLATTN_API clattn_status clattn_tune_varlen(clattn_context *ctx, const clattn_varlen_desc *desc,
                                            const clattn_tune_options *opt,
                                            clattn_tune_report *report);

/* Tunes the layer of desc on ctx's device: each distinct projection GEMM shape (q and out: B*Lq x E
   x E; k: B*Lk x Hkv*dh x kdim; v: B*Lk x Hkv*dh x vdim) with every projection backend the build
   and device have (clattn's own kernel, family "proj"; CLBlast's Xgemm, family "clblast_xgemm",
   whose parameters are applied with CLBlastOverrideParameters), or only the one desc->projections
   forces, then the layer's attention as clattn_tune would (BSHD, the layer's heads, mask type and
   causality). Each GEMM candidate is checked against a double-precision GEMM on sampled entries
   and timed (median); the winners are filed per shape class and backend, so that
   CLATTN_PROJ_AUTO then takes the faster backend per shape. The budget (opt->budget_s, default
   60 s) goes three quarters to the GEMMs, evenly, one quarter to the attention. report: one family
   row per backend and shape, in the order tuned, then the attention's families
   (CLATTN_TUNE_MAX_FAMILIES rows at most), and default_ms / best_ms for the layer summed from its
   parts (four projections and the attention; before: the backend CLATTN_PROJ_AUTO chose before
   this call, at its defaults). opt->families, when set, limits the families tuned. Saved to the
   tuning file unless opt->no_save. opt and report may be NULL. CLATTN_INVALID_ARGUMENT for a NULL
   or invalid desc. */
CLATTN_API clattn_status clattn_mha_tune(clattn_context *ctx, const clattn_mha_desc *desc,
                                         const clattn_tune_options *opt, clattn_tune_report *report);

typedef struct clattn_cache_info {
    int enabled;                 /* 0: CLATTN_CACHE=off, or no directory could be named */
    int tuning_enabled;
    const char *dir;             /* strings owned by ctx: "" when disabled */
    const char *tuning_file;     /* this device's tuning file */
    const char *identity;        /* the device as the caches key it */
    size_t tuning_entries;       /* entries in ctx's tuning table */
    unsigned long programs_compiled;   /* built from source by ctx so far */
    unsigned long programs_loaded;     /* loaded from the binary cache or CLATTN_BINARY_DIR */
} clattn_cache_info;
CLATTN_API clattn_status clattn_context_cache_info(clattn_context *ctx, clattn_cache_info *info);
/* Entry i (0-based) of ctx's tuning table as a line of the tuning file (docs/caches.md);
   CLATTN_INVALID_ARGUMENT past the end. */
CLATTN_API clattn_status clattn_tuning_entry_string(clattn_context *ctx, size_t i, char *buf,
                                                    size_t len);
/* Forgets ctx's tuning entries and removes this device's tuning file (and, with binaries != 0,
   every cached program binary in the cache directory). */
CLATTN_API clattn_status clattn_cache_clear(clattn_context *ctx, int binaries);
/* The FPGA flow: runs desc's path (AUTO: both paths) on a fresh private context and writes, into
   dir, each program it needs as "<stem>-<h>.bin" (the names CLATTN_BINARY_DIR is searched for), the
   complete source of each kernel file ("<stem>.cl", for the vendor's offline compiler) and a line
   per program in "clattn-binaries.txt": name, kernel file, build options. Needs a device that
   compiles (a CPU, GPU or the FPGA vendor's emulator); the binaries written are for that device. */
CLATTN_API clattn_status clattn_export_binaries(clattn_context *ctx, const clattn_attention_desc *desc,
                                                const char *dir);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_H */
