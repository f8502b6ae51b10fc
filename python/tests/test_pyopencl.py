"""Device memory without copies: a Context on pyopencl's queue, attention and the serving calls on
pyopencl arrays, results compared with the host calls."""
import numpy as np
import pytest

import clattn
from conftest import assert_close

cl = pytest.importorskip("pyopencl")
cla = pytest.importorskip("pyopencl.array")


@pytest.fixture(scope="module")
def queue(ctx):
    """pyopencl's own context and queue on the device the suite's context chose."""
    return cl.CommandQueue(cl.Context([ctx.cl_queue.device]))


@pytest.fixture(scope="module")
def dctx(queue):
    with clattn.Context.from_queue(queue) as c:
        yield c


def test_attention_on_device_arrays(dctx, queue, rng):
    q = rng.standard_normal((2, 4, 33, 64), dtype=np.float32)
    k = rng.standard_normal((2, 2, 50, 64), dtype=np.float32)
    v = rng.standard_normal((2, 2, 50, 64), dtype=np.float32)
    mask = rng.random((33, 50)) > 0.2
    dq, dk, dv = (cla.to_device(queue, x) for x in (q, k, v))
    dmask = cla.to_device(queue, mask.astype(np.uint8))
    out, w, lse = dctx.attention(dq, dk, dv, mask=dmask, causal="bottom_right",
                                 return_weights=True, return_lse=True)
    assert isinstance(out, cla.Array) and out.shape == (2, 4, 33, 64)
    r_out, r_w, r_lse = clattn.attention_reference(q, k, v, mask=mask, causal="bottom_right",
                                                   return_weights=True, return_lse=True)
    assert_close(out.get(), r_out)
    assert_close(w.get(), r_w)
    assert_close(lse.get(), r_lse)
    assert dctx.cl_context.int_ptr == queue.context.int_ptr


def test_slices_and_float16(dctx, queue, rng):
    big = rng.standard_normal((3, 1, 4, 21, 32), dtype=np.float32).astype(np.float16)
    d = cla.to_device(queue, big)
    s = d[2]                                    # starts at an offset: copied, not refused
    assert s.offset > 0
    got = dctx.attention(s, s, s, path="unfused")
    assert got.dtype == np.float16
    assert_close(got.get(), clattn.attention_reference(big[2], big[2], big[2]), "float16")


def test_int8_and_quantize_on_device(dctx, queue, rng):
    q = rng.standard_normal((1, 4, 5, 32), dtype=np.float32)
    k = rng.standard_normal((1, 2, 40, 32), dtype=np.float32)
    k8, ks = dctx.quantize_kv(cla.to_device(queue, k))
    h8, hs = clattn.quantize_kv(k)
    assert np.array_equal(k8.get(), h8) and np.array_equal(ks.get(), hs)
    got = dctx.attention(cla.to_device(queue, q), k8, k8, k_scale=ks, v_scale=ks)
    assert_close(got.get(), clattn.attention_reference(q, h8, h8, k_scale=hs, v_scale=hs))


def test_paged_and_reshape_and_cache_on_device(dctx, queue, rng):
    Hkv, D, bs, nb = 2, 16, 4, 6
    kc = cla.zeros(queue, (nb, bs, Hkv, D), np.float32)
    vc = cla.zeros(queue, (nb, bs, Hkv, D), np.float32)
    n = 7
    new_k = rng.standard_normal((n, Hkv, D), dtype=np.float32)
    new_v = rng.standard_normal((n, Hkv, D), dtype=np.float32)
    slots = np.array([8, 9, 10, 11, 20, 21, 22], np.int32)   # blocks 2 and 5
    dctx.reshape_and_cache(cla.to_device(queue, new_k), cla.to_device(queue, new_v), kc, vc,
                           cla.to_device(queue, slots))
    host_k, host_v = np.zeros((nb, bs, Hkv, D), np.float32), np.zeros((nb, bs, Hkv, D), np.float32)
    dctx.reshape_and_cache(new_k, new_v, host_k, host_v, slots)
    assert np.array_equal(kc.get(), host_k)
    q = rng.standard_normal((1, 4, D), dtype=np.float32)
    tables = [np.array([0, 1], np.int32), np.array([7], np.int32), np.array([[2, 5]], np.int32)]
    got = dctx.attention_paged(cla.to_device(queue, q), kc, vc,
                               *(cla.to_device(queue, t) for t in tables),
                               max_seqlen_q=1, max_seqlen_k=7)
    want = dctx.attention_paged(q, host_k, host_v, *tables)
    assert_close(got.get(), want)
    with pytest.raises(ValueError, match="max_seqlen"):
        dctx.attention_paged(cla.to_device(queue, q), kc, vc,
                             *(cla.to_device(queue, t) for t in tables))


def test_device_refusals(dctx, queue, ctx):
    a = cla.zeros(queue, (1, 1, 4, 8), np.float32)
    with pytest.raises(clattn.InvalidArgumentError, match="cl_context"):
        ctx_other = clattn.Context.from_queue(cl.CommandQueue(cl.Context(queue.context.devices)))
        ctx_other.attention(a, a, a)
    with pytest.raises(clattn.InvalidArgumentError, match="non-contiguous"):
        t = cla.zeros(queue, (1, 4, 3, 8), np.float32).transpose((0, 2, 1, 3))
        dctx.attention(t, t, t)
    with pytest.raises(clattn.InvalidArgumentError, match="takes host arrays"):
        clattn.attention_reference(a, a, a)


def test_device_reshape_and_cache_dtype_refusals(dctx, queue):
    """The kernel reads and writes the bytes as k_new's dtype: a cache or v_new of another dtype
    would be overwritten with garbage (a larger buffer passes the size check), so it is refused,
    and the caches are left as they were."""
    Hkv, D, bs, nb, n = 2, 8, 4, 3, 2
    kc = cla.zeros(queue, (nb, bs, Hkv, D), np.float32)
    vc = cla.zeros(queue, (nb, bs, Hkv, D), np.float32)
    slots = cla.to_device(queue, np.array([0, 5], np.int32))
    k16 = cla.to_device(queue, np.ones((n, Hkv, D), np.float16))
    k32 = cla.to_device(queue, np.ones((n, Hkv, D), np.float32))
    with pytest.raises(clattn.InvalidArgumentError, match="one dtype"):
        dctx.reshape_and_cache(k16, k16, kc, vc, slots)
    with pytest.raises(clattn.InvalidArgumentError, match="one dtype"):
        dctx.reshape_and_cache(k32, k16, kc, vc, slots)
    assert not kc.get().any() and not vc.get().any()
    k8 = cla.zeros(queue, (nb, bs, Hkv, D), np.int8)
    s64 = cla.zeros(queue, (nb, bs, Hkv), np.float64)
    with pytest.raises(clattn.InvalidArgumentError, match="float32"):
        dctx.reshape_and_cache(k32, k32, k8, k8, slots, k_scale=s64, v_scale=s64)
