"""Each output layout decoded from hand-built tensors, and format auto-detection."""

from __future__ import annotations

import numpy as np
import pytest

from brittle.errors import ModelError
from brittle.models.decoders import (
    E2EDecoder,
    OutputInfo,
    YoloV5Decoder,
    YoloV8Decoder,
    YoloxDecoder,
    anchor_free_cells,
    detect_format,
    make_decoder,
)

HW = (64, 64)
CELLS = anchor_free_cells(*HW)  # 8*8 + 4*4 + 2*2 = 84


def info(*shapes: tuple[int, ...], names: tuple[str, ...] = (), dtypes: tuple[str, ...] = ()):
    return [
        OutputInfo(names[i] if names else f"out{i}", s, dtypes[i] if dtypes else "float32")
        for i, s in enumerate(shapes)
    ]


def test_yolov5_pixel_boxes_objectness_times_class() -> None:
    out = np.zeros((2, 3 * CELLS, 5 + 3), np.float32)
    out[1, 7] = [32, 20, 10, 8, 0.8, 0.1, 0.9, 0.5]
    dec = YoloV5Decoder(3)
    c = dec([out], 1, 0.05, multi_label=True)
    assert c.boxes.tolist() == [[27, 16, 37, 24]] * 3
    assert c.labels.tolist() == [0, 1, 2]
    assert c.scores.tolist() == pytest.approx([0.08, 0.72, 0.4])
    best = dec([out], 1, 0.05, multi_label=False)
    assert (best.labels.tolist(), best.scores.tolist()) == ([1], pytest.approx([0.72]))
    assert len(dec([out], 0, 0.05, multi_label=True).scores) == 0  # image 0 is empty


def test_yolov8_channels_first_without_objectness() -> None:
    out = np.zeros((1, 4 + 2, CELLS), np.float32)
    out[0, :, 5] = [10, 10, 4, 6, 0.3, 0.6]
    out[0, :, 9] = [50, 40, 20, 20, 0.0005, 0.0]  # below conf
    c = YoloV8Decoder(2)([out], 0, 0.001, multi_label=True)
    assert c.boxes.tolist() == [[8, 7, 12, 13]] * 2
    assert (c.labels.tolist(), c.scores.tolist()) == ([0, 1], pytest.approx([0.3, 0.6]))


def test_yolox_decodes_grid_offsets_per_stride() -> None:
    out = np.zeros((1, CELLS, 5 + 2), np.float32)
    # Row 8*8 + 4*1 + 2 is the stride-16 cell at (x=2, y=1); offsets 0.5, sizes exp(0)=1 cell.
    row = 64 + 4 * 1 + 2
    out[0, row] = [0.5, 0.5, np.log(2.0), 0.0, 0.9, 0.2, 0.7]
    c = YoloxDecoder(HW, 2, decoded=False)([out], 0, 0.01, multi_label=False)
    # cx = (0.5 + 2) * 16 = 40, cy = (0.5 + 1) * 16 = 24, w = 2 * 16, h = 16.
    assert c.boxes.tolist() == [[24, 16, 56, 32]]
    assert (c.labels.tolist(), c.scores.tolist()) == ([1], pytest.approx([0.63]))
    # The last row is the stride-32 cell (1, 1).
    out[0, -1] = [0, 0, 0, 0, 0.5, 0.5, 0.0]
    c = YoloxDecoder(HW, 2, decoded=False)([out], 0, 0.01, multi_label=False)
    assert c.boxes[c.labels == 0].tolist() == [[16, 16, 48, 48]]


def test_yolox_with_decoding_inside_the_model() -> None:
    out = np.zeros((1, CELLS, 6), np.float32)
    out[0, 3] = [30, 30, 10, 10, 0.5, 1.0]
    c = YoloxDecoder(HW, 1, decoded=True)([out], 0, 0.01, multi_label=False)
    assert c.boxes.tolist() == [[25, 25, 35, 35]]


def test_e2e_separate_outputs_with_num_dets() -> None:
    boxes = np.array([[[1, 2, 3, 4], [5, 6, 7, 8], [0, 0, 0, 0]]], np.float32)
    scores = np.array([[0.9, 0.0005, 0.8]], np.float32)
    labels = np.array([[3, 1, 2]], np.int64)
    num = np.array([[2]], np.int32)
    outputs = info(
        (1, 1),
        (1, 3, 4),
        (1, 3),
        (1, 3),
        names=("num_dets", "det_boxes", "det_scores", "det_classes"),
    )
    dec = make_decoder("e2e", outputs, HW, [])
    assert isinstance(dec, E2EDecoder)
    assert dec.roles == {
        "num_dets": 0,
        "boxes": 1,
        "scores": 2,
        "labels": 3,
    }
    c = dec([num, boxes, scores, labels], 0, 0.001, multi_label=False)
    # Row 2 is beyond num_dets; row 1 is below conf.
    assert (c.boxes.tolist(), c.labels.tolist()) == ([[1, 2, 3, 4]], [3])


def test_e2e_roles_from_shapes_and_types_when_names_say_nothing() -> None:
    outputs = info(
        (1, 5), (1, 5, 4), (1, 5), names=("a", "b", "c"), dtypes=("int64", "float32", "float32")
    )
    dec = make_decoder("e2e", outputs, HW, [])
    assert isinstance(dec, E2EDecoder)
    assert dec.roles == {"labels": 0, "boxes": 1, "scores": 2}


def test_e2e_packed_forms() -> None:
    packed = np.array([[[1, 2, 3, 4, 0.9, 5], [0, 0, 1, 1, 0.0001, 2]]], np.float32)
    c = make_decoder("e2e", info((1, 2, 6)), HW, [])([packed], 0, 0.001, multi_label=False)
    assert (c.boxes.tolist(), c.scores.tolist(), c.labels.tolist()) == (
        [[1, 2, 3, 4]], pytest.approx([0.9]), [5],
    )  # fmt: skip
    rows = np.array([[0, 1, 2, 3, 4, 7, 0.5], [1, 5, 5, 9, 9, 2, 0.6]], np.float32)
    c = make_decoder("e2e", info((2, 7)), HW, [])([rows], 1, 0.001, multi_label=False)
    assert (c.boxes.tolist(), c.labels.tolist()) == ([[5, 5, 9, 9]], [2])


# --- auto-detection ----------------------------------------------------------------------


def raw_yolox_probe(classes: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (1, CELLS, 5 + classes)).astype(np.float32)


def decoded_probe(classes: int = 2) -> np.ndarray:
    probe = raw_yolox_probe(classes)
    dec = YoloxDecoder(HW, classes, decoded=False)
    probe[0, :, :2] = (probe[0, :, :2] + dec.grid) * dec.stride
    return probe


@pytest.mark.parametrize(
    ("shapes", "names", "expected"),
    [
        (((1, 3 * CELLS, 8),), (), "yolov5"),
        (((1, 4 + 3, CELLS),), (), "yolov8"),
        (((1, 300, 6),), (), "e2e"),
        (((17, 7),), (), "e2e"),
        (((1, 100, 4), (1, 100), (1, 100)), ("boxes", "scores", "labels"), "e2e"),
        # P6 models (strides 8..64) are recognised too.
        (((1, 3 * anchor_free_cells(64, 64, (8, 16, 32, 64)), 6),), (), "yolov5"),
    ],
)
def test_detect_format_from_shapes(shapes: tuple, names: tuple, expected: str) -> None:
    assert detect_format(info(*shapes, names=names), HW, []) == expected


def test_detect_yolox_needs_raw_offsets() -> None:
    assert detect_format(info((1, CELLS, 7)), HW, [raw_yolox_probe()]) == "yolox"
    with pytest.raises(ModelError) as exc:
        detect_format(info((1, CELLS, 7)), HW, [decoded_probe()])
    msg = str(exc.value)
    assert "already decoded to pixels" in msg
    assert "format=yolox" in msg
    assert "format=yolov5" in msg
    assert "(CLI: --format)" in msg
    # With format given, yolox accepts both and tells them apart from the probe.
    assert make_decoder("yolox", info((1, CELLS, 7)), HW, [decoded_probe()]).decoded  # type: ignore[attr-defined]
    assert not make_decoder("yolox", info((1, CELLS, 7)), HW, [raw_yolox_probe()]).decoded  # type: ignore[attr-defined]


def test_unknown_layout_lists_what_was_seen_and_what_is_known() -> None:
    with pytest.raises(ModelError) as exc:
        detect_format(info((1, 300, 84), names=("output0",)), (640, 640), [])
    assert str(exc.value) == (
        "cannot tell the output layout: outputs output0 [1, 300, 84] float32 match no known "
        "layout. (known layouts for a 640x640 input: yolov5 [1, 25200, 5+C] (3 anchors per "
        "cell), yolox [1, 8400, 5+C] (raw grid offsets), yolov8 [1, 4+C, 8400], e2e boxes "
        "[1, N, 4] + scores [1, N] + labels [1, N] or [1, N, 6].) "
        "Pass format=yolov5|yolov8|yolox|e2e (CLI: --format)."
    )


def test_shape_fitting_two_layouts_is_ambiguous() -> None:
    # A 32x32 input has 16 + 4 + 1 = 21 cells: [1, 21, 21] reads either way round.
    cells = anchor_free_cells(32, 32)
    probe = np.zeros((1, cells, cells), np.float32)
    with pytest.raises(ModelError, match="could fit yolox or yolov8"):
        detect_format(info((1, cells, cells)), (32, 32), [probe])


@pytest.mark.parametrize(
    ("fmt", "shapes", "match"),
    [
        ("yolov5", ((1, 84, 4),), r"format=yolov5 expects one output \[B, N, 5\+C\]"),
        ("yolox", ((1, 100, 85),), r"format=yolox expects one output \[B, 84, 5\+C\]"),
        ("yolov8", ((1, 3, 8400), (1, 2)), r"format=yolov8 expects one output \[B, 4\+C, N\]"),
        ("e2e", ((1, 5, 3), (1, 5)), r"format=e2e expects boxes \[B, N, 4\]"),
        ("ssd", ((1, 5, 3),), r"unknown format 'ssd'"),
    ],
)
def test_make_decoder_rejects_outputs_that_do_not_fit(fmt: str, shapes: tuple, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        make_decoder(fmt, info(*shapes), HW, [])


def test_decoding_a_wrong_shape_at_run_time_names_the_format() -> None:
    with pytest.raises(ModelError, match=r"format yolov8: expected \[B, 4\+C, N\]"):
        YoloV8Decoder(2)([np.zeros((1, 3), np.float32)], 0, 0.1, multi_label=False)
