"""The cardiothoracic ratio measured on masks, and the plausibility check that refuses what is no frontal chest."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from medview.core.inference import ctr

S = 128


def _chest(heart_half: float = 24.0, lung_gap: int = 8, lungs: tuple[bool, bool] = (True, True),
           heart: bool = True, shift: int = 0) -> np.ndarray:
    """Soft masks [2, S, S]: two rectangular lungs from column 14+shift to 114+shift, a round heart between."""
    y, x = np.mgrid[0:S, 0:S].astype(np.float32)
    probs = np.zeros((2, S, S), np.float32)
    left, right = (14 + shift, 64 - lung_gap + shift), (64 + lung_gap + shift, 114 + shift)
    for present, (a, b) in zip(lungs, (left, right)):
        if present:
            # a linear ramp over one pixel at each side: p = 0.5 exactly at a - 0.5 ... b - 0.5
            ramp = np.clip(np.minimum(x - (a - 1), b - x), 0, 1)
            probs[1] = np.maximum(probs[1], ramp * ((y >= 20) & (y < 100)))
    if heart:
        r = np.sqrt((x - 64 - shift) ** 2 + ((y - 80) * 1.5) ** 2)
        probs[0] = np.clip(heart_half + 0.5 - r, 0, 1)
    return probs


def _bfs_sizes(m: np.ndarray) -> list[int]:
    seen, sizes = np.zeros_like(m, bool), []
    for start in zip(*np.nonzero(m)):
        if seen[start]:
            continue
        queue, n = deque([start]), 0
        seen[start] = True
        while queue:
            r, c = queue.popleft()
            n += 1
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < m.shape[0] and 0 <= cc < m.shape[1] and m[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    queue.append((rr, cc))
        sizes.append(n)
    return sorted(sizes, reverse=True)


def test_components_match_a_flood_fill():
    rng = np.random.default_rng(1)
    for _ in range(200):
        m = rng.random((15, 17)) < rng.uniform(0.3, 0.7)
        parts = ctr.components(m)
        assert [int(p.sum()) for p in parts] == _bfs_sizes(m)
        assert np.array_equal(np.sum(parts, axis=0) if parts else np.zeros_like(m), m.astype(int))


def test_measures_the_widest_rows_with_sub_pixel_edges():
    found = ctr.measure(_chest(heart_half=24.0), (S * 4, S * 2))
    assert isinstance(found, ctr.CtrMeasurement)
    # thorax: lungs' outer edges at 13.5 and 113.5 (p crosses 0.5 half a pixel outside the first full pixel)
    assert found.value == pytest.approx(48.0 / 100.0, abs=0.01)
    (t0, tr), (t1, tr2) = found.thorax
    assert tr == tr2 and (t1 - t0) == pytest.approx(100.0 * 2, abs=1.0)  # columns scaled by 2 to the image
    (h0, hr), (h1, hr2) = found.heart
    assert hr == hr2 and hr == pytest.approx((80 + 0.5) * 4 - 0.5, abs=4)  # the heart's widest row, in image rows
    assert found.unsure < ctr.MAX_UNSURE


def test_a_larger_heart_measures_larger():
    small = ctr.measure(_chest(heart_half=20.0), (S, S)).value
    large = ctr.measure(_chest(heart_half=32.0), (S, S)).value
    assert large - small == pytest.approx(24.0 / 100.0, abs=0.02)


@pytest.mark.parametrize("probs, reason", [
    (_chest(lungs=(True, False)), "two lungs not found"),
    (_chest(heart=False), "no heart between the lungs"),
    (_chest(shift=14), "cut off at the image edge"),
    (np.zeros((2, S, S), np.float32), "two lungs not found"),
])
def test_what_is_no_frontal_chest_is_refused_in_words(probs, reason):
    found = ctr.measure(probs, (S, S))
    assert isinstance(found, str) and reason in found


def test_unsure_outlines_are_refused():
    probs = _chest() * 0.6 + 0.2  # everything between 0.2 and 0.8
    probs[probs < 0.5] = 0.0
    found = ctr.measure(probs, (S, S))
    assert found == "the model is not sure of the heart and lung outlines on this image"


def test_score_is_one_half_at_the_threshold_and_flatter_where_unsure():
    assert ctr.score(0.5, 0.0, 0.5, 0.02, 1.0) == pytest.approx(0.5)
    assert ctr.score(0.54, 0.0, 0.5, 0.02, 1.0) > ctr.score(0.54, 0.3, 0.5, 0.02, 1.0) > 0.5
    assert ctr.score(0.46, 0.0, 0.5, 0.02, 1.0) < 0.5
