"""The app on compressed studies holding files that crash the native decoders (real reproducers): the
stack loads its other slices, the failed-files panel names the file with the reason, the AI worker reports
its radiograph as an error, and the app goes on."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from medview.qt.worklist.worklist_model import COL_AI, COL_ID
from tests.core.decoder_reproducers import jpeg2000_crash, jpeg_ls_crash
from tests.factories import copy_testdata

UID = "1.2.826.0.1.3680043.8.498"


def _folder(tmp_path):
    """P1: an MR series of five JPEG-LS slices, the middle one crashing its decoder; P2: a radiograph whose
    JPEG 2000 stream crashes its decoder (the AI worker decodes it)."""
    folder = tmp_path / "studies"
    for i in range(5):
        tags = dict(PatientID="P1", StudyInstanceUID=f"{UID}.1", SeriesInstanceUID=f"{UID}.1.1",
                    SOPInstanceUID=f"{UID}.1.1.{i + 1}", InstanceNumber=i + 1,
                    ImagePositionPatient=[0.0, 0.0, float(i)])
        if i == 2:
            jpeg_ls_crash(folder / f"mr{i}.dcm", **tags)
        else:
            copy_testdata("MR_small_jpeg_ls_lossless.dcm", folder / f"mr{i}.dcm", **tags)
    jpeg2000_crash(folder / "dx.dcm", PatientID="P2", Modality="DX", StudyInstanceUID=f"{UID}.2",
                   SeriesInstanceUID=f"{UID}.2.1", SOPInstanceUID=f"{UID}.2.1.1")
    return folder


def _ai_cell(window, patient_id: str) -> str:
    proxy = window.worklist.proxy
    for row in range(proxy.rowCount()):
        if proxy.index(row, COL_ID).data() == patient_id:
            return proxy.index(row, COL_AI).data() or ""
    return ""


def test_a_crashing_decoder_costs_one_file_and_the_app_goes_on(qtbot, tmp_path):
    from medview.app import create_app

    folder = _folder(tmp_path)
    _app, w = create_app(["medview", str(folder)])
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: len(w.cases.studies) == 2, timeout=60000)
    w.cases.open_case(w.cases.find_study(f"{UID}.1"))

    def slices_loaded() -> bool:
        viewport = w.reading_state()["viewports"][0]
        return viewport["study_uid"] == f"{UID}.1" and viewport["frames"] == 5 and viewport["loaded"] == 4

    qtbot.waitUntil(lambda: slices_loaded() and not w.cases.busy(), timeout=60000)
    failed = w.findChild(QWidget, "failed_files")
    crashed = (str(folder / "mr2.dcm"), "the JPEG-LS decoder crashed on this file")
    qtbot.waitUntil(lambda: crashed in failed.entries(), timeout=30000)  # reported as the load's outcome arrives

    # the AI worker decodes the radiograph in the pool too: an error for that case, not the end of the app
    qtbot.waitUntil(lambda: _ai_cell(w, "P2").startswith("error"), timeout=90000)
    w.cases.open_case(w.cases.find_study(f"{UID}.2"))
    qtbot.waitUntil(lambda: w.reading_state()["viewports"][0]["study_uid"] == f"{UID}.2" and not w.cases.busy(),
                    timeout=60000)
    crashed = (str(folder / "dx.dcm"), "the JPEG 2000 decoder crashed on this file")
    qtbot.waitUntil(lambda: crashed in failed.entries(), timeout=30000)
    assert w.reading_state()["viewports"][0]["loaded"] == 0


def test_the_ai_takes_the_open_radiograph_from_the_viewer_instead_of_decoding_it_again(qtbot, tmp_path,
                                                                                       monkeypatch):
    """pydicom-data's RG1_J2KR.dcm, a real frontal chest CR in JPEG 2000: the viewer decodes it for the screen;
    the AI worker (its model held back until then) scores the open case with that frame, its frame reader
    starting no decode of its own, and measures it."""
    import threading

    import pydicom.data

    import medview.core.inference.bundle as bundle_module
    from medview.app import create_app
    from medview.core.dicom.decoder_pool import BACKGROUND
    from medview.core.dicom.frame_reader import FrameReader
    from medview.qt.ai.ai_controller import ERROR_TEXT, FLAGGED, NOT_FLAGGED

    folder = tmp_path / "cr"
    folder.mkdir()
    (folder / "RG1_J2KR.dcm").write_bytes(open(pydicom.data.get_testdata_file("RG1_J2KR.dcm"), "rb").read())
    started = []
    real_start = FrameReader._start
    def start(self, key, *rest):
        if self._priority == BACKGROUND:  # the AI worker's reader (thumbnails decode for the screen)
            started.append(key)
        return real_start(self, key, *rest)

    monkeypatch.setattr(FrameReader, "_start", start)
    shown = threading.Event()
    real_load = bundle_module.load_bundle

    def load_when_shown(path):
        if threading.current_thread() is not threading.main_thread():  # the AI worker's thread
            shown.wait(60)
        return real_load(path)

    monkeypatch.setattr(bundle_module, "load_bundle", load_when_shown)
    _app, w = create_app(["medview", str(folder)])
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.reading_state()["viewports"][0]["loaded"] == 1, timeout=60000)
    shown.set()
    qtbot.waitUntil(lambda: _ai_cell(w, "9RG1").startswith((FLAGGED, NOT_FLAGGED, ERROR_TEXT)), timeout=90000)
    assert _ai_cell(w, "9RG1").startswith(NOT_FLAGGED)  # CTR 0.47: measured, below the threshold
    assert started == []
