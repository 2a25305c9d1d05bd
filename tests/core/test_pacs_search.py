"""The PACS panel's logic without Qt: servers offered, the query from what the reader typed, and where each
study stands (the worklist's From cell, the panel's Here cell)."""

from __future__ import annotations

import datetime as dt

import pytest

from medview.core.net import PacsCache, PacsError
from medview.core.net.cache import InstanceKey
from medview.core.net.search import Arrivals, build_query, date_range, here_text, name_pattern, server_names
from medview.core.net.transfer import RetrieveResult
from tests.core.test_pacs import write_settings

TODAY = dt.date(2024, 3, 10)


def test_server_names_in_the_order_written(medview_home):
    assert server_names() == []
    write_settings(medview_home, """
[servers.web]
url = "http://127.0.0.1:8042/dicom-web"

[servers.main]
url = "dicom://PACS@127.0.0.1:104"
""")
    assert server_names() == ["web", "main"]
    write_settings(medview_home, "[servers\n")
    with pytest.raises(PacsError, match="servers.toml: cannot be read"):
        server_names()


@pytest.mark.parametrize("date_from, date_to, expected", [
    ("", "", ""),
    ("2024-01-05", "", "20240105-"),
    ("", "20240131", "-20240131"),
    ("2024-01-01", "2024-01-31", "20240101-20240131"),
    ("today", "today", "20240310"),
    ("yesterday", "Today", "20240309-20240310"),
])
def test_date_range_as_a_reader_types_it(date_from, date_to, expected):
    assert date_range(date_from, date_to, TODAY) == expected


@pytest.mark.parametrize("date_from, date_to, message", [
    ("2024-13-01", "", "the date from '2024-13-01' is not a date"),
    ("", "10.03.2024", "the date to '10.03.2024' is not a date"),
    ("2024-02-01", "2024-01-01", "the date from (2024-02-01) is after the date to (2024-01-01)"),
])
def test_a_date_that_cannot_be_used_is_named(date_from, date_to, message):
    with pytest.raises(PacsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        date_range(date_from, date_to, TODAY)


def test_names_match_from_their_beginning_and_a_comma_is_the_dicom_caret():
    assert name_pattern("ct") == "ct*"
    assert name_pattern("Doe, Jane") == "Doe^Jane*"
    assert name_pattern("Do?^J*") == "Do?^J*"
    assert name_pattern("  ") == ""


def test_query_from_the_fields():
    query = build_query(" PAT-1 ", "doe", "2024-03-01", "", "cr", " ACC7 ", today=TODAY)
    assert query.filters() == {"PatientID": "PAT-1", "PatientName": "doe*", "StudyDate": "20240301-",
                               "ModalitiesInStudy": "CR", "AccessionNumber": "ACC7", "StudyInstanceUID": ""}
    with pytest.raises(PacsError, match="modality 'C R' is not a DICOM modality"):
        build_query(modality="c r")


def test_arrivals_say_where_a_study_came_from_and_how_far_it_got(tmp_path):
    arrivals = Arrivals()
    assert arrivals.source_text("1.2.3") == "local" and not arrivals.any_remote(["1.2.3"])
    arrivals.retrieving("1.2.3", "orthanc")
    assert arrivals.source_text("1.2.3") == "orthanc …"
    arrivals.progress("1.2.3", 12, 40)
    assert arrivals.source_text("1.2.3") == "orthanc 12/40"
    arrivals.pushed("1.2.3", "MODALITY")  # its own C-MOVE arriving at the listener: still being retrieved
    assert arrivals.source_text("1.2.3") == "orthanc 12/40"
    missing = [InstanceKey("1.2.3.1", f"1.2.3.1.{i}") for i in range(3)]
    arrivals.retrieved("1.2.3", RetrieveResult("1.2.3", tmp_path, 40, 37, 0, missing, "cancelled"))
    assert arrivals.source_text("1.2.3") == "orthanc: 3 missing"
    assert "3 of 40 instances missing (cancelled)" in arrivals.source_tip("1.2.3")

    arrivals.pushed("1.2.4")
    assert arrivals.source_text("1.2.4") == "pushed"
    arrivals.pushed("1.2.4", "ORTHANC")
    assert arrivals.source_text("1.2.4") == "pushed by ORTHANC" and arrivals.any_remote(["9", "1.2.4"])


def test_here_text_from_the_cache_and_the_transfer(tmp_path):
    cache = PacsCache(tmp_path / "pacs")
    arrivals = Arrivals()
    assert here_text("1.2.3", 2, cache, arrivals) == ""
    cache.store_bytes(b"x", "1.2.3", "1.2.3.1", "1.2.3.1.1")
    cache.record_expected("1.2.3", {InstanceKey("1.2.3.1", "1.2.3.1.1"), InstanceKey("1.2.3.1", "1.2.3.1.2")},
                          "orthanc")
    assert here_text("1.2.3", 2, cache, arrivals) == "part here (1 missing)"
    arrivals.retrieving("1.2.3", "orthanc")
    arrivals.progress("1.2.3", 1, 2)
    assert here_text("1.2.3", 2, cache, arrivals) == "retrieving 1/2"
    cache.store_bytes(b"x", "1.2.3", "1.2.3.1", "1.2.3.1.2")
    arrivals.retrieved("1.2.3", RetrieveResult("1.2.3", tmp_path, 2, 1, 1))
    assert here_text("1.2.3", 2, cache, arrivals) == "here"


def test_a_cache_left_by_an_earlier_session_says_where_each_study_came_from(tmp_path):
    cache = PacsCache(tmp_path / "pacs")
    cache.store_bytes(b"x", "1.2.3", "1.2.3.1", "1.2.3.1.1")  # retrieved in part from a named server
    cache.record_expected("1.2.3", {InstanceKey("1.2.3.1", "1.2.3.1.1"), InstanceKey("1.2.3.1", "1.2.3.1.2")},
                          "orthanc (dicom://ORTHANC@127.0.0.1:4242)", "orthanc")
    cache.store_bytes(b"x", "1.2.4", "1.2.4.1", "1.2.4.1.1")  # pushed by a modality
    cache.note_arrival("1.2.4", "CT_SCANNER")
    cache.store_bytes(b"x", "1.2.5", "1.2.5.1", "1.2.5.1.1")  # its association never ended (no state)
    hostile = "../1.2.6"
    cache.store_bytes(b"x", hostile, "1.2.6.1", "1.2.6.1.1")
    url = "dicom://PACS@pacs:104"  # a server given as a URL: its name is the URL
    cache.record_expected(hostile, {InstanceKey("1.2.6.1", "1.2.6.1.1")}, url, url)

    arrivals = Arrivals()
    arrivals.retrieving("1.2.5", "orthanc")  # known this session: stays as it is
    assert sorted(arrivals.add_cached(cache)) == sorted(["1.2.3", "1.2.4", hostile])
    assert arrivals.source_text("1.2.3") == "orthanc: 1 missing"
    assert "1 of 2 instances missing" in arrivals.source_tip("1.2.3")
    assert arrivals.source_text("1.2.4") == "pushed by CT_SCANNER"
    assert arrivals.source_text(hostile) == url  # by its UID, not its folder's hashed name
    assert arrivals.source_text("1.2.5") == "orthanc …"
    fresh = Arrivals()
    fresh.add_cached(cache)
    assert fresh.source_text("1.2.5") == "pushed"
