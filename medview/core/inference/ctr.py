"""The cardiothoracic ratio measured from a segmentation, and the check that the image is a frontal chest.

CTR = widest horizontal extent of the heart / widest inner extent of the thorax (the lungs' outer margins).
The heart's extent is the transverse cardiac diameter: from its rightmost to its leftmost border, wherever
each lies (the two usually lie at different levels); the thorax is taken on the row where it is widest, the
heart counted in: where a very large heart reaches the chest wall and hides the lung there, its border is
the thorax's margin on that side.
Edges are sub-pixel (where the probability crosses 0.5 between two pixels). The network's grid is the image resized to a square, so rows and columns scale independently; a
ratio of two horizontal widths is unchanged by that, and the lines are mapped back to the image's own pixels.

The plausibility check decides from the masks alone whether this is an image the model reads: two lungs
side by side, a heart between them, sizes in range, the thorax whole within the image, and outlines the
network is sure of. Anything else is "not applicable", with the reason in words. numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NAME = "cardiothoracic_ratio"
THORAX_AT_EDGE = "the thorax reaches the image edge: the ratio may be overstated a little"
HEART, LUNGS = 0, 1
MIN_LUNG_SHARE = 0.01      # the larger lung covers at least this share of the image
MIN_HIDDEN_LUNG_SHARE = 0.003  # the smaller one at least this: a very large heart can hide all but a crescent
MIN_LUNG_BALANCE = 0.05    # and at least this share of the larger
MIN_THORAX_SHARE = 0.3     # thoracic width at least this share of the image width
MAX_EDGE_CONTACT = 0.08    # share of the lungs' height (width) touching a side (the bottom) that is only a graze
MAX_SIDE_CONTACT = 0.5     # share of the lungs' height that may run along a side: the margin at the edge
MAX_UNSURE = 0.6           # unsure pixels (0.2 < p < 0.8) per sure pixel of heart and lungs, at most


@dataclass
class CtrMeasurement:
    """A measured CTR with its two lines ([[column, row], [column, row]] in image pixels) and how sure the
    network was of the outlines (share of unsure pixels; 0 is crisp)."""

    value: float
    heart: list[list[float]]
    thorax: list[list[float]]
    unsure: float
    thorax_at_edge: bool = False  # a lung runs along the image's side: the thorax was measured to the edge

    def as_json(self, threshold: float) -> dict:
        found = {"value": round(self.value, 4), "unit": "1", "threshold": threshold,
                 "heart": self.heart, "thorax": self.thorax, "unsure": round(self.unsure, 4)}
        if self.thorax_at_edge:
            found["note"] = THORAX_AT_EDGE
        return found


def components(mask: np.ndarray) -> list[np.ndarray]:
    """Boolean masks of the 4-connected components of `mask`, largest first.

    Run-based labelling, vectorised: every pixel gets the index of its row run; runs that touch vertically
    are joined by giving both the smaller of their labels until nothing changes (with pointer jumping: a few
    rounds over the few hundred touching pairs, no Python loop per run), so each component is labelled with
    its first run; the runs' labels label the pixels."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return []
    starts = mask.copy()
    starts[:, 1:] &= ~mask[:, :-1]                            # a run begins where the pixel to its left is off
    run_of = np.cumsum(starts.ravel()).reshape(mask.shape) - 1  # each pixel's run index (valid where mask)
    runs = int(run_of.ravel()[mask.ravel()][-1]) + 1
    touching = mask[1:] & mask[:-1]
    below, above = run_of[1:][touching], run_of[:-1][touching]
    new_pair = np.ones(below.size, bool)  # two runs touch along a stretch of columns: one pair per stretch
    new_pair[1:] = (below[1:] != below[:-1]) | (above[1:] != above[:-1])
    below, above = below[new_pair], above[new_pair]
    roots = np.arange(runs)
    while True:
        # each run takes the smallest label of the runs it touches, then its label's label: every label is
        # a run of the same component no later than itself, so at rest each is its component's first run
        joined = np.minimum(roots[below], roots[above])
        settled = roots.copy()
        np.minimum.at(settled, below, joined)
        np.minimum.at(settled, above, joined)
        settled = settled[settled]
        if np.array_equal(settled, roots):
            break
        roots = settled
    labels = np.where(mask, roots[np.where(mask, run_of, 0)], -1)
    sizes = np.bincount(labels[mask], minlength=runs)
    order = [int(k) for k in np.argsort(-sizes, kind="stable") if sizes[k] > 0]
    return [labels == k for k in order]


def widest_row(prob: np.ndarray, keep: np.ndarray) -> tuple[int, float, float] | None:
    """(row, left edge, right edge) in grid pixels where the region `keep` (p >= 0.5) is widest; the edges are
    where p crosses 0.5, interpolated between the pixel centres on either side."""
    found = _row_edges(prob, keep)
    if found is None:
        return None
    rows, lefts, rights = found
    best = int(np.argmax(rights - lefts))  # the first (highest) of equally wide rows
    return int(rows[best]), float(lefts[best]), float(rights[best])


def widest_extent(prob: np.ndarray, keep: np.ndarray) -> tuple[int, float, float] | None:
    """(row, left edge, right edge): the region's whole horizontal extent, its leftmost and rightmost borders
    wherever they lie (the transverse cardiac diameter is the right and the left heart border's greatest
    distances from the midline, usually at different levels); the row is midway between the two borders'."""
    found = _row_edges(prob, keep)
    if found is None:
        return None
    rows, lefts, rights = found
    left_at = int(np.flatnonzero(lefts == lefts.min())[0])      # the highest of equally far left borders
    right_at = int(np.flatnonzero(rights == rights.max())[-1])  # the lowest of equally far right borders
    return int(round((rows[left_at] + rows[right_at]) / 2)), float(lefts[left_at]), float(rights[right_at])


def _row_edges(prob: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The rows the region crosses, and on each its left and right edge: where p crosses 0.5 beside the first
    and the last pixel inside, interpolated between the pixel centres (half a pixel out at the image's side)."""
    inside = keep & (prob >= 0.5)
    rows = np.flatnonzero(inside.any(axis=1))
    if rows.size == 0:
        return None
    width = inside.shape[1]
    first = np.argmax(inside[rows], axis=1)
    last = width - 1 - np.argmax(inside[rows, ::-1], axis=1)
    p = prob[rows].astype(np.float64)
    return rows, _edges(p, first, -1), _edges(p, last, +1)


def _edges(p: np.ndarray, i: np.ndarray, step: int) -> np.ndarray:
    """Sub-pixel positions of the 0.5 crossings next to pixels i (inside, one per row of p) toward i + step."""
    j = i + step
    outside = (j < 0) | (j >= p.shape[1])
    at = np.arange(len(i))
    a, b = p[at, i], p[at, np.clip(j, 0, p.shape[1] - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(a != b, (a - 0.5) / (a - b), 0.5)
    return np.where(outside, i + 0.5 * step, i + step * np.clip(t, 0.0, 1.0))


def _lung_pair(mask: np.ndarray, heart: np.ndarray | None, min_size: float, min_hidden: float
               ) -> list[np.ndarray] | None:
    """The two lungs, left one first: the two largest parts of the lung mask, the larger at least `min_size`
    pixels, the other (which a large heart may hide but for a crescent) at least `min_hidden`; where the lungs
    touch above the heart (one part), that part split at the heart's centre column. None when there is no
    such pair."""
    parts = [c for c in components(mask) if c.sum() >= min_hidden]
    if len(parts) < 2 and parts and heart is not None:
        split = int(round(np.flatnonzero(heart.any(axis=0)).mean()))
        left, right = parts[0].copy(), parts[0].copy()
        left[:, split:] = False
        right[:, :split] = False
        parts = [side[0] for side in (components(left), components(right)) if side and side[0].sum() >= min_hidden]
    if len(parts) < 2 or parts[0].sum() < min_size:
        return None
    return sorted(parts[:2], key=lambda m: np.flatnonzero(m.any(axis=0)).mean())


def cut_off(lungs: np.ndarray) -> bool:
    """True where the thorax cannot be measured inside the image: the lungs run along a side edge for more
    than half their height (a cropped chest), or along the bottom edge (the bases, where the thorax is
    widest, are outside). Apices cut off at the top do not matter to the ratio."""
    rows = np.flatnonzero(lungs.any(axis=1))
    cols = np.flatnonzero(lungs.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    along_sides = max(int(lungs[:, 0].sum()), int(lungs[:, -1].sum()))
    return along_sides > MAX_SIDE_CONTACT * height or int(lungs[-1].sum()) > MAX_EDGE_CONTACT * width


def at_side_edge(lungs: np.ndarray) -> bool:
    """True where a lung's outer margin runs along a side of the image for more than a graze: the thorax may
    reach beyond it, so the ratio measured against the edge may overstate the heart a little."""
    rows = np.flatnonzero(lungs.any(axis=1))
    height = rows[-1] - rows[0] + 1
    return max(int(lungs[:, 0].sum()), int(lungs[:, -1].sum())) > MAX_EDGE_CONTACT * height


def measure(probs: np.ndarray, image_shape: tuple[int, int]) -> CtrMeasurement | str:
    """The CTR from [2, S, S] probabilities (heart, lungs) of an image of `image_shape` (rows, columns), or
    the reason, in words, why this image is not one the model reads."""
    heart_p, lung_p = probs[HEART].astype(np.float32), probs[LUNGS].astype(np.float32)
    sh, sw = heart_p.shape
    area = sh * sw
    hearts = components(heart_p >= 0.5)
    lungs = _lung_pair(lung_p >= 0.5, hearts[0] if hearts else None, MIN_LUNG_SHARE * area,
                       MIN_HIDDEN_LUNG_SHARE * area)
    if lungs is None:
        return "not a frontal chest radiograph by its pixels (two lungs not found)"
    sizes = [float(m.sum()) for m in lungs]
    if min(sizes) < MIN_LUNG_BALANCE * max(sizes):
        return "not a frontal chest radiograph by its pixels (the lungs are not a pair)"
    rows = [np.flatnonzero(m.any(axis=1)) for m in lungs]
    overlap = min(rows[0][-1], rows[1][-1]) - max(rows[0][0], rows[1][0])
    if overlap < 0.5 * min(len(rows[0]), len(rows[1])):
        return "not a frontal chest radiograph by its pixels (the lungs are not side by side)"
    if not hearts or hearts[0].sum() < 0.01 * area:
        return "not a frontal chest radiograph by its pixels (no heart between the lungs)"
    heart = hearts[0]
    centre = lambda m: np.flatnonzero(m.any(axis=0)).mean()  # noqa: E731
    if not centre(lungs[0]) < centre(heart) < centre(lungs[1]):
        return "not a frontal chest radiograph by its pixels (no heart between the lungs)"
    both = lungs[0] | lungs[1]
    if cut_off(both):
        return "the thorax is cut off at the image edge"
    h_row = widest_extent(heart_p, heart)
    t_row = widest_row(np.maximum(lung_p, heart_p * heart), both | heart)
    if h_row is None or t_row is None:
        return "not a frontal chest radiograph by its pixels (no outline to measure)"
    thorax_w = t_row[2] - t_row[1]
    if thorax_w < MIN_THORAX_SHARE * sw:
        return "the chest is too small in the image to measure"
    sure = ((heart_p > 0.8) | (lung_p > 0.8)).sum()
    unsure = float((((heart_p > 0.2) & (heart_p < 0.8)) | ((lung_p > 0.2) & (lung_p < 0.8))).sum()) / max(sure, 1)
    if unsure > MAX_UNSURE:
        return "the model is not sure of the heart and lung outlines on this image"
    value = (h_row[2] - h_row[1]) / thorax_w
    rows_img, cols_img = image_shape
    fx, fy = cols_img / sw, rows_img / sh

    def line(row: tuple[int, float, float]) -> list[list[float]]:
        r = (row[0] + 0.5) * fy - 0.5
        return [[round((row[1] + 0.5) * fx - 0.5, 2), round(r, 2)], [round((row[2] + 0.5) * fx - 0.5, 2), round(r, 2)]]

    return CtrMeasurement(float(value), line(h_row), line(t_row), unsure, at_side_edge(both))


def score(value: float, unsure: float, threshold: float, scale: float, unsure_gain: float) -> float:
    """The calibrated probability of the finding from the measured CTR: a logistic curve centred on the
    threshold (so score >= 0.5 exactly when CTR >= threshold), flatter where the outlines are unsure."""
    z = (value - threshold) / (scale * (1.0 + unsure_gain * unsure))
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
