"""The COCO reader: layouts, category mapping, area/iscrowd, path-escape rejection and every
bad-input case, with the exact message a user sees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from brittle.data import open_dataset
from brittle.data.base import Dataset
from brittle.data.coco import CocoReader
from brittle.errors import DatasetError

W, H = 100, 50


def _image(path: Path, w: int = W, h: int = H) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))


def _doc(annotations: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": W, "height": H},
            {"id": 2, "file_name": "sub/b.jpg", "width": W, "height": H},
        ],
        # Ids out of order and with gaps: class_names follow id order.
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": annotations
        if annotations is not None
        else [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 5, 20, 10], "area": 150.5},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 100, 50], "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [50.5, 20, 10, 10]},
        ],
    }
    doc.update(extra)
    return doc


def _coco(root: Path, doc: dict[str, Any] | str | None = None, images: str = "val2017") -> Path:
    """The COCO layout: ``annotations/instances_val2017.json`` + ``val2017/``."""
    for name in ("a.jpg", "sub/b.jpg"):
        _image(root / images / name)
    path = root / "annotations" / "instances_val2017.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc or _doc(), indent=1))
    return path


def _issues(ds: Dataset, kind: str) -> list[str]:
    return [str(i) for i in ds.issues.examples(kind)]


def _error(path: Path, **kwargs: Any) -> str:
    with pytest.raises(DatasetError) as info:
        open_dataset(path, **kwargs)
    return str(info.value)


def test_reads_the_coco_layout(tmp_path: Path) -> None:
    _coco(tmp_path)
    ds = open_dataset(tmp_path)
    assert (ds.format, ds.split, ds.name, ds.root) == ("coco", "val2017", tmp_path.name, tmp_path)
    assert ds.class_names == ("cat", "dog")
    assert [r.id for r in ds] == ["a.jpg", "sub/b.jpg"]
    a, b = ds.records
    assert a.path == tmp_path / "val2017" / "a.jpg"
    assert a.targets is not None
    assert b.targets is not None
    np.testing.assert_allclose(a.targets.boxes, [[10, 5, 30, 15], [0, 0, 100, 50]])
    assert a.targets.labels.tolist() == [1, 0]
    assert a.targets.iscrowd.tolist() == [False, True]
    # The annotation's area is kept (COCO's size ranges use it); else the box area.
    assert a.targets.areas.tolist() == [150.5, 5000.0]
    np.testing.assert_allclose(b.targets.boxes, [[50.5, 20, 60.5, 30]])
    assert not ds.issues


def test_a_json_path_finds_its_images(tmp_path: Path) -> None:
    json_path = _coco(tmp_path)
    ds = open_dataset(json_path)
    assert (ds.format, ds.split, ds.name, len(ds)) == ("coco", None, tmp_path.name, 2)
    assert ds.records[0].path == tmp_path / "val2017" / "a.jpg"

    # A JSON next to an images/ folder.
    other = tmp_path / "other"
    for name in ("a.jpg", "sub/b.jpg"):
        _image(other / "images" / name)
    (other / "labels.json").write_text(json.dumps(_doc()))
    assert open_dataset(other / "labels.json").records[0].path == other / "images" / "a.jpg"


def test_image_root_overrides_the_search(tmp_path: Path) -> None:
    json_path = _coco(tmp_path, images="pictures")
    ds = CocoReader().read(json_path, image_root=tmp_path / "pictures")
    assert ds.records[1].path == tmp_path / "pictures" / "sub" / "b.jpg"
    assert _error(json_path) == (
        f"{json_path}: cannot find the images: 'a.jpg' is in none of {tmp_path}, "
        f"{tmp_path / 'annotations'}; put the images in one of these folders or pass image_root"
    )


def test_roboflow_coco_export_and_split_selection(tmp_path: Path) -> None:
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        folder = tmp_path / split
        images: list[dict[str, Any]] = [{"id": i, "file_name": f"{split}{i}.jpg"} for i in range(n)]
        for im in images:
            _image(folder / im["file_name"])
        doc = {"images": images, "categories": [{"id": 0, "name": "thing"}], "annotations": []}
        (folder / "_annotations.coco.json").write_text(json.dumps(doc))
    ds = open_dataset(tmp_path)
    assert (ds.format, ds.split, [r.id for r in ds]) == ("coco", "val", ["valid0.jpg"])
    assert len(open_dataset(tmp_path, split="train")) == 2
    assert _error(tmp_path, split="holdout") == (
        f"{tmp_path} has no split 'holdout'; available: test, train, val"
    )
    # One split folder on its own.
    assert open_dataset(tmp_path / "test").records[0].id == "test0.jpg"


def test_split_picks_the_instances_file(tmp_path: Path) -> None:
    _coco(tmp_path)
    train = tmp_path / "annotations" / "instances_train2017.json"
    train.write_text(json.dumps({"images": [], "categories": [], "annotations": []}))
    assert open_dataset(tmp_path).split == "val2017"
    assert open_dataset(tmp_path, split="train").split == "train2017"
    assert _error(tmp_path, split="test") == (
        f"{tmp_path / 'annotations'} has no split 'test'; available: train2017, val2017"
    )
    assert _error(train, split="val") == (
        f"{train} has no splits, so split 'val' cannot be chosen; drop the split or point at "
        "a folder or file that has splits"
    )


@pytest.mark.parametrize(
    ("file_name", "why"),
    [("../secret.jpg", "no '..' leading out of it"), ("/etc/passwd", "no absolute paths")],
)
def test_file_names_escaping_the_image_folder_are_rejected(
    tmp_path: Path, file_name: str, why: str
) -> None:
    doc = _doc()
    doc["images"][1]["file_name"] = file_name
    json_path = _coco(tmp_path, doc)
    assert _error(tmp_path) == (
        f"{json_path}: images[1].file_name {file_name!r} (image id 2) is rejected: file names "
        "must be relative paths that stay inside the image folder (no absolute paths, no '..' "
        "leading out of it)"
    )
    assert why in _error(tmp_path)


def test_dot_dot_inside_the_folder_is_fine(tmp_path: Path) -> None:
    doc = _doc()
    doc["images"][1]["file_name"] = "sub/../sub/b.jpg"
    _coco(tmp_path, doc)
    assert open_dataset(tmp_path).records[1].id == "sub/b.jpg"


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    json_path = _coco(tmp_path, '{\n  "images": [\n    {"id": 1,}\n  ]\n}')
    assert _error(tmp_path) == (
        f"{json_path}:3:14: invalid JSON: Expecting property name enclosed in double quotes"
    )


def test_a_results_file_is_not_a_dataset(tmp_path: Path) -> None:
    json_path = _coco(tmp_path, '[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]')
    assert _error(json_path) == (
        f"{json_path}: expected a JSON object with 'images', 'annotations' and 'categories', "
        "got list (a COCO results file?)"
    )


def test_duplicate_image_ids_and_bad_categories_are_fatal(tmp_path: Path) -> None:
    doc = _doc()
    doc["images"][1]["id"] = 1
    json_path = _coco(tmp_path, doc)
    assert _error(tmp_path) == (
        f"{json_path}: images[1].id: image id 1 is also used by images[0]; image ids must be unique"
    )
    doc = _doc(categories=[{"id": 1, "name": "a"}, {"id": "2", "name": "b"}])
    _coco(tmp_path, doc)
    assert _error(tmp_path) == f"{json_path}: categories[1].id: expected an integer, got '2'"


def test_every_bad_annotation_is_counted_with_its_json_path(tmp_path: Path) -> None:
    anns: list[Any] = [
        {"image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10]},
        {"image_id": 99, "category_id": 3, "bbox": [10, 5, 20, 10]},
        {"image_id": 1, "category_id": 5, "bbox": [10, 5, 20, 10]},
        {"image_id": 1, "category_id": 3, "bbox": [10, 5, 20]},
        {"image_id": 1, "category_id": 3},
        {"image_id": 1, "category_id": 3, "bbox": [10, 5, 0, 10]},
        {"image_id": 1, "category_id": 3, "bbox": [90, 40, 20, 20]},
        {"image_id": 1, "category_id": 3, "bbox": [200, 5, 20, 10]},
        {"image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10], "iscrowd": 2},
        "not an object",
        {"image_id": 2, "category_id": 7, "bbox": [0, 0, 100.0001, 50]},  # rounding: silent
    ]
    json_path = _coco(tmp_path, _doc(anns))
    ds = open_dataset(tmp_path)
    assert ds.issues.counts() == {
        "box_clipped": 1,
        "box_outside": 1,
        "degenerate_box": 1,
        "malformed_line": 4,
        "unknown_class": 1,
        "unknown_image": 1,
    }
    at = f"{json_path}: annotations"
    assert _issues(ds, "unknown_image") == [f"{at}[1].image_id: 99 is not in 'images'"]
    assert _issues(ds, "unknown_class") == [
        f"{at}[2].category_id: 5 is not in 'categories' (ids 3, 7)"
    ]
    assert _issues(ds, "malformed_line") == [
        f"{at}[9]: expected an object, got 'not an object'",
        f"{at}[3].bbox: expected [x, y, width, height] (4 numbers), got [10, 5, 20]",
        f"{at}[4].bbox: expected [x, y, width, height] (4 numbers), got None",
        f"{at}[8].iscrowd: expected 0 or 1, got 2",
    ]
    assert _issues(ds, "degenerate_box") == [
        f"{at}[5].bbox [10, 5, 0, 10]: zero or negative size (width=0, height=10)"
    ]
    assert _issues(ds, "box_clipped") == [
        f"{at}[6].bbox [90, 40, 20, 20] extends outside the 100x50 image; clipped to it"
    ]
    assert _issues(ds, "box_outside") == [
        f"{at}[7].bbox [200, 5, 20, 10] lies entirely outside the 100x50 image; dropped"
    ]
    a, b = ds.records
    assert a.targets is not None
    assert b.targets is not None
    np.testing.assert_allclose(a.targets.boxes, [[10, 5, 30, 15], [90, 40, 100, 50]])
    np.testing.assert_allclose(b.targets.boxes, [[0, 0, 100, 50]])


def test_strict_mode_raises_on_an_unknown_category(tmp_path: Path) -> None:
    json_path = _coco(tmp_path, _doc([{"image_id": 1, "category_id": 5, "bbox": [1, 1, 2, 2]}]))
    assert _error(tmp_path, strict=True) == (
        f"{json_path}: annotations[0].category_id: 5 is not in 'categories' (ids 3, 7) "
        "(--strict makes this fatal; drop --strict to skip it)"
    )


def test_missing_and_mismatched_images(tmp_path: Path) -> None:
    doc = _doc()
    doc["images"].append({"id": 3, "file_name": "gone.jpg"})
    doc["images"][1]["width"] = 640
    json_path = _coco(tmp_path, doc)
    ds = open_dataset(tmp_path)
    assert [r.id for r in ds] == ["a.jpg", "sub/b.jpg"]
    assert _issues(ds, "unreadable_image") == [
        f"{tmp_path / 'val2017' / 'gone.jpg'}: file not found"
    ]
    assert _issues(ds, "size_mismatch") == [
        f"{json_path}: images[1] 'sub/b.jpg': the JSON says 640x50, the image is 100x50"
    ]


def test_a_malformed_image_entry_is_skipped(tmp_path: Path) -> None:
    doc = _doc()
    doc["images"][1]["file_name"] = 42
    json_path = _coco(tmp_path, doc)
    ds = open_dataset(tmp_path)
    assert [r.id for r in ds] == ["a.jpg"]
    assert _issues(ds, "malformed_line") == [
        f"{json_path}: images[1].file_name: expected a file name, got 42"
    ]
    # Its annotations now name an image the file does not (usably) list.
    assert ds.issues.count("unknown_image") == 1


def test_without_annotations_the_images_are_unlabelled(tmp_path: Path) -> None:
    doc = _doc()
    del doc["annotations"]
    _coco(tmp_path, doc)
    ds = open_dataset(tmp_path)
    assert [r.targets for r in ds] == [None, None]
    assert not ds.labeled
