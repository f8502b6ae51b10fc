/* The attention module: resolving a call into a plan and executing it. The plan of one call is the
 * path, and per kernel family the problem it runs (possibly reshaped: GQA rows folded, split-KV), its
 * parameters and where they came from; enqueueing executes a plan and decides nothing. The tuner
 * makes plans with a family's parameters forced; automatic tuning reads a plan's provenance.
 * Depends on core/ and cache/. Never installed.
 *
 * Exports (files of host/attention/):
 *   plan.c            clattn_path_resolve (the AUTO rule), clattn_plan_resolve/enqueue/describe_text
 *   params.c          clattn_plan_params, clattn_params_lookup: parameters and their provenance;
 *                     clattn_params_try, clattn_plan_params_built: only points whose kernels
 *                     build and fit their launch here
 *   attention.c       clattn_attention_check, clattn_attention_enqueue_locked, the public
 *                     clattn_attention and clattn_plan_describe
 *   attention_host.c  the public clattn_attention_host
 *   unfused.c         the qk, softmax and pv families and the unfused path
 *   flash.c           the flash and flash_split families and the fused path
 *   merge.c           the merge family, split-KV merges and the public clattn_merge_partials(_host)
 *   variants.c        clattn_variant_args: the per-head arrays of ALiBi and sinks on the device
 *   quant.c           int8 K/V: the public clattn_quantize_kv(_host)
 */
#ifndef CLATTN_ATTENTION_H
#define CLATTN_ATTENTION_H

#include "host/cache/cache.h"
#include "host/core/core.h"

#define CLATTN_PLAN_MAX_STEPS 4

typedef enum clattn_param_source {
    CLATTN_SOURCE_TUNED_EXACT = 0,  /* the tuning table's entry for this shape class */
    CLATTN_SOURCE_TUNED_NEAREST,    /* the entry of the nearest shape class (same d) */
    CLATTN_SOURCE_DEFAULT,          /* the device class's defaults, fitted to the shape */
    CLATTN_SOURCE_FALLBACK,         /* the defaults do not fit: the valid point nearest them */
    CLATTN_SOURCE_FORCED            /* set by whoever resolved the plan (the tuner) */
} clattn_param_source;

const char *clattn_param_source_name(clattn_param_source source);

/* One kernel family's share of the call. */
typedef struct clattn_plan_step {
    const clattn_family *family;
    clattn_problem p;               /* the problem this family runs */
    clattn_params params;
    clattn_param_source source;
} clattn_plan_step;

struct clattn_plan {
    clattn_path path;               /* CLATTN_PATH_FUSED or CLATTN_PATH_UNFUSED, never AUTO */
    clattn_problem p;               /* the call's problem, as checked */
    int splits;                     /* fused: key ranges run apart and merged (1: none) */
    int split_keys;                 /* fused with splits > 1: keys per range, whole tiles */
    int n_steps;                    /* 0: an empty problem, nothing runs */
    clattn_plan_step step[CLATTN_PLAN_MAX_STEPS];
};

/* A call's ALiBi slopes and sink logits as device buffers (NULL where the call has none), made for
   one enqueue and released after it. */
typedef struct clattn_variant_args {
    cl_mem alibi, sinks;
} clattn_variant_args;
clattn_status clattn_variant_args_make(clattn_context *ctx, const clattn_problem *p,
                                       clattn_variant_args *va);
void clattn_variant_args_release(clattn_variant_args *va);
/* What the dot products are multiplied by: scale, or scale / softcap with soft-capping (the kernel
   then takes softcap·tanh of the product). */
float clattn_variant_score_scale(const clattn_problem *p);

/* How a plan's parameters are chosen. NULL (or zeroed) means as for a user's call. */
typedef struct clattn_plan_config {
    const clattn_family *forced_family;   /* its parameters are `forced` (valid for its problem) */
    clattn_params forced;
    int defaults_only;              /* 1: the tuning table is not consulted */
} clattn_plan_config;

/* The one rule for AUTO: the fused kernel, unless the attention weights are wanted. */
clattn_path clattn_path_resolve(clattn_path requested, int want_probs);

/* family's parameters for p under cfg, and their provenance; CLATTN_UNSUPPORTED when no point of
   the family's space fits the device. */
clattn_status clattn_plan_params(clattn_context *ctx, const clattn_family *family,
                                 const clattn_problem *p, const clattn_plan_config *cfg,
                                 clattn_plan_step *step);
/* The plan for a checked problem. Lock held. */
clattn_status clattn_plan_resolve(clattn_context *ctx, const clattn_problem *p, int want_probs,
                                  const clattn_plan_config *cfg, clattn_plan *plan);
/* Executes plan on checked buffers (probs only for the unfused path). Lock held. */
clattn_status clattn_plan_enqueue(clattn_context *ctx, const clattn_plan *plan, cl_mem q, cl_mem k,
                                  cl_mem v, cl_mem mask, cl_mem out, cl_mem probs, cl_mem lse);
/* A human-readable description, one line per step:
     "fused path, 1 split: flash_split on B=8 Hq=32 ... : BLOCK_M=8 ... (tuned, exact shape class)" */
void clattn_plan_describe_text(const clattn_plan *plan, char *buf, size_t len);
/* The kernel step i of plan runs, built as the path builds it (lock held): what a test holds the
   family's local_bytes against. */
clattn_status clattn_plan_step_kernel(clattn_context *ctx, const clattn_plan *plan, int i,
                                     cl_kernel *out);
/* Steps whose parameters no tuning entry of their exact shape class chose: what automatic tuning
   would improve. */
int clattn_plan_untuned(const clattn_plan *plan);

/* The paths' halves of the above (unfused.c, flash.c). */
clattn_status clattn_unfused_plan(clattn_context *ctx, const clattn_problem *p,
                                  const clattn_plan_config *cfg, clattn_plan *plan);
clattn_status clattn_unfused_run(clattn_context *ctx, const clattn_plan *plan, cl_mem q, cl_mem k,
                                 cl_mem v, cl_mem mask, cl_mem out, cl_mem probs, cl_mem lse,
                                 size_t chunk_bytes);
clattn_status clattn_flash_plan(clattn_context *ctx, const clattn_problem *p,
                                const clattn_plan_config *cfg, clattn_plan *plan);
clattn_status clattn_unfused_kernel(clattn_context *ctx, const clattn_plan_step *step,
                                    cl_kernel *out);
clattn_status clattn_flash_kernel(clattn_context *ctx, const clattn_plan *plan, cl_kernel *out);
clattn_status clattn_merge_kernel(clattn_context *ctx, const clattn_problem *p,
                                 const clattn_params *params, int part_data, int part_ml,
                                 cl_kernel *out);
clattn_status clattn_flash_run(clattn_context *ctx, const clattn_plan *plan, cl_mem q, cl_mem k,
                               cl_mem v, cl_mem mask, cl_mem out, cl_mem lse);
/* A ragged batch's extents for the fused kernel (VARLEN, PAGED): the caller's tables and what
   bounds them (host/serving/). plan->p is the batch's envelope (clattn_problem.varlen). */
typedef struct clattn_flash_tables {
    cl_mem cu_q, cu_k, seqlens_k, block_table;  /* int32; cu_k packed, the other two paged */
    int total_q, total_k;                       /* rows of q/out and of packed k/v */
    int num_blocks, max_blocks, page_shift;     /* paged: blocks, block_table columns, log2 size */
    int causal_abs;                             /* top-left causal: 0, else INT_MAX (no bound) */
} clattn_flash_tables;
clattn_status clattn_flash_run_varlen(clattn_context *ctx, const clattn_plan *plan,
                                      const clattn_flash_tables *t, cl_mem q, cl_mem k, cl_mem v,
                                      cl_mem out, cl_mem lse);

/* ---- parameters that run (params.c, with cache/fit.c) ---------------------------------------- */

/* How many points in a row one choice may find failing to build or fit before it gives up; each is
   remembered, so that a later call goes on from where this one stopped. */
#define CLATTN_MAX_REJECTIONS 16

/* Builds the kernel a step launches (as its path would), into *out. CLATTN_BUILD_FAILED: the
   point's kernel does not compile here. */
typedef clattn_status (*clattn_step_build_fn)(clattn_context *ctx, const clattn_plan_step *step,
                                              const void *arg, cl_kernel *out);
/* Whether step's point runs on this device: its kernel built (by build, with arg) and held against
   the launch (the family's work_group_size and local memory, cache/fit.c). *runs 0 when it failed
   to build or does not fit: then the point is remembered as rejected, so clattn_plan_params passes
   it over from now on, and a warning names family, parameters, provenance and reason. Other
   failures (no source, no host memory) are the status. *kernel is set when *runs is 1. */
clattn_status clattn_params_try(clattn_context *ctx, const clattn_plan_step *step,
                                clattn_step_build_fn build, const void *arg, cl_kernel *kernel,
                                int *runs);
/* clattn_plan_params for a single-launch family, then clattn_params_try, choosing again while the
   point does not run (forced parameters are not replaced: their failure is the status). The
   kernel comes back in *kernel. The multi-step plans of plan.c do the same over a whole plan. */
clattn_status clattn_plan_params_built(clattn_context *ctx, const clattn_family *family,
                                       const clattn_problem *p, const clattn_plan_config *cfg,
                                       clattn_step_build_fn build, const void *arg,
                                       clattn_plan_step *step, cl_kernel *kernel);
/* The failure of a choice that gave up on step's point (forced, or too many rejections). */
clattn_status clattn_params_not_run(clattn_context *ctx, const clattn_plan_step *step);

/* The parameters a user's call takes for family on this context and problem (clattn_plan_params,
   with provenance): the tuning cache if it has an entry (exact, then nearest shape class)
   whose every value is one of the family's candidates and which valid() accepts (an entry that is
   not is left unused, with a warning), else the device-class defaults, else the valid point nearest
   the defaults, else the first valid point of the space. */
clattn_status clattn_params_lookup(clattn_context *ctx, const clattn_family *family,
                                   const clattn_problem *p, clattn_params *out);
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

/* The unfused path's plan and run for p, with the score scratch of one chunk capped at chunk_bytes
   (a call's plan runs with 256 MiB; tests pass a small value to exercise the chunking). */
clattn_status clattn_unfused_enqueue_chunked(clattn_context *ctx, const clattn_problem *p, cl_mem q,
                                             cl_mem k, cl_mem v, cl_mem mask, cl_mem out, cl_mem probs,
                                             cl_mem lse, size_t chunk_bytes);

/* flash.c */
/* Both run cl/flash_attention.cl with the same parameters; "flash" serves prefill-shaped problems,
   "flash_split" decode-shaped ones (at most 16 query rows per KV head), split-KV or not.
   "flash_decode" runs cl/flash_decode.cl (the same arguments and results, lanes along d) on the
   decode-shaped problems of CPUs that it serves (flash.c, decode_serves). */
extern const clattn_family clattn_family_flash;
extern const clattn_family clattn_family_flash_split;
extern const clattn_family clattn_family_flash_decode;
/* The family the fused path's plan takes for p on dev (clattn_flash_plan), and the split count it
   takes with params (1: none; from the compute units, the family's SPLIT_OCC and Lk). */
const clattn_family *clattn_flash_family_for(const clattn_device_info *dev,
                                             const clattn_problem *p);
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

/* Split-KV: combines float32 partials part_out [splits][B*Hq*Lq][dv] (normalised) and part_lse
   [2][splits][B*Hq*Lq]: each split's row max in base 2, then its softmax sum (row
   (b*Hq + h)*Lq + i; cl/flash_attention.cl, SPLIT) into out (p's storage type, strides
   o_bs/o_hs/o_rs) and lse (float32 [B,Hq,Lq], may be NULL). Splits with max -inf are skipped.
   Lock held, arguments checked. */
clattn_status clattn_merge_enqueue_contiguous(clattn_context *ctx, const clattn_problem *p,
                                              const clattn_params *params, int splits, cl_mem part_out,
                                              cl_mem part_lse, cl_mem out, cl_mem lse);
/* Sets the first n floats of part_lse (split maxima) to -inf, with the merge program of p and
   params (merge.cl, fill_floats): a ragged batch's rows that no work-group writes then merge as
   "saw no key" (out 0, lse -inf). Lock held. */
clattn_status clattn_merge_fill_maxima(clattn_context *ctx, const clattn_problem *p,
                                       const clattn_params *params, cl_mem part_lse, long n);
/* clattn_merge_partials after its checks (p from the desc's shape fields), staging the parts in
   tiles of at most stage_bytes (tests pass a small value to exercise the tiling). Lock held. */
clattn_status clattn_merge_enqueue_staged(clattn_context *ctx, const clattn_problem *p, int parts,
                                          const cl_mem *outs, const cl_mem *lses, cl_mem out, cl_mem lse,
                                          size_t stage_bytes);

#endif /* CLATTN_ATTENTION_H */
