"""Bad input to every public entry point: a clattn.Error subclass with the status and a message
that names the problem (ValueError for invalid arguments, TypeError for wrong kinds), never a
crash, and nothing the caller owns changed."""
import numpy as np
import pytest
import torch

import clattn

Q = np.ones((1, 2, 4, 8), np.float32)


def unchanged(*arrays):
    copies = [a.tobytes() for a in arrays]
    return lambda: all(a.tobytes() == c for a, c in zip(arrays, copies))


def test_context_refusals(tmp_path):
    with pytest.raises(clattn.DeviceNotFoundError) as e:
        clattn.Context("no such device anywhere")
    assert e.value.status == 4 and "no such device anywhere" in str(e.value)
    with pytest.raises(TypeError, match="unexpected option"):
        clattn.Context(cach=False)
    with pytest.raises(ValueError, match="device_class"):
        clattn.Context(device_class="tpu")
    with pytest.raises(TypeError):
        clattn.Context(3)
    with pytest.raises(TypeError):
        clattn.Context(log="not callable")
    c = clattn.Context(cache=False)
    c.close()
    c.close()                                  # twice is fine
    with pytest.raises(clattn.InvalidArgumentError, match="closed"):
        c.attention(Q, Q, Q)
    with pytest.raises(clattn.InvalidArgumentError, match="closed"):
        c.cache_info()


BAD = [  # kwargs or replaced arrays, the words the message must contain
    (dict(q=[[1.0]]), "NumPy array or a PyTorch tensor"),
    (dict(q=Q.astype(np.float64), k=Q.astype(np.float64), v=Q.astype(np.float64)), "float64"),
    (dict(k=Q.astype(np.float16)), "one dtype"),
    (dict(q=Q[0]), "4-D"),
    (dict(k=np.ones((1, 2, 4, 7), np.float32)), "do not agree"),
    (dict(k=np.ones((1, 3, 4, 8), np.float32), v=np.ones((1, 3, 4, 8), np.float32)), "multiple"),
    (dict(causal="diagonal"), "causal must be"),
    (dict(layout="hbsd"), "layout must be"),
    (dict(path="fastest"), "path must be"),
    (dict(scale=0.0), "scale"),
    (dict(scale=float("nan")), "scale"),
    (dict(window=(-3, 0)), "window_left"),
    (dict(window=5), "window must be a pair"),
    (dict(softcap=-1.0), "softcap"),
    (dict(softcap=float("nan")), "softcap"),
    (dict(alibi_slopes=[1.0]), "alibi_slopes has shape"),
    (dict(alibi_slopes=[float("inf"), 1.0]), "alibi"),
    (dict(sinks=np.ones(3, np.float32)), "sinks has shape"),
    (dict(mask=np.ones((4, 4), np.int32)), "mask has dtype int32"),
    (dict(mask=np.ones((3, 4), bool)), "does not broadcast"),
    (dict(k=Q.astype(np.int8), v=Q.astype(np.int8)), "k_scale"),
    (dict(k_scale=np.ones((1, 2, 4), np.float32), v_scale=np.ones((1, 2, 4), np.float32)),
     "int8 k and v only"),
    (dict(k_scale=np.ones((1, 2, 4), np.float32)), "int8 k and v only"),
    (dict(k=Q.astype(np.int8), v=Q.astype(np.int8), k_scale=np.ones((1, 2, 4), np.int32),
          v_scale=np.ones((1, 2, 4), np.float32)), "must hold floats"),
    (dict(k=Q.astype(np.int8), v=Q.astype(np.int8), k_scale=np.ones((1, 4, 2), np.float32),
          v_scale=np.ones((1, 4, 2), np.float32)), "must be (1, 2, 4)"),
    (dict(k=Q.astype(np.int8), v=Q.astype(np.int8), k_scale=np.ones(3, np.float32),
          v_scale=np.ones(3, np.float32)), "k_scale has shape (3,)"),
    (dict(k=Q.astype(np.int8), v=Q.astype(np.int8), k_scale=np.full((1, 2, 4), np.nan, np.float32),
          v_scale=np.ones((1, 2, 4), np.float32)), "scale"),
    (dict(return_weights=True, path="fused"), "probs"),
]


@pytest.mark.parametrize("bad,words", BAD, ids=[w for _, w in BAD])
@pytest.mark.parametrize("entry", ["attention", "reference"])
def test_attention_refusals(ctx, bad, words, entry):
    args = {"q": Q.copy(), "k": Q.copy(), "v": Q.copy()}
    kw = {n: bad[n] for n in bad if n not in args}
    args.update({n: bad[n] for n in bad if n in args})
    arrays = [a for a in list(args.values()) + list(kw.values()) if isinstance(a, np.ndarray)]
    same = unchanged(*arrays)
    call = ctx.attention if entry == "attention" else clattn.attention_reference
    if entry == "reference" and "probs" in words:
        pytest.skip("the reference has no paths")
    with pytest.raises(clattn.InvalidArgumentError) as e:
        call(args["q"], args["k"], args["v"], **kw)
    assert isinstance(e.value, ValueError) and e.value.status == 1
    if entry == "attention":   # the reference has no message buffer: its refusals name the status
        assert words in str(e.value), str(e.value)
    assert same()


def test_out_of_range_numbers(ctx):
    """Numbers a C field would wrap or round away are refused, not changed."""
    with pytest.raises(ValueError, match="scale"):
        ctx.attention(Q, Q, Q, scale=1e-50)      # 0 as a float32: the library's default
    with pytest.raises(ValueError, match="scale"):
        ctx.attention(Q, Q, Q, scale=1e39)       # inf as a float32
    with pytest.raises(ValueError, match="window"):
        ctx.attention(Q, Q, Q, window=(2 ** 32 + 1, 0))


def test_big_endian_and_float64_masks(ctx):
    """A big-endian array's dtype is still named float32: it is converted, not read swapped; a
    float64 tensor mask is converted as a NumPy one is."""
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1, 2, 4, 8)).astype(np.float32) for _ in range(3))
    want = ctx.attention(q, k, v)
    got = ctx.attention(q.astype(">f4"), k.astype(">f4"), v.astype(">f4"))
    assert np.array_equal(got, want)
    mask = np.triu(np.full((4, 4), -1e9), 1)
    want = ctx.attention(q, k, v, mask=mask.astype(np.float32))
    assert np.array_equal(ctx.attention(q, k, v, mask=mask.astype(">f8")), want)
    t = [torch.from_numpy(a) for a in (q, k, v)]
    assert np.array_equal(ctx.attention(*t, mask=torch.from_numpy(mask)).numpy(), want)


def test_tensor_refusals(ctx):
    t = torch.ones(1, 2, 4, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="float64"):
        ctx.attention(t, t, t)
    with pytest.raises(ValueError, match="int32"):
        ctx.attention(*(torch.ones(1, 2, 4, 8),) * 3, mask=torch.ones(4, 4, dtype=torch.int32))


def test_plan_and_tune_refusals(ctx):
    with pytest.raises(ValueError, match="array, a tensor or a"):
        ctx.plan("q", Q, Q)
    with pytest.raises(ValueError, match="4-D"):
        ctx.plan(((2, 3), "float32"), Q, Q)
    with pytest.raises(ValueError, match="causal"):
        ctx.tune(Q, Q, Q, causal="yes", budget_s=1)
    with pytest.raises(ValueError, match="budget_s"):
        ctx.tune(Q, Q, Q, budget_s=-1, save=False)
    with pytest.raises(ValueError, match="repeats"):
        ctx.tune(Q, Q, Q, repeats=0, save=False)
    with pytest.raises(ValueError, match="cu_seqlens_k"):
        ctx.tune_varlen([0, 1], heads_q=2, head_dim=8)
    with pytest.raises(ValueError, match="seqlens_k"):
        ctx.tune_varlen([0, 1], block_size=16, heads_q=2, head_dim=8)
    with pytest.raises(ValueError, match="dtype"):
        ctx.tune_varlen([0, 1], [0, 5], heads_q=2, head_dim=8, dtype="int4")


def test_map_and_option_refusals():
    w = np.full((1, 2, 3, 3), 1 / 3, np.float32)
    with pytest.raises(ValueError, match="not an index"):
        clattn.attention_map(w, batch=2 ** 32)
    with pytest.raises(ValueError, match="head must be"):
        clattn.attention_map(w, head=True)
    assert clattn.attention_map(w, head=-1).shape == clattn.attention_map(w, head=1).shape
    assert clattn.attention_map(w, q_labels=[b"a", b"b", b"c"], title=5).ndim == 3


def test_callback_exceptions_surface(ctx):
    def progress(info):
        raise KeyError("from the callback")
    spec = ((1, 1, 8, 8), "float32")
    with pytest.raises(KeyError, match="from the callback"):
        ctx.tune(spec, spec, spec, budget_s=2, max_candidates=1, repeats=1, save=False,
                 progress=progress)


def test_serving_refusals(ctx):
    q = np.ones((3, 2, 8), np.float32)
    k = np.ones((5, 2, 8), np.float32)
    same = unchanged(q, k)
    with pytest.raises(ValueError, match="total_q"):
        ctx.attention_varlen(q[0], k, k, [0, 3], [0, 5])
    with pytest.raises(ValueError, match="B\\+1"):
        ctx.attention_varlen(q, k, k, [0, 3], [0, 2, 5])
    with pytest.raises(ValueError, match="integers"):
        ctx.attention_varlen(q, k, k, np.array([0.0, 3.0]), [0, 5])
    with pytest.raises(ValueError, match="int32"):
        ctx.attention_varlen(q, k, k, np.array([0, 2 ** 40]), [0, 5])
    with pytest.raises(clattn.InvalidArgumentError, match="cu_seqlens_q"):
        ctx.attention_varlen(q, k, k, [0, 4], [0, 5])        # past total_q
    with pytest.raises(ValueError, match="dtype"):
        ctx.attention_varlen(q, k.astype(np.float16), k, [0, 3], [0, 5])
    with pytest.raises(ValueError, match="v's last dim"):   # C would read 0 as "d"
        ctx.attention_varlen(q, k[:0], np.ones((0, 2, 0), np.float32), [0, 3], [0, 0])
    with pytest.raises(ValueError, match="v's last dim"):
        clattn.attention_varlen_reference(q, k[:0], np.ones((0, 2, 0), np.float32), [0, 3], [0, 0])
    with pytest.raises(TypeError):
        ctx.attention_varlen([[1.0]], k, k, [0, 1], [0, 5])
    with pytest.raises(ValueError, match="cu_seqlens_k must have B\\+1"):
        ctx.tune_varlen(list(range(9)), [0, 5], heads_q=2, head_dim=8, budget_s=1)
    with pytest.raises(ValueError, match="seqlens_k must have B"):
        ctx.tune_varlen([0, 1, 2], seqlens_k=[5], block_size=16, heads_q=2, head_dim=8)
    assert same()
    with pytest.raises(ValueError, match="quantize_kv takes"):
        clattn.quantize_kv(np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="layout"):
        clattn.quantize_kv(Q, "sbhd")
    cache = np.ones((2, 4, 2, 8), np.float32)
    same = unchanged(cache)
    with pytest.raises(ValueError, match="slot_mapping"):
        ctx.reshape_and_cache(k, k, cache, cache.copy(), [0, 1])
    with pytest.raises(ValueError, match="dtype"):
        ctx.reshape_and_cache(k.astype(np.float16), k, cache, cache.copy(), [0, 1, 2, 3, 4])
    frozen = cache.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="contiguous, writeable"):
        ctx.reshape_and_cache(k, k, frozen, cache.copy(), [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="contiguous, writeable"):
        ctx.reshape_and_cache(k, k, np.asfortranarray(cache), cache.copy(), [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="do not agree"):
        ctx.reshape_and_cache(k, k, np.ones((2, 4, 3, 8), np.float32), cache.copy(), [0] * 5)
    c8 = np.zeros((2, 4, 2, 8), np.int8)
    s_ok = np.zeros((2, 4, 2), np.float32)
    with pytest.raises(ValueError, match="both int8 or neither"):
        ctx.reshape_and_cache(k, k, c8, cache, [0] * 5, s_ok, s_ok.copy())
    with pytest.raises(ValueError, match="k_scale must be float32"):   # before any write
        ctx.reshape_and_cache(k, k, c8, c8.copy(), [0] * 5, np.zeros(3, np.float32), s_ok)
    with pytest.raises(ValueError, match="v_scale must be float32"):
        ctx.reshape_and_cache(k, k, c8, c8.copy(), [0] * 5, s_ok, s_ok.astype(np.int32))
    assert not c8.any() and not s_ok.any()
    assert same()
