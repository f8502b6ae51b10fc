/* What the clattn-bench files share. The tool uses the public API only (include/clattn.h), plus
 * OpenCL, CLBlast and OpenBLAS for its baselines. Names here carry the bench_ prefix: they belong
 * to the tool, not to the library. */
#ifndef CLATTN_BENCH_H
#define CLATTN_BENCH_H

#include "clattn.h"

#include <stddef.h>
#include <stdint.h>

/* ---- shapes (suite.c) ------------------------------------------------------------------------ */

typedef struct bench_shape {
    char name[48];
    int B, Hq, Hkv, Lq, Lk, d;   /* dv = d throughout the suite */
    int causal;                  /* bottom-right (FlashAttention >= 2.1, KV-cache decoding) */
    int window;                  /* 0: none; w > 0: a causal sliding window (Mistral's): query i
                                    sees keys i' - w .. i', i' = i + Lk - Lq (window_left w,
                                    window_right 0), so it also implies the causal bound */
} bench_shape;

/* Most shapes a run selects (a suite, or its part that --only names). */
#define BENCH_MAX_SHAPES 16

/* The default suite, or the reduced one of --quick: a static table and its length. */
const bench_shape *bench_suite(int quick, int *count);
/* The first suite shape whose name starts with prefix (the suite's first if none does). */
const bench_shape *bench_suite_find(int quick, const char *prefix);
/* The serving benchmark's decode step (clattn-bench --serving) and the class clattn-tune tunes for
   serving: B sequences (64; 16 with quick) decoding one token each on contexts of log-normal
   lengths (fixed seed; median 1024, longest 16384; 512 and 4096 with quick), Hq 32, Hkv 8, d 128,
   f32, block_size 16. */
#define BENCH_SERVING_MAX_B 64
typedef struct bench_serving_batch {
    int B, Hq, Hkv, d, block_size;
    int lq[BENCH_SERVING_MAX_B], lk[BENCH_SERVING_MAX_B];
} bench_serving_batch;
void bench_serving_decode(int quick, bench_serving_batch *out);
/* Parses "B,Hq,Hkv,Lq,Lk,d[,causal[,window=W]]" (causal: 0/1 or the word "causal"; W >= 0,
   0: none). 0 on success. */
int bench_shape_parse(const char *text, bench_shape *out, char *err, size_t err_len);
/* Keys query row i may see: [*lo, *lo + returned count), under the causal bound and the window. */
int bench_shape_visible(const bench_shape *s, int i, int *lo);
/* FLOPs as the issue counts them: 4·B·Hq·Lq·Lk·d (dv = d), halved for causal; a windowed shape
   counts 4·d per (i, j) pair it sees, exactly. */
double bench_shape_flops(const bench_shape *s);
/* The causal shape a windowed one is measured against: same sizes, causal, no window. */
int bench_shape_is_window_partner(const bench_shape *window, const bench_shape *full);
/* Bytes of K and V one call reads, for the decode bandwidth figure. */
double bench_shape_kv_bytes(const bench_shape *s, size_t elem_size);
/* The float score matrix B·Hq·Lq·Lk·4 that the clblast baseline and the unfused path hold. */
double bench_shape_score_bytes(const bench_shape *s);
/* A decode step: one query row per head; its rows report GB/s of K and V read. */
int bench_shape_is_decode(const bench_shape *s);
/* The clattn descriptor for the shape (BHSD, explicit scale 1/sqrt(d)). */
void bench_shape_desc(const bench_shape *s, clattn_dtype dtype, clattn_path path,
                      clattn_attention_desc *desc);

/* ---- storage types (data.c) ----------------------------------------------------------------- */

/* The storage types clattn's paths run with, indexed by clattn_dtype (F32, F16, BF16): f32 always,
   f16 with --f16, bf16 with --bf16. The baselines are float only. */
#define BENCH_DTYPE_COUNT 3

const char *bench_dtype_name(clattn_dtype dtype);    /* "f32", "f16", "bf16" */
size_t bench_dtype_size(clattn_dtype dtype);         /* bytes of one element */
/* x as the storage type holds it: rounded to nearest even into half or bfloat16, then widened
   back (exact); x itself for f32. */
float bench_dtype_round(clattn_dtype dtype, float x);

/* ---- methods and results --------------------------------------------------------------------- */

typedef enum {
    BENCH_FUSED = 0,    /* clattn, desc.path = CLATTN_PATH_FUSED */
    BENCH_UNFUSED,      /* clattn, desc.path = CLATTN_PATH_UNFUSED */
    BENCH_CLBLAST,      /* CLBlast GEMMs + a plain softmax kernel on the same queue */
    BENCH_CPUBLAS,      /* OpenBLAS on the host, CPU devices only */
    BENCH_METHOD_COUNT
} bench_method;

extern const char *const bench_method_names[BENCH_METHOD_COUNT];

typedef enum {
    BENCH_OK = 0,
    BENCH_SKIPPED,      /* not run, by rule (does not fit, not a CPU, not built, --only) */
    BENCH_UNSUPPORTED,  /* clattn said CLATTN_UNSUPPORTED */
    BENCH_FAILED        /* any other error */
} bench_outcome;

typedef struct bench_stats {
    double min, median, max;
} bench_stats;

typedef struct bench_result {
    bench_outcome outcome;
    char note[512];              /* why skipped, unsupported or failed */
    const char *dtype;           /* storage the row is for: "f32", "f16" or "bf16" */
    int reps;                    /* timed samples behind the statistics */
    bench_stats kernel_s;        /* profiling events (host clock for cpu-blas) */
    bench_stats wall_s;          /* enqueue to clFinish, host clock */
    double gflops;               /* from the median kernel time */
    double gbps;                 /* K and V bytes over the median kernel time (decode), else 0 */
    int checked;                 /* the output was compared with the reference */
    double max_err, max_ref, tol;
    int err_ok;
    int has_scratch;
    size_t scratch_bytes;        /* clattn_context_scratch_bytes() after the call (clattn paths) */
} bench_result;

/* ---- options (main.c) ------------------------------------------------------------------------ */

typedef struct bench_options {
    const char *device;          /* selector, as clattn_context_create takes it; NULL: default */
    const char *json_path;
    int quick, no_tuning;
    int dtypes[BENCH_DTYPE_COUNT];   /* by clattn_dtype: the clattn paths run with it (F32 always) */
    int mha_only;                /* --mha: the multi-head layer entry alone */
    int variants_only;           /* --variants: the variants' cost entry alone (variants.c) */
    int kv_int8_only;            /* --kv-int8: int8 K/V decoding against f32/f16 (kv_int8.c) */
    int serving_only;            /* --serving: ragged and paged serving steps (serving.c) */
    int reps;                    /* fixed sample count; 0: calibrate */
    int only[BENCH_METHOD_COUNT];
    int has_custom;
    bench_shape custom;
    /* What the run measures: the suite, or the shapes --only names, or the custom shape. */
    int n_shapes;
    const bench_shape *shapes[BENCH_MAX_SHAPES];
    int shapes_named;            /* --only named shapes: the suite is not run whole */
    double target_s;             /* time one entry's timed samples should fill */
    int min_reps, max_reps;
} bench_options;

/* ---- device (device.c) ----------------------------------------------------------------------- */

typedef struct bench_device {
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;      /* ours, in order, CL_QUEUE_PROFILING_ENABLE */
    cl_device_type type;
    char name[256], vendor[256], driver[128], version[128], platform[256];
    cl_uint compute_units;
    cl_ulong max_alloc, global_mem;
    size_t max_work_group;
    int events_report_zero;      /* profiling events time nothing: kernel times are wall times */
} bench_device;

/* Picks the device through clattn's own selector (so --device means what CLATTN_DEVICE means) and
   creates our context and profiling queue on it. Returns the clattn status of the lookup. */
clattn_status bench_device_open(const char *selector, bench_device *dev, char *err, size_t err_len);
void bench_device_close(bench_device *dev);
const char *bench_device_type_name(cl_device_type type);

/* ---- problem data (data.c) ------------------------------------------------------------------- */

/* One storage type's device copies of a shape's tensors. */
typedef struct bench_buffers {
    cl_mem q, k, v, out;
} bench_buffers;

typedef struct bench_data {
    bench_shape shape;
    size_t nq, nk, nv, no;       /* element counts */
    float *q, *k, *v;            /* host inputs; every value is exact in half precision, not
                                    always in bfloat16 (the check rounds them as BF16 reads them) */
    float *out;                  /* host copy of the output under check */
    bench_buffers buf[BENCH_DTYPE_COUNT];   /* by clattn_dtype; NULL for a type not selected */
} bench_data;

/* Host data (seeded by the shape) and its device copies in each storage type dtypes selects
   (F32 always: the baselines read it). */
int bench_data_create(const bench_device *dev, const bench_shape *s,
                      const int dtypes[BENCH_DTYPE_COUNT], bench_data *data, char *err,
                      size_t err_len);
void bench_data_release(bench_data *data);
/* Fills the device output in dtype with NaN, so a method that writes nothing fails. */
int bench_data_poison(const bench_device *dev, const bench_data *data, clattn_dtype dtype,
                      char *err, size_t err_len);
/* Reads the device output in dtype into data->out as float. */
int bench_data_read_out(const bench_device *dev, bench_data *data, clattn_dtype dtype, char *err,
                        size_t err_len);

uint16_t bench_float_to_half(float f);
float bench_half_to_float(uint16_t h);
uint16_t bench_float_to_bf16(float f);   /* round to nearest even, NaN kept a NaN */
float bench_bf16_to_float(uint16_t b);

/* ---- timing (timing.c) ----------------------------------------------------------------------- */

/* 1 when the queue's profiling events report 0 for a command that has run (Mesa's rusticl 22.3):
   bench_time_device then reports the wall clock as the kernel time. */
int bench_events_report_zero(cl_command_queue queue);

/* One execution of a method: kernel seconds and wall seconds. The note explains a failure. */
typedef bench_outcome (*bench_run_fn)(void *state, double *kernel_s, double *wall_s, char *note,
                                      size_t note_len);
/* What a device method enqueues between the two markers. */
typedef bench_outcome (*bench_enqueue_fn)(void *state, char *note, size_t note_len);

double bench_now(void);   /* seconds, monotonic */
/* Brackets enqueue() with markers on queue, waits with clFinish; kernel time is START of the
   first marker to END of the second, wall time is the host clock around the whole. */
bench_outcome bench_time_device(cl_command_queue queue, bench_enqueue_fn enqueue, void *state,
                                double *kernel_s, double *wall_s, char *note, size_t note_len);
/* Warm-up, calibration, then the timed samples; fills reps, kernel_s and wall_s of r. */
bench_outcome bench_measure(bench_run_fn run, void *state, const bench_options *opt,
                            bench_result *r);

/* ---- checking (check.c) ---------------------------------------------------------------------- */

/* Compares data->out with clattn_attention_reference on a sample of rows, run on the inputs as
   storage type dtype holds them (the values the method read); tol_rel scales max(1, max|ref|).
   Fills checked, max_err, max_ref, tol and err_ok. */
int bench_check(const bench_data *data, clattn_dtype dtype, double tol_rel, bench_result *r,
                char *err, size_t err_len);

/* ---- methods (run_clattn.c, baseline_clblast.c, baseline_cpublas.c) -------------------------- */

/* Each runs one method on one shape end to end: setup, bench_measure, output read into
   data->out. The caller checks the output. clattn runs in storage type dtype, the baselines in
   float. */
/* desc timed on ctx with buf's tensors (the variants' costs: several descs on one context). */
bench_outcome bench_time_clattn_desc(clattn_context *ctx, const clattn_attention_desc *desc,
                                     const bench_buffers *buf, const bench_options *opt,
                                     bench_result *r);
/* The setup of an entry that times several descs on one context: s's data in dtypes and a context
   on dev's queue, tuning as opt says. On failure prints why and returns -1 with nothing held. */
int bench_entry_open(const bench_device *dev, const bench_options *opt, const bench_shape *s,
                     const int dtypes[BENCH_DTYPE_COUNT], bench_data *data, clattn_context **ctx);
/* Sorts v (n > 0) and returns its median. */
double bench_median(double *v, int n);

/* --variants (variants.c): what soft-capping, ALiBi and sinks cost over plain attention on bert
   (bert-q with --quick), fused, f32. 0 when every variant ran. */
int bench_variants_entry(const bench_device *dev, const bench_options *opt);
/* --kv-int8 (kv_int8.c): decode-step time, K/V bytes, GB/s and tokens/s with int8 K/V against f32
   and f16 storage, the int8 outputs checked against the reference. 0 when all ran and passed. */
int bench_kv_int8_entry(const bench_device *dev, const bench_options *opt);
/* --serving (serving.c): paged decode and chunked prefill against padded dense calls, a dense call
   per sequence and a uniform batch of the same K/V bytes; ragged prefill against dense. 0 when
   every call ran. */
int bench_serving_entry(const bench_device *dev, const bench_options *opt);
/* --mpi, under mpiexec (mpi.c; built with MPI only): its own flow, from MPI_Init to MPI_Finalize. */
int bench_mpi_main(int argc, char **argv);
bench_outcome bench_run_clattn(const bench_device *dev, bench_data *data, clattn_path path,
                               clattn_dtype dtype, const bench_options *opt, bench_result *r);
bench_outcome bench_run_clblast(const bench_device *dev, bench_data *data,
                                const bench_options *opt, bench_result *r);
bench_outcome bench_run_cpublas(const bench_device *dev, bench_data *data,
                                const bench_options *opt, bench_result *r);
/* The row softmax kernel of the clblast baseline (OpenCL C source, -DWG=work-group size). */
extern const char bench_row_softmax_source[];

/* The attention of the cpu-blas baseline on the host (baseline_cpublas.c, built with OpenBLAS only):
   Q·Kᵀ·scale, a row softmax with s's causal mask, P·V, per (batch, kv head); q, k, v and out in
   layout (BHSD or BSHD, dv = d), scores: (Hq/Hkv)·Lq·Lk floats of scratch. */
void bench_cpublas_attention(const bench_shape *s, clattn_layout layout, const float *q,
                             const float *k, const float *v, float *out, float *scores);

/* ---- reference rates (peak.c) ---------------------------------------------------------------- */

typedef struct bench_rate {
    bench_outcome outcome;
    char note[256];              /* on success what was measured, else why not */
    double gflops;
} bench_rate;

/* The device's fp32 FMA rate: independent fma chains on vector accumulators over every compute
   unit, timed with events; the best of a few vector widths. */
void bench_fma_peak(const bench_device *dev, bench_rate *rate);
/* OpenBLAS SGEMM C[m,n] = A[m,k]·W[n,k]ᵀ on the host, with the device's compute units as threads
   (host clock, median); BENCH_SKIPPED in a build without OpenBLAS. */
void bench_openblas_sgemm_nt(const bench_device *dev, int m, int n, int k, const bench_options *opt,
                             bench_rate *rate);

/* ---- the multi-head layer entry (mha.c and mha_*.c) ------------------------------------------ */

#define BENCH_MHA_MAX_ROWS 16

/* One timed row of the layer entry: a whole layer or a part of one. */
typedef struct bench_mha_row {
    const char *key;             /* stable name for --json: "clattn-tuned-auto", "cpu-blas-layer" */
    const char *label;           /* as the table prints it */
    const char *part;            /* "layer", "attention", "q,k,v projections", "out projection" */
    double flops;                /* of what the row times */
    bench_result r;              /* gflops from the median; the check on whole layers */
    /* whole layers: the projections (clattn: layer - its attention timed alone on the same
       context; baselines: their projection parts), the attention's share of the layer, and the
       layer's speedup over the two baselines' layers (baseline median / this median; 0: n/a) */
    double proj_s, proj_gflops, attention_share, over_cpublas, over_clblast;
} bench_mha_row;

typedef struct bench_mha_report {
    int ran;                     /* the entry ran (not skipped for want of CLBlast) */
    int B, L, E, heads;
    double proj_flops, attention_flops;
    int n_rows;
    bench_mha_row rows[BENCH_MHA_MAX_ROWS];
    bench_rate fma_peak;         /* the device's */
    bench_rate sgemm;            /* OpenBLAS on one projection's GEMM shape (B·L x E x E) */
} bench_mha_report;

/* B=4, L=512, E=768, 12 heads: clattn_mha_forward with each projection backend, on a tuned context
   and one with tuning off, against the same layer from CLBlast alone and from OpenBLAS; the
   attention alone, the device's FMA peak and OpenBLAS's SGEMM on the projection shape. Prints its
   own tables and fills rep. Returns 0 when every clattn layer that ran met its tolerance and no
   row failed. */
int bench_mha_entry(const bench_device *dev, const bench_options *opt, bench_mha_report *rep);

/* ---- output (report.c, report_json.c) -------------------------------------------------------- */

typedef struct bench_entry {
    bench_shape shape;
    bench_result result[BENCH_DTYPE_COUNT][BENCH_METHOD_COUNT];   /* [clattn_dtype][method] */
    int ran[BENCH_METHOD_COUNT];   /* selected by --only */
    int dtypes[BENCH_DTYPE_COUNT]; /* the run's storage types (bench_options.dtypes) */
} bench_entry;

void bench_report_header(const bench_device *dev, const bench_options *opt);
void bench_report_shape(const bench_entry *e, const bench_options *opt);
void bench_report_row(const bench_entry *e, clattn_dtype dtype, bench_method m);
/* A line per storage type that ran: each clattn path against the (float) baselines. */
void bench_report_speedups(const bench_entry *e);
/* A windowed entry's fused median over its causal partner's: the index of the partner in
   entries (-1: none ran) and the ratio (partner / windowed; 0 when either did not run). */
double bench_window_speedup(const bench_entry *entries, int n, int i, int *partner);
/* After the table: a line per windowed entry. */
void bench_report_window_speedups(const bench_entry *entries, int n);
/* baseline median (float) / clattn median in dtype, or 0 when either did not run. */
double bench_speedup(const bench_entry *e, clattn_dtype dtype, bench_method clattn,
                     bench_method baseline);
/* A decode entry's fused path in a 16-bit storage type against its own f32 run: tokens/s ratio
   (f32 median / dtype median), 0 when either did not run or the shape is not a decode step. */
double bench_decode_storage_ratio(const bench_entry *e, clattn_dtype dtype);
/* After the table: a line per decode entry of a run with a 16-bit storage type. */
void bench_report_decode_storage(const bench_entry *entries, int n);
/* mha: the layer entry's report, NULL when it did not run. */
int bench_report_json(const char *path, const bench_device *dev, const bench_options *opt,
                      const bench_entry *entries, int n, const bench_mha_report *mha, int passed,
                      char *err, size_t err_len);

#endif /* CLATTN_BENCH_H */
