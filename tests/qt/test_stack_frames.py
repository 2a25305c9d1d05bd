"""The one walk from a stack to its images (`Stack.frames`, through `ImageView.shown_frame`) as the window, the
AI and the review use it, on a stack with a multi-frame image in the middle: image 3 of the stack is frame 2 of
the second instance."""

from __future__ import annotations

import functools

import pytest

from medview.core.dicom.model import InstanceInfo, Series, Stack, Study
from medview.core.dicom.source import SourceRef
from medview.qt.ai import ai_controller
from tests.factories import write_image
from tests.qt.helpers import IdleWorker

STUDY, SERIES = "1.2", "1.2.1"
IMAGES = [("1.2.3.0", 0), ("1.2.3.1", 0), ("1.2.3.1", 1), ("1.2.3.1", 2), ("1.2.3.2", 0)]


def _study(folder) -> Study:
    """One XA stack of three files (1, 3 and 1 frames) written to `folder`, in the order given."""
    instances = []
    for i, frames in enumerate((1, 3, 1)):
        path = write_image(folder / f"{i}.dcm", modality="XA", study_uid=STUDY, series_uid=SERIES,
                           sop_uid=f"1.2.3.{i}", frames=frames, instance_number=i + 1, seed=i)
        instances.append(InstanceInfo(SourceRef(str(path)), f"1.2.3.{i}", "1.2.840.10008.5.1.4.1.1.12.1", STUDY,
                                      SERIES, modality="XA", frames=frames))
    stack = Stack(SERIES, "XA", "", 1, instances, [None] * 3)
    return Study(STUDY, "P1", "Test^Patient", "20240101", "", [Series(SERIES, "XA", "", 1, [stack])])


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The app's window (its case, AI and review controllers) with the study open and all its images loaded
    (so that what is shown follows each step at once); the AI idle."""
    from medview.app import create_app

    monkeypatch.setattr(ai_controller, "AiController",
                        functools.partial(ai_controller.AiController, worker_factory=IdleWorker))
    _app, w = create_app(["medview"])
    qtbot.addWidget(w)
    w.cases.set_studies([_study(tmp_path)])
    qtbot.waitUntil(lambda: w.reading_state()["viewports"][0]["loaded"] == len(IMAGES), timeout=15000)
    yield w
    w.close()


def test_the_ai_and_the_review_name_the_image_shown_the_same_way(window):
    for index, (sop, frame) in enumerate(IMAGES):
        window.cases.open_stack(0, index)
        assert window.viewer.state.index == index
        assert window.ai.shown_key() == (sop, frame)
        assert window.review.current_image() == (sop, frame, SERIES)
    window.viewer.state.index = len(IMAGES)  # past the stack's last image
    assert window.ai.shown_key() is None
    assert window.review.current_image() == ("1.2.3.0", 0, SERIES)  # as before: the first image


def test_show_instance_goes_to_the_frame_of_a_multiframe_image(window):
    cases = window.cases
    study = cases.studies[0]
    assert cases.find_study(STUDY) is study and cases.find_study("9.9") is None

    def shown() -> tuple[int, str, int]:
        viewport = window.reading_state()["viewports"][0]
        return window.viewer.state.index, viewport["sop_instance_uid"], viewport["frame"]

    assert cases.show_instance(STUDY, "1.2.3.1", 2) and shown() == (3, "1.2.3.1", 2)
    assert cases.show_instance(STUDY, "1.2.3.2") and shown() == (4, "1.2.3.2", 0)
    assert cases.show_instance(STUDY, "1.2.3.1", 7) and shown() == (3, "1.2.3.1", 2)  # past its last frame: the last
    assert not cases.show_instance(STUDY, "1.2.3.99") and not cases.show_instance("9.9", "1.2.3.1")
    assert shown() == (3, "1.2.3.1", 2)  # nothing found: the image stays
