#!/usr/bin/env python3
"""Makes the multi-head attention fixtures in tests/data/ from PyTorch's nn.MultiheadAttention.

The fixtures are committed; this script documents how they were made and remakes them:

    apt-get install python3-torch        # Debian 12: torch 1.13.1; any torch >= 1.13 will do
    /usr/bin/python3 tools/make_mha_fixtures.py tests/data     # Debian's python, where torch is

The files are byte-identical when remade with the same torch on the same kind of CPU; another torch
version or CPU may differ in the last bits of the outputs, well within the tests' tolerance.

Each fixture is a folder tests/data/mha_<name>/ holding one raw file per tensor and a manifest.

Tensor files (<tensor>.f32): little-endian IEEE float32, row-major (innermost dimension last), no
header, exactly prod(shape) * 4 bytes. numpy.fromfile(path, '<f4').reshape(shape) reads one.

manifest.txt: one record per line, fields separated by single spaces; '#' starts a comment line.
    param <key> <integer>
    tensor <name> <file> <ndim> <dim0> ... <dim{ndim-1}>
Params: batch, seq_q, seq_kv, embed_dim, kdim, vdim, heads, bias (1: in_proj_bias and out_proj.bias
present), causal (1: queries see keys j <= i, PyTorch's square subsequent mask, top-left aligned),
attn_mask (0: none, 1: bool, 2: additive float), key_padding_mask (0/1).

Tensor names are PyTorch's:
    weights   in_proj_weight [3E,E] (when kdim == vdim == E) or q_proj_weight [E,E],
              k_proj_weight [E,kdim], v_proj_weight [E,vdim]; in_proj_bias [3E];
              out_proj.weight [E,E]; out_proj.bias [E]
    inputs    query [B,Lq,E]; key [B,Lk,kdim] and value [B,Lk,vdim] (absent for self-attention:
              key = value = query); attn_mask [Lq,Lk] or [B*H,Lq,Lk]: bool stored as 1.0 where
              attention is NOT allowed (PyTorch's meaning), additive float as is (-inf allowed);
              key_padding_mask [B,Lk], 1.0 where the key is padding (ignored)
    outputs   attn_output [B,Lq,E]; attn_weights [B,Lq,Lk] (mean over heads);
              attn_weights_per_head [B,H,Lq,Lk]
The layer runs with batch_first=True. Weights and inputs are drawn in float32; the outputs are those
of the same layer and inputs promoted to float64, rounded to float32, so that a double-precision
reference matches them to float32 rounding (the float32 forward is checked to agree within 1e-5).
No fixture has a fully masked query row (PyTorch gives NaN there; clattn gives 0).
"""
import os
import sys

import torch

SEED = 1234


def make_layer(E, H, kdim=None, vdim=None, bias=True):
    layer = torch.nn.MultiheadAttention(E, H, bias=bias, kdim=kdim, vdim=vdim, batch_first=True)
    with torch.no_grad():
        # PyTorch starts biases at zero, which would leave the bias path untested.
        for name, p in layer.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
    return layer


def forward(layer, query, key, value, attn_mask, key_padding_mask, dtype):
    layer = layer.to(dtype)
    conv = lambda t: None if t is None else (t.to(dtype) if t.is_floating_point() else t)
    with torch.no_grad():
        out, w_heads = layer(conv(query), conv(key), conv(value), attn_mask=conv(attn_mask),
                             key_padding_mask=key_padding_mask, need_weights=True,
                             average_attn_weights=False)
    return out, w_heads


def write_fixture(root, name, params, layer, query, key=None, value=None, attn_mask=None,
                  key_padding_mask=None):
    self_attn = key is None
    k = query if self_attn else key
    v = k if value is None else value
    out64, w64 = forward(layer, query, k, v, attn_mask, key_padding_mask, torch.float64)
    out32, w32 = forward(layer, query, k, v, attn_mask, key_padding_mask, torch.float32)
    err = (out32.double() - out64).abs().max().item() / out64.abs().max().item()
    assert err < 1e-5, f"{name}: float32 and float64 forwards differ by {err:g}"
    assert not torch.isnan(out64).any(), f"{name}: a query row is fully masked"
    layer = layer.to(torch.float32)

    tensors = [(n, p) for n, p in layer.named_parameters()]
    tensors.append(("query", query))
    if not self_attn:
        tensors.append(("key", k))
        tensors.append(("value", v))
    if attn_mask is not None:
        tensors.append(("attn_mask", attn_mask))
    if key_padding_mask is not None:
        tensors.append(("key_padding_mask", key_padding_mask))
    tensors += [("attn_output", out64), ("attn_weights", w64.mean(dim=1)),
                ("attn_weights_per_head", w64)]

    folder = os.path.join(root, "mha_" + name)
    os.makedirs(folder, exist_ok=True)
    lines = [f"# clattn MHA fixture '{name}': tools/make_mha_fixtures.py, torch {torch.__version__},"
             f" seed {SEED}"]
    lines += [f"param {k} {int(v)}" for k, v in params.items()]
    for tname, t in tensors:
        data = t.detach().to(torch.float32).contiguous()   # bool masks become 0.0 / 1.0
        fname = tname + ".f32"
        data.numpy().astype("<f4").tofile(os.path.join(folder, fname))
        lines.append(f"tensor {tname} {fname} {data.dim()} " + " ".join(str(s) for s in data.shape))
    with open(os.path.join(folder, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{folder}: max |out| {out64.abs().max().item():.3f}, f32 vs f64 {err:.2e}")


def params(B, Lq, Lk, E, H, kdim=None, vdim=None, bias=True, causal=0, attn_mask=0, kpm=0):
    return dict(batch=B, seq_q=Lq, seq_kv=Lk, embed_dim=E, kdim=kdim or E, vdim=vdim or E,
                heads=H, bias=bias, causal=causal, attn_mask=attn_mask, key_padding_mask=kpm)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..",
                                                               "tests", "data")
    torch.manual_seed(SEED)

    # (a) self-attention with both biases
    B, L, E, H = 2, 5, 16, 4
    layer = make_layer(E, H)
    x = torch.randn(B, L, E)
    write_fixture(root, "self", params(B, L, L, E, H), layer, x)

    # (b) causal self-attention: the float -inf upper triangle (is_causal's mask), top-left aligned
    B, L, E, H = 2, 7, 24, 3
    layer = make_layer(E, H)
    x = torch.randn(B, L, E)
    causal = torch.triu(torch.full((L, L), float("-inf")), diagonal=1)
    write_fixture(root, "causal", params(B, L, L, E, H, causal=1), layer, x, attn_mask=causal)

    # (c) cross-attention, kdim != vdim != E: separate q/k/v projection weights
    B, Lq, Lk, E, H, kdim, vdim = 2, 3, 6, 16, 2, 10, 12
    layer = make_layer(E, H, kdim=kdim, vdim=vdim)
    q, k, v = torch.randn(B, Lq, E), torch.randn(B, Lk, kdim), torch.randn(B, Lk, vdim)
    write_fixture(root, "cross", params(B, Lq, Lk, E, H, kdim, vdim), layer, q, k, v)

    # (d) no biases, key_padding_mask and a bool attn_mask (a band: |i - j| <= 2 allowed)
    B, L, E, H = 2, 6, 8, 2
    layer = make_layer(E, H, bias=False)
    x = torch.randn(B, L, E)
    i = torch.arange(L)
    band = (i[:, None] - i[None, :]).abs() > 2                     # True: not allowed
    kpm = torch.zeros(B, L, dtype=torch.bool)
    kpm[0, 4:] = True                                              # batch 0: last two keys padding
    kpm[1, 0] = True                                               # batch 1: first key padding
    write_fixture(root, "masked", params(B, L, L, E, H, bias=False, attn_mask=1, kpm=1), layer, x,
                  attn_mask=band, key_padding_mask=kpm)

    # (e) packed weights, distinct key and value inputs, additive per-head float mask with -inf
    B, Lq, Lk, E, H = 2, 4, 5, 12, 3
    layer = make_layer(E, H)
    q, k, v = torch.randn(B, Lq, E), torch.randn(B, Lk, E), torch.randn(B, Lk, E)
    add = torch.randn(B * H, Lq, Lk)
    add[:, :, 3] = float("-inf")                                   # key 3 hidden everywhere
    add[1, 2, 0] = float("-inf")
    write_fixture(root, "additive", params(B, Lq, Lk, E, H, attn_mask=2), layer, q, k, v,
                  attn_mask=add)


if __name__ == "__main__":
    main()
