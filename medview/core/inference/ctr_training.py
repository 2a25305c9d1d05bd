"""Training data and training loop of the cardiothoracic-ratio segmentation model (scripts/train_ctr_model.py).

Three phantom families with exact masks, each image shown to the network as the display pipeline would show
it (a window from the image's own values, as a file's default window is set), plus images the model must
find nothing in. During training every batch is randomised far beyond what either generator draws
(SynthSeg's lesson): geometry (scale per axis, rotation, shift, mirror), resolution, blur, tone curve,
gamma, bias field, noise, inverted photometry and collimation borders, so the network learns shapes, not
one generator's grey values.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medview.core.inference.engine import to_batch
from medview.core.inference.training import seed_everything

FAMILIES = ("demo", "outline", "shapes")
SIZE = 128


def window_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """A stored image as its default display: a window spanning its 1st..99.5th percentile, as the demo files'
    Window Center/Width are written, to uint8."""
    lo, hi = np.percentile(pixels[::4, ::4], [1.0, 99.5])
    t = (pixels.astype(np.float32) - lo) / max(float(hi - lo), 1.0)
    return (np.clip(t, 0, 1) * 255 + 0.5).astype(np.uint8)


def phantom(family: str, seed: int, index: int, *, ctr: float | None = None, cols: int | None = None
            ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """One frontal chest of a family: (uint16 pixels in MONOCHROME2 sense, masks float32 [2, rows, cols]
    (heart, lungs), true CTR, pixel spacing). Pixels depend only on (family, seed, index)."""
    rng = np.random.default_rng([seed, index, {"outline": 77, "shapes": 79}.get(family, 78)])
    if ctr is None:
        ctr = float(rng.uniform(0.47, 0.53) if rng.random() < 0.3 else rng.uniform(0.36, 0.68))
    if family in ("outline", "shapes"):
        from medview.core.demo import outline_phantoms, shape_phantoms

        draw = outline_phantoms.frontal_chest if family == "outline" else shape_phantoms.frontal_chest
        pixels, p = draw(rng, ctr, cols=cols)
        masks = np.stack([p["heart"], p["lungs"]]).astype(np.float32)
        return pixels, masks, p["ctr"], p["pixel_spacing"]
    from medview.core.demo.phantoms import make_chest_radiograph
    from medview.core.viewing.heatmap import resize_bilinear

    cols = cols or int(rng.integers(96, 600)) * 2
    rows = int(round(cols * rng.uniform(1.0, 1.2) / 2)) * 2
    pixels, p = make_chest_radiograph(rng, ctr, rows=rows, cols=cols, pixel_spacing=round(
        float(rng.uniform(350.0, 420.0) / cols), 5), return_masks=True)
    masks = np.stack([resize_bilinear(p["heart_mask"].astype(np.float32), pixels.shape),
                      resize_bilinear(p["lung_mask"].astype(np.float32), pixels.shape)])
    return pixels, masks, p["ctr"], p["pixel_spacing"]


def _example(args) -> tuple[np.ndarray, np.ndarray]:
    """(display image resized to SIZE as float32 [S, S], masks [2, S, S]) of one training example."""
    kind, seed, index = args
    if kind in FAMILIES:
        rng = np.random.default_rng([seed, index, 5])
        pixels, masks, _, _ = phantom(kind, seed, index, cols=int(rng.integers(96, 180)) * 2)
    else:
        from medview.core.demo import outline_phantoms

        rng = np.random.default_rng([seed, index, 6])
        pixels = outline_phantoms.out_of_scope(rng, kind, cols=int(rng.integers(128, 360)))
        masks = np.zeros((2, *pixels.shape), np.float32)
    image = to_batch([window_to_uint8(pixels)], (SIZE, SIZE))[0, 0].numpy()
    target = F.interpolate(torch.from_numpy(masks)[None], size=(SIZE, SIZE), mode="bilinear",
                           align_corners=False, antialias=True)[0].numpy()
    return image, target


def build_set(plan: list[tuple[str, int, int]], workers: int = 2, progress: Callable[[str], None] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 1, S, S] and masks [N, 2, S, S] for (kind, seed, index) triples, made in worker processes."""
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        out = list(pool.map(_example, plan, chunksize=16))
    if progress:
        progress(f"  {len(plan)} examples in {time.perf_counter() - started:.0f} s")
    x = torch.from_numpy(np.stack([o[0] for o in out]))[:, None].clamp_(0, 1)
    y = torch.from_numpy(np.stack([o[1] for o in out])).clamp_(0, 1)  # resampling may overshoot by rounding
    return x, y


def plan_for(families: tuple[str, ...], per_family: int, negatives: int, seed: int) -> list[tuple[str, int, int]]:
    from medview.core.demo.outline_phantoms import OUT_OF_SCOPE_KINDS

    plan = [(family, seed, i) for family in families for i in range(per_family)]
    plan += [(OUT_OF_SCOPE_KINDS[i % len(OUT_OF_SCOPE_KINDS)], seed, i) for i in range(negatives)]
    return plan


# ------------------------------------------------------------------------------------------ augmentation


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random geometry (the same for image and masks) and random appearance (image only)."""
    n = x.shape[0]

    def u(lo, hi, *shape):
        return torch.rand(shape or (n,), generator=gen) * (hi - lo) + lo

    # geometry: per-axis scale, rotation, shift, mirror; zoomed-out images get borders of the image's edge
    angle = u(-0.14, 0.14)
    sx, sy = u(0.85, 1.2), u(0.85, 1.2)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx * flip, -sin * sy
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx * flip, cos * sy
    theta[:, 0, 2], theta[:, 1, 2] = u(-0.1, 0.1), u(-0.1, 0.1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    y = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # resolution: down by 1-3x and back up
    factor = float(u(1.0, 3.0, 1))
    if factor > 1.2:
        small = max(16, int(SIZE / factor))
        x = F.interpolate(F.interpolate(x, size=(small, small), mode="area"), size=(SIZE, SIZE), mode="bilinear",
                          align_corners=False)
    # blur
    sigma = float(u(0.0, 1.6, 1))
    if sigma > 0.3:
        r = int(math.ceil(2 * sigma))
        k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
        k = k / k.sum()
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    # tone: random monotone curve (piecewise linear through 5 sorted random knots), gamma, contrast
    knots = torch.sort(torch.rand(n, 5, generator=gen), dim=1).values
    knots = torch.cat([torch.zeros(n, 1), knots, torch.ones(n, 1)], dim=1)
    mix = u(0.0, 0.7).view(n, 1, 1, 1)
    pos = x.clamp(0, 1) * 6
    i0 = pos.floor().clamp(0, 5).long()
    frac = pos - i0
    k0 = torch.gather(knots, 1, i0.view(n, -1)).view_as(x)
    k1 = torch.gather(knots, 1, (i0 + 1).view(n, -1)).view_as(x)
    x = (1 - mix) * x + mix * (k0 + (k1 - k0) * frac)
    x = x.clamp(0, 1) ** torch.exp(u(-0.7, 0.7)).view(n, 1, 1, 1)
    # bias field
    field = F.interpolate(torch.randn(n, 1, 4, 4, generator=gen) * 0.12, size=(SIZE, SIZE), mode="bicubic",
                          align_corners=False)
    x = x * (1 + field) + u(-0.15, 0.15).view(n, 1, 1, 1)
    x = (x - 0.5) * u(0.6, 1.4).view(n, 1, 1, 1) + 0.5
    # noise
    x = x + torch.randn(x.shape, generator=gen) * u(0.0, 0.08).view(n, 1, 1, 1)
    # inverted photometry (a MONOCHROME1 label missing or wrong)
    invert = (torch.rand(n, generator=gen) < 0.15).view(n, 1, 1, 1)
    x = torch.where(invert, 1 - x, x)
    # collimation: a black or white border on one side, sometimes
    for i in range(n):
        if float(torch.rand(1, generator=gen)) < 0.15:
            side = int(torch.randint(0, 4, (1,), generator=gen))
            width = int(torch.randint(2, 12, (1,), generator=gen))
            value = float(torch.rand(1, generator=gen) < 0.5)
            region = [slice(None)] * 2
            region[side % 2] = slice(0, width) if side < 2 else slice(SIZE - width, SIZE)
            x[i, 0][tuple(region)] = value
    return x.clamp(0, 1), y


# ------------------------------------------------------------------------------------------ training


def dice_loss(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    inter = (p * y).sum(dim=(2, 3))
    total = p.sum(dim=(2, 3)) + y.sum(dim=(2, 3))
    return (1 - (2 * inter + 1) / (total + 1)).mean()


def train_segmentation(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int = 32,
                       lr: float = 4e-3, seed: int = 0, progress: Callable[[str], None] | None = None) -> nn.Module:
    """Fit `model` (probabilities [N, 2, S, S]) with BCE + Dice on augmented batches; AdamW, one-cycle."""
    gen = seed_everything(seed)
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = augment(x[idx], y[idx], gen)
            p = model(xb)
            loss = F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), yb) + dice_loss(p, yb)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(idx)
        if progress:
            progress(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f} "
                     f"({time.perf_counter() - started:.0f} s)")
    return model.eval()
