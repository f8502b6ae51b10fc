"""Attention on host arrays (NumPy, PyTorch CPU tensors), on pyopencl arrays, and the reference.

``Context.attention``, ``Group.attention`` and ``attention_reference`` are all ``run``, each with
its own C call (``invoke``).
"""
import ctypes

import numpy as np

from . import _arrays, _device, _lib
from ._problem import Dims, attention_desc, compact_mask, mask_type_of, set_mask_strides, sizes
from .errors import check, invalid

def set_host_scales(desc, keep, k_scale, v_scale, shape):
    """int8 K/V's scales as host arrays of the K/V tensor's shape without its last dimension."""
    for name, x in (("k_scale", k_scale), ("v_scale", v_scale)):
        a = _arrays.float_array(x, name, shape)
        keep.append(a)
        setattr(desc, name + "_host", a.ctypes.data_as(_lib.P_float))


def reference_invoke(*args):
    """clattn_attention_reference takes no message buffer: its status says what failed."""
    check(_lib.LIB.clattn_attention_reference(*args))


def _results(out, probs, lse):
    if probs is None and lse is None:
        return out
    return tuple(r for r in (out, probs, lse) if r is not None)


def _kv_int8(k_dtype, v_dtype, k_scale, v_scale):
    """Whether k and v are int8 (then both scales are required), else neither scale is given."""
    int8 = (k_dtype == "int8", v_dtype == "int8")
    if int8[0] != int8[1]:
        raise invalid("k and v must both be int8 or neither (k %s, v %s)" % (k_dtype, v_dtype))
    _device.check_scales(int8[0], k_scale, v_scale)
    return int8[0]


def _check_sizes(desc, pairs):
    """Every array's bytes against the library's own count for the desc: the C call reads exactly
    that many bytes, so a mismatch here would be an out-of-bounds read there."""
    s = sizes(desc)
    if s is None:
        return   # the call itself refuses the desc, with the library's message
    for name, nbytes in pairs:
        want = getattr(s, name)
        if nbytes is not None and nbytes != want:
            raise invalid("%s holds %d bytes; this problem needs %d" % (name, nbytes, want))


def run(ctx, q, k, v, *, mask=None, causal=False, scale=None, layout="bhsd",
        return_weights=False, return_lse=False, path="auto", window=None, softcap=None,
        alibi_slopes=None, sinks=None, k_scale=None, v_scale=None, invoke=None):
    """ctx: the Context; or None with invoke, a function that makes the host call from its
    arguments (desc, q, k, v, mask, out, probs, lse), raising on failure: the reference's, a
    group's."""
    if _arrays.kind(q) == _arrays.PYOPENCL:
        if invoke is not None:
            raise invalid("this call takes host arrays; .get() pyopencl arrays first")
        return _device.attention(ctx, q, k, v, mask=mask, causal=causal, scale=scale,
                                 layout=layout, return_weights=return_weights,
                                 return_lse=return_lse, path=path, window=window, softcap=softcap,
                                 alibi_slopes=alibi_slopes, sinks=sinks, k_scale=k_scale,
                                 v_scale=v_scale)
    like = _arrays.kind(q)
    qh, kh, vh = _arrays.host(q, "q"), _arrays.host(k, "k"), _arrays.host(v, "v")
    storage = _arrays.storage_of(qh, "q")
    int8 = _kv_int8(kh.dtype, vh.dtype, k_scale, v_scale)
    if not int8 and (kh.dtype, vh.dtype) != (qh.dtype, qh.dtype):
        raise invalid("q, k and v must have one dtype (q %s, k %s, v %s), or k and v int8"
                      % (qh.dtype, kh.dtype, vh.dtype))
    dims = Dims(qh.shape, kh.shape, vh.shape, layout)
    desc, keep = attention_desc(dims, storage, causal=causal, scale=scale, path=path,
                                window=window, softcap=softcap, alibi_slopes=alibi_slopes,
                                sinks=sinks, kv_int8=int8)
    if int8:
        set_host_scales(desc, keep, k_scale, v_scale, kh.shape[:-1])
    full = (dims.B, dims.Hq, dims.Lq, dims.Lk)
    mh = None
    if mask is not None:
        mh = compact_mask(mask, full)
        desc.mask_type = mask_type_of(mh.dtype)
        set_mask_strides(desc, mh.shape, full)

    out = _arrays.empty(dims.out_shape(), qh.dtype)
    probs = np.empty(full, np.float32) if return_weights else None
    lse = np.empty(full[:3], np.float32) if return_lse else None
    _check_sizes(desc, [("q", qh.array.nbytes), ("k", kh.array.nbytes), ("v", vh.array.nbytes),
                        ("mask", mh.array.nbytes if mh else None), ("out", out.nbytes)])
    ptr = lambda a: None if a is None else a.ctypes.data   # noqa: E731
    args = (ctypes.byref(desc), qh.ptr, kh.ptr, vh.ptr, mh.ptr if mh else None, out.ctypes.data,
            ptr(probs), ptr(lse))
    if invoke is not None:
        invoke(*args)
    else:
        with ctx.using() as h:
            check(_lib.LIB.clattn_attention_host(h, *args), h)
    del keep
    return _results(_arrays.wrap(out, qh.dtype, like), _arrays.wrap(probs, "float32", like),
                    _arrays.wrap(lse, "float32", like))


def describe(ctx, q, k, v, *, mask=None, causal=False, scale=None, layout="bhsd",
             return_weights=False, path="auto", window=None, softcap=None, alibi_slopes=None,
             sinks=None, k_scale=None, v_scale=None, return_lse=False):
    """clattn_plan_describe for the call ``ctx.attention`` would make with these arguments."""
    del return_lse, k_scale, v_scale
    desc, keep, _ = desc_of(q, k, v, layout, causal=causal, scale=scale, path=path, window=window,
                            softcap=softcap, alibi_slopes=alibi_slopes, sinks=sinks, mask=mask)
    buf = ctypes.create_string_buffer(8192)
    with ctx.using() as h:
        check(_lib.LIB.clattn_plan_describe(h, ctypes.byref(desc), int(bool(return_weights)),
                                            buf, len(buf)), h)
    del keep
    return buf.value.decode()


def spec(x, name):
    """(shape, dtype name) of an array of any kind, or of a (shape, dtype) pair, for calls that
    only need the problem's shape (plans, tuning)."""
    if isinstance(x, tuple) and len(x) == 2 and not hasattr(x, "shape"):
        return tuple(x[0]), np.dtype(x[1]).name if x[1] != "bfloat16" else "bfloat16"
    if _arrays.kind(x) == _arrays.PYOPENCL:
        return tuple(x.shape), x.dtype.name
    if _arrays.kind(x) == _arrays.TORCH:
        return tuple(x.shape), str(x.dtype).replace("torch.", "")
    if _arrays.kind(x) == _arrays.NUMPY:
        return x.shape, x.dtype.name
    raise invalid("%s must be an array, a tensor or a (shape, dtype) pair" % name)


def desc_of(q, k, v, layout, mask=None, **kw):
    """A desc from the shapes and dtypes alone (q, k, v may be (shape, dtype) pairs)."""
    (qs, qd), (ks, kd), (vs, _) = spec(q, "q"), spec(k, "k"), spec(v, "v")
    storage = _arrays._STORAGE.get(qd)
    if storage is None:
        raise invalid("q has dtype %s; clattn stores float32, float16 or bfloat16" % qd)
    dims = Dims(qs, ks, vs, layout)
    desc, keep = attention_desc(dims, storage, kv_int8=(kd == "int8"), **kw)
    if mask is not None:
        ms, md = spec(mask, "mask")
        desc.mask_type = mask_type_of(md)
        if len(ms) > 4:
            raise invalid("mask of shape %s has more than 4 dims" % (ms,))
        ms = (1,) * (4 - len(ms)) + tuple(ms)
        set_mask_strides(desc, ms, (dims.B, dims.Hq, dims.Lq, dims.Lk))
    return desc, keep, dims
