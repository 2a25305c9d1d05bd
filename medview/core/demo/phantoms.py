"""Pixel synthesis of the demo studies: chest radiographs (PA) and a chest CT volume, pure numpy.

Radiographs are built as a projection: every structure adds (bone, soft tissue) or removes (lung air) a
water-equivalent path length in millimetres, evaluated in the patient's frame (u: millimetres to the patient's
left = image right, v: millimetres downward from the lung apex), on a half-resolution grid, then processed the
way CR/DX consoles do (dynamic-range compression, tone curve), upsampled and given quantum noise.

The demo finding is an enlarged heart. The cardiothoracic ratio is CTR = (maximal horizontal width of the
visible heart silhouette) / (maximal internal thoracic width, inner rib margins); the heart is scaled until its
measured width gives the requested ratio, and the *measured* value is what `params["ctr"]` reports.
Everything is float32 and vectorised; the only Python loops run over structures (ribs, vessel segments).

Matrix and spacing: 1024-1200 columns by 1024-1280 rows with Pixel Spacing = field width / columns, about
0.3-0.4 mm, so the field is the 35 x 43 cm class of a real chest plate and the anatomy has adult size. (A native
0.14-0.2 mm detector pitch at this matrix would give a 15-25 cm field: a child's chest.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medview.core.viewing.heatmap import resize_bilinear

MAX_STORED = 4095  # BitsStored 12
CTR_THRESHOLD = 0.5

F32 = np.float32


# ----------------------------------------------------------------------------------------------- helpers


def _edge(sd: np.ndarray, width: float) -> np.ndarray:
    """Soft inside-indicator of a signed distance (negative inside), `width` mm wide: an anti-aliased mask."""
    return np.clip(F32(0.5) - sd * F32(1.0 / width), 0.0, 1.0)


def _box_blur(a: np.ndarray, radius: int) -> np.ndarray:
    """Box filter of half-width `radius` along both axes (cumulative sums, edge-replicated)."""
    if radius < 1:
        return a
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        p = np.pad(a, pad, mode="edge").astype(np.float64)
        c = np.cumsum(p, axis=axis)
        n = a.shape[axis]
        hi = np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        a = ((hi - lo) / (2 * radius + 1)).astype(np.float32)
    return a


def _blur(a: np.ndarray, factor: int, radius: int) -> np.ndarray:
    """Wide, cheap low-pass: block-mean by `factor`, two box passes, bilinear back up."""
    h, w = a.shape
    hh, ww = h // factor * factor, w // factor * factor
    small = a[:hh, :ww].reshape(hh // factor, factor, ww // factor, factor).mean(axis=(1, 3), dtype=np.float32)
    small = _box_blur(_box_blur(small, radius), radius)
    return resize_bilinear(small, (h, w))


@dataclass
class _Frame:
    """Maps the half-resolution image grid to the patient frame (u, v) in mm, with its inverse for bboxes."""

    rows: int
    cols: int
    spacing: float  # mm per grid pixel
    x_mid: float  # image position (mm from the left edge) of the patient's midline at the apex
    y_apex: float  # image position (mm from the top) of v = 0
    cos: float
    sin: float

    def coords(self, rs: slice, cs: slice) -> tuple[np.ndarray, np.ndarray]:
        ys = (np.arange(rs.start, rs.stop, dtype=np.float32) + 0.5) * self.spacing - self.y_apex
        xs = (np.arange(cs.start, cs.stop, dtype=np.float32) + 0.5) * self.spacing - self.x_mid
        c, s = F32(self.cos), F32(self.sin)
        u = xs[None, :] * c + ys[:, None] * s
        v = ys[:, None] * c - xs[None, :] * s
        return u, v

    def to_image(self, u, v):
        """Patient (u, v) mm -> image (x, y) mm from the top-left corner."""
        x = self.x_mid + self.cos * np.asarray(u) - self.sin * np.asarray(v)
        y = self.y_apex + self.sin * np.asarray(u) + self.cos * np.asarray(v)
        return x, y

    def bbox(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice] | None:
        """Grid slices covering the patient-frame rectangle, or None when it lies outside the image."""
        x, y = self.to_image(np.array([u0, u1, u0, u1]), np.array([v0, v0, v1, v1]))
        c0 = max(int(math.floor(x.min() / self.spacing)) - 1, 0)
        c1 = min(int(math.ceil(x.max() / self.spacing)) + 2, self.cols)
        r0 = max(int(math.floor(y.min() / self.spacing)) - 1, 0)
        r1 = min(int(math.ceil(y.max() / self.spacing)) + 2, self.rows)
        if c1 <= c0 or r1 <= r0:
            return None
        return slice(r0, r1), slice(c0, c1)


def _ellipse_sd(u, v, cu, cv, a, b, phi=0.0):
    """Approximate signed distance (mm) to an ellipse with semi-axes a, b rotated by phi (first-order)."""
    c, s = math.cos(phi), math.sin(phi)
    du, dv = u - F32(cu), v - F32(cv)
    x = du * F32(c) + dv * F32(s)
    y = dv * F32(c) - du * F32(s)
    f = (x / F32(a)) ** 2 + (y / F32(b)) ** 2 - 1
    g = 2 * np.sqrt((x / F32(a * a)) ** 2 + (y / F32(b * b)) ** 2) + F32(1e-6)
    return f / g


def _tube(d: np.ndarray, half: float, cortex: float = 0.6) -> np.ndarray:
    """Projected thickness profile (0..1) of a bone tube at distance d from its axis: dense cortical rims."""
    t = np.sqrt(np.clip(1 - (d / F32(half)) ** 2, 0, 1))
    inner = np.sqrt(np.clip(1 - (d / F32(half * 0.72)) ** 2, 0, 1))
    return t - F32(cortex) * inner


# ----------------------------------------------------------------------------------------------- anatomy


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth union of two signed distances (polynomial smooth minimum, fillet radius ~k mm)."""
    h = np.clip(F32(0.5) + F32(0.5 / k) * (b - a), 0, 1)
    return b + (a - b) * h - F32(k) * h * (1 - h)


@dataclass
class _Anatomy:
    """The sampled patient: sizes in mm, everything a radiograph needs and the truth about the heart."""

    wt: float  # half internal thoracic width
    dia_r: float  # v of the right dome peak
    dia_l: float  # v of the left dome peak
    dome_k: float  # dome curvature (mm drop per unit (u/wt)^2)
    body_depth: float
    female: bool

    def dia(self, u):
        """v of the diaphragm under u (right dome higher: smaller v); costophrenic angles laterally."""
        u = np.asarray(u, dtype=np.float32)
        right = self.dia_r + self.dome_k * ((u + F32(0.42 * self.wt)) / F32(self.wt)) ** 2
        left = self.dia_l + self.dome_k * ((u - F32(0.42 * self.wt)) / F32(self.wt)) ** 2
        return np.where(u < 0, right, left)

    @property
    def v_widest(self) -> float:
        """Below this level the rib cage keeps its full width (above the costophrenic angles)."""
        return float(min(self.dia(-self.wt), self.dia(self.wt))) - 40.0

    def cage(self, v):
        """Half-width of the thoracic cavity (inner rib margins) at level v: rounded apex, constant below."""
        t = np.clip((np.asarray(v, np.float32) + F32(45.0)) / F32(self.v_widest + 45.0), 0, 1)
        return F32(self.wt) * np.sqrt(1 - (1 - t) ** 2) ** F32(0.6)


def _heart_outline(sh: dict, n: int = 720):
    """Boundary points (u, v) of the two heart ellipses (ventricles + right atrium)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False, dtype=np.float64)
    us, vs = [], []
    for cu, cv, a, b, phi in sh["ellipses"]:
        c, s = math.cos(phi), math.sin(phi)
        x, y = a * np.cos(t), b * np.sin(t)
        us.append(cu + x * c - y * s)
        vs.append(cv + x * s + y * c)
    return np.concatenate(us), np.concatenate(vs)


def _heart_extent(an: _Anatomy, sh: dict) -> tuple[float, float]:
    """Min and max u of the heart silhouette visible above the diaphragm (where lung borders it)."""
    u, v = _heart_outline(sh)
    visible = v < np.asarray(an.dia(u), np.float64) - 1.0
    return float(u[visible].min()), float(u[visible].max())


def _place_heart(an: _Anatomy, ctr: float, rng: np.random.Generator) -> dict:
    """Heart shape for the requested CTR: ventricles tilted toward the left, right atrium; scaled and shifted
    until the measured visible width equals ctr x internal thoracic width (a few fixed-point steps)."""
    target = ctr * 2 * an.wt
    right_frac = rng.uniform(0.31, 0.38)  # share of the heart right of the midline
    phi = math.radians(rng.uniform(30, 42))  # long axis: base upper right -> apex lower left
    aspect = rng.uniform(0.64, 0.74)
    ra = rng.uniform(0.21, 0.26)
    lift = rng.uniform(0.22, 0.30)

    def build(scale: float, shift: float) -> dict:
        a = 0.58 * scale
        cu1, cu2, rr = shift + 0.14 * scale, shift - 0.2 * scale, ra * scale
        return {"ellipses": [(cu1, float(an.dia(cu1)) - lift * scale, a, a * aspect, phi),
                             (cu2, float(an.dia(cu2)) - 1.1 * rr, rr * 1.0, rr * 1.6, 0.0)]}

    scale, shift = target, 0.0
    for _ in range(8):
        lo, hi = _heart_extent(an, build(scale, shift))
        k = target / (hi - lo)
        scale *= k
        shift += -right_frac * target - (shift + (lo - shift) * k)
    sh = build(scale, shift)
    sh["u_right"], sh["u_left"] = _heart_extent(an, sh)
    return sh


# ----------------------------------------------------------------------------------------------- radiograph


def make_chest_radiograph(
    rng: np.random.Generator,
    ctr: float,
    *,
    rows: int | None = None,
    cols: int | None = None,
    pixel_spacing: float | None = None,
    female: bool | None = None,
    return_masks: bool = False,
) -> tuple[np.ndarray, dict]:
    """A synthetic PA chest radiograph with the given cardiothoracic ratio.

    Returns ``(pixels, params)``: pixels uint16 (rows, cols), 12 bits used, *MONOCHROME2 sense* (dense =
    high; invert for MONOCHROME1), and params with the measured ``ctr``, ``label`` (ctr > 0.5), the heart and
    thoracic widths in mm, their borders in image columns, and the sampled size/positioning.
    Everything random comes from `rng`, so the same generator state gives the same pixels.
    With ``return_masks`` params also holds half-resolution arrays "heart_mask" (visible silhouette),
    "lung_mask", and the patient-frame coordinates "grid_u"/"grid_v" (mm) of that grid.
    """
    if cols is None:
        cols = int(rng.integers(512, 601)) * 2  # 1024..1200
    if rows is None:
        rows = min(int(round(cols * rng.uniform(1.0, 1.2) / 2)) * 2, 1280)  # portrait, as a 35 x 43 cm plate
    if pixel_spacing is None:
        # a 35-42 cm wide field: anatomy of adult size at this matrix (see the package docstring)
        pixel_spacing = round(float(rng.uniform(350.0, 420.0) / cols), 4)
    gr, gc = rows // 2, cols // 2
    gsp = pixel_spacing * rows / gr

    female = bool(rng.random() < 0.5) if female is None else bool(female)
    wt = rng.uniform(115, 137) if female else rng.uniform(125, 148)
    inspiration = rng.uniform(0.9, 1.08)
    dia_r = rng.uniform(200, 230) * inspiration
    an = _Anatomy(
        wt=wt,
        dia_r=dia_r,
        dia_l=dia_r + rng.uniform(8, 25),
        dome_k=rng.uniform(90, 135),
        body_depth=rng.uniform(180, 240) if female else rng.uniform(200, 260),
        female=female,
    )
    heart = _place_heart(an, ctr, rng)

    # positioning: midline shift, apex height, slight rotation
    field_w, field_h = gc * gsp, gr * gsp
    theta = math.radians(rng.uniform(-3.5, 3.5))
    frame = _Frame(
        rows=gr, cols=gc, spacing=gsp,
        x_mid=field_w / 2 + rng.uniform(-12, 12),
        y_apex=rng.uniform(0.06, 0.13) * field_h + 40,
        cos=math.cos(theta), sin=math.sin(theta),
    )
    u, v = frame.coords(slice(0, gr), slice(0, gc))
    au = np.abs(u)

    # --- soft tissue: neck, sloping shoulders, chest wall, abdomen (projected thickness of elliptic sections)
    neck = rng.uniform(46, 56) * (0.93 if female else 1.0)
    sh_top = -rng.uniform(65, 85)
    sh_slope = rng.uniform(0.28, 0.42)
    vk = np.array([-400, -40, 20, 80, 200, 600], np.float32)
    ak = np.array([wt + 75, wt + 75, wt + 60, wt + 30, wt + 24, wt + 34], np.float32)
    half_w = np.interp(v, vk, ak).astype(np.float32)
    v_shoulder = F32(sh_top) + F32(sh_slope) * np.clip(au - F32(neck), 0, None) + F32(0.004) * np.clip(
        au - F32(wt + 20), 0, None) ** 2
    sd_torso = np.maximum(au - half_w, v_shoulder - v)
    sd_neck = np.maximum(au - F32(neck), v - F32(sh_top + 20))
    sd_body = _smin(sd_torso, sd_neck, 14.0)
    body_mask = _edge(sd_body, 1.5)
    depth = np.interp(v, [-400, sh_top, 40, 200, 600],
                      [110, 120, 0.9 * an.body_depth, an.body_depth, 1.1 * an.body_depth]).astype(np.float32)
    r2 = np.clip((u / half_w) ** 2, 0, 1)
    torso_t = np.sqrt(1 - r2) * depth * np.sqrt(np.clip((v - v_shoulder) / F32(45), 0, 1))
    neck_t = F32(2 * 55) * np.sqrt(np.clip(1 - (u / F32(neck)) ** 2, 0, 1))
    d = np.maximum(torso_t, neck_t) * body_mask
    # arms at the edges of the field (soft tissue with the humeral shaft)
    for side in (-1, 1):
        arm_u = side * (wt + rng.uniform(95, 115))
        bb = frame.bbox(arm_u - 50, arm_u + 50, -60, 800)
        if bb:
            uu, vv = frame.coords(*bb)
            ax = uu - F32(arm_u) - F32(side * 0.08) * (vv + 40)
            arm = np.sqrt(np.clip(1 - (ax / F32(45)) ** 2, 0, 1)) * (vv > -40)
            d[bb] = np.maximum(d[bb], F32(85) * arm) + F32(20) * np.where(vv > -10, _tube(np.abs(ax), 13, 0.5), 0)

    # --- lungs: cavity above the diaphragm, inside the cage, minus mediastinum; posterior recesses below domes
    cage = an.cage(v)
    dia = an.dia(u)
    apex_v = F32(-24.0) + F32(380.0) * ((au - F32(0.33 * wt)) / F32(wt)) ** 2  # rounded apical caps
    sd_cav = np.maximum(np.maximum(au - cage, v - dia), apex_v - v)
    cavity = _edge(sd_cav, 1.5)
    below = np.clip(v - dia, 0, None)
    recess = F32(0.3) * np.exp(-below / F32(20.0)) * (v > dia) * _edge(np.maximum(au - cage, apex_v - v), 3.0)
    recess *= np.clip((au - F32(25)) / F32(50), 0, 1)  # the posterior recesses lie lateral to the spine
    # mediastinum: central band (trachea, great vessels, spine), aortic knob, pulmonary trunk, heart
    knob_v = rng.uniform(50, 70)
    knob_r = rng.uniform(12, 17)
    knob_u = rng.uniform(20, 26)
    m_right = np.interp(v, [-60, 40, 120, 400], [-24, -30, -22, -14]).astype(np.float32)
    m_left = np.interp(v, [-60, 40, 120, 400], [22, 26, 22, 14]).astype(np.float32)
    sd_band = np.maximum(m_right - u, u - m_left)
    sd_knob = np.sqrt((u - F32(knob_u)) ** 2 + (v - F32(knob_v)) ** 2) - F32(knob_r)
    pa_v = knob_v + knob_r + rng.uniform(18, 28)
    sd_pa = _ellipse_sd(u, v, rng.uniform(10, 18), pa_v, 15, 12, 0.5)
    sd_heart = np.minimum(*(_ellipse_sd(u, v, *e) for e in heart["ellipses"]))
    heart_m = _edge(sd_heart, 1.2)
    sd_med = _smin(_smin(_smin(sd_band, sd_knob, 16.0), sd_pa, 14.0), sd_heart, 24.0)
    med = _edge(sd_med, 1.3)
    lung_depth = F32(rng.uniform(150, 180)) * (
        F32(0.6) + F32(0.4) * np.clip((cage - au) / F32(0.35 * wt), 0, 1)
    ) * np.sqrt(np.clip((v - apex_v) / F32(70.0), 0.12, 1))
    lung_here = cavity * (1 - med * F32(0.92)) + recess
    lung_field = cavity * (1 - med)
    # parenchymal texture: faint multi-scale mottling inside the lungs
    tex = resize_bilinear(rng.standard_normal((gr // 24 + 2, gc // 24 + 2)).astype(np.float32), (gr, gc)) * F32(4.0)
    tex += resize_bilinear(rng.standard_normal((gr // 6 + 2, gc // 6 + 2)).astype(np.float32), (gr, gc)) * F32(2.0)
    d -= (F32(0.78) * lung_depth + tex) * lung_here

    # gastric bubble under the left dome
    if rng.random() < 0.75:
        gu = wt * rng.uniform(0.3, 0.55)
        gv = float(an.dia(gu)) + rng.uniform(16, 26)
        ga, gb = rng.uniform(18, 32), rng.uniform(9, 15)
        bb = frame.bbox(gu - ga - 5, gu + ga + 5, gv - gb - 5, gv + gb + 5)
        if bb:
            uu, vv = frame.coords(*bb)
            g = _ellipse_sd(uu, vv, gu, gv, ga, gb)
            level = vv - F32(gv + rng.uniform(0, 0.5) * gb)  # air-fluid level
            d[bb] -= F32(30) * _edge(np.maximum(g, level), 1.5)

    # breasts
    if female:
        for side in (-1, 1):
            bu, bv = side * wt * rng.uniform(0.55, 0.7), float(an.dia(side * wt * 0.55)) - rng.uniform(-10, 20)
            a_, b_ = rng.uniform(80, 100), rng.uniform(45, 60)
            bb = frame.bbox(bu - a_, bu + a_, bv - b_, bv + b_)
            if bb:
                uu, vv = frame.coords(*bb)
                rr = ((uu - F32(bu)) / F32(a_)) ** 2 + ((vv - F32(bv)) / F32(b_)) ** 2
                top = np.clip((vv - F32(bv - b_)) / F32(b_), 0, 1)
                d[bb] += F32(rng.uniform(15, 28)) * np.sqrt(np.clip(1 - rr, 0, 1)) * top

    # --- hila and pulmonary vessels (visible where lung surrounds them)
    vessels = np.zeros_like(d)
    for side in (-1, 1):
        hu = side * rng.uniform(42, 55) + (6 if side > 0 else 0)
        hv = rng.uniform(110, 130) - (12 if side > 0 else 0)
        bb = frame.bbox(hu - 30, hu + 30, hv - 40, hv + 40)
        if bb:
            uu, vv = frame.coords(*bb)
            vessels[bb] += F32(22) * np.sqrt(
                np.clip(1 - ((uu - F32(hu)) / 17) ** 2 - ((vv - F32(hv)) / 32) ** 2, 0, 1))
        _vessel_tree(vessels, frame, rng, hu, hv, side)
    d += vessels * np.clip(lung_field + heart_m * F32(0.2), 0, 1)

    # --- trachea and main bronchi (air)
    car_v = knob_v + rng.uniform(30, 45)
    tr = np.zeros_like(d)
    _segment(tr, frame, (-1.0, -400.0), (-3.0, car_v), 8.0, 1.0, 0.3)
    _segment(tr, frame, (-3.0, car_v), (-3.0 - 24, car_v + 22), 6.5, 1.0, 0.3)
    _segment(tr, frame, (-3.0, car_v), (-3.0 + 36, car_v + 30), 5.5, 1.0, 0.3)
    d -= F32(16) * np.minimum(tr, 1) * (1 - lung_field)

    # --- bones: spine, ribs, scapulae, clavicles, humeral heads
    _spine(d, frame, rng)
    _ribs(d, frame, an, rng)
    _scapulae(d, frame, an, rng)
    _clavicles(d, frame, an, rng)
    for side in (-1, 1):
        cu, cv = side * (wt + rng.uniform(62, 78)), rng.uniform(-40, -20)
        rr = rng.uniform(22, 27)
        bb = frame.bbox(cu - rr, cu + rr, cv - rr, cv + rr)
        if bb:
            uu, vv = frame.coords(*bb)
            dd = np.sqrt((uu - F32(cu)) ** 2 + (vv - F32(cv)) ** 2)
            d[bb] += F32(40) * _tube(dd, rr, 0.45)

    # --- processing as a console does: log signal, dynamic-range compression, unsharp, tone curve
    d *= body_mask
    mu = F32(0.02)
    low = _blur(d, 8, 5)
    alpha = F32(rng.uniform(0.45, 0.6))
    knee = F32(np.percentile(low[::5, ::5][body_mask[::5, ::5] > 0.5], 40))
    # global compression plus extra compression of the dense side (mediastinum, abdomen), as DRC does
    e = d - alpha * low * body_mask - F32(rng.uniform(0.35, 0.5)) * np.clip(low - knee, 0, None)
    e += F32(rng.uniform(0.5, 0.9)) * np.clip(e - _blur(e, 2, 2), -8, 8)  # edge enhancement, no halos
    inside = body_mask[::5, ::5] > 0.5
    lo, hi = np.percentile(e[::5, ::5][inside], [0.3, 99.8])
    t = np.clip((e - F32(lo)) / F32(hi - lo), 0, 1.1)
    t = t ** F32(rng.uniform(0.8, 1.15)) * body_mask  # direct exposure outside the body is the darkest
    ref = float(d[::5, ::5][inside].mean())
    noise_sd = np.clip(F32(rng.uniform(0.006, 0.014)) * np.exp(F32(0.5) * mu * (d - F32(ref))), 0, 0.05)
    base = rng.uniform(40, 250)
    span = rng.uniform(3000, MAX_STORED - base - 50)

    t_full = resize_bilinear(t, (rows, cols))
    n_full = resize_bilinear(noise_sd, (rows, cols))
    noise = rng.standard_normal((rows, cols), dtype=np.float32)
    img = F32(base) + F32(span) * (t_full + noise * n_full)
    _marker(img, rng, pixel_spacing)
    pixels = np.clip(img, 0, MAX_STORED).astype(np.uint16)

    thoracic = 2 * wt
    width = heart["u_left"] - heart["u_right"]
    measured = width / thoracic
    level = an.v_widest + 5
    hx, _ = frame.to_image(np.array([heart["u_right"], heart["u_left"]]), np.array([level - 40, level - 40]))
    tx, _ = frame.to_image(np.array([-wt, wt]), np.array([level, level]))
    params = {
        "ctr": round(float(measured), 5),
        "label": int(measured > CTR_THRESHOLD),
        "heart_width_mm": round(float(width), 2),
        "thoracic_width_mm": round(float(thoracic), 2),
        "heart_border_cols": [round(float(c) / pixel_spacing - 0.5, 1) for c in hx],
        "thorax_border_cols": [round(float(c) / pixel_spacing - 0.5, 1) for c in tx],
        "rows": rows,
        "cols": cols,
        "pixel_spacing": pixel_spacing,
        "female": female,
        "rotation_deg": round(math.degrees(theta), 3),
    }
    if return_masks:
        params["heart_mask"] = heart_m * (v < dia)
        params["lung_mask"] = lung_field
        params["grid_u"] = u
        params["grid_v"] = v
    return pixels, params


def _segment(out, frame, p0, p1, radius, amp, profile_pow=0.5):
    """Adds a capsule (segment of given radius, mm) with a tube-like profile to `out`."""
    (u0, v0), (u1, v1) = p0, p1
    bb = frame.bbox(min(u0, u1) - radius, max(u0, u1) + radius, min(v0, v1) - radius, max(v0, v1) + radius)
    if not bb:
        return
    uu, vv = frame.coords(*bb)
    du, dv = u1 - u0, v1 - v0
    ll = du * du + dv * dv + 1e-9
    t = np.clip(((uu - F32(u0)) * F32(du) + (vv - F32(v0)) * F32(dv)) / F32(ll), 0, 1)
    dd2 = (uu - F32(u0) - t * F32(du)) ** 2 + (vv - F32(v0) - t * F32(dv)) ** 2
    out[bb] = np.maximum(out[bb], F32(amp) * np.clip(1 - dd2 / F32(radius * radius), 0, 1) ** F32(profile_pow))


def _vessel_tree(out, frame, rng, hu, hv, side):
    """Pulmonary vessels: branching segments fanning out of the hilum, thinning toward the periphery."""
    stack = []
    angles = np.array([-1.5, -1.05, -0.6, -0.15, 0.3, 0.75, 1.15, 1.45]) + rng.uniform(-0.12, 0.12, 8)
    for ang in angles:
        stack.append((hu, hv, float(ang), rng.uniform(30, 45), 3.8, 0))
    while stack:
        u0, v0, ang, length, rad, level = stack.pop()
        u1 = u0 + side * math.cos(ang) * length
        v1 = v0 + math.sin(ang) * length
        _segment(out, frame, (u0, v0), (u1, v1), rad, 3.0 * rad)
        if level < 4:
            for turn in (-1, 1):
                stack.append((u1, v1, ang + turn * rng.uniform(0.15, 0.45), length * rng.uniform(0.62, 0.8),
                              rad * 0.72, level + 1))


def _spine(d, frame, rng):
    """Cervical and thoracic vertebrae on the midline: bodies with end plates, pedicles, spinous processes."""
    pitch = rng.uniform(22, 27)
    start = rng.uniform(-90, -70)
    bb = frame.bbox(-30, 30, -400, 700)
    if not bb:
        return
    uu, vv = frame.coords(*bb)
    pitch_v = F32(pitch) * (1 + np.clip(vv, 0, None) / F32(900))
    phase = np.mod((vv - F32(start)) / pitch_v, 1.0)
    half = np.interp(vv, [-100, 300], [15, 23]).astype(np.float32)
    in_body = _edge(np.abs(phase - F32(0.45)) * pitch_v - F32(0.4) * pitch_v, 1.5)
    body = np.clip(1 - (uu / half) ** 2, 0, 1) ** F32(0.5) * in_body
    plates = np.exp(-((np.abs(phase - F32(0.45)) - F32(0.38)) * pitch_v / F32(1.2)) ** 2) * (np.abs(uu) < half)
    ped = np.zeros_like(uu)
    for s in (-1, 1):
        dd = ((uu - s * half * F32(0.7)) / F32(4.5)) ** 2 + ((phase - F32(0.3)) * pitch_v / F32(6.0)) ** 2
        ped += np.clip(1 - dd, 0, 1) ** F32(0.5) - F32(0.7) * np.clip(1 - dd * 2, 0, 1) ** F32(0.5)
    spin = np.clip(1 - (uu / F32(3.5)) ** 2 - ((phase - F32(0.7)) * pitch_v / F32(7)) ** 2, 0, 1)
    d[bb] += F32(6) * body + F32(2) * plates + F32(4) * ped + F32(3) * spin


def _ribs(d, frame, an: _Anatomy, rng):
    """Posterior rib arcs (spine -> lateral wall), the lateral turn, and fainter anterior ribs sloping down
    to the costal cartilages (not visible)."""
    spacing = np.linspace(15, 26, 12) * rng.uniform(0.94, 1.06, 12) * (an.dia_r / 215.0)
    levels = np.cumsum(spacing) - spacing[0] - rng.uniform(14, 24)
    for k, v_mid in enumerate(levels):
        for side in (-1, 1):
            # posterior: v = vk + a (r^2 - 0.7 r), r = |u| / wk: up and out from the spine, then down laterally
            vk = v_mid + rng.uniform(-2.5, 2.5)
            a = (70 + 40 * math.exp(-k / 3.0)) * rng.uniform(0.9, 1.1)
            v_end = vk + 0.3 * a
            wk = float(an.cage(v_end)) + 3  # the arc reaches the lateral wall at its lower end
            half_p = (4.0 + 0.15 * k) * rng.uniform(0.9, 1.12)
            amp = 17 * rng.uniform(0.85, 1.15)
            bb = frame.bbox(side * 8, side * (wk + 10), vk - 0.13 * a - 12, v_end + 14)
            if bb:
                uu, vv = frame.coords(*bb)
                r = np.clip(np.abs(uu) / F32(wk), 0, 1.05)
                curve = F32(vk) + F32(a) * (r * r - F32(0.7) * r)
                slope = F32(a / wk) * (2 * r - F32(0.7))
                dd = np.abs(vv - curve) / (F32(half_p) * np.sqrt(1 + slope * slope))
                fade = np.clip((np.abs(uu) - F32(10)) / F32(6), 0, 1) * np.clip((F32(1.0) - r) / F32(0.05), 0, 1)
                d[bb] += F32(amp) * fade * (uu * side > 0) * _tube(dd, 1.0, 0.5)
            # lateral turn: along the wall, from the end of the posterior arc down to the anterior rib
            lat_len = 10 + 1.0 * k
            _wall(d, frame, an, side, v_end - 6, v_end + lat_len, half_p + 1, 8.0)
            # anterior: from the lateral wall, medially and downward, fading out at the cartilage
            v_lat = v_end + lat_len
            wa = float(an.cage(v_lat)) + 5
            drop = 50 + 3 * k
            bb = frame.bbox(side * 0.3 * wa, side * (wa + 6), v_lat - 12, v_lat + drop + 14)
            if bb:
                uu, vv = frame.coords(*bb)
                r = np.abs(uu) / F32(wa)
                curve = F32(v_lat) + F32(drop) * np.clip(1 - r, 0, 1) ** F32(1.2)
                half = F32(5.5) * math.sqrt(1 + (1.2 * drop / wa) ** 2)
                fade = np.clip((r - F32(0.38)) / F32(0.15), 0, 1) * np.clip((F32(1.0) - r) / F32(0.04), 0, 1)
                d[bb] += F32(10) * fade * (uu * side > 0) * _tube(np.abs(vv - curve) / F32(half), 1.0, 0.35)


def _wall(d, frame, an, side, v0, v1, half, amp):
    """A bone band following the lateral thoracic wall (just outside the cage) between levels v0 and v1."""
    w0 = float(an.cage(v0))
    bb = frame.bbox(side * (w0 - 10), side * (an.wt + 20), v0 - half, v1 + half)
    if not bb:
        return
    uu, vv = frame.coords(*bb)
    wall = an.cage(vv) + F32(half)
    along = np.clip(np.minimum(vv - F32(v0), F32(v1) - vv) / F32(6), 0, 1)
    d[bb] += F32(amp) * along * (uu * side > 0) * _tube(np.abs(np.abs(uu) - wall) / F32(half), 1.0, 0.4)


def _scapulae(d, frame, an: _Anatomy, rng):
    """Scapular blades over the upper lateral lung fields: a thin plate with a sharp medial border."""
    for side in (-1, 1):
        top, bottom = rng.uniform(-25, -5), rng.uniform(120, 160)
        m0, m1 = an.wt * rng.uniform(0.5, 0.62), an.wt * rng.uniform(0.78, 0.9)
        bb = frame.bbox(side * m0 - 10, side * (an.wt + 60), top - 10, bottom + 10)
        if not bb:
            continue
        uu, vv = frame.coords(*bb)
        s = np.clip((vv - F32(top)) / F32(bottom - top), 0, 1)
        border = F32(m0) + F32(m1 - m0) * s ** F32(1.5)
        au = np.abs(uu)
        low_edge = F32(bottom) - F32(0.012) * (au - border) ** 2 - (au - border) * F32(0.6)
        sd = np.maximum(border - au, np.maximum(F32(top) - vv, vv - low_edge))
        plate = _edge(sd, 2.0) * (uu * side > 0)
        rim = np.exp(-(sd / F32(2.0)) ** 2) * (uu * side > 0)
        d[bb] += F32(5) * plate + F32(5) * rim


def _clavicles(d, frame, an: _Anatomy, rng):
    """S-shaped clavicles from the sternal notch up and out to the acromion."""
    v_med = rng.uniform(5, 25)
    rise = rng.uniform(15, 35)
    for side in (-1, 1):
        u0, u1 = 14.0, an.wt + 55
        bb = frame.bbox(side * u0, side * u1, v_med - rise - 15, v_med + 15)
        if not bb:
            continue
        uu, vv = frame.coords(*bb)
        r = np.clip((np.abs(uu) - F32(u0)) / F32(u1 - u0), 0, 1)
        curve = F32(v_med) - F32(rise) * r ** F32(1.3) + F32(5) * np.sin(F32(2 * math.pi) * r)
        half = F32(7.5) - F32(2.5) * r
        fade = np.clip(np.minimum(r, 1 - r) / F32(0.03), 0, 1) * (uu * side > 0)
        d[bb] += F32(30) * fade * _tube(np.abs(vv - curve) / half, 1.0, 0.45)


def _marker(img, rng, spacing):
    """A lead side marker 'L' on the patient's left (image right, top corner), as technologists place it."""
    if rng.random() < 0.3:
        return
    h = int(14 / spacing)
    w = int(9 / spacing)
    s = max(int(2.2 / spacing), 2)
    r0 = int(img.shape[0] * rng.uniform(0.03, 0.08))
    c0 = img.shape[1] - int(img.shape[1] * rng.uniform(0.06, 0.12)) - w
    img[r0:r0 + h, c0:c0 + s] = MAX_STORED
    img[r0 + h - s:r0 + h, c0:c0 + w] = MAX_STORED


# ----------------------------------------------------------------------------------------------- CT


@dataclass
class CTGeometry:
    """Axial chest CT geometry: `slices` images, square pixels, patient head-first supine (LPS frame).

    Slice i lies at z = -i * slice_spacing (cranial first); the anatomy spans apices to upper abdomen whatever
    the slice count.
    """

    slices: int
    rows: int = 512
    cols: int = 512
    pixel_spacing: float = 0.7
    slice_spacing: float = 1.5


class ChestCTPhantom:
    """A contrast-enhanced chest CT in Hounsfield units, one axial slice at a time (vectorised per slice).

    From the apices (t = 0) to the upper abdomen (t = 1): skin, subcutaneous fat, chest-wall muscle, lungs
    (gravity-dependent density, branching vessels), trachea and main bronchi, oesophagus, heart (myocardium,
    contrast-filled chambers, pericardial fat), ascending aorta, arch, descending aorta, pulmonary arteries,
    SVC, vertebrae (cortex, cancellous bone, discs, canal, posterior elements), ribs, sternum, scapulae,
    liver, spleen and stomach under the domes, and the table.
    """

    def __init__(self, geometry: CTGeometry, seed: int = 0):
        self.g = geometry
        r = self.rng = np.random.default_rng([seed, 7919])
        nr, nc = geometry.rows, geometry.cols
        ps = geometry.pixel_spacing
        cx = (np.arange(nc, dtype=np.float32) - (nc - 1) / 2) * F32(ps)
        cy = (np.arange(nr, dtype=np.float32) - (nr - 1) / 2) * F32(ps)
        self.x = np.broadcast_to(cx[None, :], (nr, nc)).copy()  # mm to the patient's left (image right)
        self.y = np.broadcast_to(cy[:, None], (nr, nc)).copy()  # mm posterior (image down)
        self.body_a, self.body_b = r.uniform(150, 168), r.uniform(100, 115)
        self.fat = r.uniform(8, 18)
        self.vert_pitch = r.uniform(24, 28)
        self.rib_phase = r.uniform(0, 1)
        # lung texture: a fixed low-frequency field (varies slowly with z by shifting)
        self.tex = resize_bilinear(r.standard_normal((24, 24)).astype(np.float32), (nr, nc)) * F32(18)
        self.segs = np.concatenate([self._vessel_tree(r), self._peripheral_vessels(r)])

    # -- geometry helpers ------------------------------------------------------------------------------

    def _win(self, cx, cy, rx, ry):
        """Row/column slices of the frame around (cx, cy) +- (rx, ry) mm, or None outside."""
        ps = self.g.pixel_spacing
        nr, nc = self.g.rows, self.g.cols
        c0 = max(int((cx - rx) / ps + (nc - 1) / 2) - 1, 0)
        c1 = min(int((cx + rx) / ps + (nc - 1) / 2) + 2, nc)
        r0 = max(int((cy - ry) / ps + (nr - 1) / 2) - 1, 0)
        r1 = min(int((cy + ry) / ps + (nr - 1) / 2) + 2, nr)
        if c1 <= c0 or r1 <= r0:
            return None
        return slice(r0, r1), slice(c0, c1)

    def _ellipse(self, hu, cx, cy, a, b, value, ang=0.0, within=None, ring=None):
        """Fills an (optionally rotated) ellipse with `value`; with `ring` (mm, value) a cortex around it."""
        ext = max(a, b)
        w = self._win(cx, cy, ext, ext)
        if w is None or a <= 0 or b <= 0:
            return
        x, y = self.x[w] - F32(cx), self.y[w] - F32(cy)
        c, s = F32(math.cos(ang)), F32(math.sin(ang))
        xr, yr = x * c + y * s, y * c - x * s
        q = (xr / F32(a)) ** 2 + (yr / F32(b)) ** 2
        m = q < 1
        if within is not None:
            m &= within[w]
        if ring is not None:
            th, rv = ring
            inner = (xr / F32(max(a - th, 0.5))) ** 2 + (yr / F32(max(b - th, 0.5))) ** 2 >= 1
            hu[w][m & inner] = rv
            m &= ~inner
        if np.ndim(value):
            hu[w][m] = value[w][m]
        else:
            hu[w][m] = value

    def _capsule(self, hu, p0, p1, rad, value, within=None):
        (x0, y0), (x1, y1) = p0, p1
        w = self._win((x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2 + rad, abs(y1 - y0) / 2 + rad)
        if w is None:
            return
        x, y = self.x[w], self.y[w]
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - F32(x0)) * F32(dx) + (y - F32(y0)) * F32(dy)) / F32(dx * dx + dy * dy + 1e-9), 0, 1)
        m = (x - F32(x0) - t * F32(dx)) ** 2 + (y - F32(y0) - t * F32(dy)) ** 2 < F32(rad * rad)
        if within is not None:
            m &= within[w]
        hu[w][m] = value

    def _vessel_tree(self, r):
        """3-D segments (x0, y0, t0, x1, y1, t1, radius) branching from the hila through the lungs."""
        segs = []
        for side in (-1, 1):
            stack = []
            for k in range(12):
                elev = -1.2 + 2.4 * k / 11 + r.uniform(-0.1, 0.1)  # up (negative t) to down
                azim = r.uniform(-1.0, 1.0)
                stack.append((side * r.uniform(38, 50), r.uniform(-5, 10), 0.47, elev, azim, 40.0, 4.5, 0))
            while stack:
                x0, y0, t0, elev, azim, length, rad, level = stack.pop()
                dx = side * math.cos(elev) * math.cos(azim) * length
                dy = math.cos(elev) * math.sin(azim) * length
                dt = math.sin(elev) * length / 300.0
                x1, y1, t1 = x0 + dx, y0 + dy, t0 + dt
                segs.append((x0, y0, t0, x1, y1, t1, rad))
                if level < 5:
                    for turn in (-1, 1):
                        stack.append((x1, y1, t1, elev + turn * r.uniform(0.1, 0.4), azim + r.uniform(-0.5, 0.5),
                                      length * r.uniform(0.6, 0.8), rad * 0.7, level + 1))
        return np.array(segs, np.float32)

    def _peripheral_vessels(self, r, n: int = 2500):
        """Short thin segments scattered through both lungs, pointing away from the hila (small vessels)."""
        ca = self.body_a - self.fat - 16
        cb = self.body_b - 0.8 * self.fat - 14
        ang = r.uniform(0, 2 * np.pi, n)
        rad = np.sqrt(r.uniform(0.05, 1, n))
        x0, y0 = ca * 0.95 * rad * np.cos(ang), cb * 0.9 * rad * np.sin(ang) + cb * 0.1
        keep = np.abs(x0) > 30
        x0, y0 = x0[keep], y0[keep]
        m = len(x0)
        t0 = r.uniform(0.04, 0.9, m)
        heading = np.arctan2(y0, x0 - np.sign(x0) * 45) + r.uniform(-0.5, 0.5, m)
        elev = r.uniform(-1.3, 1.3, m)
        length = r.uniform(8, 22, m)
        dx, dy = np.cos(elev) * np.cos(heading) * length, np.cos(elev) * np.sin(heading) * length
        dt = np.sin(elev) * length / 300.0
        radius = r.uniform(0.7, 1.4, m) * (1.3 - 0.6 * rad[keep])
        return np.stack([x0, y0, t0, x0 + dx, y0 + dy, t0 + dt, radius], axis=1).astype(np.float32)

    # -- the slice ---------------------------------------------------------------------------------------

    def slice_hu(self, i: int, noise: bool = True) -> np.ndarray:
        """HU image (float32, rows x cols) of slice i (0 = most cranial)."""
        t = (i + 0.5) / self.g.slices
        z_mm = t * 300.0
        x, y = self.x, self.y
        hu = np.full(x.shape, -1000.0, np.float32)
        # table: a carbon-fibre shell with foam below, under the patient
        ty = self.body_b + 3  # the back rests on the table
        cradle = y - F32(ty) + F32(0.0008) * x * x  # concave cradle: edges higher
        hu[(np.abs(cradle) < 2.5) & (np.abs(x) < 230)] = 200
        hu[(cradle > 2.5) & (cradle < 35) & (np.abs(x) < 226)] = -920
        # body outline: shoulders broader at the top
        a = self.body_a * (1.06 - 0.08 * min(t / 0.3, 1) + 0.04 * max(t - 0.6, 0))
        b = self.body_b * (0.9 + 0.1 * min(t / 0.4, 1))
        self._ellipse(hu, 0, 0, a, b, -95)  # subcutaneous fat
        fa, fb = a - self.fat, b - self.fat * 0.8
        self._ellipse(hu, 0, 0, fa, fb, 45)  # chest-wall / back muscles
        ca, cb = fa - 16, fb - 14  # thoracic cavity (inner rib margins)
        cav = (x / F32(ca)) ** 2 + ((y + F32(4)) / F32(cb)) ** 2 < 1
        spine_front = cb - 40
        cav &= ~((np.abs(x) < 26) & (y > spine_front))  # the spine bulges into the cavity
        hu[cav] = 40  # soft tissue unless something else is there
        med_half = 22 + 10 * min(t / 0.4, 1)
        mediastinum = ((x / F32(med_half + 14)) ** 2 + ((y + F32(cb * 0.2)) / F32(cb * 0.8)) ** 2 < 1) & cav
        hu[mediastinum] = -80  # mediastinal fat
        # lungs: grow from the apices, pushed up by the domes (right dome higher)
        grow = min(1.0, 0.4 + t * 3.0)
        lungs = np.zeros(x.shape, bool)
        for side in (-1, 1):
            lx = side * ca * 0.5
            lungs |= ((x - F32(lx)) / F32(ca * 0.6 * grow)) ** 2 + ((y - F32(cb * 0.25)) / F32(cb * grow)) ** 2 < 1
        lungs &= cav & (np.abs(x) > med_half)
        dome = np.zeros(x.shape, bool)
        for side, t0 in ((-1, 0.68), (1, 0.74)):
            if t > t0:
                k = math.sqrt((t - t0) / (1 - t0))
                dome |= ((x - F32(side * ca * 0.4)) / F32(ca * 0.75 * k + 1)) ** 2 + (
                    (y + F32(cb * 0.2)) / F32(cb * 0.9 * k + 1)) ** 2 < 1
        lungs &= ~dome
        self._abdomen(hu, t, dome & cav, ca, cb)
        # heart and great vessels (decide the mediastinum, then carve lungs)
        med = np.zeros(x.shape, bool)
        med |= mediastinum
        self._mediastinum(hu, t, med, spine_front, cb)
        lungs &= ~med
        lung_hu = F32(-870) + F32(70) * (y / F32(cb)) + np.roll(self.tex, int(z_mm / 4), axis=0)
        hu[lungs] = lung_hu[lungs]
        self._vessels(hu, t, lungs)
        self._bones(hu, t, z_mm, fa, fb, ca, cb, spine_front)
        if noise:
            hu += self.rng.standard_normal(hu.shape, dtype=np.float32) * F32(10)
        return hu

    def _abdomen(self, hu, t, below, ca, cb):
        if not below.any():
            return
        x, y = self.x, self.y
        hu[below] = 95  # portal-venous liver (and the left lobe across the midline)
        self._ellipse(hu, ca * 0.6, cb * 0.45, ca * 0.32, cb * 0.35, 115, 0.6, within=below)  # spleen
        sx, sy = (x - F32(ca * 0.45)) / F32(ca * 0.4), (y + F32(cb * 0.25)) / F32(cb * 0.45)
        stomach = below & (sx * sx + sy * sy < 1)
        hu[stomach] = np.where(y[stomach] < -cb * 0.5, -1000, 25)  # air-fluid level (supine: air anterior)

    def _mediastinum(self, hu, t, med, spine_front, cb):
        x, y = self.x, self.y
        before = hu.copy()
        # oesophagus and trachea / main bronchi
        ty = spine_front - 22
        if t < 0.42:
            self._ellipse(hu, 2, ty, 11, 10, 30)
            self._ellipse(hu, 2, ty, 9, 8, -1000)
            self._ellipse(hu, 6, spine_front - 6, 7, 5, 35)
        elif t < 0.52:
            k = (t - 0.42) / 0.1
            for side, reach in ((-1, 32), (1, 45)):
                bx = side * (6 + reach * k)
                self._ellipse(hu, bx, ty + 8 * k, 8, 7, 30)
                self._ellipse(hu, bx, ty + 8 * k, 6, 5.5, -1000)
            self._ellipse(hu, 8, spine_front - 6, 7, 5, 35)
        else:
            self._ellipse(hu, 10, spine_front - 8, 7, 5, 35)
        # great vessels above the arch, the arch, ascending and descending aorta, SVC, pulmonary arteries
        blood_a, blood_v = 320, 260
        if t < 0.22:
            for vx, vy, vr in ((3, -18, 7), (15, -12, 5), (24, -4, 6)):
                self._ellipse(hu, vx, vy, vr, vr, blood_a)
            self._ellipse(hu, -24, -16, 8, 7, blood_v)
            self._capsule(hu, (24, -26), (-16, -22), 6, blood_v)
        if 0.2 <= t < 0.27:
            self._capsule(hu, (4, -28), (24, spine_front - 10), 13, blood_a)
        if 0.25 <= t < 0.5:
            self._ellipse(hu, 6, -22, 15, 15, blood_a)  # ascending aorta
        if 0.22 <= t:
            self._ellipse(hu, 20, spine_front - 4, 12, 12, blood_a)  # descending aorta
        if 0.2 <= t < 0.5:
            self._ellipse(hu, -26, -18, 10, 9, blood_v)  # superior vena cava
        if 0.36 <= t < 0.47:
            self._ellipse(hu, 26, -30, 15, 14, blood_v)  # pulmonary trunk
            if t >= 0.4:
                self._capsule(hu, (12, -20), (-48, 2), 10, blood_v)  # right pulmonary artery
            else:
                self._capsule(hu, (26, -20), (52, 4), 9, blood_v)  # left pulmonary artery
        # heart: tilted ellipse with chambers and pericardial fat
        if 0.45 <= t < 0.86:
            k = math.sin(math.pi * (t - 0.45) / 0.41) ** 0.6
            ha, hb = 66 * k + 4, 50 * k + 4
            hx, hy, ang = 16, -26, -0.55
            self._ellipse(hu, hx, hy, ha + 4, hb + 4, -85, ang)  # pericardial fat
            self._ellipse(hu, hx, hy, ha, hb, 45, ang)  # myocardium
            c, s = math.cos(ang), math.sin(ang)

            def at(p, q):
                return hx + p * ha * c - q * hb * s, hy + p * ha * s + q * hb * c

            lx, ly = at(0.35, 0.15)
            self._ellipse(hu, lx, ly, ha * 0.38, hb * 0.42, 330, ang)  # left ventricle
            rx, ry = at(-0.25, -0.45)
            self._ellipse(hu, rx, ry, ha * 0.45, hb * 0.28, 230, ang)  # right ventricle
            if t < 0.62:
                ax, ay = at(-0.05, 0.62)
                self._ellipse(hu, ax, ay, ha * 0.35, hb * 0.3, 300, 0.0)  # left atrium
            if t > 0.55:
                rax, ray = at(-0.75, 0.25)
                self._ellipse(hu, rax, ray, ha * 0.28, hb * 0.35, 200, 0.0)  # right atrium
        med |= (hu != before) & (hu > -990)

    def _vessels(self, hu, t, lungs):
        s = self.segs
        lo, hi = np.minimum(s[:, 2], s[:, 5]), np.maximum(s[:, 2], s[:, 5])
        for j in np.nonzero((lo <= t) & (t <= hi) & (hi - lo > 1e-4))[0]:
            x0, y0, t0, x1, y1, t1, r = s[j]
            f = (t - t0) / (t1 - t0)
            slope = math.hypot(x1 - x0, y1 - y0) / max(abs(t1 - t0) * 300.0, 1e-3)
            cx, cy = x0 + f * (x1 - x0), y0 + f * (y1 - y0)
            # an oblique vessel cuts the slice as an ellipse elongated along its course
            ang = math.atan2(y1 - y0, x1 - x0)
            self._ellipse(hu, cx, cy, r * min(math.sqrt(1 + slope * slope), 5), r, 40, ang, within=lungs)

    def _bones(self, hu, t, z_mm, fa, fb, ca, cb, spine_front):
        vy = spine_front + 19
        phase = (z_mm / self.vert_pitch + 0.3) % 1.0
        if phase < 0.82:
            self._ellipse(hu, 0, vy, 20, 17, 260, ring=(2.2, 800))  # vertebral body
        else:
            self._ellipse(hu, 0, vy, 20, 17, 85)  # disc
        self._ellipse(hu, 0, vy + 29, 13, 11, 750)  # neural arch
        self._ellipse(hu, 0, vy + 28, 8, 7.5, 15)  # canal (CSF)
        self._capsule(hu, (0, vy + 36), (0, min(vy + 56, fb - 8)), 4.5, 700)  # spinous process
        for side in (-1, 1):
            self._capsule(hu, (side * 10, vy + 26), (side * 32, vy + 34), 5, 650)  # transverse process
        if 0.12 < t < 0.72:
            self._ellipse(hu, 0, -(cb + 8), 15, 7, 220, ring=(2, 650))  # sternum
        for side in (-1, 1):
            for k in range(9):
                ang = math.pi * (0.1 + 0.85 * ((k + self.rib_phase + t * 2.2) % 9) / 9)
                rx = side * (ca + 8) * math.sin(ang)
                ry = -(cb + 8) * math.cos(ang) - 4
                self._ellipse(hu, rx, ry, 7, 4.5, 240, ang=side * (math.pi / 2 - ang), ring=(1.6, 850))
            if t < 0.5:  # scapular blade behind the ribs, along the back of the chest wall
                th = math.pi / 2 + side * 0.75  # ellipse parameter (posterolateral)
                sx, sy = (fa - 7) * math.cos(th), (fb - 7) * math.sin(th)
                tangent = math.atan2((fb - 7) * math.cos(th), -(fa - 7) * math.sin(th))
                self._ellipse(hu, sx, sy, 42, 3.5, 700, ang=tangent)
