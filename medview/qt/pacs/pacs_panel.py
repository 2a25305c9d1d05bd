"""The PACS panel (Ctrl+P, object name `pacs`): search a PACS and retrieve into the worklist, by keyboard.

Type in any field and press Enter: the study-level query runs (`pacs_search`) and the results table
(`pacs_results`) takes the keys; the arrows move, Enter (or a double click) retrieves the study and opens it
as soon as its first image is here; Retrieve (`pacs_retrieve`) takes every selected row; Cancel
(`pacs_cancel`) stops the transfer, keeping what arrived. Esc closes the panel; transfers go on. The panel
holds no state of its own: the `PacsController` searches, retrieves and says where each study is.

Also here: `PacsPreferences`, the PACS part of File → Preferences (servers, listener, send on sign-off).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medview.core.dicom.readable import readable_date, readable_name
from medview.core.errors import MedviewError
from medview.core.home import home_file
from medview.core.net.search import build_query, here_text
from medview.core.net.servers import SETTINGS_FILE

COLUMNS = ("Patient", "ID", "Date", "Mod.", "Description", "Im.", "Here")
COL_PATIENT, COL_ID, COL_DATE, COL_MODALITY, COL_DESCRIPTION, COL_IMAGES, COL_HERE = range(len(COLUMNS))
HERE_COLOURS = {"here": "#a5d6a7", "part": "#ffcc80", "retr": "#90caf9", "fail": "#ef9a9a"}
EXAMPLE = """[servers.pacs]
url = "dicom://ORTHANC@pacs.example.org:4242"   # or http(s)://host/dicom-web"""


class PacsPanel(QDialog):
    """Search fields over the results; a progress bar with Cancel; where pushed studies are received."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("pacs")
        self.setWindowTitle("PACS — search and retrieve")
        self.controller = controller
        self.matches: list = []
        self._server_shown = ""
        self._focus_results = False

        self.server = QComboBox()
        self.server.setObjectName("pacs_server")
        self.server.setEditable(True)  # a name of servers.toml, or a dicom:// or http(s):// URL typed in
        self.server.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.server.setToolTip(f"A server of {home_file(SETTINGS_FILE)}, or a URL: dicom://AE@host:port, "
                               "http(s)://host/dicom-web")
        self.server.setMinimumWidth(220)
        self.patient_id = self._field("pacs_patient_id", "Patient ID")
        self.patient_name = self._field("pacs_patient_name", "Name (Family, Given; beginning is enough)")
        self.date_from = self._field("pacs_date_from", "YYYY-MM-DD")
        self.date_to = self._field("pacs_date_to", "YYYY-MM-DD")
        for edit, which in ((self.date_from, "From"), (self.date_to, "Until")):
            edit.setToolTip(f"{which} this date: YYYY-MM-DD, YYYYMMDD, today or yesterday; empty: any")
            edit.setMinimumWidth(edit.fontMetrics().horizontalAdvance("YYYY-MM-DD") + 40)  # room for ✕
        self.modality = self._field("pacs_modality", "CR, CT")
        self.modality.setToolTip("One modality: CR, DX, CT, MR…")
        self.modality.setMinimumWidth(self.modality.fontMetrics().horizontalAdvance("CR, CT") + 40)
        self.modality.setMaximumWidth(self.modality.minimumWidth() + 20)
        self.accession = self._field("pacs_accession", "Accession number")
        self.search_button = self._button("pacs_search", "Search", self.search)
        self.search_button.setToolTip("Enter in any field")
        self.server.lineEdit().returnPressed.connect(self.search)

        fields = QGridLayout()
        fields.addWidget(QLabel("Server"), 0, 0)
        fields.addWidget(self.server, 0, 1, 1, 3)
        fields.addWidget(QLabel("Patient ID"), 1, 0)
        fields.addWidget(self.patient_id, 1, 1)
        fields.addWidget(QLabel("Name"), 1, 2)
        fields.addWidget(self.patient_name, 1, 3)
        fields.addWidget(QLabel("Date"), 2, 0)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("–"))
        dates.addWidget(self.date_to)
        fields.addLayout(dates, 2, 1)
        fields.addWidget(QLabel("Modality"), 2, 2)
        more = QHBoxLayout()
        more.addWidget(self.modality)
        more.addWidget(QLabel("Accession"))
        more.addWidget(self.accession, 1)
        fields.addLayout(more, 2, 3)
        fields.addWidget(self.search_button, 2, 4)
        fields.setColumnStretch(1, 1)
        fields.setColumnStretch(3, 2)

        self.results = QTableWidget(0, len(COLUMNS))
        self.results.setObjectName("pacs_results")
        self.results.setHorizontalHeaderLabels(COLUMNS)
        self.results.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results.setAlternatingRowColors(True)
        self.results.setWordWrap(False)
        self.results.verticalHeader().hide()
        self.results.verticalHeader().setDefaultSectionSize(22)
        header = self.results.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_DESCRIPTION, QHeaderView.ResizeMode.Stretch)
        self.results.activated.connect(lambda index: self.retrieve_rows([index.row()], open_it=True))
        self.results.itemSelectionChanged.connect(self._update_buttons)

        self.status = QLabel("")
        self.status.setObjectName("pacs_status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setObjectName("pacs_progress")
        self.progress.setTextVisible(True)
        self.progress.setMinimumWidth(self.progress.fontMetrics().horizontalAdvance("000/000 instances") + 40)
        self.progress.hide()
        self.retrieve_button = self._button("pacs_retrieve", "Retrieve", self.retrieve_selected)
        self.retrieve_button.setToolTip("Retrieve the selected studies into the worklist (Enter on a study: "
                                        "retrieve and open it)")
        self.cancel_button = self._button("pacs_cancel", "Cancel retrieve", controller.cancel_retrieve)
        self.cancel_button.hide()
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.progress)
        row.addWidget(self.cancel_button)
        row.addWidget(self.retrieve_button)
        self.listener = QLabel("")
        self.listener.setObjectName("pacs_listener")
        self.listener.setStyleSheet("color: #9e9e9e;")

        layout = QVBoxLayout(self)
        layout.addLayout(fields)
        layout.addWidget(self.results, 1)
        layout.addLayout(row)
        layout.addWidget(self.listener)
        QShortcut(QKeySequence("Ctrl+F"), self, activated=self.focus_first_field)
        controller.searched.connect(self.show_results)
        controller.changed.connect(self.refresh)
        controller.message.connect(self._message)
        self.load_servers()
        self.refresh()
        self.resize(860, 440)

    def _field(self, name: str, placeholder: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setObjectName(name)
        edit.setPlaceholderText(placeholder)
        edit.setClearButtonEnabled(True)
        edit.returnPressed.connect(self.search)
        return edit

    def _button(self, name: str, text: str, slot) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAutoDefault(False)  # Enter belongs to the fields and the results, not to a button
        button.setDefault(False)
        button.clicked.connect(lambda _checked=False: slot())
        return button

    # --- servers and fields -----------------------------------------------------------------------------------
    def load_servers(self) -> None:
        """The servers of servers.toml, the last one used first; says how to add one when there is none."""
        names, problem = self.controller.servers()
        typed = self.server.currentText()
        self.server.clear()
        self.server.addItems(names)
        default = self.controller.default_server(names)
        if default:
            self.server.setCurrentText(default)
        elif typed:
            self.server.setCurrentText(typed)
        if problem:
            self.status.setText(problem)
        elif not names:
            self.status.setText(f"No PACS configured: add one to {home_file(SETTINGS_FILE)}, e.g.\n{EXAMPLE}\n"
                                "or type a dicom://AE@host:port or http(s):// URL as the server.")

    def focus_first_field(self) -> None:
        self.patient_id.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.patient_id.selectAll()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.load_servers()
        self.refresh()

    # --- search ----------------------------------------------------------------------------------------------
    def search(self) -> bool:
        """Enter in a field: the query as typed; a field that cannot be used is said, nothing is sent."""
        server = self.server.currentText().strip()
        if not server:
            self.status.setText("Choose a server first (or type a dicom:// or http(s):// URL).")
            return False
        try:
            query = build_query(self.patient_id.text(), self.patient_name.text(), self.date_from.text(),
                                self.date_to.text(), self.modality.text(), self.accession.text())
        except MedviewError as exc:
            self.status.setText(f"Not searched: {exc}")
            return False
        if not self.controller.search(server, query):
            self.status.setText("A search is running; wait for its answer.")
            return False
        self._server_shown = server
        self._focus_results = True
        self.search_button.setEnabled(False)
        self.status.setText(f"Searching {server}…")
        return True

    def show_results(self, matches) -> None:
        self.search_button.setEnabled(True)
        if isinstance(matches, str):
            self.status.setText(f"Search failed: {matches}")
            return
        self.matches = list(matches)
        self.results.setRowCount(len(self.matches))
        for row, m in enumerate(self.matches):
            cells = (readable_name(m.patient_name), m.patient_id, readable_date(m.study_date), "/".join(m.modalities),
                     m.description, "" if m.instances is None else str(m.instances), "")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if col == COL_IMAGES:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.results.setItem(row, col, item)
        self.refresh()
        n = len(self.matches)
        self.status.setText(f"{n} stud{'y' if n == 1 else 'ies'} on {self._server_shown}"
                            + (": ↑↓ choose, Enter retrieves and opens" if n else ""))
        if n and self._focus_results:
            self.results.setFocus(Qt.FocusReason.OtherFocusReason)
            self.results.selectRow(0)
        self._focus_results = False

    # --- retrieve --------------------------------------------------------------------------------------------
    def selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.results.selectionModel().selectedRows()})

    def retrieve_selected(self) -> None:
        rows = self.selected_rows() or ([self.results.currentRow()] if self.results.currentRow() >= 0 else [])
        self.retrieve_rows(rows, open_it=len(rows) == 1)

    def retrieve_rows(self, rows: list[int], open_it: bool) -> None:
        matches = [self.matches[r] for r in rows if 0 <= r < len(self.matches)]
        if not matches:
            self.status.setText("Choose a study to retrieve.")
            return
        first = matches[0].study_uid if open_it else None
        self.controller.retrieve(self._server_shown or self.server.currentText().strip(), matches, first)
        n = len(matches)
        self.status.setText(f"Retrieving {n} stud{'y' if n == 1 else 'ies'}: "
                            + ("it opens as soon as its first image is here" if open_it
                               else "each joins the worklist as it arrives"))

    # --- redraw ----------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """The Here cells, the progress bar and the listener line, from the controller."""
        controller = self.controller
        for row, m in enumerate(self.matches):
            text = here_text(m.study_uid, m.instances, controller.cache, controller.arrivals)
            item = self.results.item(row, COL_HERE)
            if item is not None and item.text() != text:
                item.setText(text)
                item.setToolTip(text)
                colour = HERE_COLOURS.get(text[:4])
                item.setForeground(QColor(colour) if colour else QBrush())
        progress = controller.retrieve_progress()
        running = controller.retrieving()
        if progress is not None:
            _uid, done, total = progress
            self.progress.setRange(0, max(total, 0))
            self.progress.setValue(done)
            self.progress.setFormat(f"{done}/{total} instances" if total else "asking the PACS…")
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.listener.setText(controller.listener_text())
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.retrieve_button.setEnabled(bool(self.matches) and bool(self.selected_rows()))

    def _message(self, text: str) -> None:
        if self.isVisible():
            self.status.setText(text)


class PacsPreferences(QGroupBox):
    """File → Preferences: the PACS servers (added, changed, removed: `ServerList`), receive pushed studies (off
    by default), send the review on sign-off (off). Servers are written to servers.toml when the preferences
    are applied."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__("PACS", parent)
        self.setObjectName("preferences-pacs")
        self.controller = controller
        prefs = controller.preferences()
        names, problem = controller.servers()
        try:
            from medview.core.net import local_settings

            local = local_settings()
            where = f"as {local.ae_title} on {local.listen_host}:{local.listen_port}"
        except MedviewError as exc:
            where = f"(servers.toml: {exc})"
        self.servers = None
        if not problem:
            from medview.core.net.server_book import ServerBook
            from medview.qt.pacs.server_editor import ServerList

            self.servers = ServerList(ServerBook(), self)
            self.servers.changed.connect(self._servers_changed)
        self.listen = QCheckBox(f"Receive studies pushed by a PACS or modality ({where})")
        self.listen.setObjectName("preferences-pacs-listen")
        self.listen.setChecked(prefs["listen"])
        self.listen.setToolTip("They join the worklist as they arrive and are scored by the AI; flagged ones rise")
        self.send = QCheckBox("When a case is signed off, send its review (SR, key images, segmentations) to")
        self.send.setObjectName("preferences-pacs-send-on-sign-off")
        self.send.setChecked(prefs["send_on_sign_off"])
        self.server = QComboBox()
        self.server.setObjectName("preferences-pacs-send-server")
        self._offer_servers(names, prefs["send_server"])
        row = QHBoxLayout()
        row.addWidget(self.send)
        row.addWidget(self.server, 1)
        self.note = QLabel(problem or f"Servers are kept in {home_file(SETTINGS_FILE)} (medview's AE title and "
                           "port too); passwords and tokens are not.  Nothing is sent unless you press "
                           "Ctrl+Shift+S or tick the box above.")
        self.note.setObjectName("preferences-pacs-note")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #9e9e9e;")
        form = QFormLayout(self)
        if self.servers is not None:
            label = QLabel("Ser&vers")
            label.setBuddy(self.servers.list)
            form.addRow(label, self.servers)
        form.addRow(self.listen)
        form.addRow(row)
        form.addRow(self.note)

    def _offer_servers(self, names: list[str], chosen: str) -> None:
        self.server.clear()
        self.server.addItems(names)
        if chosen in names:
            self.server.setCurrentText(chosen)
        self.send.setEnabled(bool(names))
        self.server.setEnabled(bool(names))

    def _servers_changed(self) -> None:
        self._offer_servers(self.servers.book.names(), self.server.currentText())

    def apply(self) -> None:
        if self.servers is not None:
            try:
                where = self.servers.save()
            except MedviewError as exc:
                self.note.setText(f"Servers not saved: {exc}")
                self.controller.say(f"PACS servers not saved: {exc}", 12000)
            else:
                if where:
                    self.controller.say(f"PACS servers saved; the secret typed is kept {where}", 8000)
        self.controller.apply_preferences(self.listen.isChecked(), self.send.isChecked() and self.server.isEnabled(),
                                          self.server.currentText())
