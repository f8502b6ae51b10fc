"""clattn.Context: one device, its compiled kernels, its tuning; and clattn.devices()."""
import ctypes
import threading

from . import _lib, attention as _attention, serving as _serving, tuning as _tuning
from ._handle import Handle
from .errors import InvalidTypeError, invalid

_SWITCHES = ("cache", "tuning", "autotune", "log_plans")
_CLASSES = {None: _lib.DEVICE_CLASS_REPORTED, "cpu": _lib.DEVICE_CLASS_CPU,
            "gpu": _lib.DEVICE_CLASS_GPU, "accelerator": _lib.DEVICE_CLASS_ACCELERATOR}
_LEVELS = {1: "warning", 2: "plan"}   # clattn_log_level


def _options(opts):
    """clattn_context_options from keyword arguments (unknown names are a TypeError, as Python's)."""
    o = _lib.ContextOptions()
    keep = []
    for name, value in opts.items():
        if name in _SWITCHES:
            if value is not None:
                setattr(o, name, _lib.SWITCH_ON if value else _lib.SWITCH_OFF)
        elif name in ("cache_dir", "kernel_dir", "binary_dir"):
            if value is not None:
                b = str(value).encode()
                keep.append(b)
                setattr(o, name, b)
        elif name == "ignore_environment":
            o.ignore_environment = int(bool(value))
        elif name == "autotune_budget_s":
            o.autotune_budget_s = float(value)
        elif name in ("max_local_mem_bytes", "max_work_group_size"):
            setattr(o, name, int(value))
        elif name == "device_class":
            if value not in _CLASSES:
                raise invalid("device_class must be None, \"cpu\", \"gpu\" or \"accelerator\", "
                              "not %r" % (value,))
            o.device_class = _CLASSES[value]
        elif name == "log":
            if value is not None:
                if not callable(value):
                    raise InvalidTypeError("log must be a callable log(level, message)")
                fn = value

                def on_log(user, level, message, fn=fn):
                    fn(_LEVELS.get(level, str(level)), message.decode(errors="replace"))
                cb = _lib.LOG_FN(on_log)
                keep.append(cb)
                o.log = cb
        else:
            raise TypeError("Context() got an unexpected option %r" % name)
    return o, keep


class Context(Handle):
    """A device and what clattn keeps for it (compiled kernels, tuning results, scratch).

    ``Context(device=None, **options)``: device is a selector as clattn_context_create takes it
    (None: $CLATTN_DEVICE, else a GPU, an accelerator, then a CPU; "cpu", "gpu", "P:D", or part of
    the device's name; or a :class:`Device` from :func:`devices`). Options are
    clattn_context_options' fields: cache, cache_dir, tuning, autotune, autotune_budget_s,
    kernel_dir, binary_dir, ignore_environment, log_plans, device_class, max_local_mem_bytes,
    max_work_group_size, and log, a callable ``log(level, message)`` for warnings ("warning") and
    plans ("plan"), called on the calling thread (it must not call this context).
    ``with Context() as ctx:`` closes it at the end; so does garbage collection.
    """

    _what = "Context"

    def __init__(self, device=None, *, queue=None, **options):
        self._handle = None
        opts, self._keep = _options(options)
        h = ctypes.c_void_p()
        if queue is not None:
            st = _lib.LIB.clattn_context_create_from_queue_with_options(
                ctypes.c_void_p(queue.int_ptr), ctypes.byref(opts), ctypes.byref(h))
        else:
            sel = getattr(device, "selector", device)
            if sel is not None and not isinstance(sel, str):
                raise InvalidTypeError("device must be a selector string or a clattn.Device")
            st = _lib.LIB.clattn_context_create_with_options(
                sel.encode() if sel else None, ctypes.byref(opts), ctypes.byref(h))
        if st != _lib.SUCCESS:   # no context to hold a message: say what was asked for
            from .errors import raise_for, status_name
            raise_for(st, "%s (device %r%s)" % (
                status_name(st), sel if queue is None else "from a pyopencl queue",
                "; clattn.devices() lists them" if st == _lib.DEVICE_NOT_FOUND else ""))
        self._cl_queue = None
        self._open(h.value, _lib.LIB.clattn_context_release)

    @classmethod
    def from_queue(cls, queue, **options):
        """A context on a pyopencl CommandQueue (retained): arrays of its context are used in place."""
        return cls(queue=queue, **options)

    # -- lifetime --
    def __repr__(self):
        return "clattn.Context(%r)" % (self.device_name if self._handle else "closed")

    # -- what it is --
    @property
    def device_name(self):
        with self.using() as h:
            return _lib.LIB.clattn_context_device_name(h).decode(errors="replace")

    @property
    def last_warning(self):
        with self.using() as h:
            return (_lib.LIB.clattn_context_last_warning(h) or b"").decode(errors="replace")

    @property
    def scratch_bytes(self):
        with self.using() as h:
            return _lib.LIB.clattn_context_scratch_bytes(h)

    @property
    def cl_queue(self):
        """The context's queue as a pyopencl CommandQueue (pyopencl required)."""
        if self._cl_queue is None:
            import pyopencl as cl
            with self.using() as h:   # retained: the queue outlives the context if need be
                self._cl_queue = cl.CommandQueue.from_int_ptr(_lib.LIB.clattn_context_queue(h),
                                                              retain=True)
        return self._cl_queue

    @property
    def cl_context(self):
        return self.cl_queue.context

    # -- attention --
    def attention(self, q, k, v, *, mask=None, causal=False, scale=None, layout="bhsd",
                  return_weights=False, return_lse=False, path="auto", window=None, softcap=None,
                  alibi_slopes=None, sinks=None, k_scale=None, v_scale=None):
        """softmax(q·kᵀ·scale + mask)·v per head: ``out``, or a tuple ``(out[, weights][, lse])``.

        q [B, Hq, Lq, d], k [B, Hkv, Lk, d], v [B, Hkv, Lk, dv] (layout "bhsd"), or with L before
        H ("bshd"); Hq a multiple of Hkv is grouped-query attention. NumPy arrays or PyTorch CPU
        tensors of float32, float16 or bfloat16 (tensors); the result has q's kind and dtype.
        pyopencl arrays run on device memory and return pyopencl arrays without waiting.
        mask: broadcasts to [B, Hq, Lq, Lk]; bool (True = take part, PyTorch's
        scaled_dot_product_attention convention), uint8 (nonzero = take part) or float (added).
        causal: False, True or "top_left" (PyTorch's is_causal), "bottom_right" (decoding).
        scale: None for 1/sqrt(d). return_weights: the softmax weights, float32 [B, Hq, Lq, Lk]
        (the unfused path). return_lse: float32 [B, Hq, Lq], natural log. path: "auto", "fused",
        "unfused". Variants: window=(left, right) (-1: unbounded), softcap (Gemma 2), alibi_slopes
        [Hq], sinks [Hq]. int8 k and v (from :meth:`quantize_kv`) take k_scale and v_scale.
        A row that sees no key gives 0 (weights 0, lse -inf); PyTorch gives NaN there.
        """
        return _attention.run(self, q, k, v, mask=mask, causal=causal, scale=scale,
                              layout=layout, return_weights=return_weights, return_lse=return_lse,
                              path=path, window=window, softcap=softcap,
                              alibi_slopes=alibi_slopes, sinks=sinks, k_scale=k_scale,
                              v_scale=v_scale)

    def plan(self, q, k, v, **kwargs):
        """What :meth:`attention` would run for these arguments, in words (nothing runs). q, k, v
        may be arrays or (shape, dtype) pairs."""
        return _attention.describe(self, q, k, v, **kwargs)

    quantize_kv = _serving._quantize_method
    attention_varlen = _serving.attention_varlen
    attention_paged = _serving.attention_paged
    reshape_and_cache = _serving.reshape_and_cache

    # -- tuning and caches --
    tune = _tuning.tune
    tune_varlen = _tuning.tune_varlen
    cache_info = _tuning.cache_info
    tuning_entries = _tuning.tuning_entries
    clear_cache = _tuning.clear_cache

    def set_tuning(self, enabled):
        """False: calls use the device class's defaults, not tuning results; True: back to normal."""
        with self.using() as h:
            _lib.LIB.clattn_context_set_tuning(h, int(bool(enabled)))


class Device:
    """An OpenCL device as :func:`devices` lists it; ``selector`` ("P:D") picks it in Context()."""

    __slots__ = ("platform", "index", "name", "type", "platform_name")

    def __init__(self, platform, index, name, type_, platform_name):
        self.platform, self.index, self.name, self.type = platform, index, name, type_
        self.platform_name = platform_name

    @property
    def selector(self):
        return "%d:%d" % (self.platform, self.index)

    def __repr__(self):
        return "clattn.Device(%r, %r, %s, platform %r)" % (self.selector, self.name, self.type,
                                                             self.platform_name)


def devices():
    """Every OpenCL device the ICD loader offers, in the "P:D" order clattn's selectors use."""
    from ._opencl import list_devices
    return [Device(*d) for d in list_devices()]


_default = None
_default_lock = threading.Lock()


def default_context():
    """The context the functional API and layers use when given none: created on first use with
    Context() (so $CLATTN_DEVICE and the CLATTN_* variables apply), shared by the process."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Context()
        return _default
