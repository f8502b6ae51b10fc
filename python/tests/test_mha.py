"""clattn.MultiheadAttention.from_torch against the torch.nn.MultiheadAttention it was made from:
batch_first either way, packed and separate projections, biases or none, every mask form the
module takes, weights averaged or per head, unbatched inputs, float16 storage."""
import numpy as np
import pytest
import torch

import clattn
from conftest import assert_close


def module(E=32, H=4, batch_first=True, bias=True, kdim=None, vdim=None, seed=0):
    torch.manual_seed(seed)
    return torch.nn.MultiheadAttention(E, H, bias=bias, kdim=kdim, vdim=vdim,
                                       batch_first=batch_first).eval()


def inputs(rng, N, L, S, E, kdim=None, vdim=None, batch_first=True):
    def t(n, length, w):
        shape = (n, length, w) if batch_first else (length, n, w)
        return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
    return t(N, L, E), t(N, S, kdim or E), t(N, S, vdim or E)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kv", [(None, None), (24, 40)])
def test_layer_matches_module(ctx, rng, batch_first, bias, kv):
    m = module(batch_first=batch_first, bias=bias, kdim=kv[0], vdim=kv[1])
    layer = clattn.MultiheadAttention.from_torch(m, context=ctx)
    q, k, v = inputs(rng, 3, 11, 17, 32, *kv, batch_first=batch_first)
    with torch.no_grad():
        want, want_w = m(q, k, v)
    got, got_w = layer(q, k, v)
    assert isinstance(got, torch.Tensor) and got.shape == want.shape
    assert_close(got, want)
    assert_close(got_w, want_w)


def test_self_attention_per_head_weights(ctx, rng):
    m = module(E=64, H=8)
    layer = clattn.MultiheadAttention.from_torch(m, context=ctx)
    x = torch.from_numpy(rng.standard_normal((2, 21, 64), dtype=np.float32))
    with torch.no_grad():
        want, want_w = m(x, x, x, average_attn_weights=False)
    got, got_w = layer(x, x, x, average_attn_weights=False)
    assert got_w.shape == (2, 8, 21, 21)
    assert_close(got, want)
    assert_close(got_w, want_w)
    out, none = layer(x, x, x, need_weights=False)
    assert none is None
    assert_close(out, want)


MASKS = ["kpm-bool", "kpm-float", "attn-2d-bool", "attn-3d-float", "both", "causal"]


@pytest.mark.parametrize("kind", MASKS)
def test_masks(ctx, rng, kind):
    N, L, S, E, H = 2, 9, 13, 32, 4
    m = module(E=E, H=H)
    layer = clattn.MultiheadAttention.from_torch(m, context=ctx)
    q, k, v = inputs(rng, N, L, S, E)
    kpm = torch.zeros(N, S, dtype=torch.bool)
    kpm[0, 10:] = True                        # True: padding, ignored (PyTorch's convention)
    kw = {}
    if kind == "kpm-bool":
        kw["key_padding_mask"] = kpm
    elif kind == "kpm-float":
        kw["key_padding_mask"] = torch.from_numpy(rng.standard_normal((N, S), dtype=np.float32))
    elif kind == "attn-2d-bool":
        am = torch.from_numpy(rng.random((L, S)) > 0.7)
        am[:, 0] = False
        kw["attn_mask"] = am
    elif kind == "attn-3d-float":
        kw["attn_mask"] = torch.from_numpy(rng.standard_normal((N * H, L, S), dtype=np.float32))
    elif kind == "both":
        kw["key_padding_mask"] = kpm
        kw["attn_mask"] = torch.from_numpy(rng.standard_normal((L, S), dtype=np.float32))
    else:
        q, k, v = inputs(rng, N, L, L, E)
        kw["attn_mask"] = torch.ones(L, L, dtype=torch.bool).triu(1)   # the module's causal mask
    with torch.no_grad():
        want, want_w = m(q, k, v, **kw)
    got, got_w = layer(q, k, v, **kw)
    assert_close(got, want, what=kind)
    assert_close(got_w, want_w, what=kind)
    if kind == "causal":
        got2, _ = layer(q, k, v, is_causal=True)
        assert_close(got2, want)
        # is_causal beside a key_padding_mask: both apply
        kpm = torch.zeros(N, L, dtype=torch.bool)
        kpm[1, 5:] = True
        with torch.no_grad():
            want3, _ = m(q, k, v, key_padding_mask=kpm, attn_mask=kw["attn_mask"])
        got3, _ = layer(q, k, v, key_padding_mask=kpm, is_causal=True)
        assert_close(got3, want3)


def test_unbatched_and_numpy(ctx, rng):
    m = module()
    layer = clattn.MultiheadAttention.from_torch(m, context=ctx)
    x = rng.standard_normal((7, 32), dtype=np.float32)
    got, w = layer(x, x, x)
    assert isinstance(got, np.ndarray) and got.shape == (7, 32) and w.shape == (7, 7)
    with torch.no_grad():
        want, want_w = m(*(torch.from_numpy(x),) * 3)
    assert_close(got, want)
    assert_close(w, want_w)


def test_float16_storage(ctx, rng):
    m = module()
    layer = clattn.MultiheadAttention.from_torch(m, context=ctx)
    x = torch.from_numpy(rng.standard_normal((2, 10, 32), dtype=np.float32))
    got, _ = layer(x.half(), x.half(), x.half())
    with torch.no_grad():
        want, _ = m(x, x, x)
    assert got.dtype == torch.float16
    assert_close(got, want, "float16")


def test_refusals(ctx):
    with pytest.raises(TypeError):
        clattn.MultiheadAttention.from_torch(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="add_bias_kv"):
        clattn.MultiheadAttention.from_torch(torch.nn.MultiheadAttention(8, 2, add_bias_kv=True))
    layer = clattn.MultiheadAttention.from_torch(module(), context=ctx)
    x = torch.zeros(2, 5, 32)
    with pytest.raises(ValueError, match="width"):
        layer(x, torch.zeros(2, 5, 31), x)
    with pytest.raises(ValueError, match="key_padding_mask"):
        layer(x, x, x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="attn_mask"):
        layer(x, x, x, attn_mask=torch.zeros(3, 5))
    # an integer mask is neither of the module's conventions (PyTorch refuses it too): added as
    # 0/1 it would hide nothing
    with pytest.raises(ValueError, match="bool"):
        layer(x, x, x, key_padding_mask=torch.tensor([[0, 0, 0, 0, 1]] * 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        clattn.MultiheadAttention(32, 4, in_proj_weight=np.zeros((96, 31), np.float32),
                                  out_proj_weight=np.zeros((32, 32), np.float32))


def test_weights_are_copied(ctx, rng):
    """from_torch copies the module's tensors: training it afterwards does not change the layer."""
    m = module()
    layer = clattn.MultiheadAttention.from_torch(m, context=ctx)
    x = torch.from_numpy(rng.standard_normal((2, 5, 32), dtype=np.float32))
    before = layer(x, x, x)[0].clone()
    with torch.no_grad():
        m.out_proj.weight.zero_()
        m.in_proj_weight.mul_(2.0)
    assert torch.equal(layer(x, x, x)[0], before)
