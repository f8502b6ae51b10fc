"""Attention on host arrays (NumPy, PyTorch CPU tensors), on pyopencl arrays, and the reference.

``Context.attention`` and ``attention_reference`` are both ``run`` with a different C call.
"""
import ctypes

import numpy as np

from . import _arrays, _device, _lib
from ._problem import Dims, attention_desc, compact_mask, mask_type_of, set_mask_strides, sizes
from .errors import check, invalid

OPTIONS = ("mask", "causal", "scale", "layout", "return_weights", "return_lse", "path", "window",
           "softcap", "alibi_slopes", "sinks", "k_scale", "v_scale")


def _results(out, probs, lse):
    if probs is None and lse is None:
        return out
    return tuple(r for r in (out, probs, lse) if r is not None)


def _kv_int8(k_dtype, v_dtype, k_scale, v_scale):
    """Whether k and v are int8 (then both scales are required), else neither scale is given."""
    int8 = (k_dtype == "int8", v_dtype == "int8")
    if int8 == (True, True):
        if k_scale is None or v_scale is None:
            raise invalid("int8 k and v need k_scale and v_scale (as quantize_kv returns them)")
        return True
    if any(int8):
        raise invalid("k and v must both be int8 or neither (k %s, v %s)" % (k_dtype, v_dtype))
    if k_scale is not None or v_scale is not None:
        raise invalid("k_scale and v_scale are for int8 k and v only")
    return False


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
        alibi_slopes=None, sinks=None, k_scale=None, v_scale=None, reference=False):
    """ctx: the Context, or None with reference=True (double precision on the CPU)."""
    if _arrays.kind(q) == _arrays.PYOPENCL:
        if reference:
            raise invalid("attention_reference takes host arrays; .get() pyopencl arrays first")
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
        scale_shape = kh.shape[:-1]
        ks = _arrays.float_array(_arrays.host(k_scale, "k_scale").array.reshape(-1), "k_scale")
        vs = _arrays.float_array(_arrays.host(v_scale, "v_scale").array.reshape(-1), "v_scale")
        for name, s in (("k_scale", ks), ("v_scale", vs)):
            if s.size != int(np.prod(scale_shape)):
                raise invalid("%s has %d values; k of shape %s needs %s" % (
                    name, s.size, kh.shape, scale_shape))
        keep += [ks, vs]
        desc.k_scale_host = ks.ctypes.data_as(_lib.P_float)
        desc.v_scale_host = vs.ctypes.data_as(_lib.P_float)
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
    if reference:
        err = ctypes.create_string_buffer(512)
        status = _lib.LIB.clattn_attention_reference(*args)
        if status != _lib.SUCCESS:   # the reference has no context: say what the sizes call says
            err.value = b"attention_reference refused the problem (see clattn.h for the rules)"
        check(status, err_buf=err)
    else:
        check(_lib.LIB.clattn_attention_host(ctx.handle, *args), ctx.handle)
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
    check(_lib.LIB.clattn_plan_describe(ctx.handle, ctypes.byref(desc), int(bool(return_weights)),
                                        buf, len(buf)), ctx.handle)
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
        ms = (1,) * (4 - len(ms)) + tuple(ms)
        full = (dims.B, dims.Hq, dims.Lq, dims.Lk)
        set_mask_strides(desc, tuple(1 if m == 1 else f for m, f in zip(ms, full)), full)
    return desc, keep, dims
