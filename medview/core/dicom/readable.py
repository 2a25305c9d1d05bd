"""DICOM person names and dates as people read them: one formatter each, for every screen, report and file name."""

from __future__ import annotations

from datetime import date


def readable_name(value: str | None) -> str:
    """A DICOM PN (PS3.5 6.2) as people write it: "Doe^Jane^M^Dr^III" -> "Doe, Dr Jane M, III".

    Only the alphabetic group is shown (ideographic and phonetic groups follow "="); a name without components
    ("Dr Ada", a login, a pseudonym) stays as it is.
    """
    text = str(value or "").split("=")[0]
    if "^" not in text:
        return text.strip()
    family, given, middle, prefix, suffix = (text.split("^") + [""] * 5)[:5]
    rest = " ".join(part.strip() for part in (prefix, given, middle) if part.strip())
    shown = ", ".join(part for part in (family.strip(), rest) if part)
    return f"{shown}, {suffix.strip()}" if suffix.strip() else shown


def parse_date(value: str | None) -> date | None:
    """A DICOM DA "YYYYMMDD" (or the date part of a DT) as a date; None where it is empty or not a real date."""
    text = str(value or "").strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def readable_date(value: str | None) -> str:
    """"20240310" -> "2024-03-10" (ISO 8601, unambiguous in every country); anything else as it is."""
    text = str(value or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) >= 8 and text[:8].isdigit() else text
