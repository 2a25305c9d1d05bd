"""F1 / ?: the shortcut overview, generated from the action registry (so it is never out of date)."""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

from medview.core.dicom.pixels import MODALITY_UNITS, PRESETS
from medview.qt.actions import ActionRegistry


PRESET_PREFIX = "window.preset"


def presets_footnote() -> str:
    """How to read the preset names: level/width in the modality's units, and where there are none."""
    units = ", ".join(f"{mod} in {MODALITY_UNITS.get(mod, 'stored values')}" for mod in PRESETS)
    return (f"Presets are per modality, as level/width ({units}); on other modalities keys 1–9 leave the window "
            "as it is. 0 goes back to the file's own window.")


def overview_html(registry: ActionRegistry) -> str:
    preset_texts = {spec.text for action_id, spec in registry.specs.items() if action_id.startswith(PRESET_PREFIX)}
    groups: dict[str, list[tuple[str, str, bool]]] = {}
    for group, text, keys, enabled in registry.overview():
        if keys:
            groups.setdefault(group, []).append((text, keys, enabled))
    parts = ["<style>td{padding:2px 10px;} .k{font-weight:bold;color:#ffd54f;} .off{color:#777;}"
             " .note{color:#9e9e9e;}</style>"]
    for group, rows in groups.items():
        parts.append(f"<h3>{escape(group)}</h3><table>")
        for text, keys, enabled in rows:
            cls = "" if enabled else " class='off'"
            note = "" if enabled else " (not available yet)"
            parts.append(f"<tr{cls}><td class='k'>{escape(keys)}</td><td>{escape(text)}{note}</td></tr>")
        parts.append("</table>")
        if any(text in preset_texts for text, _, _ in rows):
            parts.append(f"<p class='note'>{escape(presets_footnote())}</p>")
    parts.append("<p>Mouse: wheel scrolls the stack (Ctrl+wheel zooms); the left button uses the tool; "
                 "middle drag pans; right drag zooms.</p>")
    return "".join(parts)


class ShortcutsDialog(QDialog):
    def __init__(self, registry: ActionRegistry, parent=None):
        super().__init__(parent)
        self.setObjectName("shortcuts_dialog")
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(620, 720)
        self.browser = QTextBrowser(self)
        self.browser.setHtml(overview_html(registry))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
