"""clattn.MultiheadAttention: a trained torch.nn.MultiheadAttention's forward, run by clattn's
multi-head layer (clattn_mha_forward_host: the four projections and the attention on the device)."""
import ctypes

import numpy as np

from . import _arrays, _lib
from ._problem import _PATHS, causal_mode, choice, set_variants
from .context import default_context
from .errors import InvalidTypeError, check, invalid

_PROJ = {"auto": _lib.PROJ_AUTO, "own": _lib.PROJ_OWN, "clblast": _lib.PROJ_CLBLAST}


def _f32(x, name, copy=False):
    """x as a contiguous float32 array; copy: always one of its own (weights: a module's later
    updates must not reach the layer)."""
    if x is None:
        return None
    h = _arrays.host(x, name)
    a = h.array if h.dtype != "bfloat16" else _arrays.bf16_to_float32(h.array)
    return np.array(a, dtype=np.float32, order="C") if copy else \
        np.ascontiguousarray(a, dtype=np.float32)


def _additive(m, name):
    """A PyTorch MultiheadAttention mask (bool: True = hidden; float: added) as float32 additive.
    Other dtypes are refused, as PyTorch does: an integer mask added as 0/1 would hide nothing."""
    h = _arrays.host(m, name)
    if h.dtype == "bool":
        return np.where(h.array, np.float32(-np.inf), np.float32(0))
    if h.array.dtype.kind != "f" and h.dtype != "bfloat16":
        raise invalid("%s has dtype %s; MultiheadAttention masks are bool (True = not allowed to "
                      "attend) or float (added)" % (name, h.dtype))
    return _f32(m, name)


class MultiheadAttention:
    """``nn.MultiheadAttention``'s forward (inference), on a clattn context.

    Build it from a module with :meth:`from_torch`, or from the module's tensors (float32,
    row-major, the names of its state_dict) with the constructor. Calls take NumPy arrays or CPU
    tensors and return the same kind, as the module does: ``(attn_output, attn_weights or None)``.
    num_kv_heads < num_heads makes it grouped-query attention (k and v projections then have
    num_kv_heads * head_dim rows), which the PyTorch module has no form for.
    """

    def __init__(self, embed_dim, num_heads, *, in_proj_weight=None, q_proj_weight=None,
                 k_proj_weight=None, v_proj_weight=None, in_proj_bias=None, out_proj_weight,
                 out_proj_bias=None, kdim=None, vdim=None, batch_first=False, num_kv_heads=None,
                 context=None, path="auto", projections="auto", window=None, softcap=None,
                 alibi_slopes=None, sinks=None):
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.kdim, self.vdim = int(kdim or embed_dim), int(vdim or embed_dim)
        self.num_kv_heads = int(num_kv_heads or num_heads)
        self.batch_first = bool(batch_first)
        self.context = context
        self._w = {n: _f32(t, n, copy=True) for n, t in (
            ("in_proj_weight", in_proj_weight), ("q_proj_weight", q_proj_weight),
            ("k_proj_weight", k_proj_weight), ("v_proj_weight", v_proj_weight),
            ("in_proj_bias", in_proj_bias), ("out_proj_weight", out_proj_weight),
            ("out_proj_bias", out_proj_bias))}
        self._desc = _lib.MhaDesc()
        self._keep = []
        d = self._desc
        d.embed_dim, d.kdim, d.vdim = self.embed_dim, self.kdim, self.vdim
        d.heads_q, d.heads_kv = self.num_heads, self.num_kv_heads
        d.in_bias, d.out_bias = int(in_proj_bias is not None), int(out_proj_bias is not None)
        d.path = choice(path, _PATHS, "path")
        d.projections = choice(projections, _PROJ, "projections")
        set_variants(d, self._keep, self.num_heads, window, softcap, alibi_slopes, sinks)
        self._weights = _lib.MhaWeights(**{n: a.ctypes.data_as(_lib.P_float)
                                           for n, a in self._w.items() if a is not None})
        self._check_weights()

    def _check_weights(self):
        E, dh = self.embed_dim, self.embed_dim // max(self.num_heads, 1)
        kv = self.num_kv_heads * dh
        want = {"in_proj_weight": (E + 2 * kv, E), "q_proj_weight": (E, E),
                "k_proj_weight": (kv, self.kdim), "v_proj_weight": (kv, self.vdim),
                "in_proj_bias": (E + 2 * kv,), "out_proj_weight": (E, E), "out_proj_bias": (E,)}
        for n, a in self._w.items():
            if a is not None and a.shape != want[n]:
                raise invalid("%s has shape %s; this layer needs %s" % (n, a.shape, want[n]))

    @classmethod
    def from_torch(cls, module, *, context=None, path="auto", projections="auto"):
        """The layer of a torch.nn.MultiheadAttention (its current weights, copied)."""
        import torch
        if not isinstance(module, torch.nn.MultiheadAttention):
            raise InvalidTypeError("from_torch takes a torch.nn.MultiheadAttention, not %s"
                                   % type(module).__name__)
        if module.bias_k is not None or module.add_zero_attn:
            raise invalid("add_bias_kv and add_zero_attn are not supported by clattn's layer")
        sd = {k: v.detach() for k, v in module.state_dict().items()}
        packed = module._qkv_same_embed_dim
        return cls(module.embed_dim, module.num_heads,
                   in_proj_weight=sd.get("in_proj_weight") if packed else None,
                   q_proj_weight=None if packed else sd["q_proj_weight"],
                   k_proj_weight=None if packed else sd["k_proj_weight"],
                   v_proj_weight=None if packed else sd["v_proj_weight"],
                   in_proj_bias=sd.get("in_proj_bias"), out_proj_weight=sd["out_proj.weight"],
                   out_proj_bias=sd.get("out_proj.bias"), kdim=module.kdim, vdim=module.vdim,
                   batch_first=module.batch_first, context=context, path=path,
                   projections=projections)

    def __call__(self, query, key, value, key_padding_mask=None, need_weights=True,
                 attn_mask=None, average_attn_weights=True, is_causal=False):
        return self.forward(query, key, value, key_padding_mask, need_weights, attn_mask,
                            average_attn_weights, is_causal)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        """As nn.MultiheadAttention.forward: masks in its conventions (bool True = not allowed
        to attend; float added), attn_mask (L, S) or (N*num_heads, L, S), key_padding_mask
        (N, S); unbatched (L, E) inputs; weights averaged over heads unless
        average_attn_weights=False. is_causal without attn_mask is the top-left causal mask.
        A row whose masks hide every key gives 0 (PyTorch gives NaN)."""
        like = _arrays.kind(query)
        qh = _arrays.host(query, "query")
        if qh.dtype not in ("float32", "float16"):
            raise invalid("query has dtype %s; the layer takes float32 or float16" % qh.dtype)
        dtype = qh.dtype
        xs = [_f32(x, n) for x, n in ((query, "query"), (key, "key"), (value, "value"))]
        batched = xs[0].ndim == 3
        if not batched:
            if xs[0].ndim != 2:
                raise invalid("query must be (L, E), (L, N, E) or (N, L, E), not %s"
                              % (xs[0].shape,))
            xs = [x[None] for x in xs]
        elif not self.batch_first:
            xs = [np.ascontiguousarray(x.transpose(1, 0, 2)) for x in xs]
        if any(x.ndim != 3 for x in xs):
            raise invalid("query, key and value must all be batched or all unbatched")
        xq, xk, xv = xs
        B, L, S = xq.shape[0], xq.shape[1], xk.shape[1]
        widths = ((xq, self.embed_dim, "query"), (xk, self.kdim, "key"), (xv, self.vdim, "value"))
        for x, w, n in widths:
            if x.shape[0] != B or x.shape[2] != w:
                raise invalid("%s has shape %s; the layer needs batch %d and width %d"
                              % (n, x.shape, B, w))
        if xv.shape[1] != S:
            raise invalid("key and value need one length (%d, %d)" % (S, xv.shape[1]))

        d = _lib.MhaDesc.from_buffer_copy(self._desc)
        d.batch, d.seq_q, d.seq_kv = B, L, S
        d.dtype = _lib.F16 if dtype == "float16" else _lib.F32
        mask = self._mask(key_padding_mask, attn_mask, B, L, S, batched)
        if mask is not None:
            d.mask_type = _lib.MASK_ADDITIVE_F32
            b, h, r, _ = mask.shape
            d.mask_batch_stride = h * r * S if b > 1 else 0
            d.mask_head_stride = r * S if h > 1 else 0
            d.mask_rows_broadcast = int(r == 1 and L > 1)
            d.mask_row_stride = 0 if d.mask_rows_broadcast else S
        if is_causal and attn_mask is None:   # a hint beside an attn_mask, as in PyTorch
            d.causal = causal_mode(True)
        H = self.num_heads
        out = np.empty((B, L, self.embed_dim), np.float32)
        weights = np.empty((B, H, L, S), np.float32) if need_weights else None
        ctx = self.context or default_context()
        with ctx.using() as h:
            check(_lib.LIB.clattn_mha_forward_host(
                h, ctypes.byref(d), ctypes.byref(self._weights), xq.ctypes.data,
                xk.ctypes.data, xv.ctypes.data, None if mask is None else mask.ctypes.data,
                out.ctypes.data, None if weights is None else weights.ctypes.data), h)

        if not batched:
            out = out[0]
        elif not self.batch_first:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        out = out.astype(np.float16) if dtype == "float16" else out
        if weights is not None:
            if average_attn_weights:
                weights = weights.mean(axis=1)
            if not batched:
                weights = weights[0]
            weights = _arrays.wrap(np.ascontiguousarray(weights), "float32", like)
        return _arrays.wrap(out, dtype, like), weights

    def _mask(self, key_padding_mask, attn_mask, B, L, S, batched):
        """Both of PyTorch's masks folded into one float32 additive mask (b, h, r, S), each of
        b, h, r either 1 (broadcast) or full."""
        m = None
        if attn_mask is not None:
            a = _additive(attn_mask, "attn_mask")
            if a.shape == (L, S):
                m = a[None, None]
            elif a.shape == (B * self.num_heads, L, S):
                m = a.reshape(B, self.num_heads, L, S)
            else:
                raise invalid("attn_mask must be (L, S) = (%d, %d) or (N*num_heads, L, S), not %s"
                              % (L, S, a.shape))
        if key_padding_mask is not None:
            k = _additive(key_padding_mask, "key_padding_mask")
            if not batched and k.ndim == 1:
                k = k[None]
            if k.shape != (B, S):
                raise invalid("key_padding_mask must be (N, S) = (%d, %d), not %s" % (B, S, k.shape))
            k = k[:, None, None, :]
            m = k if m is None else m + k
        return None if m is None else np.ascontiguousarray(m, dtype=np.float32)
