"""The series strip: one thumbnail per stack of the open case, with its count; click or Enter opens it.

Thumbnails are rendered off the GUI thread through the display pipeline (`display_frame` of the middle
image) and arrive as uint8 arrays; only the GUI thread makes pixmaps of them. Where the middle image cannot be
decoded (a 12-bit JPEG without its decoder, a broken copy) the nearest images that can are tried; a stack
none of whose tried images decodes gets an icon that says so, never a black square that reads as an image.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QSize, Qt, QThread, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem

from medview.core.dicom.model import Stack
from medview.core.viewing.counts import count_images, count_short, count_words

log = logging.getLogger(__name__)
THUMB = 76
TEXT_LINES = 3
THUMB_TRIES = 5  # images of one stack tried for its thumbnail before it is marked as not decodable


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


def thumbnail_frames(stack: Stack, tries: int = THUMB_TRIES) -> list[tuple[int, int]]:
    """(instance, frame) to try for a stack's thumbnail: the middle image first (it shows what the series is;
    for a single image it is the image), then the images of the nearest other files, alternately after and
    before it (a file that cannot be decoded fails for all its frames)."""
    frames = stack.frames
    if not frames:
        return []
    middle = len(frames) // 2
    order = [frames[middle]]
    seen = {frames[middle][0]}
    for d in range(1, len(frames)):
        if len(order) >= tries:
            break
        for j in (middle + d, middle - d):
            if 0 <= j < len(frames) and frames[j][0] not in seen and len(order) < tries:
                seen.add(frames[j][0])
                order.append(frames[j])
    return order


def placeholder_icon(text: str = "", size: int = THUMB) -> QPixmap:
    """A thumbnail's place: dark grey while it is rendered; with `text` (e.g. "cannot be shown") when none of the
    images tried could be decoded, so that it never passes for a black image."""
    pix = QPixmap(size, size)
    pix.fill(QColor("#1a1a1a"))
    if text:
        painter = QPainter(pix)
        painter.setPen(QColor("#ff8a80"))
        painter.drawRect(0, 0, size - 1, size - 1)
        painter.drawText(pix.rect(), int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), text)
        painter.end()
    return pix


class ThumbnailWorker(QThread):
    ready = Signal(int, object)  # stack index, uint8 array
    failed = Signal(int, str)  # stack index, the reason in words (no image tried could be decoded)

    def __init__(self, stacks: list[Stack], parent=None):
        super().__init__(parent)
        self.stacks = stacks
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def run(self) -> None:
        from medview.core.dicom.frame_reader import display_frame_of

        for k, stack in enumerate(self.stacks):
            if self._stop or not stack.instances:
                return
            reason = "no image"
            for inst_index, frame in thumbnail_frames(stack):
                if self._stop:
                    return
                try:
                    # a compressed frame decodes in the decoder pool: a crashing file costs a thumbnail
                    self.ready.emit(k, thumbnail(display_frame_of(stack.instances[inst_index].ref, frame)))
                    break
                except Exception as exc:  # noqa: BLE001 - a missing thumbnail is not an error worth a dialog
                    log.debug("thumbnail of %s: %s", stack.description, exc)
                    reason = str(exc)
            else:
                self.failed.emit(k, reason)


def stack_label(stack: Stack) -> str:
    number = f"Se {stack.number}" if stack.number is not None else "Se ?"
    desc = (stack.description or "").strip()
    if len(desc) > 18:
        desc = desc[:17] + "…"
    return f"{number} · {stack.modality}\n{desc}\n{count_short(count_images([stack]))}"


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
        self.thumbnails: dict[int, np.ndarray] = {}  # stack index -> the uint8 image its icon shows
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
        self.thumbnails = {}
        self.stacks = list(stacks)
        pending = placeholder_icon()
        for stack in self.stacks:
            item = QListWidgetItem(stack_label(stack))
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            item.setToolTip(f"{stack.description}\n{count_words(count_images([stack]))}")
            item.setIcon(pending)
            self.addItem(item)
        if self.stacks:
            self._worker = ThumbnailWorker(self.stacks, self)
            self._worker.ready.connect(self._thumb)
            self._worker.failed.connect(self._no_thumb)
            self._worker.start(QThread.Priority.LowPriority)

    def _current(self, k: int) -> bool:
        """A thumbnail signal for stack k of the stacks shown now (not a late one of the case before)."""
        sender = self.sender()
        return (sender is None or sender is self._worker) and 0 <= k < self.count()

    def _thumb(self, k: int, arr: np.ndarray) -> None:
        if self._current(k):
            self.thumbnails[k] = arr
            self.item(k).setIcon(QPixmap.fromImage(to_qimage(arr)))

    def _no_thumb(self, k: int, reason: str) -> None:
        if self._current(k):
            item = self.item(k)
            item.setIcon(placeholder_icon("cannot be shown"))
            item.setToolTip(f"{item.toolTip()}\nNo thumbnail: {reason}")

    def mark(self, k: int) -> None:
        self.blockSignals(True)
        self.setCurrentRow(k)
        self.blockSignals(False)

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker.wait(2000)
            self._worker = None
