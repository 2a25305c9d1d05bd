"""Reformatted planes and slabs (medview.core.viewing.mpr, `render --plane`): spheres at known patient positions,
written as real DICOM stacks (plain, tilted, uneven, oblique, with a missing slice), must appear where the
plane's reported geometry puts them; one case is checked against SimpleITK's resampler."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medview.cli import main
from medview.core.dicom import pixels as px
from medview.core.dicom.loader import load_stack
from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.png import read_png
from medview.core.viewing import mpr
from tests.factories import write_image

BACKGROUND_HU = 0.0
SPHERE_HU = 1000.0


def _rotation(axis, degrees):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def write_volume(folder, positions, *, orientation=(1, 0, 0, 0, 1, 0), spacing=(0.9, 0.8), rows=48, cols=44,
                 spheres=((0, 0, 0, 5.0, SPHERE_HU),), series_uid=None):
    """One slice per position; each pixel holds the spheres (centre x, y, z, radius, HU) at its patient
    position, with a 1 mm soft edge so the interpolated spheres keep their centres. Stored as int16 with
    Rescale Intercept -1024 (the sampler must apply the Modality LUT)."""
    paths = []
    for k, p in enumerate(positions):
        stored = sphere_slice(p, orientation, spacing, rows, cols, spheres)
        paths.append(write_image(folder / f"IM{k:04d}.dcm", pixels=stored, signed=True, rescale=(1.0, -1024.0),
                                 position=tuple(float(v) for v in p), orientation=tuple(orientation),
                                 pixel_spacing=spacing, series_uid=series_uid or "1.2.3.4.5",
                                 study_uid="1.2.3.4", instance_number=k + 1, window=(40, 400)))
    return paths


def sphere_slice(position, orientation, spacing, rows, cols, spheres) -> np.ndarray:
    """The stored values (int16, HU + 1024) of one slice at `position` holding the spheres (see write_volume)."""
    orientation = np.asarray(orientation, float)
    row_dir, col_dir = orientation[:3], orientation[3:]
    r = np.arange(rows)[:, None, None]
    c = np.arange(cols)[None, :, None]
    xyz = np.asarray(position, float) + c * spacing[1] * row_dir + r * spacing[0] * col_dir  # (rows, cols, 3)
    hu = np.full((rows, cols), BACKGROUND_HU)
    for x, y, z, radius, value in spheres:
        d = np.linalg.norm(xyz - np.array([x, y, z]), axis=-1)
        hu += (value - BACKGROUND_HU) * np.clip(radius + 0.5 - d, 0, 1)
    return np.rint(hu + 1024).astype(np.int16)


def load(folder):
    """The stack as the viewer loads it: scan, group, load; plus its per-slice modality transforms."""
    [study] = build_studies(scan([str(folder)], use_cache=False).instances)
    stack = study.series[0].stacks[0]
    volume = load_stack(stack)
    headers = [px.read_dataset(inst.ref, stop_before_pixels=True) for inst in stack.instances]
    return stack, volume, mpr.stack_transforms(headers)


def centroid(values, threshold=SPHERE_HU / 4):
    """(row, col) of the bright blob, weighted by its values above the background."""
    w = np.nan_to_num(values - BACKGROUND_HU, nan=0.0)
    w[w < threshold] = 0
    assert w.sum() > 0, "the sphere is not in the plane"
    rows, cols = np.indices(w.shape)
    return float((rows * w).sum() / w.sum()), float((cols * w).sum() / w.sum())


def assert_sphere_where_predicted(folder, centre, planes=mpr.PLANES):
    stack, volume, transforms = load(folder)
    geometry = mpr.volume_geometry(stack, volume.loaded)
    for name in planes:
        plane = mpr.plane_through(geometry, name, centre)
        values = mpr.reformat(volume.array, geometry, plane, transforms)
        got = centroid(values)
        want = plane.pixel_of(centre)
        assert abs(got[0] - want[0]) < 0.5 and abs(got[1] - want[1]) < 0.5, (name, got, want)
        assert np.nanmin(values) >= BACKGROUND_HU - 1 and np.nanmax(values) > SPHERE_HU * 0.9  # HU, not stored
    return geometry


def axial_positions(offsets, origin=(-17.0, -20.0, 0.0)):
    return [(origin[0], origin[1], origin[2] + z) for z in offsets]


def test_plain_axial_stack_all_three_planes(tmp_path):
    centre = (2.3, -1.7, 14.2)
    write_volume(tmp_path / "s", axial_positions(np.arange(30) * 1.25), spheres=[(*centre, 5.0, SPHERE_HU)])
    geometry = assert_sphere_where_predicted(tmp_path / "s", centre)
    assert geometry.finest_spacing == pytest.approx(0.8)


def test_axial_plane_of_an_axial_stack_is_the_acquired_slice(tmp_path):
    """Grid on the acquired pixel centres: the axial plane through a slice gives that slice's HU values."""
    write_volume(tmp_path / "s", axial_positions(np.arange(10) * 0.8), spacing=(0.8, 0.8),
                 spheres=[(0.0, 0.0, 3.2, 4.0, SPHERE_HU)])
    stack, volume, transforms = load(tmp_path / "s")
    geometry = mpr.volume_geometry(stack)
    plane = mpr.plane_through(geometry, "axial", (0.0, 0.0, 3.2))
    values = mpr.reformat(volume.array, geometry, plane, transforms)
    assert plane.shape == (48, 44)
    np.testing.assert_allclose(plane.origin, (-17.0, -20.0, 3.2))
    np.testing.assert_allclose(values, transforms[4].apply(volume.array[4]), atol=1e-3)


def test_orientation_as_radiologists_read_it(tmp_path):
    """Axial from the feet, coronal from the front, sagittal from the patient's left."""
    left_anterior_head = (8.0, -10.0, 28.0)  # LPS: +x left, -y anterior, +z head
    right_posterior_feet = (-8.0, 8.0, 8.0)
    write_volume(tmp_path / "s", axial_positions(np.arange(30) * 1.25),
                 spheres=[(*left_anterior_head, 3.0, SPHERE_HU), (*right_posterior_feet, 3.0, SPHERE_HU / 2)])
    stack, volume, transforms = load(tmp_path / "s")
    geometry = mpr.volume_geometry(stack)

    def position(name, centre, value):
        plane = mpr.plane_through(geometry, name, centre)
        values = mpr.reformat(volume.array, geometry, plane, transforms)
        return centroid(np.where(np.abs(values - value) < value / 3, values, np.nan), threshold=value / 3)

    row_l, col_l = position("axial", left_anterior_head, SPHERE_HU)
    row_r, col_r = position("axial", right_posterior_feet, SPHERE_HU / 2)
    assert col_r < col_l and row_l < row_r  # patient's right on the image left, anterior at the top
    row_l, col_l = position("coronal", left_anterior_head, SPHERE_HU)
    row_r, col_r = position("coronal", right_posterior_feet, SPHERE_HU / 2)
    assert col_r < col_l and row_l < row_r  # right on the left, head at the top
    row_l, col_l = position("sagittal", left_anterior_head, SPHERE_HU)
    row_r, col_r = position("sagittal", right_posterior_feet, SPHERE_HU / 2)
    assert col_l < col_r and row_l < row_r  # anterior on the left, head at the top


def test_gantry_tilt(tmp_path):
    """Slices tilted 20 degrees about the x axis while the table moves along z: the slice positions do not
    lie along the slice normal."""
    t = np.radians(20)
    orientation = (1, 0, 0, 0, np.cos(t), np.sin(t))
    centre = (1.5, -2.0, 17.0)
    write_volume(tmp_path / "s", axial_positions(np.arange(28) * 1.3, origin=(-17.0, -20.0, 4.0)),
                 orientation=orientation, spheres=[(*centre, 5.0, SPHERE_HU)])
    geometry = assert_sphere_where_predicted(tmp_path / "s", centre)
    assert geometry.slice_spacing == pytest.approx(1.3 * np.cos(t))


def test_uneven_slice_spacing(tmp_path):
    steps = np.random.default_rng(3).uniform(1.0, 1.7, 29)
    centre = (-3.0, 2.5, 19.3)
    write_volume(tmp_path / "s", axial_positions(np.concatenate([[0], np.cumsum(steps)])),
                 spheres=[(*centre, 5.0, SPHERE_HU)])
    geometry = assert_sphere_where_predicted(tmp_path / "s", centre)
    assert not np.allclose(np.diff(geometry.offsets), geometry.slice_spacing)


def oblique_stack(tmp_path, centre, count=36, step=1.1):
    rot = _rotation((1, 2, 0.5), 25)
    row_dir, col_dir = rot @ (1, 0, 0), rot @ (0, 1, 0)
    normal = np.cross(row_dir, col_dir)
    rows, cols, spacing = 48, 44, (0.9, 0.8)
    # the stack centred on the sphere
    corner = np.asarray(centre) - row_dir * spacing[1] * (cols - 1) / 2 - col_dir * spacing[0] * (rows - 1) / 2
    corner = corner - normal * step * (count - 1) / 2 + normal * 0.37
    positions = [corner + normal * step * k for k in range(count)]
    write_volume(tmp_path / "s", positions, orientation=(*row_dir, *col_dir), spacing=spacing, rows=rows,
                 cols=cols, spheres=[(*centre, 5.0, SPHERE_HU)])
    return tmp_path / "s"


def test_oblique_acquisition(tmp_path):
    centre = (10.0, -30.0, 55.0)
    assert_sphere_where_predicted(oblique_stack(tmp_path, centre), centre)


def test_oblique_acquisition_equals_simpleitk_resampling(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    centre = (10.0, -30.0, 55.0)
    stack, volume, transforms = load(oblique_stack(tmp_path, centre))
    geometry = mpr.volume_geometry(stack)
    plane = mpr.plane_through(geometry, "coronal", (12.0, -29.0, 50.0))
    ours = mpr.reformat(volume.array, geometry, plane, transforms)

    image = sitk.GetImageFromArray(transforms[0].apply(volume.array))  # (z, y, x) -> x, y, z
    image.SetOrigin(tuple(geometry.positions[0]))
    image.SetSpacing((geometry.column_spacing, geometry.row_spacing, geometry.slice_spacing))
    image.SetDirection(tuple(np.column_stack([geometry.row_cosines, geometry.column_cosines,
                                              geometry.normal]).ravel()))
    rows, cols = plane.shape
    theirs = sitk.Resample(
        image, (cols, rows, 1), sitk.Transform(), sitk.sitkLinear, tuple(plane.origin),
        (plane.spacing, plane.spacing, 1.0),
        tuple(np.column_stack([plane.row_direction, plane.column_direction, plane.normal]).ravel()),
        float("nan"), sitk.sitkFloat32)
    theirs = sitk.GetArrayFromImage(theirs)[0]
    both = ~np.isnan(ours) & ~np.isnan(theirs)
    assert both.sum() > 0.2 * ours.size
    np.testing.assert_allclose(ours[both], theirs[both], atol=0.05)
    # the same footprint, but for the half-pixel border where the two treat the edge differently
    assert (np.isnan(ours) != np.isnan(theirs)).sum() < 0.05 * ours.size


def test_missing_slice_is_a_gap_not_stretched(tmp_path):
    offsets = [z for z in np.arange(30) * 1.5 if z != 15.0]  # slice 10 missing: 3 mm, twice the median
    centre = (0.0, 1.0, 24.0)
    write_volume(tmp_path / "s", axial_positions(offsets), spheres=[(*centre, 5.0, SPHERE_HU)])
    geometry = assert_sphere_where_predicted(tmp_path / "s", centre, planes=("coronal", "sagittal"))
    stack, volume, transforms = load(tmp_path / "s")
    plane = mpr.plane_through(geometry, "coronal", centre)
    values = mpr.reformat(volume.array, geometry, plane, transforms)
    z = np.array([plane.patient_position(r, 0)[2] for r in range(plane.shape[0])])
    blank = np.isnan(values).all(axis=1)
    # the slices keep half a spacing (0.75 mm) on either side: 13.5 + 0.75 < z < 16.5 - 0.75 is missing
    np.testing.assert_array_equal(blank, (z > 14.25 + 1e-6) & (z < 15.75 - 1e-6))
    assert blank.any()
    assert not np.isnan(values[~blank]).any()


def test_mip_slab_sees_a_small_sphere_off_the_plane(tmp_path):
    small = (4.0, 3.0, 12.0)  # 4 mm in front of the coronal plane at y = -1
    write_volume(tmp_path / "s", axial_positions(np.arange(24) * 1.0),
                 spheres=[(*small, 1.5, SPHERE_HU), (-6.0, -1.0, 12.0, 2.0, -SPHERE_HU / 2)])
    stack, volume, transforms = load(tmp_path / "s")
    geometry = mpr.volume_geometry(stack)
    at = (0.0, -1.0, 12.0)
    plane = mpr.plane_through(geometry, "coronal", at)
    thin = mpr.reformat(volume.array, geometry, plane, transforms)
    assert np.nanmax(thin) < 1.0  # the small sphere is not in the plane itself
    mip = mpr.reformat(volume.array, geometry, plane, transforms, slab_mm=10, mode="mip")
    assert np.nanmax(mip) > SPHERE_HU * 0.9
    got, want = centroid(mip), plane.pixel_of(small)
    assert abs(got[0] - want[0]) < 0.5 and abs(got[1] - want[1]) < 0.5
    thinner = mpr.reformat(volume.array, geometry, plane, transforms, slab_mm=4, mode="mip")
    assert np.nanmax(thinner) < SPHERE_HU / 2  # 4 mm across y = -1 stops 2.5 mm short of the sphere
    minip = mpr.reformat(volume.array, geometry, plane, transforms, slab_mm=10, mode="minip")
    assert np.nanmin(minip) < -SPHERE_HU * 0.45 and np.nanmax(minip) < 1.0
    avg = mpr.reformat(volume.array, geometry, plane, transforms, slab_mm=10, mode="avg")
    assert np.nanmin(mip) >= np.nanmin(avg) >= np.nanmin(minip)
    assert 0 < np.nanmax(avg) < np.nanmax(mip)


def test_display_goes_through_the_display_pipeline_with_background_for_gaps():
    values = np.array([[np.nan, -1000.0], [40.0, 3000.0]], np.float32)
    image = mpr.display_plane(values, px.Window(40, 400))
    np.testing.assert_array_equal(image[1:], px.apply_window(values[1:], px.Window(40, 400)))
    assert image[0, 0] == 0


def test_no_geometry_is_refused(tmp_path):
    for k in range(3):
        write_image(tmp_path / f"IM{k}.dcm", position=None, series_uid="1.2.3", study_uid="1.2", instance_number=k)
    [study] = build_studies(scan([str(tmp_path)], use_cache=False).instances)
    with pytest.raises(mpr.ReformatError, match="no patient geometry"):
        mpr.volume_geometry(study.series[0].stacks[0])


# ------------------------------------------------------------------------------------------------ the CLI


def _render(capsys, *argv):
    rc = main(["render", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.splitlines()], err


def test_cli_writes_the_plane_and_its_geometry(tmp_path, capsys):
    centre = (2.3, -1.7, 14.2)
    write_volume(tmp_path / "s", axial_positions(np.arange(30) * 1.25), spheres=[(*centre, 5.0, SPHERE_HU)])
    rc, lines, err = _render(capsys, tmp_path / "s", "--out-dir", tmp_path / "out", "--plane", "coronal",
                             "--at", *centre)
    assert rc == 0 and err == ""
    [line] = lines
    assert line["status"] == "ok" and line["input"] == str(tmp_path / "s") and line["plane"] == "coronal"
    assert line["window"] == [40.0, 400.0]  # the file's window, as for the acquired images
    assert line["row_direction"] == [1, 0, 0] and line["column_direction"] == [0, 0, -1]
    assert line["spacing"] == [0.8, 0.8]
    image = read_png(line["output"])
    # the sphere's centre is where the JSON geometry says: origin + row * spacing * column_direction + ...
    d = np.asarray(centre) - np.asarray(line["origin"])
    want = (d @ np.asarray(line["column_direction"]) / line["spacing"][0],
            d @ np.asarray(line["row_direction"]) / line["spacing"][1])
    bright = (image == 255).astype(float)
    rows, cols = np.indices(image.shape)
    got = ((rows * bright).sum() / bright.sum(), (cols * bright).sum() / bright.sum())
    assert abs(got[0] - want[0]) < 0.5 and abs(got[1] - want[1]) < 0.5
    # exactly the core's picture
    stack, volume, transforms = load(tmp_path / "s")
    geometry = mpr.volume_geometry(stack)
    plane = mpr.plane_through(geometry, "coronal", centre)
    expected = mpr.display_plane(mpr.reformat(volume.array, geometry, plane, transforms), px.Window(40, 400))
    np.testing.assert_array_equal(image, expected)

    rc, lines, _ = _render(capsys, *sorted((tmp_path / "s").iterdir()), "--out-dir", tmp_path / "out2",
                           "--plane", "sagittal", "--at", *centre, "--slab", 6, "--mode", "avg", "--preset", "bone")
    assert rc == 0 and lines[0]["slab"] == 6 and lines[0]["mode"] == "avg" and lines[0]["window"] == [400, 1800]
    assert lines[0]["input"] == str(tmp_path / "s") and read_png(lines[0]["output"]).shape == tuple(
        mpr.plane_through(geometry, "sagittal", centre).shape)


def test_cli_errors(tmp_path, capsys):
    write_volume(tmp_path / "s", axial_positions(np.arange(5) * 1.25), spheres=[])
    write_volume(tmp_path / "two" / "a", axial_positions(np.arange(3) * 1.25), spheres=[], series_uid="1.2.9.1")
    write_volume(tmp_path / "two" / "b", axial_positions(np.arange(3) * 1.25), spheres=[], series_uid="1.2.9.2")
    for k in range(3):
        write_image(tmp_path / "flat" / f"IM{k}.dcm", position=None, series_uid="1.2.3", study_uid="1.2",
                    instance_number=k)
    cases = [
        (tmp_path / "s", ("--at", 0, 0, 500), "outside the volume"),
        (tmp_path / "two", ("--at", 0, 0, 1), "2 series found"),
        (tmp_path / "flat", ("--at", 0, 0, 0), "no patient geometry"),
    ]
    for path, extra, reason in cases:
        rc, lines, err = _render(capsys, path, "--out-dir", tmp_path / "out", "--plane", "axial", *extra)
        assert rc == 1, reason
        assert [line["status"] for line in lines] == ["error"] and reason in lines[0]["error"]
        assert len(err.strip().splitlines()) == 1 and reason in err and "Traceback" not in err
    for argv in (("--at", 0, 0, 0), ("--plane", "axial"), ("--plane", "axial", "--at", 0, 0, 0, "--slab", -1),
                 ("--plane", "axial", "--at", 0, 0, 0, "--mode", "mip")):
        rc, lines, err = _render(capsys, tmp_path / "s", "--out-dir", tmp_path / "out", *argv)
        assert rc == 2 and lines == [] and err.count("\n") == 1


def test_cli_plane_in_a_real_process_imports_neither_qt_nor_torch(tmp_path):
    import subprocess
    import sys

    write_volume(tmp_path / "s", axial_positions(np.arange(6) * 1.25), spheres=[])
    code = ("import sys; from medview.cli import main; rc = main(sys.argv[1:]); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'torch', 'pyqtgraph')); "
            "print('HEAVY', heavy, file=sys.stderr); sys.exit(rc)")
    argv = ["render", str(tmp_path / "s"), "--out-dir", str(tmp_path / "o"), "--plane", "sagittal",
            "--at", "0", "0", "3", "--slab", "5"]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr.strip() == "HEAVY []"
    assert json.loads(proc.stdout)["mode"] == "mip"


@pytest.mark.parametrize("tilt_axis, shear", [(None, 0.0), ((1, 0, 0), 0.0), ((0, 1, 0), 0.0), (None, 0.4)])
def test_line_by_line_sampling_equals_the_per_pixel_sampling(tmp_path, monkeypatch, tilt_axis, shear):
    """Planes whose rows run along image rows or columns are sampled line by line (fast); the same numbers
    as the per-pixel inverse map, also for stacks tilted either way, sheared (each slice shifted along its
    rows) and with a gap."""
    orientation = (1, 0, 0, 0, 1, 0)
    if tilt_axis is not None:
        rot = _rotation(tilt_axis, 15)
        orientation = (*(rot @ (1, 0, 0)), *(rot @ (0, 1, 0)))
    offsets = [z for z in np.arange(20) * 1.25 if z != 10.0]
    positions = [(x - 17.0 + shear * z, y, z) for x, y, z in axial_positions(offsets, origin=(0, -20, 0))]
    write_volume(tmp_path / "s", positions, orientation=orientation, spacing=(0.7, 0.9),
                 spheres=[(1.0, 2.0, 12.0, 6.0, SPHERE_HU)])
    stack, volume, transforms = load(tmp_path / "s")
    geometry = mpr.volume_geometry(stack)
    planes = [mpr.plane_through(geometry, name, (1.0, 2.0, 12.0)) for name in mpr.PLANES]
    planes.append(mpr.plane_through(geometry, "coronal", (1.0, 2.0, 12.0), spacing=0.9))
    by_lines = [mpr._sample_by_lines(volume.array, geometry, plane, plane.origin, transforms) for plane in planes]
    if tilt_axis is None:
        assert all(values is not None for values in by_lines)
    monkeypatch.setattr(mpr, "_sample_by_lines", lambda *args: None)
    for plane, got in zip(planes, by_lines):
        if got is None:
            continue
        want = mpr.sample_plane(volume.array, geometry, plane, transforms)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], atol=0.05)


def test_cli_unreadable_slice_is_reported_and_left_as_a_gap(tmp_path, capsys):
    from tests.factories import truncate

    paths = write_volume(tmp_path / "s", axial_positions(np.arange(12) * 1.0), spheres=[])
    truncate(paths[6], -200)
    rc, lines, err = _render(capsys, tmp_path / "s", "--out-dir", tmp_path / "out", "--plane", "coronal",
                             "--at", 0, 0, 5)
    assert rc == 1 and [line["status"] for line in lines] == ["error", "ok"]
    assert lines[0]["input"].endswith("IM0006.dcm") and "Traceback" not in err and len(err.splitlines()) == 1
    image = read_png(lines[1]["output"])
    # z = 6 mm is 1 mm from its neighbours: outside their half spacing (0.5 mm) the rows are background
    z = np.asarray(lines[1]["origin"])[2] - np.arange(image.shape[0]) * lines[1]["spacing"][0]
    assert (image[(z > 5.5 + 1e-6) & (z < 6.5 - 1e-6)] == 0).all() and (image[np.abs(z - 3) < 1] > 0).all()


def _slab_stack(tmp_path, shape, spheres):
    """Axial-ish stacks for the slab tests: plain, uneven spacing, sheared (each slice shifted along its rows, as
    a tilted gantry's stack is when stored that way) and tilted 15 degrees about x."""
    orientation = (1, 0, 0, 0, 1, 0)
    offsets = np.arange(24) * 1.0
    if shape == "uneven":
        offsets = np.concatenate([[0], np.cumsum(np.random.default_rng(5).uniform(0.8, 1.4, 23))])
    positions = axial_positions(offsets)
    if shape == "sheared":
        positions = [(x + 0.3 * z, y, z) for x, y, z in positions]
    if shape == "tilted":
        t = np.radians(15)
        orientation = (1, 0, 0, 0, np.cos(t), np.sin(t))
    write_volume(tmp_path / "s", positions, orientation=orientation, spacing=(0.7, 0.8), spheres=spheres)
    return tmp_path / "s"


@pytest.mark.parametrize("shape", ["plain", "uneven", "sheared", "tilted"])
def test_slab_reduced_on_the_volume_grid_keeps_a_sphere_where_the_geometry_puts_it(tmp_path, monkeypatch, shape):
    """A slab whose normal runs along a volume axis is reduced over the volume's own samples and resampled once;
    a small sphere 3.5 mm off each plane shows in the slab's MIP and average at the pixel the plane's geometry
    predicts, as in the slab reformatted plane by plane, and not in the plane itself."""
    at = np.array([0.5, -1.0, 10.0])
    small = at + 3.5
    stack, volume, transforms = load(_slab_stack(tmp_path, shape, [(*small, 1.5, SPHERE_HU)]))
    geometry = mpr.volume_geometry(stack)
    by_grid = {"plain": set(mpr.PLANES), "uneven": set(mpr.PLANES), "sheared": {"coronal", "sagittal"},
               "tilted": {"sagittal"}}[shape]
    for name in mpr.PLANES:
        plane = mpr.plane_through(geometry, name, at)
        assert np.nanmax(mpr.reformat(volume.array, geometry, plane, transforms)) < 1.0, name
        want = plane.pixel_of(small)
        on_grid = mpr._slab_on_grid(volume.array, geometry, plane, transforms, 10.0, "mip")
        assert (on_grid is not None) == (name in by_grid), name
        for mode, threshold in (("mip", SPHERE_HU / 4), ("avg", SPHERE_HU / 40)):
            slab = mpr.reformat(volume.array, geometry, plane, transforms, slab_mm=10, mode=mode)
            got = centroid(slab, threshold)
            assert abs(got[0] - want[0]) < 0.5 and abs(got[1] - want[1]) < 0.5, (name, mode, got, want)
            with monkeypatch.context() as patch:
                patch.setattr(mpr, "_slab_on_grid", lambda *args: None)
                planewise = mpr.reformat(volume.array, geometry, plane, transforms, slab_mm=10, mode=mode)
            np.testing.assert_array_equal(np.isnan(slab), np.isnan(planewise))
            assert np.nanmax(slab) == pytest.approx(np.nanmax(planewise), rel=0.15), (name, mode)
        assert np.nanmax(mpr.reformat(volume.array, geometry, plane, transforms, 10, "minip")) < 1.0


# ------------------------------------------------------------------------------------ enhanced multi-frame

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _item(**elements):
    from pydicom.dataset import Dataset

    item = Dataset()
    for keyword, value in elements.items():
        setattr(item, keyword, value)
    return item


def write_enhanced_volume(path, positions, *, orientation=(1, 0, 0, 0, 1, 0), spacing=(0.9, 0.8), rows=48, cols=44,
                          spheres=(), orientation_per_frame=False, order=None):
    """One enhanced CT file holding the slices `write_volume` writes as single files: Plane Position (Patient)
    per frame, Plane Orientation (Patient) shared (or per frame), Pixel Measures and the rescale shared; no
    geometry at the top level. `order`: the frames' order in the file (default: as given)."""
    from pydicom.sequence import Sequence as Seq

    order = list(range(len(positions))) if order is None else list(order)
    frames = np.stack([sphere_slice(positions[k], orientation, spacing, rows, cols, spheres) for k in order])
    plane_orientation = Seq([_item(ImageOrientationPatient=[float(v) for v in orientation])])
    per_frame = []
    for k in order:
        group = _item(PlanePositionSequence=Seq([_item(ImagePositionPatient=[float(v) for v in positions[k]])]),
                      FrameContentSequence=Seq([_item(InStackPositionNumber=int(k) + 1)]))
        if orientation_per_frame:
            group.PlaneOrientationSequence = plane_orientation
        per_frame.append(group)
    shared = _item(PixelMeasuresSequence=Seq([_item(PixelSpacing=[float(v) for v in spacing], SliceThickness=1.0)]),
                   PixelValueTransformationSequence=Seq([_item(RescaleIntercept=-1024.0, RescaleSlope=1.0,
                                                               RescaleType="HU")]),
                   FrameVOILUTSequence=Seq([_item(WindowCenter=40.0, WindowWidth=400.0)]))
    if not orientation_per_frame:
        shared.PlaneOrientationSequence = plane_orientation
    return write_image(path, pixels=frames, signed=True, position=None, orientation=None, pixel_spacing=None,
                       series_uid="1.2.3.4.6", study_uid="1.2.3.4", instance_number=1,
                       extra={"SOPClassUID": ENHANCED_CT, "PerFrameFunctionalGroupsSequence": Seq(per_frame),
                              "SharedFunctionalGroupsSequence": Seq([shared])})


def _load_with_frames(folder):
    """As `load`, with the transforms of every frame of a multi-frame stack."""
    [study] = build_studies(scan([str(folder)], use_cache=False).instances)
    stack = study.series[0].stacks[0]
    volume = load_stack(stack)
    headers = [px.read_dataset(inst.ref, stop_before_pixels=True) for inst in stack.instances]
    return stack, volume, mpr.stack_transforms(headers, stack.frames)


@pytest.mark.parametrize("kind", ["tilted", "oblique, shuffled, orientation per frame"])
def test_enhanced_multiframe_reformats_exactly_like_the_single_frame_files(tmp_path, kind):
    """The same volume as one enhanced CT file (geometry only in its functional groups) and as single-frame files:
    the same geometry, the same planes and slabs, value for value, and the sphere where the geometry puts it."""
    centre = (1.5, -2.0, 15.0)
    spheres = [(*centre, 5.0, SPHERE_HU), (centre[0] + 3.5, centre[1] + 3.5, centre[2] + 3.5, 1.5, SPHERE_HU)]
    if kind == "tilted":
        t = np.radians(20)
        orientation = (1, 0, 0, 0, np.cos(t), np.sin(t))
        positions = axial_positions(np.arange(26) * 1.3, origin=(-17.0, -20.0, 2.0))
        order = None
    else:
        rot = _rotation((1, 2, 0.5), 25)
        orientation = (*(rot @ (1, 0, 0)), *(rot @ (0, 1, 0)))
        normal = np.cross(rot @ (1, 0, 0), rot @ (0, 1, 0))
        corner = np.asarray(centre) - rot @ (0.8 * 43 / 2, 0.9 * 47 / 2, 0) - normal * 1.1 * 15
        positions = [tuple(corner + normal * 1.1 * k) for k in range(30)]
        order = np.random.default_rng(2).permutation(len(positions))
    write_volume(tmp_path / "single", positions, orientation=orientation, spheres=spheres)
    write_enhanced_volume(tmp_path / "enhanced" / "EN.dcm", positions, orientation=orientation, spheres=spheres,
                          orientation_per_frame=order is not None, order=order)
    single = load(tmp_path / "single")
    enhanced = _load_with_frames(tmp_path / "enhanced")
    assert len(enhanced[0].instances) == 1 and enhanced[0].instances[0].frames == len(positions)
    assert enhanced[0].instances[0].image_position is None  # the geometry is in the functional groups only
    g1, g2 = (mpr.volume_geometry(stack, volume.loaded) for stack, volume, _ in (single, enhanced))
    np.testing.assert_allclose(g2.positions, g1.positions, atol=1e-9)
    np.testing.assert_allclose(g2.offsets, g1.offsets, atol=1e-9)
    assert (g2.row_spacing, g2.column_spacing, g2.slice_spacing) == pytest.approx(
        (g1.row_spacing, g1.column_spacing, g1.slice_spacing))
    for name in mpr.PLANES:
        plane = mpr.plane_through(g1, name, centre)
        for slab, mode in ((0.0, "mip"), (8.0, "mip"), (8.0, "avg")):
            a = mpr.reformat(single[1].array, g1, plane, single[2], slab, mode)
            b = mpr.reformat(enhanced[1].array, g2, plane, enhanced[2], slab, mode)
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            np.testing.assert_allclose(b[~np.isnan(b)], a[~np.isnan(a)], atol=1e-3)
        got, want = centroid(mpr.reformat(enhanced[1].array, g2, plane, enhanced[2])), plane.pixel_of(centre)
        assert abs(got[0] - want[0]) < 0.5 and abs(got[1] - want[1]) < 0.5, (name, got, want)


def test_real_enhanced_ct_reformats_like_its_frames_as_single_files(tmp_path, capsys):
    """pydicom-data's enhanced CT (two frames 10 mm apart, rows running to the patient's right): split into
    single-frame files with the geometry of its functional groups, both give the same coronal plane, also
    through `render --plane`."""
    from pydicom.data import get_testdata_file

    try:
        source = get_testdata_file("eCT_Supplemental.dcm")
    except Exception:  # noqa: BLE001 - pydicom-data may be absent or unreachable
        source = None
    if source is None:
        pytest.skip("pydicom-data's eCT_Supplemental.dcm is not available")
    ds = pydicom_read(source)
    (tmp_path / "enhanced").mkdir()
    ds.save_as(tmp_path / "enhanced" / "eCT.dcm")
    shared = ds.SharedFunctionalGroupsSequence[0]
    orientation = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    rescale = shared.PixelValueTransformationSequence[0]
    frames = ds.pixel_array
    for k, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        write_image(tmp_path / "single" / f"IM{k}.dcm", pixels=frames[k], signed=bool(ds.PixelRepresentation),
                    position=[float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient],
                    orientation=orientation, pixel_spacing=spacing,
                    rescale=(float(rescale.RescaleSlope), float(rescale.RescaleIntercept)),
                    series_uid="1.2.3.9", study_uid="1.2.3", instance_number=k + 1)
    single, enhanced = load(tmp_path / "single"), _load_with_frames(tmp_path / "enhanced")
    g1, g2 = (mpr.volume_geometry(stack, volume.loaded) for stack, volume, _ in (single, enhanced))
    np.testing.assert_allclose(g2.positions, g1.positions)
    assert g2.slice_spacing == pytest.approx(10.0) and g2.row_cosines[0] == pytest.approx(-1.0)
    centre = g1.center()
    for name in mpr.PLANES:
        plane = mpr.plane_through(g1, name, centre)
        a = mpr.reformat(single[1].array, g1, plane, single[2])
        b = mpr.reformat(enhanced[1].array, g2, plane, enhanced[2])
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(b[~np.isnan(b)], a[~np.isnan(a)], atol=1e-3)
        assert np.nanmax(b) > np.nanmin(b)  # a picture, not a blank
    outputs = []
    for folder in ("single", "enhanced"):
        rc, lines, err = _render(capsys, tmp_path / folder, "--out-dir", tmp_path / f"out-{folder}", "--plane",
                                 "coronal", "--at", *centre, "--window", 40, 400)
        assert rc == 0 and err == "" and lines[0]["status"] == "ok"
        outputs.append(read_png(lines[0]["output"]))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def pydicom_read(path):
    import pydicom

    return pydicom.dcmread(path)


def test_multiframe_without_per_frame_geometry_is_refused(tmp_path):
    """A classic multi-frame image (one Image Position for the file) has no slice positions to reformat."""
    write_image(tmp_path / "mf.dcm", frames=4, rows=8, cols=8, series_uid="1.2.7", study_uid="1.2")
    [study] = build_studies(scan([str(tmp_path)], use_cache=False).instances)
    stack = study.series[0].stacks[0]
    assert stack.instances[0].frames == 4
    with pytest.raises(mpr.ReformatError, match="no patient geometry"):
        mpr.volume_geometry(stack)


def test_cli_axial_plane_inside_a_gap_is_an_error_naming_the_gap_not_a_black_picture(tmp_path, capsys):
    """An axial plane where slices are missing has nothing to show: the line says where the gap is. Next to
    a slice (within half a spacing) and a thin slab across the gap still render."""
    offsets = [z for z in np.arange(30) * 1.5 if not 12.0 <= z <= 18.0]  # 10.5 ... 19.5: 9 mm without a slice
    write_volume(tmp_path / "s", axial_positions(offsets), spheres=[(0.0, 1.0, 6.0, 4.0, SPHERE_HU)])
    rc, lines, err = _render(capsys, tmp_path / "s", "--out-dir", tmp_path / "out", "--plane", "axial",
                             "--at", 0, 0, 15)
    assert rc == 1 and [line["status"] for line in lines] == ["error"]
    assert "lies in a gap of the series: no slice between 10.5 and 19.5 mm" in lines[0]["error"]
    assert "Traceback" not in err and len(err.splitlines()) == 1 and not list((tmp_path / "out").glob("*.png"))
    for at, slab in ((10.9, []), (15, ["--slab", 12])):
        rc, lines, _ = _render(capsys, tmp_path / "s", "--out-dir", tmp_path / f"out{at}", "--plane", "axial",
                               "--at", 0, 0, at, *slab)
        assert rc == 0 and lines[0]["status"] == "ok" and read_png(lines[0]["output"]).any()
