"""Room for viewports side by side, without Qt: when the worklist folds away for them and when it comes back.
The reading controller (medview.qt.reading) asks on every layout it draws and folds or shows the window's
worklist as told."""

from __future__ import annotations

ROOM_PER_VIEWPORT = 320  # pixels of width below which side-by-side viewports fold the worklist away


class WorklistRoom:
    """A layout of viewports side by side narrower than ROOM_PER_VIEWPORT a column folds the worklist away
    (Ctrl+L brings it back, and it stays); back to one column, a worklist folded for them comes back, unless the
    reader has shown or folded it since."""

    def __init__(self) -> None:
        self.columns = 1  # the layout's columns when room was last made
        self.folded = False  # the worklist was folded to give side-by-side viewports room

    def reader_chose(self) -> None:
        """The reader showed or folded the worklist (Ctrl+L, Ctrl+F): their choice stands."""
        self.folded = False

    def layout_drawn(self, columns: int, worklist_shown: bool, width: int) -> bool | None:
        """A layout of `columns` drawn in `width` pixels: True folds the worklist away, False brings it back,
        None leaves it as it is (also for the same columns as last time: the reader may have moved it)."""
        if columns == self.columns:
            return None
        self.columns = columns
        if columns > 1 and worklist_shown and width < columns * ROOM_PER_VIEWPORT:
            self.folded = True
            return True
        if columns == 1 and self.folded:
            self.folded = False
            return False
        return None
