"""The YOLO reader: layouts, splits, label conventions and every bad-input case, with the
exact message a user sees."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from brittle.data import open_dataset
from brittle.data.base import Dataset
from brittle.errors import DatasetError

W, H = 100, 50  # test images are wider than tall, so x and y mix-ups show


def _image(path: Path, w: int = W, h: int = H) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))
    return path


def _text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _export(root: Path, labels: dict[str, str | None], yaml: str | None = None) -> Path:
    """``images/{stem}.png`` (100x50) with ``labels/{stem}.txt`` (None: no label file)."""
    for stem, text in labels.items():
        _image(root / "images" / f"{stem}.png")
        if text is not None:
            _text(root / "labels" / f"{stem}.txt", text)
    if yaml is None:
        yaml = "path: .\nval: images\nnames: [cat, dog]\n"
    _text(root / "data.yaml", yaml)
    return root


def _issues(ds: Dataset, kind: str) -> list[str]:
    return [str(i) for i in ds.issues.examples(kind)]


def test_reads_a_roboflow_export(tmp_path: Path) -> None:
    # No newline after the last line, as in Roboflow exports: that line still counts.
    root = _export(tmp_path / "site", {"a": "0 0.5 0.5 0.2 0.4\n1 0.25 0.25 0.1 0.1", "b": ""})
    ds = open_dataset(root)
    assert (ds.name, ds.format, ds.split, ds.class_names) == ("site", "yolo", "val", ("cat", "dog"))
    assert ds.root == root
    assert [r.id for r in ds] == ["a.png", "b.png"]
    a, b = ds.records
    assert (a.width, a.height, a.path) == (W, H, root / "images" / "a.png")
    assert a.targets is not None
    assert b.targets is not None
    assert a.targets.boxes.dtype == np.float64
    np.testing.assert_allclose(a.targets.boxes, [[40, 15, 60, 35], [20, 10, 30, 15]])
    assert a.targets.labels.tolist() == [0, 1]
    assert len(b.targets) == 0
    assert not ds.issues
    sample = ds.load(a)
    assert sample.image.shape == (H, W, 3)
    assert sample.id == "a.png"


def test_detects_yolo_from_a_folder_or_a_yaml_file(tmp_path: Path) -> None:
    root = _export(tmp_path / "d", {"a": "0 0.5 0.5 0.2 0.4\n"})
    assert open_dataset(root).format == "yolo"
    ds = open_dataset(root / "data.yaml")
    assert (ds.format, ds.name, len(ds)) == ("yolo", "d", 1)


def test_names_may_be_a_mapping_and_nc_must_agree(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": "1 0.5 0.5 0.2 0.4"}, "val: images\nnames: {0: cat, 1: dog}\n")
    assert open_dataset(root).class_names == ("cat", "dog")

    yaml = _text(tmp_path / "data.yaml", "val: images\nnc: 3\nnames: [cat, dog]\n")
    with pytest.raises(DatasetError) as info:
        open_dataset(root)
    assert str(info.value) == f"{yaml}: nc is 3 but names lists 2 classes; make them agree"

    _text(yaml, "val: images\nnames: {0: cat, 2: dog}\n")
    with pytest.raises(DatasetError) as info:
        open_dataset(root)
    assert str(info.value) == f"{yaml}: names: class ids must run 0..1 without gaps; missing 1"


def test_nc_without_names_gives_numbered_classes(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": "2 0.5 0.5 0.2 0.4"}, "val: images\nnc: 3\n")
    ds = open_dataset(root)
    assert ds.class_names == ("class0", "class1", "class2")
    assert _issues(ds, "unnamed_classes") == [
        f"{root / 'data.yaml'}: no names in data.yaml; using class0..class2 (add names: [...])"
    ]


def test_invalid_yaml_names_the_line_and_column(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": ""}, "val: images\nnames: [cat, dog\n")
    with pytest.raises(DatasetError) as info:
        open_dataset(root)
    assert str(info.value) == (
        f"{root / 'data.yaml'}:3:1: invalid YAML: expected ',' or ']', but got '<stream end>'"
    )


def _roboflow_splits(root: Path) -> Path:
    for folder, n in (("train", 3), ("valid", 2), ("test", 1)):
        for i in range(n):
            _image(root / folder / "images" / f"{folder}{i}.png")
            _text(root / folder / "labels" / f"{folder}{i}.txt", "0 0.5 0.5 0.2 0.2\n")
    # Roboflow's paths are relative to a folder above the export; brittle drops the "../".
    return _text(
        root / "data.yaml",
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
        "nc: 1\nnames: ['thing']\n",
    )


def test_split_selection(tmp_path: Path) -> None:
    yaml = _roboflow_splits(tmp_path)
    default = open_dataset(tmp_path)
    assert (default.split, len(default)) == ("val", 2)
    assert [r.id for r in default] == ["valid0.png", "valid1.png"]
    assert (open_dataset(yaml, split="train").split, len(open_dataset(yaml, split="train"))) == (
        "train",
        3,
    )
    assert len(open_dataset(tmp_path, split="valid")) == 2
    assert len(open_dataset(tmp_path, split="test")) == 1

    _text(yaml, "train: ../train/images\nval: ../valid/images\nnames: ['thing']\n")
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path, split="test")
    assert str(info.value) == f"{yaml} has no split 'test'; available: train, val"


def test_default_split_falls_back_to_test_then_train(tmp_path: Path) -> None:
    yaml = _roboflow_splits(tmp_path)
    _text(yaml, "train: train/images\ntest: test/images\nnames: [thing]\n")
    assert open_dataset(tmp_path).split == "test"
    _text(yaml, "train: train/images\nnames: [thing]\n")
    assert open_dataset(tmp_path).split == "train"
    _text(yaml, "names: [thing]\n")
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path)
    assert str(info.value) == f"{yaml}: no train, val or test entry; add e.g. 'val: images'"


def test_a_split_can_be_a_list_of_folders_or_a_txt_list(tmp_path: Path) -> None:
    yaml = _roboflow_splits(tmp_path)
    _text(yaml, "val: [train/images, test/images]\nnames: [thing]\n")
    ds = open_dataset(tmp_path)
    assert [r.id for r in ds] == [
        "train/images/train0.png",
        "train/images/train1.png",
        "train/images/train2.png",
        "test/images/test0.png",
    ]
    _text(tmp_path / "val.txt", "./train/images/train1.png\n\ntest/images/test0.png\n")
    _text(yaml, "val: val.txt\nnames: [thing]\n")
    ds = open_dataset(tmp_path)
    assert [r.id for r in ds] == ["train/images/train1.png", "test/images/test0.png"]
    assert all(r.targets is not None and len(r.targets) == 1 for r in ds)


def test_a_missing_split_folder_or_path(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": ""}, "val: pictures\nnames: [cat]\n")
    with pytest.raises(DatasetError) as info:
        open_dataset(root)
    assert str(info.value) == (
        f"{root / 'data.yaml'}: val: 'pictures' not found (looked for {root / 'pictures'})"
    )
    _text(root / "data.yaml", "path: elsewhere\nval: images\nnames: [cat]\n")
    with pytest.raises(DatasetError) as info:
        open_dataset(root)
    assert str(info.value) == (
        f"{root / 'data.yaml'}: path: 'elsewhere' not found (looked for {root / 'elsewhere'}; "
        "a relative path is taken from the yaml's folder)"
    )


def test_bare_images_and_labels_with_classes_txt(tmp_path: Path) -> None:
    _export(tmp_path, {"a": "1 0.5 0.5 0.2 0.4"})
    (tmp_path / "data.yaml").unlink()
    _text(tmp_path / "classes.txt", "cat\ndog\n\n")
    ds = open_dataset(tmp_path)
    assert (ds.format, ds.split, ds.class_names) == ("yolo", None, ("cat", "dog"))
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path, split="val")
    assert str(info.value) == (
        f"{tmp_path} has no splits, so split 'val' cannot be chosen; drop the split or point "
        "at a folder or file that has splits"
    )


def test_bare_layout_without_class_names_numbers_the_classes(tmp_path: Path) -> None:
    _export(tmp_path, {"a": "2 0.5 0.5 0.2 0.4", "b": "0 0.5 0.5 0.2 0.4"})
    (tmp_path / "data.yaml").unlink()
    ds = open_dataset(tmp_path)
    assert ds.class_names == ("class0", "class1", "class2")
    assert _issues(ds, "unnamed_classes") == [
        f"{tmp_path}: no class names found (no data.yaml names, no classes.txt); using "
        "class0..class2 after the ids in the labels (add a classes.txt with one name per line)"
    ]


def test_bare_layout_with_split_folders(tmp_path: Path) -> None:
    for split, n in (("train", 2), ("val", 1)):
        for i in range(n):
            _image(tmp_path / "images" / split / f"{split}{i}.png")
            _text(tmp_path / "labels" / split / f"{split}{i}.txt", "0 0.5 0.5 0.2 0.2")
    _text(tmp_path / "labels" / "classes.txt", "thing\n")
    ds = open_dataset(tmp_path)
    assert (ds.split, [r.id for r in ds], ds.class_names) == ("val", ["val0.png"], ("thing",))
    assert len(open_dataset(tmp_path, split="train")) == 2


def test_a_split_folder_opened_directly_takes_names_from_the_parent_yaml(tmp_path: Path) -> None:
    _roboflow_splits(tmp_path)
    ds = open_dataset(tmp_path / "valid")
    assert (ds.class_names, len(ds), ds.name) == (("thing",), 2, "valid")


def test_labels_follow_the_last_images_component(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "sub" / "x.png")
    _text(tmp_path / "labels" / "sub" / "x.txt", "1 0.5 0.5 0.2 0.4")
    _text(tmp_path / "data.yaml", "val: images\nnames: [cat, dog]\n")
    (record,) = open_dataset(tmp_path).records
    assert record.id == "sub/x.png"
    assert record.targets is not None
    assert record.targets.labels.tolist() == [1]


BAD_LINES = """0 0.5 0.5 0.2 0.4

0 0.5 0.5 0.1
0 0.5 abc 0.1 0.1
0 0.5 0.5 0.1 0.1 0.2
1.5 0.5 0.5 0.1 0.1
7 0.5 0.5 0.1 0.1
0 0.5 0.5 0 0.1
0 0.05 0.5 0.2 0.2
1 1.5 0.5 0.2 0.2
0 0.5 0.5 nan 0.1
1   0.5 0.5 0.2 0.4   \r
"""


def test_every_bad_label_line_is_counted_with_file_line_and_text(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": BAD_LINES})
    label = root / "labels" / "a.txt"
    ds = open_dataset(root)
    assert ds.issues.counts() == {
        "box_clipped": 1,
        "box_outside": 1,
        "class_out_of_range": 1,
        "degenerate_box": 1,
        "malformed_line": 5,
    }
    assert _issues(ds, "malformed_line") == [
        f"{label}:3: expected 5 numbers 'class cx cy w h', got 4: '0 0.5 0.5 0.1'",
        f"{label}:4: 'abc' is not a number: '0 0.5 abc 0.1 0.1'",
        f"{label}:5: expected 5 numbers 'class cx cy w h' or a polygon "
        "'class x1 y1 x2 y2 x3 y3 ...' (an odd count of at least 7), got 6: "
        "'0 0.5 0.5 0.1 0.1 0.2'",
        f"{label}:6: class id '1.5' is not a whole number: '1.5 0.5 0.5 0.1 0.1'",
        f"{label}:11: 'nan' is not a finite number: '0 0.5 0.5 nan 0.1'",
    ]
    assert _issues(ds, "class_out_of_range") == [
        f"{label}:7: class id 7 is out of range: 2 classes (ids 0-1): '7 0.5 0.5 0.1 0.1'"
    ]
    assert _issues(ds, "degenerate_box") == [
        f"{label}:8: box has zero or negative size (w=0, h=0.1): '0 0.5 0.5 0 0.1'"
    ]
    assert _issues(ds, "box_clipped") == [
        f"{label}:9: box x1=-0.05 y1=0.4 x2=0.15 y2=0.6 (normalised) extends outside [0, 1]; "
        "clipped to the image: '0 0.05 0.5 0.2 0.2'"
    ]
    assert _issues(ds, "box_outside") == [
        f"{label}:10: box x1=1.4 y1=0.4 x2=1.6 y2=0.6 (normalised) lies entirely outside "
        "[0, 1]; dropped: '1 1.5 0.5 0.2 0.2'"
    ]
    (record,) = ds.records
    assert record.targets is not None
    np.testing.assert_allclose(
        record.targets.boxes, [[40, 15, 60, 35], [0, 20, 15, 30], [40, 15, 60, 35]]
    )
    assert record.targets.labels.tolist() == [0, 0, 1]


def test_a_class_id_below_zero_is_out_of_range_even_without_names(tmp_path: Path) -> None:
    _export(tmp_path, {"a": "-1 0.5 0.5 0.2 0.2"})
    (tmp_path / "data.yaml").unlink()
    ds = open_dataset(tmp_path)
    assert _issues(ds, "class_out_of_range") == [
        f"{tmp_path / 'labels' / 'a.txt'}:1: class id -1 is out of range: class ids cannot be "
        "negative: '-1 0.5 0.5 0.2 0.2'"
    ]


def test_segment_polygons_become_their_bounding_box(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": "1 0.1 0.2 0.5 0.2 0.3 0.6\n0 0.9 0.5 1.2 0.5 1.0 0.9 0.8 0.9"})
    ds = open_dataset(root)
    (record,) = ds.records
    assert record.targets is not None
    np.testing.assert_allclose(record.targets.boxes, [[10, 10, 50, 30], [80, 25, 100, 45]])
    assert record.targets.labels.tolist() == [1, 0]
    assert _issues(ds, "box_clipped") == [
        f"{root / 'labels' / 'a.txt'}:2: box x1=0.8 y1=0.5 x2=1.2 y2=0.9 (normalised) extends "
        "outside [0, 1]; clipped to the image: '0 0.9 0.5 1.2 0.5 1.0 0.9 0.8 0.9'"
    ]


def test_missing_and_orphan_label_files(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": "0 0.5 0.5 0.2 0.2", "b": None})
    _text(root / "labels" / "zzz.txt", "0 0.5 0.5 0.2 0.2")
    _text(root / "labels" / "classes.txt", "cat\ndog\n")  # a names file, not an orphan
    ds = open_dataset(root)
    assert ds.issues.counts() == {"missing_labels": 1, "orphan_labels": 1}
    assert _issues(ds, "missing_labels") == [
        f"{root / 'labels' / 'b.txt'}: label file not found; image 'b.png' counted as having "
        "no objects"
    ]
    assert _issues(ds, "orphan_labels") == [
        f"{root / 'labels' / 'zzz.txt'}: label file has no matching image; ignored"
    ]
    b = ds.records[1]
    assert b.id == "b.png"
    assert b.targets is not None
    assert len(b.targets) == 0


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": "0 0.5 0.5 0.2 0.2"})
    _ok, buf = cv2.imencode(
        ".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    )
    (root / "images" / "cut.jpg").write_bytes(buf.tobytes()[:900])
    (root / "images" / "notes.png").write_text("not an image")
    _text(root / "labels" / "cut.txt", "0 0.5 0.5 0.2 0.2")
    _text(root / "labels" / "notes.txt", "0 0.5 0.5 0.2 0.2")
    ds = open_dataset(root)
    assert [r.id for r in ds] == ["a.png"]
    assert _issues(ds, "unreadable_image") == [
        f"{root / 'images' / 'cut.jpg'}: truncated JPEG: no end-of-image marker",
        f"{root / 'images' / 'notes.png'}: not an image or unsupported format",
    ]
    assert "orphan_labels" not in ds.issues.counts()  # their images exist, just unreadable

    with pytest.raises(DatasetError) as info:
        open_dataset(root, strict=True)
    assert str(info.value) == (
        f"{root / 'images' / 'cut.jpg'}: truncated JPEG: no end-of-image marker "
        "(--strict makes this fatal; drop --strict to skip it)"
    )


def test_converted_images_are_counted(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": ""})
    cv2.imwrite(str(root / "images" / "gray.png"), np.zeros((H, W), np.uint8))
    _text(root / "labels" / "gray.txt", "")
    ds = open_dataset(root)
    assert _issues(ds, "converted_image") == [
        f"{root / 'images' / 'gray.png'}: grayscale image converted to RGB uint8"
    ]
    assert ds.load(ds.records[1]).image.shape == (H, W, 3)


def test_exif_rotated_labels_are_denormalised_with_the_upright_size(tmp_path: Path) -> None:
    root = _export(tmp_path, {})
    exif = Image.Exif()
    exif[0x0112] = 6
    path = root / "images" / "phone.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Stored 100 wide x 50 high; shown (and labelled, as Ultralytics does) 50 wide x 100 high.
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path, exif=exif.tobytes())
    _text(root / "labels" / "phone.txt", "0 0.5 0.25 0.2 0.1")
    ds = open_dataset(root)
    (record,) = ds.records
    assert (record.width, record.height) == (H, W)
    assert record.targets is not None
    np.testing.assert_allclose(record.targets.boxes, [[20, 20, 30, 30]])
    assert _issues(ds, "exif_rotated") == [
        f"{path}: EXIF orientation 6: used upright as 50x100 (stored as 100x50)"
    ]
    assert ds.load(record).image.shape == (W, H, 3)


def test_strict_mode_raises_on_the_first_bad_line(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.1\n", "b": None})
    with pytest.raises(DatasetError) as info:
        open_dataset(root, strict=True)
    assert str(info.value) == (
        f"{root / 'labels' / 'a.txt'}:2: expected 5 numbers 'class cx cy w h', got 4: "
        "'0 0.5 0.5 0.1' (--strict makes this fatal; drop --strict to skip it)"
    )
    _text(root / "labels" / "a.txt", "0 0.5 0.5 0.2 0.2\n")
    # A missing label file is not a bad record: strict still reads the dataset.
    assert open_dataset(root, strict=True).issues.counts() == {"missing_labels": 1}


def test_duplicates_in_an_image_list_are_counted_once(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a": "0 0.5 0.5 0.2 0.2"}, "val: list.txt\nnames: [cat]\n")
    _text(root / "list.txt", "images/a.png\n./images/a.png\n")
    ds = open_dataset(root)
    assert [r.id for r in ds] == ["images/a.png"]
    assert _issues(ds, "duplicate_image") == [
        f"{root / 'images' / 'a.png'}: listed more than once in {root / 'data.yaml'} val"
    ]


def test_the_shared_css_valid_dataset(assets: Path) -> None:
    # Speed is measured by benches, never asserted here (shared, noisy machines).
    ds = open_dataset(assets / "css-valid")
    assert (ds.format, ds.split, len(ds)) == ("yolo", "val", 114)
    assert ds.class_names == (
        "Hardhat", "Mask", "NO-Hardhat", "NO-Mask", "NO-Safety Vest",
        "Person", "Safety Cone", "Safety Vest", "machinery", "vehicle",
    )  # fmt: skip
    labels = np.concatenate([r.targets.labels for r in ds if r.targets is not None])
    # 697 label lines. shared/assets/README.md says 593 boxes (62/9/64/66/99/160/33/33/34/34):
    # that is `cat labels/*.txt | wc -l`, which misses the last line of the 104 label files
    # without a final newline (and credits them to the next file's first class).
    assert len(labels) == 697
    assert np.bincount(labels, minlength=10).tolist() == [79, 21, 69, 74, 106, 166, 44, 41, 55, 42]
    assert all((r.width, r.height) == (640, 640) for r in ds)
    assert not ds.issues
