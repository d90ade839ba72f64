"""Failure-gallery pairs: layout, scaling, where boxes land, and hostile inputs.

Images are flat grey (or a gradient where resampling must be ruled out) so the pixels a
box should change, and the ones it must not, can be checked exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from brittle.errors import ShapeError
from brittle.gallery import (
    _GAP,
    _LEGEND_PAD,
    _LEGEND_ROW_H,
    _PAD_BG,
    _STRIP_BG,
    CLEAN_COLOR,
    GT_COLOR,
    PERTURBED_COLOR,
    _ascii,
    _class_name,
    draw_pair,
    encode_jpeg,
)
from brittle.perturbations.preview import _HEADER_H
from brittle.types import Detections, GroundTruth

GREY = 128
ONE_ROW_LEGEND = _LEGEND_PAD + _LEGEND_ROW_H
NAMES = ["person", "car"]


def _grey(h: int, w: int) -> NDArray[np.uint8]:
    return np.full((h, w, 3), GREY, np.uint8)


def _has(region: NDArray[np.uint8], color: tuple[int, int, int]) -> bool:
    return bool((region == np.array(color, np.uint8)).all(axis=-1).any())


def _pair(
    clean: NDArray[np.uint8],
    gt: GroundTruth | None = None,
    dets: Detections | None = None,
    *,
    class_names: Sequence[str] = NAMES,
    conf: float = 0.3,
    titles: tuple[str, str] = ("clean", "perturbed"),
    max_side: int = 480,
) -> NDArray[np.uint8]:
    """The same image, boxes and predictions on both panels."""
    gt = gt if gt is not None else GroundTruth.empty()
    dets = dets if dets is not None else Detections.empty()
    return draw_pair(
        clean,
        clean,
        gt_clean=gt,
        gt_perturbed=gt,
        dets_clean=dets,
        dets_perturbed=dets,
        class_names=class_names,
        conf=conf,
        titles=titles,
        max_side=max_side,
    )


def test_large_input_is_scaled_to_max_side_and_strips_are_added() -> None:
    out = _pair(_grey(960, 1280), max_side=480)
    assert out.shape == (_HEADER_H + 360 + ONE_ROW_LEGEND, 480 + _GAP + 480, 3)
    assert out.dtype == np.uint8
    body = out[_HEADER_H : _HEADER_H + 360]
    assert (body[:, :480] == GREY).all()
    assert (body[:, 480 + _GAP :] == GREY).all()
    assert (body[:, 480 : 480 + _GAP] == _STRIP_BG).all()


def test_small_input_is_not_upscaled_or_resampled() -> None:
    gradient = np.zeros((80, 100, 3), np.uint8)
    gradient[..., 0] = np.arange(100, dtype=np.uint8)[None, :] * 2
    gradient[..., 1] = np.arange(80, dtype=np.uint8)[:, None] * 3
    out = _pair(gradient, max_side=480)
    assert out.shape[1] == 100 + _GAP + 100
    np.testing.assert_array_equal(out[_HEADER_H : _HEADER_H + 80, :100], gradient)
    np.testing.assert_array_equal(out[_HEADER_H : _HEADER_H + 80, 100 + _GAP :], gradient)


def test_boxes_land_at_scaled_locations_in_their_colours_and_styles() -> None:
    # 1280x960 -> 480x360: scale 0.375, so these coordinates map to whole pixels.
    gt = GroundTruth([[160, 320, 640, 800]], [0])  # -> (60, 120, 240, 300)
    dets = Detections([[800, 160, 1120, 480]], [0.9], [1])  # -> (300, 60, 420, 180)
    out = _pair(_grey(960, 1280), gt=gt, dets=dets, max_side=480)
    y0, right_x0 = _HEADER_H, 480 + _GAP
    left = out[y0 : y0 + 360, :480]
    right = out[y0 : y0 + 360, right_x0:]

    for panel in (left, right):
        # Ground truth: solid, so every pixel of its left edge is drawn.
        assert (panel[122:298, 60] == GT_COLOR).all()
        assert _has(panel[209:212, 59:62], GT_COLOR)
    # Predictions: a dash starts at the bottom-right corner; the right edge has gaps.
    assert _has(left[179:182, 416:421], CLEAN_COLOR)
    assert _has(right[179:182, 416:421], PERTURBED_COLOR)
    edge = (left[62:178, 420] == CLEAN_COLOR).all(axis=-1)
    assert 0.5 < edge.mean() < 0.8
    # Each prediction colour only on its own panel.
    assert not _has(left, PERTURBED_COLOR)
    assert not _has(right, CLEAN_COLOR)


def test_prediction_below_conf_is_not_drawn_and_conf_is_inclusive() -> None:
    dets = Detections(
        [[800, 560, 1120, 880], [160, 160, 480, 480]], [0.29, 0.3], [0, 0]
    )  # -> (300, 210, 420, 330) and (60, 60, 180, 180)
    out = _pair(_grey(960, 1280), dets=dets, conf=0.3, max_side=480)
    left = out[_HEADER_H : _HEADER_H + 360, :480]
    ring = left[205:336, 295:426].copy()
    ring[8:-8, 8:-8] = GREY  # only the band around the would-be edges matters
    assert (ring == GREY).all()
    assert _has(left[179:182, 176:181], CLEAN_COLOR)


def test_perturbed_image_of_a_different_size_is_padded() -> None:
    clean, perturbed = _grey(480, 640), _grey(640, 480)  # as after rotate90
    gt = GroundTruth([[80, 400, 240, 560]], [1])  # on the 480x640 image -> (60, 300, 180, 420)
    out = draw_pair(
        clean,
        perturbed,
        gt_clean=GroundTruth.empty(),
        gt_perturbed=gt,
        dets_clean=Detections.empty(),
        dets_perturbed=Detections.empty(),
        class_names=NAMES,
        max_side=480,
    )
    assert out.shape == (_HEADER_H + 480 + ONE_ROW_LEGEND, 480 + _GAP + 360, 3)
    assert (out[_HEADER_H : _HEADER_H + 360, :480] == GREY).all()
    assert (out[_HEADER_H + 360 : _HEADER_H + 480, :480] == _PAD_BG).all()
    right = out[_HEADER_H : _HEADER_H + 480, 480 + _GAP :]
    assert (right[302:418, 60] == GT_COLOR).all()


def test_boxes_outside_the_image_are_clipped_or_skipped() -> None:
    boxes = [
        [-200, -200, 320, 320],  # partly outside: clipped to the panel's left/top border
        [5000, 5000, 6000, 6000],  # entirely outside: nothing to draw
        [np.nan, 0, 10, 10],
        [0, 0, np.inf, 10],
        [400, 400, 400, 400],  # zero area
        [640, 640, 320, 320],  # inverted
    ]
    gt = GroundTruth(boxes, [0] * 6, iscrowd=[False, False, False, False, False, True])
    dets = Detections(boxes[1:], [0.9] * 5, [1] * 5)  # none over the clipped GT edge
    out = _pair(_grey(960, 1280), gt=gt, dets=dets, max_side=480)
    left = out[_HEADER_H : _HEADER_H + 360, :480]
    assert (left[20:100, 0] == GT_COLOR).all()
    assert not _has(left[200:, 400:], GT_COLOR)  # where the off-image box would clip to


@pytest.mark.parametrize(
    ("label", "names", "expected"),
    [
        (0, ["<script>alert(1)</script>"], "<script>alert(1)</scr..."),
        (0, ["é"], "?"),
        (0, [""], "#0"),
        (0, ["x" * 500], "x" * 21 + "..."),
        (99, ["a"], "#99"),
        (-1, ["a"], "#-1"),
        (0, [None], "None"),
    ],
)
def test_class_names_are_made_drawable(label: int, names: list[str], expected: str) -> None:
    assert _class_name(label, names) == expected
    assert _ascii(expected).isascii()


def test_hostile_names_and_titles_do_not_crash_or_overflow() -> None:
    names = ["<script>alert(1)</script>", "é", "", "y" * 500, "tab\there\u2026"]
    labels = [0, 1, 2, 3, 4, 99, -5]
    boxes = [[40 + 60 * i, 40, 90 + 60 * i, 120] for i in range(len(labels))]
    gt = GroundTruth(boxes, labels)
    dets = Detections(boxes, [0.9] * len(labels), labels)
    out = _pair(
        _grey(240, 480),
        gt=gt,
        dets=dets,
        class_names=names,
        titles=("\u00e9\u00e8\u00ea" * 200, "z" * 1000),
    )
    assert out.shape == (_HEADER_H + 240 + ONE_ROW_LEGEND, 480 + _GAP + 480, 3)
    assert _has(out, GT_COLOR)
    # Long titles are shortened to their panel: the gap's title strip stays empty.
    assert (out[:_HEADER_H, 480 : 480 + _GAP] == _STRIP_BG).all()


def test_inputs_are_not_mutated() -> None:
    clean, perturbed = _grey(80, 100), _grey(100, 80)
    for img in (clean, perturbed):
        img.flags.writeable = False  # any in-place drawing would raise
    gt = GroundTruth([[10, 10, 50, 50]], [0])
    dets = Detections([[12, 12, 52, 52]], [0.9], [1])
    out = draw_pair(
        clean,
        perturbed,
        gt_clean=gt,
        gt_perturbed=gt,
        dets_clean=dets,
        dets_perturbed=dets,
        class_names=NAMES,
    )
    assert (clean == GREY).all()
    assert (perturbed == GREY).all()
    assert not np.shares_memory(out, clean)
    assert gt.boxes.tolist() == [[10, 10, 50, 50]]
    assert dets.boxes.tolist() == [[12, 12, 52, 52]]


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ShapeError, match="expected uint8"):
        _pair(np.zeros((10, 10), np.uint8))
    with pytest.raises(ShapeError, match="expected uint8"):
        _pair(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="max_side"):
        _pair(_grey(10, 10), max_side=0)
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(_grey(10, 10), quality=0)


def test_encode_jpeg_round_trips_and_keeps_rgb_order() -> None:
    image = np.zeros((37, 53, 3), np.uint8)
    image[..., 0] = 220  # red in RGB: would come back blue if channels were swapped
    data = encode_jpeg(image, quality=90)
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    assert back.shape == (37, 53, 3)
    assert abs(int(back[..., 0].mean()) - 220) < 5
    assert back[..., 2].mean() < 10
