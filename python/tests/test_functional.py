"""clattn.functional.scaled_dot_product_attention against PyTorch's attention (its
scaled_dot_product_attention where the installed version has it, else the math it defines)."""
import numpy as np
import pytest
import torch

import clattn
from clattn.functional import scaled_dot_product_attention as sdpa
from conftest import assert_close


def torch_sdpa(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """PyTorch's definition, in float64 (GQA by repeating k and v over the head dim)."""
    q, k, v = q.double(), k.double(), v.double()
    if q.dim() >= 3 and k.shape[-3] != q.shape[-3]:
        rep = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(rep, -3), v.repeat_interleave(rep, -3)
    L, S = q.shape[-2], k.shape[-2]
    s = q @ k.transpose(-1, -2) * (scale if scale is not None else q.shape[-1] ** -0.5)
    if is_causal:
        s = s.masked_fill(~torch.ones(L, S, dtype=torch.bool).tril(), float("-inf"))
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
            else s + attn_mask.double()
    return torch.softmax(s, -1) @ v


CASES = [  # query shape, key/value length, value width, key heads (None: as query)
    ((2, 4, 13, 32), 29, 32, None), ((1, 8, 64, 64), 64, 48, 2), ((3, 17, 16), 21, 16, None),
    ((9, 24), 31, 24, None), ((2, 3, 2, 11, 16), 7, 16, None), ((1, 12, 1, 128), 300, 128, 4),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0])))
@pytest.mark.parametrize("mask", [None, "causal", "bool", "float", "key-padding"])
def test_sdpa_matches_pytorch(rng, case, mask):
    qs, S, Ev, hk = case
    L = qs[-2]
    ks = qs[:-3] + ((hk,) if hk else qs[-3:-2]) + (S, qs[-1]) if len(qs) >= 3 else (S, qs[-1])
    vs = ks[:-1] + (Ev,)
    q, k, v = (torch.from_numpy(rng.standard_normal(s, dtype=np.float32)) for s in (qs, ks, vs))
    kw = {}
    if mask == "causal":
        kw["is_causal"] = True
    elif mask == "bool":
        m = torch.from_numpy(rng.random(qs[:-1] + (S,)) > 0.4)
        m[..., 0] = True                      # no empty row (PyTorch gives NaN there)
        kw["attn_mask"] = m
    elif mask == "float":
        kw["attn_mask"] = torch.from_numpy(rng.standard_normal((L, S), dtype=np.float32))
    elif mask == "key-padding":
        m = torch.ones(S, dtype=torch.bool)
        m[S // 2:] = False
        kw["attn_mask"] = m                   # broadcast over batch, heads and rows
    got = sdpa(q, k, v, **kw)
    assert isinstance(got, torch.Tensor) and got.shape == qs[:-1] + (Ev,)
    assert_close(got, torch_sdpa(q, k, v, **kw))


@pytest.mark.parametrize("qs,ks", [((2, 4, 7, 16), (4, 9, 16)),        # key broadcast over batch
                                   ((1, 4, 7, 16), (3, 4, 9, 16)),     # query broadcast over batch
                                   ((2, 3, 4, 7, 16), (3, 1, 9, 16)),  # 5-D, one key head (MQA)
                                   ((2, 1, 7, 16), (2, 3, 9, 16))])    # one query head broadcast
def test_sdpa_broadcasts_like_pytorch(rng, qs, ks):
    q = torch.from_numpy(rng.standard_normal(qs, dtype=np.float32))
    k = torch.from_numpy(rng.standard_normal(ks, dtype=np.float32))
    v = torch.from_numpy(rng.standard_normal(ks, dtype=np.float32))
    s = torch.matmul(q.double(), k.double().transpose(-1, -2)) * qs[-1] ** -0.5
    want = torch.matmul(torch.softmax(s, -1), v.double())     # PyTorch's own broadcasting
    got = sdpa(q, k, v)
    assert got.shape == want.shape
    assert_close(got, want)
    m = torch.from_numpy(rng.random((qs[-2], ks[-2])) > 0.3)
    m[:, 0] = True
    s = s.masked_fill(~m, float("-inf"))
    assert_close(sdpa(q, k, v, attn_mask=m), torch.matmul(torch.softmax(s, -1), v.double()))


def test_sdpa_refuses_what_pytorch_refuses():
    q, k = torch.zeros(2, 3, 2, 4, 8), torch.zeros(3, 2, 2, 5, 8)
    with pytest.raises(clattn.InvalidArgumentError, match="broadcast"):
        sdpa(q, k, k)
    with pytest.raises(clattn.InvalidArgumentError, match="neither broadcasts nor groups"):
        sdpa(torch.zeros(1, 6, 4, 8), torch.zeros(1, 4, 5, 8), torch.zeros(1, 4, 5, 8))


def test_sdpa_numpy_and_scale(rng):
    q, k, v = (rng.standard_normal((2, 2, 9, 16), dtype=np.float32) for _ in range(3))
    got = sdpa(q, k, v, scale=0.5)
    assert isinstance(got, np.ndarray)
    assert_close(got, torch_sdpa(*(torch.from_numpy(x) for x in (q, k, v)), scale=0.5))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sdpa_half_types(rng, dtype):
    q, k, v = (torch.from_numpy(rng.standard_normal((1, 4, 20, 32), dtype=np.float32)).to(dtype)
               for _ in range(3))
    got = sdpa(q, k, v, is_causal=True)
    assert got.dtype == dtype
    assert_close(got, torch_sdpa(q, k, v, is_causal=True), str(dtype).split(".")[1])


@pytest.mark.skipif(not hasattr(torch.nn.functional, "scaled_dot_product_attention"),
                    reason="this PyTorch has no scaled_dot_product_attention (1.13: its math "
                           "is what the other tests compare against)")
def test_sdpa_against_torch_itself(rng):
    q, k, v = (torch.from_numpy(rng.standard_normal((2, 4, 33, 64), dtype=np.float32))
               for _ in range(3))
    assert_close(sdpa(q, k, v, is_causal=True),
                 torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_sdpa_refusals():
    q = torch.zeros(1, 1, 4, 8)
    with pytest.raises(ValueError, match="dropout"):
        sdpa(q, q, q, dropout_p=0.1)
    with pytest.raises(ValueError, match="not both"):
        sdpa(q, q, q, attn_mask=torch.ones(4, 4, dtype=torch.bool), is_causal=True)
    with pytest.raises(clattn.InvalidArgumentError, match="broadcast"):
        sdpa(q, q, q, attn_mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(clattn.InvalidArgumentError, match="dtype float64"):
        sdpa(q.double(), q.double(), q.double())
