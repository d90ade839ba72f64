"""Core types: coercion, shape checks with clear messages, immutability."""

from __future__ import annotations

import numpy as np
import pytest

from brittle.errors import ShapeError
from brittle.types import Detections, GroundTruth, Sample, box_areas


def test_detections_coerce_dtypes_and_accept_empty_lists() -> None:
    d = Detections([], [], [])
    assert d.boxes.shape == (0, 4)
    assert d.boxes.dtype == np.float32
    assert len(d) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"boxes": np.zeros((2, 4)), "scores": np.zeros(3), "labels": np.zeros(2)},
            "Detections: arrays must have the same length N, got boxes=2, scores=3, labels=2",
        ),
        (
            {"boxes": np.zeros(4), "scores": np.zeros(1), "labels": np.zeros(1)},
            "Detections.boxes: expected shape (N, 4), got (4,)",
        ),
        (
            {"boxes": np.zeros((1, 4)), "scores": np.zeros((1, 1)), "labels": np.zeros(1)},
            "Detections.scores: expected shape (N,), got (1, 1)",
        ),
    ],
)
def test_detections_shape_errors_say_what_was_expected(
    kwargs: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(ShapeError) as info:
        Detections(**kwargs)
    assert str(info.value) == message


def test_arrays_are_read_only_but_callers_arrays_are_untouched() -> None:
    boxes = np.array([[0, 0, 1, 1]], np.float32)
    d = Detections(boxes, [1.0], [0])
    assert boxes.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        d.scores[0] = 0


def test_ground_truth_defaults_area_and_crowd() -> None:
    gt = GroundTruth([[0, 0, 2, 3], [1, 1, 5, 2]], [0, 1])
    assert gt.areas.tolist() == [6.0, 4.0]
    assert gt.iscrowd.tolist() == [False, False]
    with pytest.raises(ShapeError, match="iscrowd=1"):
        GroundTruth([[0, 0, 2, 3], [1, 1, 5, 2]], [0, 1], iscrowd=[True])


def test_sample_requires_rgb_uint8() -> None:
    Sample("ok", np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ShapeError, match=r"expected uint8 \(H, W, 3\) RGB, got float64"):
        Sample("bad", np.zeros((2, 3, 3)))


def test_box_areas_clamp_inverted_boxes() -> None:
    assert box_areas(np.array([[3, 3, 1, 5]])).tolist() == [0.0]
