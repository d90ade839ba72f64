"""Letterbox / resize geometry: boxes survive the round trip, pixels land where expected."""

from __future__ import annotations

import numpy as np
import pytest

from brittle.models.letterbox import Fit


@pytest.mark.parametrize("letterbox", [True, False])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize(
    ("src", "dst"),
    [((480, 640), (416, 416)), ((640, 480), (640, 640)), ((333, 517), (352, 352)),
     ((1, 900), (64, 96)), ((416, 416), (416, 416)), ((100, 100), (640, 640))],
)  # fmt: skip
def test_round_trip_original_to_input_and_back(
    letterbox: bool, center: bool, src: tuple[int, int], dst: tuple[int, int]
) -> None:
    h, w = src
    fit = Fit.compute(h, w, *dst, letterbox=letterbox, center=center)
    rng = np.random.default_rng(0)
    x1, y1 = rng.uniform(0, w, 20), rng.uniform(0, h, 20)
    boxes = np.stack([x1, y1, rng.uniform(x1, w), rng.uniform(y1, h)], axis=1)
    back = fit.to_original(fit.to_input(boxes))
    np.testing.assert_allclose(back, boxes, rtol=0, atol=1e-9)
    # The resized image fits inside the input.
    assert fit.pad_x >= 0
    assert fit.pad_x + fit.new_w <= dst[1]
    assert fit.pad_y >= 0
    assert fit.pad_y + fit.new_h <= dst[0]


def test_letterbox_centres_like_ultralytics_and_yolox_pads_bottom_right() -> None:
    centred = Fit.compute(480, 640, 640, 640, letterbox=True, center=True)
    assert (centred.new_w, centred.new_h, centred.pad_x, centred.pad_y) == (640, 480, 0, 80)
    top_left = Fit.compute(480, 640, 416, 416, letterbox=True, center=False)
    assert (top_left.new_w, top_left.new_h, top_left.pad_x, top_left.pad_y) == (416, 312, 0, 0)
    even = Fit.compute(101, 200, 64, 64, letterbox=True, center=True)
    assert (even.new_h, even.pad_y) == (32, 16)  # 32 rows of padding: 16 above, 16 below
    odd = Fit.compute(103, 200, 64, 64, letterbox=True, center=True)
    assert (odd.new_h, odd.pad_y) == (33, 15)  # 31 rows: the odd one goes below


def test_apply_draws_the_image_and_the_padding() -> None:
    image = np.full((20, 40, 3), 200, np.uint8)
    canvas = np.zeros((40, 40, 3), np.uint8)
    fit = Fit.compute(20, 40, 40, 40, letterbox=True, center=True)
    out = fit.apply(image, canvas, pad_value=114)
    assert out is canvas
    assert (out[:10] == 114).all()
    assert (out[30:] == 114).all()
    assert (out[10:30] == 200).all()
    stretched = Fit.compute(20, 40, 40, 40, letterbox=False, center=True).apply(image, canvas, 114)
    assert (stretched == 200).all()


def test_to_original_clips_to_the_image() -> None:
    fit = Fit.compute(50, 100, 64, 64, letterbox=True, center=True)
    out = fit.to_original([[-10, -10, 100, 100]])
    assert out.tolist() == [[0.0, 0.0, 100.0, 50.0]]
