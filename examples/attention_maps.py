# %% [markdown]
# # Attention maps of a small multi-head layer
#
# A four-head self-attention layer reads the embeddings of one sentence, and each head's
# attention weights are drawn as a heat map with the tokens as labels. The layer's weights are
# built by hand so that each head has a job one can see: head 0 looks at the previous token,
# head 1 at other occurrences of the same word, head 2 at the first token (a "sink"), and head 3
# has random weights, as an untrained head would. Run it as a script (the maps are written as
# PNGs) or cell by cell in Jupyter (`# %%` cells), where the maps show inline.
#
#     PYTHONPATH=build/python python3 examples/attention_maps.py [output folder]

# %%
import os
import sys

import numpy as np

import clattn

tokens = "the cat sat on the mat because the mat was warm".split()
L, E, H = len(tokens), 64, 4          # 11 tokens, embedding width 64, 4 heads of 16
dh = E // H
rng = np.random.default_rng(7)

# Embeddings: the first 32 dims say which word it is (a random unit vector per word), the next
# 16 where it is (one-hot position), the last 16 are noise.
words = sorted(set(tokens))
word_vec = {w: v / np.linalg.norm(v) for w, v in zip(words, rng.standard_normal((len(words), 32)))}
x = np.zeros((L, E), np.float32)
for i, t in enumerate(tokens):
    x[i, :32] = word_vec[t]
    x[i, 32 + i] = 1.0
    x[i, 48:] = 0.1 * rng.standard_normal(16)

# %% [markdown]
# The projections, head by head (rows h*16 .. h*16+15 of W_q, W_k and W_v).

# %%
Wq, Wk = np.zeros((E, E), np.float32), np.zeros((E, E), np.float32)
sharp = 40.0                          # scores this far apart make near one-hot rows
for p in range(L):                    # head 0: query at position p matches key at p - 1
    Wq[0 * dh + p % dh, 32 + p] = sharp
    if p + 1 < L:
        Wk[0 * dh + (p + 1) % dh, 32 + p] = 1.0
proj = rng.standard_normal((dh, 32)) / np.sqrt(32)       # head 1: the word's identity
Wq[1 * dh:2 * dh, :32] = sharp * proj
Wk[1 * dh:2 * dh, :32] = proj
Wq[2 * dh, 48:] = 0.0                 # head 2: every query asks for "position 0"
Wq[2 * dh, :32] = 0.0
Wk[2 * dh, 32] = sharp                # ...which only the first token's key answers
bias_q = np.zeros(E, np.float32)
bias_q[2 * dh] = 1.0
Wq[3 * dh:, :] = rng.standard_normal((dh, E)) / np.sqrt(E)   # head 3: random
Wk[3 * dh:, :] = rng.standard_normal((dh, E)) / np.sqrt(E)
Wv = rng.standard_normal((E, E)).astype(np.float32) / np.sqrt(E)
Wo = rng.standard_normal((E, E)).astype(np.float32) / np.sqrt(E)

layer = clattn.MultiheadAttention(
    E, H, in_proj_weight=np.concatenate([Wq, Wk, Wv]),
    in_proj_bias=np.concatenate([bias_q, np.zeros(2 * E, np.float32)]),
    out_proj_weight=Wo, out_proj_bias=np.zeros(E, np.float32), batch_first=True)

# %% [markdown]
# Self-attention over the sentence: the layer returns its output and, per head, the weights.

# %%
out, weights = layer(x[None], x[None], x[None], average_attn_weights=False)
print("output", out.shape, "weights", weights.shape)       # (1, 11, 64) (1, 4, 11, 11)
for h, job in enumerate(["previous token", "same word", "first token", "random"]):
    looks_at = [tokens[j] for j in weights[0, h].argmax(axis=-1)]
    print("head %d (%s): %s" % (h, job, " ".join("%s->%s" % p for p in zip(tokens, looks_at))))

# %% [markdown]
# The maps: all heads in one picture with one colour scale, then head 1 alone. In Jupyter the
# value of the last line of a cell is drawn inline.

# %%
folder = sys.argv[1] if len(sys.argv) > 1 else "attention-maps"
os.makedirs(folder, exist_ok=True)
grid = clattn.attention_map(weights, tokens, tokens, head="grid",
                            path=os.path.join(folder, "heads.png"))
same_word = clattn.attention_map(weights, tokens, tokens, head=1,
                                 title="head 1: the same word elsewhere",
                                 path=os.path.join(folder, "head1.png"))
print("wrote %s/heads.png (%dx%d) and %s/head1.png" % (folder, grid.shape[1], grid.shape[0],
                                                       folder))
grid

# %% [markdown]
# The same layer in PyTorch gives the same weights, when PyTorch is installed.

# %%
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    m = torch.nn.MultiheadAttention(E, H, batch_first=True).eval()
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.from_numpy(np.concatenate([Wq, Wk, Wv])))
        m.in_proj_bias.copy_(torch.from_numpy(np.concatenate([bias_q, np.zeros(2 * E, np.float32)])))
        m.out_proj.weight.copy_(torch.from_numpy(Wo))
        m.out_proj.bias.zero_()
        t = torch.from_numpy(x[None])
        _, tw = m(t, t, t, average_attn_weights=False)
    print("max |clattn - torch| over the weights: %.2e" % float((tw - torch.from_numpy(weights)).abs().max()))
