"""clattn.attention_map: the picture as RGB pixels, its PNG (the library's writer and the
notebook's), labels, heads, and refusals."""
import struct
import zlib

import numpy as np
import pytest
import torch

import clattn


def decode_png(data):
    """8-bit RGB, non-interlaced PNGs with filter-0 rows only (what _repr_png_ writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h = 8, b"", None, None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    rows = [raw[y * (3 * w + 1):(y + 1) * (3 * w + 1)] for y in range(h)]
    assert all(r[0] == 0 for r in rows)
    return np.frombuffer(b"".join(r[1:] for r in rows), np.uint8).reshape(h, w, 3)


def test_map_pixels_png_and_notebook(ctx, tmp_path, rng):
    q = rng.standard_normal((1, 2, 6, 16), dtype=np.float32)
    _, w = ctx.attention(q, q, q, causal=True, return_weights=True)
    labels = ["the", "cat", "sat", "on", "the", "mat"]
    img = clattn.attention_map(w, labels, labels, head=1, path=tmp_path / "m.png")
    assert isinstance(img, np.ndarray) and isinstance(img, clattn.AttentionMap)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(decode_png(img._repr_png_()), img)
    # the causal triangle's hidden cells are grey (160, 160, 160); viridis never is
    assert np.any(np.all(img == 160, axis=2))
    grid = clattn.attention_map(torch.from_numpy(w), head="grid")
    mean = clattn.attention_map(w[0], head="mean", title="")
    assert grid.shape != mean.shape
    img.save(tmp_path / "n.png")
    assert np.array_equal(decode_png((tmp_path / "n.png").read_bytes()), img)


def test_map_refusals(tmp_path):
    w = np.full((2, 3, 4, 4), 0.25, np.float32)
    with pytest.raises(ValueError, match="head 3"):
        clattn.attention_map(w, head=3)
    with pytest.raises(ValueError, match="batch 2"):
        clattn.attention_map(w, batch=2)
    with pytest.raises(ValueError, match="labels"):
        clattn.attention_map(w, q_labels=["a"])
    with pytest.raises(ValueError, match="head must be"):
        clattn.attention_map(w, head="all")
    with pytest.raises(ValueError):
        clattn.attention_map(np.zeros(4, np.float32))
    target = tmp_path / "missing" / "m.png"
    with pytest.raises(clattn.IOError):
        clattn.attention_map(w, path=target)
    assert not target.exists()
