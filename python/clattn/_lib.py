"""The C library through ctypes: where it is, its structs and its functions' prototypes.

Only this module knows the C declarations (include/clattn.h); the rest of the package calls
``LIB.clattn_*`` with the structs defined here. python/tests/test_abi.py compiles a C program that
prints every struct's size and field offsets and compares them with these definitions, so a field
added to the header without its twin here fails the tests instead of corrupting memory.
"""
import ctypes
import os

c_int, c_float, c_double, c_long = ctypes.c_int, ctypes.c_float, ctypes.c_double, ctypes.c_long
c_ulong, c_size_t, c_char_p, c_void_p = ctypes.c_ulong, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p
P_float = ctypes.POINTER(c_float)
P_int = ctypes.POINTER(c_int)
cl_mem = c_void_p

# enums of clattn.h (C enums are ints)
SUCCESS, INVALID_ARGUMENT, UNSUPPORTED, OUT_OF_MEMORY, DEVICE_NOT_FOUND, BUILD_FAILED, \
    OPENCL_ERROR, IO_ERROR = range(8)
F32, F16, BF16 = range(3)
LAYOUT_BHSD, LAYOUT_BSHD = range(2)
CAUSAL_NONE, CAUSAL_BOTTOM_RIGHT, CAUSAL_TOP_LEFT = range(3)
MASK_NONE, MASK_ADDITIVE_F32, MASK_ADDITIVE_F16, MASK_BOOL_U8 = range(4)
PATH_AUTO, PATH_UNFUSED, PATH_FUSED = range(3)
PROJ_AUTO, PROJ_OWN, PROJ_CLBLAST = range(3)
KV_SAME, KV_INT8 = range(2)
KV_KEYS, KV_VALUES = range(2)
SWITCH_DEFAULT, SWITCH_ON, SWITCH_OFF = range(3)
DEVICE_CLASS_REPORTED, DEVICE_CLASS_CPU, DEVICE_CLASS_GPU, DEVICE_CLASS_ACCELERATOR = range(4)
MAP_MEAN, MAP_GRID = -1, -2
TUNE_MAX_FAMILIES = 8

LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class ContextOptions(ctypes.Structure):
    _fields_ = [("ignore_environment", c_int), ("cache", c_int), ("cache_dir", c_char_p),
                ("tuning", c_int), ("autotune", c_int), ("autotune_budget_s", c_double),
                ("kernel_dir", c_char_p), ("binary_dir", c_char_p), ("log", LOG_FN),
                ("log_user", c_void_p), ("log_plans", c_int), ("device_class", c_int),
                ("max_local_mem_bytes", c_ulong), ("max_work_group_size", c_ulong)]


class AttentionDesc(ctypes.Structure):
    _fields_ = [("batch", c_int), ("heads_q", c_int), ("heads_kv", c_int), ("seq_q", c_int),
                ("seq_kv", c_int), ("head_dim", c_int), ("head_dim_v", c_int), ("scale", c_float),
                ("dtype", c_int), ("layout", c_int), ("causal", c_int), ("mask_type", c_int),
                ("mask_batch_stride", c_long), ("mask_head_stride", c_long),
                ("mask_row_stride", c_long), ("path", c_int), ("mask_rows_broadcast", c_int),
                ("window", c_int), ("window_left", c_int), ("window_right", c_int),
                ("softcap", c_float), ("alibi_slopes", P_float), ("sinks", P_float),
                ("kv_storage", c_int), ("k_scale", cl_mem), ("v_scale", cl_mem),
                ("k_scale_host", P_float), ("v_scale_host", P_float)]


class TensorSizes(ctypes.Structure):
    _fields_ = [(n, c_size_t) for n in ("q", "k", "v", "out", "mask", "probs", "lse")]


class VarlenDesc(ctypes.Structure):
    _fields_ = [("batch", c_int), ("heads_q", c_int), ("heads_kv", c_int), ("head_dim", c_int),
                ("head_dim_v", c_int), ("scale", c_float), ("dtype", c_int), ("causal", c_int),
                ("total_q", c_int), ("max_seqlen_q", c_int), ("max_seqlen_k", c_int),
                ("total_k", c_int), ("block_size", c_int), ("num_blocks", c_int),
                ("max_blocks_per_seq", c_int), ("check_indices", c_int), ("window", c_int),
                ("window_left", c_int), ("window_right", c_int), ("softcap", c_float),
                ("alibi_slopes", P_float), ("sinks", P_float), ("kv_storage", c_int),
                ("cu_seqlens_q", cl_mem), ("cu_seqlens_k", cl_mem), ("seqlens_k", cl_mem),
                ("block_table", cl_mem), ("k_scale", cl_mem), ("v_scale", cl_mem),
                ("cu_seqlens_q_host", P_int), ("cu_seqlens_k_host", P_int),
                ("seqlens_k_host", P_int), ("block_table_host", P_int),
                ("k_scale_host", P_float), ("v_scale_host", P_float)]


class MhaDesc(ctypes.Structure):
    _fields_ = [("batch", c_int), ("seq_q", c_int), ("seq_kv", c_int), ("embed_dim", c_int),
                ("kdim", c_int), ("vdim", c_int), ("heads_q", c_int), ("heads_kv", c_int),
                ("scale", c_float), ("in_bias", c_int), ("out_bias", c_int), ("causal", c_int),
                ("mask_type", c_int), ("mask_batch_stride", c_long), ("mask_head_stride", c_long),
                ("mask_row_stride", c_long), ("dtype", c_int), ("path", c_int),
                ("mask_rows_broadcast", c_int), ("projections", c_int), ("window", c_int),
                ("window_left", c_int), ("window_right", c_int), ("softcap", c_float),
                ("alibi_slopes", P_float), ("sinks", P_float)]


class MhaWeights(ctypes.Structure):
    _fields_ = [(n, P_float) for n in ("in_proj_weight", "q_proj_weight", "k_proj_weight",
                                       "v_proj_weight", "in_proj_bias", "out_proj_weight",
                                       "out_proj_bias")]


class AttentionMapDesc(ctypes.Structure):
    _fields_ = [("batch", c_int), ("heads", c_int), ("seq_q", c_int), ("seq_kv", c_int),
                ("batch_index", c_int), ("head", c_int), ("q_labels", ctypes.POINTER(c_char_p)),
                ("k_labels", ctypes.POINTER(c_char_p)), ("title", c_char_p), ("cell_px", c_int),
                ("vmin", c_float), ("vmax", c_float), ("zero_as_value", c_int)]


class TuneProgressInfo(ctypes.Structure):
    _fields_ = [("family", c_char_p), ("family_index", c_int), ("n_families", c_int),
                ("tried", c_int), ("failed", c_int), ("params", c_char_p),
                ("candidate_ms", c_double), ("default_ms", c_double), ("best_ms", c_double),
                ("elapsed_s", c_double), ("budget_s", c_double)]


TUNE_PROGRESS_FN = ctypes.CFUNCTYPE(None, c_void_p, ctypes.POINTER(TuneProgressInfo))


class TuneOptions(ctypes.Structure):
    _fields_ = [("budget_s", c_double), ("max_candidates", c_int), ("seed", ctypes.c_ulonglong),
                ("repeats", c_int), ("families", c_char_p), ("no_save", c_int),
                ("progress", TUNE_PROGRESS_FN), ("progress_user", c_void_p)]


class TuneFamilyReport(ctypes.Structure):
    _fields_ = [("family", ctypes.c_char * 24), ("space", c_long), ("valid", c_long),
                ("tried", c_int), ("failed", c_int), ("default_ms", c_double),
                ("best_ms", c_double), ("default_params", ctypes.c_char * 160),
                ("best_params", ctypes.c_char * 160), ("first_failure", ctypes.c_char * 256)]


class TuneReport(ctypes.Structure):
    _fields_ = [("path", c_int), ("n_families", c_int),
                ("families", TuneFamilyReport * TUNE_MAX_FAMILIES), ("default_ms", c_double),
                ("best_ms", c_double), ("elapsed_s", c_double), ("timed_with_events", c_int),
                ("saved", c_int), ("note", ctypes.c_char * 512)]


GROUP_MAX = 16
SPLIT_AUTO, SPLIT_HEADS, SPLIT_KEYS = range(3)


class GroupPlan(ctypes.Structure):
    _fields_ = [("split", c_int), ("n", c_int), ("units", c_int),
                ("first", c_int * (GROUP_MAX + 1)), ("share", c_double * GROUP_MAX),
                ("measured", c_int)]


class CacheInfo(ctypes.Structure):
    _fields_ = [("enabled", c_int), ("tuning_enabled", c_int), ("dir", c_char_p),
                ("tuning_file", c_char_p), ("identity", c_char_p), ("tuning_entries", c_size_t),
                ("programs_compiled", c_ulong), ("programs_loaded", c_ulong)]


STRUCTS = {"clattn_context_options": ContextOptions, "clattn_attention_desc": AttentionDesc,
           "clattn_tensor_sizes": TensorSizes, "clattn_varlen_desc": VarlenDesc,
           "clattn_mha_desc": MhaDesc, "clattn_mha_weights": MhaWeights,
           "clattn_attention_map_desc": AttentionMapDesc,
           "clattn_tune_progress_info": TuneProgressInfo, "clattn_tune_options": TuneOptions,
           "clattn_tune_family_report": TuneFamilyReport, "clattn_tune_report": TuneReport,
           "clattn_cache_info": CacheInfo, "clattn_group_plan": GroupPlan}

_P = ctypes.POINTER
_ctx = c_void_p
_PROTOTYPES = {
    "clattn_status_string": (c_char_p, [c_int]),
    "clattn_version": (c_char_p, []),
    "clattn_context_create_with_options": (c_int, [c_char_p, _P(ContextOptions), _P(c_void_p)]),
    "clattn_context_create_from_queue_with_options": (c_int, [c_void_p, _P(ContextOptions),
                                                              _P(c_void_p)]),
    "clattn_context_release": (None, [_ctx]),
    "clattn_context_queue": (c_void_p, [_ctx]),
    "clattn_context_cl_context": (c_void_p, [_ctx]),
    "clattn_context_device": (c_void_p, [_ctx]),
    "clattn_context_device_name": (c_char_p, [_ctx]),
    "clattn_context_last_error_copy": (c_size_t, [_ctx, c_char_p, c_size_t]),
    "clattn_context_last_warning": (c_char_p, [_ctx]),
    "clattn_context_set_tuning": (None, [_ctx, c_int]),
    "clattn_context_scratch_bytes": (c_size_t, [_ctx]),
    "clattn_attention": (c_int, [_ctx, _P(AttentionDesc)] + [cl_mem] * 7),
    "clattn_attention_host": (c_int, [_ctx, _P(AttentionDesc)] + [c_void_p] * 7),
    "clattn_attention_reference": (c_int, [_P(AttentionDesc)] + [c_void_p] * 7),
    "clattn_attention_sizes": (c_int, [_P(AttentionDesc), _P(TensorSizes)]),
    "clattn_plan_describe": (c_int, [_ctx, _P(AttentionDesc), c_int, c_char_p, c_size_t]),
    "clattn_quantize_kv_host": (c_int, [_P(AttentionDesc), c_int, c_void_p, c_void_p, c_void_p]),
    "clattn_quantize_kv": (c_int, [_ctx, _P(AttentionDesc), c_int, cl_mem, cl_mem, cl_mem]),
    "clattn_attention_varlen": (c_int, [_ctx, _P(VarlenDesc)] + [cl_mem] * 5),
    "clattn_attention_varlen_host": (c_int, [_ctx, _P(VarlenDesc)] + [c_void_p] * 5),
    "clattn_attention_varlen_reference": (c_int, [_P(VarlenDesc)] + [c_void_p] * 5
                                          + [c_char_p, c_size_t]),
    "clattn_varlen_sizes": (c_int, [_P(VarlenDesc), _P(TensorSizes), _P(c_size_t)]),
    "clattn_reshape_and_cache": (c_int, [_ctx, _P(VarlenDesc), c_int] + [cl_mem] * 5),
    "clattn_mha_forward_host": (c_int, [_ctx, _P(MhaDesc), _P(MhaWeights)] + [c_void_p] * 6),
    "clattn_mha_reference": (c_int, [_P(MhaDesc), _P(MhaWeights)] + [c_void_p] * 6
                             + [c_char_p, c_size_t]),
    "clattn_attention_map_png": (c_int, [_ctx, _P(AttentionMapDesc), c_void_p, c_char_p]),
    "clattn_attention_map_rgb": (c_int, [_ctx, _P(AttentionMapDesc), c_void_p, c_void_p, c_size_t,
                                         _P(c_int), _P(c_int)]),
    "clattn_tune": (c_int, [_ctx, _P(AttentionDesc), _P(TuneOptions), _P(TuneReport)]),
    "clattn_tune_varlen": (c_int, [_ctx, _P(VarlenDesc), _P(TuneOptions), _P(TuneReport)]),
    "clattn_context_cache_info": (c_int, [_ctx, _P(CacheInfo)]),
    "clattn_group_create": (c_int, [c_int, _P(c_char_p), _P(ContextOptions), _P(c_void_p), c_char_p,
                                    c_size_t]),
    "clattn_group_create_from_contexts": (c_int, [c_int, _P(c_void_p), _P(c_void_p)]),
    "clattn_group_release": (None, [c_void_p]),
    "clattn_group_context": (c_void_p, [c_void_p, c_int]),
    "clattn_group_size": (c_int, [c_void_p]),
    "clattn_group_last_error": (c_char_p, [c_void_p]),
    "clattn_group_plan_for": (c_int, [c_void_p, _P(AttentionDesc), c_int, c_int, _P(GroupPlan)]),
    "clattn_group_attention_host": (c_int, [c_void_p, _P(AttentionDesc), c_int] + [c_void_p] * 7),
    "clattn_group_calibrate": (c_int, [c_void_p, _P(AttentionDesc), c_int, _P(c_double)]),
    "clattn_tuning_entry_string": (c_int, [_ctx, c_size_t, c_char_p, c_size_t]),
    "clattn_cache_clear": (c_int, [_ctx, c_int]),
}


def library_path():
    """The shared library this package loads: $CLATTN_LIBRARY, else the one the meson build
    recorded in _paths.py (the build tree's, or the installed one), else the loader's search."""
    if os.environ.get("CLATTN_LIBRARY"):
        return os.environ["CLATTN_LIBRARY"]
    try:
        from . import _paths
    except ImportError:   # the source folder itself on sys.path: no build recorded a library
        return "libclattn.so.0"
    return _paths.LIBRARY


def _load():
    lib = ctypes.CDLL(library_path())
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


LIB = _load()
