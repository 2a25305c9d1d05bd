"""Heatmap maths shared by the viewer's overlay and the PDF report (no Qt): resizing and drawing strength.

Why a strength: each finding's map is stored scaled to its own 0..1 (min to max), which says *where* the model
looked but not *how much* it found there. Drawn as is, a radiograph scored 0.004 glows as hot as one scored
0.99 (seen in review). So a map is drawn at full strength when its finding is flagged and fainter in
proportion to score / threshold below it: a clearly normal image shows almost nothing.
"""

from __future__ import annotations

import math

import numpy as np


def resize_bilinear(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float32 array to `shape` (pixel centres aligned), separable and vectorised."""

    def axis_weights(n_in: int, n_out: int):
        pos = (np.arange(n_out, dtype=np.float32) + 0.5) * (n_in / n_out) - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        i0 = np.minimum(pos.astype(np.int32), n_in - 2) if n_in > 1 else np.zeros(n_out, np.int32)
        w = (pos - i0).astype(np.float32) if n_in > 1 else np.zeros(n_out, np.float32)
        return i0, w

    r0, wr = axis_weights(a.shape[0], shape[0])
    c0, wc = axis_weights(a.shape[1], shape[1])
    if a.shape[0] > 1:
        rows = a[r0] * (1 - wr)[:, None] + a[r0 + 1] * wr[:, None]
    else:
        rows = np.repeat(a, shape[0], axis=0)
    if a.shape[1] > 1:
        return rows[:, c0] * (1 - wc)[None, :] + rows[:, c0 + 1] * wc[None, :]
    return np.repeat(rows, shape[1], axis=1)


def heatmap_strength(score: float | None, threshold: float | None) -> float:
    """How strongly a finding's map is drawn, 0..1: 1 at or above its threshold, score / threshold below it
    (no score: 0; no threshold, or one of 0: 1, nothing to compare with)."""
    if score is None or not math.isfinite(score):
        return 0.0
    if threshold is None or not threshold > 0:
        return 1.0
    return float(min(1.0, max(0.0, score / threshold)))
