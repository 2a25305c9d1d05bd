"""Grouping and slice order: property-based on arbitrary oblique geometry, and on scanned synthetic folders."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import generate_uid

from medview.core.dicom.model import InstanceInfo
from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies, order_stack, slice_normal, split_stacks
from medview.core.dicom.source import SourceRef
from tests.factories import CORONAL, SAGITTAL, mixed_objects_folder, write_image, write_series


def _inst(i: int, position=None, orientation=None, number=None, **kw) -> InstanceInfo:
    defaults = dict(sop_instance_uid=f"1.2.3.{i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2", study_uid="1.2",
                    series_uid="1.2.1", rows=8, columns=8, bits_allocated=16)
    defaults.update(kw)
    return InstanceInfo(ref=SourceRef(f"/data/f{i:04d}"), image_position=position, image_orientation=orientation,
                        instance_number=number, **defaults)


def _orientation(a: float, b: float, c: float) -> tuple[float, ...]:
    """Row and column cosines of a rotation by Euler angles: any oblique plane."""
    ca, sa, cb, sb, cc, sc = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), math.sin(c)
    rot = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]]) @ np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]]) \
        @ np.array([[1, 0, 0], [0, cc, -sc], [0, sc, cc]])
    return tuple(float(v) for v in np.concatenate([rot[:, 0], rot[:, 1]]))


angles = st.floats(min_value=-math.pi, max_value=math.pi, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    angles, angles, angles,
    st.lists(st.floats(min_value=-500, max_value=500, allow_nan=False), min_size=1, max_size=40, unique=True),
    st.tuples(*[st.floats(min_value=-200, max_value=200, allow_nan=False)] * 3),
    st.randoms(use_true_random=False),
)
def test_shuffled_oblique_slices_come_back_sorted_with_their_positions(a, b, c, offsets, origin, rnd):
    orientation = _orientation(a, b, c)
    normal = np.array(slice_normal(orientation))
    row = np.array(orientation[:3])
    offsets = sorted({round(o, 3) for o in offsets})
    instances = []
    for i, off in enumerate(offsets):
        # in-plane shifts must not change the order: only the distance along the normal counts
        pos = np.array(origin) + normal * off + row * rnd.uniform(-50, 50)
        instances.append(_inst(i, tuple(pos), orientation, number=rnd.randint(1, 5)))
    shuffled = instances[:]
    rnd.shuffle(shuffled)
    ordered, positions = order_stack(shuffled)
    assert [inst.sop_instance_uid for inst in ordered] == [inst.sop_instance_uid for inst in instances]
    base = float(np.dot(origin, normal))
    assert positions == pytest.approx([base + off for off in offsets], abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=-5, max_value=10_000), min_size=1, max_size=30), st.randoms())
def test_without_geometry_instance_number_orders(numbers, rnd):
    instances = [_inst(i, number=n) for i, n in enumerate(numbers)]
    rnd.shuffle(instances)
    ordered, positions = order_stack(instances)
    assert [i.instance_number for i in ordered] == sorted(numbers)
    assert positions == [None] * len(numbers)


def test_uneven_spacing_and_gaps_are_kept():
    offsets = [0.0, 2.5, 5.0, 12.5, 13.0]
    instances = [_inst(i, (0.0, 0.0, z), (1, 0, 0, 0, 1, 0), number=len(offsets) - i) for i, z in enumerate(offsets)]
    _, positions = order_stack(list(reversed(instances)))
    assert positions == offsets


def test_localizer_and_other_matrix_form_their_own_stacks():
    axial = [_inst(i, (0, 0, float(i)), (1, 0, 0, 0, 1, 0), number=i + 2) for i in range(5)]
    localizer = _inst(10, (0, 0, 0), SAGITTAL, number=1)
    nearly_axial = _inst(11, (0, 0, 9.0), (1, 0, 0, 0, 1, 0.00001), number=20)  # header rounding: same plane
    other_size = _inst(12, (0, 0, 3.0), (1, 0, 0, 0, 1, 0), number=30, rows=16)
    groups = split_stacks([localizer, *axial, nearly_axial, other_size])
    assert [len(g) for g in groups] == [6, 1, 1]
    assert groups[0][-1] is nearly_axial
    assert groups[1] == [localizer] and groups[2] == [other_size]


def test_scanned_folder_groups_patients_studies_series_and_stacks(tmp_path):
    study, series = generate_uid(), generate_uid()
    names = [f"x{n}" for n in random.Random(5).sample(range(1000), 20)]
    paths = write_series(tmp_path / "p1", 20, spacing=1.25, origin=(-100, -100, 40), orientation=CORONAL,
                         names=names, study_uid=study, series_uid=series, patient_id="P1", patient_name="B^Pat")
    write_image(tmp_path / "p1" / "scout", study_uid=study, series_uid=series, orientation=SAGITTAL,
                instance_number=1, patient_id="P1", patient_name="B^Pat")
    write_image(tmp_path / "p1" / "other_series", study_uid=study, series_number=2, modality="CT",
                patient_id="P1", patient_name="B^Pat")
    write_series(tmp_path / "p2", 3, patient_id="P2", patient_name="A^Pat", modality="MR")
    # the same instance copied into another folder of the export is kept once
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "dup").write_bytes(paths[3].read_bytes())

    studies = build_studies(scan([str(tmp_path)], use_cache=False).instances)
    assert [s.patient_id for s in studies] == ["P2", "P1"]  # ordered by patient name
    p1 = studies[1]
    assert p1.study_uid == study and p1.modalities == ["CT"]
    assert [s.number for s in p1.series] == [1, 2]
    main = p1.series[0]
    assert [len(stack.instances) for stack in main.stacks] == [20, 1]
    stack = main.stacks[0]
    import pydicom

    expected = [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in paths]
    assert [i.sop_instance_uid for i in stack.instances] == expected
    assert sum(1 for i in stack.instances if i.ref.path.endswith(("dup", paths[3].name))) == 1
    # coronal: the normal is (0, 1, 0) . cross -> positions step by the spacing
    assert np.diff(stack.positions) == pytest.approx([1.25] * 19)
    assert main.stacks[1].instances[0].image_orientation == SAGITTAL
    assert stack.frame_count == 20


def test_objects_without_pixels_are_in_no_stack_and_index_still_counts_them(tmp_path):
    """pydicom's real rtplan.dcm (moved into CT_small's study) and rtstruct.dcm (a study of its own): not images
    to scroll, yet listed; `index --json` reports them as SPEC section 2 has it (an instance, rows 0)."""
    from medview.commands.index import index_document

    files = mixed_objects_folder(tmp_path)
    result = scan([str(tmp_path)], use_cache=False)
    assert result.errors == []  # usable DICOM: neither an error nor left out
    studies = build_studies(result.instances)
    ct_study, struct_study = sorted(studies, key=lambda s: bool(s.stacks), reverse=True)
    # images plus an object: only the image series has a stack
    assert [inst.ref.path for stack in ct_study.stacks for inst in stack.instances] == [str(files["ct"])]
    assert [inst.ref.path for inst in ct_study.objects] == [str(files["plan"])]
    plan_series = next(s for s in ct_study.series if s.modality == "RTPLAN")
    assert plan_series.stacks == [] and not plan_series.has_images and plan_series.instances == ct_study.objects
    # objects only: still a study, with nothing to show
    assert struct_study.stacks == [] and struct_study.modalities == ["RTSTRUCT"]
    assert [inst.ref.path for inst in struct_study.objects] == [str(files["struct"])]

    doc = index_document(result, studies)
    series = {s["modality"]: s for study in doc["studies"] for s in study["series"]}
    assert series["CT"] | {"series_uid": ""} == {"series_uid": "", "modality": "CT", "description": "", "number": 1,
                                                 "instances": 1, "frames": 1, "rows": 128, "columns": 128}
    for modality in ("RTPLAN", "RTSTRUCT"):
        assert (series[modality]["instances"], series[modality]["frames"]) == (1, 1)
        assert (series[modality]["rows"], series[modality]["columns"]) == (0, 0)
    assert [study["modalities"] for study in doc["studies"]] == [["CT", "RTPLAN"], ["RTSTRUCT"]]
