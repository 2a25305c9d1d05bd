"""A third family of synthetic frontal chests: plain geometric shapes, for the shape variety the other two lack.

The demo phantoms are physical projections and the outline family is drawn from an anatomical label map;
both always put the lungs inside a rib cage that ends on the diaphragm. Real images, and other people's
phantoms, do not always look like that: lungs may float in the soft tissue, be tear-drop or box shaped, lean,
differ in size; the heart may overlap the lungs a lot or a little, be brighter or darker than the soft tissue.
This family draws exactly that variety from superellipses with Fourier-perturbed outlines, optional domes,
spine, rib stripes and clavicles, rendered through the outline family's random densities, blur, bias field,
tone curve and noise.

Truth, as in the other families: CTR = whole horizontal extent of the visible heart / widest inner extent of
the thorax (the lungs' outer margins on one row), measured on the label map at four times the output
resolution horizontally.
"""

from __future__ import annotations

import math

import numpy as np

from medview.core.demo.outline_phantoms import CTR_THRESHOLD, F32, Grid, _field, _render, _soft, _texture


def _superellipse(x, y, cx, cy, rx, ry, power, angle, harmonics, taper) -> np.ndarray:
    """Signed inside test (< 0 inside) of a rotated superellipse whose outline is Fourier-perturbed and whose
    width narrows toward its top by `taper` (0: none)."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - F32(cx), y - F32(cy)
    v = (-dx * F32(s) + dy * F32(c)) / F32(ry)
    u = (dx * F32(c) + dy * F32(s)) / F32(rx) / (F32(1) - F32(taper) * np.clip(F32(1) - v, 0, 2) / F32(2))
    r = (np.abs(u) ** F32(power) + np.abs(v) ** F32(power)) ** F32(1 / power)
    theta = np.arctan2(v, u)
    bound = np.ones_like(theta)
    for k, (a, ph) in enumerate(harmonics, start=2):
        bound += F32(a) * np.cos(F32(k) * theta + F32(ph))
    return r - bound


def _harmonics(rng: np.random.Generator, amp: float) -> list[tuple[float, float]]:
    return [(float(rng.uniform(-amp, amp) / k), float(rng.uniform(0, 2 * np.pi))) for k in range(2, 6)]


def horizontal_extent(mask: np.ndarray) -> float:
    """Whole horizontal extent of a mask, in columns."""
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[-1] - cols[0] + 1) if cols.size else 0.0


def widest_row(mask: np.ndarray) -> float:
    """Widest outer extent over single rows, in columns."""
    best = 0.0
    for row in mask[mask.any(axis=1)]:
        cols = np.flatnonzero(row)
        best = max(best, float(cols[-1] - cols[0] + 1))
    return best


def frontal_chest(rng: np.random.Generator, ctr: float, *, rows: int | None = None, cols: int | None = None
                  ) -> tuple[np.ndarray, dict]:
    """A frontal chest of this family near the given CTR: (uint16 pixels in MONOCHROME2 sense, params with
    "ctr" (measured on the label map), "label", "pixel_spacing", and "heart"/"lungs" masks on the grid)."""
    grid = _field(rng, rows, cols)
    over = 4
    x, y = grid.coords(over)
    width, height = grid.cols * grid.spacing, grid.rows * grid.spacing
    cx = width / 2 + rng.uniform(-0.05, 0.05) * width
    thorax = rng.uniform(0.55, 0.86) * width
    gap = rng.uniform(0.03, 0.14) * thorax            # from the midline to each lung's inner edge
    rx = (thorax / 2 - gap) / 2
    ry = min(rx * rng.uniform(1.2, 2.3), height * 0.4)
    cy = max(ry * 1.05, height * rng.uniform(0.36, 0.5))
    power = rng.uniform(1.7, 3.5)
    taper = rng.uniform(0.0, 0.5) if rng.random() < 0.6 else 0.0
    lungs = np.zeros((grid.rows, grid.cols * over), bool)
    for side in (-1, 1):
        k = rng.uniform(0.9, 1.1)
        lcx = cx + side * (gap + rx * k)
        lungs |= _superellipse(x, y, lcx, cy + rng.uniform(-0.08, 0.08) * ry, rx * k, ry * rng.uniform(0.9, 1.1),
                               power, side * rng.uniform(-0.05, 0.2), _harmonics(rng, 0.12), taper) < 0
    domes = rng.random() < 0.5
    if domes:  # the lungs end on two domes, the heart hides below them
        level = cy + ry * rng.uniform(0.55, 0.95)
        dome = F32(level) + F32(rng.uniform(0.0, 0.004)) * (np.abs(x - F32(cx)) - F32(gap + rx)) ** 2
        above = y < dome
    else:
        above = np.ones_like(lungs)
    lungs &= above

    # the heart: a blob over the lower medial lungs, scaled so its visible extent is ctr x the thorax
    hx = cx + rng.uniform(0.0, 0.3) * rx
    low = not domes and rng.random() < 0.4  # a heart reaching below the lungs, seen against soft tissue only
    hy = cy + ry * (rng.uniform(0.6, 1.05) if low else rng.uniform(0.25, 0.75))
    aspect, angle, harm = rng.uniform(0.55, 0.95), rng.uniform(-0.5, 0.15), _harmonics(rng, 0.1)
    hpow = rng.uniform(1.8, 2.6)
    thorax_cols = widest_row(lungs)  # before the heart takes its share (the outer margins stay)
    half = ctr * thorax_cols * grid.spacing / over / 2
    for _ in range(3):
        heart = (_superellipse(x, y, hx, hy, half, half * aspect, hpow, angle, harm, 0.0) < 0) & above
        got = horizontal_extent(heart) * grid.spacing / over
        if got <= 0:
            break
        half *= ctr * thorax_cols * grid.spacing / over / got
    heart = (_superellipse(x, y, hx, hy, half, half * aspect, hpow, angle, harm, 0.0) < 0) & above
    behind = lungs & heart  # lung behind the heart: it may still darken the silhouette a little
    lungs &= ~heart
    measured = horizontal_extent(heart) / max(widest_row(lungs), 1.0)

    def down(mask: np.ndarray) -> np.ndarray:
        return mask.reshape(grid.rows, grid.cols, over).mean(axis=2, dtype=F32)

    lungs_f, heart_f = down(lungs), down(heart)
    xs, ys = grid.coords()
    body_rx = thorax / 2 + rng.uniform(8, 70)
    body_sd = _superellipse(xs, ys, cx, cy + ry * rng.uniform(0.2, 1.0), body_rx, max(height, ry * 2.5),
                            rng.uniform(2.0, 6.0), 0.0, [], 0.0) * F32(body_rx)
    body = _soft(body_sd, 2.0) if rng.random() < 0.8 else np.ones((grid.rows, grid.cols), F32)
    lung_density = rng.uniform(0.25, 0.65)
    heart_density = rng.uniform(0.02, 0.08) if rng.random() < 0.3 else rng.uniform(-0.1, 0.35)
    layers = [(body, rng.uniform(0.5, 1.0)), (lungs_f, -lung_density),
              (heart_f, heart_density), (down(behind), -lung_density * rng.uniform(0.0, 0.5)),
              (lungs_f * _texture(grid, rng, 10 / grid.spacing, rng.uniform(0.0, 0.08)), 1.0)]
    if domes:
        layers.append((body * down(~above), rng.uniform(-0.05, 0.2)))  # the abdomen below the domes
    if rng.random() < 0.7:  # spine
        spine = _soft((np.abs(xs - F32(cx + rng.uniform(-3, 3))) - F32(rng.uniform(10, 22))), 2.0) * body
        layers.append((spine, rng.uniform(0.05, 0.4)))
    if rng.random() < 0.5:  # ribs as faint stripes over the lungs
        period = rng.uniform(14, 26)
        stripes = (np.sin((ys + F32(0.15) * np.abs(xs - F32(cx))) * F32(2 * np.pi / period)) > 0.6).astype(F32)
        layers.append((stripes * body, rng.uniform(0.03, 0.15)))
    if rng.random() < 0.5:  # clavicles
        top = cy - ry
        for side in (-1, 1):
            line = np.abs((ys - F32(top + rng.uniform(-20, 10))) + F32(side * rng.uniform(0.05, 0.3)) * (xs - F32(cx)))
            reach = np.abs(xs - F32(cx)) < F32(rx * 2 + gap)
            layers.append((_soft(line - F32(rng.uniform(3, 7)), 1.5) * reach * (side * (xs - F32(cx)) > 0),
                           rng.uniform(0.1, 0.4)))
    pixels = _render(layers, grid, rng)
    return pixels, {
        "ctr": round(float(measured), 5),
        "label": int(measured >= CTR_THRESHOLD),
        "pixel_spacing": grid.spacing,
        "rows": grid.rows,
        "cols": grid.cols,
        "heart": (heart_f > 0.5).astype(np.uint8),
        "lungs": (lungs_f > 0.5).astype(np.uint8),
    }
