"""Room for viewports side by side, without Qt: the worklist folds away for a layout too narrow for its
columns, comes back with one column, and the reader's own choice in between stands."""

from __future__ import annotations

from medview.core.reading import WorklistRoom
from medview.core.reading.room import ROOM_PER_VIEWPORT

NARROW = 2 * ROOM_PER_VIEWPORT - 1  # too narrow for two columns
WIDE = 2 * ROOM_PER_VIEWPORT


def test_two_columns_in_a_narrow_area_fold_the_worklist_and_one_column_brings_it_back():
    room = WorklistRoom()
    assert room.layout_drawn(1, True, NARROW) is None  # one column, as it was
    assert room.layout_drawn(2, True, NARROW) is True
    assert room.layout_drawn(2, False, NARROW + 400) is None  # the same columns drawn again: left alone
    assert room.layout_drawn(1, False, NARROW + 400) is False


def test_enough_room_or_a_folded_worklist_leaves_it_as_it_is():
    room = WorklistRoom()
    assert room.layout_drawn(2, True, WIDE) is None
    assert room.layout_drawn(1, True, WIDE) is None
    assert room.layout_drawn(3, False, NARROW) is None  # folded by the reader already: not "folded for room"
    assert room.layout_drawn(1, False, NARROW) is None  # so it stays folded


def test_the_readers_choice_after_a_fold_stands():
    room = WorklistRoom()
    assert room.layout_drawn(2, True, NARROW) is True
    room.reader_chose()  # Ctrl+L: shown, then folded again by the reader
    assert room.layout_drawn(1, False, NARROW) is None
