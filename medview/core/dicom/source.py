"""Where one DICOM file's bytes live: a plain file, or a member of a zip archive read in place.

A zip is never extracted next to the source: members are read straight from the archive.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from dataclasses import dataclass
from typing import BinaryIO


# what would break a line or is not text: control characters, line separators, and the lone surrogates
# that stand for file-name bytes that are not UTF-8 (os.fsdecode's surrogateescape)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the byte the OS gave
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` as one line of valid UTF-8: non-UTF-8 file-name bytes as \\xff, newlines as \\n.

    File names are whatever bytes the OS allows; a message or JSON line naming one must still be one line
    a terminal, a log and a JSON parser can take. Idempotent: the result holds nothing to escape.
    """
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


@dataclass(frozen=True, order=True)
class SourceRef:
    """A readable DICOM source: `path` on disk, and `member` when it is inside the zip at `path`."""

    path: str
    member: str | None = None

    def display(self) -> str:
        """The name shown to users and written in error messages and JSON ("archive.zip!dir/file"), `printable`."""
        return printable(self.path if self.member is None else f"{self.path}!{self.member}")

    def open(self, archive: zipfile.ZipFile | None = None) -> BinaryIO:
        """A binary, seekable file object with the file's bytes.

        `archive`: the zip at `path`, already open, so that reading many members does not reopen it per file.
        """
        if self.member is None:
            return open(self.path, "rb")
        if archive is not None:
            return io.BytesIO(archive.read(self.member))
        with zipfile.ZipFile(self.path) as opened:
            # members are small enough to hold one at a time; ZipExtFile is not reliably seekable
            return io.BytesIO(opened.read(self.member))

    def stat(self) -> tuple[int, float]:
        """(size in bytes, modification time): the key of the index cache."""
        if self.member is None:
            st = os.stat(self.path)
            return st.st_size, st.st_mtime
        with zipfile.ZipFile(self.path) as archive:
            info = archive.getinfo(self.member)
        st = os.stat(self.path)
        return info.file_size, st.st_mtime

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.display()
