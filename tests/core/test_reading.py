"""The reading model without Qt: hanging protocols, priors, linked scrolling, layouts and `reading_state()`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medview.core.dicom.model import InstanceInfo, Study
from medview.core.dicom.series import build_studies
from medview.core.dicom.source import SourceRef
from medview.core.reading import NO_PRIOR, PAGE, ReadingSession, Viewport, load_protocols
from medview.core.reading.facts import SeriesFacts
from medview.core.reading.linking import linked_index, nearest_slice, relative_index
from medview.core.reading.priors import time_before
from medview.core.reading.protocols import USER_FILE

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
VIEWPORT_KEYS = {"study_uid", "series_uid", "sop_instance_uid", "frame", "frames", "loaded", "plane", "position",
                 "window", "invert", "zoom", "rotation", "flip", "prior"}


class Archive:
    """Studies made of InstanceInfo only (no files), and the header facts each series would give."""

    def __init__(self):
        self.instances: list[InstanceInfo] = []
        self.facts: dict[str, SeriesFacts] = {}

    def series(self, study_uid: str, series_uid: str, *, modality: str, patient: tuple[str, str, str],
               date: str, time: str = "120000", images: int = 1, positions=None, orientation=AXIAL,
               description: str = "", number: int = 1, body_part: str = "", frame: str = "") -> None:
        """`patient`: (ID, name, birth date); `positions`: z of each image (mm), else no geometry."""
        patient_id, name, birth = patient
        self.facts[series_uid] = SeriesFacts(birth, body_part, frame)
        for i in range(images):
            z = positions[i] if positions is not None else None
            self.instances.append(InstanceInfo(
                ref=SourceRef(f"/nowhere/{series_uid}/{i}.dcm"), sop_instance_uid=f"{series_uid}.{i + 1}",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.2", study_uid=study_uid, series_uid=series_uid,
                modality=modality, patient_id=patient_id, patient_name=name, study_date=date, study_time=time,
                series_description=description, series_number=number, instance_number=i + 1, rows=8, columns=8,
                bits_allocated=16, bits_stored=12, photometric="MONOCHROME2",
                image_position=(-3.5, -3.5, float(z)) if z is not None else None,
                image_orientation=orientation if z is not None else None,
                pixel_spacing=(1.0, 1.0) if z is not None else None))

    def radiograph(self, study_uid: str, patient, date: str, *, modality="CR", body_part="CHEST", time="120000"):
        self.series(study_uid, study_uid + ".1", modality=modality, patient=patient, date=date, time=time,
                    body_part=body_part, description="CHEST PA")

    def studies(self) -> list[Study]:
        return build_studies(self.instances)

    def session(self, **kwargs) -> ReadingSession:
        protocols = kwargs.pop("protocols", None) or load_protocols(Path("/nowhere/hanging_protocols.json"))
        return ReadingSession(self.studies(), protocols=protocols,
                              read_facts=lambda inst: self.facts[inst.series_uid], **kwargs)


ANNA = ("PAT1", "Demo^Anna", "19600101")
OTHER_ANNA = ("PAT1", "Demo^Anna", "19710505")  # the same ID from another source: another person


def ct_study(archive: Archive, study_uid: str, patient=ANNA, date="20240301", frame="1.2.3.frame",
             axial_positions=None, descriptions=("SOFT TISSUE 5MM",)):
    """A CT: a one-image topogram (series 1), then axial series (2, 3...) of 30 slices 5 mm apart."""
    archive.series(study_uid, study_uid + ".1", modality="CT", patient=patient, date=date, images=1,
                   positions=[0.0], orientation=CORONAL, description="TOPOGRAM", number=1, body_part="CHEST",
                   frame=frame)
    for k, description in enumerate(descriptions):
        positions = axial_positions or [5.0 * i for i in range(30)]
        archive.series(study_uid, f"{study_uid}.{k + 2}", modality="CT", patient=patient, date=date,
                       images=len(positions), positions=positions, description=description, number=k + 2,
                       body_part="CHEST", frame=frame)


# ------------------------------------------------------------------------------------------- protocols


def test_chest_radiograph_opens_alone_and_p_shows_it_beside_the_prior_then_back():
    a = Archive()
    a.radiograph("1.1", ANNA, "20240601")
    a.radiograph("1.0", ANNA, "20230110")
    session = a.session()
    assert session.open_case("1.1")
    state = session.reading_state()
    assert state["layout"] == [1, 1] and state["viewports"][0]["study_uid"] == "1.1"
    assert state["case"] == {"study_uid": "1.1", "patient_id": "PAT1"}
    before = session.viewports
    assert session.shown_prior is None
    assert session.compare_with_prior() is None and session.comparing
    state = session.reading_state()
    assert state["layout"] == [1, 2] and state["active"] == 0
    assert [(v["study_uid"], v["prior"]) for v in state["viewports"]] == [("1.1", False), ("1.0", True)]
    assert session.shown_prior.study_uid == "1.0"  # the date the status bar names
    assert session.compare_with_prior() is None and not session.comparing  # P again: back
    assert session.viewports is before and session.reading_state()["layout"] == [1, 1]
    assert session.shown_prior is None


def test_ct_opens_its_main_series_and_compares_with_the_priors_matching_series():
    a = Archive()
    ct_study(a, "2.2", descriptions=("SOFT TISSUE 5MM",))
    ct_study(a, "2.1", date="20220301", frame="1.2.3.old", descriptions=("LUNG 1MM", "SOFT TISSUE 5MM"))
    session = a.session()
    session.open_case("2.2")
    viewport = session.reading_state()["viewports"][0]
    assert viewport["series_uid"] == "2.2.2" and viewport["frames"] == 30  # the axial series, not the topogram
    assert session.compare_with_prior() is None
    state = session.reading_state()
    assert state["layout"] == [1, 2] and state["linked"]  # the CT protocol links the comparison
    assert [(v["series_uid"], v["prior"]) for v in state["viewports"]] == [("2.2.2", False), ("2.1.3", True)]


def test_p_compares_the_series_being_read_with_the_priors_matching_one():
    a = Archive()
    ct_study(a, "2.2", descriptions=("SOFT TISSUE 5MM", "LUNG 1MM"))
    ct_study(a, "2.1", date="20220301", frame="1.2.3.old", descriptions=("LUNG 1MM", "SOFT TISSUE 5MM"))
    session = a.session()
    session.open_case("2.2")
    session.next_series()
    session.go_to(12)
    session.set_window(-600, 1500)
    assert session.viewport.stack.series_uid == "2.2.3"
    assert session.compare_with_prior() is None
    assert [v.stack.series_uid for v in session.viewports] == ["2.2.3", "2.1.2"]  # LUNG beside LUNG
    assert session.viewports[0].view.index == 12 and session.viewports[1].view.index == 12  # linked by fraction
    assert [v["window"] for v in session.reading_state()["viewports"]] == [[-600.0, 1500.0]] * 2
    session.compare_with_prior()
    assert session.viewport.stack.series_uid == "2.2.3" and session.viewport.view.index == 12


def test_mr_hangs_up_to_four_series_in_two_by_two_without_localizers():
    a = Archive()
    mr = dict(modality="MR", patient=ANNA, date="20240301", body_part="BRAIN")
    a.series("3.1", "3.1.1", images=3, positions=[0, 1, 2], orientation=CORONAL, description="LOC", number=1, **mr)
    for n, description in enumerate(["T1", "T2", "FLAIR", "DWI", "SWI"], start=2):
        a.series("3.1", f"3.1.{n}", images=20, positions=list(range(20)), description=description, number=n, **mr)
    a.series("3.2", "3.2.1", images=12, positions=list(range(12)), description="T2", number=1,
             **dict(mr, date="20240401"))
    session = a.session()
    session.open_case("3.1")
    state = session.reading_state()
    assert state["layout"] == [2, 2]
    assert [v["series_uid"] for v in state["viewports"]] == ["3.1.2", "3.1.3", "3.1.4", "3.1.5"]
    session.open_case("3.2")  # one series: the others stay empty
    assert [v["series_uid"] for v in session.reading_state()["viewports"]] == ["3.2.1", None, None, None]


def test_a_study_no_protocol_names_opens_its_first_stack():
    a = Archive()
    a.series("4.1", "4.1.1", modality="US", patient=ANNA, date="20240301", images=4)
    session = a.session()
    session.open_case("4.1")
    assert session.reading_state()["layout"] == [1, 1]
    assert session.reading_state()["viewports"][0]["series_uid"] == "4.1.1"


# ------------------------------------------------------------------------------------------- priors


def test_the_prior_is_the_most_recent_earlier_study_of_the_same_kind_and_body_part():
    a = Archive()
    a.radiograph("5.now", ANNA, "20240601")
    a.radiograph("5.2019", ANNA, "20190301")
    a.radiograph("5.2022", ANNA, "20220301", modality="DX")  # DX and CR are both radiographs
    a.radiograph("5.same_day_later", ANNA, "20240601", time="150000")  # later the same day: not a prior
    a.radiograph("5.2025", ANNA, "20250101")  # later: not a prior
    a.radiograph("5.hand", ANNA, "20231201", body_part="HAND")
    ct_study(a, "5.ct", date="20231101")
    session = a.session()
    studies = session.studies
    assert session.prior_of(studies["5.now"]).study_uid == "5.2022"
    assert session.prior_of(studies["5.2022"]).study_uid == "5.2019"
    assert session.prior_of(studies["5.2019"]) is None
    assert session.prior_of(studies["5.2025"]).study_uid == "5.same_day_later"
    assert session.prior_of(studies["5.ct.1".rsplit(".", 1)[0]]) is None  # no earlier CT
    assert [s.study_uid for s in session.patient_studies(studies["5.now"])][:2] == ["5.2025", "5.same_day_later"]


def test_a_shared_patient_id_with_another_birth_date_is_another_patient():
    a = Archive()
    a.radiograph("6.now", ANNA, "20240601")
    a.radiograph("6.theirs", OTHER_ANNA, "20230601")  # same ID and name, other birth date
    session = a.session()
    session.open_case("6.now")
    assert session.prior_of(session.case) is None
    assert session.compare_with_prior() == NO_PRIOR and not session.comparing
    assert session.reading_state()["layout"] == [1, 1]
    assert session.patient_studies(session.case) == []


def test_without_a_birth_date_the_name_tells_patients_apart():
    a = Archive()
    a.radiograph("7.now", ("PAT7", "Doe^John", ""), "20240601")
    a.radiograph("7.same", ("PAT7", "DOE^JOHN^^", "19500101"), "20230601")  # one side has no birth date
    a.radiograph("7.other", ("PAT7", "Roe^Richard", ""), "20230901")
    a.radiograph("7.no_id", ("", "Doe^John", ""), "20231001")  # no ID: never matched
    session = a.session()
    assert session.prior_of(session.studies["7.now"]).study_uid == "7.same"


def test_how_long_before_the_current_study_the_prior_was_taken():
    assert time_before("20230110", "20240601") == "1 year 4 months"
    assert time_before("20220601", "20240601") == "2 years"
    assert time_before("20240301", "20240601") == "3 months" and time_before("20240302", "20240601") == "2 months"
    assert time_before("20240506", "20240601") == "3 weeks" and time_before("20240501", "20240601") == "1 month"
    assert time_before("20240529", "20240601") == "3 days"
    assert time_before("20240531", "20240601") == "1 day"
    for earlier, later in (("", "20240601"), ("20240601", "20240601"), ("20250101", "20240601"), ("2024", "x")):
        assert time_before(earlier, later) == ""


def test_finding_a_prior_reads_headers_of_the_same_patient_id_only():
    a = Archive()
    a.radiograph("18.now", ANNA, "20240601")
    a.radiograph("18.old", ANNA, "20200601")
    a.radiograph("18.someone", ("PAT9", "Roe^Richard", "19500101"), "20200601")
    read: list[str] = []
    session = ReadingSession(a.studies(), protocols=load_protocols(Path("/nowhere/x.json")),
                             read_facts=lambda inst: read.append(inst.series_uid) or a.facts[inst.series_uid])
    assert session.prior_of(session.studies["18.now"]).study_uid == "18.old"
    assert sorted(read) == ["18.now.1", "18.old.1"]


def test_studies_opened_later_join_the_priors():
    a = Archive()
    a.radiograph("8.now", ANNA, "20240601")
    session = a.session()
    session.open_case("8.now")
    assert session.compare_with_prior() == NO_PRIOR
    b = Archive()
    b.radiograph("8.old", ANNA, "20200101")
    a.facts.update(b.facts)
    session.add_studies(b.studies())
    assert session.compare_with_prior() is None
    assert [v["study_uid"] for v in session.reading_state()["viewports"]] == ["8.now", "8.old"]
    rescanned = b.studies()  # the same folder scanned again: its new objects are the ones opened
    session.add_studies(rescanned)
    assert session.studies["8.old"] is rescanned[0] and session.order == ["8.now", "8.old"]


# ------------------------------------------------------------------------------------------- linking


def test_nearest_slice_and_relative_index():
    positions = [0.0, 1.0, 2.0, 5.0, 10.0, 20.0]
    assert [nearest_slice(positions, at) for at in (-4, 0.4, 0.6, 3.4, 3.6, 14.9, 15.1, 99)] == [
        0, 0, 1, 2, 3, 4, 5, 5]
    assert relative_index(0, 10, 50) == 0 and relative_index(9, 10, 50) == 49 and relative_index(3, 7, 13) == 6
    assert relative_index(5, 1, 9) == 0 and relative_index(4, 9, 1) == 0


def test_linked_scrolling_in_one_frame_of_reference_follows_patient_position_with_uneven_spacing():
    a = Archive()
    even = [float(z) for z in range(0, 40, 2)]  # 0, 2, ... 38 mm
    uneven = [0.0, 1.0, 2.0, 9.0, 10.0, 30.0, 31.0]
    ct_study(a, "9.1", axial_positions=even, descriptions=("A",))
    a.series("9.1", "9.1.9", modality="CT", patient=ANNA, date="20240301", images=len(uneven), positions=uneven,
             description="B", number=9, body_part="CHEST", frame="1.2.3.frame")
    session = a.session()
    session.open_case("9.1")
    session.set_layout(1, 3)
    assert [v.stack.series_uid for v in session.viewports] == ["9.1.2", "9.1.1", "9.1.9"]
    assert session.toggle_link() is True
    for index, expected in [(0, 0), (1, 2), (3, 3), (5, 4), (9, 4), (10, 4), (11, 5), (15, 5), (16, 6), (19, 6)]:
        session.go_to(index)  # z = 2 * index
        assert session.viewports[2].view.index == expected, (index, 2 * index)
        assert session.viewports[1].view.index == 0  # the topogram: one image
    state = session.reading_state()["viewports"]
    assert state[0]["position"] == [0.0, 0.0, 38.0] and state[2]["position"] == [0.0, 0.0, 31.0]
    session.activate(2)  # from the uneven stack back to the even one
    session.go_to(3)  # z = 9
    assert session.viewports[0].view.index in (4, 5)
    session.toggle_link()
    session.go_to(6)
    assert session.viewports[0].view.index in (4, 5)  # unlinked: the other stays


def test_linked_scrolling_across_frames_of_reference_goes_by_fraction():
    a = Archive()
    ct_study(a, "10.2", date="20240301", frame="1.2.3.new", axial_positions=[5.0 * i for i in range(41)])
    ct_study(a, "10.1", date="20220301", frame="1.2.3.old", axial_positions=[2.5 * i for i in range(81)])
    session = a.session()
    session.open_case("10.2")
    session.compare_with_prior()
    assert session.linked
    for index, expected in [(0, 0), (10, 20), (20, 40), (40, 80)]:
        session.go_to(index)
        assert session.viewports[1].view.index == expected
    # the same positions in one frame would give the slice at the same z instead
    current, prior = session.viewports[0].stack, session.viewports[1].stack
    assert linked_index(current, 10, prior, same_frame=True) == 20
    assert linked_index(prior, 20, current, same_frame=True) == 10


def test_window_and_zoom_follow_while_linked_as_asked():
    a = Archive()
    ct_study(a, "11.1", descriptions=("A", "B"))
    session = a.session()
    session.open_case("11.1")
    session.set_layout(2, 2)
    session.set_window(40, 400)
    assert [v["window"] for v in session.reading_state()["viewports"][:3]] == [[40.0, 400.0], None, None]
    session.toggle_link()
    session.set_window(-600, 1500)
    assert all(v["window"] == [-600.0, 1500.0] for v in session.reading_state()["viewports"][:3])
    session.zoom_by(2.0)
    assert [v.view.zoom for v in session.viewports[:2]] == [2.0, 1.0]  # zoom not linked unless asked
    session.link_zoom = True
    session.pan_by(5, -3)
    assert [(v.view.zoom, v.pan) for v in session.viewports[:2]] == [(2.0, (5, -3)), (2.0, (5, -3))]
    session.reset_view()
    assert session.viewports[1].view.zoom == 1.0 and session.viewports[1].pan == (0.0, 0.0)


def test_shift_s_links_zoom_and_pan_with_scrolling_and_s_unlinks_all():
    a = Archive()
    ct_study(a, "11.2", descriptions=("A", "B"))
    session = a.session()
    session.open_case("11.2")
    session.set_layout(1, 2)
    assert not session.set_zoom_pan(2.0, (0.1, 0.0))  # not linked: the other keeps its view
    assert session.viewports[1].view.zoom == 1.0
    assert session.toggle_zoom_link() and session.linked and session.link_zoom  # links scrolling too
    assert [(v.view.zoom, v.pan) for v in session.viewports] == [(2.0, (0.1, 0.0))] * 2  # taken at once
    assert session.set_zoom_pan(3.0, (-0.2, 0.25))
    assert session.viewports[1].view.zoom == 3.0 and session.viewports[1].pan == (-0.2, 0.25)
    assert not session.toggle_zoom_link() and session.linked  # again: zoom free, scrolling still linked
    session.set_zoom_pan(1.0, (0.0, 0.0))
    assert session.viewports[1].view.zoom == 3.0
    session.toggle_zoom_link()
    assert not session.toggle_link() and not session.link_zoom  # S unlinks zoom with the rest


# ------------------------------------------------------------------------------------------- intents


def test_image_series_and_viewport_intents():
    a = Archive()
    ct_study(a, "12.1", descriptions=("A", "B"))
    session = a.session()
    session.open_case("12.1")
    assert session.viewport.stack.series_uid == "12.1.2"
    assert session.next_image() and session.viewport.view.index == 1
    assert session.scroll(PAGE) and session.viewport.view.index == 11
    assert session.scroll(-PAGE) and session.previous_image() and session.viewport.view.index == 0
    assert not session.previous_image()  # first image: nothing to do
    assert session.last_image() and session.viewport.view.index == 29 and not session.next_image()
    assert session.first_image() and session.viewport.view.index == 0
    assert session.next_series() and session.viewport.stack.series_uid == "12.1.3"
    assert not session.next_series()  # no wrapping
    assert session.previous_series() and session.previous_series() and session.viewport.stack.frame_count == 1
    assert not session.previous_series()
    assert not session.step_viewport(1)  # one viewport: Tab does nothing
    session.choose_layout(4)
    assert session.step_viewport(1) and session.active == 1
    assert session.step_viewport(-1) and session.step_viewport(-1) and session.active == 3
    assert session.set_plane("coronal") and session.reading_state()["viewports"][3]["plane"] == "coronal"
    with pytest.raises(ValueError):
        session.set_plane("oblique")


def test_a_series_picked_goes_in_the_active_viewport_and_closing_the_case_empties_the_layout():
    a = Archive()
    ct_study(a, "16.1", descriptions=("A", "B"))
    ct_study(a, "16.0", date="20200101", descriptions=("A",))
    session = a.session()
    session.open_case("16.1")
    session.choose_layout(2)
    session.toggle_link()
    topogram, first, second = session.case.stacks
    assert session.show_stack(second, 4)
    assert [v.stack for v in session.viewports] == [second, topogram] and session.viewport.view.index == 4
    assert session.show_stack(second, 6) and session.viewport.view.index == 6  # the same series: only the image
    assert not session.show_stack(session.studies["16.0"].stacks[1])  # not a series of the case
    session.close_case()
    assert session.reading_state() == {"case": None, "layout": [1, 1], "active": 0, "linked": False,
                                       "viewports": [Viewport().state()]}
    assert not session.comparing and not session.show_stack(first)


def test_each_series_is_shown_again_at_the_image_it_was_left_at_within_the_case():
    a = Archive()
    ct_study(a, "16.2", descriptions=("A", "B"))
    session = a.session()
    session.open_case("16.2")
    topogram, first, second = session.case.stacks
    assert session.viewport.stack is first and session.viewport.view.index == 0  # the main series, hung
    session.go_to(7)
    assert session.next_series() and session.viewport.stack is second and session.viewport.view.index == 0
    session.go_to(3)
    assert session.previous_series() and session.viewport.view.index == 7  # where the reader left it
    assert session.show_stack(second) and session.viewport.view.index == 3
    assert not session.show_stack(second)  # shown already, no image asked for: nothing changes
    assert session.show_stack(first, 2) and session.viewport.view.index == 2  # an image asked for wins
    session.set_layout(1, 2)
    assert session.viewports[1].stack is topogram and session.viewports[1].view.index == 0
    session.open_case("16.2")  # the case opened again: every series from its start
    assert session.left_at(first) == session.left_at(second) == 0


def test_layouts_keep_their_viewports_and_fill_new_ones_with_unshown_series():
    a = Archive()
    ct_study(a, "13.1", descriptions=("A", "B"))
    session = a.session()
    session.open_case("13.1")
    first = session.viewports[0]
    first.view.go(7)
    assert session.choose_layout(4)  # Ctrl+4: 2×2
    state = session.reading_state()
    assert state["layout"] == [2, 2] and len(state["viewports"]) == 4
    assert [v["series_uid"] for v in state["viewports"]] == ["13.1.2", "13.1.1", "13.1.3", None]
    session.activate(3)
    assert session.choose_layout(2)  # Ctrl+2: 1×2, the active viewport clamped into it
    assert session.reading_state()["layout"] == [1, 2] and session.active == 1
    assert session.viewports[0] is first and first.view.index == 7
    assert session.choose_layout(3) and session.reading_state()["layout"] == [2, 1]
    assert session.choose_layout(1) and len(session.viewports) == 1 and not session.choose_layout(1)
    with pytest.raises(ValueError):
        session.set_layout(5, 1)


def test_cases_follow_the_reading_order():
    a = Archive()
    for uid in ("14.1", "14.2", "14.3"):
        a.radiograph(uid, (uid, "Demo^Anna", "19600101"), "20240601")
    session = a.session()
    session.set_order(["14.3", "14.1", "14.2", "14.unknown"])
    assert session.order == ["14.3", "14.1", "14.2"]
    assert session.step_case(1) and session.case.study_uid == "14.3"
    assert session.step_case(1) and session.case.study_uid == "14.1"
    assert session.step_case(1) and not session.step_case(1) and session.case.study_uid == "14.2"
    assert session.step_case(-1) and session.case.study_uid == "14.1"
    assert not session.open_case("nope")


def test_reading_state_is_json_with_exactly_the_keys_of_the_contract():
    a = Archive()
    a.radiograph("15.1", ANNA, "20240601")
    a.radiograph("15.0", ANNA, "20200601")
    session = a.session()
    empty = session.reading_state()
    assert empty == {"case": None, "layout": [1, 1], "active": 0, "linked": False,
                     "viewports": [empty["viewports"][0]]}
    assert set(empty["viewports"][0]) == VIEWPORT_KEYS
    session.open_case("15.1")
    session.compare_with_prior()
    session.viewports[0].view.rotate_cw()
    session.viewports[0].view.flip_horizontal()
    session.viewports[0].loaded = 1
    state = json.loads(json.dumps(session.reading_state()))
    assert set(state) == {"case", "layout", "active", "linked", "viewports"}
    assert set(state["case"]) == {"study_uid", "patient_id"}
    for viewport in state["viewports"]:
        assert set(viewport) == VIEWPORT_KEYS
    first = state["viewports"][0]
    assert first == {"study_uid": "15.1", "series_uid": "15.1.1", "sop_instance_uid": "15.1.1.1", "frame": 0,
                     "frames": 1, "loaded": 1, "plane": "acquired", "position": None, "window": None,
                     "invert": False, "zoom": 1.0, "rotation": 90, "flip": True, "prior": False}
    assert state["viewports"][1]["prior"] is True


# ------------------------------------------------------------------------------------------- user protocols


USER_CT = {"protocols": [{"name": "CT", "modalities": ["CT"], "layout": [1, 2],
                          "viewports": [{"pick": "main"}, {"pick": "first"}]}]}


def test_a_user_protocol_file_comes_first_and_replaces_the_default_of_its_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEW_HOME", str(tmp_path))
    (tmp_path / USER_FILE).write_text(json.dumps(USER_CT), encoding="utf-8")
    protocols = load_protocols()
    assert protocols.message == "" and protocols.sources[0] == str(tmp_path / USER_FILE)
    assert [p.name for p in protocols.protocols] == ["CT", "Chest radiograph", "MR", "Any study"]
    a = Archive()
    ct_study(a, "16.1")
    session = ReadingSession(a.studies(), read_facts=lambda inst: a.facts[inst.series_uid])
    session.open_case("16.1")
    assert [v["series_uid"] for v in session.reading_state()["viewports"]] == ["16.1.2", "16.1.1"]


@pytest.mark.parametrize("content, problem", [
    ('{"protocols": [', "not valid JSON"),
    (b"\xff\xfe{", "not UTF-8"),
    ('["CT"]', 'a list "protocols"'),
    (json.dumps({"protocols": [{"name": "Big", "modalities": ["CT"], "layout": [5, 1],
                                "viewports": [{"pick": "main"}]}]}), "protocol 1 ('Big'): layout"),
    (json.dumps({"protocols": [{"name": "CT", "modalities": ["CT"], "layout": [1, 1],
                                "viewports": [{"pick": "largest"}]}]}), "viewport 1: pick must be one of"),
    (json.dumps({"protocols": [{"name": "CT", "modalities": ["CT"], "layout": [1, 1],
                                "viewports": [{"pick": "main"}, {"pick": "first"}]}]}), "do not fit a 1×1"),
])
def test_a_bad_user_file_gives_the_defaults_and_a_message_naming_file_and_problem(tmp_path, caplog, content,
                                                                                   problem):
    path = tmp_path / USER_FILE
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    protocols = load_protocols(path)
    assert protocols.message.startswith(f"{path}: ") and problem in protocols.message
    assert protocols.message.endswith("using the default hanging protocols")
    assert [p.name for p in protocols.protocols] == ["Chest radiograph", "CT", "MR", "Any study"]
    assert protocols.message in caplog.text


# ------------------------------------------------------------------------------------------- real files


def test_series_facts_from_the_instance_when_it_carries_them_and_empty_for_an_unreadable_file(tmp_path, caplog):
    from medview.core.reading.facts import read_series_facts

    a = Archive()
    a.radiograph("17.1", ANNA, "20240601")
    inst = a.instances[0]
    assert read_series_facts(inst) == SeriesFacts()  # /nowhere/...: logged, reading goes on without
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not dicom at all")
    inst.ref = SourceRef(str(broken))
    assert read_series_facts(inst) == SeriesFacts()
    inst.patient_birth_date, inst.body_part_examined, inst.frame_of_reference_uid = "19600101", "CHEST", ""
    assert read_series_facts(inst) == SeriesFacts("19600101", "CHEST", "")



def test_demo_data_priors_read_from_the_files(tmp_path, monkeypatch):
    """End to end on `demo-data` files: facts read from the headers, P shows the demo prior."""
    from medview.core.demo import generate_demo
    from medview.core.dicom.scan import scan

    monkeypatch.setenv("MEDVIEW_HOME", str(tmp_path / "home"))
    summary = generate_demo(tmp_path / "demo", cases=2, seed=4, ct_slices=3, priors=True)
    studies = build_studies(scan([str(tmp_path / "demo")], use_cache=False).instances)
    session = ReadingSession(studies)
    assert not session.protocols.message
    current = max((s for s in studies if s.patient_id == "PAT0001"), key=lambda s: s.study_date)
    session.open_case(current.study_uid)
    assert session.compare_with_prior() is None
    files = [session.viewports[i].stack.instances[0].ref.path for i in (0, 1)]
    assert files == [str(summary.radiographs[0]), str(summary.priors[0])]
    ct = next(s for s in studies if "CT" in s.modalities)
    session.open_case(ct.study_uid)
    assert session.viewport.stack.frame_count == 3 and session.compare_with_prior() == NO_PRIOR
    assert session.facts.of_stack(session.viewport.stack).frame_of_reference_uid
