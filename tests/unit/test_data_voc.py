"""The Pascal VOC reader: layouts, the 1-based convention, difficult objects, class names
and every bad-input case, with the exact message a user sees."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from brittle.data import open_dataset
from brittle.data.base import Dataset
from brittle.errors import DatasetError

W, H = 100, 50

Obj = tuple[str, float, float, float, float, int]


def _image(path: Path, w: int = W, h: int = H) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))


def _xml(filename: str, objects: list[Obj], size: tuple[int, int] = (W, H)) -> str:
    lines = [
        "<annotation>",
        f"  <filename>{filename}</filename>",
        f"  <size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>",
    ]
    for name, x1, y1, x2, y2, difficult in objects:
        lines += [
            "  <object>",
            f"    <name>{name}</name>",
            f"    <difficult>{difficult}</difficult>",
            f"    <bndbox><xmin>{x1:g}</xmin><ymin>{y1:g}</ymin><xmax>{x2:g}</xmax>"
            f"<ymax>{y2:g}</ymax></bndbox>",
            "  </object>",
        ]
    return "\n".join([*lines, "</annotation>", ""])


def _voc(
    root: Path, items: dict[str, list[Obj] | None], sets: dict[str, str] | None = None
) -> Path:
    """Classic layout; ``None`` objects means the image has no XML."""
    for stem, objects in items.items():
        _image(root / "JPEGImages" / f"{stem}.jpg")
        if objects is not None:
            xml = root / "Annotations" / f"{stem}.xml"
            xml.parent.mkdir(parents=True, exist_ok=True)
            xml.write_text(_xml(f"{stem}.jpg", objects))
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for name, text in (sets or {}).items():
        path = root / "ImageSets" / "Main" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _issues(ds: Dataset, kind: str) -> list[str]:
    return [str(i) for i in ds.issues.examples(kind)]


def test_reads_the_classic_layout(tmp_path: Path) -> None:
    root = _voc(
        tmp_path / "VOC2012",
        {
            "a": [("person", 1, 1, 100, 50, 0), ("dog", 11, 6, 30, 15, 1)],
            "b": [("cat", 5, 5, 5, 5, 0)],  # one pixel: 1-based inclusive
        },
    )
    ds = open_dataset(root)
    assert (ds.format, ds.name, ds.split) == ("voc", "VOC2012", None)
    assert ds.class_names == ("cat", "dog", "person")  # sorted union of the names found
    assert [r.id for r in ds] == ["a.jpg", "b.jpg"]
    a, b = ds.records
    assert a.targets is not None
    assert b.targets is not None
    np.testing.assert_allclose(a.targets.boxes, [[0, 0, 100, 50], [10, 5, 30, 15]])
    assert a.targets.labels.tolist() == [2, 1]
    # difficult objects are ignore regions (crowd), not ordinary ground truth.
    assert a.targets.iscrowd.tolist() == [False, True]
    np.testing.assert_allclose(b.targets.boxes, [[4, 4, 5, 5]])
    assert not ds.issues


def test_image_sets_choose_the_split(tmp_path: Path) -> None:
    objs: list[Obj] = [("dog", 1, 1, 10, 10, 0)]
    root = _voc(
        tmp_path,
        {"a": objs, "b": objs, "c": objs},
        {"train": "a\nb\n", "val": "c\n", "dog_train": "a 1\nb 1\n"},
    )
    ds = open_dataset(root)
    assert (ds.split, [r.id for r in ds]) == ("val", ["c.jpg"])
    assert [r.id for r in open_dataset(root, split="train")] == ["a.jpg", "b.jpg"]
    with pytest.raises(DatasetError) as info:
        open_dataset(root, split="test")
    assert str(info.value) == (
        f"{root / 'ImageSets' / 'Main'} has no split 'test'; available: train, val"
    )


def test_a_listed_image_with_neither_file(tmp_path: Path) -> None:
    root = _voc(tmp_path, {"a": [("dog", 1, 1, 10, 10, 0)]}, {"val": "a\nghost\n"})
    ds = open_dataset(root)
    assert [r.id for r in ds] == ["a.jpg"]
    assert _issues(ds, "unreadable_image") == [
        f"{root / 'JPEGImages' / 'ghost'}: listed in the split file but neither the image nor "
        "its XML exists"
    ]


def test_missing_and_orphan_annotation_files(tmp_path: Path) -> None:
    root = _voc(tmp_path, {"a": [("dog", 1, 1, 10, 10, 0)], "b": None})
    (root / "Annotations" / "lost.xml").write_text(_xml("lost.jpg", [("dog", 1, 1, 5, 5, 0)]))
    ds = open_dataset(root)
    assert [r.id for r in ds] == ["a.jpg", "b.jpg"]
    assert ds.records[1].targets is not None
    assert len(ds.records[1].targets) == 0
    assert _issues(ds, "missing_labels") == [
        f"{root / 'Annotations' / 'b.xml'}: annotation file not found; image 'b.jpg' counted "
        "as having no objects"
    ]
    assert _issues(ds, "orphan_labels") == [
        f"{root / 'Annotations' / 'lost.xml'}: no image lost.* in {root / 'JPEGImages'}; ignored"
    ]


def test_a_names_file_fixes_the_classes(tmp_path: Path) -> None:
    root = _voc(tmp_path, {"a": [("dog", 1, 1, 10, 10, 0), ("zebra", 1, 1, 10, 10, 0)]})
    (root / "labels.txt").write_text("person\ndog\n")
    ds = open_dataset(root)
    assert ds.class_names == ("person", "dog")
    assert ds.records[0].targets is not None
    assert ds.records[0].targets.labels.tolist() == [1]
    assert _issues(ds, "unknown_class") == [
        f"{root / 'Annotations' / 'a.xml'}:9: object 'zebra' is not in labels.txt"
    ]


def test_malformed_xml_names_the_line_and_skips_the_image(tmp_path: Path) -> None:
    root = _voc(tmp_path, {"a": [("dog", 1, 1, 10, 10, 0)], "b": []})
    bad = root / "Annotations" / "b.xml"
    bad.write_text("<annotation>\n  <object>\n    <name>dog</name>\n</annotation>\n")
    ds = open_dataset(root)
    assert [r.id for r in ds] == ["a.jpg"]
    assert _issues(ds, "malformed_line") == [
        f"{bad}:4: invalid XML: mismatched tag (column 3); image skipped"
    ]
    with pytest.raises(DatasetError) as info:
        open_dataset(root, strict=True)
    assert str(info.value) == (
        f"{bad}:4: invalid XML: mismatched tag (column 3); image skipped "
        "(--strict makes this fatal; drop --strict to skip it)"
    )
    bad.write_text("<doc></doc>")
    assert _issues(open_dataset(root), "malformed_line") == [
        f"{bad}:1: root element is <doc>, expected <annotation>; image skipped"
    ]


def test_every_bad_object_is_counted_with_file_and_line(tmp_path: Path) -> None:
    root = _voc(tmp_path, {"a": []})
    xml = root / "Annotations" / "a.xml"
    xml.write_text(
        "\n".join(
            [
                "<annotation>",  # 1
                "  <object><difficult>0</difficult></object>",  # 2: no name
                "  <object><name>dog</name><difficult>yes</difficult></object>",  # 3
                "  <object><name>dog</name></object>",  # 4: no bndbox
                "  <object><name>dog</name>",  # 5
                "    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax></bndbox>",  # 6
                "  </object>",
                "  <object><name>dog</name><bndbox>",  # 8
                "    <xmin>1</xmin><ymin>one</ymin><xmax>9</xmax><ymax>9</ymax>",  # 9
                "  </bndbox></object>",
                "  <object><name>cat</name><bndbox>",  # 11: xmax < xmin
                "    <xmin>9</xmin><ymin>1</ymin><xmax>5</xmax><ymax>9</ymax></bndbox></object>",
                "  <object><name>cat</name><bndbox>",  # 13: partly outside
                "    <xmin>91</xmin><ymin>1</ymin><xmax>120</xmax><ymax>9</ymax></bndbox></object>",
                "  <object><name>cat</name><bndbox>",  # 15: entirely outside
                "    <xmin>150</xmin><ymin>1</ymin><xmax>160</xmax><ymax>9</ymax>"
                "</bndbox></object>",
                "  <object><name>cat</name><bndbox>",  # 17: 0-based tool, xmin=0: silent
                "    <xmin>0</xmin><ymin>0</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object>",
                "</annotation>",
            ]
        )
    )
    ds = open_dataset(root)
    assert ds.issues.counts() == {
        "box_clipped": 1,
        "box_outside": 1,
        "degenerate_box": 1,
        "malformed_line": 5,
    }
    assert _issues(ds, "malformed_line") == [
        f"{xml}:2: <object> has no <name>; skipped",
        f"{xml}:3: object 'dog': <difficult> must be 0 or 1, got 'yes'",
        f"{xml}:4: object 'dog' has no <bndbox>",
        f"{xml}:6: object 'dog': <bndbox> has no <ymax>",
        f"{xml}:9: object 'dog': <ymin> is not a number: 'one'",
    ]
    assert _issues(ds, "degenerate_box") == [
        f"{xml}:11: object 'cat': box has zero or negative size (xmin=9 ymin=1 xmax=5 ymax=9)"
    ]
    assert _issues(ds, "box_clipped") == [
        f"{xml}:13: object 'cat': box (xmin=91 ymin=1 xmax=120 ymax=9) extends outside the "
        "100x50 image; clipped to it"
    ]
    assert _issues(ds, "box_outside") == [
        f"{xml}:15: object 'cat': box (xmin=150 ymin=1 xmax=160 ymax=9) lies entirely outside "
        "the 100x50 image; dropped"
    ]
    targets = ds.records[0].targets
    assert targets is not None
    np.testing.assert_allclose(targets.boxes, [[90, 0, 100, 9], [0, 0, 10, 10]])


def test_size_mismatch_is_counted(tmp_path: Path) -> None:
    root = _voc(tmp_path, {"a": []})
    xml = root / "Annotations" / "a.xml"
    xml.write_text(_xml("a.jpg", [], size=(50, 100)))
    ds = open_dataset(root)
    assert _issues(ds, "size_mismatch") == [f"{xml}: <size> says 50x100, the image is 100x50"]


def test_roboflow_voc_export_with_xml_beside_images(tmp_path: Path) -> None:
    for split, stems in (("train", ["t0", "t1"]), ("valid", ["v0"])):
        for stem in stems:
            _image(tmp_path / split / f"{stem}.jpg")
            (tmp_path / split / f"{stem}.xml").write_text(
                _xml(f"{stem}.jpg", [("helmet", 2, 2, 10, 10, 0)])
            )
    ds = open_dataset(tmp_path)
    assert (ds.format, ds.split, [r.id for r in ds]) == ("voc", "val", ["v0.jpg"])
    assert len(open_dataset(tmp_path, split="train")) == 2
    flat = open_dataset(tmp_path / "train")
    assert (flat.format, flat.split, flat.class_names, len(flat)) == (
        "voc",
        None,
        ("helmet",),
        2,
    )


def test_filename_element_finds_a_differently_named_image(tmp_path: Path) -> None:
    root = _voc(tmp_path, {"photo": None})
    (root / "Annotations" / "0001.xml").write_text(_xml("photo.jpg", [("dog", 1, 1, 5, 5, 0)]))
    ds = open_dataset(root)
    # photo.jpg is found through 0001.xml's <filename>, so it is not missing an XML.
    assert [r.id for r in ds] == ["photo.jpg"]
    assert ds.records[0].targets is not None
    assert ds.records[0].targets.labels.tolist() == [0]
    assert not ds.issues
