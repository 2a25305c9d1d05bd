"""Loading a stack in a QThread: first image first, then the rest in place, with progress and cancel.

The loader fills one preallocated array; `volume_ready` hands that array to the GUI after the first frame,
so the viewer draws it while the rest is read. Headers (rescale, window, photometric) are read per instance
in this thread too. Only plain data crosses to the GUI thread. Compressed frames are decoded in the decoder
pool's processes outward from the shown image; `focus(i)` (the viewer moved to image i) re-orders them.
"""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QThread, Signal

from medview.core.dicom.loader import FrameFocus
from medview.core.dicom.model import Stack

log = logging.getLogger(__name__)


class LoadWorker(QThread):
    volume_ready = Signal(object)  # StackVolume being filled (array and loaded mask shared)
    header_read = Signal(int, object)  # instance index, header-only dataset
    frame_loaded = Signal(int)
    progress = Signal(int, int)  # frames done, frames in the stack
    done = Signal(object)  # the finished StackVolume (cancelled set when cut short)
    failed = Signal(str)

    def __init__(self, stack: Stack, first: int = 0, parent=None):
        super().__init__(parent)
        self.stack = stack
        self.first = first
        self._cancel = threading.Event()
        self._focus = FrameFocus(first)
        self._headers_done: set[int] = set()
        self._frames: list[tuple[int, int]] = stack.frames
        self._count = 0

    def cancel(self) -> None:
        self._cancel.set()

    def focus(self, index: int) -> None:
        """The viewer shows image `index` now: compressed images still to decode go outward from it."""
        self._focus.set(index)

    def _header(self, frame: int) -> None:
        from medview.core.dicom import decoded, pixels

        index = self._frames[frame][0] if frame < len(self._frames) else 0
        if index in self._headers_done:
            return
        self._headers_done.add(index)
        try:
            ds = pixels.read_dataset(self.stack.instances[index].ref, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - the frame itself loaded; its header falls back to another's
            log.debug("header of %s: %s", self.stack.instances[index].ref.display(), exc)
            return
        decoded.publish_header(self.stack.instances[index].ref, ds)  # the AI reads it instead of parsing it again
        self.header_read.emit(index, ds)

    def _on_volume(self, volume) -> None:
        self._header(self.first)
        self.volume_ready.emit(volume)

    def _on_frame(self, k: int) -> None:
        self._count += 1
        self._header(k)
        self.frame_loaded.emit(k)
        n = len(self._frames)
        if self._count == n or self._count % max(1, n // 50) == 0:
            self.progress.emit(self._count, n)

    def run(self) -> None:
        from medview.core.dicom.loader import load_stack

        try:
            volume = load_stack(self.stack, on_frame=self._on_frame, cancel=self._cancel, first=self.first,
                                on_volume=self._on_volume, focus=self._focus)
        except Exception as exc:  # noqa: BLE001 - reported in words, logged in full
            log.exception("loading failed")
            self.failed.emit(f"The series could not be loaded ({type(exc).__name__}: {exc})")
            return
        if self._count == 0 and not volume.cancelled:
            # nothing loaded: headers still help the failed-files panel and the corner text
            self._header(self.first)
        self.done.emit(volume)
