"""COCO instances JSON plus a folder of images.

Accepted: a path to the JSON; a folder with ``annotations/instances_*.json`` (the split
picks ``instances_{split}*.json``); Roboflow's COCO export (``{split}/_annotations.coco.json``
with the images beside it), or one of its split folders. Class names are the categories
in id order; ``bbox`` ``[x, y, width, height]`` becomes xyxy pixels; ``area`` and
``iscrowd`` are kept for COCO's size ranges and crowd matching.

>>> [p.as_posix() for p in image_root_candidates(Path("/d/annotations/instances_val2017.json"))]
['/d/annotations/instances_val2017', '/d/annotations/val2017', '/d/val2017', '/d/images/val2017', \
'/d/images', '/d', '/d/annotations/images', '/d/annotations']
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeGuard

from brittle.data._common import (
    Box,
    absolute,
    choose_split,
    fit_box,
    ground_truth,
    index_image,
    no_splits,
    safe_relative,
    short_repr,
)
from brittle.data._registry import readers
from brittle.data.base import Dataset, ImageRecord, IssueLog
from brittle.errors import DatasetError

__all__ = ["CocoReader", "image_root_candidates"]

_ROBOFLOW_JSON = "_annotations.coco.json"
# Rounding in exporters puts x + width a hair past the edge; that is not a labelling error.
_TOL = 1e-3


def _instances_files(folder: Path) -> dict[str, Path]:
    """``annotations/instances_{split}.json`` files of ``folder``, by split name."""
    ann = folder / "annotations"
    if not ann.is_dir():
        return {}
    return {p.stem[len("instances_") :]: p for p in sorted(ann.glob("instances_*.json"))}


def _roboflow_splits(folder: Path) -> dict[str, Path]:
    return {
        d.name: d / _ROBOFLOW_JSON
        for d in sorted(folder.iterdir())
        if d.is_dir() and (d / _ROBOFLOW_JSON).is_file()
    }


def image_root_candidates(json_path: Path) -> list[Path]:
    """Folders that may hold the images of ``json_path``, most specific first.

    A sibling folder named like the JSON's stem (with and without ``instances_``), the
    COCO layout's ``<root>/val2017`` or ``<root>/images[/val2017]`` next to
    ``annotations/``, ``images/`` beside the JSON, and the JSON's own folder (Roboflow).
    """
    d, stem = json_path.parent, json_path.stem
    short = stem[len("instances_") :] if stem.startswith("instances_") else stem
    out = [d / stem, d / short]
    if d.name == "annotations":
        out += [d.parent / short, d.parent / "images" / short, d.parent / "images", d.parent]
    out += [d / "images", d]
    unique: list[Path] = []
    for p in out:
        if p not in unique:
            unique.append(p)
    return unique


def _load_json(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _categories(doc: dict[str, Any], path: Path) -> tuple[tuple[str, ...], dict[int, int]]:
    raw = doc.get("categories")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise DatasetError(f"{path}: categories: expected a list, got {type(raw).__name__}")
    by_id: dict[int, str] = {}
    for i, cat in enumerate(raw):
        where = f"{path}: categories[{i}]"
        if not isinstance(cat, dict):
            raise DatasetError(f"{where}: expected an object, got {short_repr(cat)}")
        cid, name = cat.get("id"), cat.get("name")
        if not _is_int(cid):
            raise DatasetError(f"{where}.id: expected an integer, got {short_repr(cid)}")
        if not isinstance(name, str) or not name:
            raise DatasetError(f"{where}.name: expected a non-empty string, got {short_repr(name)}")
        if cid in by_id:
            raise DatasetError(f"{where}.id: category id {cid} is used twice; ids must be unique")
        by_id[cid] = name
    ids = sorted(by_id)
    return tuple(by_id[c] for c in ids), {c: i for i, c in enumerate(ids)}


def _id_listing(ids: list[int]) -> str:
    if not ids:
        return "there are none"
    if len(ids) > 6:
        return f"ids {ids[0]}..{ids[-1]}"
    return "ids " + ", ".join(map(str, ids))


class _Image:
    __slots__ = ("file", "height", "id", "index", "rel", "width")

    def __init__(self, index: int, iid: int | str, rel: str, width: object, height: object) -> None:
        self.index = index
        self.id = iid
        self.rel = rel
        self.width = width if _is_int(width) else None
        self.height = height if _is_int(height) else None


def _images(doc: dict[str, Any], path: Path, log: IssueLog) -> list[_Image]:
    raw = doc.get("images")
    if not isinstance(raw, list):
        raise DatasetError(
            f"{path}: no 'images' list; is this a COCO instances file (with 'images', "
            "'annotations' and 'categories')?"
        )
    images: list[_Image] = []
    first_index: dict[int | str, int] = {}
    for i, im in enumerate(raw):
        where = f"images[{i}]"
        if not isinstance(im, dict):
            log.add(
                "malformed_line", path, None, f"{where}: expected an object, got {short_repr(im)}"
            )
            continue
        iid, name = im.get("id"), im.get("file_name")
        if not (_is_int(iid) or isinstance(iid, str)):
            log.add(
                "malformed_line",
                path,
                None,
                f"{where}.id: expected an integer, got {short_repr(iid)}",
            )
            continue
        if not isinstance(name, str) or not name:
            log.add(
                "malformed_line",
                path,
                None,
                f"{where}.file_name: expected a file name, got {short_repr(name)}",
            )
            continue
        if iid in first_index:
            raise DatasetError(
                f"{path}: {where}.id: image id {iid!r} is also used by "
                f"images[{first_index[iid]}]; image ids must be unique"
            )
        first_index[iid] = i
        rel = safe_relative(name)
        if rel is None:
            raise DatasetError(
                f"{path}: {where}.file_name {name!r} (image id {iid!r}) is rejected: file names "
                "must be relative paths that stay inside the image folder (no absolute paths, "
                "no '..' leading out of it)"
            )
        images.append(_Image(i, iid, rel, im.get("width"), im.get("height")))
    return images


def _find_image_root(json_path: Path, images: list[_Image]) -> Path:
    candidates = image_root_candidates(json_path)
    if not images:
        return json_path.parent
    probes = images[:5]
    for root in candidates:
        if any((root / im.rel).is_file() for im in probes):
            return root
    looked = ", ".join(str(c) for c in candidates if c.is_dir()) or str(json_path.parent)
    raise DatasetError(
        f"{json_path}: cannot find the images: {probes[0].rel!r} is in none of {looked}; "
        "put the images in one of these folders or pass image_root"
    )


def _annotations(
    doc: dict[str, Any],
    path: Path,
    by_image: dict[int | str, list[tuple[int, dict[str, Any]]]],
    cat_index: dict[int, int],
    log: IssueLog,
) -> None:
    raw = doc.get("annotations")
    if not isinstance(raw, list):
        raise DatasetError(f"{path}: annotations: expected a list, got {type(raw).__name__}")
    cat_ids = sorted(cat_index)
    for i, ann in enumerate(raw):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            log.add(
                "malformed_line", path, None, f"{where}: expected an object, got {short_repr(ann)}"
            )
            continue
        iid = ann.get("image_id")
        if not (_is_int(iid) or isinstance(iid, str)) or iid not in by_image:
            log.add(
                "unknown_image",
                path,
                None,
                f"{where}.image_id: {short_repr(iid)} is not in 'images'",
            )
            continue
        cid = ann.get("category_id")
        if not _is_int(cid) or cid not in cat_index:
            log.add(
                "unknown_class",
                path,
                None,
                f"{where}.category_id: {short_repr(cid)} is not in 'categories' "
                f"({_id_listing(cat_ids)})",
            )
            continue
        by_image[iid].append((i, ann))


def _targets(
    path: Path,
    anns: list[tuple[int, dict[str, Any]]],
    cat_index: dict[int, int],
    width: int,
    height: int,
    log: IssueLog,
) -> tuple[list[Box], list[int], list[bool], list[float]]:
    boxes: list[Box] = []
    labels: list[int] = []
    crowd: list[bool] = []
    areas: list[float] = []
    for i, ann in anns:
        where = f"annotations[{i}]"
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_is_number, bbox)):
            log.add(
                "malformed_line",
                path,
                None,
                f"{where}.bbox: expected [x, y, width, height] (4 numbers), got {short_repr(bbox)}",
            )
            continue
        x, y, w, h = (float(v) for v in bbox)
        iscrowd = ann.get("iscrowd", 0)
        if iscrowd not in (0, 1):  # True/False compare equal to 1/0
            log.add(
                "malformed_line",
                path,
                None,
                f"{where}.iscrowd: expected 0 or 1, got {short_repr(iscrowd)}",
            )
            continue
        fitted, issue = fit_box((x, y, x + w, y + h), width, height, _TOL)
        shown = f"[{x:g}, {y:g}, {w:g}, {h:g}]"
        if issue == "degenerate_box":
            log.add(
                issue,
                path,
                None,
                f"{where}.bbox {shown}: zero or negative size (width={w:g}, height={h:g})",
            )
        elif issue == "box_outside":
            log.add(
                issue,
                path,
                None,
                f"{where}.bbox {shown} lies entirely outside the {width}x{height} image; dropped",
            )
        elif issue == "box_clipped":
            log.add(
                issue,
                path,
                None,
                f"{where}.bbox {shown} extends outside the {width}x{height} image; clipped to it",
            )
        if fitted is None:
            continue
        area = ann.get("area")
        boxes.append(fitted)
        labels.append(cat_index[ann["category_id"]])
        crowd.append(bool(iscrowd))
        # COCO's small/medium/large ranges use the annotation's area (the mask's, for
        # segmented objects), so keep it; fall back to the box area as given.
        areas.append(float(area) if _is_number(area) and area >= 0 else w * h)
    return boxes, labels, crowd, areas


@readers.register("coco")
class CocoReader:
    """COCO instances JSON (``annotations/instances_*.json`` or Roboflow's COCO export)."""

    def sniff(self, path: Path) -> bool:
        """A .json file, or a folder with COCO or Roboflow-COCO annotation files."""
        if path.is_file():
            return path.suffix.lower() == ".json"
        if not path.is_dir():
            return False
        return (
            bool(_instances_files(path))
            or (path / _ROBOFLOW_JSON).is_file()
            or bool(_roboflow_splits(path))
        )

    def read(
        self,
        path: Path,
        *,
        split: str | None = None,
        strict: bool = False,
        image_root: Path | None = None,
    ) -> Dataset:
        """Index the COCO dataset at ``path``; ``image_root`` overrides where images are."""
        path = absolute(path)
        json_path, split_name, root = self._locate(path, split)
        log = IssueLog(strict=strict)
        doc = _load_json(json_path)
        if not isinstance(doc, dict):
            hint = " (a COCO results file?)" if isinstance(doc, list) else ""
            raise DatasetError(
                f"{json_path}: expected a JSON object with 'images', 'annotations' and "
                f"'categories', got {type(doc).__name__}{hint}"
            )
        class_names, cat_index = _categories(doc, json_path)
        images = _images(doc, json_path, log)
        labeled = "annotations" in doc
        by_image: dict[int | str, list[tuple[int, dict[str, Any]]]] = {im.id: [] for im in images}
        if labeled:
            _annotations(doc, json_path, by_image, cat_index, log)
        folder = (
            absolute(image_root) if image_root is not None else _find_image_root(json_path, images)
        )
        records: list[ImageRecord] = []
        seen: set[str] = set()
        for im in images:
            file = folder / im.rel
            if im.rel in seen:
                log.add(
                    "duplicate_image",
                    json_path,
                    None,
                    f"images[{im.index}].file_name {im.rel!r} is listed more than once",
                )
                continue
            seen.add(im.rel)
            header = index_image(file, log, im.rel)
            if header is None:
                continue
            w, h = header.width, header.height
            if im.width is not None and im.height is not None and (im.width, im.height) != (w, h):
                rotated = any(n.kind == "exif_rotated" for n in header.notes)
                hint = "; the labels may be for the image before EXIF rotation" if rotated else ""
                log.add(
                    "size_mismatch",
                    json_path,
                    None,
                    f"images[{im.index}] {im.rel!r}: the JSON says {im.width}x{im.height}, "
                    f"the image is {w}x{h}{hint}",
                )
            targets = None
            if labeled:
                targets = ground_truth(*_targets(json_path, by_image[im.id], cat_index, w, h, log))
            records.append(ImageRecord(im.rel, file, w, h, targets))
        return Dataset(
            name=root.name or str(root),
            format="coco",
            root=root,
            class_names=class_names,
            records=tuple(records),
            issues=log,
            split=split_name,
        )

    @staticmethod
    def _locate(path: Path, split: str | None) -> tuple[Path, str | None, Path]:
        """(annotation JSON, split name, dataset root) for a file or folder ``path``."""
        if path.is_file():
            no_splits(split, str(path))
            parent = path.parent
            root = parent.parent if parent.name == "annotations" else parent
            return path, None, root
        if not path.is_dir():
            raise DatasetError(f"{path}: no such file or folder")
        instances = _instances_files(path)
        if instances:
            name, json_path = choose_split(instances, split, str(path / "annotations"))
            return json_path, name, path
        if (path / _ROBOFLOW_JSON).is_file():
            no_splits(split, str(path))
            return path / _ROBOFLOW_JSON, None, path
        splits = _roboflow_splits(path)
        if splits:
            name, json_path = choose_split(splits, split, str(path))
            return json_path, name, path
        raise DatasetError(
            f"{path}: not a COCO dataset: expected an instances .json, or a folder with "
            f"annotations/instances_*.json, {_ROBOFLOW_JSON} or <split>/{_ROBOFLOW_JSON}"
        )
