"""pyopencl arrays: attention on device memory without copies.

The arrays must live in the Context's OpenCL context (make the Context with
``Context.from_queue(queue)`` on pyopencl's queue, or allocate on ``ctx.cl_queue``). The call is
enqueued on the Context's queue and returns at once with new pyopencl arrays; ``.get()`` waits.
An input at a non-zero offset (a slice) is copied to a buffer of its own first, since the library
reads every buffer from offset 0; non-contiguous device arrays are refused (pyopencl has no
general strided copy).
"""
import ctypes

import numpy as np

from . import _arrays, _lib
from ._problem import Dims, attention_desc, mask_type_of, set_mask_strides
from .errors import check, invalid

_STORAGE = {"float32": _lib.F32, "float16": _lib.F16}


def _cl():
    import pyopencl
    import pyopencl.array  # noqa: F401  (the submodule)
    return pyopencl


def mem(x, name, keep):
    """The cl_mem handle of a pyopencl array (a copy when it starts at an offset)."""
    if type(x).__module__.split(".")[0] != "pyopencl":
        raise invalid("%s must be a pyopencl array like q, not %s" % (name, type(x).__name__))
    if not x.flags.c_contiguous:
        raise invalid("%s is a non-contiguous pyopencl array; make it contiguous first" % name)
    if x.events:   # written by commands of pyopencl's, perhaps on another queue: wait for them
        _cl().wait_for_events(x.events)
    if x.offset:
        x = x.copy()
        keep.append(x)
        _cl().wait_for_events(x.events)
    return x.base_data.int_ptr if x.size else None


def check_scales(int8, k_scale, v_scale):
    """int8 k and v take both scales; other k and v take neither."""
    given = (k_scale is not None, v_scale is not None)
    if int8 and given != (True, True):
        raise invalid("int8 k and v need k_scale and v_scale (as quantize_kv returns them)")
    if not int8 and any(given):
        raise invalid("k_scale and v_scale are for int8 k and v only")
    for name, x in (("k_scale", k_scale), ("v_scale", v_scale)):
        # device scales are read as float32 as they are: another dtype would be read as garbage
        if _arrays.kind(x) == _arrays.PYOPENCL and x.dtype.name != "float32":
            raise invalid("%s has dtype %s; device scales are float32" % (name, x.dtype.name))


def _empty(ctx, shape, dtype):
    return _cl().array.empty(ctx.cl_queue, shape, dtype)


def attention(ctx, q, k, v, *, mask, causal, scale, layout, return_weights, return_lse, path,
              window, softcap, alibi_slopes, sinks, k_scale, v_scale):
    keep = []
    storage = _STORAGE.get(q.dtype.name)
    if storage is None:
        raise invalid("q has dtype %s; device arrays are float32 or float16" % q.dtype.name)
    int8 = k.dtype.name == "int8"
    if int8 != (v.dtype.name == "int8") or (not int8 and (k.dtype, v.dtype) != (q.dtype, q.dtype)):
        raise invalid("q, k and v must have one dtype, or k and v int8 (q %s, k %s, v %s)"
                      % (q.dtype, k.dtype, v.dtype))
    check_scales(int8, k_scale, v_scale)
    dims = Dims(q.shape, k.shape, v.shape, layout)
    desc, host_keep = attention_desc(dims, storage, causal=causal, scale=scale, path=path,
                                     window=window, softcap=softcap, alibi_slopes=alibi_slopes,
                                     sinks=sinks, kv_int8=int8)
    if int8:
        desc.k_scale = mem(k_scale, "k_scale", keep)
        desc.v_scale = mem(v_scale, "v_scale", keep)
    full = (dims.B, dims.Hq, dims.Lq, dims.Lk)
    mask_mem = None
    if mask is not None:
        if type(mask).__module__.split(".")[0] != "pyopencl" or mask.ndim > 4:
            raise invalid("with device arrays, mask must be a pyopencl array of at most 4 dims")
        desc.mask_type = mask_type_of(mask.dtype.name)
        shape = (1,) * (4 - mask.ndim) + tuple(mask.shape)
        set_mask_strides(desc, shape, full)
        mask_mem = mem(mask, "mask", keep)
    out = _empty(ctx, dims.out_shape(), q.dtype)
    probs = _empty(ctx, full, np.float32) if return_weights else None
    lse = _empty(ctx, full[:3], np.float32) if return_lse else None
    handle = lambda a: a.base_data.int_ptr if a is not None and a.size else None  # noqa: E731
    with ctx.using() as h:
        check(_lib.LIB.clattn_attention(h, ctypes.byref(desc), mem(q, "q", keep),
                                        mem(k, "k", keep), mem(v, "v", keep), mask_mem,
                                        handle(out), handle(probs), handle(lse)), h)
    del host_keep, keep   # enqueued commands keep their buffers alive (OpenCL's rule)
    if probs is None and lse is None:
        return out
    return tuple(r for r in (out, probs, lse) if r is not None)
