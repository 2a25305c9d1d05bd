"""The one place that knows where medview's read-only resources (icons, styles, the bundled model) live.

From a source checkout or an editable install they are in `<repo>/resources`; in an app frozen by PyInstaller
they are unpacked below `sys._MEIPASS/resources` (the spec collects the folder under that name). Everything
that ships with medview is found through `resource_path`, so the packaging only has to copy one folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

BUNDLED_MODEL = "models/cardiomegaly"


def resources_root() -> Path:
    """The `resources` folder: below `sys._MEIPASS` when frozen, else next to the `medview` package."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(relative: str) -> Path:
    """The path of a shipped resource, e.g. `resource_path("models/cardiomegaly")`; need not exist."""
    return resources_root() / relative


def bundled_model_path() -> Path:
    """The folder of the bundled cardiomegaly model (the default of `--model`)."""
    return resource_path(BUNDLED_MODEL)
