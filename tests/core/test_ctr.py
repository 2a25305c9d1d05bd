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


def test_the_heart_is_measured_border_to_border_across_levels():
    """The transverse cardiac diameter: the right border's and the left border's greatest reach, at different
    levels (a tilted heart), not the widest single row."""
    probs = _chest(heart=False)
    y, x = np.mgrid[0:S, 0:S].astype(np.float32)
    upper_right = np.sqrt((x - 56) ** 2 + (y - 70) ** 2) <= 12   # the right atrium, higher, to the image left
    lower_left = np.sqrt((x - 72) ** 2 + (y - 86) ** 2) <= 14    # the ventricle, lower, to the image right
    probs[0] = (upper_right | lower_left).astype(np.float32)
    found = ctr.measure(probs, (S, S))
    left = np.flatnonzero((upper_right | lower_left).any(axis=0))
    assert found.value == pytest.approx((left[-1] - left[0] + 1) / 100.0, abs=0.01)
    single_rows = max(np.ptp(np.flatnonzero(r)) + 1 for r in (upper_right | lower_left) if r.any())
    assert found.value > single_rows / 100.0 + 0.02
    (h0, row), (h1, row2) = found.heart
    assert row == row2 and 70 <= row <= 86  # drawn between the two borders' levels


@pytest.mark.parametrize("family", ["demo", "outline", "shapes"])
def test_the_true_masks_of_every_family_measure_their_true_ctr(family):
    """The measurement agrees with how each phantom family defines its truth: on the exact masks, at the
    network's grid, it is within a fraction of a pixel of the generator's CTR."""
    import torch
    import torch.nn.functional as F

    from medview.core.inference.ctr_training import phantom

    errors = []
    for i in range(12):
        pixels, masks, truth, _ = phantom(family, 31337, i, cols=400)
        grid = F.interpolate(torch.from_numpy(masks)[None], size=(S, S), mode="bilinear", align_corners=False,
                             antialias=True)[0].numpy()
        found = ctr.measure(grid, pixels.shape)
        if found == "the thorax is cut off at the image edge":  # a generator's chest may touch the border
            continue
        assert isinstance(found, ctr.CtrMeasurement), found
        errors.append(found.value - truth)
    assert len(errors) >= 9
    assert np.mean(np.abs(errors)) < 0.008
    assert abs(np.mean(errors)) < 0.005


def test_a_lung_grazing_the_edge_is_measured_one_running_along_it_is_not():
    lungs = np.zeros((S, S), bool)
    y, x = np.mgrid[0:S, 0:S]
    lungs |= ((x - 30) / 30.0) ** 2 + ((y - 60) / 40.0) ** 2 <= 1.0   # touches column 0 at one row
    lungs |= ((x - 98) / 26.0) ** 2 + ((y - 60) / 40.0) ** 2 <= 1.0
    assert lungs[:, 0].sum() <= 2 and not ctr.cut_off(lungs) and not ctr.at_side_edge(lungs)
    along = lungs.copy()
    along[40:70, :3] = True  # the margin runs along the edge for 30 of its 81 rows: measured, with a note
    assert not ctr.cut_off(along) and ctr.at_side_edge(along)
    along[20:90, :3] = True  # for 70 of 81 rows: a cropped chest
    assert ctr.cut_off(along)
    bases = lungs.copy()
    bases[100:, 10:60] = True  # the bases run off the bottom: the widest part of the thorax is outside
    assert ctr.cut_off(bases)
    apices = lungs.copy()
    apices[:25, 10:60] = True  # apices cut at the top: the ratio does not need them
    assert not ctr.cut_off(apices)


def test_a_thorax_measured_to_the_image_edge_says_so():
    probs = _chest(shift=-1)
    probs[1][:, :14] = 0.0
    probs[1][20:50, 0:14] = 1.0  # the right lung's margin runs along column 0 for 30 of its 80 rows
    found = ctr.measure(probs, (S, S))
    assert isinstance(found, ctr.CtrMeasurement) and found.thorax_at_edge
    assert found.as_json(0.5)["note"] == ctr.THORAX_AT_EDGE
    assert "note" not in ctr.measure(_chest(), (S, S)).as_json(0.5)


def test_a_heart_that_hides_most_of_a_lung_is_measured_against_the_chest_wall():
    """A very large heart reaching the chest wall leaves a small part of that lung (here a band above it, an
    eighth of the other lung): still a frontal chest, and the heart's border is the thorax's margin on that
    side, so the ratio stays a ratio (not above 1) and measures the heart against the whole thorax."""
    y, x = np.mgrid[0:S, 0:S].astype(np.float32)
    heart = (((x - 80) / 34.0) ** 2 + ((y - 70) / 30.0) ** 2) <= 1.0
    lungs = ((x >= 14) & (x < 56) & (y >= 20) & (y < 100)) | ((x >= 72) & (x < 114) & (y >= 20) & (y < 30))
    lungs &= ~heart
    parts = ctr.components(lungs)
    assert len(parts) == 2 and parts[1].sum() < 0.15 * parts[0].sum()  # lopsided: the hidden lung is small
    probs = np.stack([heart, lungs]).astype(np.float32)
    found = ctr.measure(probs, (S, S))
    assert isinstance(found, ctr.CtrMeasurement), found
    heart_cols = np.flatnonzero(heart.any(axis=0))
    thorax = max(heart_cols[-1], 113) + 1 - 14
    assert found.value == pytest.approx((heart_cols[-1] - heart_cols[0] + 1) / thorax, abs=0.02)
    assert found.value < 1.0
