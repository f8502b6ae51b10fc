/* Fixtures of the multi-head attention layer's tests:
 *   - PyTorch's (tests/data/mha_<name>/, made by tools/make_mha_fixtures.py): manifest.txt lists
 *     "param KEY VALUE" lines and "tensor NAME FILE NDIM D0 D1 ..." lines; each FILE holds exactly
 *     the tensor's float32 values, little-endian, row-major;
 *   - random layers (fx_layer), and running a layer on the device against clattn_mha_reference.
 * Shared by test_mha_reference, test_mha and test_mha_bad_input. Every helper fails the running
 * CMocka test on error (call them from a test).
 *
 * Tolerance of the device layer, F32 (float GEMMs and attention against the double reference):
 *   out      max |out - ref| <= FX_OUT_REL * max(1, max |ref|)
 *   weights  max |w - w_ref| <= FX_WEIGHTS_ABS
 */
#ifndef CLATTN_MHA_FIXTURE_H
#define CLATTN_MHA_FIXTURE_H

#include "host/layer/layer.h"

#include <stddef.h>
#include <stdint.h>

#define FX_MAX 32

typedef struct fx_tensor {
    char name[64];
    int ndim;
    int dims[8];
    size_t n;
    float *data;
} fx_tensor;

typedef struct fixture {
    char pkey[FX_MAX][32];
    long pval[FX_MAX];
    int n_params;
    fx_tensor t[FX_MAX];
    int n_tensors;
} fixture;

/* The data folder: $CLATTN_TEST_DATA, else argv[1], else CLATTN_TEST_DATA_DIR from the build,
   else "tests/data". */
const char *fx_data_dir(int argc, char **argv);
/* Loads <data_dir>/mha_<name>. */
fixture *fx_load(const char *data_dir, const char *name);
void fx_free(fixture *fx);
long fx_param(const fixture *fx, const char *key);
const fx_tensor *fx_find(const fixture *fx, const char *name);
/* The tensor's data, or NULL when the fixture lacks it; expect_n (when not 0) is checked. */
const float *fx_get(const fixture *fx, const char *name, size_t expect_n);
/* The layer's desc from the fixture's params (no mask, no causal mode, F32). */
void fx_desc(const fixture *fx, clattn_mha_desc *d);
/* The layer's weights as the fixture holds them (packed or separate). */
void fx_weights(const fixture *fx, const clattn_mha_shape *s, clattn_mha_weights *w);

/* ---- the layer on the device ----------------------------------------------------------------- */

#define FX_OUT_REL 1e-5
#define FX_WEIGHTS_ABS 1e-5

typedef struct fx_err {
    double err, ref;   /* max |got - want| and max |want| */
    int nan;           /* a NaN where the reference has none */
} fx_err;

/* "auto", "own" or "clblast" (a value out of range: "?"), for labels */
const char *fx_proj_name(clattn_projection_impl impl);

/* max |got - want|, max |want|, and whether a NaN stands where the reference has none */
fx_err fx_compare(const float *got, const float *want, size_t n);

/* A buffer of ctx's OpenCL context holding bytes of data (uninitialised when data is NULL). */
cl_mem fx_upload(clattn_context *ctx, const void *data, size_t bytes);
cl_mem fx_upload_or_null(clattn_context *ctx, const void *data, size_t bytes);
void fx_release(cl_mem m);
/* Waits for the context's queue, then reads bytes of m. */
void fx_read_buffer(clattn_context *ctx, cl_mem m, void *dst, size_t bytes);
/* clattn_mha_forward on buffers uploaded from the host tensors; results read back on success. */
clattn_status fx_forward_buffers(clattn_context *ctx, const clattn_mha_desc *d, const clattn_mha_shape *s,
                                 const clattn_mha_weights *w, const float *xq, const float *xk,
                                 const float *xv, const void *mask, size_t mask_bytes, float *out,
                                 float *weights);

/* A random layer: weights N(0,1)/sqrt(width) (activations stay O(1)), biases N(0,0.01), inputs
   N(0,1); packed weights when packed (needs kdim == vdim == E), separate otherwise. */
typedef struct fx_layer {
    clattn_mha_desc d;
    clattn_mha_shape s;
    float *wq, *wk, *wv, *win, *bin, *wo, *bo, *xq, *xk, *xv;
    clattn_mha_weights w;
    void *mask;
    size_t mask_bytes;
} fx_layer;

void fx_layer_make(fx_layer *L, const clattn_mha_desc *d, int packed, uint64_t seed);
void fx_layer_free(fx_layer *L);
/* A bool mask [B, Lq, Lk] hiding the last pad keys of batch entry 1 (padding) and every key of
   query row 0 of batch entry 0 (a row that sees nothing). */
void fx_layer_padding_mask(fx_layer *L, int pad);
/* PyTorch's key_padding_mask as it comes, [B,Lk] bool, batch entry 1 padded in its last pad keys
   (every query row reads it: mask_rows_broadcast). */
void fx_layer_key_padding(fx_layer *L, int pad);
/* The layer on the device (host API, or buffers when via_buffers) against the reference, held to
   the tolerance above; prints the max errors under label. Self-attention when kdim is 0 and
   Lk == Lq (x_k NULL). */
void fx_check_layer(clattn_context *ctx, const char *label, const fx_layer *L, int via_buffers);

#endif /* CLATTN_MHA_FIXTURE_H */
