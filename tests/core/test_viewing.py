"""Viewer logic without Qt: view state, the stack display mapping, measurement geometry, keymap rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medview.core.dicom import pixels
from medview.core.dicom.pixels import Window
from medview.core.viewing.display import StackDisplay
from medview.core.viewing.keymap import conflicts, overrides
from medview.core.viewing.measure import (
    Calibration,
    Measurement,
    MeasurementStore,
    calibration_for,
    distance,
    ellipse_mask,
    ellipse_stats,
    format_distance,
)
from medview.core.viewing.state import ViewState, drag_window, preset_window
from tests.factories import write_image


def test_view_state_clamps_cycles_and_resets():
    s = ViewState(count=5, initial_window=Window(40, 400), window=Window(-600, 1500))
    assert s.step(10) and s.index == 4
    assert not s.step(1)  # at the end: nothing changes
    assert s.go(-3) is True and s.index == 0
    s.cine_next(), s.go(4), s.cine_next()
    assert s.index == 0  # cine loops
    assert [s.cycle_annotations() for _ in range(3)] == ["minimal", "off", "full"]
    s.rotate_cw(), s.rotate_cw(), s.flip_horizontal(), s.zoom_by(2.0)
    s.invert = True
    s.go(3)
    s.reset()
    assert (s.window, s.rotation, s.flip_h, s.zoom, s.invert, s.index) == (Window(40, 400), 0, False, 1.0, False, 3)


def test_presets_follow_spec_section_6():
    assert preset_window("CT", 2) == ("lung", Window(-600, 1500))
    assert preset_window("ct", 4)[1] == Window(40, 80)
    assert preset_window("CT", 6) is None
    assert preset_window("CR", 1) is None


def test_drag_window_directions_and_floor():
    w = Window(40, 400)
    wider = drag_window(w, 100, 0, 4000)
    assert wider.width > 400 and wider.center == 40
    lower = drag_window(w, 0, 50, 4000)
    assert lower.center > 40 and lower.width == 400
    assert drag_window(w, -10_000, 0, 4000).width == 1.0


def test_calibration_is_honest():
    assert calibration_for("CT", (0.5, 0.7), None) == Calibration((0.5, 0.7))
    detector = calibration_for("CR", None, (0.2, 0.2))
    assert detector.spacing == (0.2, 0.2) and "detector" in detector.note
    assert format_distance(10.0, detector).endswith("(detector)")
    # Imager Pixel Spacing of a cross-sectional image is not a patient measure
    assert calibration_for("CT", None, (0.2, 0.2)).spacing is None
    none = calibration_for("OT", None, None)
    assert none.unit == "px" and format_distance(12.34, none) == "12.3 px (calibrated?)"


def test_distance_uses_row_and_column_spacing():
    cal = Calibration((0.5, 0.25))  # rows 0.5 mm apart, columns 0.25 mm
    assert distance((10, 10), (50, 40), cal) == pytest.approx(math.hypot(40 * 0.25, 30 * 0.5))
    assert distance((0, 0), (3, 4), Calibration(None)) == pytest.approx(5.0)


def test_ellipse_stats_on_known_values():
    values = np.zeros((40, 60), np.float32)
    values[:, 30:] = 100.0
    values[10:30, 5:25] = np.arange(20 * 20, dtype=np.float32).reshape(20, 20) % 7
    box = (5.0, 10.0, 20.0, 20.0)
    mask = ellipse_mask(values.shape, *box)
    inside = values[mask]
    stats = ellipse_stats(values, box, Calibration((0.5, 0.25)))
    assert stats.pixels == mask.sum() > 250
    assert stats.mean == pytest.approx(inside.mean()) and stats.sd == pytest.approx(inside.std())
    assert (stats.min, stats.max) == (inside.min(), inside.max())
    assert stats.area == pytest.approx(math.pi * (20 * 0.25 / 2) * (20 * 0.5 / 2)) and stats.area_unit == "mm²"
    right = ellipse_stats(values, (35, 5, 10, 10), Calibration(None))
    assert (right.mean, right.sd, right.area_unit) == (100.0, 0.0, "px²")
    assert ellipse_stats(values, (0, 0, 0.1, 0.1), Calibration(None)) is None


def test_measurement_store_keeps_per_image():
    store = MeasurementStore()
    a = store.add(("s", 0), Measurement("distance", (0, 0, 1, 1)))
    store.add(("s", 1), Measurement("ellipse", (0, 0, 4, 4)))
    store.update(("s", 0), a.id, (1, 1, 2, 2))
    assert store.on(("s", 0))[0].points == (1, 1, 2, 2)
    assert store.remove(("s", 0), a.id) and store.on(("s", 0)) == [] and store.count() == 1
    store.clear()
    assert store.count() == 0


def test_keymap_conflicts_and_overrides():
    bindings = {"next": ["Down"], "invert": ["I"], "help": ["F1", "?"]}
    names = {"invert": "Invert"}
    assert conflicts(bindings, "next", ["J"]) == []
    assert conflicts(bindings, "next", ["I"], names) == ["I is already used by “Invert”"]
    assert conflicts(bindings, "help", ["F1"]) == []  # its own key is no conflict
    assert conflicts(bindings, "next", ["J", "J"]) == ["J is given twice"]
    defaults = {"next": ["Down"], "invert": ["I"]}
    assert overrides(defaults, {"next": ["J"], "invert": ["I"]}) == {"next": ["J"]}


@pytest.mark.parametrize("signed,bits,rescale,photometric", [
    (True, 16, (1.0, -1024.0), "MONOCHROME2"),
    (False, 16, (2.0, -100.0), "MONOCHROME1"),
    (False, 8, None, "MONOCHROME2"),
])
def test_stack_display_matches_display_frame(tmp_path, signed, bits, rescale, photometric):
    """The viewer's path (stored data + lookup table) gives exactly the pipeline's display_frame."""
    path = write_image(tmp_path / "a.dcm", rows=24, cols=20, signed=signed, bits_allocated=bits,
                       rescale=rescale, window=(40, 400) if bits == 16 else None, photometric=photometric)
    ds = _read(path)
    stored = pixels.stored_frame(ds, 0)
    display = StackDisplay(stored[None].copy(), [(0, 0)], [ds])
    assert np.array_equal(display.display_values(0, None, display.file_inverted(0)), pixels.display_frame(ds))
    for window in (Window(-600, 1500), Window(100, 3)):
        for invert in (False, True):
            want = pixels.display_frame(ds, window=window, invert=invert)
            assert np.array_equal(display.display_values(0, window, invert), want)
    item = display.item_image(0, Window(40, 400), False)
    assert item.data.dtype in (np.uint8, np.uint16) and item.data.flags.c_contiguous
    assert np.shares_memory(item.data, display.array)  # no per-frame copy on the viewer's path
    row, col = 3, 5
    assert display.value_at(0, row, col) == pytest.approx(float(pixels.modality_lut(stored, ds)[row, col]))
    assert display.value_at(0, 99, 0) is None



def test_stack_display_transform_follows_a_header_read_later(tmp_path):
    """While an instance's header is still unread, its frames use the first known header's modality
    transform; once its own header arrives, its own (rescale here) is used, not the one remembered."""
    first = _read(write_image(tmp_path / "a.dcm", rows=8, cols=8, rescale=(2.0, -10.0)))
    second = _read(write_image(tmp_path / "b.dcm", rows=8, cols=8, rescale=(3.0, 5.0)))
    stored = np.stack([pixels.stored_frame(first, 0), pixels.stored_frame(second, 0)])
    display = StackDisplay(stored, [(0, 0), (1, 0)], [first, None])
    raw = float(stored[1, 2, 3])
    assert display.value_at(1, 2, 3) == pytest.approx(raw * 2.0 - 10.0)  # the stand-in's
    display.set_header(1, second)
    assert display.value_at(1, 2, 3) == pytest.approx(raw * 3.0 + 5.0)
    assert display.transform(1) is display.transform(1)  # kept, not read from the header again

def _read(path):
    from medview.core.dicom.source import SourceRef

    return pixels.read_dataset(SourceRef(str(path)))


def test_heatmap_strength_follows_the_score_up_to_the_threshold():
    from medview.core.viewing.heatmap import heatmap_strength

    assert heatmap_strength(0.99, 0.5) == 1.0 and heatmap_strength(0.5, 0.5) == 1.0  # flagged: full
    assert heatmap_strength(0.004, 0.5) == pytest.approx(0.008)  # clearly normal: almost nothing drawn
    assert heatmap_strength(0.45, 0.5) == pytest.approx(0.9)
    assert heatmap_strength(None, 0.5) == 0.0 and heatmap_strength(float("nan"), 0.5) == 0.0
    assert heatmap_strength(0.2, None) == 1.0 and heatmap_strength(0.2, 0.0) == 1.0


def test_bilinear_resize_keeps_corners_and_centres():
    from medview.core.viewing.heatmap import resize_bilinear

    a = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    out = resize_bilinear(a, (4, 4))
    assert out.shape == (4, 4) and out[0, 0] == 0.0 and out[-1, -1] == 3.0
    assert out[1:3, 1:3].mean() == pytest.approx(1.5)  # the centre is the mean of the four
    assert resize_bilinear(np.ones((1, 1), np.float32), (3, 5)).shape == (3, 5)


def test_image_counts_in_words_tell_images_from_frames():
    from medview.core.dicom.model import InstanceInfo, Stack
    from medview.core.dicom.source import SourceRef
    from medview.core.viewing.counts import count_images, count_short, count_words

    def stack(modality: str, frames: list[int]) -> Stack:
        return Stack("1.2", modality, "", 1, [InstanceInfo(SourceRef(f"/d/{i}"), f"1.2.{i}", "1.2.3", "1", "1.2",
                                                           modality=modality, frames=n) for i, n in enumerate(frames)])

    words = {k: (count_short(count_images([s])), count_words(count_images([s]))) for k, s in {
        "stills": stack("CR", [1]), "cine": stack("US", [30]), "two cines": stack("XA", [10, 20]),
        "enhanced CT": stack("CT", [120])}.items()}
    assert words == {"stills": ("1 im", "1 image"), "cine": ("30 fr", "1 cine, 30 frames"),
                     "two cines": ("30 fr", "2 cines, 30 frames"),
                     "enhanced CT": ("120 fr", "1 multi-frame image, 120 frames")}
    assert count_images([stack("US", [30, 1, 1])]).frames == 32
