"""`medview gui [PATH] [--model M] [--device D]`: the desktop app."""

from __future__ import annotations

import os

from medview.core.errors import UsageError


def check_paths(paths: list[str]) -> list[str]:
    """Exit code 2 for a path that does not exist (SPEC section 1), before any window opens."""
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise UsageError(f"{missing[0]}: no such file or folder")
    return [os.path.abspath(p) for p in paths]


def check_model(model: str | None) -> str | None:
    """Exit code 2 for a --model that does not exist (SPEC section 1), before any window opens. A model that
    exists but cannot be used is explained in the findings panel instead: the viewer works without it."""
    if model and not os.path.exists(model):
        raise UsageError(f"{model}: no such model file or folder")
    return model


def run(args) -> int:
    paths = check_paths(list(getattr(args, "paths", []) or []))
    check_model(getattr(args, "model", None))
    from medview.app import create_app

    app, window = create_app(["medview"], model=getattr(args, "model", None),
                             device=getattr(args, "device", "auto"), paths=paths)
    return int(app.exec())
