"""The PACS in the window: the panel (Ctrl+P), studies retrieved or pushed joining the worklist, the storage
listener, and sending the review (Ctrl+Shift+S, or on sign-off when the reader set that rule).

- Retrieve: a `PacsTask` runs `retrieve_study` into the cache under MEDVIEW_HOME; when a study's first instance
  is here its folder is scanned and it joins the worklist (and opens, when the reader asked with Enter), so the
  first image shows while the rest arrives; when it is done it is scanned again and the open case follows.
- Listener (Preferences, off by default): what a PACS pushes joins the worklist as it arrives; the AI scores
  it like any study of the worklist (its `studies_loaded`), so flagged ones rise: the triage loop.
- The worklist's From column says where each study came from (`Arrivals`).
- Send: the case's SR, KOS and SEG go to the chosen server and are queried back (`core.net.share`). Nothing
  is sent unless the reader pressed the key or set the sign-off rule.

Work on the network runs in threads; the listener's callbacks come from pynetdicom's threads and reach this
object (GUI thread) by queued signal.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QInputDialog, QWidget

from medview.core.dicom.model import Study
from medview.core.dicom.readable import readable_date
from medview.core.errors import MedviewError
from medview.core.net.search import Arrivals, server_names
from medview.core.settings import Settings
from medview.qt.settings_store import app_settings
from medview.qt.workers.pacs import PacsTask

log = logging.getLogger(__name__)

JOIN_MS = 700      # instances arriving are scanned into the worklist at most this often
CELLS_MS = 250     # progress reaches the From cells and the panel at most this often


def choose_server(parent: QWidget, names: list[str], default: str) -> str | None:
    """Which server to send to, when there are several (module-level so tests patch it); None: cancelled."""
    current = names.index(default) if default in names else 0
    name, ok = QInputDialog.getItem(parent, "Send the review", "Send the case's review to:", names, current, False)
    return name if ok else None


class _ListenerBridge(QObject):
    """Carries the listener's callbacks from pynetdicom's threads into the GUI thread."""

    stored = Signal(str)       # study UID of an instance just stored
    study = Signal(object)     # StudyArrival, when an association ended


class PacsController(QObject):
    changed = Signal()  # arrivals, progress or the listener changed: the panel redraws
    searched = Signal(object)  # list[StudyMatch] of the last search, or a reason (str)
    sent = Signal(object)  # ReviewSendResult, or a reason (str)
    message = Signal(str)  # what the status bar says about the PACS, for the panel too

    def __init__(self, window, cases, reading_controller, settings: Settings | None = None):
        """`cases`: the case controller (medview.qt.cases) whose worklist retrieved and pushed studies join;
        `reading_controller` (medview.qt.reading) draws a case reopened as the reader had it."""
        super().__init__(window)
        self.setObjectName("pacs_controller")
        self.window = window
        self.cases = cases
        self.reading_controller = reading_controller
        self.settings = settings or app_settings()
        self.arrivals = Arrivals()
        self.panel = None
        self.listener = None
        self.listener_error = ""
        self.last_send = None
        self._cache = None
        self._search: PacsTask | None = None
        self._retrieve: PacsTask | None = None
        self._retrieve_queue: list[tuple[str, list]] = []
        self._current: tuple[str, int, int] | None = None  # (study UID, done, total) of the retrieve running
        self._open_when_here: str | None = None
        self._names: dict[str, str] = {}  # study UID -> how messages name it: patient ID and study date
        self._scanned_at: dict[str, int] = {}  # study UID -> instances here when it was last scanned in
        self._in_cache: dict[str, Study] = {}  # study UID -> its latest scan, for studies of the cache
        self._send: PacsTask | None = None
        self._send_queue: list[tuple[str, str]] = []
        self._scan = None
        self._to_scan: set[str] = set()
        self._old: list[QObject] = []
        self._join_timer = QTimer(self, singleShot=True, interval=JOIN_MS, timeout=self._scan_next)
        self._cells_timer = QTimer(self, singleShot=True, interval=CELLS_MS, timeout=self._show_progress)
        self._bridge = _ListenerBridge(self)
        self._bridge.stored.connect(self._pushed_instance)
        self._bridge.study.connect(self._pushed_study)

        registry = window.registry
        registry.attach("pacs.panel", self.show_panel)
        registry.attach("pacs.send", self.send_review_now)
        cases.studies_loaded.connect(lambda _studies: self._show_sources())
        cases.keep_on_open(self.cached_studies)
        window.shutting_down.connect(self.shutdown)
        if window.review is not None:
            window.review.signed_off.connect(self._signed_off)
        if self.settings.get("pacs_listen"):
            self.start_listener()
        self.list_cache()

    @property
    def cache(self):
        """The PACS cache under MEDVIEW_HOME, made on first use (a station without a PACS gets no folders)."""
        if self._cache is None:
            from medview.core.net import PacsCache

            self._cache = PacsCache()
        return self._cache

    def say(self, text: str, ms: int = 6000) -> None:
        self.window.statusBar().showMessage(text, ms)
        self.message.emit(text)

    # --- the panel ---------------------------------------------------------------------------------------------
    def show_panel(self) -> None:
        """Ctrl+P: the PACS panel, its first field ready for typing."""
        from medview.qt.pacs.pacs_panel import PacsPanel

        if self.panel is None:
            self.panel = PacsPanel(self, self.window)
        self.panel.show()
        self.panel.raise_()
        self.panel.activateWindow()
        self.panel.focus_first_field()

    def servers(self) -> tuple[list[str], str]:
        """The server names of servers.toml and, when it cannot be read, why ("" when it can)."""
        try:
            return server_names(), ""
        except MedviewError as exc:
            return [], str(exc)

    def default_server(self, names: list[str]) -> str:
        last = self.settings.get("pacs_last_server")
        return last if last in names else (names[0] if names else "")

    # --- search ------------------------------------------------------------------------------------------------
    def search(self, server_name: str, query) -> bool:
        """Study-level query in a thread; `searched` brings the matches (newest first) or the reason."""
        if self._search is not None:
            return False
        from medview.core.net import find_studies, resolve_server

        self.settings.update(pacs_last_server=server_name)

        def work(_task):
            matches = find_studies(resolve_server(server_name), query)
            return sorted(matches, key=lambda m: (m.study_date or "", m.patient_name), reverse=True)

        self._search = self._task(work, self._searched, self._search_failed)
        return True

    def searching(self) -> bool:
        return self._search is not None

    def _searched(self, matches) -> None:
        self._search = None
        self.searched.emit(matches)

    def _search_failed(self, reason: str) -> None:
        self._search = None
        self.searched.emit(reason)

    # --- retrieve ----------------------------------------------------------------------------------------------
    def retrieve(self, server_name: str, matches: list, open_uid: str | None = None) -> None:
        """Bring these studies into the cache one after another; each joins the worklist as it arrives, and
        `open_uid` opens as soon as its first image is here."""
        if not matches:
            return
        if open_uid:
            self._open_when_here = open_uid
        for match in matches:
            self.arrivals.retrieving(match.study_uid, server_name)
            self._names[match.study_uid] = " ".join(x for x in (match.patient_id, readable_date(match.study_date)) if x)
        self._retrieve_queue.append((server_name, list(matches)))
        self._show_sources()
        self.changed.emit()
        self._next_retrieve()

    def retrieving(self) -> bool:
        return self._retrieve is not None or bool(self._retrieve_queue)

    def retrieve_progress(self) -> tuple[str, int, int] | None:
        """(study UID, instances here, instances listed) of the retrieve running, None when none runs."""
        return self._current if self._retrieve is not None else None

    def cancel_retrieve(self) -> None:
        """Stops the retrieve running and drops those waiting; what arrived stays (a later retrieve completes it)."""
        for _server, matches in self._retrieve_queue:
            for match in matches:
                self._give_up(match.study_uid, "cancelled")
        self._retrieve_queue.clear()
        if self._retrieve is not None:
            self._retrieve.cancel()
            self.say("Cancelling the retrieve…", 3000)
        self._show_sources()
        self.changed.emit()

    def _next_retrieve(self) -> None:
        if self._retrieve is not None or not self._retrieve_queue:
            return
        server_name, matches = self._retrieve_queue.pop(0)
        uids = [m.study_uid for m in matches]
        cache = self.cache

        def work(task: PacsTask):
            from medview.core.net import PacsError, local_settings, resolve_server, retrieve_study

            server, local = resolve_server(server_name), local_settings()
            for uid in uids:
                if task.cancelled():
                    task.note(("failed", uid, "cancelled"))
                    continue
                first = [True]

                def progress(done: int, total: int, uid=uid) -> None:
                    task.note(("progress", uid, done, total))
                    if first[0] and done:
                        first[0] = False
                        task.note(("arrived", uid))

                task.note(("progress", uid, 0, 0))
                try:
                    result = retrieve_study(server, uid, local=local, cache=cache, progress=progress,
                                            cancel=task.cancelled)
                except PacsError as exc:
                    task.note(("failed", uid, str(exc)))
                    continue
                task.note(("finished", uid, result))

        self._retrieve = self._task(work, lambda _r: self._retrieve_done(), self._retrieve_failed,
                                    noted=self._retrieve_note)
        self.changed.emit()

    def _retrieve_note(self, note) -> None:
        kind, uid = note[0], note[1]
        if kind == "progress":
            done, total = note[2], note[3]
            self._current = (uid, done, total)
            self.arrivals.progress(uid, done, total)
            if not self._cells_timer.isActive():
                self._cells_timer.start()
            scanned = self._scanned_at.get(uid)
            if scanned and scanned * 2 <= done < total:
                # scanned in again each time what is here has doubled: the open case grows while it arrives,
                # and its images are read again a few times (1, 2, 4 … 256 of 300), not at every step
                self._scanned_at[uid] = done
                self._rescan(uid)
        elif kind == "arrived":
            self._scanned_at[uid] = 1
            self._rescan(uid, now=True)  # the first image shows while the rest arrives
        elif kind == "finished":
            result = note[2]
            self._scanned_at.pop(uid, None)
            self.arrivals.retrieved(uid, result)
            self._rescan(uid, now=True)
            name = self._names.get(uid) or "the study"
            if result.complete:
                self.say(f"Retrieved {name}: {result.expected} instances"
                         + (f" ({result.already_here} were here already)" if result.already_here else ""))
            elif result.error == "cancelled":
                here = result.expected - len(result.missing)
                self.say(f"Retrieve of {name} cancelled: {here} of {result.expected} instances here; retrieve it "
                         "again to complete it", 12000)
            else:
                self.say(f"Retrieved {name} in part: {len(result.missing)} of {result.expected} instances missing "
                         f"({result.error}); retrieve it again to complete it", 12000)
            self._show_sources()
            self.changed.emit()
        elif kind == "failed":
            self._give_up(uid, note[2])
            if note[2] == "cancelled":
                self.say(f"Retrieve of {self._names.get(uid) or 'the study'} cancelled before any instance arrived")
            else:
                self.say(f"{self._names.get(uid) or 'The study'} not retrieved: {note[2]}", 12000)
            self._show_sources()
            self.changed.emit()

    def _retrieve_done(self) -> None:
        self._retrieve = None
        self._current = None
        self.changed.emit()
        self._next_retrieve()

    def _retrieve_failed(self, reason: str) -> None:
        self.say(f"Not retrieved: {reason}", 12000)
        queued = {m.study_uid for _server, matches in self._retrieve_queue for m in matches}
        for uid, arrival in list(self.arrivals.studies.items()):
            if arrival.running and uid not in queued:
                self._give_up(uid, reason)
        self._show_sources()
        self._retrieve_done()

    def _give_up(self, study_uid: str, reason: str) -> None:
        """A retrieve that brought nothing: the study is not "from the PACS" (unless part of it is here)."""
        self.arrivals.retrieved(study_uid, None, reason)
        if not self.cache.present(study_uid):
            self.arrivals.studies.pop(study_uid, None)

    def _show_progress(self) -> None:
        self._show_sources()
        self.changed.emit()

    # --- joining the worklist ---------------------------------------------------------------------------------
    def _rescan(self, study_uid: str, now: bool = False) -> None:
        """Scan the study's cache folder soon (now: as soon as no other scan runs) and join the worklist."""
        self._to_scan.add(study_uid)
        if now:
            self._join_timer.stop()
            self._scan_next()
        elif not self._join_timer.isActive():
            self._join_timer.start()

    def _scan_next(self) -> None:
        if self._scan is not None or not self._to_scan:
            return
        from medview.qt.workers.scan import ScanWorker

        folders = [str(self.cache.study_dir(uid)) for uid in sorted(self._to_scan)]
        self._to_scan.clear()
        worker = ScanWorker([f for f in folders], self)
        worker.done.connect(self._scanned)
        worker.failed.connect(lambda reason: log.warning("PACS study not scanned: %s", reason))
        worker.finished.connect(self._scan_finished)
        self._scan = worker
        worker.start()

    def _scanned(self, result, studies: list[Study]) -> None:
        if result.errors:
            self.window.failed.add(result.errors)
        self._in_cache.update((s.study_uid, s) for s in studies)
        if studies:
            self.join_worklist(studies)

    def list_cache(self) -> None:
        """What earlier sessions retrieved or received joins the worklist at start, saying where it came from;
        the AI takes their scores from its results cache."""
        from medview.core.net.cache import cache_in_use

        if not cache_in_use():
            return
        for uid in self.arrivals.add_cached(self.cache):
            self._to_scan.add(uid)
        self._scan_next()

    def cached_studies(self) -> list[Study]:
        """The studies of the cache the worklist has shown (still on disk): they stay when a folder is opened."""
        if not self._in_cache:
            return []
        return [s for uid, s in self._in_cache.items() if self.cache.study_dir(uid).is_dir()]

    def _scan_finished(self) -> None:
        self._scan = None
        if self._to_scan:
            self._scan_next()

    def join_worklist(self, studies: list[Study]) -> None:
        """Studies come in beside those of the worklist (a study already there is replaced by its newer scan);
        the case open stays open, and follows when more of it arrived."""
        cases = self.cases
        case = cases.case
        grown = next((s for s in studies if case is not None and s.study_uid == case.study_uid
                      and len(_instances(s)) != len(_instances(case))), None)
        cases.join(studies)  # the AI scores them (flagged first), the review fills its column
        wanted = self._open_when_here
        if wanted is not None and any(s.study_uid == wanted for s in studies):
            self._open_when_here = None
            cases.choose_case(cases.find_study(wanted))
        elif grown is not None:
            self._reopen(grown)
        elif cases.case is not None:
            self.window.worklist.select_study(cases.case.study_uid)
        else:
            cases.open_case(cases.first_case())

    def _reopen(self, study: Study) -> None:
        """The open case with the instances that arrived since: opened again on the image shown, with the
        window, zoom, rotation and pan the reader had."""
        w = self.window
        state = w.reading_state()
        shown = state["viewports"][state["active"]] if state["viewports"] else {}
        before = w.reading.viewport
        series, view, pan = (before.stack.series_uid if before.stack is not None else None), before.view, before.pan
        self.cases.close_case()
        self.cases.open_case(study)
        if shown.get("sop_instance_uid"):
            self.cases.show_instance(study.study_uid, shown["sop_instance_uid"], shown.get("frame", 0))
        after = w.reading.viewport
        if series is not None and after.stack is not None and after.stack.series_uid == series:
            after.view = replace(view, count=after.view.count, index=after.view.index)
            after.pan = pan
            self.reading_controller.draw_session()

    def _show_sources(self) -> None:
        """The From cells of the studies that came from a PACS; the column shows while there are any."""
        worklist = self.window.worklist
        uids = [s.study_uid for s in self.cases.studies]
        for uid in uids:
            if self.arrivals.is_remote(uid):
                worklist.model.set_source(uid, self.arrivals.source_text(uid), self.arrivals.source_tip(uid))
        worklist.show_sources(self.arrivals.any_remote(uids))

    # --- the listener -----------------------------------------------------------------------------------------
    def start_listener(self) -> bool:
        """Receive pushed studies (servers.toml's [medview] AE title, host and port); False (said) when it
        cannot listen."""
        if self.listener is not None:
            return True
        from medview.core.net import StorageListener, local_settings

        try:
            local = local_settings()
            listener = StorageListener(local, self.cache, on_study=self._bridge.study.emit,
                                       on_stored=lambda uid, _new: self._bridge.stored.emit(uid))
            listener.start()
        except MedviewError as exc:
            self.listener_error = str(exc)
            log.warning("listener not started: %s", exc)
            self.say(f"Not receiving pushed studies: {exc}", 12000)
            self.changed.emit()
            return False
        self.listener, self.listener_error = listener, ""
        self.say(f"Receiving pushed studies as {local.ae_title} on {local.listen_host}:{listener.port}")
        self.changed.emit()
        return True

    def stop_listener(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
            self.changed.emit()

    def listener_text(self) -> str:
        """One line for the panel: whether and where pushed studies are received."""
        if self.listener is not None:
            local = self.listener.local
            return f"Receiving pushed studies as {local.ae_title} on {local.listen_host}:{self.listener.port}"
        if self.listener_error:
            return f"Not receiving pushed studies: {self.listener_error}"
        return "Not receiving pushed studies (File → Preferences turns the listener on)"

    def _pushed_instance(self, study_uid: str) -> None:
        arrival = self.arrivals.studies.get(study_uid)
        if arrival is not None and arrival.running:
            return  # a C-MOVE of this station's own retrieve: the retrieve brings it in
        self.arrivals.pushed(study_uid)
        self._rescan(study_uid)

    def _pushed_study(self, arrival) -> None:
        current = self.arrivals.studies.get(arrival.study_uid)
        if current is not None and current.running:
            return
        self.arrivals.pushed(arrival.study_uid, arrival.calling_ae)
        self._rescan(arrival.study_uid, now=True)
        keep = {s.study_uid for s in self.cases.studies} | {arrival.study_uid}
        try:
            self.cache.enforce_limit(self.listener.local.cache_max_bytes if self.listener else 0, keep=keep)
        except OSError as exc:
            log.warning("PACS cache not trimmed: %s", exc)
        n = arrival.received
        self.say(f"Received {n} instance{'s' if n != 1 else ''} from {arrival.calling_ae}", 4000)

    # --- sending the review -----------------------------------------------------------------------------------
    def send_review_now(self) -> None:
        """Ctrl+Shift+S: the open case's review to a server (asked which, when there are several)."""
        case = self.cases.case
        if case is None:
            self.say("No case is open: nothing to send")
            return
        names, problem = self.servers()
        if not names:
            self.say(problem or "No PACS to send to: add one to servers.toml under MEDVIEW_HOME", 10000)
            return
        default = self.settings.get("pacs_send_server") or self.default_server(names)
        name = names[0] if len(names) == 1 else choose_server(self.window, names, default)
        if name:
            self.send_review(case.study_uid, name)

    def send_review(self, study_uid: str, server_name: str) -> bool:
        """Send one case's review objects (made from the review database now) and query them back."""
        review = self.window.review
        study = self.cases.find_study(study_uid)
        store = review.store if review is not None else None
        if study is None or store is None:
            self.say("Review not sent: " + ("the review database is not available" if store is None
                                            else "the case is not in the worklist"), 8000)
            return False
        if review is not None:
            review.note_done()  # a note being typed is part of what is sent
        from medview.core.review.export import collect_cases

        try:
            records = collect_cases([study], store)
        except MedviewError as exc:
            self.say(f"Review not sent: {exc}", 8000)
            return False
        if not records:
            self.say("Nothing to send: this case has no review yet (a verdict, a key image, a note or a sign-off)")
            return False
        self._send_queue.append((server_name, records))
        self._next_send()
        return True

    def sending(self) -> bool:
        return self._send is not None or bool(self._send_queue)

    def _next_send(self) -> None:
        if self._send is not None or not self._send_queue:
            return
        server_name, records = self._send_queue.pop(0)

        def work(task: PacsTask):
            from medview.core.net import resolve_server
            from medview.core.net.share import send_review

            return send_review(resolve_server(server_name), records, progress=task.progress, cancel=task.cancelled)

        self.say(f"Sending the review to {server_name}…", 4000)
        self._send = self._task(work, self._sent, self._send_failed)

    def _sent(self, result) -> None:
        self._send = None
        self.last_send = result
        self.say(result.summary(), 12000)
        self.sent.emit(result)
        self._next_send()

    def _send_failed(self, reason: str) -> None:
        self._send = None
        self.last_send = reason
        self.say(f"Review not sent: {reason}", 12000)
        self.sent.emit(reason)
        self._next_send()

    def _signed_off(self, study_uid: str) -> None:
        """The reader's rule: the review of every case they sign off goes to their server."""
        if not self.settings.get("pacs_send_on_sign_off"):
            return
        server = self.settings.get("pacs_send_server")
        if server:
            self.send_review(study_uid, server)
        else:
            self.say("Review not sent on sign-off: no server chosen in File → Preferences", 8000)

    # --- preferences ------------------------------------------------------------------------------------------
    def preferences(self) -> dict:
        prefs = self.settings.preferences()
        return {"listen": prefs.pacs_listen, "send_on_sign_off": prefs.pacs_send_on_sign_off,
                "send_server": prefs.pacs_send_server}

    def apply_preferences(self, listen: bool, send_on_sign_off: bool, send_server: str) -> None:
        self.settings.update(pacs_listen=bool(listen), pacs_send_on_sign_off=bool(send_on_sign_off),
                             pacs_send_server=send_server or "")
        if listen:
            self.start_listener()
        else:
            self.stop_listener()
        self.listener_error = "" if not listen else self.listener_error
        self.changed.emit()

    def preferences_box(self, parent: QWidget):
        from medview.qt.pacs.pacs_panel import PacsPreferences

        return PacsPreferences(self, parent)

    # --- threads ----------------------------------------------------------------------------------------------
    def _task(self, work, on_done, on_failed, noted=None) -> PacsTask:
        task = PacsTask(work, self)
        if noted is not None:
            task.noted.connect(noted, Qt.ConnectionType.QueuedConnection)
        task.done.connect(on_done, Qt.ConnectionType.QueuedConnection)
        task.failed.connect(on_failed, Qt.ConnectionType.QueuedConnection)
        task.finished.connect(lambda t=task: self._old.remove(t) if t in self._old else None)
        self._old.append(task)
        task.start()
        return task

    def shutdown(self) -> None:
        """The window closes: the listener stops, transfers are cancelled and waited for."""
        self.stop_listener()
        self._retrieve_queue.clear()
        self._send_queue.clear()
        for task in list(self._old):
            task.cancel()
        for task in list(self._old):
            task.wait(15000)
        if self._scan is not None:
            self._scan.cancel()
            self._scan.wait(5000)
        if self.panel is not None:
            self.panel.close()


def _instances(study: Study) -> list:
    return [inst for s in study.series for inst in s.instances]
