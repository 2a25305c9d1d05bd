"""Opening in the window: the opened paths' scan, the worklist's studies, the open case and its stacks.

`CaseController` is the one place that opens a case; the review, AI, incoming and PACS controllers are handed
it by `create_app` and ask it to open or find a case, or follow `case_opened`, `stack_shown` and
`studies_loaded`. The window only builds the widgets it drives (worklist, series strip, viewports, progress
bar, failed files) and says what the reader chose (`paths_chosen`, a row, a thumbnail, a key).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from medview.core.dicom.model import FileError, ScanResult, Study
from medview.core.reading.cases import CaseList, FirstUnreviewed, KeptStudies
from medview.core.whole_imports import SHARED_PACKAGES, import_whole
from medview.qt.workers.scan import FolderScan

if TYPE_CHECKING:
    from medview.qt.main_window import MainWindow
    from medview.qt.reading import ReadingController
    from medview.qt.viewer.viewports import LoadedStack


class CaseController(QObject):
    """Scans what the reader opens, lists it in the worklist and opens its cases and stacks in the window's
    viewports; the other controllers follow its signals instead of each watching the widgets."""

    case_opened = Signal(object)  # Study: the AI worker moves it to the front of its queue
    stack_shown = Signal(object)  # Stack
    studies_loaded = Signal(object)  # list[Study], after a scan

    def __init__(self, window: MainWindow, reading_controller: ReadingController):
        """`reading_controller`: draws the reading session after a case or stack is opened in it."""
        super().__init__(window)
        self.window = window
        self.reading_controller = reading_controller
        self.case_list = CaseList()
        self.stacks: list[LoadedStack] = []  # the open case's stacks, in series order
        self._first_unreviewed: FirstUnreviewed | None = None
        self.scan = FolderScan(self)  # the opened paths' scan, one at a time
        self.scan.progress.connect(lambda done, total: window.show_progress(f"Reading {done}/{total} files",
                                                                            done, total))
        self.scan.done.connect(self._scan_done)
        self.scan.failed.connect(self._scan_failed)
        self.scan.finished.connect(self._update_busy)
        loads = window.loads
        loads.progress.connect(lambda done, total: window.show_progress(f"Loading {done}/{total} images",
                                                                        done, total))
        loads.stopped.connect(self._update_busy)
        window.paths_chosen.connect(self.open_paths)
        window.cancel_button.clicked.connect(self.cancel)
        window.worklist.case_chosen.connect(self.choose_case)
        window.strip.stack_chosen.connect(self.open_stack)
        r = window.registry
        r.connect("series.next", lambda: self.step_stack(1))
        r.connect("series.prev", lambda: self.step_stack(-1))
        r.connect("case.next", lambda: self.step_case(1))
        r.connect("case.prev", lambda: self.step_case(-1))
        window.shutting_down.connect(self.scan.shutdown)

    # the case list's state, read by the controllers, tests and scripts
    @property
    def studies(self) -> list[Study]:
        return self.case_list.studies

    @property
    def case(self) -> Study | None:
        return self.case_list.case

    @property
    def start_case_uid(self) -> str | None:
        return self.case_list.start_case_uid

    @property
    def opened_paths(self) -> list[str]:
        return self.case_list.opened_paths

    def keep_on_open(self, source: KeptStudies) -> None:
        """`source`'s studies (the PACS cache's) stay in the worklist whichever folder is opened."""
        self.case_list.keep_on_open(source)

    def use_review(self, first_unreviewed: FirstUnreviewed) -> None:
        """A loaded folder opens on its first case not signed off (the review's judgement)."""
        self._first_unreviewed = first_unreviewed

    def _message(self, text: str, ms: int) -> None:
        self.window.statusBar().showMessage(text, ms)

    # --- opening paths ----------------------------------------------------------------------------------------
    def open_paths(self, paths: list[str]) -> None:
        """Scan `paths` in the background; the worklist fills when the scan is done."""
        paths = [str(p) for p in paths if str(p)]
        if not paths:
            return
        self.scan.stop()
        self.case_list.opened_paths = paths
        self._update_title()
        self.window.add_recent(paths[0] if len(paths) == 1 else os.path.dirname(paths[0]) or paths[0])
        self.window.failed.clear()
        self.window.show_progress("Reading folder…", 0, 0)
        import_whole(SHARED_PACKAGES)  # before the scan's thread and the loads after it may use it
        self.scan.start(paths)

    def _scan_done(self, result: ScanResult, studies: list[Study]) -> None:
        self.window.failed.add(result.errors)
        self.set_studies(self.case_list.beside_kept(studies))
        n = len(studies)
        note = " (cancelled)" if result.cancelled else ""
        self._message(f"{n} case{'s' if n != 1 else ''} found in {result.files} files{note}", 5000)

    def _scan_failed(self, reason: str) -> None:
        self.window.failed.add([FileError(", ".join(self.opened_paths), reason)])
        self._message(reason, 8000)

    def set_studies(self, studies: list[Study]) -> None:
        window = self.window
        self.case_list.studies = list(studies)
        window.reading.add_studies(self.studies)  # priors are found among everything opened
        window.worklist.set_studies(self.studies)
        # the review and AI controllers fill their columns here (the AI from its results cache) and the worklist
        # takes its order: the first case is chosen from that order, not from the scan's
        self.studies_loaded.emit(self.studies)
        first = self.first_case()
        if first is None:
            self.close_case()
            return
        self.open_case(first)
        self.case_list.start_case_uid = first.study_uid

    def join(self, studies: list[Study]) -> None:
        """Studies come in beside those listed (a study listed already is replaced by its newer scan); the open
        case stays open: what to open is the caller's choice."""
        self.case_list.studies = self.case_list.merged(studies)
        self.window.reading.add_studies(studies)
        self.window.worklist.set_studies(self.studies)
        self.studies_loaded.emit(self.studies)

    def first_case(self) -> Study | None:
        """The first case not signed off in the worklist's order, else the first (`CaseList.first_case`)."""
        return self.case_list.first_case(self.window.worklist.proxy.studies_in_order(), self._first_unreviewed)

    def choose_case(self, study: Study | None) -> None:
        """A row clicked (or Enter in the filter, or a retrieve the reader asked to open): the reader's own
        choice, even of the case already open."""
        self.case_list.start_case_uid = None
        self.open_case(study)

    # --- cases and stacks -------------------------------------------------------------------------------------
    def close_case(self) -> None:
        window = self.window
        window.loads.clear()
        self.case_list.case = None
        self.stacks = []
        window.reading.close_case()
        window.strip.set_stacks([])
        window.viewports.clear()
        window.show_no_images(None)
        self._update_title()

    def open_case(self, study: Study | None) -> None:
        """Open a case in the layout its hanging protocol gives; its first images load first."""
        if study is None:
            return
        window = self.window
        if self.case_list.is_open(study) and self.stacks:
            window.worklist.select_study(study.study_uid)
            return
        self.close_case()
        window.reading.add_studies([study])
        window.reading.open_case(study.study_uid)
        self.case_list.case = study
        self._update_title()
        self.case_list.start_case_uid = None
        window.worklist.select_study(study.study_uid)
        # image stacks only: objects without pixels (RT Plan, SR, presentation states) are never offered to scroll
        self.stacks = [window.loads.entry(stack) for stack in study.stacks]
        window.strip.set_stacks([ls.stack for ls in self.stacks])
        self.case_opened.emit(study)
        self.reading_controller.draw_session()
        if self.stacks:
            self.stack_shown.emit(window.reading.viewport.stack)
        else:
            window.show_no_images(study)

    def _update_title(self) -> None:
        self.window.show_title(self.case, self.opened_paths)

    def step_case(self, delta: int) -> None:
        study = self.window.worklist.neighbour(self.case.study_uid if self.case else None, delta)
        if study is None:
            self._message("No more cases" if delta > 0 else "This is the first case", 2000)
            return
        self.open_case(study)

    def step_stack(self, delta: int) -> None:
        """→ / ←: the next / previous series of the study in the active viewport (the prior's, in the prior)."""
        reading = self.window.reading
        if reading.step_series(delta):
            self.reading_controller.draw_session()
            self.stack_shown.emit(reading.viewport.stack)
        else:
            self._message("No more series in this case", 2000)

    def open_stack(self, k: int, index: int | None = None) -> None:
        """Show stack k of the open case at image `index` (None: where the reader left it) in the active viewport
        (loading it, that image first)."""
        if not (0 <= k < len(self.stacks)):
            return
        self.window.reading.show_stack(self.stacks[k].stack, index)
        self.reading_controller.draw_session()
        self.stack_shown.emit(self.stacks[k].stack)

    def show_instance(self, study_uid: str, sop_instance_uid: str, frame: int = 0) -> bool:
        """Open the case, series and image of one SOP instance (F's next finding, the review's key images)."""
        study = self.find_study(study_uid)
        if study is None:
            return False
        self.open_case(study)
        for k, ls in enumerate(self.stacks):
            instances = ls.stack.instances
            found = next((i for i, inst in enumerate(instances) if inst.sop_instance_uid == sop_instance_uid), None)
            if found is None:
                continue
            target = ls.stack.frames.index((found, min(max(0, frame), max(1, instances[found].frames) - 1)))
            self.open_stack(k, target)  # drawn now, or as soon as the loader reaches it
            return True
        return False

    def find_study(self, study_uid: str) -> Study | None:
        """The study of the open folder with this UID (None: not in the worklist)."""
        return self.case_list.find_study(study_uid)

    # --- the progress bar -------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """The progress bar's Cancel: stops the scan and the loads; what is read stays usable."""
        self.scan.cancel()
        self.window.loads.cancel()
        self._message("Cancelling…", 2000)

    def busy(self) -> bool:
        return self.scan.running() or self.window.loads.busy()

    def _update_busy(self) -> None:
        if not self.busy():
            self.window.hide_progress()
