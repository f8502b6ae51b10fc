"""From Python arguments to a clattn_attention_desc: shapes, masks, causal modes and variants.

One place turns the keyword arguments that ``Context.attention``, ``attention_reference``,
``Context.plan`` and ``Context.tune`` share into the C descriptor, so that they agree on every
convention (layouts, PyTorch's bool masks, ``causal=True`` meaning PyTorch's top-left mask).
"""
import numpy as np

from . import _lib
from ._arrays import Host, c_int, float_array, strided
from .errors import invalid

_LAYOUTS = {"bhsd": _lib.LAYOUT_BHSD, "bshd": _lib.LAYOUT_BSHD}
_PATHS = {"auto": _lib.PATH_AUTO, "fused": _lib.PATH_FUSED, "unfused": _lib.PATH_UNFUSED}


def causal_mode(causal):
    """False/None: none; True or "top_left": PyTorch's is_causal (query i sees keys 0..i);
    "bottom_right": FlashAttention's (the last query sees every key), what decoding needs."""
    if causal is None or causal is False or causal == "none":
        return _lib.CAUSAL_NONE
    if causal is True or causal == "top_left":
        return _lib.CAUSAL_TOP_LEFT
    if causal == "bottom_right":
        return _lib.CAUSAL_BOTTOM_RIGHT
    raise invalid("causal must be False, True (= \"top_left\"), \"top_left\" or \"bottom_right\", "
                  "not %r" % (causal,))


def choice(value, table, name):
    try:
        return table[value]
    except (KeyError, TypeError):
        raise invalid("%s must be one of %s, not %r" % (name, ", ".join(map(repr, table)), value)) \
            from None


def scale_value(scale):
    if scale is None:
        return 0.0   # the library's default, 1/sqrt(d)
    s = float(scale)
    # checked as the float32 the library stores: 1e-50 would become 0 there (the default) and
    # 1e39 inf. 0 itself is refused too, though PyTorch takes it: the library's 0 means "default".
    f = np.float32(s) if np.isfinite(s) and abs(s) < 3.5e38 else np.float32(np.inf)
    if f == 0 or not np.isfinite(f):
        raise invalid("scale must be finite and non-zero as a float32 (None: 1/sqrt(head_dim)), "
                      "not %r" % scale)
    return float(f)


def set_variants(desc, keep, heads_q, window=None, softcap=None, alibi_slopes=None, sinks=None):
    """The variants of a desc (attention, varlen or layer alike). keep holds the host arrays the
    desc points to, for as long as the desc is used."""
    if window is not None:
        try:
            left, right = (c_int(w, "window", low=-2 ** 31) for w in window)   # C checks the rest
        except (TypeError, ValueError):
            raise invalid("window must be a pair (left, right) of ints, -1 for unbounded, not %r"
                          % (window,)) from None
        desc.window, desc.window_left, desc.window_right = 1, left, right
    if softcap is not None:
        desc.softcap = float(softcap)
        if not desc.softcap > 0 or not np.isfinite(desc.softcap):
            raise invalid("softcap must be finite and > 0 (None: no soft-capping), not %r" % softcap)
    slopes = float_array(alibi_slopes, "alibi_slopes", (heads_q,))
    if slopes is not None:
        keep.append(slopes)
        desc.alibi_slopes = slopes.ctypes.data_as(_lib.P_float)
    sink = float_array(sinks, "sinks", (heads_q,))
    if sink is not None:
        keep.append(sink)
        desc.sinks = sink.ctypes.data_as(_lib.P_float)


class Dims:
    """The problem's sizes read off q, k and v for a layout."""

    def __init__(self, q_shape, k_shape, v_shape, layout):
        for name, s in (("q", q_shape), ("k", k_shape), ("v", v_shape)):
            if len(s) != 4:
                raise invalid("%s has shape %s; attention takes 4-D tensors, %s" % (
                    name, tuple(s), "[B, H, L, d] (layout \"bhsd\")" if layout == "bhsd"
                    else "[B, L, H, d] (layout \"bshd\")"))
        if layout == "bhsd":
            (self.B, self.Hq, self.Lq, self.d), (bk, hk, lk, dk), (bv, hv, lv, self.dv) = \
                q_shape, k_shape, v_shape
        else:
            (self.B, self.Lq, self.Hq, self.d), (bk, lk, hk, dk), (bv, lv, hv, self.dv) = \
                q_shape, k_shape, v_shape
        self.Hkv, self.Lk = hk, lk
        for name, value, low in (("batch", self.B, 0), ("heads", self.Hq, 1), ("heads of k", hk, 1),
                                 ("query length", self.Lq, 0), ("key length", lk, 0),
                                 ("head_dim", self.d, 1), ("head_dim of v", self.dv, 1)):
            c_int(value, name, low)   # C would read 0 as "default", and wrap a larger one
        if (bk, bv) != (self.B, self.B) or hv != hk or lv != lk or dk != self.d:
            raise invalid("shapes do not agree: q %s, k %s, v %s (layout %r): k and v need q's "
                          "batch, k q's head_dim, and v k's heads and length"
                          % (tuple(q_shape), tuple(k_shape), tuple(v_shape), layout))
        if self.Hkv < 1 or self.Hq % self.Hkv:
            raise invalid("q's %d heads are not a multiple of k's %d (grouped-query attention "
                          "needs Hq %% Hkv == 0)" % (self.Hq, self.Hkv))
        self.layout = layout

    def out_shape(self):
        if self.layout == "bhsd":
            return (self.B, self.Hq, self.Lq, self.dv)
        return (self.B, self.Lq, self.Hq, self.dv)


def mask_type_of(dtype, name="mask"):
    if dtype in ("bool", "uint8"):
        return _lib.MASK_BOOL_U8
    if dtype == "float32":
        return _lib.MASK_ADDITIVE_F32
    if dtype == "float16":
        return _lib.MASK_ADDITIVE_F16
    raise invalid("%s has dtype %s: bool (True = take part, as PyTorch's scaled_dot_product_"
                  "attention), uint8 (nonzero = take part), or float32/float16 (added)" % (name, dtype))


def set_mask_strides(desc, shape, full):
    """Strides of a contiguous mask whose dims are each 1 (broadcast) or full, (B, H, Lq, Lk)."""
    b, h, r, lk = shape
    B, H, Lq, Lk = full
    if lk != Lk or b not in (1, B) or h not in (1, H) or r not in (1, Lq):
        raise invalid("mask of shape %s does not broadcast to [B, Hq, Lq, Lk] = %s"
                      % (tuple(shape), tuple(full)))
    desc.mask_batch_stride = h * r * lk if b > 1 else 0
    desc.mask_head_stride = r * lk if h > 1 else 0
    desc.mask_rows_broadcast = 1 if r == 1 and Lq > 1 else 0
    desc.mask_row_stride = 0 if desc.mask_rows_broadcast else lk


def compact_mask(mask, full):
    """A host mask (anything that broadcasts to full = (B, H, Lq, Lk)) as the smallest contiguous
    array the library can address: dims that broadcast (size 1, or stride 0 in an np.broadcast_to
    view or an expanded tensor) kept at size 1 without being copied; the key dim materialised."""
    a = strided(mask, "mask")
    is_bool = a.dtype == np.bool_
    try:
        b = np.broadcast_to(a, full)
    except ValueError:
        raise invalid("mask of shape %s does not broadcast to [B, Hq, Lq, Lk] = %s"
                      % (tuple(a.shape), tuple(full))) from None
    keep = tuple(slice(0, 1) if (b.strides[i] == 0 or b.shape[i] == 1) else slice(None)
                 for i in range(3))
    c = np.ascontiguousarray(b[keep])
    if is_bool:
        c = c.view(np.uint8)
    return Host(c, "bool" if is_bool else c.dtype.name)


def attention_desc(dims, storage, *, causal=False, scale=None, path="auto", window=None,
                   softcap=None, alibi_slopes=None, sinks=None, kv_int8=False):
    """The desc of a problem (no mask yet) and the host arrays it points to."""
    d = _lib.AttentionDesc()
    keep = []
    d.batch, d.heads_q, d.heads_kv, d.seq_q, d.seq_kv = dims.B, dims.Hq, dims.Hkv, dims.Lq, dims.Lk
    d.head_dim, d.head_dim_v = dims.d, dims.dv
    d.scale = scale_value(scale)
    d.dtype = storage
    d.layout = choice(dims.layout, _LAYOUTS, "layout")
    d.causal = causal_mode(causal)
    d.path = choice(path, _PATHS, "path")
    d.kv_storage = _lib.KV_INT8 if kv_int8 else _lib.KV_SAME
    set_variants(d, keep, dims.Hq, window, softcap, alibi_slopes, sinks)
    return d, keep


def sizes(desc):
    """clattn_attention_sizes, or None for a desc the library refuses (its call says why)."""
    s = _lib.TensorSizes()
    import ctypes
    if _lib.LIB.clattn_attention_sizes(ctypes.byref(desc), ctypes.byref(s)) != _lib.SUCCESS:
        return None
    return s
