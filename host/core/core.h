/* The core module: what every other module of host/ may use. The context and its settings, device
 * facts, errors, warnings and the log, the problem and its CPU reference, half floats, the embedded
 * kernel sources, kernel families and their parameters as data, device scratch, launches and the
 * buffer check. Depends on nothing else in host/. Never installed.
 *
 * Exports (files of host/core/):
 *   context.c       clattn_context_open/close, device selection, the public context accessors
 *   options.c       clattn_settings_resolve (options.h): the one reader of the environment
 *   error.c         clattn_fail, clattn_warn, clattn_log, clattn_status_string, the two messages
 *   device.c        clattn_device_query
 *   problem.c       clattn_problem_init, clattn_problem_shape_desc, public clattn_attention_sizes
 *   reference.c     clattn_attention_reference_run, public clattn_attention_reference
 *   half.c          clattn_half_to_float, clattn_float_to_half, the same for bfloat16,
 *                   clattn_storage_get/set
 *   kernel_params.c clattn_params_defaults/defines/string/in_space/in_range, clattn_problem_defines
 *   scratch.c       clattn_scratch_get, clattn_scratch_release_all
 *   enqueue.c       clattn_set_arg, clattn_launch
 *   buffer_check.c  clattn_buffers_check (buffer_check.h)
 *   version.c       public clattn_version
 */
#ifndef CLATTN_CORE_H
#define CLATTN_CORE_H

#define CLATTN_BUILDING 1
#include "clattn.h"
#include "host/cache/tune_cache.h"
#include "host/core/error_text.h"
#include "host/core/options.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define CLATTN_MAX_HEAD_DIM 512      /* dv, and d of the layer's heads */
#define CLATTN_MAX_HEAD_DIM_QK 576   /* d of attention: MLA's 512 + 64 rotary dims (DeepSeek) */
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

/* Opaque here: each belongs to the module named. */
typedef struct clattn_program_entry clattn_program_entry;   /* cache/program.c */
typedef struct clattn_caches clattn_caches;                 /* cache/cache.h */
typedef struct clattn_plan clattn_plan;                     /* attention/attention.h */

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

/* ---- context (context.c) ---------------------------------------------------------------------- */

struct clattn_context {
    cl_platform_id platform;
    cl_device_id device;
    cl_context cl_ctx;
    cl_command_queue queue;
    int queue_profiling;          /* the queue has CL_QUEUE_PROFILING_ENABLE */
    int queue_out_of_order;       /* a caller's out-of-order queue: barriers between dependent kernels */
    clattn_device_info info;

    pthread_mutex_t lock;         /* serialises calls: kernel objects and scratch are shared */
    pthread_mutex_t msg_lock;     /* guards the two messages: they are read from any thread */
    char last_error[CLATTN_ERROR_LEN];     /* written only by a failing call */
    char last_warning[CLATTN_ERROR_LEN];   /* what a call that went on despite a problem said */
    clattn_log_fn log_fn;         /* warnings and plan descriptions go here; NULL: nowhere */
    void *log_user;

    clattn_settings settings;     /* options.c: the options with the environment's defaults */
    const char *kernel_dir;       /* settings.kernel_dir: NULL for the embedded sources */
    clattn_program_entry *programs;
    clattn_scratch scratch;

    struct clattn_caches *caches; /* cache/: cache directory, tuning table (cache/cache.h) */
    /* Called after each successful clattn_attention with its plan, lock held: automatic tuning
       (tune/autotune.c) when the settings ask for it, else NULL. Set once, by api/context.c;
       the library's private contexts never get one. */
    void (*after_call)(clattn_context *ctx, const clattn_plan *plan);
};

/* The core of a context: settings, locks, the device (from selector, or queue's when queue is not
   NULL: retained, its context and device used) and its facts. No caches yet: cache/ adds them
   (clattn_context_open_cached). private_context: see clattn_settings. */
clattn_status clattn_context_open(const char *selector, cl_command_queue queue,
                                  const clattn_context_options *opts, int private_context,
                                  clattn_context **out);
/* Releases what the core owns (scratch, queue, context, settings) and ctx itself. NULL: no-op. */
void clattn_context_close(clattn_context *ctx);

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
/* Both messages emptied: a test seam, so that a test sees which step warned. */
void clattn_clear_messages(clattn_context *ctx);
/* A problem the call goes on despite (a cache file ignored, a folder not writable): kept apart from
   last_error (clattn_context_last_warning) and handed to the context's log callback. */
void clattn_warn(clattn_context *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands msg to the context's log callback, if any. */
void clattn_log(clattn_context *ctx, clattn_log_level level, const char *msg);

/* ---- device info (device.c) ------------------------------------------------------------------ */

clattn_status clattn_device_query(clattn_context *ctx, cl_platform_id platform, cl_device_id device,
                                  clattn_device_info *info);

/* ---- loop-iteration caps (loop_cap.c) ---------------------------------------------------------- */

/* Iterations after which the implementation ends a work-item's loops silently (llvmpipe: 65535 over
   all loops together), 0 when it never does. */
long clattn_device_loop_cap(const clattn_device_info *dev);
/* On such a device, the most keys one fused work-group may walk (rows of rm vectors, head sizes d and
   dv); 0 when there is no cap. */
int clattn_flash_keys_under_cap(const clattn_device_info *dev, int d, int dv, int rm);
/* On such a device, the longest key range the unfused path runs; 0 when there is no cap. */
int clattn_unfused_keys_under_cap(const clattn_device_info *dev);

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
    int causal_bound;             /* whether that bound applies: causal, or a window's right edge */
    int window_lo;                /* a window's left edge: key j visible only if j >= i + lo_offset */
    int lo_offset;
    int window, window_left, window_right;   /* the desc's, as given (for clattn_problem_shape_desc) */
    float softcap;                /* 0: none */
    const float *alibi, *sinks;   /* the call's host arrays [Hq], or NULL */
    int kv_int8;                  /* k and v int8 with per-token scales (CLATTN_KV_INT8) */
    int varlen, paged;            /* a ragged batch (host/serving/): B, Lq and Lk are its sequence
                                     count and bounds, causal_offset and lo_offset are relative to
                                     each sequence's Lk - Lq; paged: keys in a paged cache */
    cl_mem k_scale, v_scale;      /* the desc's, as given (device entry point) */
    const float *k_scale_host, *v_scale_host;
    long s_bs, s_hs, s_rs;        /* element strides of the scales [batch, head, token] */
    size_t scale_bytes;           /* what each scale buffer must hold */
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
/* The variants of p that change a kernel's code (its -D defines beyond storage, mask and causality),
   as CLATTN_VARIANT_* bits (cache/tune_cache.h): what fit records and tuning keys tell problems
   apart by. */
int clattn_problem_variants(const clattn_problem *p);
/* The desc of p's shape and variants without its mask and int8 K/V (whose scales are buffers): what
   the tuner builds its problems from. */
void clattn_problem_shape_desc(const clattn_problem *p, clattn_attention_desc *desc);
size_t clattn_dtype_size(clattn_dtype dtype);
size_t clattn_mask_elem_size(clattn_mask_type type);

/* ---- the CPU reference (reference.c) -------------------------------------------------------- */

/* The element type the reference reads q, k, v in and writes out in: the problem's storage type
   (clattn_attention_reference), or double for a caller that stays in double end to end (the
   multi-head layer's reference, mha_reference.c). mask is always p->mask_type's, probs and lse
   float32. */
typedef enum { CLATTN_REF_F32 = 0, CLATTN_REF_F16, CLATTN_REF_F64, CLATTN_REF_BF16 } clattn_ref_elem;
/* The element type of a storage type. */
clattn_ref_elem clattn_ref_elem_of(clattn_dtype dtype);

/* clattn_attention_reference on a resolved problem, after its argument checks (the pointers it
   needs are given; unused ones may be NULL): q, k, v and out hold elem elements at p's strides
   (p->dtype is not read). Fails only with CLATTN_OUT_OF_MEMORY, and then before writing anything. */
clattn_status clattn_attention_reference_run(const clattn_problem *p, clattn_ref_elem elem,
                                             const void *q, const void *k, const void *v,
                                             const void *mask, void *out, float *probs, float *lse);

/* The host scales of an int8 K/V problem: present (v's only when need_v) and finite. On failure
   writes a message naming the first bad entry into err (may be NULL). */
clattn_status clattn_kv_scales_check(const clattn_problem *p, int need_v, char *err, size_t err_len);

/* ---- half precision on the host (half.c) ----------------------------------------------------- */

float clattn_half_to_float(uint16_t h);
uint16_t clattn_float_to_half(float f);   /* round to nearest even, overflow to inf, NaN kept */
float clattn_bf16_to_float(uint16_t b);
uint16_t clattn_float_to_bf16(float f);   /* the same rules for bfloat16 */
/* Element i of storage t (F32, F16 or BF16) as float, and x rounded into it. */
float clattn_storage_get(const void *t, clattn_dtype dtype, size_t i);
void clattn_storage_set(void *t, clattn_dtype dtype, size_t i, float x);

/* ---- kernel sources (generated kernels_embed.c) ----------------------------------------------- */

/* One embedded .cl file (kernels_embed.c, generated at build time). */
typedef struct clattn_kernel_source {
    const char *name;     /* "qk_scores.cl" */
    const char *text;
    size_t length;
} clattn_kernel_source;
extern const clattn_kernel_source clattn_kernel_sources[];
extern const size_t clattn_kernel_source_count;
extern const char clattn_kernel_sources_sha256[];   /* over every embedded file, in order */
/* A file in CLATTN_KERNEL_DIR larger than this is refused: the largest kernel is a few tens of
   kilobytes, and the whole text is read into memory (and hashed) at every context creation. */
#define CLATTN_KERNEL_SOURCE_MAX_BYTES (16u << 20)

/* ---- kernel families and their parameters (kernel_params.c) ------------------------------------------------------------ */

#define CLATTN_MAX_PARAMS 16   /* CLBlast's Xgemm has 16 (gemm_clblast.c) */
/* No kernel parameter means anything above this (the largest candidate is 256). valid() refuses
   larger values before anything else, so that the products of parameters it forms stay far
   inside 64 bits. */
#define CLATTN_PARAM_MAX 65536

/* One tunable parameter: the -D name, its candidates (the search space) and the default used per
   device class when no tuning result applies. */
typedef struct clattn_param_def {
    const char *name;
    const int *candidates;
    int n_candidates;
    int default_value[3];         /* indexed by clattn_device_class */
    int host_only;                /* 1: read by the host alone (say, how many work-groups to aim
                                     for): never a -D, so its values share one program */
} clattn_param_def;

typedef struct clattn_params {
    int v[CLATTN_MAX_PARAMS];     /* in the order of the family's defs */
} clattn_params;

/* A kernel family: a .cl file and its parameters. valid() applies the constraints (local memory,
   work-group limits, divisibility) for a device and problem; it writes why not into why. It takes
   any values at all (a tuning entry's, a point the tuner tries) and refuses zeros, negatives and
   values above CLATTN_PARAM_MAX (clattn_params_in_range) before it divides or multiplies. */
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
    /* The local memory the family's kernel declares at params for p, in bytes, mirroring its
       __local arrays; valid() holds it against the device. Checked against the compiled
       kernel's CL_KERNEL_LOCAL_MEM_SIZE by tests/test_local_memory.c. */
    size_t (*local_bytes)(const clattn_params *params, const clattn_problem *p);
    /* Optional: the work-items of one work-group of the family's launch at params, which the
       compiled kernel's CL_KERNEL_WORK_GROUP_SIZE must allow (cache/fit.c); the launch takes its
       local size from the same function. NULL: not checked. */
    size_t (*work_group_size)(const clattn_params *params);
} clattn_family;

/* 1 when every value of params is one of its parameter's candidates; else 0, and why says which. */
int clattn_params_in_space(const clattn_family *family, const clattn_params *params, char *why,
                           size_t why_len);
/* 1 when each of the n values of params (named by defs) is in 1..CLATTN_PARAM_MAX; else 0, and
   why says which. The first check of every valid(). */
int clattn_params_in_range(const clattn_param_def *defs, int n, const clattn_params *params,
                           char *why, size_t why_len);
/* 1 for the OpenCL vector widths a parameter may name: 1, 2, 4, 8, 16. */
int clattn_is_vector_width(int v);
void clattn_params_defaults(const clattn_family *family, clattn_device_class cls, clattn_params *out);
/* Appends " -DNAME=value" for each parameter the kernel reads (not host_only) to buf
   (NUL-terminated, len bytes). 0 if it fit. */
int clattn_params_defines(const clattn_family *family, const clattn_params *params, char *buf,
                          size_t len);
/* Problem defines every kernel shares: -DUSE_F16 -DMASK_TYPE -DCAUSAL, and the variants' -DWINDOW
   -DSOFTCAP -DALIBI -DSINKS. */
int clattn_problem_defines(const clattn_problem *p, char *buf, size_t len);
int clattn_param_index(const clattn_family *family, const char *name);
/* The parameters of family as the tuning file spells them ("TILE_M=64 TILE_N=64 ..."). */
void clattn_params_string(const clattn_family *family, const clattn_params *params, char *buf,
                          size_t len);
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

/* ---- test seams (tests/ only; the library never calls these) -------------------------------- */

/* The context's lock, for tests that call the internal functions documented "lock held". */
void clattn_test_lock(clattn_context *ctx);
void clattn_test_unlock(clattn_context *ctx);
/* The device facts the context plans with, writable: tests fake another device's limits (less
   local memory, no compiler, another driver) on the one they have. */
clattn_device_info *clattn_test_device(clattn_context *ctx);
/* The scratch buffer the context holds in slot now (NULL: none yet). */
cl_mem clattn_test_scratch(const clattn_context *ctx, clattn_scratch_slot slot);

#include "host/core/buffer_check.h"

#endif /* CLATTN_CORE_H */
