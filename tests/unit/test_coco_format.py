"""COCO JSON conversion: exact numbers, the layout pycocotools expects, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brittle.coco_format import (
    coco_to_dets,
    coco_to_gt,
    dets_to_coco,
    gt_to_coco,
    xyxy_to_xywh,
)
from brittle.errors import DatasetError, ShapeError
from brittle.types import Detections, GroundTruth


def _gts() -> list[GroundTruth]:
    return [
        GroundTruth(
            boxes=[[0.5, 1.0, 10.25, 20.0], [3.0, 4.0, 5.0, 9.0], [1.0, 1.0, 2.0, 2.0]],
            labels=[2, 0, 1],
            iscrowd=[False, True, False],
            areas=[150.0, 10.0, 0.75],
        ),
        GroundTruth.empty(),
        GroundTruth(boxes=[[7.0, 7.0, 8.5, 9.0]], labels=[2]),
    ]


def _dets() -> list[Detections]:
    return [
        Detections(
            [[0.5, 1.0, 10.25, 20.0], [1, 1, 2, 2], [3, 3, 4, 4]], [0.3, 0.7, 0.3], [2, 1, 0]
        ),
        Detections([[1, 2, 3, 4]], [0.9], [1]),
        Detections.empty(),
    ]


def test_xyxy_to_xywh_is_float64_subtraction() -> None:
    boxes = np.array([[0.1, 0.2, 0.7, 1.3]], np.float32)
    out = xyxy_to_xywh(boxes)
    assert out.dtype == np.float64
    b = boxes.astype(np.float64)
    assert out.tolist() == [[b[0, 0], b[0, 1], b[0, 2] - b[0, 0], b[0, 3] - b[0, 1]]]
    assert xyxy_to_xywh(np.zeros((0, 4))).shape == (0, 4)


def test_gt_to_coco_layout() -> None:
    d = gt_to_coco(
        _gts(),
        ["a", "b", "c"],
        file_names=["x.jpg", "y.jpg", "z.jpg"],
        widths=[640, 320, 100],
        heights=[480, 240, 100],
    )
    assert d["images"][0] == {"id": 1, "file_name": "x.jpg", "width": 640, "height": 480}
    assert [c["id"] for c in d["categories"]] == [1, 2, 3]
    assert [c["name"] for c in d["categories"]] == ["a", "b", "c"]
    anns = d["annotations"]
    assert [a["id"] for a in anns] == [1, 2, 3, 4]
    assert [a["image_id"] for a in anns] == [1, 1, 1, 3]
    assert [a["category_id"] for a in anns] == [3, 1, 2, 3]
    assert anns[0]["bbox"] == [0.5, 1.0, 9.75, 19.0]
    assert [a["area"] for a in anns] == [150.0, 10.0, 0.75, 3.0]  # given areas kept
    assert [a["iscrowd"] for a in anns] == [0, 1, 0, 0]
    assert all(type(v) is float for a in anns for v in [*a["bbox"], a["area"]])
    json.dumps(d)  # plain Python types only


def test_gt_to_coco_restricts_classes_and_takes_ids() -> None:
    d = gt_to_coco(_gts(), ["a", "b", "c"], classes=[2, 0], image_ids=[10, 20, 30])
    assert [c["id"] for c in d["categories"]] == [1, 3]
    assert [a["category_id"] for a in d["annotations"]] == [3, 1, 3]
    assert [a["image_id"] for a in d["annotations"]] == [10, 10, 30]
    assert [im["id"] for im in d["images"]] == [10, 20, 30]
    assert "width" not in d["images"][0]


def test_dets_to_coco_keeps_order_and_exact_scores() -> None:
    r = dets_to_coco(_dets(), classes=[1, 2])
    assert [(x["image_id"], x["category_id"]) for x in r] == [(1, 3), (1, 2), (2, 2)]
    assert r[0]["score"] == float(np.float32(0.3))  # float32 value, exactly
    assert r[0]["bbox"] == [0.5, 1.0, 9.75, 19.0]
    assert len(dets_to_coco(_dets())) == 4
    json.dumps(r)


def test_length_mismatches_are_reported() -> None:
    with pytest.raises(ShapeError, match="image_ids: expected 3"):
        gt_to_coco(_gts(), ["a", "b", "c"], image_ids=[1])
    with pytest.raises(ShapeError, match="widths: expected 3"):
        gt_to_coco(_gts(), ["a", "b", "c"], widths=[1, 2])
    with pytest.raises(ShapeError, match="distinct"):
        dets_to_coco(_dets(), image_ids=[1, 1, 2])


def test_round_trip() -> None:
    gts, dets = _gts(), _dets()
    coco = json.loads(json.dumps(gt_to_coco(gts, ["a", "b", "c"])))
    back = coco_to_gt(coco)
    assert back.image_ids == [1, 2, 3]
    assert back.class_names == ["a", "b", "c"]
    for a, b in zip(gts, back.gts, strict=True):
        assert np.array_equal(a.boxes, b.boxes)  # binary fractions: x + w is exact here
        assert np.array_equal(a.labels, b.labels)
        assert np.array_equal(a.iscrowd, b.iscrowd)
        assert np.array_equal(a.areas, b.areas)
    results = json.loads(json.dumps(dets_to_coco(dets)))
    for a, b in zip(dets, coco_to_dets(results, back), strict=True):
        assert np.array_equal(a.boxes, b.boxes)
        assert np.array_equal(a.scores, b.scores)
        assert np.array_equal(a.labels, b.labels)


def test_coco_to_gt_sorts_images_and_categories() -> None:
    coco = {
        "images": [{"id": 7, "file_name": "b"}, {"id": 3, "file_name": "a"}],
        "categories": [{"id": 90, "name": "z"}, {"id": 5, "name": "y"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 90, "bbox": [0, 0, 2, 3], "iscrowd": 0},
        ],
    }
    back = coco_to_gt(coco)
    assert back.image_ids == [3, 7]
    assert back.file_names == ["a", "b"]
    assert back.category_ids == [5, 90]
    assert back.class_names == ["y", "z"]
    assert back.gts[1].labels.tolist() == [1]
    assert back.gts[1].areas.tolist() == [6.0]  # w * h when "area" is absent
    dets = coco_to_dets(
        [
            {"image_id": 3, "category_id": 5, "bbox": [1, 1, 1, 1], "score": 0.5},
            {"image_id": 3, "category_id": 6, "bbox": [1, 1, 1, 1], "score": 0.5},
        ],
        back,
    )
    assert [len(d) for d in dets] == [1, 0]  # category 6 is not evaluated
    with pytest.raises(DatasetError, match="unknown image_id 4"):
        coco_to_dets([{"image_id": 4, "category_id": 5, "bbox": [1, 1, 1, 1], "score": 1}], back)
    with pytest.raises(DatasetError, match="missing 'categories'"):
        coco_to_gt({"images": []})
