"""clattn for Python: attention on any OpenCL device for NumPy arrays and PyTorch tensors.

    import clattn, numpy as np
    q = k = v = np.random.rand(1, 8, 128, 64).astype(np.float32)
    with clattn.Context() as ctx:
        out, weights = ctx.attention(q, k, v, causal=True, return_weights=True)
    clattn.attention_map(weights, head="mean", path="map.png")

The package loads the C library the meson build made (no second copy of its code); see the
README's Python section.
"""
from . import functional
from ._lib import LIB as _LIB, library_path
from .attention import reference_invoke as _reference, run as _run
from .context import Context, Device, default_context, devices
from .group import Group
from .errors import (BuildError, DeviceNotFoundError, Error, InvalidArgumentError,
                     InvalidTypeError, IOError_ as IOError, OpenCLError, OutOfMemoryError,  # noqa: F401
                     UnsupportedError)
from .maps import AttentionMap, attention_map
from .nn import MultiheadAttention
from .serving import attention_varlen_reference, quantize_kv

__version__ = _LIB.clattn_version().decode()

__all__ = ["Context", "Group", "Device", "devices", "default_context", "functional", "MultiheadAttention",
           "attention_map", "AttentionMap", "attention_reference", "attention_varlen_reference",
           "quantize_kv", "library_path", "Error", "InvalidArgumentError", "InvalidTypeError",
           "UnsupportedError", "OutOfMemoryError", "DeviceNotFoundError", "BuildError",
           "OpenCLError"]   # clattn.IOError too, left out of * so as not to shadow the builtin


def attention_reference(q, k, v, **kwargs):
    """Context.attention's semantics in double precision on the CPU (clattn_attention_reference),
    with no OpenCL at all: the library's own reference, for checking results."""
    return _run(None, q, k, v, invoke=_reference, **kwargs)
