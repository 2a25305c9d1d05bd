"""Plain data the engine, the cache, the worker and the findings panel pass around (no torch, no Qt)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    """The model's answer for one image, as plain data (safe to send across threads)."""

    scores: dict[str, float]
    flagged: list[str]
    heatmap: np.ndarray | None  # float32 [K, h, w], each finding's map scaled to 0..1; None without one
    model: str                  # "name@version"


def short_reason(exc: BaseException) -> str:
    """The first line of an exception's message (or its class name): one readable line per failed image."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
