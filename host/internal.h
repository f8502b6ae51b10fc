/* What the host files share. Never installed. */
#ifndef CLATTN_INTERNAL_H
#define CLATTN_INTERNAL_H

#define CLATTN_BUILDING 1
#include "clattn.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define CLATTN_MAX_HEAD_DIM 512
#define CLATTN_ERROR_LEN 4096

/* ---- device ---------------------------------------------------------------------------------- */

typedef enum { CLATTN_CLASS_CPU = 0, CLATTN_CLASS_GPU, CLATTN_CLASS_ACCELERATOR } clattn_device_class;

typedef struct clattn_device_info {
    char name[256];
    char vendor[256];
    char driver_version[128];
    char device_version[128];   /* "OpenCL 1.2 ..." */
    char platform_name[256];
    char platform_version[128];
    clattn_device_class cls;
    cl_uint compute_units;
    cl_ulong local_mem_bytes;
    cl_ulong max_alloc_bytes;
    cl_ulong global_mem_bytes;
    size_t max_work_group;
    size_t max_work_item[3];
    int has_fp16, has_fp64;
    int compiler_available;     /* 0 on devices that only load binaries (FPGAs) */
} clattn_device_info;

/* ---- programs -------------------------------------------------------------------------------- */

typedef struct clattn_program_entry clattn_program_entry;   /* program.c */
typedef struct clattn_caches clattn_caches;                 /* caches.h */

/* ---- device scratch -------------------------------------------------------------------------- */

typedef enum {
    CLATTN_SCRATCH_SCORES = 0,   /* unfused score matrix chunk */
    CLATTN_SCRATCH_PARTIAL_OUT,  /* split-KV partial outputs */
    CLATTN_SCRATCH_PARTIAL_LSE,  /* split-KV partial log-sum-exps */
    CLATTN_SCRATCH_WORK0,        /* general purpose (multi-head layer, host copies) */
    CLATTN_SCRATCH_WORK1,
    CLATTN_SCRATCH_WORK2,
    CLATTN_SCRATCH_WORK3,
    CLATTN_SCRATCH_COUNT
} clattn_scratch_slot;

typedef struct clattn_scratch {
    cl_mem buf[CLATTN_SCRATCH_COUNT];
    size_t bytes[CLATTN_SCRATCH_COUNT];
    size_t high_water;            /* largest sum of live scratch bytes seen */
    int poison;                   /* test seam: clattn_scratch_poison */
} clattn_scratch;

/* ---- context --------------------------------------------------------------------------------- */

struct clattn_context {
    cl_platform_id platform;
    cl_device_id device;
    cl_context cl_ctx;
    cl_command_queue queue;
    int queue_profiling;          /* the queue has CL_QUEUE_PROFILING_ENABLE */
    int queue_out_of_order;       /* a caller's out-of-order queue: barriers between dependent kernels */
    clattn_device_info info;

    pthread_mutex_t lock;         /* serialises calls: kernel objects and scratch are shared */
    char last_error[CLATTN_ERROR_LEN];

    char *kernel_dir;             /* $CLATTN_KERNEL_DIR at creation, or NULL: embedded sources */
    clattn_program_entry *programs;
    clattn_scratch scratch;

    struct clattn_caches *caches; /* caches.c: cache directory, tuning table, tuner state (host/caches.h) */
};

/* ---- errors (error.c) ------------------------------------------------------------------------ */

/* Records a formatted message on ctx (if any) and returns status unchanged, so that
   `return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "desc->head_dim = %d ...", d);` reads well. */
clattn_status clattn_fail(clattn_context *ctx, clattn_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps an OpenCL error to a status (allocation failures to CLATTN_OUT_OF_MEMORY) and records
   "what: CL_NAME (code)". */
clattn_status clattn_fail_cl(clattn_context *ctx, cl_int err, const char *what);
const char *clattn_cl_error_name(cl_int err);
void clattn_clear_error(clattn_context *ctx);

/* ---- device info (device.c) ------------------------------------------------------------------ */

clattn_status clattn_device_query(clattn_context *ctx, cl_platform_id platform, cl_device_id device,
                                  clattn_device_info *info);

/* ---- the problem, resolved (problem.c) ------------------------------------------------------- */

/* A desc with defaults resolved and every stride spelled out, in elements. Shared by the reference,
   the argument checks and every enqueue path, so that all agree on addressing. */
typedef struct clattn_problem {
    int B, Hq, Hkv, group;        /* group = Hq / Hkv */
    int Lq, Lk, d, dv;
    float scale;
    clattn_dtype dtype;
    clattn_layout layout;
    clattn_causal causal;
    int causal_offset;            /* key j visible from query i iff j <= i + causal_offset */
    clattn_mask_type mask_type;
    long mask_bs, mask_hs, mask_rs;
    clattn_path path;
    /* element strides: [batch, head, row]; the innermost (d or dv) is contiguous */
    long q_bs, q_hs, q_rs;
    long k_bs, k_hs, k_rs;
    long v_bs, v_hs, v_rs;
    long o_bs, o_hs, o_rs;
    clattn_tensor_sizes bytes;    /* what each buffer must hold */
} clattn_problem;

/* Validates desc and fills p. On failure writes a message naming the field into err. */
clattn_status clattn_problem_init(const clattn_attention_desc *desc, clattn_problem *p,
                                  char *err, size_t err_len);
size_t clattn_dtype_size(clattn_dtype dtype);
size_t clattn_mask_elem_size(clattn_mask_type type);

/* ---- half precision on the host (half.c) ----------------------------------------------------- */

float clattn_half_to_float(uint16_t h);
uint16_t clattn_float_to_half(float f);   /* round to nearest even, overflow to inf, NaN kept */

/* ---- kernels: sources and programs (program.c) ----------------------------------------------- */

/* One embedded .cl file (kernels_embed.c, generated at build time). */
typedef struct clattn_kernel_source {
    const char *name;     /* "qk_scores.cl" */
    const char *text;
    size_t length;
} clattn_kernel_source;
extern const clattn_kernel_source clattn_kernel_sources[];
extern const size_t clattn_kernel_source_count;
extern const char clattn_kernel_sources_sha256[];   /* over every embedded file, in order */

/* The full program text for file (cl/common.h.cl, then the file), malloc'd. */
clattn_status clattn_program_source(clattn_context *ctx, const char *file, char **out, size_t *out_len);
/* The program for (file, options), built once per context. Lock held. */
clattn_status clattn_program_get(clattn_context *ctx, const char *file, const char *options,
                                 cl_program *out);
void clattn_programs_release(clattn_context *ctx);

/* ---- on-disk caches (caches.c) --------------------------------------------------------------- */

/* Reads the tuning file for this device (once, at context creation); problems become a warning. */
void clattn_context_load_caches(clattn_context *ctx);
void clattn_context_free_caches(clattn_context *ctx);
/* *out NULL when the binary cache has no usable program (then the caller compiles the source). */
clattn_status clattn_program_from_binary_cache(clattn_context *ctx, const char *file, const char *source,
                                               const char *options, cl_program *out);
/* Stores a freshly built program's binary; failures are ignored (the cache is an optimisation). */
void clattn_program_to_binary_cache(clattn_context *ctx, const char *file, const char *source,
                                    const char *options, cl_program program);
/* After a successful clattn_attention (lock held): CLATTN_AUTOTUNE=1 tunes p's shape class when
   a lookup of the call found it untuned (autotune.c). probs: whether the call wanted probs. */
void clattn_autotune_after_call(clattn_context *ctx, const clattn_problem *p, int probs);

/* A kernel from file built with options, created once per context and cached by (file, options,
   kernel name). Must be called with ctx->lock held; the kernel stays owned by the context. */
clattn_status clattn_kernel_get(clattn_context *ctx, const char *file, const char *options,
                                const char *kernel_name, cl_kernel *out);

/* ---- tuning parameters (params.c) ------------------------------------------------------------ */

#define CLATTN_MAX_PARAMS 8

/* One tunable parameter: the -D name, its candidates (the search space) and the default used per
   device class when no tuning result applies. */
typedef struct clattn_param_def {
    const char *name;
    const int *candidates;
    int n_candidates;
    int default_value[3];         /* indexed by clattn_device_class */
} clattn_param_def;

typedef struct clattn_params {
    int v[CLATTN_MAX_PARAMS];     /* in the order of the family's defs */
} clattn_params;

/* A kernel family: a .cl file and its parameters. valid() applies the constraints (local memory,
   work-group limits, divisibility) for a device and problem; it writes why not into why. */
typedef struct clattn_family {
    const char *name;             /* "qk", "softmax", "pv", "flash", "flash_split", "merge" */
    const char *file;
    int n_params;
    const clattn_param_def *params;
    int (*valid)(const clattn_params *params, const clattn_device_info *dev,
                 const clattn_problem *p, char *why, size_t why_len);
    /* Optional: rewrites params to the one point that stands for every point launching the same
       work on this device and problem (say, split-occupancy values that give the same split
       count), or the same work padded (row tiles taller than the rows), preferring ref's values,
       so the tuner times each distinct launch once. */
    void (*canonical)(clattn_params *params, const clattn_params *ref,
                      const clattn_device_info *dev, const clattn_problem *p);
    /* Optional: fits the device-class defaults to the problem's shape (say, no more rows per tile
       than the problem has); never applied to tuned entries. */
    void (*fit_defaults)(clattn_params *params, const clattn_problem *p);
} clattn_family;

/* The parameters to use for family on this context and problem: the tuning cache if it has an entry
   (exact, then nearest shape class), else the device-class defaults, else the valid point nearest
   the defaults, else the first valid point of the space. */
clattn_status clattn_params_lookup(clattn_context *ctx, const clattn_family *family,
                                   const clattn_problem *p, clattn_params *out);
void clattn_params_defaults(const clattn_family *family, clattn_device_class cls, clattn_params *out);
/* Appends " -DNAME=value" for each parameter to buf (NUL-terminated, len bytes). 0 if it fit. */
int clattn_params_defines(const clattn_family *family, const clattn_params *params, char *buf,
                          size_t len);
/* Problem defines every kernel shares: -DUSE_F16 -DMASK_TYPE -DCAUSAL. */
int clattn_problem_defines(const clattn_problem *p, char *buf, size_t len);
int clattn_param_index(const clattn_family *family, const char *name);
/* The tuned parameters for family and this problem's shape class, if the tuning file has them
   in caches.c (exact key, then the nearest shape class). Returns 1 and fills out when found. Lock held. */
int clattn_tuning_lookup(clattn_context *ctx, const clattn_family *family, const clattn_problem *p,
                         clattn_params *out);

/* ---- scratch (scratch.c) --------------------------------------------------------------------- */

/* A device buffer of at least bytes for slot, grown (never shrunk) as needed. Lock held. */
clattn_status clattn_scratch_get(clattn_context *ctx, clattn_scratch_slot slot, size_t bytes,
                                 cl_mem *out);
void clattn_scratch_release_all(clattn_context *ctx);
/* A test seam, not API: while on, every clattn_scratch_get first fills the whole buffer it returns
   with float NaN (enqueued, ordered before what the caller enqueues next), so that a test can show
   that no call reads scratch it did not write (tests/test_scratch_poison.c). Takes ctx's lock. */
void clattn_scratch_poison(clattn_context *ctx, int on);

/* ---- enqueue helpers (enqueue.c) ------------------------------------------------------------- */

/* Sets argument i from a value of the given size; on failure records which argument. */
clattn_status clattn_set_arg(clattn_context *ctx, cl_kernel kernel, cl_uint index, size_t size,
                             const void *value);
/* Enqueues with global sizes rounded up to multiples of local. Zero-sized launches are skipped. */
clattn_status clattn_launch(clattn_context *ctx, cl_kernel kernel, cl_uint dims, const size_t *global,
                            const size_t *local, const char *what);

/* ---- attention (attention.c) ---------------------------------------------------------------- */

/* Validates desc and every buffer (presence, context, CL_MEM_SIZE, aliasing); fills p. */
clattn_status clattn_attention_check(clattn_context *ctx, const clattn_attention_desc *desc, cl_mem q,
                                     cl_mem k, cl_mem v, cl_mem mask, cl_mem out, cl_mem probs,
                                     cl_mem lse, clattn_problem *p);
/* Enqueues a checked problem on the path it calls for. Lock held. */
clattn_status clattn_attention_enqueue_locked(clattn_context *ctx, const clattn_problem *p, cl_mem q,
                                              cl_mem k, cl_mem v, cl_mem mask, cl_mem out, cl_mem probs,
                                              cl_mem lse);

/* ---- paths (unfused.c, flash.c) -------------------------------------------------------------- */

extern const clattn_family clattn_family_qk;
extern const clattn_family clattn_family_softmax;
extern const clattn_family clattn_family_pv;

/* Lock held, arguments checked, B*Lq > 0. */
clattn_status clattn_unfused_enqueue(clattn_context *ctx, const clattn_problem *p, cl_mem q, cl_mem k,
                                     cl_mem v, cl_mem mask, cl_mem out, cl_mem probs, cl_mem lse);
/* The same with the score scratch of one chunk capped at chunk_bytes (clattn_unfused_enqueue uses
   256 MiB; tests pass a small value to exercise the chunking). */
clattn_status clattn_unfused_enqueue_chunked(clattn_context *ctx, const clattn_problem *p, cl_mem q,
                                             cl_mem k, cl_mem v, cl_mem mask, cl_mem out, cl_mem probs,
                                             cl_mem lse, size_t chunk_bytes);

/* The fused path (flash.c): online softmax, split-KV for decode-like shapes. Lock held. */
clattn_status clattn_flash_enqueue(clattn_context *ctx, const clattn_problem *p, cl_mem q, cl_mem k,
                                   cl_mem v, cl_mem mask, cl_mem out, cl_mem lse);
/* flash.c */
/* Both run cl/flash_attention.cl with the same parameters; "flash" serves prefill-shaped problems,
   "flash_split" decode-shaped ones (at most 16 query rows per KV head), split-KV or not. */
extern const clattn_family clattn_family_flash;
extern const clattn_family clattn_family_flash_split;
/* The family clattn_flash_enqueue takes for p, and the split count it takes with params (1: none;
   from the compute units, the family's SPLIT_OCC and Lk). */
const clattn_family *clattn_flash_family_for(const clattn_problem *p);
int clattn_flash_splits(const clattn_context *ctx, const clattn_problem *p, const clattn_params *params);
int clattn_flash_splits_on(const clattn_device_info *dev, const clattn_problem *p,
                           const clattn_params *params);
/* The fused kernel with explicit parameters (valid for p) and split count, for the tuner and tests;
   splits > 1 adds the merge. Lock held, arguments checked, B*Lq > 0. */
clattn_status clattn_flash_enqueue_with(clattn_context *ctx, const clattn_problem *p,
                                        const clattn_params *params, int splits, cl_mem q, cl_mem k,
                                        cl_mem v, cl_mem mask, cl_mem out, cl_mem lse);

/* ---- merging partial results (merge.c) ------------------------------------------------------- */

extern const clattn_family clattn_family_merge;

/* Split-KV: combines float32 partials part_out [splits][B*Hq*Lq][dv] and part_lse [splits][B*Hq*Lq]
   (row (b*Hq + h)*Lq + i) into out (p's storage type, strides o_bs/o_hs/o_rs) and lse (float32
   [B,Hq,Lq], may be NULL). Splits with lse -inf are skipped. Lock held, arguments checked. */
clattn_status clattn_merge_enqueue_contiguous(clattn_context *ctx, const clattn_problem *p, int splits,
                                              cl_mem part_out, cl_mem part_lse, cl_mem out, cl_mem lse);
/* clattn_merge_partials after its checks (p from the desc's shape fields), staging the parts in
   tiles of at most stage_bytes (tests pass a small value to exercise the tiling). Lock held. */
clattn_status clattn_merge_enqueue_staged(clattn_context *ctx, const clattn_problem *p, int parts,
                                          const cl_mem *outs, const cl_mem *lses, cl_mem out, cl_mem lse,
                                          size_t stage_bytes);

#endif /* CLATTN_INTERNAL_H */
