"""Geometric perturbations: boxes move exactly as the pixels do.

Every map is checked on a hand-computed case (a known box, image size and parameters give
a known box), involutions are checked to be identities on pixels and boxes, the visibility
threshold is checked at its edge, and on a drawn rectangle the moved box must tightly
enclose the moved pixels for every perturbation and severity.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from brittle.perturbations import get_perturbation, perturb, rng_for, transform_boxes
from brittle.perturbations.base import MIN_VISIBLE_FRACTION, SEVERITIES
from brittle.perturbations.geometric import rotation_matrix
from brittle.types import Detections

GEOMETRIC = ["hflip", "vflip", "rotate90", "rotate", "scale", "translate", "perspective", "crop"]


def _move(name: str, boxes: list[list[float]], params: dict, h: int, w: int) -> np.ndarray:
    p = get_perturbation(name)
    # Parameters are stored with results as JSON: use them as they come back.
    params = json.loads(json.dumps(params))
    moved, kept = transform_boxes(p, np.array(boxes, np.float64), params, h, w)
    assert kept.all()
    return moved


def test_all_geometric_are_registered_and_flagged() -> None:
    for name in GEOMETRIC:
        p = get_perturbation(name)
        assert p.family == "geometric"
        assert p.geometric
    for name in ("hflip", "vflip", "rotate90"):
        p = get_perturbation(name)
        assert not p.graded
        assert not p.random


# Hand-computed cases, all on a W=100 x H=50 image unless said otherwise.


def test_hflip_box() -> None:
    np.testing.assert_allclose(_move("hflip", [[10, 20, 30, 40]], {}, 50, 100), [[70, 20, 90, 40]])


def test_vflip_box() -> None:
    np.testing.assert_allclose(_move("vflip", [[10, 20, 30, 40]], {}, 50, 100), [[10, 10, 30, 30]])


def test_rotate90_box_and_size() -> None:
    # Clockwise: (x, y) -> (H - y, x); the output is 50 wide and 100 tall.
    p = get_perturbation("rotate90")
    assert p.output_size({}, 50, 100) == (100, 50)
    np.testing.assert_allclose(
        _move("rotate90", [[10, 5, 30, 25]], {}, 50, 100), [[25, 10, 45, 30]]
    )
    np.testing.assert_allclose(
        _move("rotate90", [[10, 20, 30, 40]], {}, 50, 100), [[10, 10, 30, 30]]
    )
    img = np.zeros((50, 100, 3), np.uint8)
    img[0, 0] = 255  # top-left pixel ends up top-right
    out = p.apply(img, {}, rng_for(0, "rotate90", 1, ""))
    assert out.shape == (100, 50, 3)
    assert out[0, 49, 0] == 255


def test_rotate_quarter_turn_box() -> None:
    # 90 degrees counter-clockwise about (50, 50) on a square needs no zoom:
    # x' = 50 + (y - 50), y' = 50 - (x - 50).
    m, zoom = rotation_matrix(90.0, 100, 100)
    assert zoom == pytest.approx(1.0)
    params = {"angle": 90.0, "zoom": zoom, "matrix": m.tolist()}
    np.testing.assert_allclose(
        _move("rotate", [[10, 20, 30, 40]], params, 100, 100), [[20, 70, 40, 90]], atol=1e-9
    )


def test_rotate_30_degrees_box_zoom_and_clip() -> None:
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    m, zoom = rotation_matrix(30.0, 100, 100)
    # No empty corner on a square: zoom = cos + sin.
    assert zoom == pytest.approx(c + s)
    params = {"angle": 30.0, "zoom": zoom, "matrix": m.tolist()}
    # A centred 20x20 box: the farthest corner projection is 10 (c + s), times the zoom.
    half = 10 * (c + s) * zoom
    np.testing.assert_allclose(
        _move("rotate", [[40, 40, 60, 60]], params, 100, 100),
        [[50 - half, 50 - half, 50 + half, 50 + half]],
    )
    # A box at the left edge: corners (dx, dy) in {-50, -30} x {-10, 10} about the centre
    # go to x' = 50 + zoom (c dx + s dy), y' = 50 + zoom (-s dx + c dy); then clip at x=0.
    xs = [50 + zoom * (c * dx + s * dy) for dx in (-50, -30) for dy in (-10, 10)]
    ys = [50 + zoom * (-s * dx + c * dy) for dx in (-50, -30) for dy in (-10, 10)]
    assert min(xs) < 0
    np.testing.assert_allclose(
        _move("rotate", [[0, 40, 20, 60]], params, 100, 100), [[0, min(ys), max(xs), max(ys)]]
    )


def test_rotate_params_follow_the_table() -> None:
    p = get_perturbation("rotate")
    for sev, nominal in zip(SEVERITIES, (3, 6, 10, 15, 20), strict=True):
        signs = set()
        for k in range(20):
            params = p.params(sev, 480, 640, rng_for(k, "rotate", sev, "t"))
            assert 0.9 * nominal <= abs(params["angle"]) <= 1.1 * nominal
            signs.add(params["angle"] > 0)
        assert signs == {True, False}


def test_scale_box() -> None:
    # Severity 3: factor 0.8 -> an 80x40 image at offset (10, 5); x' = 0.8 x + 10, y' = 0.8 y + 5.
    p = get_perturbation("scale")
    params = p.params(3, 50, 100, rng_for(0, "scale", 3, ""))
    assert params == {"factor": 0.8, "size": [80, 40], "offset": [10, 5]}
    np.testing.assert_allclose(
        _move("scale", [[10, 20, 30, 40]], params, 50, 100), [[18, 21, 34, 37]]
    )


def test_translate_box() -> None:
    params = {"shift": [15, -10]}
    np.testing.assert_allclose(
        _move("translate", [[10, 20, 30, 40]], params, 50, 100), [[25, 10, 45, 30]]
    )
    img = np.zeros((50, 100, 3), np.uint8)
    img[20, 10] = 255
    out = get_perturbation("translate").apply(img, params, rng_for(0, "translate", 1, ""))
    assert out[10, 25, 0] == 255
    assert int(out.sum()) == 3 * 255


def test_translate_distance_follows_short_side() -> None:
    p = get_perturbation("translate")
    for sev, frac in zip(SEVERITIES, (0.03, 0.06, 0.10, 0.15, 0.20), strict=True):
        dx, dy = p.params(sev, 480, 640, rng_for(1, "translate", sev, ""))["shift"]
        assert math.hypot(dx, dy) == pytest.approx(frac * 480, abs=1.0)


def test_crop_box() -> None:
    # Window of half size at (20, 10): x' = 2 (x - 20), y' = 2 (y - 10).
    params = {
        "fraction": 0.5,
        "window": [20.0, 10.0, 50.0, 25.0],
        "matrix": [[2.0, 0.0, -40.0], [0.0, 2.0, -20.0], [0.0, 0.0, 1.0]],
    }
    np.testing.assert_allclose(
        _move("crop", [[30, 20, 50, 30]], params, 50, 100), [[20, 20, 60, 40]]
    )


def test_crop_params_window_inside_the_image() -> None:
    p = get_perturbation("crop")
    for sev in SEVERITIES:
        for k in range(10):
            x0, y0, cw, ch = p.params(sev, 480, 640, rng_for(k, "crop", sev, ""))["window"]
            assert x0 >= 0
            assert y0 >= 0
            assert x0 + cw <= 640 + 1e-9
            assert y0 + ch <= 480 + 1e-9
            assert cw / 640 == pytest.approx(ch / 480)


def test_perspective_box() -> None:
    # The trapezoid (10,0) (90,0) (100,50) (0,50) stretched onto the frame:
    # x' = (1.25 x + 0.25 y - 12.5) / (1 + y / 200), y' = 1.25 y / (1 + y / 200).
    params = {
        "corners": [[10.0, 0.0], [90.0, 0.0], [100.0, 50.0], [0.0, 50.0]],
        "matrix": [[1.25, 0.25, -12.5], [0.0, 1.25, 0.0], [0.0, 0.005, 1.0]],
    }
    # Corners (50,0) (90,0) (90,25) (50,25) -> (50,0) (100,0) (94.4,27.8) (50,27.8).
    np.testing.assert_allclose(
        _move("perspective", [[50, 0, 90, 25]], params, 50, 100), [[50, 0, 100, 250 / 9]]
    )


def test_perspective_params_map_the_quad_onto_the_frame() -> None:
    p = get_perturbation("perspective")
    params = p.params(5, 50, 100, rng_for(0, "perspective", 5, ""))
    frame = [[0, 0], [100, 0], [100, 50], [0, 50]]
    pts = p.map_points(np.array(params["corners"]), params, 50, 100)
    np.testing.assert_allclose(pts, frame, atol=1e-6)
    # Each corner moved inward by 0.21 of the short side.
    shifts = np.linalg.norm(np.array(params["corners"]) - frame, axis=1)
    np.testing.assert_allclose(shifts, 0.21 * 50)


# Identities.


def _image(h: int = 50, w: int = 100) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(("name", "times"), [("hflip", 2), ("vflip", 2), ("rotate90", 4)])
def test_repeating_gives_back_image_and_boxes(name: str, times: int) -> None:
    img = _image()
    boxes = np.array([[10.0, 5.0, 30.0, 25.0], [0.0, 0.0, 100.0, 50.0], [62.5, 11.0, 99.0, 49.5]])
    out, moved = img, boxes
    for _ in range(times):
        out, moved = perturb(out, name, 1, boxes=moved)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_allclose(moved, boxes)


# Visibility threshold.


def test_boxes_mostly_outside_are_dropped_at_the_threshold() -> None:
    assert MIN_VISIBLE_FRACTION == 0.25
    p = get_perturbation("translate")
    boxes = np.array([[60.0, 0.0, 100.0, 10.0], [0.0, 0.0, 20.0, 10.0]])
    # Shifted right by 30: 10 of the first box's 40 px stay visible, exactly the threshold.
    moved, kept = transform_boxes(p, boxes, {"shift": [30, 0]}, 50, 100)
    assert kept.tolist() == [True, True]
    np.testing.assert_allclose(moved, [[90, 0, 100, 10], [30, 0, 50, 10]])
    # One more pixel and it is under the threshold.
    moved, kept = transform_boxes(p, boxes, {"shift": [31, 0]}, 50, 100)
    assert kept.tolist() == [False, True]
    np.testing.assert_allclose(moved, [[31, 0, 51, 10]])
    # Entirely outside: dropped.
    _, kept = transform_boxes(p, boxes, {"shift": [0, 60]}, 50, 100)
    assert kept.tolist() == [False, False]


# Pixels and boxes agree.


def _bright_box(img: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(img[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize(("h", "w"), [(160, 240), (240, 160)])
def test_moved_box_encloses_the_moved_rectangle(name: str, h: int, w: int) -> None:
    img = np.full((h, w, 3), 20, np.uint8)
    x1, y1, x2, y2 = w // 2 - 30, h // 2 - 20, w // 2 + 26, h // 2 + 24
    img[y1:y2, x1:x2] = 255
    box = np.array([[x1, y1, x2, y2]], np.float64)
    for sev in SEVERITIES:
        for seed in range(3):
            out, moved = perturb(img, name, sev, seed=seed, boxes=box)
            assert len(moved) == 1, (name, sev, seed)
            iou = _iou(moved[0], _bright_box(out))
            assert iou > 0.9, (name, sev, seed, moved[0], _bright_box(out), iou)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_predictions_move_like_ground_truth(name: str) -> None:
    """Predictions made on the clean image, moved with the same params, match the moved GT:
    it is one function, ``transform_boxes``, with the params stored for the image."""
    img = _image(120, 168)
    gt = np.array([[20.0, 15.0, 70.0, 60.0], [95.0, 55.0, 145.0, 105.0], [150, 5, 166, 30]])
    p = get_perturbation(name)
    _, moved_gt, kept_gt, params = p(img, 4, rng_for(2, name, 4, "s"), gt)
    dets = Detections(gt.astype(np.float32), np.ones(3, np.float32), np.arange(3))
    stored = json.loads(json.dumps(params))
    moved_det, kept_det = transform_boxes(get_perturbation(name), dets.boxes, stored, 120, 168)
    assert kept_gt is not None
    assert moved_gt is not None
    np.testing.assert_array_equal(kept_det, kept_gt)
    np.testing.assert_allclose(moved_det, moved_gt, atol=1e-4)  # float32 predictions
