"""The series strip: one thumbnail per stack of the open case, with its count; click or Enter opens it.

Thumbnails are rendered off the GUI thread through the display pipeline (`display_frame` of the middle
image) and arrive as uint8 arrays; only the GUI thread makes pixmaps of them.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QSize, Qt, QThread, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem

from medview.core.dicom.model import Stack

log = logging.getLogger(__name__)
THUMB = 76
TEXT_LINES = 3


def thumbnail(values: np.ndarray, size: int = THUMB) -> np.ndarray:
    """Shrink a uint8 display image to fit `size` (nearest neighbour, aspect kept): C-contiguous uint8."""
    h, w = values.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / size)))
    return np.ascontiguousarray(values[::step, ::step])


def to_qimage(arr: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8)
    else:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888)
    return img.copy()


class ThumbnailWorker(QThread):
    ready = Signal(int, object)  # stack index, uint8 array

    def __init__(self, stacks: list[Stack], parent=None):
        super().__init__(parent)
        self.stacks = stacks
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def run(self) -> None:
        from medview.core.dicom import pixels

        for k, stack in enumerate(self.stacks):
            if self._stop or not stack.instances:
                return
            # the middle frame shows what the series is; for a single image it is the image
            frames = stack.frames
            inst_index, frame = frames[len(frames) // 2]
            try:
                ds = pixels.read_dataset(stack.instances[inst_index].ref)
                self.ready.emit(k, thumbnail(pixels.display_frame(ds, frame)))
            except Exception as exc:  # noqa: BLE001 - a missing thumbnail is not an error worth a dialog
                log.debug("thumbnail of %s: %s", stack.description, exc)


def stack_label(stack: Stack) -> str:
    number = f"Se {stack.number}" if stack.number is not None else "Se ?"
    desc = (stack.description or "").strip()
    if len(desc) > 18:
        desc = desc[:17] + "…"
    return f"{number} · {stack.modality}\n{desc}\n{stack.frame_count} im"


class SeriesStrip(QListWidget):
    stack_chosen = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("series_strip")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setUniformItemSizes(True)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self._fit_height()
        self.itemClicked.connect(lambda item: self.stack_chosen.emit(self.row(item)))
        self.itemActivated.connect(lambda item: self.stack_chosen.emit(self.row(item)))
        self.stacks: list[Stack] = []
        self._worker: ThumbnailWorker | None = None

    def _fit_height(self) -> None:
        """Icon, three text lines and the horizontal scroll bar: the strip never scrolls vertically."""
        line = self.fontMetrics().lineSpacing()
        cell = QSize(THUMB + 48, THUMB + TEXT_LINES * line + 12)
        self.setGridSize(cell)
        self.setFixedHeight(cell.height() + 2 * self.frameWidth() + self.horizontalScrollBar().sizeHint().height())

    def changeEvent(self, event):  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() in (event.Type.FontChange, event.Type.StyleChange):
            self._fit_height()

    def set_stacks(self, stacks: list[Stack]) -> None:
        self.stop()
        self.clear()
        self.stacks = list(stacks)
        for stack in self.stacks:
            item = QListWidgetItem(stack_label(stack))
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            item.setToolTip(f"{stack.description}\n{stack.frame_count} images")
            blank = QPixmap(THUMB, THUMB)
            blank.fill(Qt.GlobalColor.black)
            item.setIcon(blank)
            self.addItem(item)
        if self.stacks:
            self._worker = ThumbnailWorker(self.stacks, self)
            self._worker.ready.connect(self._thumb)
            self._worker.start(QThread.Priority.LowPriority)

    def _thumb(self, k: int, arr: np.ndarray) -> None:
        if 0 <= k < self.count():
            self.item(k).setIcon(QPixmap.fromImage(to_qimage(arr)))

    def mark(self, k: int) -> None:
        self.blockSignals(True)
        self.setCurrentRow(k)
        self.blockSignals(False)

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker.wait(2000)
            self._worker = None
