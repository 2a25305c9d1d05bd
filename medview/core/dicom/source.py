"""Where one DICOM file's bytes live: a plain file, or a member of a zip archive read in place.

A zip is never extracted next to the source: members are read straight from the archive.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from medview.core.memory import size_in_words


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


#: A zip member is read whole into memory (ZipExtFile is not reliably seekable): a larger one is refused.
MAX_MEMBER_BYTES = 1 << 30


class RefusedSource(OSError):
    """A source medview will not read; `strerror` is the whole reason in words."""


class MemberTooLarge(RefusedSource):
    """A zip member that expands past MAX_MEMBER_BYTES (a zip bomb, or no study a workstation reads)."""


def _read_member(archive: zipfile.ZipFile, member: str) -> bytes:
    """A member's bytes, refused before reading when its declared size is over the limit.

    zipfile stops inflating at the declared size (and checks the CRC), so the declared size bounds memory.
    """
    size = archive.getinfo(member).file_size
    if size > MAX_MEMBER_BYTES:
        raise MemberTooLarge(errno.EFBIG, f"zip member expands to {size_in_words(size)}, over the limit of "
                                          f"{size_in_words(MAX_MEMBER_BYTES)} (a zip bomb?)")
    return archive.read(member)


class NotRegularFile(RefusedSource):
    """A named pipe, device or socket where a file was expected: reading it could block forever or never end."""


def not_a_file(mode: int) -> str | None:
    """Why a path of this st_mode is not read ("not a file but a named pipe"); None for files and folders."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        kind = "a named pipe"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    else:
        kind = "something else"
    return f"not a file but {kind}"


def open_regular(path: str) -> BinaryIO:
    """`open(path, "rb")` for regular files only: anything else raises NotRegularFile instead of blocking.

    Opened without blocking and checked on the open descriptor, so the file cannot be swapped in between.
    """
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        reason = not_a_file(mode)
        if reason is not None:
            raise NotRegularFile(errno.EINVAL, reason)
        if nonblocking:
            os.set_blocking(fd, True)
        fp = os.fdopen(fd, "rb")
        fp.raw.name = path  # as open(path) names it (pydicom reads the name)
        return fp
    except BaseException:
        os.close(fd)
        raise


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
        Raises RefusedSource for what is not a file (a named pipe) or a member expanding past MAX_MEMBER_BYTES.
        """
        if self.member is None:
            return open_regular(self.path)
        if archive is not None:
            return io.BytesIO(_read_member(archive, self.member))
        with zipfile.ZipFile(self.path) as opened:
            return io.BytesIO(_read_member(opened, self.member))

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
