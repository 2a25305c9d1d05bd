"""Where medview writes: MEDVIEW_HOME when set, else the platform's user folders.

Every file medview writes (settings, index cache, review database, AI results, demo data, logs) goes below
`home()`, never into a folder studies were read from (SPEC section 7).
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "medview"


def home() -> Path:
    """The folder that holds everything medview writes; created on first use."""
    env = os.environ.get("MEDVIEW_HOME")
    if env:
        root = Path(env).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    root.mkdir(parents=True, exist_ok=True)
    return root


def home_file(name: str) -> Path:
    """A file directly below `home()` (e.g. "index.sqlite", "review.sqlite", "ai_results.sqlite")."""
    return home() / name


def home_dir(name: str) -> Path:
    """A sub-folder of `home()` (e.g. "demo", "logs"), created on first use."""
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
