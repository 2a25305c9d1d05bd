"""Packages imported whole in one thread before other threads use them.

Python makes a thread that imports a package wait while another thread runs that package's `__init__`, but
not a thread that imports one of its submodules (`from pydicom.dataset import FileDataset`): that one goes
ahead and, where the package's submodules import each other as pydicom's do, gets a half-made module
("cannot import name ... from partially initialized module"). So whoever starts threads that may use such a
package imports it whole first, in its own thread.
"""

from __future__ import annotations

import importlib
import logging
from typing import Iterable

log = logging.getLogger(__name__)

#: what the GUI thread and the worker threads alike use: imported whole before any worker starts
SHARED_PACKAGES = ("pydicom",)


def import_whole(names: Iterable[str]) -> None:
    """Import each package now, in this thread; one that fails is left to whoever needs it, which says why."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - reported where it is used
            log.debug("importing %s failed", name, exc_info=True)
