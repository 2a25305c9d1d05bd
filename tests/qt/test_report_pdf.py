"""The PDF report per case: opened with pypdf, its text and images checked; also through `medview export`."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from pypdf import PdfReader

from medview.cli import main
from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.review.anonymize import Pseudonymizer
from medview.core.review.export import cached_heatmaps, collect_cases, export_cases
from medview.core.review.store import ReviewStore
from medview.qt.review.report_pdf import overlay_heatmap, write_case_pdf
from tests.review_data import MODEL, add_corrected_ctr, ctr_prediction, make_reviewed_source


@pytest.fixture
def reviewed(tmp_path):
    src = make_reviewed_source(tmp_path / "src")
    studies = build_studies(scan([str(src.root)], use_cache=False).instances)
    with ReviewStore() as store:
        records = {r.study_uid: r for r in collect_cases(studies, store)}
    return src, records


def _text(path):
    reader = PdfReader(path)
    # NFKC: the embedded font's ligatures ("ﬀ" in "effusion") come back as single characters
    return reader, " ".join(" ".join(unicodedata.normalize("NFKC", page.extract_text()).split())
                            for page in reader.pages)


def test_pdf_has_patient_findings_verdicts_and_key_image(reviewed, tmp_path):
    src, records = reviewed
    path = write_case_pdf(records[src.case_a["study"]], tmp_path / "a.pdf")
    reader, text = _text(path)
    assert reader.metadata.title == "medview case report"
    for expected in ("Doe, Jane", "PAT-4711", "2024-03-10", "ACC-PAT-4711", "reviewed", "Dr Ada",
                     "Nodule right upper zone", "nodule", "0.870", "agree", "effusion", "no verdict",
                     MODEL["model_name"], MODEL["model_version"], "Research use only", "not for diagnosis",
                     "Key images", "CR series 1, image 1"):
        assert expected in text, expected
    images = [img for page in reader.pages for img in page.images]
    assert len(images) == 1
    assert images[0].image.size[0] == images[0].image.size[1]  # the square 64 x 64 radiograph, not a blank

    b = write_case_pdf(records[src.case_b["study"]], tmp_path / "b.pdf")
    _, text_b = _text(b)
    assert "Roe, Richard" in text_b and "^" not in text_b and "disagree" in text_b and "not signed off" in text_b
    assert "Doe" not in text_b
    assert not [img for page in PdfReader(b).pages for img in page.images]  # no key images in case B


def test_anonymized_pdf_has_no_identity(reviewed, tmp_path):
    src, records = reviewed
    anon = Pseudonymizer()
    path = write_case_pdf(records[src.case_a["study"]], tmp_path / "a.pdf", anon=anon)
    _, text = _text(path)
    assert anon.patient("PAT-4711") in text and "agree" in text and "Research use only" in text
    for identity in ("Doe", "Jane", "PAT-4711", "ACC-PAT", "2024-03-10", "Nodule right upper", src.case_a["study"]):
        assert identity not in text, identity


def test_overlay_heatmap_blends_only_where_hot():
    image = np.full((8, 8), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    out = overlay_heatmap(image, heat)
    assert out.shape == (8, 8, 3)
    assert (out[2:, 2:] == 100).all()  # cold: unchanged grey
    hot = out[0, 0].astype(int)
    assert hot[0] > 100 + 40 and hot[0] > hot[2]  # hot: the viewer's warm colours, well above the grey
    faint = overlay_heatmap(image, heat * 0.2)
    assert (faint == 100).all()  # a map drawn at 0.2 strength is below the colour map's transparent floor


def test_key_image_heatmap_from_the_ai_cache(reviewed, tmp_path):
    from medview.core.inference.cache import ResultCache
    from medview.core.inference.results import Prediction

    src, records = reviewed
    heat = np.zeros((2, 8, 8), np.float32)
    heat[0, 2:5, 2:5] = 1.0
    cache = ResultCache()
    cache.put(src.case_a["sop"], 0, MODEL["model_checksum"], "the results key of the bundle that scored it",
              Prediction(scores={"nodule": 0.87, "effusion": 0.12}, flagged=["nodule"], heatmap=heat,
                         model=f"{MODEL['model_name']}@{MODEL['model_version']}"))
    cache.close()
    record = records[src.case_a["study"]]
    maps = cached_heatmaps(record)
    assert list(maps) == [(src.case_a["sop"], 0)] and maps[(src.case_a["sop"], 0)][0] == "nodule"
    [path] = export_cases([record], tmp_path / "out", ["pdf"], heatmaps=cached_heatmaps,
                          pdf_writer=write_case_pdf)
    _, text = _text(path)
    assert "AI heatmap of the flagged finding nodule" in text


def test_export_cli_pdf(tmp_path, capsys):
    src = make_reviewed_source(tmp_path / "src")
    out = tmp_path / "pdf"
    assert main(["export", str(src.root), "--out", str(out), "--format", "pdf", "--anonymize"]) == 0, \
        capsys.readouterr().err
    pdfs = sorted(out.glob("*.pdf"))
    assert len(pdfs) == 2
    for pdf in pdfs:
        _, text = _text(pdf)
        assert "ANON-" in text and "Doe" not in text and "Roe" not in text


def test_pdf_has_the_model_and_corrected_ctr_unbroken_words_and_readable_names(tmp_path):
    src = make_reviewed_source(tmp_path / "src")
    add_corrected_ctr(src, reviewer="Demo^Ines")
    studies = build_studies(scan([str(src.root)], use_cache=False).instances)
    with ReviewStore() as store:
        [record] = [r for r in collect_cases(studies, store) if r.study_uid == src.case_a["study"]]
    ai = {(src.case_a["sop"], 0): ctr_prediction(masks=False)}
    [path] = export_cases([record], tmp_path / "out", ["pdf"], pdf_writer=write_case_pdf,
                          predictions=lambda r: ai)
    _, text = _text(path)
    assert "Cardiothoracic ratio (CTR) 0.42 0.5 0.50 Demo, Ines" in text  # the model's, then the reader's
    assert "cardiomegaly 0.810" in text and "Demo^Ines" not in text
