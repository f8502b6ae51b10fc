"""Ragged batches and the paged KV cache from Python: against the library's reference and against
the dense call per sequence; reshape_and_cache on host arrays; table validation."""
import numpy as np
import pytest
import torch

import clattn
from conftest import assert_close

HQ, HKV, D = 4, 2, 32


def batch(rng, q_lens, k_lens, dtype=np.float32):
    cu_q = np.concatenate([[0], np.cumsum(q_lens)]).astype(np.int32)
    cu_k = np.concatenate([[0], np.cumsum(k_lens)]).astype(np.int32)
    q = rng.standard_normal((cu_q[-1], HQ, D), dtype=np.float32).astype(dtype)
    k = rng.standard_normal((cu_k[-1], HKV, D), dtype=np.float32).astype(dtype)
    v = rng.standard_normal((cu_k[-1], HKV, D), dtype=np.float32).astype(dtype)
    return q, k, v, cu_q, cu_k


def paged(rng, k, v, cu_k, block_size, shuffle=True):
    """The packed keys laid into a cache of blocks in a shuffled order, plus two spare blocks."""
    lens = np.diff(cu_k)
    nblk = [-(-int(n) // block_size) for n in lens]
    total = sum(nblk) + 2
    order = rng.permutation(total) if shuffle else np.arange(total)
    table = np.zeros((len(lens), max(nblk + [1])), np.int32)
    kc = np.zeros((total, block_size, HKV, D), k.dtype)
    vc = np.zeros_like(kc)
    nxt = 0
    for b, n in enumerate(lens):
        for j in range(nblk[b]):
            blk = order[nxt]
            nxt += 1
            table[b, j] = blk
            rows = slice(cu_k[b] + j * block_size, cu_k[b] + min(n, (j + 1) * block_size))
            cnt = rows.stop - rows.start
            kc[blk, :cnt], vc[blk, :cnt] = k[rows], v[rows]
    return kc, vc, lens.astype(np.int32), table


LENS = [([3, 0, 1, 17, 5], [9, 4, 0, 40, 5]), ([1] * 7, [1, 33, 100, 2, 65, 0, 7])]


@pytest.mark.parametrize("lens", LENS)
@pytest.mark.parametrize("causal", [False, "bottom_right"])
def test_varlen_equals_dense_per_sequence(ctx, rng, lens, causal):
    q, k, v, cu_q, cu_k = batch(rng, *lens)
    out, lse = ctx.attention_varlen(q, k, v, cu_q, cu_k, causal=causal, return_lse=True)
    ref = clattn.attention_varlen_reference(q, k, v, cu_q, cu_k, causal=causal)
    assert_close(out, ref)
    assert lse.shape == (HQ, cu_q[-1])
    for b in range(len(lens[0])):
        qs, ks = slice(cu_q[b], cu_q[b + 1]), slice(cu_k[b], cu_k[b + 1])
        if qs.stop == qs.start or ks.stop == ks.start:
            continue
        dense = ctx.attention(q[None, qs], k[None, ks], v[None, ks], layout="bshd", causal=causal)
        assert_close(out[qs], dense[0], what="sequence %d" % b)


@pytest.mark.parametrize("block_size", [1, 16, 256])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_paged_equals_packed(ctx, rng, block_size, dtype):
    q, k, v, cu_q, cu_k = batch(rng, [1, 2, 1, 3], [50, 7, 300, 1], np.dtype(dtype))
    kc, vc, seqlens, table = paged(rng, k, v, cu_k, block_size)
    got = ctx.attention_paged(q, kc, vc, cu_q, seqlens, table, causal="bottom_right")
    want = ctx.attention_varlen(q, k, v, cu_q, cu_k, causal="bottom_right")
    ref = clattn.attention_varlen_reference(q, kc, vc, cu_q, seqlens_k=seqlens,
                                            block_table=table, causal="bottom_right")
    assert_close(got, ref, dtype)
    assert_close(got, want, dtype)


def test_paged_bf16_tensors_int8_and_variants(ctx, rng):
    q, k, v, cu_q, cu_k = batch(rng, [2, 1, 4], [20, 64, 9])
    kc, vc, seqlens, table = paged(rng, k, v, cu_k, 16)
    tq, tkc, tvc = (torch.from_numpy(x).bfloat16() for x in (q, kc, vc))
    got = ctx.attention_paged(tq, tkc, tvc, cu_q, seqlens, table, window=(8, 0), softcap=3.0)
    assert got.dtype == torch.bfloat16
    assert_close(got, clattn.attention_varlen_reference(tq, tkc, tvc, cu_q, seqlens_k=seqlens,
                                                        block_table=table, window=(8, 0),
                                                        softcap=3.0), "bfloat16")
    k8, ks = ctx.quantize_kv(kc, "cache")
    v8, vs = ctx.quantize_kv(vc, "cache")
    assert ks.shape == kc.shape[:-1]
    got8 = ctx.attention_paged(q, k8, v8, cu_q, seqlens, table, k_scale=ks, v_scale=vs)
    assert_close(got8, clattn.attention_varlen_reference(q, k8, v8, cu_q, seqlens_k=seqlens,
                                                         block_table=table, k_scale=ks,
                                                         v_scale=vs))


def test_reshape_and_cache_host(ctx, rng):
    kc = np.zeros((4, 8, HKV, D), np.float32)
    vc = np.zeros_like(kc)
    new_k = rng.standard_normal((5, HKV, D), dtype=np.float32)
    new_v = rng.standard_normal((5, HKV, D), dtype=np.float32)
    slots = np.array([0, 9, -1, 31, 32], np.int32)        # -1: padding; 32: past the cache
    ctx.reshape_and_cache(new_k, new_v, kc, vc, slots)
    assert np.array_equal(kc[0, 0], new_k[0]) and np.array_equal(kc[1, 1], new_k[1])
    assert np.array_equal(vc[3, 7], new_v[3])
    assert np.count_nonzero(kc.reshape(32, -1).any(1)) == 3
    k8 = np.zeros((4, 8, HKV, D), np.int8)
    v8 = np.zeros_like(k8)
    ks, vs = np.zeros((4, 8, HKV), np.float32), np.zeros((4, 8, HKV), np.float32)
    ctx.reshape_and_cache(new_k, new_v, k8, v8, slots, ks, vs)
    want8, want_s = clattn.quantize_kv(new_k[None], "bshd")
    assert np.array_equal(k8[1, 1], want8[0, 1]) and ks[1, 1, 0] == want_s[0, 1, 0]


BAD_TABLES = [("cu_seqlens_q", [0, 2, 1, 3], "cu_seqlens_q"),
              ("cu_seqlens_k", [0, 5, 4, 9], "cu_seqlens_k"),
              ("cu_seqlens_k", [0, 5, 9, 99], "cu_seqlens_k")]


@pytest.mark.parametrize("name,table,word", BAD_TABLES)
def test_bad_tables_name_the_entry(ctx, rng, name, table, word):
    q, k, v, cu_q, cu_k = batch(rng, [1, 1, 1], [5, 4, 0])
    args = {"cu_seqlens_q": cu_q, "cu_seqlens_k": cu_k}
    args[name] = np.array(table, np.int32)
    with pytest.raises(clattn.InvalidArgumentError, match=word) as e:
        ctx.attention_varlen(q, k, v, args["cu_seqlens_q"], args["cu_seqlens_k"],
                             max_seqlen_q=3, max_seqlen_k=99)
    assert "[" in str(e.value)   # the message names the entry: "cu_seqlens_k[2] = 4 ..."


def test_bad_block_ids(ctx, rng):
    q, k, v, cu_q, cu_k = batch(rng, [1, 1], [20, 3])
    kc, vc, seqlens, table = paged(rng, k, v, cu_k, 16)
    table[0, 1] = kc.shape[0]                              # one past the last block
    with pytest.raises(clattn.InvalidArgumentError, match="block_table"):
        ctx.attention_paged(q, kc, vc, cu_q, seqlens, table)
    with pytest.raises(ValueError, match="block_table must be"):
        ctx.attention_paged(q, kc, vc, cu_q, seqlens, table[0])
