"""The AI's results in words: scores that never read as certainty, the CTR label and the panel's sentence."""

from __future__ import annotations

from medview.core.viewing.findings_text import (
    AiBrief,
    ai_brief_forms,
    ai_brief_text,
    case_not_applicable_reason,
    ctr_threshold,
    format_score,
    not_applicable_text,
    ratio_label,
    ratio_sentence,
)


def test_scores_never_read_as_certainty():
    assert [format_score(p) for p in (0.996, 1.0, 0.93, 0.004, 0.0, 0.01)] == [
        "> 0.99", "> 0.99", "0.93", "< 0.01", "< 0.01", "0.01"]
    assert format_score(0.9996, 3) == "> 0.999" and format_score(0.9994, 3) == "0.999"


def test_ratio_label_and_threshold():
    assert ratio_label(0.56, 0.5) == "CTR 0.56 ≥ 0.50"
    assert ratio_label(0.46, 0.5) == "CTR 0.46 < 0.50"
    assert ratio_label(0.52, 0.5, model_value=0.56) == "CTR 0.52 ≥ 0.50 (corrected; model 0.56)"
    assert ctr_threshold({"threshold": 0.55}) == 0.55 and ctr_threshold({}) == 0.5


def test_sentence_says_why_a_case_is_flagged_or_not():
    assert ratio_sentence(0.56, 0.5, 0.93, 0.5) == (
        "Cardiothoracic ratio 0.56 measured, at or above the 0.50 threshold (score 0.93): enlarged cardiac "
        "silhouette.")
    assert ratio_sentence(0.46, 0.5, 0.12, 0.5) == (
        "Cardiothoracic ratio 0.46 measured, below the 0.50 threshold (score 0.12).")
    assert ratio_sentence(0.48, 0.5, 0.996, 0.5, model_value=0.56) == (
        "Cardiothoracic ratio 0.48 as corrected by the reader (model 0.56), below the 0.50 threshold; flagged by "
        "its score > 0.99 (threshold 0.50).")
    assert ratio_sentence(0.52, 0.5, 0.3, 0.5).endswith("but not flagged: its score 0.30 is below 0.50.")


def test_a_measurement_note_follows_the_sentence_until_the_reader_corrects_the_lines():
    from medview.core.inference.ctr import THORAX_AT_EDGE

    assert ratio_sentence(0.56, 0.5, 0.93, 0.5, note=THORAX_AT_EDGE) == (
        "Cardiothoracic ratio 0.56 measured, at or above the 0.50 threshold (score 0.93): enlarged cardiac "
        "silhouette. The thorax reaches the image edge: the ratio may be overstated a little.")
    assert "edge" not in ratio_sentence(0.52, 0.5, 0.93, 0.5, model_value=0.56, note=THORAX_AT_EDGE)


def test_not_applicable_names_the_reason():
    assert not_applicable_text("lateral view") == "Not applicable: lateral view"
    assert not_applicable_text("", ("CR", "DX"), "CT") == "Not applicable: the model reads CR, DX images; this is CT."
    assert case_not_applicable_reason(["lateral view", "lateral view", ""]) == "lateral view"


def test_ai_brief_beside_a_prior_says_the_score_and_the_ratio_and_its_change():
    now, before = AiBrief("cardiomegaly", 0.934, 0.5625), AiBrief("cardiomegaly", 0.004, 0.49)
    assert ai_brief_text(before) == "AI cardiomegaly < 0.01, CTR 0.49"
    assert ai_brief_text(now, before) == "AI cardiomegaly 0.93, CTR 0.49 → 0.56"
    assert ai_brief_text(now, AiBrief("cardiomegaly", 0.2)) == "AI cardiomegaly 0.93, CTR 0.56"  # no prior ratio
    assert ai_brief_text(AiBrief("pleural_effusion", 0.5)) == "AI pleural effusion 0.50"
    assert ai_brief_text(None, before) == "" and ai_brief_forms(None) == []
    assert ai_brief_forms(now, before) == ["AI cardiomegaly 0.93, CTR 0.49 → 0.56", "AI 0.93, CTR 0.49 → 0.56",
                                           "CTR 0.49 → 0.56"]  # shorter for a narrow title: the change stays
