"""How a loaded stack becomes the grey levels on screen, through the ONE display pipeline of SPEC section 3.

Integer stacks of up to 16 bits are never converted to float: each frame goes to pyqtgraph as its stored
bytes viewed as unsigned (no copy), with `pixels.display_lut` (modality LUT -> VOI -> inversion, indexed by
the stored value viewed as unsigned) as the ImageItem's lookup table. So the viewer shows exactly what
`display_frame` gives, a window change costs one cached table instead of a pass over the pixels
(ARCHITECTURE: "change only the levels when the window moves"), and an open series needs no more memory
than its stored bytes. Other data (32-bit, float) takes `pixels.display_stored` per frame, the same pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from medview.core.dicom import pixels
from medview.core.dicom.pixels import VoiLut, Window


@dataclass
class ItemImage:
    """What the ImageItem gets: `data` C-contiguous, and a uint8 `lut` (or None: `data` is grey levels)."""

    data: np.ndarray
    lut: np.ndarray | None
    levels: tuple[float, float] | None


class StackDisplay:
    """Display mapping of one stack of stored frames (array (N, H, W) or (N, H, W, 3), stored dtype)."""

    def __init__(self, array: np.ndarray, frames: Sequence[tuple[int, int]], headers: Sequence[Any]):
        self.array = array
        self.frames = list(frames)
        self.headers = list(headers)  # per instance, header-only datasets (None until read)
        self.colour = array.ndim == 4
        self.lut_path = not self.colour and array.dtype.kind in "iu" and array.dtype.itemsize <= 2
        self._unsigned = np.dtype(f"u{array.dtype.itemsize}") if self.lut_path else None
        self._palettes: dict[int, tuple[int, np.ndarray] | None] = {}
        self._transforms: dict[tuple[int, int], tuple[Any, pixels.ModalityTransform]] = {}

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(rows, columns) of one image."""
        return int(self.array.shape[1]), int(self.array.shape[2])

    # --- headers ----------------------------------------------------------------------------------------
    def header(self, i: int) -> Any:
        """Header of the instance holding frame i (the first known header while the stack still loads)."""
        inst = self.frames[i][0] if 0 <= i < len(self.frames) else 0
        ds = self.headers[inst] if inst < len(self.headers) else None
        if ds is None:
            ds = next((h for h in self.headers if h is not None), None)
        return ds

    def set_header(self, instance: int, ds: Any) -> None:
        if 0 <= instance < len(self.headers):
            self.headers[instance] = ds

    def transform(self, i: int) -> pixels.ModalityTransform:
        """Frame i's modality transform, kept per frame with the header it came from: a window drag asks for it
        on every move (the table and the value under the cursor), and reading it from the header each time
        cost about a third of a millisecond an update."""
        ds = self.header(i)
        if ds is None or self.colour:
            return pixels.ModalityTransform()
        inst, frame = self.frames[i] if i < len(self.frames) else (0, 0)
        known = self._transforms.get((inst, frame))
        if known is None or known[0] is not ds:  # a header read since (the first known one stood in for it)
            known = self._transforms[inst, frame] = (ds, pixels.modality_transform(ds, frame))
        return known[1]

    def palette(self, i: int) -> tuple[int, np.ndarray] | None:
        """The instance's supplemental colour palette (stored values shown in colour), if it has one."""
        ds = self.header(i)
        if ds is None or self.colour:
            return None
        inst = self.frames[i][0] if 0 <= i < len(self.frames) else 0
        if inst not in self._palettes:
            self._palettes[inst] = pixels.supplemental_palette(ds)
        return self._palettes[inst]

    def file_inverted(self, i: int) -> bool:
        ds = self.header(i)
        return bool(ds is not None and not self.colour and pixels.is_inverted(ds))

    # --- values -----------------------------------------------------------------------------------------
    def modality_values(self, i: int) -> np.ndarray:
        """Frame i in modality units (HU for CT), float32 (H, W): ROI statistics, the default window."""
        if self.colour:
            return self.array[i].astype(np.float32).mean(axis=-1)
        return self.transform(i).apply(self.array[i])

    def value_at(self, i: int, row: int, col: int) -> float | tuple[int, ...] | None:
        """Modality value of one pixel (RGB tuple for colour); None outside the image."""
        h, w = self.array.shape[1:3]
        if not (0 <= row < h and 0 <= col < w):
            return None
        if self.colour:
            return tuple(int(v) for v in self.array[i, row, col])
        return float(self.transform(i).apply(self.array[i, row : row + 1, col : col + 1]).ravel()[0])

    def initial_voi(self, i: int = 0) -> Window | VoiLut | None:
        """What `display_frame` applies with no window asked for: the file's window, its VOI LUT, or one
        from the frame's values."""
        ds = self.header(i)
        if self.colour or ds is None:
            return None
        return pixels.display_voi(ds, self.frames[i][1], self.array[i])

    def window_for_drag(self, voi: Window | VoiLut | None, i: int = 0) -> Window:
        """A window to start a mouse drag from (a VOI LUT has none: the values' own window)."""
        if isinstance(voi, Window):
            return voi
        return pixels.default_window(self.modality_values(i))

    def value_span(self, i: int = 0) -> float:
        """Range of modality values of frame i: scales the mouse window drag."""
        if self.colour:
            return 255.0
        values = self.modality_values(i)
        return float(values.max() - values.min()) if values.size else 1.0

    # --- what the ImageItem gets ------------------------------------------------------------------------
    def item_image(self, i: int, voi: Window | VoiLut | None, invert: bool) -> ItemImage:
        """Frame i for pyqtgraph: the stored data viewed as unsigned + the pipeline's lookup table."""
        frame = self.array[i]
        if self.colour:
            rgb = pixels.colour_to_uint8(frame, int(self.header(i).get("BitsStored", 8) or 8)) \
                if self.header(i) is not None else frame.astype(np.uint8)
            if invert:
                rgb = np.subtract(np.uint8(255), rgb)
            return ItemImage(np.ascontiguousarray(rgb), None, (0, 255))
        if voi is None:
            voi = self.initial_voi(i) or Window(0.5, 1.0)
        transform = self.transform(i)
        palette = self.palette(i)
        if not self.lut_path:
            grey = pixels.display_stored(frame, transform, voi, invert)
            if palette is not None:
                grey = pixels.with_supplemental(grey, frame, palette)
            return ItemImage(grey, None, (0, 255))
        lut = pixels.display_lut(self.array.dtype, transform, voi, invert)
        if palette is not None:
            lut = pixels.supplemental_lut(lut, self.array.dtype, palette)
        data = frame.view(self._unsigned)
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        return ItemImage(data, lut, (0, len(lut)))

    def display_values(self, i: int, voi: Window | VoiLut | None, invert: bool) -> np.ndarray:
        """The uint8 grey levels shown for frame i (tests compare them with `display_frame`)."""
        item = self.item_image(i, voi, invert)
        return item.data if item.lut is None else item.lut[item.data]
