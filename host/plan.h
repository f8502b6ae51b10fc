/* The plan of one attention call: which path, and per kernel family the problem it runs (possibly
 * reshaped: GQA rows folded, split-KV), its parameters and where they came from. Resolving a call
 * makes a plan; enqueueing executes one and decides nothing. The tuner makes plans with a family's
 * parameters forced; automatic tuning reads a plan's provenance. */
#ifndef CLATTN_PLAN_H
#define CLATTN_PLAN_H

#include "host/internal.h"

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
clattn_status clattn_flash_run(clattn_context *ctx, const clattn_plan *plan, cl_mem q, cl_mem k,
                               cl_mem v, cl_mem mask, cl_mem out, cl_mem lse);

#endif /* CLATTN_PLAN_H */
