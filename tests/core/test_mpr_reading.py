"""Reformatted planes in the reading session, without Qt: M hangs axial, coronal and sagittal of a stack with one
crosshair point, scrolling moves the point along a plane's normal, a click puts it anywhere, Shift+M and [ ]
make slabs, M again restores what was there; `PlaneDisplay` draws a plane from what is loaded, slices not decoded
yet being gaps. Real DICOM stacks with spheres at known patient positions (tests/core/test_mpr.py's writer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medview.core.dicom import pixels as px
from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.reading import NO_PRIOR, NO_SLAB_HERE, ReadingSession
from medview.core.viewing import mpr
from medview.core.viewing.display import StackDisplay
from medview.core.viewing.plane_display import PlaneDisplay, loaded_part, plane_steps, slab_text
from tests.core.test_mpr import SPHERE_HU, load, write_volume
from tests.factories import write_image

CENTRE = (2.4, -1.6, 21.0)
# uneven: 1.5 mm apart, then 2 mm apart from slice 20 on
OFFSETS = [k * 1.5 for k in range(20)] + [30.0 + k * 2.0 for k in range(10)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mpr_reading") / "ct"
    write_volume(folder, [(-17.6, -20.0, z) for z in OFFSETS], spacing=(0.8, 0.8),
                 spheres=[(*CENTRE, 4.0, SPHERE_HU)])
    return folder


@pytest.fixture
def session(folder):
    [study] = build_studies(scan([str(folder)], use_cache=False).instances)
    s = ReadingSession([study])
    s.open_case(study.study_uid)
    return s


def positions(s: ReadingSession) -> list:
    return [v["position"] for v in s.reading_state()["viewports"]]


def test_m_hangs_three_planes_through_the_image_being_read_and_m_again_restores(session):
    s = session
    s.go_to(12)
    before = json.dumps(s.reading_state())
    assert s.mpr() is None and s.in_mpr
    state = s.reading_state()
    json.dumps(state)  # plain data
    assert state["layout"] == [1, 3] and state["linked"]
    assert [v["plane"] for v in state["viewports"]] == ["axial", "coronal", "sagittal"]
    assert state["active"] == 0  # the plane of the slices: the reader's keys go on as they did
    z = OFFSETS[12]
    for v in state["viewports"]:
        # the image's centre (-0.4, -1.2), moved onto the planes' steps (half a 0.8 mm pixel at most)
        assert v["position"] == pytest.approx([-0.4, -1.2, z], abs=0.4 + 1e-9)
        assert v["frames"] == len(OFFSETS) and v["sop_instance_uid"] == before_sop(before)
    assert s.viewports[0].view.index == 12  # the axial plane steps through the acquired slices
    assert s.mpr() is None and not s.in_mpr
    assert json.dumps(s.reading_state()) == before


def before_sop(state_json: str) -> str:
    return json.loads(state_json)["viewports"][0]["sop_instance_uid"]


def test_scrolling_a_plane_moves_the_point_along_its_normal_and_a_click_moves_it_anywhere(session):
    s = session
    s.mpr()
    start = positions(s)[0]
    s.activate(1)  # coronal: one step is the pixel spacing, towards the patient's back
    assert s.scroll(3)
    assert positions(s)[0] == pytest.approx([start[0], start[1] + 3 * 0.8, start[2]])
    s.activate(0)  # axial: from slice to slice as acquired, 2 mm apart from slice 20 on
    s.go_to(21)
    assert positions(s)[0][2] == pytest.approx(OFFSETS[21])
    assert s.scroll(1) and positions(s)[0][2] == pytest.approx(OFFSETS[22])
    assert s.reading_state()["viewports"][1]["sop_instance_uid"] == s.viewport.stack.instances[22].sop_instance_uid
    # a click: every plane through the point, each on its nearest step
    assert s.set_crosshair(CENTRE)
    for p in positions(s):
        assert p == pytest.approx(CENTRE, abs=0.4)
    steps = s.plane_steps("axial")
    assert s.viewports[0].view.index == steps.index_of(CENTRE)
    assert s.viewports[1].view.index == s.plane_steps("coronal").index_of(CENTRE)
    # past the volume, the planes stop at its edge
    s.activate(2)
    s.scroll(10_000)
    assert s.viewports[2].view.index == s.plane_steps("sagittal").count - 1


def test_p_without_a_prior_leaves_the_planes_as_they_are(session):
    s = session
    s.mpr()
    planes = s.reading_state()
    assert s.compare_with_prior() == NO_PRIOR
    assert s.in_mpr and s.reading_state() == planes


def test_slab_keys(session):
    s = session
    assert not s.cycle_slab() and not s.step_slab(1)  # acquired images have no slab here
    assert s.slab_refusal(1) == NO_SLAB_HERE
    s.mpr()
    viewport = s.viewport
    assert not s.step_slab(-1)  # no slab to make thinner
    assert s.slab_refusal(-1) == "No slab: ] makes one"
    assert s.cycle_slab() and (viewport.slab, viewport.slab_mm) == ("mip", 10.0)
    assert s.step_slab(1) and viewport.slab_mm == 15.0
    assert s.step_slab(-1) and s.step_slab(-1) and viewport.slab_mm == 8.0
    while s.step_slab(-1):
        pass
    assert s.slab_refusal(-1) == "The slab is as thin as it goes"
    while s.step_slab(1):
        pass
    assert s.slab_refusal(1) == "The slab is as thick as it goes"
    while viewport.slab_mm != 8.0:  # back to 8 mm for what follows
        assert s.step_slab(-1)
    assert [s.cycle_slab() and viewport.slab for _ in range(4)] == ["minip", "avg", "off", "mip"]
    assert viewport.slab_mm == 8.0  # the thickness is kept while off
    assert slab_text(viewport.slab, viewport.slab_mm) == "MIP 8 mm"
    assert s.viewports[1].slab == "off"  # each plane has its own


def test_a_series_without_geometry_is_refused_in_words(tmp_path):
    for k in range(3):
        write_image(tmp_path / "xr" / f"IM{k}.dcm", modality="CT", series_uid="1.2.3.9", study_uid="1.2.3",
                    position=None, instance_number=k + 1)
    [study] = build_studies(scan([str(tmp_path / "xr")], use_cache=False).instances)
    s = ReadingSession([study])
    s.open_case(study.study_uid)
    reason = s.mpr()
    assert reason.startswith("This series cannot be reformatted") and "Image Position" in reason
    assert not s.in_mpr and s.reading_state()["layout"] == [1, 1]


def test_plane_steps_of_an_uneven_stack(folder):
    stack, volume, _ = load(folder)
    geometry = mpr.volume_geometry(stack)
    axial = plane_steps(geometry, "axial")
    np.testing.assert_allclose(axial.offsets, OFFSETS)
    coronal = plane_steps(geometry, "coronal")
    assert coronal.count == 48 and np.diff(coronal.offsets) == pytest.approx(0.8)
    sagittal = plane_steps(geometry, "sagittal")  # its normal points to the patient's right
    assert sagittal.count == 44 and sagittal.normal @ (1, 0, 0) == -1


def test_plane_display_fills_in_as_slices_load(folder):
    stack, volume, transforms = load(folder)
    headers = [px.read_dataset(inst.ref, stop_before_pixels=True) for inst in stack.instances]
    source = StackDisplay(volume.array, volume.frames, headers)
    geometry = mpr.volume_geometry(stack)
    loaded = np.zeros(len(OFFSETS), bool)
    plane = PlaneDisplay(source, loaded, geometry, "coronal")
    i = plane.steps.index_of(CENTRE)
    assert plane.frame_shape == mpr.plane_through(geometry, "coronal", CENTRE).shape
    assert np.isnan(plane.modality_values(i)).all()  # nothing decoded yet: background, same size
    loaded[8:20] = True  # the loader has decoded outward from slice 14
    values = plane.modality_values(i)
    rows_z = plane.plane_at(i).origin[2] - np.arange(plane.frame_shape[0]) * plane.spacing
    inside = (rows_z >= OFFSETS[8] - 0.75) & (rows_z <= OFFSETS[19] + 0.75)
    assert not np.isnan(values[inside]).any() and np.isnan(values[~inside]).all()
    assert np.nanmax(values) > SPHERE_HU * 0.9  # the sphere (z 21 mm, slice 14) is there already
    loaded[:] = True
    full = plane.modality_values(i)
    expected = mpr.sample_plane(volume.array, geometry, plane.plane_at(i), transforms)
    np.testing.assert_allclose(full, expected, equal_nan=True)
    grey = plane.item_image(i, px.Window(40, 400), False).data
    assert grey.dtype == np.uint8 and grey.shape == plane.frame_shape
    assert plane.position_text(i) == f"y {plane.plane_at(i).origin[1]:.1f} mm"
    assert plane.value_at(i, *(int(round(v)) for v in plane.grid.pixel_of(CENTRE))) > SPHERE_HU * 0.9


def test_slabs_of_a_plane_display(folder):
    stack, volume, _ = load(folder)
    headers = [px.read_dataset(inst.ref, stop_before_pixels=True) for inst in stack.instances]
    source = StackDisplay(volume.array, volume.frames, headers)
    geometry = mpr.volume_geometry(stack)
    plane = PlaneDisplay(source, volume.loaded, geometry, "sagittal")
    off = plane.steps.index_of((CENTRE[0] + 6.0, *CENTRE[1:]))  # 6 mm beside the sphere: not in the plane
    assert np.nanmax(plane.modality_values(off)) < SPHERE_HU / 2
    assert plane.set_slab("mip", 20.0) and not plane.set_slab("mip", 20.0)
    assert np.nanmax(plane.modality_values(off)) > SPHERE_HU * 0.9


def test_loaded_part_keeps_the_series_spacing_so_missing_slices_are_gaps(folder):
    stack, _, _ = load(folder)
    geometry = mpr.volume_geometry(stack)
    loaded = np.ones(len(OFFSETS), bool)
    assert loaded_part(geometry, loaded) is geometry
    loaded[5] = False
    part = loaded_part(geometry, loaded)
    assert len(part.offsets) == len(OFFSETS) - 1 and part.slice_spacing == geometry.slice_spacing
    loaded[:] = False
    loaded[3] = True
    assert loaded_part(geometry, loaded) is None
