/* The kernel families' parameters as data, in one place: each parameter's candidates (its search
 * space, in the order the last-resort fallback walks them) and its default per device class
 * {CPU, GPU, accelerator}, with what the defaults were measured on. The family files (flash.c,
 * unfused.c, merge.c) hold the constraints and launches; the order of each table is the order of
 * that family's P_* indices in defaults.h. */
#include "host/attention/defaults.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- flash and flash_split (cl/flash_attention.cl) ------------------------------------------- */

/* Candidate lists start with what the last resort, first_valid(), should fall back to when neither
   the defaults nor any point near them fit (a GPU at a large head_dim): small blocks and
   GPU-style mapping first. */
static const int block_m_candidates[] = {64, 32, 16, 8, 4, 2, 1, 128};
static const int block_n_candidates[] = {32, 16, 8, 64, 128};
static const int vw_candidates[] = {1, 2, 4, 8, 16};
static const int rm_candidates[] = {1, 2, 4};
static const int wpr_candidates[] = {4, 1, 2, 8, 16};
static const int unroll_candidates[] = {4, 2, 1, 8, 16};
static const int lvw_candidates[] = {4, 1, 16};
static const int occ_candidates[] = {1, 2, 4, 8, 16};

/* CPU defaults, measured on PoCL 3.1 on a 2-core AVX-512 EPYC, also with code generated for AVX2
   (POCL_LLVM_CPU_NAME=haswell), in GFLOP/s per CPU-second x 2 (bert / gpt2-causal / llama-gqa):
     VW 16, RM 1, BLOCK_M 128:  181 / 156 / 160   AVX2 132 / 116 / 134   (the default)
     VW 16, RM 2, BLOCK_M 64:   196 / 169 / 203   AVX2  93 /  64 /  86   (spills 16 ymm registers)
     VW 8, RM 2 or 4:           ~120              AVX2 ~125
   so the default holds up on both; the tuner finds the AVX-512 point where it pays. GPU defaults
   follow the usual mapping (scalar lanes, four work-items per row set, 16-byte copies), sized to
   fit 48 KiB of local memory at d = 128; they are unmeasured until a GPU tuning run. */
const clattn_param_def clattn_flash_params[P_COUNT] = {
    /*                                            CPU  GPU  accelerator */
    {"BLOCK_M", block_m_candidates, 8, {128, 32, 32}, 0},
    {"BLOCK_N", block_n_candidates, 5, {32, 16, 16}, 0},
    {"VW", vw_candidates, 5, {16, 1, 1}, 0},
    {"RM", rm_candidates, 3, {1, 1, 1}, 0},
    {"WPR", wpr_candidates, 5, {1, 4, 4}, 0},
    {"UNROLL", unroll_candidates, 5, {4, 4, 4}, 0},
    {"LVW", lvw_candidates, 3, {16, 4, 4}, 0},
    {"SPLIT_OCC", occ_candidates, 5, {2, 4, 4}, 1},   /* host-only: the split count */
};

/* Decode: Hq/Hkv · Lq rows per KV head. On the CPU 8-row vectors cost the same as 4-row ones and
   serve groups of 8 (about 18 GB/s of K/V on the machine above at B=8, Hq=32, Hkv=8, Lk=4096,
   d=128), and 128-key tiles beat 64 by 5-11 % there (half the per-tile softmax and barrier
   work; the tuner picked 128 too). On GPUs 16 work-items share each row set, splitting the keys
   and dv. */
const clattn_param_def clattn_flash_split_params[P_COUNT] = {
    {"BLOCK_M", block_m_candidates, 8, {8, 4, 4}, 0},
    {"BLOCK_N", block_n_candidates, 5, {128, 32, 32}, 0},
    {"VW", vw_candidates, 5, {8, 1, 1}, 0},
    {"RM", rm_candidates, 3, {1, 1, 1}, 0},
    {"WPR", wpr_candidates, 5, {1, 16, 16}, 0},
    {"UNROLL", unroll_candidates, 5, {8, 2, 2}, 0},
    {"LVW", lvw_candidates, 3, {16, 4, 4}, 0},
    {"SPLIT_OCC", occ_candidates, 5, {2, 4, 4}, 1},   /* host-only: the split count */
};

/* flash_decode (cl/flash_decode.cl), decode-shaped problems on CPUs: the same parameter indices
   as flash, so that the split logic serves both, with the meanings that kernel gives them:
   BLOCK_M query rows per work-item (cut to the problem's rows, a power of two), BLOCK_N and VW the
   16 keys and 16 d-lanes of its reduction tree, and no loops for RM, WPR, UNROLL or LVW (1).
   SPLIT_OCC counts single work-items: the keys are split until there are SPLIT_OCC of them a
   compute unit. Measured on PoCL (2-core AVX-512 Xeon, f32, d 128, clattn-bench --shape, one run
   a value; SPLIT_OCC 16 / 4 / 64 / 256): B 8 Hq 32 Hkv 8 Lk 4096 13.3 / 13.7 / 13.8 / 15.0 ms
   (int8 K/V 4.28 / 4.28 / 4.58 / 4.93 ms); B 1 of the same 0.79 / 0.74 / 0.82 / 0.83 ms; one KV
   head over 16384 keys 0.64 / 0.64 / 0.67 / 0.70 ms; 4 positions of B 4 over 2048 keys 6.6 /
   6.2 / 7.4 / 8.1 ms. Chunks cost their partial writes and the merge, and a work-item walks its
   keys fast enough that a few per core balance the load. Only CPUs take this family
   (decode_serves in flash.c); the other columns are never used. */
static const int decode_rows_candidates[] = {16, 8, 4, 2, 1};
static const int decode_lanes_candidates[] = {16};
static const int decode_one_candidates[] = {1};
static const int decode_occ_candidates[] = {16, 4, 1, 64, 256};
const clattn_param_def clattn_flash_decode_params[P_COUNT] = {
    {"BLOCK_M", decode_rows_candidates, COUNT(decode_rows_candidates), {16, 16, 16}, 0},
    {"BLOCK_N", decode_lanes_candidates, 1, {16, 16, 16}, 0},
    {"VW", decode_lanes_candidates, 1, {16, 16, 16}, 0},
    {"RM", decode_one_candidates, 1, {1, 1, 1}, 0},
    {"WPR", decode_one_candidates, 1, {1, 1, 1}, 0},
    {"UNROLL", decode_one_candidates, 1, {1, 1, 1}, 0},
    {"LVW", decode_one_candidates, 1, {1, 1, 1}, 0},
    {"SPLIT_OCC", decode_occ_candidates, COUNT(decode_occ_candidates), {16, 16, 16}, 1},
};

/* ---- qk, pv (cl/qk_scores.cl, cl/pv.cl) and softmax (cl/softmax.cl) ------------------------- */

static const int tile_mn_candidates[] = {8, 16, 32, 64, 128};
static const int tile_k_candidates[] = {4, 8, 16, 32, 64};
static const int wpt_m_candidates[] = {1, 2, 4, 8};
static const int wpt_n_candidates[] = {1, 2, 4, 8, 16};   /* vector widths */
static const int sm_wg_candidates[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
static const int sm_vec_candidates[] = {1, 2, 4, 8, 16};

/* Defaults are {CPU, GPU, ACCELERATOR}. CPU: measured on PoCL (AVX-512, B=4 H=12 L=512): wide
   per-work-item vectors and few work-items per group win, 32x32 tiles of 8 rows x 16 columns per
   work-item (8 work-items) ran Q·Kᵀ at ~50 GFLOP/s and P·V at ~60, against ~30 for 64x64 tiles of
   the same blocks and ~5 for 4x4 blocks. TILE_K 32 balances d = 64/128 against the zero-filled
   slices of d = 40/80. GPU: the usual 64x64 tile, 256 work-items of 4x4. */
const clattn_param_def clattn_qk_params[CLATTN_GEMM_PARAMS] = {
    {"TILE_M", tile_mn_candidates, COUNT(tile_mn_candidates), {32, 64, 32}, 0},
    {"TILE_N", tile_mn_candidates, COUNT(tile_mn_candidates), {32, 64, 32}, 0},
    {"TILE_K", tile_k_candidates, COUNT(tile_k_candidates), {32, 16, 16}, 0},
    {"WPT_M", wpt_m_candidates, COUNT(wpt_m_candidates), {8, 4, 4}, 0},
    {"WPT_N", wpt_n_candidates, COUNT(wpt_n_candidates), {16, 4, 4}, 0},
};

const clattn_param_def clattn_pv_params[CLATTN_GEMM_PARAMS] = {
    {"TILE_M", tile_mn_candidates, COUNT(tile_mn_candidates), {32, 64, 32}, 0},
    {"TILE_N", tile_mn_candidates, COUNT(tile_mn_candidates), {32, 64, 32}, 0},
    {"TILE_K", tile_k_candidates, COUNT(tile_k_candidates), {32, 16, 16}, 0},
    {"WPT_M", wpt_m_candidates, COUNT(wpt_m_candidates), {8, 4, 4}, 0},
    {"WPT_N", wpt_n_candidates, COUNT(wpt_n_candidates), {16, 4, 4}, 0},
};

/* CPU: one work-item per row with 16-wide vectors (a vector exp is ~10x a scalar one on PoCL). */
const clattn_param_def clattn_softmax_params[CLATTN_SOFTMAX_PARAMS] = {
    {"SM_WG", sm_wg_candidates, COUNT(sm_wg_candidates), {1, 128, 64}, 0},
    {"SM_VEC", sm_vec_candidates, COUNT(sm_vec_candidates), {16, 4, 4}, 0},
};

/* ---- merge (cl/merge.cl) ---------------------------------------------------------------------- */

static const int wgs_candidates[] = {32, 64, 128, 256};
static const int vec_candidates[] = {1, 2, 4, 8, 16};

/* The merge streams its parts once, so it only has to keep up with memory: on PoCL (AVX-512, 2 cores)
   VEC 8 runs at about the speed of a buffer copy of the parts, VEC 1 several times slower. The GPU
   default is 16-byte loads in 128-wide groups, unmeasured until a GPU tuning run. */
const clattn_param_def clattn_merge_params[CLATTN_MERGE_PARAMS] = {
    /*                                   CPU  GPU  accelerator */
    {"WGS", wgs_candidates, 4, {64, 128, 64}, 0},
    {"VEC", vec_candidates, 5, {8, 4, 1}, 0},
};

