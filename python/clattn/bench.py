"""python -m clattn.bench: the package against PyTorch's CPU attention on the benchmark's shapes,
and the package's own cost per call.

Each shape runs clattn (Context.attention, fused, float32) and PyTorch on the same inputs in one
process, alternating, and reports medians and their ratio (PyTorch / clattn: above 1, clattn is
faster). PyTorch's attention is F.scaled_dot_product_attention where the installed version has it,
else the math it stands for (softmax(q·kᵀ·scale + mask)·v, GQA by repeating k and v), on
PyTorch's own choice of threads (--torch-threads to set it). The overhead row times a small call through the package against
the bare C call (clattn_attention_host through ctypes, with its desc and buffers made once): the
difference is what Python adds per call.
"""
import argparse
import ctypes
import statistics
import time

import numpy as np

from . import Context, _lib
from .attention import desc_of

# bench/suite.c's suites (name, B, Hq, Hkv, Lq, Lk, d, causal, window); python/tests/test_bench.py
# checks that they still agree.
SUITE = [("bert", 4, 12, 12, 512, 512, 64, 0, 0),
         ("gpt2-causal", 1, 12, 12, 1024, 1024, 64, 1, 0),
         ("llama-gqa-causal", 1, 32, 8, 2048, 2048, 128, 1, 0),
         ("decode", 8, 32, 8, 1, 4096, 128, 0, 0),
         ("long", 1, 8, 8, 8192, 8192, 64, 0, 0),
         ("long-causal", 1, 8, 8, 8192, 8192, 64, 1, 0),
         ("long-window512", 1, 8, 8, 8192, 8192, 64, 1, 512)]
QUICK_SUITE = [("bert-q", 2, 4, 4, 128, 128, 64, 0, 0),
               ("gpt2-causal-q", 1, 4, 4, 300, 300, 64, 1, 0),
               ("llama-gqa-causal-q", 1, 8, 2, 200, 200, 128, 1, 0),
               ("decode-q", 2, 8, 2, 1, 1000, 128, 0, 0),
               ("long-q", 1, 2, 2, 1536, 1536, 64, 0, 0),
               ("long-causal-q", 1, 2, 2, 1536, 1536, 64, 1, 0),
               ("long-window128-q", 1, 2, 2, 1536, 1536, 64, 1, 128)]


def _median_ms(*fns, reps, rounds=3):
    """The median ms of each function. Each is timed in blocks of runs, the blocks taking turns
    over a few rounds: a noisy spell on the shared machine then falls on all alike, while no call
    runs right after another library's (PoCL's and PyTorch's worker threads, each still spinning
    after its own call, would steal the other's cores)."""
    for fn in fns:   # warm-up: kernels built, allocator pools and page tables filled (PyTorch's
        t0 = time.perf_counter()   # first few calls here take 5-20x its settled time)
        for i in range(100):
            fn()
            if i >= 4 and time.perf_counter() - t0 > 0.2:
                break
    times = [[] for _ in fns]
    per_round = max(1, -(-reps // rounds))
    for _ in range(rounds):
        for fn, t in zip(fns, times):
            fn()   # the other library's threads settle
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                t.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def _visible(Lq, Lk, causal, window):
    """bool [Lq, Lk]: which keys each query sees (bottom-right causal, a window's lower edge)."""
    i = np.arange(Lq)[:, None] + (Lk - Lq)
    j = np.arange(Lk)[None, :]
    vis = np.ones((Lq, Lk), bool)
    if causal:
        vis &= j <= i
    if window:
        vis &= j >= i - window
    return vis


def torch_attention(torch, q, k, v, visible):
    """PyTorch's CPU attention on [B, H, L, d] tensors; visible: bool [Lq, Lk] or None."""
    rep = q.shape[1] // k.shape[1]
    if rep > 1:
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    if sdpa is not None:
        return sdpa(q, k, v, attn_mask=visible)
    s = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    if visible is not None:
        s = s.masked_fill(~visible, float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v)


def overhead(ctx, reps):
    """(package µs, bare C µs) per call on a small problem."""
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 2, 16, 64), dtype=np.float32) for _ in range(3))
    desc, keep, _ = desc_of(q, k, v, "bhsd")
    out = np.empty_like(q)
    args = (ctx.handle, ctypes.byref(desc), q.ctypes.data, k.ctypes.data, v.ctypes.data, None,
            out.ctypes.data, None, None)

    def bare():
        if _lib.LIB.clattn_attention_host(*args) != 0:
            raise RuntimeError("clattn_attention_host failed")
    py, c = _median_ms(lambda: ctx.attention(q, k, v), bare, reps=reps)
    del keep
    return py * 1e3, c * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m clattn.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="the full suite (default: the quick one)")
    ap.add_argument("--device", default=None, help="a clattn device selector")
    ap.add_argument("--reps", type=int, default=7, help="timed runs per entry (median)")
    ap.add_argument("--only", default=None, help="comma-separated shape names")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="PyTorch's threads (default: its own choice, torch.get_num_threads())")
    a = ap.parse_args(argv)
    try:
        import torch
        if a.torch_threads:
            torch.set_num_threads(a.torch_threads)
    except ImportError:
        torch = None
    suite = SUITE if a.full else QUICK_SUITE
    if a.only:
        names = set(a.only.split(","))
        suite = [s for s in suite if s[0] in names]
    rng = np.random.default_rng(0)
    with Context(a.device) as ctx:
        print("device: %s;  PyTorch %s, %s threads" % (
            ctx.device_name, torch.__version__ if torch else "not installed",
            torch.get_num_threads() if torch else "-"))
        print("%-20s %10s %10s %8s %10s" % ("shape", "clattn ms", "torch ms", "ratio", "max|diff|"))
        ratios = []
        for name, B, Hq, Hkv, Lq, Lk, d, causal, window in suite:
            q = rng.standard_normal((B, Hq, Lq, d), dtype=np.float32)
            k = rng.standard_normal((B, Hkv, Lk, d), dtype=np.float32)
            v = rng.standard_normal((B, Hkv, Lk, d), dtype=np.float32)
            kw = {"causal": "bottom_right" if causal else False, "path": "fused"}
            if window:
                kw["window"] = (window, 0)
            ours = ctx.attention(q, k, v, **kw)
            if torch is None:
                t_ours, = _median_ms(lambda: ctx.attention(q, k, v, **kw), reps=a.reps)
                print("%-20s %10.2f %10s" % (name, t_ours, "-"))
                continue
            tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
            vis = torch.from_numpy(_visible(Lq, Lk, causal, window)) if causal or window else None
            with torch.no_grad():
                theirs = torch_attention(torch, tq, tk, tv, vis).numpy()
                t_ours, t_torch = _median_ms(lambda: ctx.attention(q, k, v, **kw),
                                             lambda: torch_attention(torch, tq, tk, tv, vis),
                                             reps=a.reps)
            ratios.append(t_torch / t_ours)
            print("%-20s %10.2f %10.2f %7.2fx %10.2e" % (name, t_ours, t_torch, ratios[-1],
                                                       float(np.max(np.abs(ours - theirs)))))
        if ratios:
            print("geometric mean of torch/clattn: %.2fx" % float(np.exp(np.mean(np.log(ratios)))))
        py, c = overhead(ctx, max(a.reps, 50))
        print("per call, [1,2,16,64]: package %.1f us, bare C call %.1f us: Python adds %.1f us"
              % (py, c, py - c))


if __name__ == "__main__":
    main()
