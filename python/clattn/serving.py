"""Ragged batches, the paged KV cache and int8 K/V (clattn.h's serving section), for host arrays
and pyopencl arrays.

Layouts are FlashAttention's varlen ones: q [total_q, Hq, d], k/v [total_k, Hkv, d(v)] packed, or
caches [num_blocks, block_size, Hkv, d(v)]; out [total_q, Hq, dv]; lse float32 [Hq, total_q];
int32 tables cu_seqlens_q [B+1], cu_seqlens_k [B+1], seqlens_k [B], block_table [B, max_blocks].
"""
import ctypes

import numpy as np

from . import _arrays, _device, _lib
from ._problem import causal_mode, scale_value, set_variants
from .attention import set_host_scales
from .errors import InvalidTypeError, check, invalid


# ---- int8 K/V ------------------------------------------------------------------------------------

def _quant_desc(shape, storage, layout):
    """A desc that addresses a tensor of shape [.., L, H, dim] (bshd) or [B, H, L, dim] (bhsd) as
    clattn_quantize_kv reads it; varlen tensors and caches are one batch entry of token rows."""
    d = _lib.AttentionDesc()
    if len(shape) == 3:                       # [tokens, Hkv, dim]: packed varlen
        shape, layout = (1,) + tuple(shape), "bshd"
    elif len(shape) == 4 and layout == "cache":   # [num_blocks, block_size, Hkv, dim]
        shape, layout = (1, shape[0] * shape[1], shape[2], shape[3]), "bshd"
    if len(shape) != 4:
        raise invalid("quantize_kv takes [B, H, L, d] (bhsd), [B, L, H, d] (bshd), [tokens, H, d] "
                      "or a cache [blocks, block_size, H, d] (layout \"cache\"), not %s"
                      % (tuple(shape),))
    if layout == "bhsd":
        d.batch, d.heads_kv, d.seq_kv, d.head_dim = shape
    elif layout == "bshd":
        d.batch, d.seq_kv, d.heads_kv, d.head_dim = shape
        d.layout = _lib.LAYOUT_BSHD
    else:
        raise invalid("layout must be \"bhsd\", \"bshd\" or \"cache\", not %r" % (layout,))
    d.heads_q, d.seq_q, d.head_dim_v, d.dtype = d.heads_kv, 1, d.head_dim, storage
    return d


def quantize_kv(x, layout="bhsd", *, ctx=None):
    """(x8, scale): x as int8 with one float32 scale per token and head, scale = max|x| / 127
    (clattn_quantize_kv's rule), the form int8 k and v take. scale has x's shape without its last
    dimension. Host arrays are quantized on the CPU; pyopencl arrays on ctx's device."""
    if _arrays.kind(x) == _arrays.PYOPENCL:
        if ctx is None:
            raise invalid("quantize_kv of a pyopencl array needs ctx (Context.quantize_kv)")
        storage = _device._STORAGE.get(x.dtype.name)
        if storage is None:
            raise invalid("x has dtype %s; device arrays are float32 or float16" % x.dtype)
        desc, keep = _quant_desc(x.shape, storage, layout), []
        x8 = _device._empty(ctx, x.shape, np.int8)
        sc = _device._empty(ctx, x.shape[:-1], np.float32)
        if x.size:
            with ctx.using() as hc:
                check(_lib.LIB.clattn_quantize_kv(hc, ctypes.byref(desc), _lib.KV_KEYS,
                                                  _device.mem(x, "x", keep), x8.base_data.int_ptr,
                                                  sc.base_data.int_ptr), hc)
        return x8, sc
    h = _arrays.host(x, "x")
    desc = _quant_desc(h.shape, _arrays.storage_of(h, "x"), layout)
    x8 = np.empty(h.shape, np.int8)
    sc = np.empty(h.shape[:-1], np.float32)
    if h.array.size:
        check(_lib.LIB.clattn_quantize_kv_host(ctypes.byref(desc), _lib.KV_KEYS, h.ptr,
                                               x8.ctypes.data, sc.ctypes.data))
    like = _arrays.kind(x)
    return _arrays.wrap(x8, "int8", like), _arrays.wrap(sc, "float32", like)


def _quantize_method(self, x, layout="bhsd"):
    return quantize_kv(x, layout, ctx=self)


_quantize_method.__doc__ = quantize_kv.__doc__


# ---- ragged and paged attention -------------------------------------------------------------------

def _max_len(cu):
    return int(np.max(np.diff(cu))) if len(cu) > 1 else 0


def _varlen(ctx, q, k, v, *, cu_seqlens_q, cu_seqlens_k=None, seqlens_k=None, block_table=None,
            paged, max_seqlen_q, max_seqlen_k, causal, scale, window, softcap, alibi_slopes,
            sinks, k_scale, v_scale, return_lse, check_indices, reference):
    device = _arrays.kind(q) == _arrays.PYOPENCL
    d = _lib.VarlenDesc()
    keep = []
    for name, x in (("q", q), ("k", k), ("v", v)):
        if _arrays.kind(x) is None:
            raise InvalidTypeError("%s must be a NumPy array, a tensor or a pyopencl array, not %s"
                                   % (name, type(x).__name__))
    if q.ndim != 3 or k.ndim != (4 if paged else 3) or v.ndim != k.ndim:
        raise invalid("q must be [total_q, Hq, d] and k, v %s; got q %s, k %s, v %s" % (
            "caches [num_blocks, block_size, Hkv, d]" if paged else "[total_k, Hkv, d]",
            tuple(q.shape), tuple(k.shape), tuple(v.shape)))
    d.total_q = _arrays.c_int(q.shape[0], "total_q")
    d.heads_q, d.head_dim = _arrays.c_int(q.shape[1], "Hq", 1), _arrays.c_int(q.shape[2], "d", 1)
    # C would read 0 heads or a 0 width as "the default"
    d.heads_kv = _arrays.c_int(k.shape[-2], "Hkv", 1)
    d.head_dim_v = _arrays.c_int(v.shape[-1], "v's last dim", 1)
    if k.shape[:-1] != v.shape[:-1] or k.shape[-1] != q.shape[-1]:
        raise invalid("k %s and v %s must agree but in their last dim, and k's last dim be q's"
                      % (tuple(k.shape), tuple(v.shape)))
    if paged:
        d.num_blocks, d.block_size = k.shape[0], k.shape[1]
        if d.block_size == 0:
            raise invalid("the caches' block_size (dim 1) must be >= 1")
    else:
        d.total_k = k.shape[0]
    d.scale = scale_value(scale)
    d.causal = causal_mode(causal)
    d.check_indices = int(bool(check_indices))
    set_variants(d, keep, d.heads_q, window, softcap, alibi_slopes, sinks)

    qh = kh = vh = None
    if device:
        storage = _device._STORAGE.get(q.dtype.name)
        kd, vd = k.dtype.name, v.dtype.name
        qd = q.dtype.name
    else:
        qh, kh, vh = _arrays.host(q, "q"), _arrays.host(k, "k"), _arrays.host(v, "v")
        storage = _arrays.storage_of(qh, "q")
        qd, kd, vd = qh.dtype, kh.dtype, vh.dtype
    if storage is None:
        raise invalid("q has dtype %s: float32 or float16 (bfloat16 for tensors)" % qd)
    d.dtype = storage
    int8 = kd == "int8" and vd == "int8"
    if not int8 and (kd, vd) != (qd, qd):
        raise invalid("q, k and v must have one dtype, or k and v int8 (q %s, k %s, v %s)"
                      % (qd, kd, vd))
    _device.check_scales(int8, k_scale, v_scale)
    d.kv_storage = _lib.KV_INT8 if int8 else _lib.KV_SAME

    tables = [("cu_seqlens_q", cu_seqlens_q)]
    tables += [("seqlens_k", seqlens_k), ("block_table", block_table)] if paged \
        else [("cu_seqlens_k", cu_seqlens_k)]
    if device:
        if max_seqlen_q is None or max_seqlen_k is None:
            raise invalid("with device tables, give max_seqlen_q and max_seqlen_k")
        for name, t in tables:
            if t is None or _arrays.kind(t) != _arrays.PYOPENCL or t.dtype != np.int32:
                raise invalid("%s must be an int32 pyopencl array like q" % name)
            setattr(d, name, _device.mem(t, name, keep))
        d.batch = cu_seqlens_q.shape[0] - 1
        if paged:
            d.max_blocks_per_seq = block_table.shape[1] if block_table.ndim == 2 else 0
        if int8:
            d.k_scale, d.v_scale = _device.mem(k_scale, "k_scale", keep), \
                _device.mem(v_scale, "v_scale", keep)
    else:
        arrs = {}
        for name, t in tables:
            if t is None:
                raise invalid("%s is required" % name)
            a = _arrays.int32_array(t, name)
            arrs[name] = a
            keep.append(a)
            setattr(d, name + "_host", a.ctypes.data_as(_lib.P_int))
        cu_q = arrs["cu_seqlens_q"]
        if cu_q.ndim != 1 or cu_q.size < 1:
            raise invalid("cu_seqlens_q must be 1-D with B+1 entries")
        d.batch = cu_q.size - 1
        if paged:
            bt = arrs["block_table"]
            if bt.ndim != 2 or bt.shape[0] != d.batch:
                raise invalid("block_table must be [B, max_blocks_per_seq] = [%d, n], not %s"
                              % (d.batch, bt.shape))
            d.max_blocks_per_seq = bt.shape[1]
            if arrs["seqlens_k"].shape != (d.batch,):
                raise invalid("seqlens_k must have B = %d entries" % d.batch)
        elif arrs["cu_seqlens_k"].shape != (d.batch + 1,):
            raise invalid("cu_seqlens_k must have B+1 = %d entries like cu_seqlens_q" % (d.batch + 1))
        if max_seqlen_q is None:
            max_seqlen_q = _max_len(cu_q)
        if max_seqlen_k is None:
            max_seqlen_k = int(arrs["seqlens_k"].max(initial=0)) if paged \
                else _max_len(arrs["cu_seqlens_k"])
        if int8:
            set_host_scales(d, keep, k_scale, v_scale, tuple(k.shape[:-1]))
    d.max_seqlen_q = _arrays.c_int(max_seqlen_q, "max_seqlen_q")
    d.max_seqlen_k = _arrays.c_int(max_seqlen_k, "max_seqlen_k")

    if device:
        out = _device._empty(ctx, (d.total_q, d.heads_q, d.head_dim_v), q.dtype)
        lse = _device._empty(ctx, (d.heads_q, d.total_q), np.float32) if return_lse else None
        handle = lambda a: a.base_data.int_ptr if a is not None and a.size else None  # noqa: E731
        with ctx.using() as hc:
            check(_lib.LIB.clattn_attention_varlen(hc, ctypes.byref(d), _device.mem(q, "q", keep),
                                                   _device.mem(k, "k", keep),
                                                   _device.mem(v, "v", keep), handle(out),
                                                   handle(lse)), hc)
        return (out, lse) if return_lse else out

    sizes, scale_bytes = _lib.TensorSizes(), ctypes.c_size_t()
    if _lib.LIB.clattn_varlen_sizes(ctypes.byref(d), ctypes.byref(sizes),
                                    ctypes.byref(scale_bytes)) == _lib.SUCCESS:
        for name, h in (("q", qh), ("k", kh), ("v", vh)):
            if h.array.nbytes != getattr(sizes, name):
                raise invalid("%s holds %d bytes; this problem needs %d"
                              % (name, h.array.nbytes, getattr(sizes, name)))
    out = _arrays.empty((d.total_q, d.heads_q, d.head_dim_v), qh.dtype)
    lse = np.empty((d.heads_q, d.total_q), np.float32) if return_lse else None
    if sizes.out and out.nbytes != sizes.out or lse is not None and lse.nbytes != sizes.lse:
        raise invalid("the outputs' sizes disagree with the library's for this problem")
    lse_ptr = lse.ctypes.data if lse is not None else None
    if reference:
        err = ctypes.create_string_buffer(512)
        check(_lib.LIB.clattn_attention_varlen_reference(ctypes.byref(d), qh.ptr, kh.ptr, vh.ptr,
                                                         out.ctypes.data, lse_ptr, err, len(err)),
              err_buf=err)
    else:
        with ctx.using() as hc:
            check(_lib.LIB.clattn_attention_varlen_host(hc, ctypes.byref(d), qh.ptr, kh.ptr,
                                                        vh.ptr, out.ctypes.data, lse_ptr), hc)
    del keep
    like = _arrays.kind(q)
    out = _arrays.wrap(out, qh.dtype, like)
    return (out, _arrays.wrap(lse, "float32", like)) if return_lse else out


def attention_varlen(self, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None,
                     max_seqlen_k=None, *, causal=False, scale=None, window=None, softcap=None,
                     alibi_slopes=None, sinks=None, k_scale=None, v_scale=None, return_lse=False,
                     check_indices=True):
    """A ragged batch, FlashAttention's flash_attn_varlen_func: sequence b's queries are rows
    cu_seqlens_q[b]..cu_seqlens_q[b+1]-1 of q [total_q, Hq, d] and its keys rows
    cu_seqlens_k[b]..cu_seqlens_k[b+1]-1 of k, v [total_k, Hkv, d(v)]; causal modes per sequence
    ("bottom_right" for chunked prefill). Returns out [total_q, Hq, dv] (and lse [Hq, total_q]).
    Host tables are always validated (a bad entry raises ValueError naming it); pyopencl tables
    are validated when check_indices (a blocking read) and need max_seqlen_q/k."""
    return _varlen(self, q, k, v, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k,
                   paged=False, max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k,
                   causal=causal, scale=scale, window=window, softcap=softcap,
                   alibi_slopes=alibi_slopes, sinks=sinks, k_scale=k_scale, v_scale=v_scale,
                   return_lse=return_lse, check_indices=check_indices, reference=False)


def attention_paged(self, q, k_cache, v_cache, cu_seqlens_q, seqlens_k, block_table,
                    max_seqlen_q=None, max_seqlen_k=None, *, causal=False, scale=None,
                    window=None, softcap=None, alibi_slopes=None, sinks=None, k_scale=None,
                    v_scale=None, return_lse=False, check_indices=True):
    """Attention against a paged KV cache (vLLM's PagedAttention layout): sequence b has
    seqlens_k[b] keys, key j in slot j % block_size of block block_table[b, j // block_size] of
    k_cache, v_cache [num_blocks, block_size, Hkv, d(v)]. Otherwise as :meth:`attention_varlen`."""
    return _varlen(self, q, k_cache, v_cache, cu_seqlens_q=cu_seqlens_q, seqlens_k=seqlens_k,
                   block_table=block_table, paged=True, max_seqlen_q=max_seqlen_q,
                   max_seqlen_k=max_seqlen_k, causal=causal, scale=scale, window=window,
                   softcap=softcap, alibi_slopes=alibi_slopes, sinks=sinks, k_scale=k_scale,
                   v_scale=v_scale, return_lse=return_lse, check_indices=check_indices,
                   reference=False)


def attention_varlen_reference(q, k, v, cu_seqlens_q, cu_seqlens_k=None, seqlens_k=None,
                               block_table=None, *, causal=False, scale=None, window=None,
                               softcap=None, alibi_slopes=None, sinks=None, k_scale=None,
                               v_scale=None, return_lse=False):
    """clattn_attention_varlen_reference (double precision, no device) on host arrays: packed
    (cu_seqlens_k) or paged (seqlens_k and block_table) as the tables given say."""
    paged = block_table is not None
    return _varlen(None, q, k, v, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k,
                   seqlens_k=seqlens_k, block_table=block_table, paged=paged, max_seqlen_q=None,
                   max_seqlen_k=None, causal=causal, scale=scale, window=window, softcap=softcap,
                   alibi_slopes=alibi_slopes, sinks=sinks, k_scale=k_scale, v_scale=v_scale,
                   return_lse=return_lse, check_indices=True, reference=True)


def reshape_and_cache(self, k_new, v_new, k_cache, v_cache, slot_mapping, k_scale=None,
                      v_scale=None):
    """Writes new tokens' keys and values into their cache slots, in place (vLLM's
    reshape_and_cache): row t of k_new [n, Hkv, d] and v_new [n, Hkv, dv] goes to slot
    slot_mapping[t] (block slot // block_size, offset slot % block_size); a negative slot, or one
    past the caches, is skipped. int8 caches quantize each row and write its scale into k_scale /
    v_scale [num_blocks, block_size, Hkv]. pyopencl arrays run clattn_reshape_and_cache on the
    device; host arrays (contiguous NumPy arrays or tensors, written in place) on the CPU."""
    if k_cache.ndim != 4 or v_cache.ndim != 4 or k_new.ndim != 3 or v_new.ndim != 3:
        raise invalid("caches must be [num_blocks, block_size, Hkv, d] and new rows [n, Hkv, d]")
    nb, bs, hkv, dk = k_cache.shape
    n = k_new.shape[0]
    int8 = _dtype_name(k_cache) == "int8"
    if (tuple(k_new.shape), tuple(v_new.shape[:2])) != ((n, hkv, dk), (n, hkv)) or \
            v_new.shape[2] != v_cache.shape[3] or tuple(v_cache.shape[:3]) != (nb, bs, hkv):
        raise invalid("shapes do not agree: k_new %s, v_new %s, k_cache %s, v_cache %s" % (
            tuple(k_new.shape), tuple(v_new.shape), tuple(k_cache.shape), tuple(v_cache.shape)))
    if int8 != (_dtype_name(v_cache) == "int8"):
        raise invalid("k_cache is %s and v_cache %s: both int8 or neither"
                      % (_dtype_name(k_cache), _dtype_name(v_cache)))
    _device.check_scales(int8, k_scale, v_scale)
    if _arrays.kind(k_cache) == _arrays.PYOPENCL:
        keep = []
        d = _lib.VarlenDesc()
        d.heads_q = d.heads_kv = hkv
        d.head_dim, d.head_dim_v = dk, v_cache.shape[3]
        d.dtype = _device._STORAGE.get(k_new.dtype.name, -1)
        if d.dtype < 0:
            raise invalid("k_new has dtype %s; device arrays are float32 or float16" % k_new.dtype)
        # the kernel reads and writes the bytes as d.dtype (the caches as int8 when they are):
        # a buffer of another dtype would be read or overwritten as garbage, not refused by size
        if v_new.dtype != k_new.dtype or (not int8 and (k_cache.dtype, v_cache.dtype) !=
                                          (k_new.dtype, k_new.dtype)):
            raise invalid("k_new, v_new and the caches must have one dtype, or int8 caches "
                          "(k_new %s, v_new %s, k_cache %s, v_cache %s)" % (
                              k_new.dtype, v_new.dtype, k_cache.dtype, v_cache.dtype))
        d.block_size, d.num_blocks, d.max_blocks_per_seq = bs, nb, 1
        d.kv_storage = _lib.KV_INT8 if int8 else _lib.KV_SAME
        if int8:
            d.k_scale, d.v_scale = _device.mem(k_scale, "k_scale", keep), \
                _device.mem(v_scale, "v_scale", keep)
        if slot_mapping.dtype != np.int32:
            raise invalid("slot_mapping must be int32")
        with self.using() as hc:
            check(_lib.LIB.clattn_reshape_and_cache(
                hc, ctypes.byref(d), n, _device.mem(slot_mapping, "slot_mapping", keep),
                _device.mem(k_new, "k_new", keep), _device.mem(v_new, "v_new", keep),
                _device.mem(k_cache, "k_cache", keep), _device.mem(v_cache, "v_cache", keep)), hc)
        return
    slots = _arrays.int32_array(slot_mapping, "slot_mapping")
    if slots.shape != (n,):
        raise invalid("slot_mapping must have one entry per new token (%d)" % n)
    ok = (slots >= 0) & (slots < nb * bs)
    # every check before any write: the caches are the caller's
    writes = []
    for new, cache, sc, name in ((k_new, k_cache, k_scale, "k"), (v_new, v_cache, v_scale, "v")):
        cache_np = _writable(cache, name + "_cache")
        rows = _arrays.host(new, name + "_new")
        if int8:
            if _dtype_name(cache) != "int8":
                raise invalid("k_cache is int8, %s_cache %s: both or neither" % (name, _dtype_name(cache)))
            sc_np = _writable(sc, name + "_scale")
            if sc_np.dtype != np.float32 or sc_np.shape != (nb, bs, hkv):
                raise invalid("%s_scale must be float32 [num_blocks, block_size, Hkv] = %s, not %s %s"
                              % (name, (nb, bs, hkv), sc_np.dtype, sc_np.shape))
            rows8, scales = _quantize_rows(new)
            writes.append((cache_np, rows8, sc_np, scales))
        else:
            if rows.dtype != _dtype_name(cache):
                raise invalid("%s_new has dtype %s and %s_cache %s" % (name, rows.dtype, name,
                                                                      _dtype_name(cache)))
            writes.append((cache_np, rows.array, None, None))
    for cache_np, rows, sc_np, scales in writes:
        flat = cache_np.reshape((nb * bs,) + cache_np.shape[2:])
        flat[slots[ok]] = rows[ok]
        if sc_np is not None:
            sc_np.reshape(nb * bs, hkv)[slots[ok]] = scales[ok]


def _dtype_name(x):
    return str(x.dtype).replace("torch.", "")


def _writable(x, name):
    """A NumPy view of the caller's array that writes through to it (no copy)."""
    if _arrays.kind(x) == _arrays.TORCH:
        if x.device.type != "cpu" or not x.is_contiguous():
            raise invalid("%s must be a contiguous CPU tensor (it is written in place)" % name)
        import torch
        t = x.detach()
        return t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16 \
            else t.numpy()
    if _arrays.kind(x) != _arrays.NUMPY or not x.flags.c_contiguous or not x.flags.writeable:
        raise invalid("%s must be a contiguous, writeable array (it is written in place)" % name)
    return x


def _quantize_rows(new):
    x8, sc = quantize_kv(new)
    if _arrays.kind(x8) == _arrays.TORCH:
        x8, sc = x8.numpy(), sc.numpy()
    return x8, sc
