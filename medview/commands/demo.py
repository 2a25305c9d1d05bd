"""`medview demo`: the app on the built-in demo studies, generated under MEDVIEW_HOME/demo on first use."""

from __future__ import annotations

import sys
from pathlib import Path

from medview.core.home import home_dir


def demo_folder() -> Path:
    """MEDVIEW_HOME/demo with the demo studies, written once (a marker file says they are complete).

    Demo studies written before they had priors (no patient has a second study, ST02) are written again, so
    that P has a prior to show."""
    from medview.core.demo import MARKER, generate_demo

    out = home_dir("demo")
    complete = (out / MARKER).is_file()
    if not complete or not any(out.glob("PAT*/ST02")):
        print(f"Writing the demo studies to {out} ({'first use only' if not complete else 'now with priors'})…",
              file=sys.stderr)
        generate_demo(out, priors=True)
    return out


def run(args) -> int:
    from medview.commands.gui import check_model

    check_model(getattr(args, "model", None))
    folder = demo_folder()
    from medview.app import create_app

    app, window = create_app(["medview"], model=getattr(args, "model", None),
                             device=getattr(args, "device", "auto"), paths=[str(folder)])
    return int(app.exec())
