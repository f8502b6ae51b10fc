/* What the attention tests share: a deterministic RNG, tensors in either storage type, the device
 * fixture, one attention case run against the reference, and the documented tolerances.
 *
 * Tolerances (max over a tensor; NaN must meet NaN, an infinity the same infinity):
 *   out, F32   max |O - O_ref| <= 1e-5 * max(1, max |O_ref|)                 (times kappa, below)
 *   out, F16   max |O - O_ref| <= 2 * max |half(O_ref) - O_ref| + 1e-3
 *              (the device rounds its float result to half once: up to the reference's own rounding
 *              error, twice for slack, plus the float arithmetic on half inputs)
 *   probs      |P - P_ref| <= 1e-5 * max(1, |P_ref|)          (float32 in every dtype; times kappa)
 *   lse        |L - L_ref| <= 1e-5 * max(1, |L_ref|); -inf must be exactly -inf      (times kappa)
 * O_ref, P_ref, L_ref come from clattn_attention_reference (double) run in F32 on the same inputs
 * widened to float (exact), so that the F16 tolerance can see the reference before its rounding.
 *
 * Large logits: a float score is rounded in proportion to S = max |scale| * sum_x |q_x k_x| (the
 * classic dot-product error bound), and the softmax passes that error on to out, probs and lse.
 * N(0,1) inputs give S < 25 (d <= 512); q * 50 gives S ~ 500, where the observed errors of a correct
 * kernel reach twice the 1e-5 tolerances. So the F32 out tolerance and the probs and lse ones are
 * multiplied by kappa = max(1, S / 64): exactly 1 for ordinary inputs, about 8 for q * 50 (where
 * correct kernels were seen to need up to 2).
 */
#ifndef CLATTN_TESTUTIL_H
#define CLATTN_TESTUTIL_H

#include "host/attention/attention.h"

#include <stddef.h>
#include <stdint.h>

/* ---- random numbers -------------------------------------------------------------------------- */

typedef struct tu_rng {
    uint64_t state;
    int has_spare;     /* Box-Muller makes normals in pairs */
    double spare;
} tu_rng;

void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_u64(tu_rng *r);
double tu_rng_uniform(tu_rng *r);        /* [0, 1) */
double tu_rng_normal(tu_rng *r);         /* N(0, 1) */
int tu_rng_below(tu_rng *r, int n);      /* [0, n) */

/* ---- tensors --------------------------------------------------------------------------------- */

/* n elements of dtype (at least one byte, so an empty tensor is still a valid pointer); fails the
   running test when out of memory. */
void *tu_alloc(size_t bytes);
float tu_get(const void *t, clattn_dtype dtype, size_t i);
void tu_set(void *t, clattn_dtype dtype, size_t i, float x);
/* Elements N(0,1) * scale, rounded to the storage type. */
void tu_fill_normal(void *t, clattn_dtype dtype, size_t n, float scale, tu_rng *r);
void tu_fill_value(void *t, clattn_dtype dtype, size_t n, float x);
/* A copy of n elements widened to float. */
float *tu_widen(const void *t, clattn_dtype dtype, size_t n);

/* ---- the device fixture ---------------------------------------------------------------------- */

/* A context on $CLATTN_DEVICE (or the default device). When no OpenCL device is there (or none
   matches the selector), prints why and exits 77 so that meson reports SKIP. Any other failure
   exits 1. */
clattn_context *tu_context_or_skip(const char *selector);
/* CMocka group fixtures: *state is the clattn_context *. */
int tu_group_setup(void **state);
int tu_group_teardown(void **state);

/* ---- buffers kept to the end of a run --------------------------------------------------------- */

/* Buffers held until the end of a run under oclgrind (tests/oclgrind_cases.c): oclgrind's
   uninitialised-value checker hands a released buffer's state to the next buffer created in its
   slot (tests/oclgrind_slot_reuse.c), which both invents reports and hides real ones, so such a run
   releases no buffer before its end. */
typedef struct tu_keep {
    cl_mem *mems;
    size_t n, cap;
} tu_keep;

/* Retains mem into k, once per object (NULL is ignored); aborts when out of host memory, as
   tu_alloc does. */
void tu_keep_add(tu_keep *k, cl_mem mem);
/* Every buffer the context's scratch holds now (those it grows past later stay alive in k). */
void tu_keep_scratch(tu_keep *k, const clattn_context *ctx);
/* Releases every buffer in k and empties it. */
void tu_keep_release(tu_keep *k);

/* ---- comparison ------------------------------------------------------------------------------ */

typedef struct tu_diff {
    double err;        /* max |got - ref| over the finite pairs */
    double tol;        /* what err was held to */
    size_t worst;      /* index of err, or of the first mismatch */
    int mismatches;    /* elements out of tolerance, NaN against number, infinities that differ */
    double got, ref;   /* the values at worst */
    double ratio;      /* max |got - ref| / bound: the share of the tolerance used */
} tu_diff;

/* The out tolerance above for a reference output of n floats, kappa from tu_conditioning. */
double tu_out_tolerance(clattn_dtype dtype, const float *ref, size_t n, double kappa);
/* |got - ref| <= tol for every element (got in dtype, ref float). 1 when within. */
int tu_compare_out(clattn_dtype dtype, const void *got, const float *ref, size_t n, double tol,
                   tu_diff *d);
/* |got - ref| <= rel * max(1, |ref|) elementwise, for probs and lse. 1 when within. */
int tu_compare_rel(const float *got, const float *ref, size_t n, double rel, tu_diff *d);

#define TU_PROBS_REL 1e-5
#define TU_LSE_REL 1e-5
#define TU_SCORE_REF 64.0

/* max over (b, h, i, j) of |scale| * sum_x |q_x k_x|: what the float rounding of a score is
   proportional to (q, k widened to float, in the desc's layout); with soft-capping 4 times the
   capped size (tanh's ulps), and at least the largest ALiBi bias. */
double tu_score_magnitude(const clattn_attention_desc *d, const float *q, const float *k);
/* kappa = max(1, score magnitude / TU_SCORE_REF). */
double tu_conditioning(double score_magnitude);

/* ---- one attention case ---------------------------------------------------------------------- */

typedef enum {
    TU_MASK_DENSE = 0,    /* [B,Hq,Lq,Lk], row stride left 0 (-> Lk) */
    TU_MASK_BROADCAST,    /* batch and head strides 0: one [Lq,Lk] mask for all */
    TU_MASK_PADDED,       /* rows padded to Lk + 3, per head, shared across the batch */
    TU_MASK_KEYPAD,       /* key padding: [B,Lk], one row for every head and query row
                             (mask_rows_broadcast); batch entry 1 hides every key */
    TU_MASK_KIND_COUNT
} tu_mask_kind;

typedef struct tu_case {
    clattn_attention_desc desc;
    tu_mask_kind mask_kind;  /* how the mask strides are set when desc.mask_type is not NONE */
    int want_probs, want_lse;
    float q_scale;           /* 0 -> 1; 50 makes large logits */
    int nan_in_q;            /* put a NaN into one query row */
    int nan_in_v;            /* put a NaN into one V row: rows that see its key are NaN, rows
                                that do not (masked or causally hidden) must stay clean */
    int use_buffers;         /* 1: clattn_attention on cl_mem; 0: clattn_attention_host */
    tu_keep *keep;           /* with use_buffers, non-NULL: the case's buffers also go into keep */
    uint64_t seed;
} tu_case;

typedef struct tu_outcome {
    clattn_status status;    /* of the device call */
    int ok;                  /* status SUCCESS and every compared tensor within tolerance */
    tu_diff out, probs, lse;
    double score_mag, kappa; /* tu_score_magnitude of the inputs, and the factor on the tolerances */
    char msg[1024];          /* the case and, on failure, what went wrong */
} tu_outcome;

/* Int8 K/V (desc.kv_storage CLATTN_KV_INT8): tu_run_case quantizes its random K and V with
   clattn_quantize_kv_host and hands the library and the reference the same int8 values and scales.
   The bytes of one scale array, and a tensor's values as float (x8 · scale, as the device forms
   them; free() it). */
size_t tu_kv_scale_bytes(const clattn_attention_desc *d);
float *tu_dequantize(const clattn_attention_desc *d, clattn_kv_tensor which, const signed char *x8,
                     const float *scale);

/* d's problem with F32 storage (N(0,1) inputs from seed) on the fused kernel of the family its plan
   takes, at that family's parameters from the lookup with BLOCK_M set to block_m (0: as looked up)
   and splits key ranges (clattn_flash_enqueue_with), against the reference: out at the F32
   tolerance, lse within TU_LSE_REL. The buffers go into keep (NULL: released at once). Returns the
   call's status (CLATTN_INVALID_ARGUMENT, with a line saying why, where block_m is not valid for
   the family; CLATTN_OPENCL_ERROR, with its code, where a buffer cannot be made or read); *ok is
   the comparison's verdict (0 unless the call succeeded), dout and dlse its differences. */
clattn_status tu_run_fused_with(clattn_context *ctx, const clattn_attention_desc *d, int block_m,
                                int splits, uint64_t seed, tu_keep *keep, int *ok, tu_diff *dout,
                                tu_diff *dlse);

/* Describes c in one line ("B=2 Hq=8 Hkv=2 Lq=7 Lk=300 d=40 dv=64 F16 BSHD causal=BR ..."). */
void tu_case_string(const tu_case *c, char *buf, size_t len);
/* Makes c's inputs, runs them on ctx and on the reference, compares. Returns the device status. */
clattn_status tu_run_case(clattn_context *ctx, const tu_case *c, tu_outcome *res);

/* ---- memory objects the library must refuse or see through ---------------------------------- */

/* CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes: sub-buffer origins must be multiples of it. */
size_t tu_sub_buffer_align(clattn_context *ctx);
/* A sub-buffer of parent covering bytes origin .. origin+size-1. Aborts on failure, as tu_alloc. */
cl_mem tu_sub_buffer(cl_mem parent, size_t origin, size_t size);
/* A 2D CL_RGBA CL_FLOAT image of ctx's context holding at least min_bytes; NULL (with a line saying
   so) when the device has no image support: the caller skips that case. Aborts on failure. */
cl_mem tu_image_or_null(clattn_context *ctx, size_t min_bytes);

#endif /* CLATTN_TESTUTIL_H */
