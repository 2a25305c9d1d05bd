"""The state of one image view as plain data: image index, window, invert, zoom, rotation, flip, overlays.

The widget draws this state; key handlers change it through these methods, so the rules (clamping, cycling,
what Esc resets) are tested without Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from medview.core.dicom.pixels import PRESETS, VoiLut, Window

ANNOTATION_MODES = ("full", "minimal", "off")
TOOLS = ("window", "pan", "zoom", "distance", "ellipse")
ZOOM_STEP = 1.25
ZOOM_MIN, ZOOM_MAX = 0.05, 64.0


@dataclass
class ViewState:
    """What the user changed in the view of one stack; `zoom` is relative to "fit" (1.0 = fit)."""

    count: int = 0
    index: int = 0
    window: Window | VoiLut | None = None  # a VOI LUT Sequence where the file has one and no window
    initial_window: Window | VoiLut | None = None
    invert: bool = False  # the user's toggle, applied on top of the file's MONOCHROME1 / INVERSE
    zoom: float = 1.0
    rotation: int = 0  # quarter turns clockwise, 0..3
    flip_h: bool = False
    annotations: int = 0  # index into ANNOTATION_MODES

    # --- stack navigation -------------------------------------------------------------------------------
    def go(self, index: int) -> bool:
        """Move to `index` clamped to the stack; True when the index changed."""
        new = min(max(0, int(index)), max(0, self.count - 1))
        changed = new != self.index
        self.index = new
        return changed

    def step(self, delta: int) -> bool:
        return self.go(self.index + delta)

    def cine_next(self) -> None:
        """Cine loops back to the first image after the last."""
        if self.count:
            self.index = (self.index + 1) % self.count

    # --- geometry -----------------------------------------------------------------------------------------
    def zoom_by(self, factor: float) -> None:
        self.zoom = min(ZOOM_MAX, max(ZOOM_MIN, self.zoom * factor))

    def rotate_cw(self) -> None:
        self.rotation = (self.rotation + 1) % 4

    def flip_horizontal(self) -> None:
        self.flip_h = not self.flip_h

    def cycle_annotations(self) -> str:
        self.annotations = (self.annotations + 1) % len(ANNOTATION_MODES)
        return ANNOTATION_MODES[self.annotations]

    @property
    def annotation_mode(self) -> str:
        return ANNOTATION_MODES[self.annotations]

    def reset(self) -> None:
        """Esc: zoom, pan, window, rotation, flip and invert back to how the image opened; index kept."""
        self.window = self.initial_window
        self.invert = False
        self.zoom = 1.0
        self.rotation = 0
        self.flip_h = False


def preset_window(modality: str, number: int) -> tuple[str, Window] | None:
    """Preset `number` (1-based, keys 1-9) for the modality, or None where there is none."""
    presets = PRESETS.get((modality or "").upper(), [])
    if 1 <= number <= len(presets):
        name, window = presets[number - 1]
        return name, window
    return None


def drag_window(window: Window, dx: float, dy: float, value_span: float) -> Window:
    """Window after a mouse drag of (dx, dy) screen pixels: right widens, down raises the centre.

    The step scales with the stack's value span so a CT (4000 HU) and an 8-bit image feel alike:
    a drag across about 500 pixels covers the whole span.
    """
    per_pixel = max(value_span, 1.0) / 500.0
    width = max(1.0, window.width + dx * per_pixel)
    center = window.center + dy * per_pixel
    return replace(window, center=center, width=width)
