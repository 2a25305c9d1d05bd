"""Validation figures of a binary finding: ROC AUC, sensitivity/specificity at a threshold, calibration.

Pure numpy, so the training script, the bundled-model test and the benchmarks compute them the same way.
"""

from __future__ import annotations

import numpy as np


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties counted half."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs positive and negative cases")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties (1-based)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def sensitivity_specificity(scores, labels, threshold: float) -> tuple[float, float]:
    """At `threshold` (flagged when score >= threshold, as the app does)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    flagged = scores >= threshold
    sens = float((flagged & labels).sum() / max(1, labels.sum()))
    spec = float((~flagged & ~labels).sum() / max(1, (~labels).sum()))
    return sens, spec


def calibration(scores, labels, bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error and the reliability table (equal-width bins of the score)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        mean_score, observed = float(scores[mask].mean()), float(labels[mask].mean())
        ece += mask.mean() * abs(mean_score - observed)
        table.append({"bin": [round(edges[b], 2), round(edges[b + 1], 2)], "n": int(mask.sum()),
                      "mean_score": round(mean_score, 3), "observed": round(observed, 3)})
    return float(ece), table


def summary(scores, labels, threshold: float) -> dict:
    """All figures the README and the tests quote, in one dict."""
    sens, spec = sensitivity_specificity(scores, labels, threshold)
    ece, table = calibration(scores, labels)
    labels = np.asarray(labels).astype(bool)
    return {"n": int(len(labels)), "positives": int(labels.sum()), "auc": roc_auc(scores, labels),
            "threshold": threshold, "sensitivity": sens, "specificity": spec, "ece": ece, "reliability": table}
