"""The AI in the app: one long-lived `InferenceWorker`, the worklist's AI column, the findings panel, H.

`AiController` is created by `create_app` and started with a zero-delay timer after the window is shown, so
the window paints before the worker thread imports torch (without a path to open: with the first folder
opened, so an empty window costs no torch import). It

- enqueues every image of the studies the case controller loads (`studies_loaded`) that the model applies to,
  and moves the open case (`case_opened`) to the front of the queue;
- before that, in the same call and so before the case controller chooses the first case, shows the results already
  in the AI results cache (the bundle read from its metadata, without torch): a folder opened again is in its
  flagged-first order at once, and its first case is the top one;
- keeps every result per study (`results_for`), and from them the worklist's AI cell: queued, running,
  flagged, not flagged, not applicable or error, with the highest score; the worklist is sorted on that
  column (flagged first, most suspicious on top) until the reader clicks a header;
- shows the image on screen in the findings panel (`set_prediction`) and its heatmap as an overlay on the
  viewer's image item (H), so it follows zoom, pan, rotation, flip and the image shown;
- reads the preferences (model folder, device, the reader's thresholds) from the settings; a new threshold
  re-evaluates flagged state from the results in hand, a new model or device restarts the worker;
- stops the worker when the window shuts down.

The worker sends plain data by queued signal; only this object, in the GUI thread, touches widgets.
For the review session: `results_for`, `thresholds`, `bundle`, `study_results_changed`, `show_heatmap_for`.
"""

from __future__ import annotations

import atexit
import logging
import re
import sqlite3
import weakref
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction

from medview.core.dicom.model import Study
from medview.core.errors import MedviewError
from medview.core.inference.bundle import flagged_labels
from medview.core.review.measurements import CTR, MEASURED_FINDING, cardiothoracic_ratio
from medview.core.settings import DEVICES, Settings
from medview.core.viewing.findings_text import (
    AiBrief,
    case_not_applicable_reason,
    ctr_threshold,
    format_score,
    not_applicable_text,
    ratio_sentence,
)
from medview.core.viewing.heatmap import heatmap_strength
from medview.qt.ai.findings_panel import FindingsPanel, HeatmapOverlay
from medview.qt.ai.ratio_lines import RatioLines
from medview.qt.settings_store import app_settings
from medview.qt.workers.inference import ERROR, NOT_APPLICABLE, OK, InferenceJob, InferenceResult, InferenceWorker

log = logging.getLogger(__name__)

FLUSH_MS = 100  # results reach the worklist, the findings panel and the progress bar at most ten times a second


# worklist states, in reading order: the sort value's integer part (ascending = flagged first)
QUEUED, RUNNING, FLAGGED, NOT_FLAGGED, NOT_APPLICABLE_TEXT, ERROR_TEXT = (
    "queued", "running", "flagged", "not flagged", "not applicable", "error")
_RANK = {FLAGGED: 0, RUNNING: 1, QUEUED: 2, NOT_FLAGGED: 3, ERROR_TEXT: 4, NOT_APPLICABLE_TEXT: 5}


def study_jobs(study: Study) -> list[InferenceJob]:
    """Every frame of a study's image stacks, as the viewer shows them."""
    return [job for series in study.series for stack in series.stacks for inst in stack.instances
            for job in InferenceJob.for_instance(inst)]


def study_status(results: list[InferenceResult], expected: int, flagged_of) -> tuple[str, float, float | None]:
    """(state, sort value, highest score) of one case from its results so far.

    `expected`: how many images the model applies to by their modality, `results` theirs (an image the engine
    found outside the model's use, e.g. a lateral view, is done as "not applicable"); `flagged_of(prediction)`:
    the labels flagged under the thresholds in force. Ascending sort value: flagged (highest score first),
    running, queued, not flagged (highest score first), error, not applicable.
    """
    if expected == 0:
        return NOT_APPLICABLE_TEXT, float(_RANK[NOT_APPLICABLE_TEXT]), None
    oks = [r.prediction for r in results if r.status == OK and r.prediction is not None]
    done = sum(1 for r in results if r.status in (OK, ERROR, NOT_APPLICABLE))
    top = max((max(p.scores.values(), default=0.0) for p in oks), default=None)
    flagged = [p for p in oks if flagged_of(p)]
    if flagged:
        score = max(max(p.scores[label] for label in flagged_of(p)) for p in flagged)
        return FLAGGED, _RANK[FLAGGED] + (1.0 - min(max(score, 0.0), 1.0)) * 0.999, score
    if done < expected:
        state = RUNNING if done else QUEUED
        return state, float(_RANK[state]), top
    if not oks:
        state = ERROR_TEXT if any(r.status == ERROR for r in results) else NOT_APPLICABLE_TEXT
        return state, float(_RANK[state]), None
    return NOT_FLAGGED, _RANK[NOT_FLAGGED] + (1.0 - min(max(top, 0.0), 1.0)) * 0.999, top


def status_text(state: str, score: float | None, done: int = 0, expected: int = 0, reason: str = "") -> str:
    """The worklist's AI cell: "flagged 0.93", "running 3/6", "not applicable: lateral view"."""
    if state == RUNNING and expected:
        return f"running {done}/{expected}"
    if score is not None and state in (FLAGGED, NOT_FLAGGED):
        return f"{state} {format_score(score)}"
    if state == NOT_APPLICABLE_TEXT and reason:
        return f"{state}: {reason}"
    return state


def _stop_at_exit(ref) -> None:
    controller = ref()
    try:
        if controller is not None and not controller._stopped:
            controller.shutdown()
    except RuntimeError:  # its Qt objects are already gone: so is the thread
        pass


class AiController(QObject):
    """Owns the inference worker and shows its results in the worklist, the findings panel and the viewer."""

    study_results_changed = Signal(str)  # study UID: a result arrived, or the thresholds changed
    model_changed = Signal(object)       # the ModelBundle in use, or None (failed)
    # the reader dragged a measuring line: {"study_uid", "sop_instance_uid", "frame", "name", "heart", "thorax"}
    measurement_corrected = Signal(object)

    def __init__(self, window, cases, model: str | Path | None = None, device: str = "auto", *,
                 worker_factory=InferenceWorker, settings: Settings | None = None) -> None:
        """`cases`: the case controller (medview.qt.cases) that opens the studies and cases scored here."""
        super().__init__(window)
        self.setObjectName("ai_controller")
        self.window = window
        self.cases = cases
        self.settings = settings or app_settings()
        self._cli_model = str(model) if model else None
        self._cli_device = device if device and device != "auto" else None
        self._worker_factory = worker_factory
        self.worker: InferenceWorker | None = None
        self._old_workers: list[InferenceWorker] = []
        self.bundle = None
        self.model_error = ""
        self._studies: dict[str, Study] = {}
        self._jobs: dict[str, list[InferenceJob]] = {}
        self._results: dict[str, dict[tuple[str, int], InferenceResult]] = {}
        self._cells: dict[str, tuple[str, float]] = {}
        self._priority: str | None = None
        self._heatmap_label: str | None = None
        self._overlay_key: tuple | None = None
        self._auto_sort = True
        self._started = False
        self._stopped = False
        self._metadata: tuple[str, object] | None = None  # (model path, its bundle read without torch)
        self._ready = False  # the worker has loaded the model: jobs go to it from now on (before: on model_ready)
        self._cache = None  # the results cache, read in the GUI thread when a folder is loaded
        # the reader's thresholds, read from the settings once per bundle: flagged/verdict run per result and
        # per cine frame, and a settings read there costs more than the rest of the frame's AI work
        self._thresholds_bundle = None  # the bundle the two below belong to
        self._overrides: dict[str, float] = {}
        self._in_force: dict[str, float] = {}
        # results are shown at most every FLUSH_MS: the worker scores faster than the window can repaint a cell,
        # re-sort the worklist and repaint the progress bar per image, and a queue of such updates froze the GUI
        self._dirty: set[str] = set()
        self._pending_progress: tuple[int, int] | None = None
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)

        self.panel: FindingsPanel = window.findings  # the window's, handed to it by create_app
        self.panel.model_label.setText("AI model: loaded when studies are opened")
        self.overlay = HeatmapOverlay(opacity=self.panel.opacity())
        self.overlay.attach(window.viewer.image)  # a child of the image item: every view transform applies
        self.ratio_lines = RatioLines(window.viewer.image, on_release=self._lines_moved)
        self._ratio_job: InferenceJob | None = None  # the image whose ratio is drawn
        self._correction_source = None  # (study, sop, frame, name) -> the reader's corrected measurement or None

        cases.studies_loaded.connect(self._studies_loaded)
        cases.case_opened.connect(self._case_opened)
        cases.stack_shown.connect(lambda _stack: self._refresh_view())
        window.viewports.index_changed.connect(lambda _i, _n: self._refresh_view())
        window.viewports.active_changed.connect(self._follow_active_view)
        window.viewports.set_ai_briefs(self.image_brief)  # the AI beside the prior, in the viewports' titles
        self.study_results_changed.connect(lambda _uid: window.viewports.refresh_titles())
        window.shutting_down.connect(self.shutdown)
        header = window.worklist.view.horizontalHeader()
        header.sectionClicked.connect(self._user_sorted)

        self.panel.heatmap_toggled.connect(self._heatmap_toggled)
        self.panel.opacity_changed.connect(self.overlay.set_opacity)
        self.panel.finding_selected.connect(self._finding_selected)
        self.heatmap_action: QAction = window.registry.attach("ai.heatmap", self.set_heatmap_visible)
        window.preferences_action.triggered.connect(self.show_preferences)  # File > Preferences…
        window.preferences_action.setEnabled(True)

    def _follow_active_view(self, view) -> None:
        """The heatmap and the ratio lines are drawn in the active viewport: they move with it."""
        self.overlay.attach(view.image)
        self.ratio_lines.attach(view.image)
        self._overlay_key = None
        self._refresh_view()

    # --- the review session's API ---------------------------------------------------------------------------
    def results_for(self, study_uid: str) -> list[InferenceResult]:
        """Every result of a study so far (scored, not applicable, error), in image order."""
        got = self._results.get(study_uid, {})
        return [got[j.key] for j in self._jobs.get(study_uid, []) if j.key in got]

    def image_brief(self, study_uid: str, image: tuple[str, int] | None) -> AiBrief | None:
        """The AI's main finding and measured ratio for an image of a study (else its most suspicious image), for
        a viewport's title; None before it is scored, or where the model does not apply."""
        if self.bundle is None:
            return None
        result, _on_screen = self._case_result(study_uid, image)
        if result is None or result.status != OK or result.prediction is None:
            return None
        scores = result.prediction.scores
        label = MEASURED_FINDING.get(CTR)
        if label not in scores:
            label = max(scores, key=scores.get, default=None)
        if label is None:
            return None
        ratio = self.shown_ratio(result)
        ctr = None if ratio is None else (ratio[1] if ratio[1] is not None else ratio[0]["value"])
        return AiBrief(label, float(scores[label]), ctr)

    def thresholds(self) -> dict[str, float]:
        """The operating point per finding in force: the bundle's, with the reader's overrides."""
        return dict(self._thresholds_in_force())

    def flagged(self, prediction) -> list[str]:
        """The labels of a prediction flagged under the thresholds in force (at or above)."""
        return flagged_labels(prediction.scores, self._thresholds_in_force())

    def show_heatmap_for(self, sop_instance_uid: str, frame: int, label: str) -> None:
        """After F: show `label`'s heatmap on that image (now, or as soon as the viewer shows it)."""
        if label and self.bundle is not None and label in self.bundle.labels:
            self._heatmap_label = label
            self.panel.table.blockSignals(True)
            self.panel.table.selectRow(list(self.bundle.labels).index(label))
            self.panel.table.blockSignals(False)
        self._switch_heatmap(True)  # shown on that image when the viewer shows it (it follows the image)

    def set_correction_source(self, source) -> None:
        """Where the reader's corrected measurements are read: `source(study_uid, sop_instance_uid, frame,
        name) -> dict | None` (the review session's `corrected_measurement`); what is drawn follows it."""
        self._correction_source = source
        self.refresh_view()

    def refresh_view(self) -> None:
        """Show the image on screen again (a measurement was corrected, or a correction undone)."""
        self._refresh_view()

    # --- settings ---------------------------------------------------------------------------------------------
    def model_path(self) -> str:
        """--model, else the preference, else the bundled model."""
        from medview.resources import bundled_model_path

        return self._cli_model or self.settings.get("ai_model") or str(bundled_model_path())

    def device(self) -> str:
        value = self._cli_device or self.settings.get("ai_device")
        return value if value in DEVICES else "auto"

    def threshold_overrides(self) -> dict[str, float]:
        """The reader's thresholds for the model in use (stored only where they differ from the bundle's)."""
        self._thresholds_in_force()
        return dict(self._overrides)

    def _thresholds_in_force(self) -> dict[str, float]:
        """The held thresholds (not a copy); the settings are read only when the bundle in use has changed."""
        if self._thresholds_bundle is not self.bundle:
            self._hold_thresholds(self._read_threshold_overrides())
        return self._in_force

    def _hold_thresholds(self, overrides: dict[str, float]) -> None:
        self._thresholds_bundle = self.bundle
        self._overrides = overrides
        base = dict(self.bundle.thresholds) if self.bundle is not None else {}
        self._in_force = {**base, **overrides}

    def _read_threshold_overrides(self) -> dict[str, float]:
        if self.bundle is None:
            return {}
        return self.settings.thresholds(self.bundle.name, self.bundle.labels)

    def set_thresholds(self, thresholds: dict[str, float] | None) -> None:
        """Store the reader's thresholds (None: the bundle's) and re-evaluate every case; nothing is rerun."""
        if self.bundle is None:
            return
        self.settings.set_thresholds(self.bundle.name, {
            label: float(value) for label, value in (thresholds or {}).items()
            if label in self.bundle.thresholds and abs(float(value) - self.bundle.thresholds[label]) > 1e-9})
        self._hold_thresholds(self._read_threshold_overrides())  # held as stored (a preferences change: not hot)
        self.panel.set_thresholds(self.threshold_overrides())
        for uid in self._studies:
            self._update_cell(uid)
            self.study_results_changed.emit(uid)
        self._refresh_view()

    def apply_preferences(self, model: str | None, device: str, thresholds: dict[str, float] | None) -> None:
        """The preferences dialog's Apply: thresholds at once; a new model or device restarts the worker."""
        before = (self.model_path(), self.device())
        self.settings.update(ai_model=model or "", ai_device=device if device in DEVICES else "auto")
        self._cli_model = self._cli_device = None  # the reader's choice now rules over the command line
        if (self.model_path(), self.device()) != before or self.bundle is None:
            self.restart()
            return
        self.set_thresholds(thresholds)

    def show_preferences(self) -> None:
        from medview.qt.preferences_dialog import PreferencesDialog

        dialog = PreferencesDialog(self, self.window, pacs=self.window.pacs)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.preferences_dialog = dialog

    # --- the worker ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker (call after the window is shown: torch is imported in the worker's thread)."""
        if self._started or self._stopped:
            return
        self._started = True
        self.panel.model_label.setText("Loading the AI model…")
        self._new_worker()
        # an embedding script may end without closing the window: never leave Python's exit to a running thread
        ref = weakref.ref(self)
        atexit.register(lambda: _stop_at_exit(ref))

    def _new_worker(self) -> None:
        self._ready = False
        w = self._worker_factory(self.model_path(), self.device(), parent=self)
        w.model_ready.connect(lambda bundle, w=w: self._model_ready(w, bundle))
        w.model_failed.connect(lambda reason, w=w: self._model_failed(w, reason))
        w.result_ready.connect(lambda result, w=w: self._result(w, result))
        w.progress.connect(lambda done, total, w=w: self._progress(w, done, total))
        w.idle.connect(lambda w=w: self._idle(w))
        self.worker = w
        if self._priority:
            w.prioritise(self._priority)
        w.start()
        log.info("AI worker started: model %s, device %s", self.model_path(), self.device())

    def restart(self) -> None:
        """A new model or device: stop the worker (without waiting), forget its results, start another."""
        self._retire(self.worker)
        self.worker = None
        self.bundle = None
        self.model_error = ""
        self._results = {uid: {} for uid in self._studies}
        self.panel.model_label.setText("Loading the AI model…")
        self.panel.status_label.setText("")
        self.overlay.set_heatmap(None)
        self._overlay_key = None
        for uid in self._studies:
            self._update_cell(uid)
        self._started = True
        self._new_worker()

    def _retire(self, w: InferenceWorker | None) -> None:
        if w is None:
            return
        w.stop(0)  # asks it to stop; its signals are ignored from now on (w is no longer self.worker)
        if w.isRunning():
            self._old_workers.append(w)
            w.finished.connect(lambda w=w: self._old_workers.remove(w) if w in self._old_workers else None)

    def shutdown(self) -> None:
        """Stop the worker and wait for it (the window is closing)."""
        self._stopped = True
        for w in [self.worker, *self._old_workers]:
            if w is not None and not w.stop(10000):
                log.warning("the AI worker did not stop within 10 s")
        self._old_workers.clear()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def _model_ready(self, w, bundle) -> None:
        if w is not self.worker:
            return
        self._ready = True
        self.bundle = bundle
        self.model_error = ""
        self.panel.set_model(bundle)
        self.panel.set_thresholds(self.threshold_overrides())
        self.model_changed.emit(bundle)
        self._enqueue(list(self._studies))

    def _model_failed(self, w, reason: str) -> None:
        if w is not self.worker:
            return
        self.bundle = None
        self.model_error = reason
        self._results = {uid: {} for uid in self._studies}  # cached results shown meanwhile: no AI after all
        log.warning("AI model unusable: %s", reason)
        # 64-digit checksums cannot wrap and would widen the panel: shortened here, whole in the tooltip
        short = re.sub(r"\b([0-9a-fA-F]{12})[0-9a-fA-F]{20,}\b", r"\1…", reason)
        self.panel.set_model_error(
            f"The AI model could not be loaded: {short.rstrip('.')}.\n"
            "The viewer works without it; choose another model in File → Preferences.")
        self.panel.status_label.setToolTip(reason)
        self.model_changed.emit(None)
        for uid in self._studies:
            self._update_cell(uid)
        self._hide_progress()

    def _result(self, w, result: InferenceResult) -> None:
        if w is not self.worker:
            return
        uid = result.job.study_uid
        if uid not in self._studies:
            return  # a study of a folder no longer open
        self._results.setdefault(uid, {})[result.job.key] = result
        self._dirty.add(uid)
        self._schedule_flush()

    def _progress(self, w, done: int, total: int) -> None:
        if w is not self.worker:
            return
        self._pending_progress = (done, total)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _flush(self) -> None:
        """Show what arrived since the last flush: one cell per changed case, the open case, the progress."""
        self._flush_timer.stop()
        dirty, self._dirty = self._dirty, set()
        for uid in dirty:
            if uid in self._studies:  # not a study of a folder closed meanwhile
                self._update_cell(uid)
                self.study_results_changed.emit(uid)
        case = self.cases.case
        if case is not None and case.study_uid in dirty:
            self._refresh_view()
        if self._pending_progress is not None:
            done, total = self._pending_progress
            self._pending_progress = None
            self._show_progress(done, total)

    def _show_progress(self, done: int, total: int) -> None:
        if self.cases.busy():
            return  # the scan's or the load's progress has the bar
        bar = self.window.progress
        bar.setRange(0, max(total, 1))
        bar.setValue(done)
        text = f"AI: {done}/{total} images scored"
        bar.setFormat(text)
        bar.setToolTip(text)
        bar.show()

    def _idle(self, w) -> None:
        if w is self.worker:
            self._flush()  # the last results at once, then the bar goes
            self._hide_progress()

    def _hide_progress(self) -> None:
        if not self.cases.busy():
            self.window.progress.hide()

    # --- studies ---------------------------------------------------------------------------------------------
    def _studies_loaded(self, studies: list[Study]) -> None:
        self._studies = {s.study_uid: s for s in studies}
        self._jobs = {s.study_uid: study_jobs(s) for s in studies}
        self._results = {uid: got for uid, got in self._results.items() if uid in self._studies}
        self._cells.clear()
        if self.worker is not None:
            self.worker.cancel()  # the previous folder's queue
        if not self._stopped:
            if self.bundle is None and not self.model_error and self._model_metadata() is not None:
                self._use_metadata(self._model_metadata())
            self._apply_cached()  # before the window chooses the first case: it opens the top one
        if not self._started and not self._stopped:
            if self._model_reads_any():
                self.start()
            else:  # e.g. a CT-only folder: no torch in memory for a model that would read none of it
                self._mark_not_applicable()
        for uid in self._studies:
            self._update_cell(uid)
        worklist = self.window.worklist
        # "not flagged 0.48" read in full, not "not fl…"
        worklist.widen_ai_column(worklist.view.fontMetrics().horizontalAdvance("not flagged 0.00") + 16)
        if self._auto_sort:
            worklist.sort_by_ai()
        if self.bundle is not None:
            self._enqueue(list(self._studies))

    def _model_metadata(self):
        """The model's bundle read from its metadata alone (no torch, no weights loaded), or None where it is
        unusable (the worker then loads it and says why, in the panel); read once per model path."""
        from medview.core.inference.bundle import load_bundle

        path = self.model_path()
        if self._metadata is None or self._metadata[0] != path:
            try:
                self._metadata = (path, load_bundle(path))
            except Exception:  # noqa: BLE001 - an unusable model: the worker loads it and says why, in the panel
                self._metadata = (path, None)
        return self._metadata[1]

    def _use_metadata(self, meta) -> None:
        """The bundle as read from its metadata (the worker's is the same, once it has loaded and checked the
        weights): names, labels, modalities and thresholds, for the worklist and the panel meanwhile."""
        self.bundle = meta
        self.panel.set_model(meta)
        self.panel.set_thresholds(self.threshold_overrides())

    def _apply_cached(self) -> int:
        """Take the open folder's results that the AI results cache already holds (same instance, frame, model
        checksum and metadata) without waiting for the worker: SQLite reads in the GUI thread (5 to 7 ms for
        200 images, about 30 µs each). Returns how many were found."""
        from medview.core.inference.cache import ResultCache
        from medview.core.inference.scoring import cached_result

        meta = self.bundle
        if meta is None or self.model_error:
            return 0
        found = 0
        try:
            if self._cache is None:
                self._cache = ResultCache()
            for uid, jobs in self._jobs.items():
                got = self._results.setdefault(uid, {})
                for job in jobs:
                    if job.key in got:
                        continue
                    known = cached_result(self._cache, meta, job)
                    if known is not None and known.status == OK:  # not applicable: said once the model is loaded
                        got[job.key] = known
                        found += 1
        except (sqlite3.Error, OSError, ValueError) as exc:  # only a cache: the worker scores what is missing
            log.warning("AI results cache not read: %s", exc)
        return found

    def _model_reads_any(self) -> bool:
        """Whether the model applies to any image of the open folder, from its metadata alone (no torch)."""
        meta = self._model_metadata()
        if meta is None:
            return True
        return any(meta.applies_to(job.modality) for jobs in self._jobs.values() for job in jobs)

    def _mark_not_applicable(self) -> None:
        meta = self._model_metadata()
        for uid, jobs in self._jobs.items():
            got = self._results.setdefault(uid, {})
            for job in jobs:
                got.setdefault(job.key, InferenceResult(job, NOT_APPLICABLE))
        if meta is not None:
            if self.bundle is not meta:
                self._use_metadata(meta)
            kinds = ", ".join(meta.modalities)
            self.panel.model_label.setText(f"AI model: {meta.ident} (not started: it reads {kinds} images, "
                                           "and this folder has none)")

    def _enqueue(self, uids: list[str]) -> None:
        """Queue the applicable images of these studies that have no result yet; the rest are not applicable."""
        if self.bundle is None or self.worker is None:
            return
        todo = []
        for uid in uids:
            got = self._results.setdefault(uid, {})
            for job in self._jobs.get(uid, []):
                if job.key in got:
                    continue
                if self.bundle.applies_to(job.modality):
                    todo.append(job)
                else:
                    got[job.key] = InferenceResult(job, NOT_APPLICABLE)
            self._update_cell(uid)
        if self._priority:
            self.worker.prioritise(self._priority)
        if todo and self._ready:  # before the model is loaded, `_model_ready` queues them (once)
            self.worker.enqueue(todo)
        for uid in uids:
            self.study_results_changed.emit(uid)
        self._refresh_view()

    def _case_opened(self, study: Study) -> None:
        self._priority = study.study_uid
        if self.worker is not None:
            self.worker.prioritise(study.study_uid)
        self.overlay.set_heatmap(None)  # never the last case's map over this one, not even for a frame
        self._overlay_key = None
        self._refresh_view()

    def _user_sorted(self, _section: int) -> None:
        self._auto_sort = False  # the reader chose an order: keep it

    def expected(self, study_uid: str) -> int:
        if self.bundle is None:
            return len(self._jobs.get(study_uid, []))
        return sum(1 for j in self._jobs.get(study_uid, []) if self.bundle.applies_to(j.modality))

    def _expected_results(self, uid: str) -> list[InferenceResult]:
        """The case's results for images of a modality the model reads."""
        got = self._results.get(uid, {}).values()
        return [r for r in got if self.bundle is None or self.bundle.applies_to(r.job.modality)]

    def _status(self, uid: str) -> tuple[str, float, float | None]:
        if self.model_error:
            return ERROR_TEXT, float(_RANK[ERROR_TEXT]), None
        if self.bundle is None:
            return QUEUED, float(_RANK[QUEUED]), None
        return study_status(self._expected_results(uid), self.expected(uid), self.flagged)

    def _update_cell(self, uid: str) -> None:
        state, sort_value, score = self._status(uid)
        results = self._expected_results(uid)
        done = sum(1 for r in results if r.status in (OK, ERROR, NOT_APPLICABLE))
        reason = case_not_applicable_reason(r.error for r in results if r.status == NOT_APPLICABLE)
        text = status_text(state, score, done, self.expected(uid), reason)
        if self._cells.get(uid) == (text, sort_value):
            return  # unchanged: no repaint, no re-sort
        self._cells[uid] = (text, sort_value)
        worklist = self.window.worklist
        with worklist.current_row_kept_in_view():
            worklist.model.set_ai_status(uid, text, sort_value)

    # --- the open case: findings panel and heatmap -------------------------------------------------------------
    def shown_key(self) -> tuple[str, int] | None:
        """(SOP Instance UID, frame) of the image on screen."""
        viewer = self.window.viewer
        shown = viewer.shown_frame()
        if shown is None:
            return None
        inst_index, frame = shown
        return viewer.stack.instances[inst_index].sop_instance_uid, frame

    def _case_result(self, uid: str, key: tuple[str, int] | None) -> tuple[InferenceResult | None, bool]:
        """The result of the image shown, else the case's most suspicious scored image (False: not the one shown)."""
        got = self._results.get(uid, {})
        if key is not None and key in got:
            return got[key], True
        scored = [r for r in got.values() if r.status == OK and r.prediction is not None]
        if scored:
            return max(scored, key=lambda r: max(r.prediction.scores.values(), default=0.0)), False
        return None, False

    def _refresh_view(self) -> None:
        """Findings panel and heatmap for the image on screen."""
        case = self.cases.case
        if self.bundle is None or case is None:
            if self.bundle is not None:
                self.panel.set_prediction(None, "")
            self._set_overlay(None)
            self._show_ratio(None)
            return
        key = self.shown_key()
        result, on_screen = self._case_result(case.study_uid, key)
        modality = self.window.viewer.modality or "/".join(case.modalities)
        outside = (key is not None and not self.bundle.applies_to(modality)) or self.expected(case.study_uid) == 0
        if result is None:
            text = (not_applicable_text("", self.bundle.modalities, modality) if outside
                    else "Queued: this case is scored next.")
            self.panel.set_prediction(None, text)
        elif result.status == OK:
            self.panel.set_prediction(result.prediction, self.verdict(result.prediction, on_screen, result))
        elif result.status == ERROR:
            self.panel.set_prediction(None, f"This image could not be scored: {result.error}")
        else:
            outside = outside or on_screen
            self.panel.set_prediction(None, not_applicable_text(result.error, self.bundle.modalities,
                                                                result.job.modality))
        shown = result if on_screen and result is not None and result.status == OK else None
        self._set_overlay(shown)
        self._show_ratio(shown)
        self._enable_heatmap_switch(not outside)

    def verdict(self, prediction, on_screen: bool = True, result: InferenceResult | None = None) -> str:
        """The panel's line in words. With a measured ratio, why the case is flagged or not in one sentence
        ("Cardiothoracic ratio 0.56 measured, at or above the 0.50 threshold (score 0.93): enlarged cardiac
        silhouette."); otherwise each finding's score against its threshold: "Flagged: cardiomegaly 0.997 ≥
        0.50 (this image)"."""
        limits = self.thresholds()
        flagged = self.flagged(prediction)
        where = "this image" if on_screen else "the case's most suspicious image, not the one shown"
        ratio = self.shown_ratio(result) if result is not None else None
        if ratio is not None:
            measured, model_value = ratio
            label = MEASURED_FINDING.get(CTR)
            if label not in prediction.scores:
                label = flagged[0] if flagged else max(prediction.scores, key=prediction.scores.get, default=None)
            sentence = ratio_sentence(measured["value"], ctr_threshold(measured), prediction.scores.get(label),
                                      limits.get(label), model_value, measured.get("note"))
            return sentence if on_screen else f"{sentence} ({where})"
        parts = []
        for label in self.bundle.labels:
            if label in prediction.scores and label in limits:
                sign = "≥" if label in flagged else "<"
                parts.append(f"{label.replace('_', ' ')} {format_score(prediction.scores[label], 3)} {sign} "
                             f"{limits[label]:.2f}")
        return f"{'Flagged' if flagged else 'Not flagged'}: {'; '.join(parts)} ({where})"

    # --- the measured ratio on the image ----------------------------------------------------------------------
    def shown_ratio(self, result: InferenceResult) -> tuple[dict, float | None] | None:
        """The cardiothoracic ratio of a result as it is to be shown: the reader's correction where there is one,
        with the model's value as the second item (None where uncorrected); None without a measurement."""
        prediction = result.prediction
        measured = (prediction.measurements or {}).get(CTR) if prediction is not None else None
        if not measured or "heart" not in measured or "thorax" not in measured:
            return None
        try:
            value = measured.get("value")
            model = {**measured, "value": float(value if value is not None else
                                                 cardiothoracic_ratio(measured["heart"], measured["thorax"]))}
        except (MedviewError, TypeError, ValueError) as exc:  # lines that measure nothing: nothing to draw
            log.warning("measurement not shown: %s", exc)
            return None
        corrected = self._corrected(result.job)
        if not corrected:
            return model, None
        return {**model, "value": float(corrected["value"]), "heart": corrected["heart"],
                "thorax": corrected["thorax"]}, model["value"]

    def _corrected(self, job: InferenceJob) -> dict | None:
        if self._correction_source is None:
            return None
        try:
            return self._correction_source(job.study_uid, job.sop_instance_uid, job.frame, CTR)
        except MedviewError as exc:  # the review database cannot be read: the model's lines, and why in the log
            log.warning("corrected measurement not read: %s", exc)
            return None

    def _show_ratio(self, result: InferenceResult | None) -> None:
        ratio = self.shown_ratio(result) if result is not None else None
        if ratio is None or self.window.viewer.display is None:
            self.ratio_lines.clear()
            self._ratio_job = None
            return
        measured, model_value = ratio
        self._ratio_job = result.job
        key = (result.job.key, id(result.prediction), measured["value"], str(measured["heart"]),
               str(measured["thorax"]), model_value)
        self.ratio_lines.show(key, measured["value"], measured["heart"], measured["thorax"],
                              ctr_threshold(measured), model_value if model_value is not None else measured["value"],
                              corrected=model_value is not None)

    def shown_ratio_text(self) -> str:
        """The label beside the lines on screen ("" where none is drawn)."""
        return self.ratio_lines.text()

    def _lines_moved(self, heart, thorax) -> None:
        """The reader let go of a dragged end: the review session stores the corrected lines."""
        job = self._ratio_job
        if job is None:
            return
        self.measurement_corrected.emit({"study_uid": job.study_uid, "sop_instance_uid": job.sop_instance_uid,
                                         "frame": job.frame, "name": CTR, "heart": heart, "thorax": thorax})
        self.ratio_lines.clear()  # drawn again from what is stored: the correction, or the model's lines
        self._refresh_view()

    def _enable_heatmap_switch(self, enabled: bool) -> None:
        """H and the panel's box are greyed out on an image the model does not read (a CT): nothing to show."""
        if self.heatmap_action.isEnabled() != enabled:
            self.window.registry.set_enabled("ai.heatmap", enabled)
        self.panel.heatmap_box.setEnabled(enabled)

    def _heatmap_index(self, prediction) -> tuple[str, int]:
        labels = list(self.bundle.labels)
        label = self._heatmap_label
        if label not in labels:
            flagged = self.flagged(prediction)
            label = flagged[0] if flagged else max(labels, key=lambda k: prediction.scores.get(k, -1.0))
        k = labels.index(label)
        heatmap = prediction.heatmap
        return label, (k if heatmap is not None and heatmap.shape[0] > k else 0)

    def _set_overlay(self, result: InferenceResult | None) -> None:
        viewer = self.window.viewer
        prediction = result.prediction if result is not None else None
        if prediction is None or prediction.heatmap is None or viewer.display is None:
            if self.overlay.has_heatmap():
                self.overlay.set_heatmap(None)
            self._overlay_key = None
            return
        label, k = self._heatmap_index(prediction)
        shape = tuple(viewer.display.array.shape[1:3])
        strength = heatmap_strength(prediction.scores.get(label), self._thresholds_in_force().get(label))
        key = (result.job.key, label, shape, id(prediction), strength)
        if key != self._overlay_key:
            self.overlay.set_heatmap(prediction.heatmap[k], shape, strength)
            self.overlay.item.setToolTip(self._heatmap_note(prediction, label, strength))
            self._overlay_key = key

    def _heatmap_note(self, prediction, label: str, strength: float) -> str:
        """What the overlay shows, in words: faint maps say why they are faint."""
        name = label.replace("_", " ")
        if strength >= 1.0:
            return f"Heatmap: {name} (flagged: where the model looked)"
        limit = self._thresholds_in_force().get(label)
        return (f"Heatmap: {name}, drawn at {strength:.0%} strength: its score "
                f"{format_score(prediction.scores.get(label, float('nan')), 3)} is below the threshold {limit:.2f}")

    def set_heatmap_visible(self, visible: bool) -> None:
        """H (and the panel's box): the heatmap on or off (the action, the box and the overlay agree). On, where
        the image on screen has no heatmap (a CT, an image not scored yet), changes nothing but says so: the
        next radiograph does not open with a heatmap the reader never saw switched on."""
        visible = bool(visible)
        if visible:
            self._refresh_view()
            if not self.overlay.has_heatmap():
                self._check_heatmap_switches(self.overlay.wanted())  # H and the box had flipped: back as they were
                self.window.statusBar().showMessage("No AI heatmap for this image", 3000)
                return
        self._switch_heatmap(visible)
        if visible and self.overlay.strength() < 1.0:
            self.window.statusBar().showMessage(self.overlay.item.toolTip(), 5000)

    def _switch_heatmap(self, visible: bool) -> None:
        self._check_heatmap_switches(visible)
        self.overlay.set_visible(visible)
        self._refresh_view()

    def _check_heatmap_switches(self, on: bool) -> None:
        for widget in (self.heatmap_action, self.panel.heatmap_box):
            if widget.isChecked() != on:
                widget.blockSignals(True)
                widget.setChecked(on)
                widget.blockSignals(False)

    def heatmap_visible(self) -> bool:
        return self.overlay.is_visible()

    def _heatmap_toggled(self, checked: bool) -> None:
        self.set_heatmap_visible(checked)

    def _finding_selected(self, label: str) -> None:
        self._heatmap_label = label
        self._refresh_view()
