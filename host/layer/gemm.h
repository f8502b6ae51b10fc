/* The multi-head layer's projection GEMMs (private to host/layer/).
 *
 * Every projection is C[rows, cols] = A[rows, inner]·W[cols, inner]ᵀ (+ bias[cols]), all row-major
 * and dense, W read from element w_off of its buffer (the packed in_proj_weight), bias from
 * bias_off. Read as [B, L, H, dh], C is the BSHD layout the attention takes, and the heads' output
 * in BSHD is the out projection's A: no transposes anywhere.
 *
 * Two backends compute it: clattn's own kernel family "proj" (cl/proj_gemm.cl, gemm_own.c; bias
 * fused, F16 storage through vload_half so no cl_khr_fp16 needed) and CLBlast's Xgemm
 * (gemm_clblast.c; bias added by cl/mha_bias.cl), whose kernel parameters clattn tunes and applies
 * with CLBlastOverrideParameters. gemm_choose.c picks one per device and shape: the faster of the
 * tuned entries when both are in the tuning file, else the device class's default.
 *
 * Exports (files of host/layer/):
 *   gemm_own.c      clattn_gemm_own, clattn_proj_family
 *   gemm_clblast.c  clattn_gemm_clblast, clattn_clblast_family (absent without CLBlast: NULL)
 *   gemm_choose.c   clattn_gemm_problem, clattn_gemm_choose
 *   gemm_tune.c     clattn_gemm_tune
 */
#ifndef CLATTN_LAYER_GEMM_H
#define CLATTN_LAYER_GEMM_H

#include "host/attention/attention.h"

typedef struct clattn_gemm {
    const char *name;             /* for messages: "q", "k", "v", "out" */
    clattn_dtype dtype;           /* of a, w, bias and c; arithmetic is float */
    cl_mem a, w, bias, c;         /* bias NULL: none */
    size_t w_off, bias_off;       /* elements */
    size_t rows, cols, inner;
} clattn_gemm;

typedef struct clattn_gemm_backend {
    const char *name;             /* "own", "clblast" */
    const clattn_family *family;  /* its parameters, as the tuning file keeps them */
    /* CLATTN_UNSUPPORTED, with the reason in why, for what this backend cannot do on ctx's
       device (F16 without cl_khr_fp16 for CLBlast's HGEMM); records no error on ctx, so that an
       automatic choice can ask without leaving a failure message behind. */
    clattn_status (*supports)(const clattn_context *ctx, clattn_dtype dtype, char *why, size_t why_len);
    /* Bytes of temporary device buffer g needs at params (0: none). */
    clattn_status (*temp_bytes)(clattn_context *ctx, const clattn_gemm *g, const clattn_params *params,
                                size_t *bytes);
    /* Enqueues g on ctx's queue at params (which valid() accepted for g's problem); temp holds at
       least temp_bytes. Lock held. */
    clattn_status (*enqueue)(clattn_context *ctx, const clattn_gemm *g, const clattn_params *params,
                             cl_mem temp);
    /* Optional: builds the kernel a step of the family launches for the clattn_gemm at arg, so
       that a point that does not build or fit its launch on this driver is passed over before the
       call is committed (host/attention/params.c, clattn_plan_params_built). NULL for a backend
       whose kernels are not clattn's (CLBlast builds its own). */
    clattn_step_build_fn build;
} clattn_gemm_backend;

extern const clattn_gemm_backend clattn_gemm_own;
extern const clattn_family clattn_proj_family;                  /* the own backend's parameters */
extern const clattn_gemm_backend *const clattn_gemm_clblast;   /* NULL in a build without CLBlast */

/* The tuning class of a GEMM, as a problem the tuning table keys: d = inner, dv = cols,
   Lq = Lk = rows, one head, no causality, group 1, dtype. Only the key's fields are meaningful. */
void clattn_gemm_problem(clattn_dtype dtype, size_t rows, size_t cols, size_t inner, clattn_problem *p);

/* The backend and parameters for g on ctx: `force` (clattn_mha_desc.projections) when not AUTO;
   otherwise the faster of the backends' exact tuning entries for g's class, else the device class's
   default backend (own on CPUs and accelerators, CLBlast on GPUs when built with it) at its defaults
   or its nearest tuning entry. A parameter set valid() refuses falls back to the defaults. */
clattn_status clattn_gemm_choose(clattn_context *ctx, const clattn_gemm *g, clattn_projection_impl force,
                                 const clattn_gemm_backend **backend, clattn_params *params);

/* Tunes backend's family for the GEMM rows x cols x inner in dtype on ctx's device (gemm_tune.c):
   each candidate checked against a double-precision GEMM on a sample of entries, timed (median),
   within opt->budget_s (default 30 s); the winner (the defaults unless a candidate beats them by
   3 %) goes into ctx's tuning table under clattn_gemm_problem's class with its time and the
   defaults', and into the tuning file unless opt->no_save. fr says what was tried. Candidates run
   on a private context on ctx's queue. Lock held. opt may be NULL. */
clattn_status clattn_gemm_tune(clattn_context *ctx, const clattn_gemm_backend *backend, clattn_dtype dtype,
                               size_t rows, size_t cols, size_t inner, const clattn_tune_options *opt,
                               clattn_tune_family_report *fr);

#endif /* CLATTN_LAYER_GEMM_H */
