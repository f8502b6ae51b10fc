"""Arrays in and out: NumPy arrays, PyTorch CPU tensors and pyopencl arrays.

The C calls take contiguous memory in float32, float16 or bfloat16 (as uint16 bits). Host inputs
are made contiguous here (a copy where they are not; never refused for their strides), and results
go back as the kind of object the caller gave: NumPy in, NumPy out; a tensor in, a tensor out.
"""
import numpy as np

from . import _lib
from .errors import InvalidTypeError, invalid

NUMPY, TORCH, PYOPENCL = "numpy", "torch", "pyopencl"

_STORAGE = {"float32": _lib.F32, "float16": _lib.F16, "bfloat16": _lib.BF16}


def _torch():
    import torch
    return torch


def kind(x):
    mod = type(x).__module__
    if isinstance(x, np.ndarray):
        return NUMPY
    if mod.startswith("torch"):
        return TORCH
    if mod.startswith("pyopencl"):
        return PYOPENCL
    return None


class Host:
    """A contiguous NumPy view of an input; dtype names bfloat16 (held as uint16 bits) apart."""

    __slots__ = ("array", "dtype")

    def __init__(self, array, dtype):
        self.array, self.dtype = array, dtype

    @property
    def shape(self):
        return self.array.shape

    @property
    def ptr(self):
        return self.array.ctypes.data

    @property
    def storage(self):
        return _STORAGE.get(self.dtype)


def _native(a):
    """a in the machine's byte order: the library reads bytes as they are, and a big-endian
    array's dtype name ("float32") does not say it is swapped."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def host(x, name):
    """x (a NumPy array or a CPU tensor) as a Host; a non-contiguous one is copied."""
    k = kind(x)
    if k == NUMPY:
        a = np.ascontiguousarray(_native(x))
        return Host(a, a.dtype.name)
    if k == TORCH:
        torch = _torch()
        if x.device.type != "cpu":
            raise invalid("%s is on %s: clattn takes CPU tensors (or pyopencl arrays for device "
                          "memory)" % (name, x.device))
        t = x.detach().contiguous()
        if t.dtype == torch.bfloat16:
            return Host(t.view(torch.int16).numpy().view(np.uint16), "bfloat16")
        if t.dtype == torch.bool:
            return Host(t.numpy(), "bool")
        return Host(t.numpy(), str(t.dtype).replace("torch.", ""))
    raise InvalidTypeError("%s must be a NumPy array or a PyTorch tensor, not %s"
                           % (name, type(x).__name__))


def float_array(x, name, shape=None):
    """A contiguous float32 host array (slopes, sinks, int8 scales) of the given shape, or None.
    Any float dtype is converted by value (bfloat16 too); integers are refused."""
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        x = np.asarray(x, dtype=np.float32)
    h = host(x, name)
    if h.dtype == "bfloat16":
        a = bf16_to_float32(h.array)
    elif h.array.dtype.kind != "f":
        raise invalid("%s must hold floats, not %s" % (name, h.dtype))
    else:
        a = np.ascontiguousarray(h.array, dtype=np.float32)
    if shape is not None and a.shape != tuple(shape):
        raise invalid("%s has shape %s; it must be %s" % (name, a.shape, tuple(shape)))
    return a


def bf16_to_float32(bits):
    """bfloat16 values held as uint16 bits, as float32 values (a float's top 16 bits)."""
    return (np.ascontiguousarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def strided(x, name):
    """x as a NumPy array without making it contiguous (broadcast and expanded views keep their
    zero strides), float64 and bfloat16 converted to float32, bool kept."""
    k = kind(x)
    if k == TORCH:
        torch = _torch()
        if x.device.type != "cpu":
            raise invalid("%s is on %s: clattn takes CPU tensors" % (name, x.device))
        t = x.detach()
        if t.dtype in (torch.bfloat16, torch.float64):
            t = t.float()
        return t.numpy()
    if k != NUMPY:
        raise InvalidTypeError("%s must be a NumPy array or a PyTorch tensor, not %s"
                               % (name, type(x).__name__))
    x = _native(x)
    return x.astype(np.float32) if x.dtype == np.float64 else x


def int32_array(x, name):
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    h = host(x, name)
    if h.array.dtype.kind not in "iu":
        raise invalid("%s must hold integers, not %s" % (name, h.dtype))
    a = h.array.astype(np.int32)
    if not np.array_equal(a, h.array):
        raise invalid("%s holds values outside int32" % name)
    return np.ascontiguousarray(a)


def c_int(value, name, low=0):
    """A Python int for a C int field: ctypes would wrap a larger one silently."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidTypeError("%s must be an int, not %r" % (name, value))
    if not low <= int(value) < 2 ** 31:
        raise invalid("%s = %d is out of range (%d .. 2^31-1)" % (name, value, low))
    return int(value)


def storage_of(h, name):
    """The clattn_dtype of a float input, or a clear refusal."""
    if h.storage is None:
        raise invalid("%s has dtype %s; clattn stores float32, float16 or bfloat16 (convert "
                      "with .astype(np.float32) or .float())" % (name, h.dtype))
    return h.storage


def wrap(array, dtype, like):
    """array (NumPy; bfloat16 as uint16 bits) returned as the caller's kind of object."""
    if like != TORCH or array is None:
        return array
    torch = _torch()
    if dtype == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def empty(shape, dtype):
    """A new host output array of a storage dtype name."""
    return np.empty(shape, dtype=np.uint16 if dtype == "bfloat16" else np.dtype(dtype))
