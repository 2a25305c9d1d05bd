"""The one walk from a stack to its images (`Stack.frames`, through `ImageView.shown_frame`) as the window, the
AI and the review use it, on a stack with a multi-frame image in the middle: image 3 of the stack is frame 2 of
the second instance."""

from __future__ import annotations

from types import SimpleNamespace

from medview.core.dicom.model import InstanceInfo, Series, Stack, Study
from medview.core.dicom.source import SourceRef
from medview.qt.ai.ai_controller import AiController
from medview.qt.review.review_controller import ReviewController
from medview.qt.viewer.image_view import ImageView

STUDY, SERIES = "1.2", "1.2.1"
IMAGES = [("1.2.3.0", 0), ("1.2.3.1", 0), ("1.2.3.1", 1), ("1.2.3.1", 2), ("1.2.3.2", 0)]


def _stack() -> Stack:
    instances = [InstanceInfo(SourceRef(f"/data/{i}.dcm"), f"1.2.3.{i}", "1.2.840.10008.5.1.4.1.1.12.1", STUDY,
                              SERIES, modality="XA", frames=frames) for i, frames in enumerate((1, 3, 1))]
    return Stack(SERIES, "XA", "", 1, instances, [None] * 3)


def _window_showing(stack: Stack, index: int) -> SimpleNamespace:
    """What the controllers read of the window: a viewer on `stack` at `index`, its pixels not loaded yet."""
    viewer = SimpleNamespace(stack=stack, display=None, state=SimpleNamespace(index=index))
    viewer.shown_frame = lambda: ImageView.shown_frame(viewer)  # the viewer's own walk, on this stand-in
    return SimpleNamespace(window=SimpleNamespace(viewer=viewer))


def test_the_ai_and_the_review_name_the_image_shown_the_same_way():
    stack = _stack()
    for index, (sop, frame) in enumerate(IMAGES):
        fake = _window_showing(stack, index)
        assert AiController.shown_key(fake) == (sop, frame)
        assert ReviewController.current_image(fake) == (sop, frame, SERIES)
    beyond = _window_showing(stack, len(IMAGES))
    assert AiController.shown_key(beyond) is None
    assert ReviewController.current_image(beyond) == ("1.2.3.0", 0, SERIES)  # as before: the first image


def test_show_instance_goes_to_the_frame_of_a_multiframe_image(qtbot, monkeypatch):
    from medview.qt.main_window import MainWindow
    from medview.qt.settings_store import configure_settings
    from medview.qt.viewer.viewports import LoadedStack

    configure_settings()  # the window's layout is saved in this test's MEDVIEW_HOME
    w = MainWindow()
    qtbot.addWidget(w)
    stack = _stack()
    study = Study(STUDY, "P1", "Test^Patient", "20240101", "", [Series(SERIES, "XA", "", 1, [stack])])
    w.studies, w.case, w.stacks = [study], study, [LoadedStack(stack)]
    opened = []
    monkeypatch.setattr(w, "open_stack", lambda k, index=0: opened.append((k, index)))
    assert w.find_study(STUDY) is study and w.find_study("9.9") is None
    assert w.show_instance(STUDY, "1.2.3.1", 2) and opened[-1] == (0, 3)
    assert w.show_instance(STUDY, "1.2.3.1", 7) and opened[-1] == (0, 3)  # past its last frame: the last
    assert w.show_instance(STUDY, "1.2.3.2") and opened[-1] == (0, 4)
    assert not w.show_instance(STUDY, "1.2.3.99") and not w.show_instance("9.9", "1.2.3.1")
    assert len(opened) == 3
