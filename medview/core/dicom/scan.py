"""Scanning folders, files, zips and DICOMDIRs for DICOM instances, headers only, with an index cache.

INTERFACE (filled in by the core work).
"""

from __future__ import annotations

from typing import Callable, Sequence

from medview.core.dicom.model import ScanResult


def scan(
    paths: Sequence[str],
    *,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ScanResult:
    """Every DICOM instance below `paths` (folders recursively, files, .zip, DICOMDIR); never raises per file."""
    raise NotImplementedError
