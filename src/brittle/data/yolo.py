"""YOLO datasets as Roboflow and Ultralytics export them.

Accepted: a ``data.yaml`` (or a folder holding one), or a bare folder with ``images/``
and ``labels/``. Each image's label file is found by Ultralytics' rule — the last
``/images/`` path component becomes ``/labels/`` and the suffix ``.txt`` — and holds
one object per line, ``class cx cy w h`` normalised to [0, 1] by the image's size
*after* EXIF orientation (Ultralytics' convention). Lines with more numbers are
Ultralytics segment polygons ``class x1 y1 x2 y2 ...``; brittle uses their bounding box.

>>> label_path_for(Path("/d/images/val/a.b.jpg")).as_posix()
'/d/labels/val/a.b.txt'
>>> parse_label_line("0 0.5 0.5 0.2 0.4", 3)
(0, (0.4, 0.3, 0.6, 0.7))
>>> parse_label_line("0 0.5 0.5 0.1", 3).message
"expected 5 numbers 'class cx cy w h', got 4: '0 0.5 0.5 0.1'"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from brittle.data._common import (
    Box,
    absolute,
    choose_split,
    finite_number,
    fit_box,
    ground_truth,
    index_image,
    list_images,
    no_splits,
    read_names_file,
    relative_id,
)
from brittle.data._registry import readers
from brittle.data.base import Dataset, ImageRecord, IssueLog
from brittle.data.images import is_image_path
from brittle.errors import DatasetError
from brittle.types import GroundTruth

__all__ = ["LineError", "YoloReader", "label_path_for", "parse_label_file", "parse_label_line"]

_YAML_NAMES = ("data.yaml", "data.yml")
_SPLIT_KEYS = ("train", "val", "test")
# Normalised overhangs this small are float noise from exporters, not labelling errors.
_TOL = 1e-6


def label_path_for(image: Path) -> Path:
    """The label file of ``image`` by Ultralytics' rule (last ``/images/`` → ``/labels/``).

    Without an ``images`` folder in the path, the label file sits beside the image.

    >>> label_path_for(Path("/d/images/x/images/a.png")).as_posix()
    '/d/images/x/labels/a.txt'
    >>> label_path_for(Path("/d/pics/a.png")).as_posix()
    '/d/pics/a.txt'
    """
    s = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in s:
        s = sb.join(s.rsplit(sa, 1))
    return Path(s).with_suffix(".txt")


class LineError(NamedTuple):
    """Why a label line was rejected: the issue kind to count and the message."""

    kind: str
    message: str


def parse_label_line(line: str, nc: int | None) -> tuple[int, Box] | LineError:
    """Parse one stripped, non-empty label line to (class, normalised xyxy box).

    Returns a :class:`LineError` for a bad line. Class ids are checked against ``nc``
    when it is known; the box is checked later, against the image (see ``fit_box``).

    >>> parse_label_line("1 0.1 0.1 0.3 0.1 0.2 0.4", 2)
    (1, (0.1, 0.1, 0.3, 0.4))
    >>> parse_label_line("5 0.5 0.5 0.1 0.1", 3).message
    "class id 5 is out of range: 3 classes (ids 0-2): '5 0.5 0.5 0.1 0.1'"
    """
    parts = line.split()
    n = len(parts)
    if n < 5:
        return LineError(
            "malformed_line", f"expected 5 numbers 'class cx cy w h', got {n}: {line!r}"
        )
    if n > 5 and n % 2 == 0:
        return LineError(
            "malformed_line",
            "expected 5 numbers 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...' "
            f"(an odd count of at least 7), got {n}: {line!r}",
        )
    values: list[float] = []
    for tok in parts:
        value = finite_number(tok)
        if value is None:
            what = "not a finite number" if _is_float(tok) else "not a number"
            return LineError("malformed_line", f"{tok!r} is {what}: {line!r}")
        values.append(value)
    if not values[0].is_integer():
        return LineError("malformed_line", f"class id {parts[0]!r} is not a whole number: {line!r}")
    cls = int(values[0])
    if cls < 0 or (nc is not None and cls >= nc):
        if nc is None:
            declared = "class ids cannot be negative"
        elif nc == 0:
            declared = "the dataset declares no classes"
        else:
            declared = f"{nc} classes (ids 0-{nc - 1})"
        return LineError(
            "class_out_of_range", f"class id {cls} is out of range: {declared}: {line!r}"
        )
    if n == 5:
        cx, cy, w, h = values[1:]
        return cls, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    xs, ys = values[1::2], values[2::2]
    return cls, (min(xs), min(ys), max(xs), max(ys))


def _is_float(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _box_text(box: Box) -> str:
    x1, y1, x2, y2 = box
    return f"x1={x1:.4g} y1={y1:.4g} x2={x2:.4g} y2={y2:.4g} (normalised)"


def parse_label_file(
    label: Path, width: int, height: int, nc: int | None, log: IssueLog
) -> GroundTruth | None:
    """Boxes of one label file in pixels of a ``width`` x ``height`` image; None if absent.

    Bad lines are counted in ``log`` (file and line) and skipped.
    """
    try:
        data = label.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.add("malformed_line", label, None, f"cannot read the label file ({exc.strerror})")
        return GroundTruth.empty()
    boxes: list[Box] = []
    labels: list[int] = []
    for lineno, raw in enumerate(data.decode("utf-8-sig", errors="replace").split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        parsed = parse_label_line(line, nc)
        if isinstance(parsed, LineError):
            log.add(parsed.kind, label, lineno, parsed.message)
            continue
        cls, box = parsed
        fitted, issue = fit_box(box, 1.0, 1.0, _TOL)
        if issue == "degenerate_box":
            shape = "box" if len(line.split()) == 5 else "polygon"
            size = f"w={box[2] - box[0]:.4g}, h={box[3] - box[1]:.4g}"
            log.add(issue, label, lineno, f"{shape} has zero or negative size ({size}): {line!r}")
        elif issue == "box_outside":
            log.add(
                issue,
                label,
                lineno,
                f"box {_box_text(box)} lies entirely outside [0, 1]; dropped: {line!r}",
            )
        elif issue == "box_clipped":
            log.add(
                issue,
                label,
                lineno,
                f"box {_box_text(box)} extends outside [0, 1]; clipped to the image: {line!r}",
            )
        if fitted is None:
            continue
        x1, y1, x2, y2 = fitted
        boxes.append((x1 * width, y1 * height, x2 * width, y2 * height))
        labels.append(cls)
    return ground_truth(boxes, labels)


class _Split:
    """Where one split's images come from."""

    def __init__(self, images: list[Path], base: Path, folders: list[Path], source: str) -> None:
        self.images = images
        self.base = base  # ids are relative to this folder
        self.folders = folders  # image folders, checked for orphan label files
        self.source = source  # for messages: "data.yaml val" or a folder


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise DatasetError(f"{where}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise DatasetError(
            f"{path}: expected a mapping with 'names' and 'train'/'val'/'test', "
            f"got {type(doc).__name__}"
        )
    return doc


def _names_from_yaml(doc: dict[str, Any], path: Path) -> tuple[str, ...] | None:
    nc = doc.get("nc")
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc < 0):
        raise DatasetError(f"{path}: nc must be a whole number of classes, got {nc!r}")
    raw = doc.get("names")
    if raw is None:
        return None if nc is None else tuple(f"class{i}" for i in range(nc))
    if isinstance(raw, list):
        names = tuple(str(n) for n in raw)
    elif isinstance(raw, dict):
        by_id: dict[int, str] = {}
        for key, value in raw.items():
            if isinstance(key, bool) or not (
                isinstance(key, int) or (isinstance(key, str) and key.isdigit())
            ):
                raise DatasetError(f"{path}: names: key {key!r} is not a class id (0, 1, ...)")
            by_id[int(key)] = str(value)
        missing = sorted(set(range(len(by_id))) - set(by_id))
        if missing:
            raise DatasetError(
                f"{path}: names: class ids must run 0..{len(by_id) - 1} without gaps; "
                f"missing {', '.join(map(str, missing))}"
            )
        names = tuple(by_id[i] for i in range(len(by_id)))
    else:
        raise DatasetError(
            f"{path}: names must be a list or a mapping {{id: name}}, got {type(raw).__name__}"
        )
    if nc is not None and nc != len(names):
        raise DatasetError(
            f"{path}: nc is {nc} but names lists {len(names)} classes; make them agree"
        )
    return names


def _resolve_entry(root: Path, entry: str, yaml_path: Path, key: str) -> Path:
    p = absolute(root / entry)
    # Roboflow writes "../train/images" relative to a folder above the export;
    # Ultralytics retries without the "../", and so does brittle.
    if not p.exists() and entry.startswith("../"):
        alt = absolute(root / entry[3:])
        if alt.exists():
            return alt
    if not p.exists():
        raise DatasetError(f"{yaml_path}: {key}: {entry!r} not found (looked for {p})")
    return p


def _read_list(path: Path) -> list[Path]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the image list: {exc}") from exc
    # Relative entries ("./images/a.jpg") are relative to the list file, as in COCO's lists.
    return [absolute(path.parent / s.strip()) for s in lines if s.strip()]


def _split_from_yaml(
    doc: dict[str, Any], yaml_path: Path, root: Path, split: str | None
) -> tuple[str, _Split]:
    available = {k: doc[k] for k in _SPLIT_KEYS if doc.get(k) not in (None, "", [])}
    if not available:
        raise DatasetError(f"{yaml_path}: no train, val or test entry; add e.g. 'val: images'")
    name, entry = choose_split(available, split, str(yaml_path))
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    folders: list[Path] = []
    for e in entries:
        if not isinstance(e, str):
            raise DatasetError(
                f"{yaml_path}: {name}: expected a folder, a .txt list or a list of them, got {e!r}"
            )
        p = _resolve_entry(root, e, yaml_path, name)
        if p.is_dir():
            folders.append(p)
            images.extend(list_images(p))
        elif p.suffix.lower() == ".txt":
            images.extend(_read_list(p))
        else:
            raise DatasetError(
                f"{yaml_path}: {name}: {e!r} is neither a folder of images nor a .txt list "
                "of image paths"
            )
    base = folders[0] if len(entries) == 1 and folders else root
    return name, _Split(images, base, folders, f"{yaml_path} {name}")


def _bare_split(root: Path, split: str | None) -> tuple[str | None, _Split]:
    images_dir = root / "images"
    split_dirs = {
        d.name: d
        for d in sorted(images_dir.iterdir())
        if d.is_dir() and d.name.lower() in ("train", "val", "valid", "validation", "test")
    }
    if split_dirs:
        name, folder = choose_split(split_dirs, split, str(images_dir))
        return name, _Split(list_images(folder), folder, [folder], str(folder))
    no_splits(split, str(root))
    return None, _Split(list_images(images_dir), images_dir, [images_dir], str(images_dir))


def _bare_names(root: Path) -> tuple[tuple[str, ...] | None, str]:
    for candidate in (root / "classes.txt", root / "labels" / "classes.txt"):
        if candidate.is_file():
            return read_names_file(candidate), str(candidate)
    # A Roboflow split folder (valid/ with images/ + labels/) opened directly: the
    # class names are in the export's data.yaml one level up.
    for name in _YAML_NAMES:
        parent_yaml = root.parent / name
        if parent_yaml.is_file():
            return _names_from_yaml(_load_yaml(parent_yaml), parent_yaml), str(parent_yaml)
    return None, str(root)


def _yaml_in(folder: Path) -> Path | None:
    for name in _YAML_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def _is_bare(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "labels").is_dir()


def _orphans(split: _Split, used: set[Path], log: IssueLog) -> None:
    for folder in split.folders:
        label_dir = label_path_for(folder / "x.jpg").parent
        if label_dir == folder or not label_dir.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(label_dir):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                p = Path(dirpath) / f
                if (
                    f.endswith(".txt")
                    and not f.startswith(".")
                    and p not in used
                    and not (f == "classes.txt" and Path(dirpath) == label_dir)
                ):
                    log.add("orphan_labels", p, None, "label file has no matching image; ignored")


@readers.register("yolo")
class YoloReader:
    """Roboflow / Ultralytics YOLO exports: ``data.yaml``, or ``images/`` + ``labels/``."""

    def sniff(self, path: Path) -> bool:
        """A .yaml file, or a folder with data.yaml or with images/ and labels/."""
        if path.is_file():
            return path.suffix.lower() in (".yaml", ".yml")
        return path.is_dir() and (_yaml_in(path) is not None or _is_bare(path))

    def read(self, path: Path, *, split: str | None = None, strict: bool = False) -> Dataset:
        """Index the split of the YOLO dataset at ``path``; see the module docs."""
        path = absolute(path)
        log = IssueLog(strict=strict)
        yaml_path = path if path.is_file() else _yaml_in(path)
        split_name: str | None
        if yaml_path is not None:
            doc = _load_yaml(yaml_path)
            base = doc.get("path")
            root = absolute(yaml_path.parent / str(base)) if base else yaml_path.parent
            if not root.is_dir():
                raise DatasetError(
                    f"{yaml_path}: path: {base!r} not found (looked for {root}; a relative "
                    "path is taken from the yaml's folder)"
                )
            names = _names_from_yaml(doc, yaml_path)
            names_where = str(yaml_path)
            if doc.get("names") is None and doc.get("nc") is not None:
                log.add(
                    "unnamed_classes",
                    yaml_path,
                    None,
                    f"no names in data.yaml; using class0..class{len(names or ()) - 1} "
                    "(add names: [...])",
                )
            split_name, source = _split_from_yaml(doc, yaml_path, root, split)
        elif path.is_dir() and _is_bare(path):
            root = path
            split_name, source = _bare_split(path, split)
            names, names_where = _bare_names(path)
        else:
            raise DatasetError(
                f"{path}: not a YOLO dataset: expected a data.yaml, or a folder holding "
                "data.yaml or images/ and labels/"
            )
        records = self._index(source, names, log)
        if names is None:
            top = max(
                (
                    int(r.targets.labels.max())
                    for r in records
                    if r.targets is not None and len(r.targets)
                ),
                default=-1,
            )
            names = tuple(f"class{i}" for i in range(top + 1))
            using = (
                f"using class0..class{top} after the ids in the labels"
                if names
                else ("and no labels to count them from")
            )
            log.add(
                "unnamed_classes",
                names_where,
                None,
                f"no class names found (no data.yaml names, no classes.txt); {using} "
                "(add a classes.txt with one name per line)",
            )
        return Dataset(
            name=root.name or str(root),
            format="yolo",
            root=root,
            class_names=names,
            records=tuple(records),
            issues=log,
            split=split_name,
        )

    @staticmethod
    def _index(source: _Split, names: tuple[str, ...] | None, log: IssueLog) -> list[ImageRecord]:
        nc = None if names is None else len(names)
        records: list[ImageRecord] = []
        seen: set[str] = set()
        used: set[Path] = set()
        for image in source.images:
            if not is_image_path(image):
                log.add("unreadable_image", image, None, "not an image file (unknown suffix)")
                continue
            rid = relative_id(image, source.base)
            if rid in seen:
                log.add("duplicate_image", image, None, f"listed more than once in {source.source}")
                continue
            seen.add(rid)
            label = label_path_for(image)
            used.add(label)
            header = index_image(image, log, rid)
            if header is None:
                continue
            targets = parse_label_file(label, header.width, header.height, nc, log)
            if targets is None:
                log.add(
                    "missing_labels",
                    label,
                    None,
                    f"label file not found; image {rid!r} counted as having no objects",
                )
                targets = GroundTruth.empty()
            records.append(ImageRecord(rid, image, header.width, header.height, targets))
        _orphans(source, used, log)
        return records
