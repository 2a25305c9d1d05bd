"""Preferences (File → Preferences…): the AI model folder, the device, the reader's threshold per finding, and
the PACS controller's part (`PacsPreferences`: the listener, sending the review on sign-off).

Stored in the settings (`medview.core.settings`; QSettings under MEDVIEW_HOME: SPEC section 7) by the
`AiController`, which applies them: a new threshold re-evaluates flagged state from the results in hand
(nothing is run again); a new model or device restarts the worker. The dialog holds no state of its own.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medview.core.settings import DEVICES

DEVICE_NAMES = {"auto": "Automatic (CUDA, then Apple MPS, then CPU)", "cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)",
                "mps": "Apple GPU (MPS)"}


class PreferencesDialog(QDialog):
    """Model folder, device, thresholds with "reset to the bundle's"; OK / Apply hand them to the controller."""

    def __init__(self, controller, parent: QWidget | None = None, *, pacs=None) -> None:
        """`controller`: the AI controller (model, device, thresholds); `pacs`: the PACS controller, whose part
        (the listener, sending on sign-off, the servers) the dialog shows where there is one."""
        super().__init__(parent)
        from medview.resources import bundled_model_path

        self.setObjectName("preferences")
        self.setWindowTitle("Preferences")
        self.controller = controller
        bundle = controller.bundle

        in_force = controller.model_path()  # --model, the stored preference or the bundled model
        self.model_edit = QLineEdit("" if in_force == str(bundled_model_path()) else in_force)
        self.model_edit.setObjectName("preferences-model")
        self.model_edit.setPlaceholderText(f"the bundled model ({bundled_model_path()})")
        self.model_edit.setToolTip("A model bundle folder or a single TorchScript file; empty: the bundled model")
        browse = QPushButton("Folder…")
        browse.setToolTip("Choose a model bundle folder (configs/metadata.json, models/model.ts)")
        browse.clicked.connect(self._browse)
        browse_file = QPushButton("File…")
        browse_file.setToolTip("Choose a single TorchScript file that carries its metadata.json")
        browse_file.clicked.connect(self._browse_file)
        bundled = QPushButton("Bundled model")
        bundled.setToolTip("Use the model that ships with medview")
        bundled.clicked.connect(self.model_edit.clear)
        row = QHBoxLayout()
        row.addWidget(self.model_edit, 1)
        row.addWidget(browse)
        row.addWidget(browse_file)
        row.addWidget(bundled)

        self.device_box = QComboBox()
        self.device_box.setObjectName("preferences-device")
        for device in DEVICES:
            self.device_box.addItem(DEVICE_NAMES[device], device)
        self.device_box.setCurrentIndex(DEVICES.index(controller.device()))

        model_box = QGroupBox("AI model")
        form = QFormLayout(model_box)
        form.addRow("Model", row)
        form.addRow("Device", self.device_box)
        in_use = QLabel(f"In use: {bundle.name} {bundle.version} ({controller.model_path()})" if bundle is not None
                        else f"No model in use. {controller.model_error}".strip())
        in_use.setWordWrap(True)
        form.addRow("", in_use)

        self.spins: dict[str, QDoubleSpinBox] = {}
        thresholds_box = QGroupBox("Thresholds: at or above, a finding is flagged")
        tform = QFormLayout(thresholds_box)
        if bundle is None:
            tform.addRow(QLabel("The thresholds can be set once a model is loaded."))
        else:
            current = controller.thresholds()
            for label in bundle.labels:
                spin = QDoubleSpinBox()
                spin.setObjectName(f"threshold-{label}")
                spin.setRange(0.0, 1.0)
                spin.setDecimals(3)
                spin.setSingleStep(0.01)
                spin.setValue(current.get(label, bundle.thresholds[label]))
                spin.setToolTip(f"The bundle's threshold: {bundle.thresholds[label]:.3f}")
                self.spins[label] = spin
                tform.addRow(f"{label.replace('_', ' ')} (bundle: {bundle.thresholds[label]:.2f})", spin)
            reset = QPushButton("Reset to the bundle's")
            reset.setObjectName("preferences-reset-thresholds")
            reset.clicked.connect(self.reset_thresholds)
            tform.addRow("", reset)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Apply
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        self.buttons = buttons
        self.pacs_box = pacs.preferences_box(self) if pacs is not None else None
        layout = QVBoxLayout(self)
        layout.addWidget(model_box)
        layout.addWidget(thresholds_box)
        if self.pacs_box is not None:
            layout.addWidget(self.pacs_box)
        layout.addWidget(buttons)
        self.resize(680, self.sizeHint().height())

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a model bundle folder", self.model_edit.text())
        if path:
            self.model_edit.setText(path)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a TorchScript model file", self.model_edit.text(),
                                              "TorchScript models (*.ts *.pt *.zip);;All files (*)")
        if path:
            self.model_edit.setText(path)

    def reset_thresholds(self) -> None:
        bundle = self.controller.bundle
        for label, spin in self.spins.items():
            spin.setValue(bundle.thresholds[label])

    def values(self) -> tuple[str | None, str, dict[str, float]]:
        model = self.model_edit.text().strip() or None
        return model, self.device_box.currentData(), {label: spin.value() for label, spin in self.spins.items()}

    def apply(self) -> None:
        if self.pacs_box is not None:
            self.pacs_box.apply()
        self.controller.apply_preferences(*self.values())

    def accept(self) -> None:  # noqa: D102
        self.apply()
        super().accept()
