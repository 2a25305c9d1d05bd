"""ONE registry of the app's actions: names, default shortcuts (SPEC section 6), user overrides, conflicts.

Every menu entry, toolbar button, the shortcut overview (F1) and the keymap dialog are generated from
`SPECS`; user overrides are stored in the settings (`Settings.keymap`) only where they differ from the
defaults (frescobaldi's practice). Shortcuts use Qt.WindowShortcut on QActions owned by the main window, so
they work whichever panel has focus, while a dialog of its own (the keymap editor, a file dialog) keeps Esc
and Enter; `KeyRouter` stops item views, buttons and scroll bars from eating the registry's keys
(arrows, Home/End, Page Up/Down, Space, Enter) unless a text field is being edited.
The AI's and the review's actions are registered here too, disabled until their controllers attach a handler.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QEvent, QKeyCombination, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QKeySequenceEdit,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

from medview.core.settings import Settings
from medview.core.viewing.keymap import KeymapConflict, conflicts, overrides
from medview.qt.settings_store import app_settings


@dataclass(frozen=True)
class ActionSpec:
    id: str
    text: str
    keys: tuple[str, ...] = ()
    group: str = "View"
    tip: str = ""
    enabled: bool = True  # False until a controller attaches the handler
    checkable: bool = False


def _presets() -> list[ActionSpec]:
    """Keys 1-9; the text names the presets of each modality that has one, or says there is none (SPEC section
    6 binds all nine), so menus, the keymap dialog and the help all read the same."""
    from medview.core.dicom.pixels import PRESETS

    specs = []
    for n in range(1, 10):
        names = [f"{mod} {p[n - 1][0]} {p[n - 1][1].center:g}/{p[n - 1][1].width:g}"
                 for mod, p in PRESETS.items() if len(p) >= n]
        text = f"Window preset {n}" + (f" ({', '.join(names)})" if names else
                                         " (none yet for any modality: the window stays as it is)")
        specs.append(ActionSpec(f"window.preset{n}", text, (str(n),), "Window"))
    return specs


SPECS: list[ActionSpec] = [
    # File
    ActionSpec("file.open", "Open folder…", ("Ctrl+O",), "File", "a folder, a .zip or a DICOMDIR folder"),
    ActionSpec("file.open_files", "Open files…", (), "File", "DICOM files, a .zip or a DICOMDIR"),
    ActionSpec("file.export", "Export review…", ("Ctrl+E",), "File", enabled=False),
    ActionSpec("app.quit", "Quit", ("Ctrl+Q",), "File"),
    # Navigation
    ActionSpec("image.next", "Next image", ("Down",), "Navigate"),
    ActionSpec("image.prev", "Previous image", ("Up",), "Navigate"),
    ActionSpec("image.next10", "Ten images on", ("Shift+Down",), "Navigate"),
    ActionSpec("image.prev10", "Ten images back", ("Shift+Up",), "Navigate"),
    ActionSpec("image.first", "First image", ("Home",), "Navigate"),
    ActionSpec("image.last", "Last image", ("End",), "Navigate"),
    ActionSpec("series.next", "Next series", ("Right",), "Navigate"),
    ActionSpec("series.prev", "Previous series", ("Left",), "Navigate"),
    ActionSpec("case.next", "Next case", ("PgDown",), "Navigate"),
    ActionSpec("case.prev", "Previous case", ("PgUp",), "Navigate"),
    ActionSpec("case.next_unreviewed", "Next unreviewed case", ("N",), "Review", enabled=False),
    ActionSpec("worklist.filter", "Filter the worklist", ("Ctrl+F",), "Navigate"),
    # Window
    ActionSpec("window.file", "Window from the file", ("0",), "Window"),
    *_presets(),
    ActionSpec("view.invert", "Invert", ("I",), "Window", checkable=True),
    # View
    ActionSpec("view.annotations", "Corner text: full / minimal / off", ("Space",), "View"),
    ActionSpec("view.reset", "Reset view / cancel measurement", ("Esc",), "View"),
    ActionSpec("view.fit", "Fit", ("=",), "View"),
    ActionSpec("view.zoom_in", "Zoom in", ("+",), "View"),
    ActionSpec("view.zoom_out", "Zoom out", ("-",), "View"),
    ActionSpec("view.rotate", "Rotate 90° clockwise", ("Alt+R",), "View"),
    ActionSpec("view.flip", "Flip horizontally", ("Alt+F",), "View"),
    ActionSpec("view.cine", "Cine play / pause", ("C",), "View", checkable=True),
    ActionSpec("view.fullscreen", "Full screen", ("F11",), "View", checkable=True),
    ActionSpec("view.worklist", "Worklist shown / folded away (the image takes its width)", ("Ctrl+L",), "View",
               checkable=True),
    # Viewports (the reading session)
    ActionSpec("viewport.next", "Next viewport (it receives the keys)", ("Tab",), "View"),
    ActionSpec("viewport.prev", "Previous viewport", ("Shift+Tab",), "View"),
    ActionSpec("layout.1", "Layout 1×1", ("Ctrl+1",), "View"),
    ActionSpec("layout.2", "Layout 1×2 (side by side)", ("Ctrl+2",), "View"),
    ActionSpec("layout.3", "Layout 2×1 (one above the other)", ("Ctrl+3",), "View"),
    ActionSpec("layout.4", "Layout 2×2", ("Ctrl+4",), "View"),
    ActionSpec("reading.prior", "Compare with the previous study (again: back)", ("P",), "View"),
    ActionSpec("reading.link", "Link / unlink scrolling and window of the viewports", ("S",), "View"),
    ActionSpec("reading.link_zoom", "Link / unlink zoom and pan too (every viewport shows the same part)",
               ("Shift+S",), "View", "links scrolling and window as well where they were not"),
    ActionSpec("reading.mpr", "MPR: axial, coronal and sagittal of the series, crosshair linked (again: back)",
               ("M",), "View", "a click in a plane moves the crosshair; scrolling moves the plane"),
    ActionSpec("reading.slab_mode", "Slab of the plane: off, MIP, MinIP, average", ("Shift+M",), "View"),
    ActionSpec("reading.slab_thinner", "Thinner slab", ("[",), "View"),
    ActionSpec("reading.slab_thicker", "Thicker slab", ("]",), "View"),
    # Tools (left mouse button)
    ActionSpec("tool.window", "Window/level tool", ("W",), "Tools", checkable=True),
    ActionSpec("tool.pan", "Pan tool", ("T",), "Tools", checkable=True),
    ActionSpec("tool.zoom", "Zoom tool", ("Z",), "Tools", checkable=True),
    ActionSpec("tool.distance", "Distance tool", ("D",), "Tools", checkable=True),
    ActionSpec("tool.ellipse", "Ellipse ROI tool", ("E",), "Tools", checkable=True),
    ActionSpec("measure.delete", "Delete the selected measurement", ("Del",), "Tools"),
    # AI and review (attached by their controllers)
    ActionSpec("ai.heatmap", "AI heatmap on / off", ("H",), "AI", enabled=False, checkable=True),
    ActionSpec("ai.next_finding", "Next finding", ("F",), "AI", enabled=False),
    ActionSpec("review.agree", "Agree with the finding", ("A",), "Review", enabled=False),
    ActionSpec("review.disagree", "Disagree with the finding", ("X",), "Review", enabled=False),
    ActionSpec("review.key_image", "Key image on / off", ("K",), "Review", enabled=False),
    ActionSpec("review.sign_off", "Sign off and open the next unreviewed case", ("Return", "Enter"), "Review",
               enabled=False),
    ActionSpec("review.undo", "Undo the last review action", ("Ctrl+Z",), "Review", enabled=False),
    ActionSpec("review.note", "Write the case note (Esc saves and leaves it)", ("Ctrl+N",), "Review",
               enabled=False),
    # PACS (wired by the PACS controller)
    ActionSpec("pacs.panel", "PACS: search and retrieve studies…", ("Ctrl+P",), "PACS",
               "by patient, date, modality or accession; Enter searches, Enter on a study retrieves it", enabled=False),
    ActionSpec("pacs.send", "Send the case's review to a PACS (SR, key images, segmentations)", ("Ctrl+Shift+S",),
               "PACS", enabled=False),
    # Help
    ActionSpec("help.shortcuts", "Keyboard shortcuts", ("F1", "?"), "Help"),
    ActionSpec("help.keymap", "Change shortcuts…", (), "Help"),
    ActionSpec("help.about", "About medview (version, licences, research use only)", (), "Help"),
]

GROUPS = ("File", "Navigate", "Window", "View", "Tools", "AI", "Review", "PACS", "Help")


def portable(key: str | QKeySequence) -> str:
    """A key sequence in Qt's portable text form, the one form stored and compared."""
    seq = key if isinstance(key, QKeySequence) else QKeySequence(key)
    return seq.toString(QKeySequence.SequenceFormat.PortableText)


class ActionRegistry(QObject):
    """The QActions of `SPECS` on `window`, with their shortcuts (defaults + the user's overrides)."""

    def __init__(self, window: QWidget, specs: list[ActionSpec] | None = None, settings: Settings | None = None):
        super().__init__(window)
        self.window = window
        self.settings = settings or app_settings()
        self.specs = {s.id: s for s in (specs or SPECS)}
        self.defaults = {s.id: [portable(k) for k in s.keys] for s in self.specs.values()}
        self.actions: dict[str, QAction] = {}
        stored = self._stored_overrides()
        for spec in self.specs.values():
            action = QAction(spec.text, window)
            action.setObjectName(spec.id)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.setCheckable(spec.checkable)
            action.setEnabled(spec.enabled)
            if spec.tip:
                action.setToolTip(f"{spec.text}: {spec.tip}")
            action.setShortcuts([QKeySequence(k) for k in stored.get(spec.id, self.defaults[spec.id])])
            window.addAction(action)
            self.actions[spec.id] = action
        self._refresh_owned_keys()

    # --- handlers -----------------------------------------------------------------------------------------
    def action(self, action_id: str) -> QAction:
        return self.actions[action_id]

    def connect(self, action_id: str, handler) -> QAction:
        """Run `handler()` when the action triggers (checkable actions: handler(checked))."""
        action = self.actions[action_id]
        if action.isCheckable():
            action.triggered.connect(handler)
        else:
            action.triggered.connect(lambda _checked=False: handler())
        return action

    def attach(self, action_id: str, handler) -> QAction:
        """For the controllers (AI, review): connect `handler` and enable the action and its shortcut."""
        action = self.connect(action_id, handler)
        action.setEnabled(True)
        self._refresh_owned_keys()
        return action

    def set_enabled(self, action_id: str, enabled: bool) -> None:
        self.actions[action_id].setEnabled(enabled)
        self._refresh_owned_keys()

    # --- keymap -------------------------------------------------------------------------------------------
    def keys(self, action_id: str) -> list[str]:
        return [portable(k) for k in self.actions[action_id].shortcuts()]

    def bindings(self) -> dict[str, list[str]]:
        return {a: self.keys(a) for a in self.actions}

    def set_keys(self, action_id: str, keys: list[str]) -> None:
        """Bind `keys` to the action; refused with KeymapConflict when another action uses one of them."""
        keys = [portable(k) for k in keys if portable(k)]
        names = {a: s.text for a, s in self.specs.items()}
        problems = conflicts(self.bindings(), action_id, keys, names)
        if problems:
            raise KeymapConflict("; ".join(problems))
        self.actions[action_id].setShortcuts([QKeySequence(k) for k in keys])
        self._store()
        self._refresh_owned_keys()

    def reset_keys(self, action_id: str | None = None) -> None:
        """Back to the default shortcut(s) of one action, or of all; refused if a default is taken meanwhile."""
        for a in [action_id] if action_id else list(self.actions):
            self.actions[a].setShortcuts([])
        for a in [action_id] if action_id else list(self.actions):
            self.set_keys(a, self.defaults[a])

    def _stored_overrides(self) -> dict[str, list[str]]:
        out = {action: [portable(k) for k in keys if portable(k)]
               for action, keys in self.settings.keymap().items() if action in self.specs}
        # a stored keymap that conflicts (edited by hand, or defaults changed since) falls back to defaults
        merged = {a: out.get(a, d) for a, d in self.defaults.items()}
        for a in list(out):
            if conflicts(merged, a, out[a]):
                out.pop(a)
        return out

    def _store(self) -> None:
        self.settings.set_keymap(overrides(self.defaults, self.bindings()))

    # --- key routing --------------------------------------------------------------------------------------
    def _refresh_owned_keys(self) -> None:
        self.owned_keys = {
            k for a, act in self.actions.items() if act.isEnabled() for k in self.keys(a)
        }

    def owns(self, sequence: str) -> bool:
        return sequence in self.owned_keys

    def overview(self) -> list[tuple[str, str, str, bool]]:
        """(group, action text, keys as shown, enabled) in registry order: the F1 overview and the keymap."""
        rows = []
        order = {g: i for i, g in enumerate(GROUPS)}
        for a, spec in sorted(self.specs.items(), key=lambda item: order.get(item[1].group, len(order))):
            keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in self.actions[a].shortcuts())
            rows.append((spec.group, spec.text, keys, self.actions[a].isEnabled()))
        return rows


def is_text_entry(widget: QObject | None) -> bool:
    """A widget in which keys type text: there the registry's shortcuts step aside."""
    if isinstance(widget, QLineEdit):
        return not widget.isReadOnly()
    if isinstance(widget, (QTextEdit, QPlainTextEdit)):
        return not widget.isReadOnly()
    if isinstance(widget, (QAbstractSpinBox, QKeySequenceEdit)):
        return True
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return False


_SHIFT_MATTERS = {Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Home, Qt.Key.Key_End}


class KeyRouter(QObject):
    """Application event filter: the registry's keys win over item views, buttons and scroll bars.

    Qt asks the focus widget first (ShortcutOverride); a QTableView or QListView accepts arrows, Home/End,
    Page Up/Down and Space and so would eat them. Leaving the event unaccepted lets the shortcut run.
    """

    def __init__(self, registry: ActionRegistry):
        super().__init__(registry)
        self.registry = registry

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() != QEvent.Type.ShortcutOverride or not isinstance(obj, QWidget):
            return False
        if obj.window() is not self.registry.window:
            return False
        if is_text_entry(obj):
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Tab, Qt.Key.Key_Backtab):
                # Enter belongs to the field being edited (filter, note), not to "sign off"; Tab moves on from
                # it, as in any form, instead of moving the active viewport
                event.accept()
                return True
            return False
        combo = event.keyCombination()
        seq = portable(QKeySequence(combo))
        if not self.registry.owns(seq):
            # "+" and "?" come with Shift on most layouts; keypad keys carry the keypad flag
            mods = combo.keyboardModifiers() & ~Qt.KeyboardModifier.KeypadModifier
            if not (Qt.Key.Key_A <= combo.key() <= Qt.Key.Key_Z or combo.key() in _SHIFT_MATTERS):
                mods &= ~Qt.KeyboardModifier.ShiftModifier
            seq = portable(QKeySequence(QKeyCombination(mods, combo.key())))
        if self.registry.owns(seq):
            event.ignore()
            return True
        return False


def install_key_router(registry: ActionRegistry) -> KeyRouter:
    router = KeyRouter(registry)
    QApplication.instance().installEventFilter(router)
    return router
