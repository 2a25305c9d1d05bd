"""The app retrieving a study, in a fresh offscreen process: `python -m benchmarks._pacs_child SERVER STUDY_UID`
prints one JSON line: how long the whole retrieve took, when the first image was on screen (seconds, and how many
of the study's instances had arrived by then), and when the open case showed all of it, decoded.

MEDVIEW_HOME (set by the parent) holds servers.toml naming SERVER. The study is retrieved as Enter in the PACS
panel does (`PacsController.retrieve`, opening it as soon as its first image is here). Waiting runs a local
event loop: QTest.qWait would hold the GIL and starve the network threads.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(server: str, study_uid: str) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    from medview.app import create_app
    from medview.core.net import StudyMatch

    _app, window = create_app(["medview"])
    match = StudyMatch(study_uid, "", "", "", [], "", None)
    seen: dict = {}
    loop = QEventLoop()
    t0 = time.perf_counter()

    def check() -> None:
        progress = window.pacs.retrieve_progress()
        if progress is not None and progress[2]:
            seen["total"] = progress[2]
        if "first" not in seen and window.viewer.shown_frame() is not None:
            seen["first"] = (time.perf_counter() - t0, progress[1] if progress else None,
                             progress[2] if progress else None)
        if not window.pacs.retrieving():
            seen.setdefault("done", time.perf_counter() - t0)  # all here; the open case follows
            state = window.reading_state()["viewports"][0]
            if state["frames"] == seen.get("total") and state["frames"] == state["loaded"]:
                seen.setdefault("shown", time.perf_counter() - t0)
                loop.quit()

    timer = QTimer(interval=2, timeout=check)
    timer.start()
    QTimer.singleShot(600_000, loop.quit)
    window.pacs.retrieve(server, [match], open_uid=study_uid)
    loop.exec()
    first_s, first_done, total = seen.get("first", (None, None, None))
    state = window.reading_state()["viewports"][0]
    sys.stdout.write(json.dumps({"seconds": seen.get("done"), "all_shown_s": seen.get("shown"), "first_image_s": first_s,
                                 "first_image_arrived": first_done, "instances": total,
                                 "frames_shown": state["frames"]}) + "\n")
    sys.stdout.flush()
    window.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
