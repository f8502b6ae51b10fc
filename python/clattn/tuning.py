"""Tuning and the caches: Context.tune, tune_varlen, cache_info, tuning_entries, clear_cache."""
import ctypes

import numpy as np

from . import _arrays, _lib
from ._problem import causal_mode, scale_value, set_variants
from .attention import desc_of
from .errors import check, invalid

_PATH_NAMES = {_lib.PATH_AUTO: "auto", _lib.PATH_UNFUSED: "unfused", _lib.PATH_FUSED: "fused"}
_DTYPES = _arrays._STORAGE


def _tune_options(budget_s, max_candidates, seed, repeats, families, save, progress, keep):
    o = _lib.TuneOptions()
    if budget_s is not None and not float(budget_s) > 0:
        raise invalid("budget_s must be > 0 seconds (None: the library's 60), not %r" % (budget_s,))
    for name, value in (("max_candidates", max_candidates), ("repeats", repeats)):
        if value is not None and int(value) < 1:
            raise invalid("%s must be >= 1 (None: the library's default), not %r" % (name, value))
    o.budget_s = float(budget_s or 0)
    o.max_candidates = int(max_candidates or 0)
    o.seed = int(seed or 0)
    o.repeats = int(repeats or 0)
    if families:
        b = (families if isinstance(families, str) else ",".join(families)).encode()
        keep.append(b)
        o.families = b
    o.no_save = 0 if save else 1
    if progress is not None:
        raised = []   # an exception cannot cross the C frames: kept, raised after the call

        def on_progress(user, info, fn=progress):
            if raised:
                return
            i = info.contents
            try:
                fn({"family": (i.family or b"").decode(), "family_index": i.family_index,
                "n_families": i.n_families, "tried": i.tried, "failed": i.failed,
                "params": (i.params or b"").decode(), "candidate_ms": i.candidate_ms,
                "default_ms": i.default_ms, "best_ms": i.best_ms, "elapsed_s": i.elapsed_s,
                "budget_s": i.budget_s})
            except BaseException as e:   # noqa: B902 (re-raised by _raise_kept)
                raised.append(e)
        cb = _lib.TUNE_PROGRESS_FN(on_progress)
        keep += [cb, raised]
        o.progress = cb
    return o


def _raise_kept(keep):
    """Re-raises an exception the progress callback raised during the C call."""
    for k in keep:
        if isinstance(k, list) and k:
            raise k[0]


def _report(r):
    fams = []
    for f in r.families[:r.n_families]:
        fams.append({"family": f.family.decode(), "space": f.space, "valid": f.valid,
                     "tried": f.tried, "failed": f.failed, "default_ms": f.default_ms,
                     "best_ms": f.best_ms, "default_params": f.default_params.decode(),
                     "best_params": f.best_params.decode(),
                     "first_failure": f.first_failure.decode()})
    return {"path": _PATH_NAMES.get(r.path, r.path), "families": fams,
            "default_ms": r.default_ms, "best_ms": r.best_ms, "elapsed_s": r.elapsed_s,
            "timed_with_events": bool(r.timed_with_events), "saved": bool(r.saved),
            "note": r.note.decode()}


def tune(self, q, k, v, *, causal=False, scale=None, layout="bhsd", path="auto", window=None,
         softcap=None, alibi_slopes=None, sinks=None, budget_s=None, max_candidates=None,
         seed=None, repeats=None, families=None, save=True, progress=None):
    """Tunes the kernels :meth:`attention` runs for this shape class (clattn_tune) and returns
    the report as a dict. q, k, v: arrays, or (shape, dtype) pairs (only shapes and dtypes are
    read; the tuner makes its own tensors). budget_s: default 60. save: merge the winners into
    the device's tuning file. progress: a callable given a dict after each candidate."""
    desc, keep, _ = desc_of(q, k, v, layout, causal=causal, scale=scale, path=path, window=window,
                            softcap=softcap, alibi_slopes=alibi_slopes, sinks=sinks)
    opt = _tune_options(budget_s, max_candidates, seed, repeats, families, save, progress, keep)
    rep = _lib.TuneReport()
    with self.using() as h:
        status = _lib.LIB.clattn_tune(h, ctypes.byref(desc), ctypes.byref(opt), ctypes.byref(rep))
        _raise_kept(keep)
        check(status, h)
    return _report(rep)


def tune_varlen(self, cu_seqlens_q, cu_seqlens_k=None, *, seqlens_k=None, block_size=0,
                heads_q, heads_kv=None, head_dim, head_dim_v=None, dtype="float32",
                kv_int8=False, causal=False, scale=None, window=None, softcap=None,
                alibi_slopes=None, sinks=None, budget_s=None, max_candidates=None, seed=None,
                repeats=None, families=None, save=True, progress=None):
    """Tunes ragged/paged calls for a typical batch (clattn_tune_varlen): the host tables give
    the sequences' lengths (cu_seqlens_k for packed keys, or seqlens_k with block_size for a
    paged cache, whose blocks the tuner lays out in order); the tensors are random."""
    d = _lib.VarlenDesc()
    keep = []
    cu_q = _arrays.int32_array(cu_seqlens_q, "cu_seqlens_q")
    keep.append(cu_q)
    if cu_q.ndim != 1 or cu_q.size < 1:
        raise invalid("cu_seqlens_q must be 1-D with B+1 >= 1 entries")
    d.batch = cu_q.size - 1
    d.cu_seqlens_q_host = cu_q.ctypes.data_as(_lib.P_int)
    d.total_q = int(cu_q[-1])
    d.max_seqlen_q = int(np.diff(cu_q).max(initial=0))
    d.heads_q = _arrays.c_int(heads_q, "heads_q", 1)
    d.heads_kv = _arrays.c_int(heads_kv or heads_q, "heads_kv", 1)
    d.head_dim = _arrays.c_int(head_dim, "head_dim", 1)
    d.head_dim_v = _arrays.c_int(head_dim_v or head_dim, "head_dim_v", 1)
    if dtype not in _DTYPES:
        raise invalid("dtype must be one of %s" % ", ".join(_DTYPES))
    d.dtype = _DTYPES[dtype]
    d.kv_storage = _lib.KV_INT8 if kv_int8 else _lib.KV_SAME
    d.causal, d.scale = causal_mode(causal), scale_value(scale)
    set_variants(d, keep, heads_q, window, softcap, alibi_slopes, sinks)
    if block_size:
        if seqlens_k is None:
            raise invalid("a paged batch (block_size > 0) needs seqlens_k")
        lens = _arrays.int32_array(seqlens_k, "seqlens_k")
        if lens.shape != (d.batch,):
            raise invalid("seqlens_k must have B = %d entries (cu_seqlens_q has B+1), not %s"
                          % (d.batch, lens.shape))
        if lens.min(initial=0) < 0:
            raise invalid("seqlens_k holds a negative length")
        blocks = [-(-int(n) // block_size) for n in lens]
        d.block_size = _arrays.c_int(block_size, "block_size", 1)
        d.max_blocks_per_seq = max(blocks + [1])
        table = np.zeros((d.batch, d.max_blocks_per_seq), np.int32)
        nxt = 0
        for b, nblk in enumerate(blocks):
            table[b, :nblk] = np.arange(nxt, nxt + nblk)
            nxt += nblk
        d.num_blocks = max(nxt, 1)
        keep += [lens, table]
        d.seqlens_k_host = lens.ctypes.data_as(_lib.P_int)
        d.block_table_host = table.ctypes.data_as(_lib.P_int)
        d.max_seqlen_k = int(lens.max(initial=0))
    else:
        if cu_seqlens_k is None:
            raise invalid("packed keys need cu_seqlens_k (or give seqlens_k and block_size)")
        cu_k = _arrays.int32_array(cu_seqlens_k, "cu_seqlens_k")
        if cu_k.shape != (d.batch + 1,):
            raise invalid("cu_seqlens_k must have B+1 = %d entries like cu_seqlens_q, not %s"
                          % (d.batch + 1, cu_k.shape))
        keep.append(cu_k)
        d.cu_seqlens_k_host = cu_k.ctypes.data_as(_lib.P_int)
        d.total_k = int(cu_k[-1])
        d.max_seqlen_k = int(np.diff(cu_k).max(initial=0))
    opt = _tune_options(budget_s, max_candidates, seed, repeats, families, save, progress, keep)
    rep = _lib.TuneReport()
    with self.using() as h:
        status = _lib.LIB.clattn_tune_varlen(h, ctypes.byref(d), ctypes.byref(opt),
                                             ctypes.byref(rep))
        _raise_kept(keep)
        check(status, h)
    return _report(rep)


def cache_info(self):
    """The context's caches (clattn_context_cache_info) as a dict."""
    i = _lib.CacheInfo()
    s = lambda b: (b or b"").decode(errors="replace")   # noqa: E731
    with self.using() as h:   # the strings point into the context: read them while it is open
        check(_lib.LIB.clattn_context_cache_info(h, ctypes.byref(i)), h)
        return {"enabled": bool(i.enabled), "tuning_enabled": bool(i.tuning_enabled),
                "dir": s(i.dir), "tuning_file": s(i.tuning_file), "identity": s(i.identity),
                "tuning_entries": i.tuning_entries, "programs_compiled": i.programs_compiled,
                "programs_loaded": i.programs_loaded}


def tuning_entries(self):
    """The context's tuning table, one line of the tuning file per entry."""
    lines = []
    buf = ctypes.create_string_buffer(4096)
    for i in range(cache_info(self)["tuning_entries"]):
        with self.using() as h:
            check(_lib.LIB.clattn_tuning_entry_string(h, i, buf, len(buf)), h)
        lines.append(buf.value.decode())
    return lines


def clear_cache(self, binaries=False):
    """Forgets the tuning entries and removes the device's tuning file (and, with binaries, every
    cached program binary)."""
    with self.using() as h:
        check(_lib.LIB.clattn_cache_clear(h, int(bool(binaries))), h)
