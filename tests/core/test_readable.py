"""Person names and dates as every screen, report and file name shows them."""

from __future__ import annotations

from datetime import date

from medview.core.dicom.readable import parse_date, readable_date, readable_name


def test_person_names_read_as_people_write_them():
    assert readable_name("Doe^Jane^M^Dr^III") == "Doe, Dr Jane M, III"
    assert readable_name("Doe^Jane") == "Doe, Jane"
    assert readable_name("Roe^^^^") == "Roe"
    assert readable_name("Dr Ada") == "Dr Ada"  # no components: a login, a pseudonym
    assert readable_name("Yamada^Tarou=山田^太郎=やまだ^たろう") == "Yamada, Tarou"  # the alphabetic group
    assert readable_name(None) == readable_name("") == ""


def test_dates_read_as_iso_and_parse_only_when_real():
    assert readable_date("20240310") == "2024-03-10"
    assert readable_date("20240310093000") == "2024-03-10"  # the date of a DT
    assert readable_date("2024") == "2024" and readable_date(None) == ""
    assert parse_date("20240229") == date(2024, 2, 29)
    assert parse_date("20230229") is None and parse_date("") is None and parse_date("abc") is None
