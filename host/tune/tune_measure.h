/* The tuner's measuring tools (tune_measure.c): workloads, timed runs, output checks. */
#ifndef CLATTN_TUNE_MEASURE_H
#define CLATTN_TUNE_MEASURE_H

#include "host/serving/serving.h"
#include "host/tune/tune.h"

#include <stdint.h>

/* One attention problem on the device: random N(0,1) inputs, an output buffer, and the output
   expected of it (from the reference, or from the default parameters' run). */
typedef struct clattn_workload {
    clattn_attention_desc desc;
    clattn_problem p;
    cl_mem q, k, v, mask, out;
    void *hq, *hk, *hv, *hmask;   /* host inputs, kept for the reference (keep_inputs) */
    void *host_out;               /* staging for reads, in the storage type */
    float *expected;              /* out_elems floats, valid when has_expected */
    size_t out_elems;
    size_t out_bytes;
    int has_expected;
    /* A ragged batch (clattn_tune_varlen): p is its envelope, vdesc names the workload's own host
       tables (the reference reads them), t its device tables. */
    int varlen;
    clattn_varlen_problem vp;
    clattn_varlen_desc vdesc;
    int *h_tables;                /* one allocation: cu_q, then cu_k or seqlens and block_table */
    clattn_flash_tables t;
} clattn_workload;

/* A context of its own on ctx's queue for the tuner and exports, made from ctx's settings as
   options: same device, kernel sources and cache directory; tuning table empty; never autotunes;
   stores no binaries. Released with clattn_context_close_cached. */
clattn_status clattn_private_context(clattn_context *ctx, clattn_context **out);

double clattn_tune_now(void);                 /* seconds, monotonic */
uint64_t clattn_tune_rng(uint64_t *state);    /* splitmix64 */

/* Buffers for desc on ctx's cl_context, inputs drawn from seed. */
clattn_status clattn_workload_create(clattn_context *ctx, const clattn_attention_desc *desc,
                                     uint64_t seed, int keep_inputs, clattn_workload *w);
/* The same for a ragged batch: vdesc's host tables (copied) and random tensors. */
clattn_status clattn_workload_create_varlen(clattn_context *ctx, const clattn_varlen_desc *vdesc,
                                            uint64_t seed, int keep_inputs, clattn_workload *w);
void clattn_workload_release(clattn_workload *w);
/* expected = clattn_attention_reference on the inputs (needs keep_inputs). */
clattn_status clattn_workload_reference(clattn_context *ctx, clattn_workload *w);
/* Enqueues the plan of w->p under cfg (NULL: as a user's call) on ctx (takes ctx's lock). */
clattn_status clattn_workload_enqueue(clattn_context *ctx, clattn_workload *w,
                                      const clattn_plan_config *cfg);
/* One run to completion: with events, START of a marker before to END of a marker after (kernel
   time); else the wall clock around enqueue and clFinish. */
clattn_status clattn_workload_time(clattn_context *ctx, clattn_workload *w,
                                   const clattn_plan_config *cfg, int events, double *ms);
/* The output as out_elems floats. */
clattn_status clattn_workload_read(clattn_context *ctx, clattn_workload *w, float *out);
/* |got - want| <= rel * max(1, max|want|) everywhere, NaN only against NaN. 1 when within. */
int clattn_tune_compare(const float *got, const float *want, size_t n, double rel, double *max_err,
                        double *tol);

/* ---- configurations ------------------------------------------------------------------------- */

/* The tuner's private context and its two problems: the shape being tuned (timing, whose expected
   output is the defaults') and the smaller one of the same class (check, expected: the reference). */
typedef struct clattn_tune_rig {
    clattn_context *pc;
    clattn_workload timing, check;
    int events;                   /* the queue profiles: kernel time from events */
    int repeats;                  /* timed runs per measurement, at least */
    float *got;                   /* an output read back (room for either problem's) */
} clattn_tune_rig;

/* A configuration is a clattn_plan_config (attention.h): one family's parameters forced, the others from
   the private context's tuning table (the winners so far) or, with defaults_only, their defaults. */
typedef clattn_plan_config clattn_tune_config;

/* cfg on the check problem against the reference, then at full size (the warm-up, which builds what
   it needs; its time in *warm_ms, may be NULL) against the defaults' output. 1 when both agree;
   0 with why (a build or launch failure, or a wrong result). */
int clattn_tune_check(clattn_tune_rig *r, const clattn_tune_config *cfg, double *warm_ms, char *why,
                      size_t why_len);
/* Checks cfg, then times it: the median of at least `repeats` runs filling 50 ms; a run clearly
   slower than best_ms (> 0) ends it early. 1 with *ms, or 0 with why. */
int clattn_tune_measure(clattn_tune_rig *r, const clattn_tune_config *cfg, double best_ms,
                        double *ms, char *why, size_t why_len);
/* a and b (both checked already) in alternating runs, so that drift in the machine's speed falls on
   both alike: the median of each. */
clattn_status clattn_tune_paired(clattn_tune_rig *r, const clattn_tune_config *a,
                                 const clattn_tune_config *b, double *ma, double *mb);

#endif /* CLATTN_TUNE_MEASURE_H */
