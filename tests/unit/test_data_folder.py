"""The plain-folder reader, and open_dataset's format detection and errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from brittle.data import detect_format, open_dataset, readers
from brittle.data.base import DatasetReader
from brittle.data.images import IMAGE_SUFFIXES
from brittle.errors import DatasetError, UnknownNameError


def _image(path: Path, w: int = 12, h: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))


def test_reads_images_recursively_without_targets(tmp_path: Path) -> None:
    _image(tmp_path / "b.png")
    _image(tmp_path / "sub" / "a.JPG", 20, 10)
    _image(tmp_path / ".hidden" / "x.png")
    _image(tmp_path / "._b.png")  # a macOS resource fork; hidden, so skipped
    (tmp_path / "notes.txt").write_text("not an image")
    ds = open_dataset(tmp_path)
    assert (ds.format, ds.class_names, ds.split, ds.name) == ("folder", (), None, tmp_path.name)
    assert [(r.id, r.width, r.height, r.targets) for r in ds] == [
        ("b.png", 12, 8, None),
        ("sub/a.JPG", 20, 10, None),
    ]
    assert not ds.labeled
    assert ds.load(ds.records[1]).image.shape == (10, 20, 3)


def test_unreadable_images_are_counted_and_fatal_when_strict(tmp_path: Path) -> None:
    _image(tmp_path / "ok.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    ds = open_dataset(tmp_path, format="folder")
    assert [r.id for r in ds] == ["ok.png"]
    assert [str(i) for i in ds.issues.examples("unreadable_image")] == [
        f"{tmp_path / 'broken.jpg'}: truncated JPEG: no end-of-image marker"
    ]
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path, strict=True)
    assert str(info.value) == (
        f"{tmp_path / 'broken.jpg'}: truncated JPEG: no end-of-image marker "
        "(--strict makes this fatal; drop --strict to skip it)"
    )


def test_a_folder_has_no_splits(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path, split="val")
    assert str(info.value) == (
        f"{tmp_path} has no splits, so split 'val' cannot be chosen; drop the split or point "
        "at a folder or file that has splits"
    )


def test_format_is_detected_in_order(tmp_path: Path) -> None:
    yolo = tmp_path / "yolo"
    _image(yolo / "images" / "a.png")
    (yolo / "labels").mkdir()
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    (coco / "annotations" / "instances_val.json").write_text("{}")
    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    images = tmp_path / "images"
    _image(images / "deep" / "a.png")
    assert [detect_format(p) for p in (yolo, coco, voc, images)] == [
        "yolo",
        "coco",
        "voc",
        "folder",
    ]
    assert detect_format(coco / "annotations" / "instances_val.json") == "coco"
    (tmp_path / "data.yaml").write_text("val: images\nnames: [a]\n")
    assert detect_format(tmp_path / "data.yaml") == "yolo"


def test_an_unrecognised_path_explains_the_accepted_layouts(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello")
    for path in (tmp_path, tmp_path / "readme.txt"):
        with pytest.raises(DatasetError) as info:
            open_dataset(path)
        assert str(info.value) == (
            f"{path}: not a dataset layout brittle recognises. It reads: a YOLO data.yaml, or a "
            "folder with data.yaml or images/ + labels/; a COCO instances .json, or a folder "
            "with annotations/instances_*.json or <split>/_annotations.coco.json; a Pascal VOC "
            "folder with Annotations/ + JPEGImages/; or a folder of images "
            f"({' '.join(sorted(IMAGE_SUFFIXES))}). Pass format= (--data-format) to force one"
        )
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path / "nowhere")
    assert str(info.value) == f"{tmp_path / 'nowhere'}: no such file or folder"


def test_an_unknown_format_name_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        open_dataset(tmp_path, format="coc")
    assert str(info.value) == (
        "unknown dataset format 'coc'; did you mean 'coco'? (known: coco, folder, voc, yolo)"
    )


def test_a_forced_format_that_does_not_fit(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path, format="voc")
    assert str(info.value) == (
        f"{tmp_path}: not a Pascal VOC dataset: expected Annotations/ and JPEGImages/, or .xml "
        "files beside their images"
    )


def test_every_registered_reader_follows_the_protocol() -> None:
    for name, factory in readers.items():
        assert isinstance(factory(), DatasetReader), name
