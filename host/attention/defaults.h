/* The attention module's parameter tables (defaults.c) and the index of each parameter in them.
 * Private to host/attention/. */
#ifndef CLATTN_ATTENTION_DEFAULTS_H
#define CLATTN_ATTENTION_DEFAULTS_H

#include "host/core/core.h"

enum { P_BLOCK_M, P_BLOCK_N, P_VW, P_RM, P_WPR, P_UNROLL, P_LVW, P_SPLIT_OCC, P_COUNT };
enum { P_TILE_M, P_TILE_N, P_TILE_K, P_WPT_M, P_WPT_N, CLATTN_GEMM_PARAMS };
enum { P_SM_WG, P_SM_VEC, CLATTN_SOFTMAX_PARAMS };
enum { P_WGS, P_VEC, CLATTN_MERGE_PARAMS };

extern const clattn_param_def clattn_flash_params[P_COUNT];
extern const clattn_param_def clattn_flash_split_params[P_COUNT];
extern const clattn_param_def clattn_flash_decode_params[P_COUNT];
extern const clattn_param_def clattn_qk_params[CLATTN_GEMM_PARAMS];
extern const clattn_param_def clattn_pv_params[CLATTN_GEMM_PARAMS];
extern const clattn_param_def clattn_softmax_params[CLATTN_SOFTMAX_PARAMS];
extern const clattn_param_def clattn_merge_params[CLATTN_MERGE_PARAMS];

#endif /* CLATTN_ATTENTION_DEFAULTS_H */
