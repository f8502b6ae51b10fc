"""Context.attention on host arrays against the library's double-precision reference and against
PyTorch's math: shapes with odd sizes, GQA, both layouts, every storage type, causal modes, masks
of each kind and broadcast, the weights and lse, the variants and int8 K/V."""
import numpy as np
import pytest
import torch

import clattn
from conftest import assert_close

SHAPES = [  # B, Hq, Hkv, Lq, Lk, d, dv
    (1, 1, 1, 1, 1, 8, 8), (2, 3, 3, 17, 33, 16, 16), (1, 4, 2, 65, 31, 64, 32),
    (3, 6, 1, 5, 130, 40, 40), (1, 2, 2, 100, 100, 128, 128), (2, 8, 4, 1, 257, 64, 64),
]


def make(rng, shape, layout="bhsd", dtype=np.float32):
    B, Hq, Hkv, Lq, Lk, d, dv = shape

    def t(h, L, dim):
        s = (B, h, L, dim) if layout == "bhsd" else (B, L, h, dim)
        return rng.standard_normal(s, dtype=np.float32).astype(dtype)
    return t(Hq, Lq, d), t(Hkv, Lk, d), t(Hkv, Lk, dv)


def torch_math(q, k, v, visible=None, additive=None, scale=None):
    """PyTorch's attention written out on [B, H, L, d] float64 tensors (GQA by repetition)."""
    q, k, v = (torch.as_tensor(np.asarray(x, np.float64)) for x in (q, k, v))
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    s = q @ k.transpose(-1, -2) * (scale if scale is not None else q.shape[-1] ** -0.5)
    if additive is not None:
        s = s + torch.as_tensor(np.asarray(additive, np.float64))
    if visible is not None:
        s = s.masked_fill(~torch.as_tensor(np.array(visible)), float("-inf"))
    return (torch.softmax(s, -1) @ v).numpy()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("causal", [False, "top_left", "bottom_right"])
def test_grid_against_reference(ctx, rng, shape, layout, causal):
    q, k, v = make(rng, shape, layout)
    for path in ("fused", "unfused"):
        got = ctx.attention(q, k, v, causal=causal, layout=layout, path=path)
        ref = clattn.attention_reference(q, k, v, causal=causal, layout=layout)
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert_close(got, ref, what="%s %s %s %s" % (shape, layout, causal, path))


@pytest.mark.parametrize("shape", SHAPES[1:4])
def test_against_torch_math(ctx, rng, shape):
    q, k, v = make(rng, shape)
    Lq, Lk = shape[3], shape[4]
    tri = np.tril(np.ones((Lq, Lk), bool))             # PyTorch's is_causal: top-left
    assert_close(ctx.attention(q, k, v, causal=True), torch_math(q, k, v, visible=tri))
    assert_close(ctx.attention(q, k, v, scale=0.3), torch_math(q, k, v, scale=0.3))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("shape", SHAPES[1:4])
def test_half_storage_tensors(ctx, rng, dtype, shape):
    q, k, v = (torch.from_numpy(x).to(getattr(torch, dtype)) for x in make(rng, shape))
    got = ctx.attention(q, k, v, causal="bottom_right")
    assert isinstance(got, torch.Tensor) and got.dtype == q.dtype
    ref = clattn.attention_reference(q, k, v, causal="bottom_right")
    assert_close(got, ref, dtype)


def test_float16_numpy(ctx, rng):
    q, k, v = make(rng, SHAPES[2], dtype=np.float16)
    got = ctx.attention(q, k, v)
    assert got.dtype == np.float16
    assert_close(got, clattn.attention_reference(q, k, v), "float16")


MASKS = ["bool-full", "bool-key-padding", "float-rows", "float16-heads", "uint8-2d"]


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("path", ["fused", "unfused"])
def test_masks(ctx, rng, kind, path):
    shape = (2, 4, 2, 19, 45, 32, 32)
    B, Hq, _, Lq, Lk = shape[:5]
    q, k, v = make(rng, shape)
    visible = additive = None
    if kind == "bool-full":
        mask = rng.random((B, Hq, Lq, Lk)) > 0.3
        visible = mask
    elif kind == "bool-key-padding":                     # [B, 1, 1, Lk], broadcast
        mask = np.ones((B, 1, 1, Lk), bool)
        mask[0, ..., 40:] = False
        visible = np.broadcast_to(mask, (B, Hq, Lq, Lk))
    elif kind == "float-rows":                           # [Lq, Lk] additive
        mask = rng.standard_normal((Lq, Lk)).astype(np.float32)
        additive = mask
    elif kind == "float16-heads":                        # [1, Hq, Lq, Lk] additive float16
        mask = rng.standard_normal((1, Hq, Lq, Lk)).astype(np.float16)
        additive = mask.astype(np.float32)
    else:
        mask = (rng.random((Lq, Lk)) > 0.5).astype(np.uint8)
        mask[:, 0] = 1
        visible = mask.astype(bool)
    got = ctx.attention(q, k, v, mask=mask, path=path)
    assert_close(got, torch_math(q, k, v, visible=visible, additive=additive), what=kind)
    tmask = torch.from_numpy(np.ascontiguousarray(mask))
    assert_close(ctx.attention(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
                               mask=tmask, path=path), got, what=kind + " tensor")


def test_empty_rows_give_zero(ctx, rng):
    q, k, v = make(rng, (1, 2, 2, 4, 6, 8, 8))
    mask = np.ones((4, 6), bool)
    mask[1] = False
    out, w, lse = ctx.attention(q, k, v, mask=mask, return_weights=True, return_lse=True)
    assert np.all(out[:, :, 1] == 0) and np.all(w[:, :, 1] == 0)
    assert np.all(np.isneginf(lse[:, :, 1]))


def test_weights_and_lse(ctx, rng):
    shape = (2, 4, 2, 23, 37, 16, 24)
    q, k, v = make(rng, shape)
    out, w, lse = ctx.attention(q, k, v, causal="bottom_right", return_weights=True,
                                return_lse=True)
    r_out, r_w, r_lse = clattn.attention_reference(q, k, v, causal="bottom_right",
                                                   return_weights=True, return_lse=True)
    assert w.shape == (2, 4, 23, 37) and lse.shape == (2, 4, 23)
    assert_close(out, r_out)
    assert_close(w, r_w)
    assert_close(lse, r_lse)
    assert np.allclose(w.sum(-1), 1, atol=1e-5)
    fused_out, fused_lse = ctx.attention(q, k, v, causal="bottom_right", return_lse=True,
                                         path="fused")
    assert_close(fused_lse, r_lse)


def test_non_contiguous_inputs_are_copied(ctx, rng):
    q, k, v = make(rng, (2, 4, 4, 30, 30, 16, 16), layout="bshd")
    qt, kt, vt = (x.transpose(0, 2, 1, 3) for x in (q, k, v))    # bhsd views, not contiguous
    assert not qt.flags.c_contiguous
    before = [x.copy() for x in (q, k, v)]
    got = ctx.attention(qt, kt, vt)
    assert_close(got, ctx.attention(q, k, v, layout="bshd").transpose(0, 2, 1, 3))
    tq = torch.from_numpy(q).permute(0, 2, 1, 3)
    assert_close(ctx.attention(tq, torch.from_numpy(k).permute(0, 2, 1, 3),
                               torch.from_numpy(v).permute(0, 2, 1, 3)), got)
    assert all(np.array_equal(a, b) for a, b in zip(before, (q, k, v)))


VARIANTS = [dict(window=(5, 0)), dict(window=(-1, 3)), dict(softcap=2.0),
            dict(alibi_slopes=[0.5, 0.25, 0.125, 0.0625]), dict(sinks=[0.0, 1.0, -np.inf, 2.0]),
            dict(window=(7, 2), softcap=5.0, alibi_slopes=[0.1] * 4, sinks=[0.5] * 4)]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda d: "+".join(d))
@pytest.mark.parametrize("path", ["fused", "unfused"])
def test_variants(ctx, rng, variant, path):
    q, k, v = make(rng, (2, 4, 2, 21, 40, 32, 32))
    got = ctx.attention(q, k, v, causal="bottom_right", path=path, **variant)
    assert_close(got, clattn.attention_reference(q, k, v, causal="bottom_right", **variant))


def test_window_against_torch_mask(ctx, rng):
    q, k, v = make(rng, (1, 2, 2, 30, 30, 16, 16))
    i, j = np.arange(30)[:, None], np.arange(30)[None, :]
    visible = (j <= i) & (j >= i - 4)
    assert_close(ctx.attention(q, k, v, causal=True, window=(4, 0)),
                 torch_math(q, k, v, visible=visible))


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_int8_kv(ctx, rng, layout):
    q, k, v = make(rng, (2, 4, 2, 9, 70, 32, 32), layout)
    k8, ks = clattn.quantize_kv(k, layout)
    v8, vs = clattn.quantize_kv(v, layout)
    assert k8.dtype == np.int8 and ks.shape == k.shape[:-1]
    assert np.all(np.abs(k8 * ks[..., None] - k) <= ks[..., None] / 2 + 1e-7)
    got = ctx.attention(q, k8, v8, k_scale=ks, v_scale=vs, layout=layout)
    ref = clattn.attention_reference(q, k8, v8, k_scale=ks, v_scale=vs, layout=layout)
    assert_close(got, ref)
    # the reference on the dequantized values is the same attention
    dq = lambda x8, s: (x8 * s[..., None]).astype(np.float32)   # noqa: E731
    assert_close(got, ctx.attention(q, dq(k8, ks), dq(v8, vs), layout=layout))


def test_plan_names_the_path(ctx):
    spec = ((1, 4, 128, 64), "float32")
    assert ctx.plan(spec, spec, spec).startswith("fused path")
    assert ctx.plan(spec, spec, spec, return_weights=True).startswith("unfused path")


def test_results_are_new_arrays(ctx, rng):
    q, k, v = make(rng, (1, 1, 1, 3, 3, 4, 4))
    a, b = ctx.attention(q, k, v), ctx.attention(q, k, v)
    assert a is not b and not np.shares_memory(a, b) and not np.shares_memory(a, q)


def test_empty_batch_and_length(ctx):
    q = np.zeros((0, 2, 5, 8), np.float32)
    assert ctx.attention(q, q, q).shape == (0, 2, 5, 8)
    q = np.zeros((1, 2, 0, 8), np.float32)
    k = np.ones((1, 2, 3, 8), np.float32)
    assert ctx.attention(q, k, k).shape == (1, 2, 0, 8)


def test_broadcast_masks_are_not_copied_whole(ctx, rng, monkeypatch):
    from clattn import _problem
    seen = []
    real = _problem.compact_mask
    monkeypatch.setattr(_problem, "compact_mask", lambda m, f: seen.append(real(m, f)) or seen[-1])
    import clattn.attention as att
    monkeypatch.setattr(att, "compact_mask", _problem.compact_mask)
    q, k, v = make(rng, (8, 16, 16, 64, 64, 8, 8))
    m = rng.random((64, 64)) > 0.5
    m[:, 0] = True
    got = ctx.attention(q, k, v, mask=np.broadcast_to(m, (8, 16, 64, 64)))
    t = torch.from_numpy(m).expand(8, 16, 64, 64)
    got_t = ctx.attention(q, k, v, mask=t)
    assert all(s.array.nbytes == 64 * 64 for s in seen)     # one [1, 1, 64, 64] copy each
    assert_close(got, torch_math(q, k, v, visible=np.broadcast_to(m, (8, 16, 64, 64))))
    assert_close(got_t, got)
