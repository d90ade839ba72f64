"""Core data types: frozen dataclasses over numpy arrays.

Boxes are always absolute pixel coordinates ``(x1, y1, x2, y2)`` in the image
they belong to. Constructors coerce array-likes to the documented dtype and
check shapes, naming what was expected and what came:

>>> import numpy as np
>>> d = Detections(boxes=[[0, 0, 10, 10]], scores=[0.9], labels=[2])
>>> len(d), d.boxes.dtype, d.labels.dtype
(1, dtype('float32'), dtype('int64'))
>>> Detections(boxes=np.zeros((3, 5)), scores=np.zeros(3), labels=np.zeros(3))
Traceback (most recent call last):
...
brittle.errors.ShapeError: Detections.boxes: expected shape (N, 4), got (3, 5)

Arrays are stored as read-only views, so a dataclass really is immutable:

>>> d.boxes[0, 0] = 5
Traceback (most recent call last):
...
ValueError: assignment destination is read-only
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brittle.errors import ShapeError

__all__ = ["Detections", "GroundTruth", "Sample", "box_areas"]


def _frozen(
    owner: str, name: str, value: ArrayLike, dtype: type[Any], ndim: int, width: int | None = None
) -> NDArray[Any]:
    """Coerce ``value`` to a read-only array of ``dtype`` with the expected rank."""
    arr = np.asarray(value, dtype=dtype)
    if ndim == 2 and arr.size == 0 and arr.ndim == 1:
        arr = arr.reshape(0, width or 0)
    expected = "(N,)" if ndim == 1 else f"(N, {width})"
    if arr.ndim != ndim or (width is not None and arr.shape[1] != width):
        raise ShapeError(f"{owner}.{name}: expected shape {expected}, got {tuple(arr.shape)}")
    view = arr.view()
    view.flags.writeable = False
    return view


def _same_length(owner: str, **arrays: NDArray[Any]) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise ShapeError(f"{owner}: arrays must have the same length N, got {detail}")


def box_areas(boxes: NDArray[Any]) -> NDArray[np.float64]:
    """Areas of ``(N, 4)`` xyxy boxes (width x height, never negative).

    >>> box_areas(np.array([[0, 0, 2, 3], [5, 5, 4, 9]], dtype=float)).tolist()
    [6.0, 0.0]
    """
    b = np.asarray(boxes, dtype=np.float64)
    w = np.clip(b[:, 2] - b[:, 0], 0, None)
    h = np.clip(b[:, 3] - b[:, 1], 0, None)
    return np.asarray(w * h, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Detections:
    """A model's detections for one image, in the class space of whoever made them.

    ``boxes`` float32 (N, 4) xyxy pixels, ``scores`` float32 (N,), ``labels`` int64 (N,).
    """

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    labels: NDArray[np.int64]

    def __post_init__(self) -> None:
        boxes = _frozen("Detections", "boxes", self.boxes, np.float32, 2, 4)
        scores = _frozen("Detections", "scores", self.scores, np.float32, 1)
        labels = _frozen("Detections", "labels", self.labels, np.int64, 1)
        _same_length("Detections", boxes=boxes, scores=scores, labels=labels)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        """No detections.

        >>> len(Detections.empty())
        0
        """
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def select(self, index: NDArray[Any] | slice) -> Detections:
        """The detections picked by a boolean mask, an index array or a slice.

        >>> d = Detections([[0, 0, 1, 1], [0, 0, 2, 2]], [0.2, 0.8], [0, 1])
        >>> d.select(d.scores > 0.5).labels.tolist()
        [1]
        """
        return Detections(self.boxes[index], self.scores[index], self.labels[index])


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Labelled objects of one image, in the dataset's class space.

    ``boxes`` float64 (N, 4) xyxy pixels, ``labels`` int64 (N,), ``iscrowd`` bool (N,)
    (COCO crowd regions: matches to them are ignored), ``areas`` float64 (N,) — the
    object area COCO uses for its small/medium/large ranges (box area unless the
    dataset gives one, as COCO JSON does).

    >>> gt = GroundTruth(boxes=[[0, 0, 4, 5]], labels=[3])
    >>> gt.areas.tolist(), gt.iscrowd.tolist()
    ([20.0], [False])
    """

    boxes: NDArray[np.float64]
    labels: NDArray[np.int64]
    iscrowd: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))
    areas: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, np.float64))

    def __post_init__(self) -> None:
        boxes = _frozen("GroundTruth", "boxes", self.boxes, np.float64, 2, 4)
        labels = _frozen("GroundTruth", "labels", self.labels, np.int64, 1)
        n = len(labels)
        iscrowd_in = np.asarray(self.iscrowd)
        iscrowd = _frozen(
            "GroundTruth",
            "iscrowd",
            np.zeros(n, np.bool_) if iscrowd_in.size == 0 and n else iscrowd_in,
            np.bool_,
            1,
        )
        areas_in = np.asarray(self.areas)
        areas = _frozen(
            "GroundTruth",
            "areas",
            box_areas(boxes) if areas_in.size == 0 and n else areas_in,
            np.float64,
            1,
        )
        _same_length("GroundTruth", boxes=boxes, labels=labels, iscrowd=iscrowd, areas=areas)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "iscrowd", iscrowd)
        object.__setattr__(self, "areas", areas)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @classmethod
    def empty(cls) -> GroundTruth:
        """An image with no labelled objects."""
        return cls(np.zeros((0, 4)), np.zeros(0, np.int64))


@dataclass(frozen=True, slots=True)
class Sample:
    """One decoded image: ``image`` is RGB uint8 (H, W, 3); ``targets`` is None when unlabelled.

    >>> s = Sample("a", np.zeros((4, 6, 3), np.uint8), GroundTruth.empty())
    >>> s.height, s.width
    (4, 6)
    >>> Sample("b", np.zeros((4, 6), np.uint8), None)
    Traceback (most recent call last):
    ...
    brittle.errors.ShapeError: Sample.image: expected uint8 (H, W, 3) RGB, got uint8 (4, 6)
    """

    id: str
    image: NDArray[np.uint8]
    targets: GroundTruth | None = None

    def __post_init__(self) -> None:
        img = self.image
        if (
            not isinstance(img, np.ndarray)
            or img.dtype != np.uint8
            or img.ndim != 3
            or (img.shape[2] != 3)
        ):
            got = f"{getattr(img, 'dtype', type(img).__name__)} {tuple(np.shape(img))}"
            raise ShapeError(f"Sample.image: expected uint8 (H, W, 3) RGB, got {got}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
