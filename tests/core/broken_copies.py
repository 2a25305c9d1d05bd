"""Real files made broken: copies of pydicom's test files with bytes overwritten or cut off, as seen in the field.

`tests/factories.py` builds files to order; these start from real files, so the damage lands where it would.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.factories import copy_testdata, truncate

#: what `index` and `render` both say of `garbage_after_preamble`
NO_DATA_ELEMENTS = "broken DICOM file (no data elements after the file meta; cut short?)"


def garbage_after_preamble(folder: str | os.PathLike, name: str = "broken.dcm") -> Path:
    """CT_small.dcm with bytes 140-200 (the file meta, from its group length on) overwritten with 0xFF.

    pydicom still reads it without an error: a file meta holding only a group length, and a data set in
    which nothing is found (the garbage parses as one element running to the end of the file).
    """
    path = copy_testdata("CT_small.dcm", Path(folder) / name)
    data = bytearray(path.read_bytes())
    data[140:200] = b"\xff" * 60
    path.write_bytes(bytes(data))
    return path


def cut_short(folder: str | os.PathLike, keep: int = 3000, name: str = "cut.dcm") -> Path:
    """The first `keep` bytes of CT_small.dcm: with 3000 it ends inside an element header at byte 2994."""
    return truncate(copy_testdata("CT_small.dcm", Path(folder) / name), keep)
