"""The AI's results in the words the findings panel, the worklist and the label on the image use.

Plain functions of plain data (scores, the `measurements` of a `Prediction`), so the wording is tested without
a window and is the same wherever it appears.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CTR_THRESHOLD = 0.5  # the usual upper limit of normal on a PA radiograph, where a model names none


def format_score(score: float, digits: int = 2) -> str:
    """A probability as shown: "0.93"; never "1.00" or "0.00", which read as certainty ("> 0.99", "< 0.01")."""
    text = f"{score:.{digits}f}"
    step = 10.0 ** -digits
    if text == f"{1.0:.{digits}f}":
        return f"> {1.0 - step:.{digits}f}"
    if text == f"{0.0:.{digits}f}":
        return f"< {step:.{digits}f}"
    return text


def ctr_threshold(measurement: dict) -> float:
    value = measurement.get("threshold")
    return float(value) if isinstance(value, (int, float)) else DEFAULT_CTR_THRESHOLD


def ratio_label(value: float, threshold: float, model_value: float | None = None) -> str:
    """The label beside the lines: "CTR 0.56 ≥ 0.50"; corrected by the reader: "CTR 0.52 ≥ 0.50 (corrected;
    model 0.56)"."""
    sign = "≥" if value >= threshold else "<"
    text = f"CTR {value:.2f} {sign} {threshold:.2f}"
    return text if model_value is None else f"{text} (corrected; model {model_value:.2f})"


def ratio_sentence(value: float, threshold: float, score: float | None, score_threshold: float | None,
                   model_value: float | None = None, note: str | None = None) -> str:
    """Why a case is flagged or not, in one sentence: the ratio against its threshold, then the score.

    "Cardiothoracic ratio 0.56 measured, at or above the 0.50 threshold (score 0.93): enlarged cardiac
    silhouette." Where the score and the ratio disagree the sentence says so, rather than letting one hide the
    other; `model_value` is the model's ratio when the reader corrected the lines. The measurement's `note`
    (what the reader should know about how it was measured) follows as a sentence of its own, unless the
    reader has corrected the lines.
    """
    sentence = _ratio_sentence(value, threshold, score, score_threshold, model_value)
    if note and model_value is None:
        sentence = f"{sentence} {note[:1].upper()}{note[1:]}."
    return sentence


def _ratio_sentence(value: float, threshold: float, score: float | None, score_threshold: float | None,
                    model_value: float | None) -> str:
    measured = "measured" if model_value is None else f"as corrected by the reader (model {model_value:.2f})"
    enlarged = value >= threshold
    side = "at or above" if enlarged else "below"
    text = f"Cardiothoracic ratio {value:.2f} {measured}, {side} the {threshold:.2f} threshold"
    if score is None:
        return f"{text}{': enlarged cardiac silhouette' if enlarged else ''}."
    flagged = score_threshold is not None and score >= score_threshold
    if score_threshold is None or flagged == enlarged:
        return f"{text} (score {format_score(score)}){': enlarged cardiac silhouette' if enlarged else ''}."
    if flagged:
        return f"{text}; flagged by its score {format_score(score)} (threshold {score_threshold:.2f})."
    return f"{text}, but not flagged: its score {format_score(score)} is below {score_threshold:.2f}."


def not_applicable_text(reason: str, modalities=(), modality: str = "") -> str:
    """The panel's line for an image outside the model's use: "Not applicable: lateral view"; without a
    reason (another modality, found from the header) it names what the model reads."""
    if reason:
        return f"Not applicable: {reason}"
    return (f"Not applicable: the model reads {', '.join(modalities)} images; "
            f"this is {modality or 'another modality'}.")


def case_not_applicable_reason(reasons) -> str:
    """One reason for a case whose images are all outside the model's use ("" where none was given)."""
    distinct = list(dict.fromkeys(r for r in reasons if r))
    return "; ".join(distinct)


@dataclass(frozen=True)
class AiBrief:
    """What the AI said of one image, in a viewport's title: its main finding's score and the ratio it measured."""

    label: str  # the finding ("cardiomegaly")
    score: float
    ctr: float | None = None  # the cardiothoracic ratio the model measured


def ai_brief_text(brief: AiBrief | None, before: AiBrief | None = None) -> str:
    """"AI cardiomegaly 0.93, CTR 0.56"; with `before` (the prior's) the ratio's change: "CTR 0.49 → 0.56"."""
    forms = ai_brief_forms(brief, before)
    return forms[0] if forms else ""


def ai_brief_forms(brief: AiBrief | None, before: AiBrief | None = None) -> list[str]:
    """The same, longest first, for a narrow title: "AI cardiomegaly 0.93, CTR 0.49 → 0.56", "AI 0.93, CTR 0.49
    → 0.56", "CTR 0.49 → 0.56" (the ratio's change is what a comparison is read for); [] without a brief."""
    if brief is None:
        return []
    score = format_score(brief.score)
    if brief.ctr is None:
        return [f"AI {brief.label.replace('_', ' ')} {score}", f"AI {score}"]
    ratio = f"CTR {brief.ctr:.2f}"
    if before is not None and before.ctr is not None:
        ratio = f"CTR {before.ctr:.2f} → {brief.ctr:.2f}"
    return [f"AI {brief.label.replace('_', ' ')} {score}, {ratio}", f"AI {score}, {ratio}", ratio]
