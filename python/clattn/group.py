"""clattn.Group: several devices in one process sharing one attention call (clattn_group_*)."""
import ctypes
import functools

from . import _lib
from ._handle import Handle
from .attention import desc_of, run
from .context import Context, _options
from .errors import InvalidTypeError, check, invalid, raise_for

_SPLITS = {"auto": _lib.SPLIT_AUTO, "heads": _lib.SPLIT_HEADS, "keys": _lib.SPLIT_KEYS}
_SPLIT_NAMES = {v: k for k, v in _SPLITS.items()}


class Group(Handle):
    """Devices that share each call out: ``Group(["0:0", "0:1"], **options)`` makes a context
    per selector (the options of :class:`Context`); ``Group(contexts=[ctx_a, ctx_b])`` borrows
    yours (keep them open while the group lives). ``split``: "heads" (batch x KV-head units in
    proportion to each device's measured speed), "keys" (key ranges merged by lse: decoding, very
    long keys), "auto" (the library's choice). ``with`` closes it."""

    _what = "Group"

    def __init__(self, devices=None, *, contexts=None, **options):
        self._handle = None
        h = ctypes.c_void_p()
        if contexts is not None:
            if devices is not None or options:
                raise invalid("give devices (with options) or contexts, not both")
            if not all(isinstance(c, Context) for c in contexts):
                raise InvalidTypeError("contexts must be clattn.Context objects")
            # each borrowed context is held open while the group lives: closing one meanwhile
            # only marks it closed, and the group's release lets it go
            self._contexts = []
            try:
                for c in contexts:
                    self._contexts.append((c, c._acquire()))
                arr = (ctypes.c_void_p * len(contexts))(*[ch for _, ch in self._contexts])
                check(_lib.LIB.clattn_group_create_from_contexts(len(contexts), arr, ctypes.byref(h)))
            except BaseException:
                _let_go(self._contexts)
                raise
        else:
            if not devices or isinstance(devices, str):
                raise invalid("devices must be a list of selectors (\"0:0\", \"gpu\", ...)")
            sels = [getattr(d, "selector", d) for d in devices]
            arr = (ctypes.c_char_p * len(sels))(*[str(s).encode() for s in sels])
            opts, self._keep = _options(options)
            err = ctypes.create_string_buffer(1024)
            st = _lib.LIB.clattn_group_create(len(sels), arr, ctypes.byref(opts), ctypes.byref(h),
                                              err, len(err))
            if st != _lib.SUCCESS:
                raise_for(st, err.value.decode(errors="replace"))
            self._contexts = []
        # a function of the borrowed list, not a bound method: the group must not refer to
        # itself, or dropping it would wait for the cycle collector to release it
        self._open(h.value, functools.partial(_release_group, self._contexts))

    @staticmethod
    def _fail(h, status):
        raise_for(status, (_lib.LIB.clattn_group_last_error(h) or b"").decode(errors="replace"))

    def attention(self, q, k, v, *, split="auto", **kwargs):
        """:meth:`Context.attention`'s arguments and results on host arrays, shared out."""
        s = _choice(split)

        def invoke(desc, *ptrs):
            with self.using() as h:
                st = _lib.LIB.clattn_group_attention_host(h, desc, s, *ptrs)
                if st != _lib.SUCCESS:
                    self._fail(h, st)
        return run(None, q, k, v, invoke=invoke, **kwargs)

    def plan(self, q, k, v, *, split="auto", return_weights=False, layout="bhsd", mask=None,
             **kwargs):
        """How a call would be shared out: {"split", "first", "share", "measured"}; q, k, v may
        be arrays or (shape, dtype) pairs."""
        desc, keep, _ = desc_of(q, k, v, layout, mask=mask, **kwargs)
        p = _lib.GroupPlan()
        with self.using() as h:
            st = _lib.LIB.clattn_group_plan_for(h, ctypes.byref(desc), int(bool(return_weights)),
                                                _choice(split), ctypes.byref(p))
            if st != _lib.SUCCESS:
                self._fail(h, st)
        return {"split": _SPLIT_NAMES[p.split], "units": p.units, "first": list(p.first[:p.n + 1]),
                "share": list(p.share[:p.n]), "measured": bool(p.measured)}

    def calibrate(self, q, k, v, *, repeats=0, layout="bhsd", **kwargs):
        """Times each device alone on this shape class and keeps the times in their tuning files;
        returns them (ms). Later "heads" splits of the class share in proportion to speed."""
        desc, keep, _ = desc_of(q, k, v, layout, **kwargs)
        n = self.size
        ms = (ctypes.c_double * n)()
        with self.using() as h:
            st = _lib.LIB.clattn_group_calibrate(h, ctypes.byref(desc), int(repeats), ms)
            if st != _lib.SUCCESS:
                self._fail(h, st)
        return list(ms)

    @property
    def size(self):
        with self.using() as h:
            return _lib.LIB.clattn_group_size(h)


def _let_go(borrowed):
    while borrowed:
        borrowed.pop()[0]._drop()


def _release_group(borrowed, h):
    _lib.LIB.clattn_group_release(h)
    _let_go(borrowed)


def _choice(split):
    try:
        return _SPLITS[split]
    except (KeyError, TypeError):
        raise invalid("split must be \"auto\", \"heads\" or \"keys\", not %r" % (split,)) from None
