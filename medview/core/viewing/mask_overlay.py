"""Segmentation masks as one RGBA overlay: each segment's outline in its colour over a faint fill of it.

An outline rather than a solid fill, so the reader still sees the anatomy under the mask and judges its edge;
the faint fill says which side of the edge is inside. The outline is a few image pixels wide on a large
image, so it stays visible at fit-to-window zoom.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

FILL_ALPHA = 40
OUTLINE_ALPHA = 235
# distinct from each other, from grey anatomy and from the heatmap's inferno colours
SEGMENT_COLOURS = ("#00e676", "#ff4081", "#40c4ff", "#ffea00", "#e040fb", "#ff6e40", "#64ffda", "#b2ff59")


def segment_colour(index: int) -> str:
    return SEGMENT_COLOURS[index % len(SEGMENT_COLOURS)]


def rgb(colour: str) -> tuple[int, int, int]:
    """"#00e676" -> (0, 230, 118)."""
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def outline_width(shape: tuple[int, int]) -> int:
    """Outline width in image pixels: about 1/300 of the larger side, at least one pixel."""
    return max(1, round(max(shape) / 300))


def erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """`mask` shrunk by `steps` pixels (4-neighbourhood); the image border counts as outside."""
    inside = mask.astype(bool)
    for _ in range(steps):
        shrunk = inside.copy()
        shrunk[1:, :] &= inside[:-1, :]
        shrunk[:-1, :] &= inside[1:, :]
        shrunk[:, 1:] &= inside[:, :-1]
        shrunk[:, :-1] &= inside[:, 1:]
        shrunk[0, :] = shrunk[-1, :] = False
        shrunk[:, 0] = shrunk[:, -1] = False
        inside = shrunk
    return inside


def outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The band of `mask` within `width` pixels of its edge."""
    inside = mask.astype(bool)
    return inside & ~erode(inside, width)


def overlay_rgba(masks: Sequence[tuple[np.ndarray, str]], width: int | None = None) -> np.ndarray:
    """[rows, cols, 4] uint8 of (mask, colour) pairs: later masks' outlines drawn over earlier ones."""
    shape = masks[0][0].shape
    width = outline_width(shape) if width is None else width
    out = np.zeros((*shape, 4), np.uint8)
    for mask, colour in masks:
        inside = mask.astype(bool)
        fill = inside & (out[..., 3] < FILL_ALPHA)
        out[fill] = (*rgb(colour), FILL_ALPHA)
        out[outline(inside, width)] = (*rgb(colour), OUTLINE_ALPHA)
    return out
