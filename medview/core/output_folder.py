"""The one rule for where commands and the app may write: never into a folder studies are read from.

SPEC section 7. A folder input (or a DICOMDIR's folder) is read below itself: the output may be neither that
folder nor lie inside it. A file or zip is read from the folder that holds it: the output may not be that
folder; with `below_files` (export: reports name patients, so they stay out of the whole source tree) nor
anything inside it either. Used by `render --out-dir`, `export --out` and the app's export dialog;
`make_output_folder` creates such a folder (and demo-data's).
"""

from __future__ import annotations

import os

from medview.core.dicom.scan import is_dicomdir
from medview.core.errors import UsageError


def source_folders(paths: list[str], below_files: bool = True) -> list[tuple[str, bool]]:
    """(real folder studies are read from, whether everything below it counts too); missing paths: none."""
    folders = []
    for given in paths:
        path = os.path.realpath(os.path.expanduser(str(given)))
        if os.path.isdir(path):
            folders.append((path, True))
        elif os.path.exists(path):
            folders.append((os.path.dirname(path), below_files or is_dicomdir(path)))
    return folders


def check_output_folder(out: str, paths: list[str], option: str = "--out", below_files: bool = True) -> str:
    """The real output folder; UsageError (exit 2) when it is a source folder (or lies inside one), or a file."""
    real_out = os.path.realpath(os.path.expanduser(str(out)))
    for folder, below in source_folders(paths, below_files):
        inside = below and os.path.commonpath([real_out, folder]) == folder
        if real_out == folder or inside:
            raise UsageError(f"{option} {out}: lies inside the source folder {folder}; medview never writes there, "
                             "where it reads studies from: choose another folder")
    if os.path.exists(real_out) and not os.path.isdir(real_out):
        raise UsageError(f"{option} {out}: is a file, not a folder")
    return real_out


def make_output_folder(path: str | os.PathLike, label: str) -> None:
    """Create the folder (and its parents) if need be and check it can be written; UsageError (exit 2)
    naming it as `label` ("--out-dir X", "X: folder")."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{label} cannot be created ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"{label} is not writable")
