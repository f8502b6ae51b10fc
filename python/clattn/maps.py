"""Attention maps: clattn_attention_map_rgb / _png as a NumPy image that Jupyter shows inline."""
import contextlib
import ctypes
import struct
import zlib

import numpy as np

from . import _arrays, _lib
from .errors import check, invalid, raise_for

_HEADS = {"mean": _lib.MAP_MEAN, "grid": _lib.MAP_GRID}


class AttentionMap(np.ndarray):
    """An RGB image, uint8 [height, width, 3], that renders inline in Jupyter (_repr_png_)."""

    def _repr_png_(self):
        return png_bytes(np.asarray(self))

    def save(self, path):
        """Writes the image as a PNG file."""
        with open(path, "wb") as f:
            f.write(self._repr_png_())


def png_bytes(rgb):
    """An 8-bit RGB PNG of rgb [h, w, 3] (filter 0 rows, zlib): what notebooks display."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _labels(labels, n, name, keep):
    if labels is None:
        return None
    labels = [s.decode(errors="replace") if isinstance(s, bytes) else str(s) for s in labels]
    if len(labels) != n:
        raise invalid("%s has %d labels; the map has %d" % (name, len(labels), n))
    arr = (ctypes.c_char_p * n)(*[s.encode() for s in labels])
    keep.append(arr)
    return ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))


def attention_map(weights, q_labels=None, k_labels=None, head=0, *, batch=0, title=None,
                  path=None, vmin=None, vmax=None, cell_px=0, zero_as_value=False, context=None):
    """A heat map of attention weights: queries down, keys across, viridis, a colour bar, token
    labels; masked (exactly 0) cells grey.

    weights: [Lq, Lk], [H, Lq, Lk] or [B, H, Lq, Lk] (what ``return_weights`` and
    MultiheadAttention give; NumPy or tensor). head: an index (negative counts from the end),
    "mean" (over heads) or "grid" (every head, one colour scale). batch: the batch entry. title: None for one that says what
    is shown, "" for none. path: also write a PNG there (atomically, by the library). Returns an
    :class:`AttentionMap` (uint8 [height, width, 3]) that notebooks display inline.
    """
    h = _arrays.host(weights, "weights")
    w = np.ascontiguousarray(h.array if h.dtype != "bfloat16" else
                             _arrays.bf16_to_float32(h.array), dtype=np.float32)
    if w.ndim not in (2, 3, 4):
        raise invalid("weights must be [Lq, Lk], [H, Lq, Lk] or [B, H, Lq, Lk], not %s"
                      % (w.shape,))
    w = w.reshape((1,) * (4 - w.ndim) + w.shape)
    keep = []
    d = _lib.AttentionMapDesc()
    if 0 in w.shape:
        raise invalid("weights of shape %s are empty: nothing to draw" % (w.shape,))
    d.batch, d.heads, d.seq_q, d.seq_kv = (_arrays.c_int(n, "weights' shape", 1) for n in w.shape)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or \
            not -d.batch <= batch < d.batch:
        raise invalid("batch %r is not an index of %d batch entries" % (batch, d.batch))
    d.batch_index = int(batch) % d.batch
    if isinstance(head, str) and head in _HEADS:
        d.head = _HEADS[head]
    elif isinstance(head, bool) or not isinstance(head, (int, np.integer)):
        raise invalid("head must be an index, \"mean\" or \"grid\", not %r" % (head,))
    elif not -d.heads <= head < d.heads:
        raise invalid("head %d is not an index of %d heads (or \"mean\", \"grid\")"
                      % (head, d.heads))
    else:
        d.head = int(head) % d.heads   # -1: the last head, as Python indexes
    d.q_labels = _labels(q_labels, d.seq_q, "q_labels", keep)
    d.k_labels = _labels(k_labels, d.seq_kv, "k_labels", keep)
    if title is not None:
        keep.append(str(title).encode())
        d.title = keep[-1]
    d.cell_px = _arrays.c_int(cell_px, "cell_px")
    if vmin is not None or vmax is not None:
        d.vmin = float(0.0 if vmin is None else vmin)
        d.vmax = float(w.max() if vmax is None else vmax)
    d.zero_as_value = int(bool(zero_as_value))
    # the context only carries the messages; held open while it does
    with context.using() if context is not None else contextlib.nullcontext() as ctx:
        width, height = ctypes.c_int(), ctypes.c_int()
        check(_lib.LIB.clattn_attention_map_rgb(ctx, ctypes.byref(d), w.ctypes.data, None, 0,
                                                ctypes.byref(width), ctypes.byref(height)), ctx)
        rgb = np.empty((height.value, width.value, 3), np.uint8)
        check(_lib.LIB.clattn_attention_map_rgb(ctx, ctypes.byref(d), w.ctypes.data, rgb.ctypes.data,
                                                rgb.nbytes, ctypes.byref(width), ctypes.byref(height)),
              ctx)
        if path is not None:
            status = _lib.LIB.clattn_attention_map_png(ctx, ctypes.byref(d), w.ctypes.data,
                                                       str(path).encode())
            if status == _lib.IO_ERROR and ctx is None:
                raise_for(status, "cannot write the PNG file %s" % path)
            check(status, ctx)
    del keep
    return rgb.view(AttentionMap)
