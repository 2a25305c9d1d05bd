"""Loading a stack into memory: stored dtype kept, first image first, uncompressed fast path, cancel.

INTERFACE (filled in by the core work; relied on by the viewer and the benchmarks).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from medview.core.dicom.model import FileError, Stack


@dataclass
class StackVolume:
    """Stored pixels of a stack: array (N, H, W) or (N, H, W, 3); frames[i] = (instance index, frame index)."""

    stack: Stack
    array: np.ndarray
    frames: list[tuple[int, int]]
    loaded: np.ndarray  # bool per frame
    errors: list[FileError] = field(default_factory=list)


def load_stack(
    stack: Stack,
    *,
    on_frame: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    first: int = 0,
) -> StackVolume:
    """Read every frame of `stack`; `first` is read before the others and `on_frame(i)` is called per frame.

    Raises nothing for a bad file: its frames stay unloaded and the reason is in `errors`.
    """
    raise NotImplementedError
