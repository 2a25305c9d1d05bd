"""A second family of synthetic radiographs, drawn unlike the demo phantoms, with exact label maps.

Why a second family: a model trained and validated on one generator learns that generator. These images are
drawn another way (SynthSeg's recipe, Billot et al. 2023): the anatomy is a *label map* of outlines (thoracic
cage from a random width profile, domes, a heart from a Fourier-perturbed blob, vertebrae, ribs as arcs,
clavicles, soft tissue), and the picture is made from the labels with random densities, blur, tone curve,
bias field and noise, so no two images share contrast. The demo phantoms (`phantoms.py`) are physical
projections with a console's processing; training on one family and validating on the other measures how a
model holds on images it never saw.

Also drawn here, with the same primitives: images a frontal-chest model must refuse (lateral chests,
abdomens, hands, long bones, spines, skulls, pelvises, test patterns, chests cut off at the edge), so the
model learns to find nothing in them and the refusal can be tested.

Geometry: x in mm to the image right (the patient's left on a PA view), y in mm downward; the image grid is
`rows x cols` pixels of `spacing` mm. Truth: CTR = widest horizontal extent of the visible heart (above the
diaphragm) / widest inner extent of the thorax (the lungs' outer margins), both measured on the label map at
four times the output resolution horizontally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

F32 = np.float32
CTR_THRESHOLD = 0.5

# label map values
BACKGROUND, BODY, LUNG, HEART, MEDIASTINUM, ABDOMEN, BONE, AIR_GAS = range(8)

OUT_OF_SCOPE_KINDS = ("lateral_chest", "abdomen", "hand", "long_bone", "spine", "skull", "pelvis",
                      "test_pattern", "cropped_chest", "knee")


@dataclass
class Grid:
    """Pixel centres of a rows x cols image in mm (x right, y down)."""

    rows: int
    cols: int
    spacing: float

    def coords(self, oversample: int = 1) -> tuple[np.ndarray, np.ndarray]:
        ys = (np.arange(self.rows, dtype=F32) + 0.5) * F32(self.spacing)
        xs = (np.arange(self.cols * oversample, dtype=F32) + 0.5) * F32(self.spacing / oversample)
        return xs[None, :], ys[:, None]


def _smooth_profile(rng: np.random.Generator, n: int = 6, amp: float = 0.04) -> np.ndarray:
    """Random low-frequency factors around 1 at n control points."""
    return 1 + rng.uniform(-amp, amp, n)


def _interp(t: np.ndarray, knots: np.ndarray) -> np.ndarray:
    return np.interp(t, np.linspace(0, 1, len(knots)), knots).astype(F32)


def _blob(x, y, cx, cy, rx, ry, angle, harmonics) -> np.ndarray:
    """Signed inside test of a Fourier-perturbed ellipse: < 0 inside."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - F32(cx), y - F32(cy)
    u = (dx * F32(c) + dy * F32(s)) / F32(rx)
    v = (-dx * F32(s) + dy * F32(c)) / F32(ry)
    r = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    bound = np.ones_like(theta)
    for k, (a, ph) in enumerate(harmonics, start=2):
        bound += F32(a) * np.cos(F32(k) * theta + F32(ph))
    return r - bound


def _blob_boundary(cx, cy, rx, ry, angle, harmonics, n: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    bound = np.ones_like(t)
    for k, (a, ph) in enumerate(harmonics, start=2):
        bound += a * np.cos(k * t + ph)
    u, v = bound * np.cos(t) * rx, bound * np.sin(t) * ry
    c, s = math.cos(angle), math.sin(angle)
    return cx + u * c - v * s, cy + u * s + v * c


def _capsule(x, y, p0, p1, radius) -> np.ndarray:
    """Distance to a segment minus radius (< 0 inside)."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    length2 = max(dx * dx + dy * dy, 1e-6)
    t = np.clip(((x - F32(x0)) * F32(dx) + (y - F32(y0)) * F32(dy)) / F32(length2), 0, 1)
    px, py = F32(x0) + t * F32(dx), F32(y0) + t * F32(dy)
    return np.sqrt((x - px) ** 2 + (y - py) ** 2) - F32(radius)


def _soft(sd: np.ndarray, width: float) -> np.ndarray:
    return np.clip(F32(0.5) - sd / F32(width), 0, 1)


@dataclass
class Chest:
    """The sampled frontal chest: thoracic cage, domes and heart, with the truth measured on them."""

    cx: float
    apex: float
    half_left: np.ndarray   # inner half-width knots (mm) on the image-left side, apex..costophrenic angle
    half_right: np.ndarray
    dome_y: tuple[float, float]   # dome peaks (image-left, image-right)
    dome_depth: float
    sulcus_y: float               # level of the costophrenic angles
    heart: tuple                  # (cx, cy, rx, ry, angle, harmonics)

    def half_widths(self, y):
        t = np.clip((y - F32(self.apex)) / F32(self.sulcus_y - self.apex), 0, 1)
        shape = np.sqrt(np.clip(1 - (1 - t) ** 2.2, 0, 1)) ** F32(0.7)
        return shape * _interp(t, self.half_left), shape * _interp(t, self.half_right)

    def diaphragm(self, x):
        """y of the diaphragm under x: two domes, lower laterally, joined at the centre."""
        xl = F32(self.cx) - x
        width = float(np.mean(self.half_left) + np.mean(self.half_right)) / 2
        left = F32(self.dome_y[0]) + F32(self.dome_depth) * ((xl - F32(0.45 * width)) / F32(width)) ** 2
        right = F32(self.dome_y[1]) + F32(self.dome_depth) * ((-xl - F32(0.45 * width)) / F32(width)) ** 2
        return np.where(xl > 0, left, right)


def sample_chest(rng: np.random.Generator, ctr: float, field_w: float, field_h: float) -> tuple[Chest, float]:
    """A chest whose visible heart width is `ctr` x the widest inner thoracic width; returns (chest, measured)."""
    w = rng.uniform(105, 165)
    cx = field_w / 2 + rng.uniform(-0.06, 0.06) * field_w
    apex = rng.uniform(0.04, 0.16) * field_h
    height = rng.uniform(0.5, 0.68) * field_h
    sulcus = apex + height
    bulge = rng.uniform(-0.05, 0.08)
    base = np.array([0.55, 0.8, 0.93, 1.0 + bulge, 1.0 + bulge / 2, 1.0])
    left = w * base * _smooth_profile(rng) * rng.uniform(0.96, 1.04)
    right = w * base * _smooth_profile(rng) * rng.uniform(0.96, 1.04)
    depth = rng.uniform(25, 70)
    dome_r = sulcus - depth - rng.uniform(-10, 15)
    dome_l = dome_r + rng.uniform(-5, 25)
    if rng.random() < 0.5:  # either dome may be the higher one (image left = patient right on PA)
        dome_l, dome_r = dome_r, dome_l
    chest = Chest(cx, apex, left, right, (dome_l, dome_r), depth, sulcus, heart=())
    k = rng.integers(0, 3)
    harmonics = [(rng.uniform(-0.06, 0.06), rng.uniform(0, 2 * np.pi)) for _ in range(k + 1)]
    aspect = rng.uniform(0.62, 0.95)
    angle = math.radians(rng.uniform(-40, -10))  # long axis from upper right to lower left of the image
    offset = rng.uniform(0.05, 0.25)  # the heart sits toward the image right (the patient's left)
    thorax = thorax_width(chest)
    target = ctr * thorax
    sink = rng.uniform(0.3, 0.6)  # share of the heart's height hidden below the diaphragm
    hcx = chest.cx + offset * target
    rx = target / 2
    for _ in range(6):
        hcy = float(chest.diaphragm(np.float32(hcx))) - rx * aspect * (1 - 2 * sink * 0.5)
        chest.heart = (hcx, hcy, rx, rx * aspect, angle, harmonics)
        rx *= target / max(heart_width(chest), 1e-3)
    hcy = float(chest.diaphragm(np.float32(hcx))) - rx * aspect * (1 - sink)
    chest.heart = (hcx, hcy, rx, rx * aspect, angle, harmonics)
    for _ in range(3):  # the final size at the final height
        chest.heart = (hcx, hcy, rx, rx * aspect, angle, harmonics)
        rx *= target / max(heart_width(chest), 1e-3)
    chest.heart = (hcx, hcy, rx, rx * aspect, angle, harmonics)
    return chest, heart_width(chest) / thorax


def thorax_width(chest: Chest) -> float:
    ys = np.linspace(chest.apex, chest.sulcus_y, 800, dtype=F32)
    hl, hr = chest.half_widths(ys)
    inside = ys < np.minimum(chest.diaphragm(F32(chest.cx) - hl), chest.diaphragm(F32(chest.cx) + hr)) + 1e-3
    return float((hl + hr)[inside].max()) if inside.any() else float((hl + hr).max())


def heart_width(chest: Chest) -> float:
    x, y = _blob_boundary(*chest.heart)
    visible = y < chest.diaphragm(x.astype(F32)) - 1.0
    return float(x[visible].max() - x[visible].min()) if visible.any() else 0.0


def _chest_labels(chest: Chest, grid: Grid, rng: np.random.Generator):
    """Masks (float 0..1) of body, lungs, heart (visible), mediastinum, abdomen, bones on the grid."""
    x, y = grid.coords()
    hl, hr = chest.half_widths(y)
    dia = chest.diaphragm(x)
    cav = ((x > F32(chest.cx) - hl) & (x < F32(chest.cx) + hr) & (y > F32(chest.apex)) & (y < dia)).astype(F32)
    # rounded apices
    apex_cap = y - (F32(chest.apex) + F32(0.004) * (np.abs(x - F32(chest.cx)) - F32(40)).clip(0) ** 2)
    cav *= (apex_cap > 0)
    hb = _blob(x, y, *chest.heart)
    heart_all = _soft(hb * F32(chest.heart[2]), 1.2)
    heart = heart_all * (y < dia)
    # mediastinum: a band around the midline, wider near the heart, with an aortic knob
    mw = rng.uniform(16, 30)
    band = np.abs(x - F32(chest.cx + rng.uniform(-4, 4))) - F32(mw) * (1 + F32(0.3) * np.clip(
        (y - F32(chest.apex)) / F32(chest.sulcus_y - chest.apex), 0, 1))
    knob = np.sqrt((x - F32(chest.cx + mw + rng.uniform(0, 10))) ** 2
                   + (y - F32(chest.apex + rng.uniform(45, 75))) ** 2) - F32(rng.uniform(10, 18))
    med = _soft(np.minimum(band, knob), 1.5) * (y > F32(chest.apex - 30)) * (y < dia)
    lungs = cav * (1 - np.maximum(med, heart_all))
    torso_half = np.maximum(hl, hr) + F32(rng.uniform(15, 45))
    torso = (np.abs(x - F32(chest.cx)) < torso_half + F32(20) * np.clip((y - F32(chest.sulcus_y)) / 100, 0, 1))
    neck = (np.abs(x - F32(chest.cx)) < F32(rng.uniform(40, 60))) & (y < F32(chest.apex + 10))
    shoulder = y > F32(chest.apex - rng.uniform(10, 40)) + F32(0.25) * np.clip(
        np.abs(x - F32(chest.cx)) - F32(50), 0, None)
    body = ((torso & shoulder) | neck).astype(F32)
    abdomen = body * (y > dia)
    return {"body": body, "lungs": lungs, "heart": heart, "med": med, "abdomen": abdomen, "cav": cav}


def _bones_chest(chest: Chest, grid: Grid, rng: np.random.Generator) -> np.ndarray:
    x, y = grid.coords()
    bones = np.zeros((grid.rows, grid.cols), F32)
    # spine: vertebral bodies down the midline
    top = chest.apex - 40
    h = rng.uniform(18, 26)
    vw = rng.uniform(14, 22)
    for i in range(int((grid.rows * grid.spacing - top) / h) + 1):
        cy = top + i * h
        sd = np.maximum(np.abs(x - F32(chest.cx)) - F32(vw), np.abs(y - F32(cy)) - F32(h * 0.4))
        bones += F32(0.7) * _soft(sd, 2.0)
    # ribs: arcs from the spine outward and down
    n_ribs = rng.integers(8, 11)
    gap = (chest.sulcus_y - chest.apex) / (n_ribs + 1)
    thick = rng.uniform(4, 8)
    for side in (-1, 1):
        for i in range(n_ribs):
            y0 = chest.apex + (i + 0.3) * gap
            hl, hr = chest.half_widths(np.float32(y0 + gap))
            reach = float(hl if side < 0 else hr) + thick
            ts = np.linspace(0, 1, 12)
            pts = [(chest.cx + side * (10 + t * reach), y0 + gap * 1.6 * t ** 1.6 - 8 * math.sin(math.pi * t))
                   for t in ts]
            for p0, p1 in zip(pts, pts[1:]):
                bones += F32(0.35) * _soft(_capsule(x, y, p0, p1, thick / 2), 1.5)
    # clavicles
    for side in (-1, 1):
        p0 = (chest.cx + side * 15, chest.apex + rng.uniform(0, 20))
        p1 = (chest.cx + side * rng.uniform(110, 150), chest.apex - rng.uniform(0, 25))
        bones += F32(0.6) * _soft(_capsule(x, y, p0, p1, rng.uniform(5, 8)), 1.5)
    return np.minimum(bones, F32(1.5))


def _render(layers: list[tuple[np.ndarray, float]], grid: Grid, rng: np.random.Generator,
            invert: bool = False) -> np.ndarray:
    """Picture from weighted label layers: random blur, tone curve, bias field and noise; uint16 12-bit."""
    img = np.zeros((grid.rows, grid.cols), F32)
    for mask, density in layers:
        img += mask * F32(density)
    # blur: a random box radius in pixels, applied twice (about Gaussian)
    radius = int(rng.integers(0, 3))
    for _ in range(2):
        img = _box(img, radius)
    # low-frequency bias field
    by, bx = np.meshgrid(np.linspace(-1, 1, grid.rows, dtype=F32), np.linspace(-1, 1, grid.cols, dtype=F32),
                         indexing="ij")
    c = rng.uniform(-0.15, 0.15, 5)
    img *= F32(1) + F32(c[0]) * bx + F32(c[1]) * by + F32(c[2]) * bx * by + F32(c[3]) * bx ** 2 + F32(c[4]) * by ** 2
    lo, hi = np.percentile(img[:: 4, :: 4], [0.5, 99.5])
    t = np.clip((img - F32(lo)) / F32(max(hi - lo, 1e-3)), 0, 1)
    t = t ** F32(rng.uniform(0.6, 1.6))
    t = t + F32(rng.uniform(0.005, 0.03)) * rng.standard_normal(t.shape).astype(F32)
    t = np.clip(t, 0, 1)
    if invert:
        t = 1 - t
    return (F32(rng.uniform(50, 300)) + t * F32(rng.uniform(2500, 3700))).astype(np.uint16)


def _box(a: np.ndarray, r: int) -> np.ndarray:
    if r < 1:
        return a
    k = 2 * r + 1
    p = np.pad(a, r, mode="edge")
    c = np.cumsum(np.cumsum(p, axis=0, dtype=np.float64), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return (s / (k * k)).astype(F32)


def _texture(grid: Grid, rng: np.random.Generator, scale_px: float, amp: float) -> np.ndarray:
    from medview.core.viewing.heatmap import resize_bilinear

    h = max(2, int(grid.rows / scale_px) + 2)
    w = max(2, int(grid.cols / scale_px) + 2)
    return resize_bilinear(rng.standard_normal((h, w)).astype(F32), (grid.rows, grid.cols)) * F32(amp)


def _field(rng: np.random.Generator, rows: int | None, cols: int | None) -> Grid:
    if cols is None:
        cols = int(rng.integers(256, 1025))
    if rows is None:
        rows = int(round(cols * rng.uniform(0.95, 1.3)))
    spacing = float(rng.uniform(330.0, 440.0) / cols)
    return Grid(rows, cols, round(spacing, 5))


def frontal_chest(rng: np.random.Generator, ctr: float, *, rows: int | None = None, cols: int | None = None
                  ) -> tuple[np.ndarray, dict]:
    """A frontal chest radiograph of this family with the given CTR: (uint16 pixels in MONOCHROME2 sense,
    params with "ctr" (measured), "label", "pixel_spacing", and "heart"/"lungs" masks (uint8) on the grid)."""
    grid = _field(rng, rows, cols)
    chest, measured = sample_chest(rng, ctr, grid.cols * grid.spacing, grid.rows * grid.spacing)
    labels = _chest_labels(chest, grid, rng)
    bones = _bones_chest(chest, grid, rng)
    lung_tex = _texture(grid, rng, 12 / grid.spacing, 0.06) + _texture(grid, rng, 3 / grid.spacing, 0.03)
    tissue = rng.uniform(0.6, 1.0)
    layers = [
        (labels["body"], tissue),
        (labels["lungs"], -rng.uniform(0.35, 0.6)),
        (labels["lungs"] * lung_tex, 1.0),
        (labels["heart"], rng.uniform(0.05, 0.3)),
        (labels["med"], rng.uniform(0.05, 0.3)),
        (labels["abdomen"], rng.uniform(0.0, 0.3)),
        (bones, rng.uniform(0.15, 0.45)),
    ]
    pixels = _render(layers, grid, rng)
    params = {
        "ctr": round(float(measured), 5),
        "label": int(measured >= CTR_THRESHOLD),
        "pixel_spacing": grid.spacing,
        "rows": grid.rows,
        "cols": grid.cols,
        "heart": (labels["heart"] > 0.5).astype(np.uint8),
        "lungs": (labels["lungs"] > 0.5).astype(np.uint8),
    }
    return pixels, params


# ------------------------------------------------------------------------------------------ out of scope


def out_of_scope(rng: np.random.Generator, kind: str, *, rows: int | None = None, cols: int | None = None
                 ) -> np.ndarray:
    """An image a frontal-chest model must refuse (uint16, MONOCHROME2 sense); `kind` from OUT_OF_SCOPE_KINDS."""
    grid = _field(rng, rows, cols)
    x, y = grid.coords()
    fw, fh = grid.cols * grid.spacing, grid.rows * grid.spacing
    cx, cy = fw / 2 + rng.uniform(-0.08, 0.08) * fw, fh / 2 + rng.uniform(-0.08, 0.08) * fh
    layers: list[tuple[np.ndarray, float]] = []
    bone = rng.uniform(0.3, 0.7)
    if kind == "lateral_chest":
        depth = rng.uniform(0.45, 0.7) * fw
        body = _soft(_blob(x, y, cx, cy + 0.1 * fh, depth / 2, 0.6 * fh, 0, []) * F32(depth / 2), 2)
        lung = _soft(_blob(x, y, cx + rng.uniform(-10, 10), cy - 0.05 * fh, depth * 0.38, 0.3 * fh,
                           rng.uniform(-0.2, 0.2), [(rng.uniform(-0.05, 0.05), 1.0)]) * 50, 2)
        dia = y < F32(cy + 0.22 * fh) - F32(0.0015) * (x - F32(cx)) ** 2
        lung *= dia
        front = cx - rng.uniform(0.1, 0.2) * depth * rng.choice([-1, 1])
        heart = _soft(_blob(x, y, front, cy + 0.12 * fh, depth * 0.22, 0.14 * fh, 0.5, []) * 40, 2) * dia
        spine_x = cx + (front - cx) * -2.2
        layers += [(body, 0.8), (lung, -0.5), (heart, 0.3)]
        for i in range(14):
            vy = cy - 0.35 * fh + i * 0.05 * fh
            sd = np.maximum(np.abs(x - F32(spine_x)) - F32(18), np.abs(y - F32(vy)) - F32(0.018 * fh))
            layers.append((_soft(sd, 1.5), bone))
        for side in (-1, 1):
            p0 = (cx + side * depth * 0.2, cy - 0.55 * fh)
            p1 = (cx + side * depth * 0.1, cy - 0.25 * fh)
            layers.append((_soft(_capsule(x, y, p0, p1, 14), 2), bone))
    elif kind in ("abdomen", "pelvis"):
        half = rng.uniform(0.3, 0.45) * fw
        body = _soft(np.abs(x - F32(cx)) - F32(half), 3)
        layers.append((body, 0.9))
        for i in range(9 if kind == "abdomen" else 4):
            vy = cy - (0.4 if kind == "abdomen" else 0.15) * fh + i * 0.07 * fh
            sd = np.maximum(np.abs(x - F32(cx)) - F32(24), np.abs(y - F32(vy)) - F32(0.025 * fh))
            layers.append((_soft(sd, 1.5), bone))
        iliac_y = cy + (0.25 if kind == "abdomen" else 0.0) * fh
        for side in (-1, 1):
            wing = _blob(x, y, cx + side * half * 0.55, iliac_y, half * 0.35, 0.12 * fh, side * 0.5, [])
            layers.append((_soft(np.abs(wing) * 30 - 6, 2), bone))
            layers.append((_soft(_blob(x, y, cx + side * half * 0.6, iliac_y + 0.18 * fh, 22, 22, 0, []) * 22, 2),
                           bone))
        if kind == "abdomen":
            layers.append((_soft(_blob(x, y, cx - half * 0.5, cy - 0.3 * fh, half * 0.5, 0.18 * fh, 0.3, []) * 40,
                                 3), 0.2))
        for _ in range(int(rng.integers(3, 12))):
            gx, gy = cx + rng.uniform(-0.7, 0.7) * half, cy + rng.uniform(-0.35, 0.35) * fh
            layers.append((_soft(_blob(x, y, gx, gy, rng.uniform(10, 40), rng.uniform(8, 25), rng.uniform(0, 3),
                                       [(rng.uniform(-0.15, 0.15), 0.5)]) * 15, 2), -0.45))
    elif kind == "hand":
        palm = _soft(_blob(x, y, cx, cy + 0.15 * fh, 0.2 * fw, 0.18 * fh, 0, []) * 40, 3)
        layers.append((palm, 0.5))
        for f in range(5):
            ang = math.radians(-60 + f * 28 + rng.uniform(-5, 5))
            base = (cx + 0.12 * fw * math.sin(ang) * 1.3, cy + 0.05 * fh)
            seg = 0.09 * fh
            p = base
            for _ in range(3 if f else 2):
                q = (p[0] + seg * math.sin(ang), p[1] - seg * math.cos(ang))
                layers.append((_soft(_capsule(x, y, p, q, 0.028 * fw), 2), 0.5))
                layers.append((_soft(_capsule(x, y, p, q, 0.012 * fw), 1.5), bone))
                p = (q[0] + 0.01 * fh * math.sin(ang), q[1] - 0.01 * fh * math.cos(ang))
                seg *= 0.75
            meta0 = (cx + (f - 2) * 0.04 * fw, cy + 0.3 * fh)
            layers.append((_soft(_capsule(x, y, meta0, base, 0.012 * fw), 1.5), bone))
    elif kind in ("long_bone", "knee"):
        ang = rng.uniform(-0.3, 0.3)
        top, bottom = (cx + math.sin(ang) * fh * 0.6, cy - 0.6 * fh), (cx - math.sin(ang) * fh * 0.6, cy + 0.6 * fh)
        layers.append((_soft(_capsule(x, y, top, bottom, 0.22 * fw), 3), 0.7))
        if kind == "knee":
            layers.append((_soft(_capsule(x, y, top, (cx, cy - 0.03 * fh), 0.08 * fw), 2), bone))
            layers.append((_soft(_capsule(x, y, (cx, cy + 0.03 * fh), bottom, 0.075 * fw), 2), bone))
            layers.append((_soft(_blob(x, y, cx, cy - 0.06 * fh, 0.12 * fw, 0.05 * fh, 0, []) * 30, 2), bone))
        else:
            layers.append((_soft(_capsule(x, y, top, bottom, 0.06 * fw), 2), bone))
            layers.append((_soft(_capsule(x, y, top, bottom, 0.03 * fw), 2), -bone * 0.5))
    elif kind == "spine":
        layers.append((_soft(np.abs(x - F32(cx)) - F32(0.3 * fw), 3), 0.7))
        n = int(rng.integers(5, 12))
        for i in range(n):
            vy = (i + 0.5) * fh / n
            sd = np.maximum(np.abs(x - F32(cx + 6 * math.sin(i))) - F32(0.12 * fw), np.abs(y - F32(vy)) -
                            F32(0.33 * fh / n))
            layers.append((_soft(sd, 2), bone))
    elif kind == "skull":
        r = rng.uniform(0.3, 0.42) * min(fw, fh)
        d = np.sqrt((x - F32(cx)) ** 2 + ((y - F32(cy)) * F32(0.9)) ** 2)
        layers.append((_soft(d - F32(r), 3), 0.6))
        layers.append((_soft(np.abs(d - F32(r * 0.93)) - F32(r * 0.04), 2), bone))
    elif kind == "cropped_chest":
        big = Grid(int(grid.rows * rng.uniform(1.6, 2.6)), int(grid.cols * rng.uniform(1.6, 2.6)), grid.spacing)
        img, _ = frontal_chest(rng, rng.uniform(0.38, 0.65), rows=big.rows, cols=big.cols)
        r0 = int(rng.integers(0, big.rows - grid.rows + 1))
        c0 = int(rng.choice([0, big.cols - grid.cols, int(rng.integers(0, big.cols - grid.cols + 1))]))
        return img[r0:r0 + grid.rows, c0:c0 + grid.cols].copy()
    else:  # test pattern: bars, gradients, checkerboard
        choice = rng.integers(0, 3)
        if choice == 0:
            layers.append(((np.floor(x / F32(fw / 8)) % 2).astype(F32) * np.ones_like(y), 1.0))
        elif choice == 1:
            layers.append(((x / F32(fw) + y / F32(fh)) / 2, 1.0))
        else:
            layers.append((((np.floor(x / 30) + np.floor(y / 30)) % 2).astype(F32), 1.0))
    return _render(layers, grid, rng)
