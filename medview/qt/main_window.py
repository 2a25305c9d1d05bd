"""The main window: worklist | series strip + viewports | findings, wired to the action registry.

Layout (splitters saved and restored): the worklist on the left, the series strip above the viewports in
the centre (`ViewportGrid`, drawing the reading session), on the right the findings panel (`findings`) with
the review panel (`review`) under it; both panels are handed to the constructor by `create_app`, whose
controllers fill them. The status bar holds the pixel value,
the progress bar (`progress`) with its cancel button, and the failed-files count that opens the failed-files
dock. The window lays out and draws; the case controller (`medview.qt.cases`) opens what the reader chose
(`paths_chosen`, a worklist row, a thumbnail) in it, and the reading controller (`medview.qt.reading`) sends the
reading keys to the session and draws it.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from medview.core.dicom.model import Study
from medview.core.dicom.readable import readable_date, readable_name
from medview.core.reading import ReadingSession
from medview.core.settings import Settings
from medview.core.viewing.state import TOOLS
from medview.qt.actions import GROUPS, ActionRegistry, install_key_router
from medview.qt.ai.findings_panel import FindingsPanel
from medview.qt.failed_files import FailedFilesPanel
from medview.qt.settings_store import app_settings
from medview.qt.viewer.image_view import ImageView
from medview.qt.viewer.series_strip import SeriesStrip
from medview.qt.viewer.viewports import StackLoads, ViewportGrid
from medview.qt.worklist.worklist_model import objects_text
from medview.qt.worklist.worklist_panel import WorklistPanel

if TYPE_CHECKING:
    from medview.qt.ai.ai_controller import AiController
    from medview.qt.ai.incoming import IncomingController
    from medview.qt.cases import CaseController
    from medview.qt.pacs.pacs_controller import PacsController
    from medview.qt.reading import ReadingController
    from medview.qt.review.review_controller import ReviewController

log = logging.getLogger(__name__)
SMALL_SCREEN_WIDTH = 1500  # below this the first window is also maximised
WORKLIST_SHARE = 0.42  # of the window's width on first start: the columns and a readable description
APP_NAME = "medview"  # ends every window title (X11 and Wayland then add no second " — medview" of their own)


def window_title(case: Study | None, paths: list[str]) -> str:
    """"<case or folder> — medview": the open case (patient, ID, date), else the opened folder, else the name.

    Qt adds the application's display name to a title on X11 and Wayland unless the title already ends with it
    (QPlatformWindow::formatWindowTitle), so the title ends with it on every platform and it is never said twice.
    """
    if case is not None:
        parts = (readable_name(case.patient_name), case.patient_id, readable_date(case.study_date))
        subject = " · ".join(x for x in parts if x) or "(no patient name)"
    elif paths:
        first = os.path.basename(os.path.normpath(paths[0])) or paths[0]
        subject = first if len(paths) == 1 else f"{first} and {len(paths) - 1} more"
    else:
        return APP_NAME
    return f"{subject} — {APP_NAME}"


def no_images_text(study: Study) -> str:
    """What the viewer says for a case of objects without pixels (an RT Plan, a report) instead of a blank image."""
    what = f"{objects_text(study)} without pixel data" if study.objects else "no instances"
    return f"No images in this case\n\nIt holds {what}:\nlisted in the worklist, not shown as images."


class MainWindow(QMainWindow):
    paths_chosen = Signal(list)  # list[str]: folders or files the reader chose to open (dialog, drop, recent)
    shutting_down = Signal()  # the window is closing: owners of other workers (the AI) stop them now
    worklist_chosen = Signal()  # the reader showed or folded the worklist (Ctrl+L, Ctrl+F): their choice stands

    def __init__(self, parent=None, settings: Settings | None = None, *, findings: FindingsPanel | None = None,
                 review_panel: QWidget | None = None):
        """`findings`: the AI controller's findings panel (objectName `findings`); a window built without the AI
        gets an empty one ("No model loaded"). `review_panel`: the review controller's panel (objectName
        `review`), under the findings panel; none without review."""
        super().__init__(parent)
        self.settings = settings or app_settings()
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks)
        self.registry = ActionRegistry(self, settings=self.settings)
        self.router = install_key_router(self.registry)

        self.worklist = WorklistPanel(self)
        self.strip = SeriesStrip(self)
        self.reading = ReadingSession()
        self.loads = StackLoads(self)
        self.viewports = ViewportGrid(self.reading, self.loads, self)
        self.viewports.setMinimumWidth(280)
        self.findings: FindingsPanel = findings if findings is not None else FindingsPanel()
        self.review_panel: QWidget | None = review_panel
        centre = QWidget(self)
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(2)
        cl.addWidget(self.strip)
        cl.addWidget(self.viewports, 1)
        # over the first view for a case without images (e.g. only an RT Plan): words instead of a blank view
        first_view = self.viewports.cells[0].view
        self.no_images = QLabel(first_view)
        self.no_images.setObjectName("no_images")
        self.no_images.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_images.setWordWrap(True)
        self.no_images.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.no_images.hide()
        first_view.resized.connect(lambda: self.no_images.setGeometry(first_view.rect()))
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("main_splitter")
        self.splitter.addWidget(self.worklist)
        self.splitter.addWidget(centre)
        self.right_splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.right_splitter.setObjectName("right_splitter")
        self.right_splitter.addWidget(self.findings)
        if review_panel is not None:
            self.right_splitter.addWidget(review_panel)
        self.right_splitter.setStretchFactor(0, 1)
        self.right_splitter.setStretchFactor(1, 1)
        self.splitter.addWidget(self.right_splitter)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self._worklist_width = 0  # its width before Ctrl+L folded it away
        self._default_split = True  # until a saved layout is restored: shares of the width on first show
        self._saved_split: QByteArray | None = None  # a restored splitter state, applied again on first show
        self._fill_area = None  # the screen area a first window fills, frame included, once it is shown
        self.splitter.setChildrenCollapsible(True)
        self.setCentralWidget(self.splitter)

        self.failed = FailedFilesPanel(self)
        self.failed_dock = QDockWidget("Failed files", self)
        self.failed_dock.setObjectName("failed_dock")
        self.failed_dock.setWidget(self.failed)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.failed_dock)
        self.failed_dock.hide()

        self._build_status_bar()
        self._build_menus_and_toolbar()
        self._wire_actions()

        self.worklist.filter_done.connect(lambda: self.viewer.setFocus(Qt.FocusReason.OtherFocusReason))
        self.viewports.cursor_text.connect(self.cursor_label.setText)
        self.viewports.message.connect(lambda text: self.statusBar().showMessage(text, 3000))
        self.viewports.cine_changed.connect(self.registry.action("view.cine").setChecked)
        self.viewports.invert_changed.connect(self.registry.action("view.invert").setChecked)
        self.loads.errors.connect(self.failed.add)
        self.loads.note.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.failed.changed.connect(self._failed_changed)

        # the controllers create_app builds around the window (None in a window built without them): tests and
        # scripts reach them here
        self.reading_controller: ReadingController | None = None
        self.cases: CaseController | None = None
        self.review: ReviewController | None = None
        self.ai: AiController | None = None
        self.incoming: IncomingController | None = None
        self.pacs: PacsController | None = None
        self.restore_layout()
        self.setFocusProxy(self.viewer)  # keys start on the image, not in the filter field
        self.viewer.setFocus(Qt.FocusReason.OtherFocusReason)
        if self.reading.protocols.message:  # the reader's hanging-protocol file cannot be used: the defaults are
            QTimer.singleShot(0, self._protocol_problem)

    def _protocol_problem(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Hanging protocols", self.reading.protocols.message,
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("protocol_problem")
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()

    @property
    def viewer(self) -> ImageView:
        """The active viewport's view (object name `viewer`): every key acts on it."""
        return self.viewports.active_view

    @property
    def stack_index(self) -> int:
        """Which of the series strip's stacks (the open case's) the active viewport shows (-1: none of them, e.g.
        the prior's)."""
        viewport = self.reading.viewport
        if viewport.study is None or viewport.study is not self.reading.case:
            return -1
        return next((k for k, stack in enumerate(self.strip.stacks) if stack is viewport.stack), -1)

    # --- building ---------------------------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.cursor_label = QLabel("", self)
        self.cursor_label.setObjectName("pixel_value")
        self.cursor_label.setMinimumWidth(200)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("progress")
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cancel_button.hide()
        self.failed_button = QPushButton("", self)
        self.failed_button.setObjectName("failed_button")
        self.failed_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.failed_button.setFlat(True)
        self.failed_button.setStyleSheet("color: #ffab91;")
        self.failed_button.clicked.connect(lambda: self.failed_dock.setVisible(not self.failed_dock.isVisible()))
        self.failed_button.hide()
        bar.addPermanentWidget(self.failed_button)
        bar.addPermanentWidget(self.cursor_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    def _build_menus_and_toolbar(self) -> None:
        a = self.registry.action
        menus: dict[str, object] = {}
        for group in GROUPS:
            menus[group] = self.menuBar().addMenu(group)
        for action_id, spec in self.registry.specs.items():
            menus[spec.group].addAction(a(action_id))
            if action_id == "file.open_files":
                self.recent_menu = menus["File"].addMenu("Open recent")
        self._refresh_recent_menu()
        # Preferences (model, device, thresholds): enabled by the AI controller, which opens the dialog
        self.preferences_action = QAction("Preferences…", self)
        self.preferences_action.setObjectName("app.preferences")
        self.preferences_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.preferences_action.setEnabled(False)
        menus["File"].insertAction(a("app.quit"), self.preferences_action)
        self.tools = QActionGroup(self)
        for t in TOOLS:
            self.tools.addAction(a(f"tool.{t}"))
        a("tool.window").setChecked(True)
        tb = self.addToolBar("Tools")
        tb.setObjectName("toolbar")
        tb.setMovable(False)
        for action_id, label in (("file.open", "Open"), ("tool.window", "W/L"), ("tool.pan", "Pan"),
                                 ("tool.zoom", "Zoom"), ("tool.distance", "Distance"), ("tool.ellipse", "Ellipse"),
                                 ("view.fit", "Fit"), ("view.invert", "Invert"), ("view.rotate", "Rotate"),
                                 ("view.flip", "Flip"), ("view.cine", "Cine")):
            action = a(action_id)
            action.setIconText(label)
            tb.addAction(action)
        self.fps = QSpinBox(self)
        self.fps.setObjectName("cine_fps")
        self.fps.setRange(1, 120)
        self.fps.setSuffix(" fps")
        self.fps.setValue(self.viewer.cine_fps)
        self.fps.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.fps.setToolTip("Cine frame rate")
        self.fps.valueChanged.connect(self.viewports.set_cine_fps)
        self.fps.editingFinished.connect(lambda: self.viewer.setFocus())
        tb.addWidget(self.fps)
        tb.addSeparator()
        tb.addAction(a("help.shortcuts"))
        a("help.shortcuts").setIconText("Keys")

    def _wire_actions(self) -> None:
        """The keys of the window's own widgets; the reading keys are the reading controller's."""
        r = self.registry
        r.connect("file.open", self.open_folder_dialog)
        r.connect("file.open_files", self.open_files_dialog)
        r.connect("app.quit", self.close)
        r.connect("worklist.filter", self.filter_worklist)
        r.connect("view.worklist", lambda _checked=False: self.show_worklist(not self.worklist_shown()))
        self.splitter.splitterMoved.connect(lambda *_: r.action("view.worklist").setChecked(self.worklist_shown()))
        r.connect("window.file", lambda: self.viewer.window_from_file())
        for n in range(1, 10):
            r.connect(f"window.preset{n}", lambda n=n: self.viewer.preset(n))
        r.connect("view.invert", lambda _checked=False: self.viewer.toggle_invert())
        r.connect("view.annotations", self.viewports.cycle_annotations)
        r.connect("view.fit", lambda: self.viewer.fit())
        r.connect("view.zoom_in", lambda: self.viewer.zoom_in())
        r.connect("view.zoom_out", lambda: self.viewer.zoom_out())
        r.connect("view.rotate", lambda: self.viewer.rotate())
        r.connect("view.flip", lambda: self.viewer.flip())
        r.connect("view.cine", lambda _checked=False: r.action("view.cine").setChecked(self.viewer.toggle_cine()))
        r.connect("view.fullscreen", lambda checked=False: self.showFullScreen() if checked else self.showNormal())
        r.connect("measure.delete", lambda: self.viewer.delete_selected())
        r.connect("help.shortcuts", self.show_shortcuts)
        r.connect("help.keymap", self.show_keymap)
        r.connect("help.about", self.show_about)

    def reading_state(self) -> dict:
        """What the reader has on screen as plain JSON-able data, for tests and scripts (SPEC section 7)."""
        for viewport in self.reading.viewports:
            viewport.loaded = self.loads.entry(viewport.stack).loaded if viewport.stack is not None else 0
        return self.reading.reading_state()

    # --- opening ----------------------------------------------------------------------------------------------
    def open_folder_dialog(self) -> None:
        start = self.recent()[0] if self.recent() else os.path.expanduser("~")
        path = QFileDialog.getExistingDirectory(self, "Open a folder of studies", start)
        if path:
            self.paths_chosen.emit([path])

    def open_files_dialog(self) -> None:
        start = self.recent()[0] if self.recent() else os.path.expanduser("~")
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open DICOM files, a .zip or a DICOMDIR", start, "DICOM, zip, DICOMDIR (*);;Zip archives (*.zip)"
        )
        if files:
            self.paths_chosen.emit(files)

    def show_no_images(self, study: Study | None) -> None:
        """The message over the (empty) viewer for a case without images; None takes it away."""
        if study is None:
            self.no_images.hide()
            return
        self.no_images.setText(no_images_text(study))
        self.no_images.setGeometry(self.no_images.parentWidget().rect())
        self.no_images.show()
        self.no_images.raise_()

    def show_title(self, case: Study | None, paths: list[str]) -> None:
        self.setWindowTitle(window_title(case, paths))

    def show_progress(self, text: str, done: int, total: int) -> None:
        self.progress.setRange(0, max(0, total))
        self.progress.setValue(done)
        self.progress.setFormat(text)  # an indeterminate bar (total 0) shows no text in most styles
        self.progress.setToolTip(text)
        self.progress.show()
        self.cancel_button.show()

    def hide_progress(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()

    # --- status and dialogs -----------------------------------------------------------------------------------
    def _failed_changed(self, n: int) -> None:
        self.failed_button.setText(f"⚠ {n} file{'s' if n != 1 else ''} failed")
        self.failed_button.setVisible(n > 0)

    def show_shortcuts(self) -> None:
        from medview.qt.dialogs.shortcuts_dialog import ShortcutsDialog

        dialog = ShortcutsDialog(self.registry, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    def show_about(self) -> None:
        from medview.qt.dialogs.about import show_about

        show_about(self)

    def show_keymap(self) -> None:
        from medview.qt.dialogs.keymap_dialog import KeymapDialog

        dialog = KeymapDialog(self.registry, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    # --- drag and drop ------------------------------------------------------------------------------------------
    def dragEnterEvent(self, event):  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802 - Qt API
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.paths_chosen.emit(paths)

    # --- recent locations ---------------------------------------------------------------------------------------
    def recent(self) -> list[str]:
        return list(self.settings.get("recent"))

    def add_recent(self, path: str) -> None:
        path = os.path.abspath(path)
        self.settings.add_recent(path)
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = self.recent()
        for path in items:
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _c=False, p=path: self.paths_chosen.emit([p]))
        self.recent_menu.setEnabled(bool(items))

    # --- geometry -----------------------------------------------------------------------------------------------
    def restore_layout(self) -> None:
        layout = {name: QByteArray(value) for name, value in self.settings.window_layout().items()}
        geometry, state, splitter = layout.get("geometry"), layout.get("state"), layout.get("splitter")
        if geometry is not None and self.restoreGeometry(geometry) and not self._on_a_screen():
            self._fill_primary_screen()
        elif geometry is None:
            self._fill_primary_screen()
        if state is not None:
            self.restoreState(state)
        if splitter is not None and self.splitter.restoreState(splitter):
            self._default_split = False
            # applied again on first show: restored before the window has its size, the splitter squeezes the
            # worklist to a 36 px strip (seen on every second start) and gives the width to the image
            self._saved_split = splitter
        self.failed_dock.hide()

    def save_layout(self) -> None:
        self.settings.set_window_layout(geometry=self.saveGeometry().data(), state=self.saveState().data(),
                                        splitter=self.splitter.saveState().data())

    def worklist_shown(self) -> bool:
        return self.splitter.sizes()[0] > 0

    def show_worklist(self, shown: bool) -> None:
        """Ctrl+L: the worklist folds away so that the image gets its width (a small screen), and comes back as
        wide as it was. Page Down, N and Enter go on through the worklist's order while it is folded."""
        self.worklist_chosen.emit()
        self.place_worklist(shown)

    def place_worklist(self, shown: bool) -> None:
        """The worklist folded away (its width kept) or back as wide as it was, whoever asked."""
        sizes = self.splitter.sizes()
        if shown and sizes[0] == 0:
            width = self._worklist_width or int(sum(sizes) * WORKLIST_SHARE)
            sizes[0], sizes[1] = width, max(sizes[1] - width, 0)
        elif not shown and sizes[0] > 0:
            self._worklist_width = sizes[0]
            sizes[0], sizes[1] = 0, sizes[1] + sizes[0]
            self.viewer.setFocus()
        self.splitter.setSizes(sizes)
        self.registry.action("view.worklist").setChecked(self.worklist_shown())

    def filter_worklist(self) -> None:
        """Ctrl+F: a folded worklist comes back to be filtered."""
        self.show_worklist(True)
        self.worklist.focus_filter()

    def _on_a_screen(self) -> bool:
        """The saved position is usable only if its centre lies on a screen that still exists."""
        centre = self.frameGeometry().center()
        return any(screen.availableGeometry().contains(centre) for screen in QGuiApplication.screens())

    def _fill_primary_screen(self) -> None:
        """First start (or a saved place on a screen that is gone): the window fills the screen's free area, as
        worklist, image and findings side by side need every pixel. A normal window, not a maximised one, so the
        reader can make it smaller; `save_layout` keeps their size from then on. A small screen (a laptop) is
        maximised as well."""
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        self.setGeometry(area)
        self._fill_area = area
        if area.width() < SMALL_SCREEN_WIDTH:
            self.setWindowState(self.windowState() | Qt.WindowState.WindowMaximized)

    def _fit_frame_in_area(self) -> None:
        """The window manager's frame (title bar, borders) goes inside the free area too, not past its edges."""
        area, self._fill_area = self._fill_area, None
        if area is None or self.isMaximized() or self.isFullScreen():
            return
        frame, inner = self.frameGeometry(), self.geometry()
        if inner.size() == area.size() and frame != inner:  # not resized meanwhile (by the reader or a script)
            self.setGeometry(area.adjusted(inner.left() - frame.left(), inner.top() - frame.top(),
                                           inner.right() - frame.right(), inner.bottom() - frame.bottom()))

    def showEvent(self, event):  # noqa: N802 - Qt API
        super().showEvent(event)
        if self._fill_area is not None:
            QTimer.singleShot(0, self._fit_frame_in_area)  # the frame is known once the window manager has it
        saved, self._saved_split = self._saved_split, None
        if saved is not None:
            self.splitter.restoreState(saved)
        if self._default_split:
            self._default_split = False
            total = max(self.splitter.width(), 600)
            # the worklist wide enough for its columns and a readable description; the viewer keeps the most
            self.splitter.setSizes([int(total * WORKLIST_SHARE), int(total * 0.42), int(total * 0.16)])
        self.registry.action("view.worklist").setChecked(self.worklist_shown())

    def closeEvent(self, event):  # noqa: N802 - Qt API
        self.save_layout()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop every worker and wait for it: no thread outlives the window."""
        self.shutting_down.emit()
        app = QGuiApplication.instance()
        if app is not None:
            app.removeEventFilter(self.router)
        self.viewports.stop()
        self.strip.stop()
        self.loads.shutdown()
