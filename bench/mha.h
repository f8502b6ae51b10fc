/* What the layer entry's files share, and nobody else: the layer's data (mha_layer.c), the CLBlast
 * pipeline (mha_clblast.c), the OpenBLAS layer (mha_cpublas.c). mha.c runs them and reports. */
#ifndef CLATTN_BENCH_MHA_H
#define CLATTN_BENCH_MHA_H

#include "bench/bench.h"

/* BERT-base: B 4, L 512, E 768, 12 heads of 64, self-attention with biases, f32. */
enum { MHA_B = 4, MHA_L = 512, MHA_E = 768, MHA_HEADS = 12, MHA_DH = MHA_E / MHA_HEADS };

/* The layer's inputs on the host and the device, the reference, and the device buffers the
   methods write (activations [B, L, E]; q, k, v and the heads' output o in BSHD). */
typedef struct mha_layer {
    const bench_device *dev;
    clattn_mha_desc desc;          /* clattn's layer; each row sets desc.projections */
    clattn_attention_desc attn;    /* the attention inside it, on BSHD q, k, v */
    float *x, *w_in, *b_in, *w_out, *b_out;
    float *ref;                    /* batch entry 0 of the double-precision layer, [L, E] */
    float *out_host;               /* a device output read back for the check, [L, E] */
    double max_ref;                /* max |ref| */
    clattn_mha_weight_buffers w;
    cl_mem x_dev, out, q, k, v, o;
} mha_layer;

/* Data (seeded), device copies and the reference; 0 on success, else err says why. */
int mha_layer_create(const bench_device *dev, mha_layer *m, char *err, size_t err_len);
void mha_layer_release(mha_layer *m);
/* NaN into the device output, so that a method that writes nothing fails its check. */
int mha_layer_poison(mha_layer *m, char *err, size_t err_len);
/* Compares batch entry 0 of out ([B, L, E] floats, host) with the reference; fills r's check
   fields with the bound tol_rel·max(1, max|ref|). */
void mha_layer_check_host(const mha_layer *m, const float *out, double tol_rel, bench_result *r);
/* The same for the device output m->out. 0 on success. */
int mha_layer_check_device(mha_layer *m, double tol_rel, bench_result *r, char *err,
                           size_t err_len);

/* The parts a baseline times on their own, and the whole layer. */
typedef enum { MHA_IN_PROJ = 0, MHA_ATTENTION, MHA_OUT_PROJ, MHA_WHOLE } mha_part;

#ifdef BENCH_HAVE_CLBLAST
/* The layer from CLBlast alone, on the bench's queue (mha_clblast.c). */
typedef struct mha_clblast mha_clblast;
int mha_clblast_create(mha_layer *m, mha_clblast **out, char *err, size_t err_len);
void mha_clblast_release(mha_clblast *c);
/* Times one part (MHA_WHOLE writes m->out; the attention reads m->q, k, v as they are). */
bench_outcome mha_clblast_measure(mha_clblast *c, mha_part part, const bench_options *opt,
                                  bench_result *r);
/* Fills m->q, k, v with the input projections and waits: realistic inputs for the attention
   timed alone. */
bench_outcome mha_clblast_project_qkv(mha_clblast *c, char *note, size_t note_len);
#endif

/* The layer from OpenBLAS on the host (mha_cpublas.c); a CPU device only, else BENCH_SKIPPED.
   Times one part with the host clock; MHA_WHOLE also checks its output against the reference. */
bench_outcome mha_cpublas_measure(const mha_layer *m, mha_part part, const bench_options *opt,
                                  double tol_rel, bench_result *r);

#endif /* CLATTN_BENCH_MHA_H */
