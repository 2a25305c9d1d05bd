"""Orientation markers, the scale bar and the age/sex line, without Qt."""

from __future__ import annotations

import math

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medview.core.viewing.orientation import (
    age_sex_text,
    age_text,
    direction_letters,
    edge_markers,
    image_orientation_vectors,
    length_text,
    patient_orientation_vectors,
    scale_bar,
)

AXIAL = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


def test_direction_letters_follow_the_patient_axes_and_name_obliques():
    assert [direction_letters(v) for v in [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]] == [
        "L", "R", "P", "A", "H", "F"]
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    assert direction_letters((c, -s, 0)) == "LA"  # 30° oblique: both letters, the larger first
    assert direction_letters((math.cos(0.1), math.sin(0.1), 0)) == "L"  # under 15°: the main letter only
    assert direction_letters((0, 0, 0)) == ""


def test_axial_ct_of_pydicom_reads_r_l_a_p_and_follows_rotation_and_flip():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    row, col = image_orientation_vectors(ds.ImageOrientationPatient)
    assert edge_markers(row, col) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    # a quarter turn clockwise: the front of the patient goes to the right of the screen
    assert edge_markers(row, col, rotation=1) == {"left": "P", "right": "A", "top": "R", "bottom": "L"}
    assert edge_markers(row, col, rotation=2) == {"left": "L", "right": "R", "top": "P", "bottom": "A"}
    assert edge_markers(row, col, flip=True) == {"left": "L", "right": "R", "top": "A", "bottom": "P"}
    # turned, then mirrored left-right: the turned image's left and right swap
    assert edge_markers(row, col, rotation=1, flip=True) == {"left": "A", "right": "P", "top": "R", "bottom": "L"}


def test_patient_orientation_of_a_pa_chest_and_of_combined_letters():
    row, col = patient_orientation_vectors(["L", "F"])
    assert edge_markers(row, col) == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    row, col = patient_orientation_vectors(["P", "FR"])
    assert edge_markers(row, col) == {"left": "A", "right": "P", "top": "HL", "bottom": "FR"}
    for bad in (None, "LF", ["L"], ["L", "X"], ["", "F"]):
        assert patient_orientation_vectors(bad) is None
    assert image_orientation_vectors(None) is None and image_orientation_vectors([0, 0, 0, 0, 1, 0]) is None


def test_scale_bar_is_the_longest_round_length_that_fits():
    assert scale_bar(0.5, 100) == (50.0, 100.0)
    mm, px = scale_bar(0.7, 100)  # 70 mm of room: 50 mm
    assert mm == 50.0 and px == pytest.approx(50 / 0.7)
    assert scale_bar(0.05, 120) == (5.0, 100.0)
    assert scale_bar(3.0, 20) is None  # no round length of at least 24 pixels fits in 20
    assert scale_bar(0.0, 100) is None and scale_bar(float("nan"), 100) is None
    assert [length_text(v) for v in (1, 5, 10, 20, 100)] == ["1 mm", "5 mm", "1 cm", "2 cm", "10 cm"]


def test_age_and_sex_as_the_corner_text_says_them():
    assert age_sex_text("054Y", "F") == "Female, 54 y"
    assert age_sex_text("", "M", "19700615", "20240614") == "Male, 53 y"
    assert age_sex_text("", "M", "19700615", "20240615") == "Male, 54 y"
    assert age_text("006M") == "6 mo" and age_text("003W") == "3 wk" and age_text("010D") == "10 d"
    assert age_sex_text("", "") == "" and age_sex_text("54", "X") == ""
    assert age_text("", "20240101", "20230101") == ""  # born after the study: no age
