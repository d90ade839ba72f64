"""What every dataset reader produces: a :class:`Dataset` index plus an :class:`IssueLog`.

Reading is split in two phases. ``read()`` builds the index — every label file
parsed, every image header read (size after EXIF orientation), every problem
counted — before any pixel is decoded or any model runs, so bad input is
reported up front. ``Dataset.load(record)`` decodes one image later, in
whatever worker needs it.

>>> log = IssueLog()
>>> log.add("malformed_line", "labels/a.txt", 3, "expected 5 numbers, got 4")
>>> log.counts()
{'malformed_line': 1}
>>> print(log.first("malformed_line"))
labels/a.txt:3: expected 5 numbers, got 4
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from brittle.errors import DatasetError
from brittle.types import GroundTruth, Sample

__all__ = [
    "FATAL_WHEN_STRICT",
    "ISSUE_KINDS",
    "Dataset",
    "DatasetReader",
    "ImageRecord",
    "Issue",
    "IssueLog",
]

#: Every kind of problem a reader counts, with what brittle did about it.
ISSUE_KINDS: dict[str, str] = {
    "malformed_line": "label lines or entries that could not be parsed (skipped)",
    "class_out_of_range": "labels with a class id outside the dataset's classes (skipped)",
    "degenerate_box": "boxes with zero or negative width or height (dropped)",
    "box_clipped": "boxes partly outside the image (clipped to it)",
    "box_outside": "boxes entirely outside the image (dropped)",
    "missing_labels": "images without a label file (treated as having no objects)",
    "orphan_labels": "label files without an image (ignored)",
    "unreadable_image": "images that could not be read or decoded (skipped)",
    "converted_image": "grayscale, RGBA, palette or 16-bit images (converted to RGB uint8)",
    "exif_rotated": "images with an EXIF orientation (rotated upright; labels follow upright)",
    "unknown_class": "annotations naming a class the dataset does not declare (skipped)",
    "unknown_image": "annotations for an image the annotation file does not list (skipped)",
    "duplicate_image": "images listed more than once (the first is kept)",
    "size_mismatch": "images whose size differs from the annotation file's (labels kept as given)",
    "unnamed_classes": "datasets without class names (named class0, class1, … after the ids)",
}

#: Issue kinds that ``strict=True`` turns into a :class:`DatasetError`.
FATAL_WHEN_STRICT: frozenset[str] = frozenset(
    {
        "malformed_line",
        "class_out_of_range",
        "degenerate_box",
        "unreadable_image",
        "unknown_class",
        "unknown_image",
        "size_mismatch",
    }
)


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a dataset, located by file and (when known) line."""

    kind: str
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


class IssueLog:
    """Counts dataset problems by kind and keeps the first few of each as examples.

    Thread-safe: decoding workers may add to it while the index is in use.
    """

    def __init__(self, strict: bool = False, keep: int = 5) -> None:
        self.strict = strict
        self._keep = keep
        self._counts: dict[str, int] = {}
        self._examples: dict[str, list[Issue]] = {}
        #: ids of every image that could not be indexed (not just the first few)
        self.skipped: list[str] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        # A copy sent to a worker process: everything but the lock, which is per process.
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def add(self, kind: str, file: str | Path, line: int | None, message: str) -> None:
        """Record a problem; with ``strict`` and a fatal kind, raise :class:`DatasetError`."""
        if kind not in ISSUE_KINDS:
            raise ValueError(f"unknown issue kind {kind!r}")
        issue = Issue(kind, str(file), line, message)
        if self.strict and kind in FATAL_WHEN_STRICT:
            raise DatasetError(f"{issue} (--strict makes this fatal; drop --strict to skip it)")
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            examples = self._examples.setdefault(kind, [])
            if len(examples) < self._keep:
                examples.append(issue)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def count(self, kind: str) -> int:
        return self._counts.get(kind, 0)

    def first(self, kind: str) -> Issue | None:
        examples = self._examples.get(kind)
        return examples[0] if examples else None

    def examples(self, kind: str) -> list[Issue]:
        return list(self._examples.get(kind, []))

    def summary(self) -> list[str]:
        """One line per kind: count, what was done, and the first example.

        >>> log = IssueLog()
        >>> log.add("box_clipped", "labels/a.txt", 2, "x2 > width")
        >>> log.summary()
        ['1 boxes partly outside the image (clipped to it); first: labels/a.txt:2: x2 > width']
        """
        return [
            f"{n} {ISSUE_KINDS[kind]}; first: {self.first(kind)}"
            for kind, n in self.counts().items()
        ]

    def __bool__(self) -> bool:
        return bool(self._counts)


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image of the index: a stable ``id``, its file, size after EXIF orientation, targets.

    ``id`` is the image path relative to the dataset's image folder, with ``/``
    separators, so it is stable across machines.
    """

    id: str
    path: Path
    width: int
    height: int
    targets: GroundTruth | None


@dataclass(frozen=True)
class Dataset:
    """An indexed dataset; images are decoded on demand by :meth:`load`."""

    name: str
    format: str
    root: Path
    class_names: tuple[str, ...]
    records: tuple[ImageRecord, ...]
    issues: IssueLog = field(default_factory=IssueLog)
    split: str | None = None

    @property
    def labeled(self) -> bool:
        return any(r.targets is not None for r in self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self.records)

    def load(self, record: ImageRecord, data: bytes | None = None) -> Sample:
        """Decode ``record``'s image to RGB uint8 (H, W, 3) and pair it with its targets.

        ``data`` is the file's bytes when the caller has read them already (to hash them).
        Raises :class:`DatasetError` (naming the file) when the image cannot be
        decoded or its decoded size differs from the indexed one.
        """
        from brittle.data.images import decode_image, decode_image_bytes

        image = decode_image(record.path) if data is None else decode_image_bytes(data, record.path)
        h, w = image.shape[:2]
        if (w, h) != (record.width, record.height):
            raise DatasetError(
                f"{record.path}: decoded size {w}x{h} differs from the header's "
                f"{record.width}x{record.height}; the file may be corrupt"
            )
        return Sample(record.id, image, record.targets)


@runtime_checkable
class DatasetReader(Protocol):
    """A dataset format. Register implementations with ``@readers.register("name")``."""

    def sniff(self, path: Path) -> bool:
        """True when ``path`` looks like this format (used to pick a reader automatically)."""
        ...

    def read(self, path: Path, *, split: str | None = None, strict: bool = False) -> Dataset:
        """Index the dataset at ``path``; bad records go to ``Dataset.issues``."""
        ...
