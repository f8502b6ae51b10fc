#!/usr/bin/env python3
"""The ring-attention scaling model of docs/scaling.md: prints its tables.

Per rank and ring step (zig-zag shards, causal, P ranks, n = L/P positions a rank):
    compute   c = 2 * H * d * n^2 / F                 (4*H*d FLOPs a visible (query, key) pair,
                                                       half of the n^2 pairs visible on average)
    transfer  t = 2 * Hkv * d * n * b / BW + alpha    (the K and V shard sent on)
    step      max(c, t)                               (the transfer overlapped with the compute)
A layer takes T(P) = (P - 1) * max(c, t) + c (the last step sends nothing); one device would take
P^2 * c, so the efficiency is E = P * c / T(P), c / max(c, t) for many steps. The transfer hides
when n >= Hkv * b * F / (H * BW) (alpha neglected).

Usage: tools/scaling_model.py [--F TFLOPS] [--alpha-us US] (docs/scaling.md)
"""
import argparse


def step_times(L, P, H, Hkv, d, b, F, BW, alpha):
    n = L / P
    c = 2.0 * H * d * n * n / F
    t = 2.0 * Hkv * d * n * b / BW + alpha
    return c, t


def efficiency(L, P, H, Hkv, d, b, F, BW, alpha):
    c, t = step_times(L, P, H, Hkv, d, b, F, BW, alpha)
    total = (P - 1) * max(c, t) + c
    return P * c / total, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--F", type=float, default=200.0, help="attention TFLOP/s of one device")
    ap.add_argument("--alpha-us", type=float, default=5.0, help="latency per message, us")
    a = ap.parse_args()
    F = a.F * 1e12
    alpha = a.alpha_us * 1e-6
    H, Hkv, d, b = 32, 8, 128, 2    # a Llama-style layer: 32 query heads, 8 KV heads, bf16
    links = [25, 100, 200, 400]     # Gb/s
    print("Model: H=%d Hkv=%d d=%d bf16, F=%.0f TFLOP/s a device, latency %.0f us a message\n"
          % (H, Hkv, d, a.F, a.alpha_us))
    print("Positions a rank needs for the transfer to hide (Hkv*b*F/(H*BW)):")
    for g in links:
        print("  %3d Gb/s: %6.0f" % (g, Hkv * b * F / (H * g * 1e9 / 8)))
    for title, cases in (
            ("Strong scaling (L fixed): efficiency, and time per layer", [(L, P) for L in (131072, 1048576)
                                                                           for P in (8, 16, 32, 64)]),
            ("Weak scaling (L/P = 16384 a rank): efficiency, and time per layer",
             [(16384 * P, P) for P in (8, 16, 32, 64)])):
        print("\n%s\n| L | P | L/P | %s |" % (title, " | ".join("%d Gb/s" % g for g in links)))
        print("|---|---|---|" + "---|" * len(links))
        for L, P in cases:
            cells = []
            for g in links:
                e, total = efficiency(L, P, H, Hkv, d, b, F, g * 1e9 / 8, alpha)
                cells.append("%.2f, %s" % (e, ("%.0f ms" % (1e3 * total)) if total < 10 else
                                                ("%.1f s" % total)))
            print("| %s | %d | %d | %s |" % ("%dk" % (L // 1024), P, L // P, " | ".join(cells)))


if __name__ == "__main__":
    main()
