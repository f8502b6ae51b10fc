"""PyTorch's functional attention with its signature and semantics, computed by clattn."""
import numpy as np

from . import _arrays
from .context import default_context
from .errors import invalid


def _expand(x, shape):
    """x broadcast to shape: a view for arrays and tensors (the call copies what it must)."""
    if _arrays.kind(x) == _arrays.TORCH:
        return x.expand(*shape)
    return np.broadcast_to(x, shape)


def _heads(hq, hk, what):
    """Query heads, and key heads (a divisor of them: grouped-query attention), as broadcast."""
    if hq == hk or hk == 1 or (hk and hq % hk == 0):
        return hq, hk
    if hq == 1:
        return hk, hk   # PyTorch broadcasts the query's single head
    raise invalid("%s: %d query heads against %d key heads: neither broadcasts nor groups"
                  % (what, hq, hk))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, *, enable_gqa=False, context=None):
    """torch.nn.functional.scaled_dot_product_attention, inference only.

    query (..., L, E), key (..., S, E), value (..., S, Ev): NumPy arrays or CPU tensors (float32,
    float16, bfloat16), the result the same kind, shape (..., L, Ev). The leading dims broadcast
    as PyTorch's (right-aligned); the one before L is the heads, where key and value may have a
    divisor of the query's (grouped-query attention; enable_gqa is accepted for PyTorch's
    signature and not needed). attn_mask broadcasts to (..., L, S): bool (True = take part) or
    float (added). is_causal: PyTorch's top-left mask. scale: None for 1/sqrt(E). Differences from
    PyTorch: dropout_p > 0 is refused (no training), and a row whose mask hides every key gives 0,
    where PyTorch gives NaN. context: the clattn.Context to run on (None: the default one).
    """
    del enable_gqa   # grouped-query attention is read off the shapes
    if dropout_p:
        raise invalid("dropout_p = %r: clattn computes inference attention only (dropout_p 0)"
                      % (dropout_p,))
    if attn_mask is not None and is_causal:
        raise invalid("give attn_mask or is_causal, not both (as PyTorch requires)")
    ctx = context or default_context()
    qs, ks, vs = (tuple(getattr(x, "shape", ())) for x in (query, key, value))
    for name, s in (("query", qs), ("key", ks), ("value", vs)):
        if len(s) < 2:
            raise invalid("%s must be (..., L, E), not %s" % (name, s))
    if ks[:-1] != vs[:-1]:
        raise invalid("key %s and value %s must agree but in their last dim" % (ks, vs))
    nd = max(len(qs), len(ks)) - 2
    lq, lk = (1,) * (nd - len(qs) + 2) + qs[:-2], (1,) * (nd - len(ks) + 2) + ks[:-2]
    try:   # the batch dims (all but the heads) broadcast as PyTorch's matmul does
        batch = tuple(np.broadcast_shapes(lq[:-1], lk[:-1])) if nd > 1 else ()
    except ValueError:
        raise invalid("query %s and key %s: their batch dims do not broadcast" % (qs, ks)) from None
    hq, hk = _heads(lq[-1], lk[-1], "query %s, key %s" % (qs, ks)) if nd else (1, 1)
    L, S = qs[-2], ks[-2]
    B = int(np.prod(batch)) if batch else 1
    q = _expand(query.reshape(lq + qs[-2:]), batch + (hq,) * (nd > 0) + qs[-2:]).reshape(B, hq, L, qs[-1])
    k = _expand(key.reshape(lk + ks[-2:]), batch + (hk,) * (nd > 0) + ks[-2:]).reshape(B, hk, S, ks[-1])
    v = _expand(value.reshape(lk + vs[-2:]), batch + (hk,) * (nd > 0) + vs[-2:]).reshape(B, hk, S, vs[-1])
    out_lead = batch + (hq,) * (nd > 0)
    mask = None
    if attn_mask is not None:
        a = _arrays.strided(attn_mask, "attn_mask")
        full = out_lead + (L, S)
        try:   # PyTorch's broadcast to (..., L, S), kept a view: broadcast dims are not copied
            a = np.broadcast_to(a, full)
        except ValueError:
            raise invalid("attn_mask of shape %s does not broadcast to %s"
                          % (tuple(a.shape), full)) from None
        mask = a.reshape(B, hq, L, S) if len(full) == 4 else \
            a.reshape((1,) * (4 - len(full)) + full) if len(full) < 4 else \
            np.ascontiguousarray(a).reshape(B, hq, L, S)
    out = ctx.attention(q, k, v, mask=mask, causal=bool(is_causal), scale=scale)
    return out.reshape(out_lead + (L, vs[-1]))
