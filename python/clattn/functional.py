"""PyTorch's functional attention with its signature and semantics, computed by clattn."""
import numpy as np

from . import _arrays
from .context import default_context
from .errors import invalid


def _fold(shape, name):
    """(B, H) for a tensor (..., L, E): no leading dim -> (1, 1); one -> (N, 1); more -> the last
    is the heads, the others fold into the batch."""
    lead = tuple(shape[:-2])
    if len(shape) < 2:
        raise invalid("%s must be (..., L, E), not %s" % (name, tuple(shape)))
    if not lead:
        return 1, 1
    if len(lead) == 1:
        return lead[0], 1
    return int(np.prod(lead[:-1])), lead[-1]


def _reshape(x, shape):
    return x.reshape(shape)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, *, enable_gqa=False, context=None):
    """torch.nn.functional.scaled_dot_product_attention, inference only.

    query (..., L, E), key (..., S, E), value (..., S, Ev): NumPy arrays or CPU tensors (float32,
    float16, bfloat16), the result the same kind, shape (..., L, Ev). attn_mask broadcasts to
    (..., L, S): bool (True = take part) or float (added). is_causal: PyTorch's top-left mask.
    scale: None for 1/sqrt(E). Key and value may have fewer heads than query (grouped-query
    attention; enable_gqa is accepted for PyTorch's signature and not needed). Differences from
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
    qs, ks, vs = tuple(query.shape), tuple(key.shape), tuple(value.shape)
    (B, H), (Bk, Hk) = _fold(qs, "query"), _fold(ks, "key")
    if _fold(vs, "value") != (Bk, Hk) or Bk != B:
        raise invalid("query %s, key %s and value %s must share their batch dims" % (qs, ks, vs))
    L, S = qs[-2], ks[-2]
    q = _reshape(query, (B, H, L, qs[-1]))
    k = _reshape(key, (B, Hk, S, ks[-1]))
    v = _reshape(value, (B, Hk, S, vs[-1]))
    mask = None
    if attn_mask is not None:
        m = _arrays.host(attn_mask, "attn_mask")
        a = m.array
        if m.dtype == "bfloat16":
            a = _arrays.wrap(a, "bfloat16", _arrays.TORCH).float().numpy()
        try:
            a = np.broadcast_to(a, qs[:-1] + (S,))
        except ValueError:
            raise invalid("attn_mask of shape %s does not broadcast to %s"
                          % (tuple(m.shape), qs[:-1] + (S,))) from None
        if len(qs) <= 4:   # keep broadcast dims broadcast: only insert the missing ones
            a = a.reshape((1,) * (4 - len(qs)) + a.shape) if len(qs) != 3 else a[:, None]
        else:
            a = a.reshape(B, H, L, S)
        mask = a
    out = ctx.attention(q, k, v, mask=mask, causal=bool(is_causal), scale=scale)
    return _reshape(out, qs[:-1] + (vs[-1],))
