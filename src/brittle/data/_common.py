"""Helpers shared by the readers: listing images, reading headers, fitting boxes, splits."""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path, PureWindowsPath
from typing import TypeVar

import numpy as np

from brittle.data.base import IssueLog
from brittle.data.images import ImageError, ImageHeader, is_image_path, read_image_header
from brittle.errors import DatasetError
from brittle.types import GroundTruth

T = TypeVar("T")

Box = tuple[float, float, float, float]

#: Preferred splits when none is asked for, in order.
DEFAULT_SPLITS = ("val", "test", "train")
_SPLIT_ALIASES = {"valid": "val", "validation": "val"}


def absolute(path: Path | str) -> Path:
    """``path`` made absolute without resolving symlinks; ``..`` is removed lexically.

    >>> absolute("/data/a/../b").as_posix()
    '/data/b'
    """
    return Path(os.path.abspath(path))


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by relative path.

    Hidden files and folders (``.DS_Store``, macOS ``._x.jpg`` resource forks,
    ``.ipynb_checkpoints``) are skipped. Symlinked folders are followed once.
    """
    found: list[Path] = []
    seen: set[str] = set()

    def walk(d: str) -> None:
        real = os.path.realpath(d)
        if real in seen:  # a symlink loop, or the same folder linked twice
            return
        seen.add(real)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                walk(e.path)
            elif e.is_file() and is_image_path(Path(e.name)):
                found.append(Path(e.path))

    walk(str(folder))
    return found


def relative_id(path: Path, base: Path) -> str:
    """The record id of ``path``: relative to ``base`` with ``/``, else the absolute path.

    >>> relative_id(Path("/d/images/sub/a.jpg"), Path("/d/images"))
    'sub/a.jpg'
    >>> relative_id(Path("/elsewhere/a.jpg"), Path("/d/images"))
    '/elsewhere/a.jpg'
    """
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def safe_relative(name: str) -> str | None:
    """``name`` as a normalised relative posix path, or None when absolute or escaping.

    Backslashes count as separators (annotation files written on Windows).

    >>> safe_relative("sub\\\\a.jpg"), safe_relative("./a.jpg")
    ('sub/a.jpg', 'a.jpg')
    >>> safe_relative("../a.jpg"), safe_relative("/a.jpg"), safe_relative("C:/a.jpg")
    (None, None, None)
    """
    posix = name.replace("\\", "/")
    if posix.startswith("/") or PureWindowsPath(name).drive:
        return None
    norm = posixpath.normpath(posix)
    if norm == ".." or norm.startswith("../") or norm == ".":
        return None
    return norm


def index_image(path: Path, log: IssueLog, image_id: str) -> ImageHeader | None:
    """Read ``path``'s header, counting its notes; None (``unreadable_image``, and the id
    in ``log.skipped``) on failure."""
    try:
        header = read_image_header(path)
    except ImageError as exc:
        log.add("unreadable_image", path, None, exc.reason)
        log.skipped.append(image_id)
        return None
    for note in header.notes:
        log.add(note.kind, path, None, note.message)
    return header


def fit_box(box: Box, width: float, height: float, tol: float) -> tuple[Box | None, str | None]:
    """Check an xyxy box against a ``width`` x ``height`` image; clip it when partly outside.

    Returns the (possibly clipped) box, or None when it must be dropped, and the issue
    kind to count (``degenerate_box``, ``box_outside``, ``box_clipped`` or None).
    Overhangs up to ``tol`` are clipped without an issue: they are rounding noise.

    >>> fit_box((-5, 0, 10, 10), 100, 100, 0.0)
    ((0.0, 0.0, 10.0, 10.0), 'box_clipped')
    >>> fit_box((120, 0, 130, 10), 100, 100, 0.0)
    (None, 'box_outside')
    >>> fit_box((5, 5, 5, 9), 100, 100, 0.0)
    (None, 'degenerate_box')
    """
    x1, y1, x2, y2 = box
    if not x2 > x1 or not y2 > y1:
        return None, "degenerate_box"
    if x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0:
        return None, "box_outside"
    clipped = (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )
    outside = x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol
    clipped = (float(clipped[0]), float(clipped[1]), float(clipped[2]), float(clipped[3]))
    return clipped, ("box_clipped" if outside else None)


def finite_number(text: str) -> float | None:
    """``text`` as a finite float, or None.

    >>> finite_number("0.5"), finite_number("nan"), finite_number("x")
    (0.5, None, None)
    """
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def ground_truth(
    boxes: Sequence[Box],
    labels: Sequence[int],
    iscrowd: Sequence[bool] | None = None,
    areas: Sequence[float] | None = None,
) -> GroundTruth:
    """A :class:`GroundTruth` from Python lists (float64 boxes, int64 labels)."""
    return GroundTruth(
        boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
        labels=np.asarray(labels, np.int64),
        iscrowd=np.asarray(iscrowd if iscrowd else [], np.bool_),
        areas=np.asarray(areas if areas else [], np.float64),
    )


def canonical_split(name: str) -> str:
    """``valid`` and ``validation`` mean ``val``.

    >>> canonical_split("valid"), canonical_split("test")
    ('val', 'test')
    """
    return _SPLIT_ALIASES.get(name.lower(), name)


def choose_split(available: Mapping[str, T], split: str | None, where: str) -> tuple[str, T]:
    """Pick ``split`` (exact or unique prefix match) or the default from ``available``.

    The default is the first of val, test, train that exists, else the only split.

    >>> choose_split({"train": 1, "valid": 2}, None, "data.yaml")
    ('val', 2)
    >>> choose_split({"train2017": 1, "val2017": 2}, "train", "annotations/")
    ('train2017', 1)
    >>> choose_split({"train": 1}, "test", "data.yaml")
    Traceback (most recent call last):
    ...
    brittle.errors.DatasetError: data.yaml has no split 'test'; available: train
    """
    canon = {canonical_split(k): v for k, v in available.items()}
    listing = ", ".join(canon) or "none"
    if split is None:
        for pref in DEFAULT_SPLITS:
            hits = [k for k in canon if k.startswith(pref) and not k.startswith("trainval")]
            if len(hits) == 1 or pref in hits:
                key = pref if pref in hits else hits[0]
                return key, canon[key]
            if hits:
                raise DatasetError(
                    f"{where} has several {pref} splits ({', '.join(hits)}); choose one with split"
                )
        if len(canon) == 1:
            key = next(iter(canon))
            return key, canon[key]
        raise DatasetError(f"{where} has no default split; choose one of: {listing}")
    wanted = canonical_split(split)
    if wanted in canon:
        return wanted, canon[wanted]
    hits = [k for k in canon if k.startswith(wanted)]
    if len(hits) == 1:
        return hits[0], canon[hits[0]]
    if hits:
        raise DatasetError(f"{where}: split {split!r} is ambiguous: {', '.join(hits)}")
    raise DatasetError(f"{where} has no split {split!r}; available: {listing}")


def no_splits(split: str | None, where: str) -> None:
    """Raise when a split was asked of a dataset that has none."""
    if split is not None:
        raise DatasetError(
            f"{where} has no splits, so split {split!r} cannot be chosen; drop the split "
            "or point at a folder or file that has splits"
        )


def read_names_file(path: Path) -> tuple[str, ...]:
    """Class names from a text file, one per line (blank lines ignored)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read class names: {exc}") from exc
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters for messages.

    >>> short_repr(list(range(40)), 20)
    '[0, 1, 2, 3, 4, 5, …'
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
