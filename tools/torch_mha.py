#!/usr/bin/python3
"""PyTorch's nn.MultiheadAttention on the layer of `clattn-bench --mha`, for the README's comparison.

usage: tools/torch_mha.py [--shape B,L,E,H] [--threads N] [--warmup N] [--repeats N] [--json FILE]

Times, on the CPU in fp32, with torch.set_num_threads(N) (default 2, the CI machine's cores):
  layer        nn.MultiheadAttention(E, H, bias=True, batch_first=True) in eval mode under
               torch.inference_mode(), self-attention (query is key is value), need_weights=False:
               the call a user makes (PyTorch's fast path for self-attention, where it applies)
  projections  the layer's four GEMMs alone, x @ W.T + b for q, k, v and out, each one
               torch.nn.functional.linear on a [B, L, E] input with the layer's own weights
Each is warmed up, then timed with the host clock; medians (and minimums) over the repeats.
FLOPs are counted as clattn-bench counts them: projections 4 * 2*B*L*E*E, attention 4*B*H*L*L*(E/H)
(Q.K^T and P.V); the layer's GFLOP/s is their sum over its time. "attention (layer - projections)"
is an estimate: the layer's median less the projections' median.

Defaults: B 4, L 512, E 768, 12 heads (BERT-base, as clattn-bench --mha), 3 warm-up calls,
10 timed calls. --json FILE writes the figures as JSON (FILE "-" for stdout, the table then on stderr).

Needs PyTorch (Debian: apt-get install python3-torch, 1.13); run with Debian's /usr/bin/python3.
"""

import argparse
import json
import statistics
import sys
import time

try:
    import torch
except ImportError:
    sys.exit("torch_mha.py: PyTorch is not installed for this Python (Debian: apt-get install "
             "python3-torch; run /usr/bin/python3 tools/torch_mha.py)")


def parse_shape(text):
    try:
        b, l, e, h = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape {text!r}: want B,L,E,H (four integers)")
    if min(b, l, e, h) < 1 or e % h:
        raise argparse.ArgumentTypeError(f"--shape {text!r}: sizes must be >= 1 and E a multiple of H")
    return b, l, e, h


def positive(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: want a positive count")
    return n


def timed(fn, warmup, repeats):
    """Seconds of each of `repeats` calls of fn after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def summary(times, flops):
    median = statistics.median(times)
    return {"median_s": median, "min_s": min(times), "max_s": max(times), "repeats": len(times),
            "flops": flops, "gflops": flops / median * 1e-9}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=parse_shape, default=(4, 512, 768, 12), metavar="B,L,E,H")
    ap.add_argument("--threads", type=positive, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--warmup", type=positive, default=3, help="untimed calls first (default 3)")
    ap.add_argument("--repeats", type=positive, default=10, help="timed calls (default 10)")
    ap.add_argument("--json", metavar="FILE", help='write the figures as JSON ("-": stdout)')
    args = ap.parse_args()

    B, L, E, H = args.shape
    torch.set_num_threads(args.threads)
    torch.manual_seed(2024)
    layer = torch.nn.MultiheadAttention(E, H, bias=True, batch_first=True).eval()
    x = torch.rand(B, L, E) * 2 - 1
    proj_flops = 4 * 2 * B * L * E * E
    attn_flops = 4 * B * H * L * L * (E // H)

    w_in, b_in = layer.in_proj_weight, layer.in_proj_bias
    w_q, w_k, w_v = w_in.split(E)
    b_q, b_k, b_v = b_in.split(E)
    w_o, b_o = layer.out_proj.weight, layer.out_proj.bias
    linear = torch.nn.functional.linear
    heads_out = torch.rand(B, L, E)   # stands for the heads' output the out-projection reads

    def call_layer():
        layer(x, x, x, need_weights=False)

    def call_projections():
        linear(x, w_q, b_q)
        linear(x, w_k, b_k)
        linear(x, w_v, b_v)
        linear(heads_out, w_o, b_o)

    with torch.inference_mode():
        layer_s = summary(timed(call_layer, args.warmup, args.repeats), proj_flops + attn_flops)
        proj_s = summary(timed(call_projections, args.warmup, args.repeats), proj_flops)
    attention_s = layer_s["median_s"] - proj_s["median_s"]

    result = {
        "tool": "torch_mha.py",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": {"B": B, "L": L, "E": E, "heads": H, "dtype": "f32", "self_attention": True,
                  "bias": True, "need_weights": False},
        "layer": layer_s,
        "projections": proj_s,
        "attention_estimate_s": attention_s,
        "attention_estimate_gflops": attn_flops / attention_s * 1e-9 if attention_s > 0 else None,
    }
    # with --json - the JSON owns stdout, and the table goes to stderr
    out = sys.stderr if args.json == "-" else sys.stdout
    print(f"PyTorch {torch.__version__} nn.MultiheadAttention, {torch.get_num_threads()} threads: "
          f"B={B} L={L} E={E} heads={H} (dh {E // H}), self-attention with biases, f32, "
          f"need_weights=False  (projections {proj_flops * 1e-9:.2f} GFLOP, attention "
          f"{attn_flops * 1e-9:.2f} GFLOP)", file=out)
    for name, s in (("layer", layer_s), ("projections (4 x F.linear)", proj_s)):
        print(f"  {name:28s} {s['median_s'] * 1e3:9.2f} ms median ({s['min_s'] * 1e3:.2f} min, "
              f"{s['repeats']} calls)  {s['gflops']:7.1f} GFLOP/s", file=out)
    if attention_s > 0:
        print(f"  {'attention (layer - proj.)':28s} {attention_s * 1e3:9.2f} ms         "
              f"{' ' * 22}{attn_flops / attention_s * 1e-9:7.1f} GFLOP/s  "
              f"({100 * attention_s / layer_s['median_s']:.0f}% of the layer)", file=out)
    if args.json:
        text = json.dumps(result, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)
            print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
