"""The PACS servers in File → Preferences: a list (`preferences-pacs-servers`) with Add, Edit and Remove, and
the form of one server (`server_form`). The servers, their checks and where secrets go are
`medview.core.net.server_book.ServerBook`; nothing is written until the preferences are applied.

Keys in the list: Insert adds, Enter or F2 edits, Delete removes. In the form, Enter is OK: a server that
cannot be used is said in the form (`server-error`), which stays open.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medview.core.errors import MedviewError
from medview.core.net.server_book import ServerBook, ServerEntry, os_keyring

RETRIEVE_CHOICES = (("get", "C-GET"), ("move", "C-MOVE to medview's listener"))
AUTH_CHOICES = (("none", "None"), ("basic", "User name and password"), ("bearer", "Bearer token"))
ERROR_COLOUR = "#ef9a9a"
NOTE_COLOUR = "#9e9e9e"


def secret_destination() -> str:
    """Where a secret typed now would go, in words."""
    if os_keyring() is not None:
        return "the OS keyring"
    return "a file under medview's folder that only you can read (no OS keyring here)"


class ServerForm(QDialog):
    """Name, URL, retrieve (DIMSE), TLS, CA file, authentication; OK puts the server into the book."""

    def __init__(self, book: ServerBook, name: str | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("server_form")
        self.setWindowTitle("Edit PACS server" if name else "Add PACS server")
        self.book = book
        self.replacing = name
        entry = book.get(name) if name else None
        entry = entry or ServerEntry("", "")

        self.name = self._line("server-name", entry.name, "e.g. pacs")
        self.url = self._line("server-url", entry.url, "dicom://AE@host:port or https://host/dicom-web")
        self.url.setToolTip("DIMSE: dicom://CALLED_AE@host:port; DICOMweb: http(s)://host:port/path")
        self.retrieve = self._combo("server-retrieve", RETRIEVE_CHOICES, entry.retrieve)
        self.retrieve.setToolTip("C-GET brings the study on this connection; C-MOVE asks the PACS to send it to "
                                 "medview's listener (the PACS must know medview's AE title and port)")
        self.tls = QCheckBox("TLS (the server's certificate is verified)")
        self.tls.setObjectName("server-tls")
        self.tls.setChecked(entry.tls)
        self.dimse_tls = entry.tls  # the reader's choice for DIMSE, kept while a DICOMweb URL is typed
        self.tls.toggled.connect(lambda on: setattr(self, "dimse_tls", on) if self.tls.isEnabled() else None)
        self.ca_file = self._line("server-ca-file", entry.ca_file, "the system's certificate authorities")
        self.ca_file.setToolTip("A PEM file of the certificate authority that signed the server's certificate")
        browse = QPushButton("Browse…")
        browse.setAutoDefault(False)
        browse.clicked.connect(self._browse_ca)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_file, 1)
        ca_row.addWidget(browse)
        self.auth = self._combo("server-auth", AUTH_CHOICES, entry.auth)
        self.username = self._line("server-username", entry.username, "")
        self.secret = self._line("server-secret", "", "")
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.stored_where = entry.secret_where() if entry.auth != "none" else ""
        self.secret_note = QLabel("")
        self.secret_note.setObjectName("server-secret-note")
        self.secret_note.setWordWrap(True)
        self.secret_note.setStyleSheet(f"color: {NOTE_COLOUR};")
        self.error = QLabel("")
        self.error.setObjectName("server-error")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {ERROR_COLOUR};")

        form = QFormLayout()
        form.addRow("&Name", self.name)
        form.addRow("&URL", self.url)
        form.addRow("&Retrieve by", self.retrieve)
        form.addRow("", self.tls)
        ca_label = QLabel("&CA file")
        ca_label.setBuddy(self.ca_file)  # the row holds a layout: its mnemonic needs a buddy of its own
        form.addRow(ca_label, ca_row)
        form.addRow("&Authentication", self.auth)
        form.addRow("User na&me", self.username)
        self.secret_label = QLabel("&Password")
        self.secret_label.setBuddy(self.secret)
        form.addRow(self.secret_label, self.secret)
        form.addRow("", self.secret_note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.url.textChanged.connect(self._follow_kind)
        self.auth.currentIndexChanged.connect(self._follow_kind)
        self._follow_kind()
        self.resize(560, self.sizeHint().height())

    def _line(self, name: str, text: str, placeholder: str) -> QLineEdit:
        edit = QLineEdit(text)
        edit.setObjectName(name)
        edit.setPlaceholderText(placeholder)
        return edit

    def _combo(self, name: str, choices, current: str) -> QComboBox:
        box = QComboBox()
        box.setObjectName(name)
        for value, text in choices:
            box.addItem(text, value)
        box.setCurrentIndex(max(0, box.findData(current)))
        return box

    def _browse_ca(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Certificate authority (PEM)", self.ca_file.text(),
                                              "PEM certificates (*.pem *.crt *.cer);;All files (*)")
        if path:
            self.ca_file.setText(path)

    def entry(self) -> ServerEntry:
        """The server as typed (checked by the book on OK)."""
        current = self.book.get(self.replacing) if self.replacing else None
        return ServerEntry(self.name.text(), self.url.text(), retrieve=self.retrieve.currentData(),
                           tls=self.tls.isChecked(), ca_file=self.ca_file.text().strip(),
                           auth=self.auth.currentData(), username=self.username.text(),
                           extra=dict(current.extra) if current is not None else {})

    def _follow_kind(self) -> None:
        """DIMSE: retrieve and TLS; DICOMweb: TLS by the scheme, and authentication."""
        dimse = self.entry().dimse
        scheme = self.url.text().strip().lower().partition("://")[0]
        web = scheme in ("http", "https")
        self.retrieve.setEnabled(not web)
        self.tls.setEnabled(not web)
        self.tls.setChecked(scheme == "https" if web else self.dimse_tls)
        self.auth.setEnabled(not dimse)
        if dimse and self.auth.currentData() != "none":
            self.auth.setCurrentIndex(0)
        kind = self.auth.currentData()
        self.username.setEnabled(kind == "basic")
        self.secret.setEnabled(kind != "none")
        self.secret_label.setText("&Token" if kind == "bearer" else "&Password")
        if kind == "none":
            self.secret_note.setText("DIMSE has no passwords: the PACS knows medview by its AE title (and TLS)"
                                     if dimse else "")
        else:
            what = "token" if kind == "bearer" else "password"
            kept = f"Stored {self.stored_where}; leave empty to keep it. " if self.stored_where else ""
            self.secret_note.setText(f"{kept}A {what} typed here goes to {secret_destination()}, "
                                     "never into servers.toml.")

    def accept(self) -> None:  # noqa: D102 - OK: checked by the book, said here when it cannot be used
        try:
            self.book.put(self.entry(), self.secret.text(), self.replacing)
        except MedviewError as exc:
            self.error.setText(f"Not saved: {exc}")
            return
        self.secret.clear()
        super().accept()


class ServerList(QWidget):
    """The servers of the book, one a row ("name — URL"), with Add…, Edit…, Remove."""

    changed = Signal()  # the server names changed (the send-to box follows)

    def __init__(self, book: ServerBook, parent: QWidget | None = None):
        super().__init__(parent)
        self.book = book
        self.form: ServerForm | None = None
        self.list = QListWidget()
        self.list.setObjectName("preferences-pacs-servers")
        self.list.setToolTip("Insert adds a server, Enter or F2 edits the one chosen, Delete removes it")
        self.list.installEventFilter(self)
        self.list.itemDoubleClicked.connect(lambda _item: self.edit_server())
        self.list.currentRowChanged.connect(lambda _row: self._update_buttons())
        self.add_button = self._button("preferences-pacs-add-server", "&Add…", self.add_server)
        self.edit_button = self._button("preferences-pacs-edit-server", "&Edit…", self.edit_server)
        self.remove_button = self._button("preferences-pacs-remove-server", "Re&move", self.remove_server)
        buttons = QVBoxLayout()
        for button in (self.add_button, self.edit_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.list.setMinimumHeight(self.list.fontMetrics().height() * 5)
        self.refresh()

    def _button(self, name: str, text: str, slot) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAutoDefault(False)  # Enter in the list edits, it does not close the preferences
        button.clicked.connect(lambda _checked=False: slot())
        return button

    def refresh(self, current: str | None = None) -> None:
        current = current if current is not None else self.current_name()
        self.list.clear()
        for entry in self.book.entries:
            item = QListWidgetItem(f"{entry.name} — {entry.url}")
            item.setData(Qt.ItemDataRole.UserRole, entry.name)
            item.setToolTip(entry.url + (f" (secret {entry.secret_where()})" if entry.secret_where() else ""))
            self.list.addItem(item)
        names = self.book.names()
        if names:
            self.list.setCurrentRow(names.index(current) if current in names else 0)
        self._update_buttons()

    def current_name(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _update_buttons(self) -> None:
        chosen = self.current_name() is not None
        self.edit_button.setEnabled(chosen)
        self.remove_button.setEnabled(chosen)

    def add_server(self) -> None:
        self._open_form(None)

    def edit_server(self) -> None:
        name = self.current_name()
        if name is not None:
            self._open_form(name)

    def remove_server(self) -> None:
        name = self.current_name()
        if name is None:
            return
        row = self.list.currentRow()
        self.book.remove(name)
        names = self.book.names()
        self.refresh(names[min(row, len(names) - 1)] if names else "")
        self.list.setFocus(Qt.FocusReason.OtherFocusReason)
        self.changed.emit()

    def _open_form(self, name: str | None) -> None:
        form = ServerForm(self.book, name, self)
        self.form = form

        def done(result: int) -> None:
            if result == QDialog.DialogCode.Accepted:
                self.refresh(form.entry().name.strip())
                self.changed.emit()
            self.form = None
            form.deleteLater()
            self.list.setFocus(Qt.FocusReason.OtherFocusReason)

        form.finished.connect(done)
        form.open()
        form.name.setFocus(Qt.FocusReason.OtherFocusReason)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if watched is self.list and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_F2):
                self.edit_server()
                return True
            if key == Qt.Key.Key_Insert or event.matches(QKeySequence.StandardKey.New):
                self.add_server()
                return True
            if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
                self.remove_server()
                return True
        return super().eventFilter(watched, event)

    def save(self) -> str:
        """servers.toml and the typed secrets written (MedviewError when they cannot be); where secrets went."""
        return self.book.save()
