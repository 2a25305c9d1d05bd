"""The display pipeline of SPEC section 3: ONE implementation, used by the viewer, `render` and the model.

Order (DICOM PS3.3 C.11, "Grayscale transformations"): stored values -> Modality LUT (C.11.1) -> VOI LUT
(C.11.2; LINEAR / LINEAR_EXACT / SIGMOID, C.11.2.1.2-3) -> Presentation LUT (C.11.6; INVERSE, MONOCHROME1).
INTERFACE (filled in by the pixels work; signatures are relied on by other modules).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units, and its VOI LUT Function (PS3.3 C.11.2.1.3)."""

    center: float
    width: float
    function: str = "LINEAR"  # LINEAR | LINEAR_EXACT | SIGMOID


def read_dataset(ref, *, stop_before_pixels: bool = False):
    """Read a dataset from a SourceRef (files without the Part-10 preamble included); DicomReadError if not."""
    raise NotImplementedError


def stored_frame(ds, frame: int = 0) -> np.ndarray:
    """Stored values of one frame, stored dtype kept: (rows, cols) or (rows, cols, 3) RGB for colour."""
    raise NotImplementedError


def modality_lut(arr: np.ndarray, ds) -> np.ndarray:
    """Rescale Slope/Intercept or the Modality LUT Sequence (PS3.3 C.11.1): float32 modality values."""
    raise NotImplementedError


def file_window(ds, modality_values: np.ndarray | None = None) -> Window | None:
    """The first window in the file (Window Center/Width + VOI LUT Function), or None."""
    raise NotImplementedError


def default_window(modality_values: np.ndarray) -> Window:
    """A window from the image's values when the file has none."""
    raise NotImplementedError


def apply_window(values: np.ndarray, window: Window, out: np.ndarray | None = None) -> np.ndarray:
    """VOI windowing (PS3.3 C.11.2.1.2) to uint8 0..255; vectorised, works on (H, W) or (N, H, W)."""
    raise NotImplementedError


def is_inverted(ds) -> bool:
    """MONOCHROME1 or Presentation LUT Shape INVERSE: the displayed grey scale is inverted."""
    raise NotImplementedError


def display_frame(ds, frame: int = 0, window: Window | None = None, invert: bool | None = None) -> np.ndarray:
    """A frame exactly as the viewer shows it: uint8 (H, W) for monochrome, uint8 (H, W, 3) for colour.

    window None: the file's window (or VOI LUT Sequence), else default_window. invert None: is_inverted(ds).
    """
    raise NotImplementedError


PRESETS: dict[str, list[tuple[str, Window]]] = {
    # SPEC section 6: keys 1-5 for CT
    "CT": [
        ("soft tissue", Window(40, 400)),
        ("lung", Window(-600, 1500)),
        ("bone", Window(400, 1800)),
        ("brain", Window(40, 80)),
        ("mediastinum", Window(50, 350)),
    ],
}
