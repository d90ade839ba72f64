"""Conversion between brittle's types and COCO JSON dicts (instances and results).

Category ids are class index + 1; image ids default to 1..N in list order. Boxes are
written as ``[x, y, x2 - x, y2 - y]`` in float64 by :func:`xyxy_to_xywh` — the very
numbers :mod:`brittle.metrics.coco` computes its IoUs from, so pycocotools run on these
dicts reproduces brittle's metrics exactly.

>>> import numpy as np
>>> from brittle.types import Detections, GroundTruth
>>> gt = gt_to_coco([GroundTruth(boxes=[[1, 2, 4, 6]], labels=[1])], ["cat", "dog"])
>>> gt["annotations"][0]["bbox"], gt["annotations"][0]["category_id"]
([1.0, 2.0, 3.0, 4.0], 2)
>>> dets_to_coco([Detections([[1, 2, 4, 6]], [0.5], [1])])
[{'image_id': 1, 'category_id': 2, 'bbox': [1.0, 2.0, 3.0, 4.0], 'score': 0.5}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brittle.errors import DatasetError, ShapeError
from brittle.types import Detections, GroundTruth

__all__ = [
    "CocoGroundTruth",
    "coco_to_dets",
    "coco_to_gt",
    "dets_to_coco",
    "gt_to_coco",
    "xyxy_to_xywh",
]


def xyxy_to_xywh(boxes: ArrayLike) -> NDArray[np.float64]:
    """``(N, 4)`` xyxy boxes as COCO ``[x, y, w, h]`` in float64 (``w = x2 - x``).

    >>> xyxy_to_xywh(np.array([[1.5, 2, 4, 7]], np.float32)).tolist()
    [[1.5, 2.0, 2.5, 5.0]]
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = b.copy()
    out[:, 2:] -= b[:, :2]
    return out


def _ids(image_ids: Sequence[int] | None, n: int) -> list[int]:
    if image_ids is None:
        return list(range(1, n + 1))
    if len(image_ids) != n:
        raise ShapeError(f"image_ids: expected {n} ids (one per image), got {len(image_ids)}")
    ids = [int(i) for i in image_ids]
    if len(set(ids)) != n:
        raise ShapeError("image_ids: ids must be distinct")
    return ids


def _per_image(name: str, values: Sequence[Any] | None, n: int) -> list[Any] | None:
    if values is None:
        return None
    if len(values) != n:
        raise ShapeError(f"{name}: expected {n} values (one per image), got {len(values)}")
    return list(values)


def gt_to_coco(
    gts: Sequence[GroundTruth],
    class_names: Sequence[str],
    *,
    image_ids: Sequence[int] | None = None,
    file_names: Sequence[str] | None = None,
    widths: Sequence[int] | None = None,
    heights: Sequence[int] | None = None,
    classes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """A COCO instances dict of the ground truth (annotation ids 1.. in image order).

    ``classes`` restricts categories and annotations to those class indices. Images
    get ``width``/``height`` only when given; ``file_name`` defaults to the image id.
    """
    n = len(gts)
    ids = _ids(image_ids, n)
    names = _per_image("file_names", file_names, n)
    ws = _per_image("widths", widths, n)
    hs = _per_image("heights", heights, n)
    keep = sorted(set(range(len(class_names)) if classes is None else map(int, classes)))
    images: list[dict[str, Any]] = []
    for i, image_id in enumerate(ids):
        im: dict[str, Any] = {"id": image_id, "file_name": names[i] if names else str(image_id)}
        if ws is not None:
            im["width"] = int(ws[i])
        if hs is not None:
            im["height"] = int(hs[i])
        images.append(im)
    keep_set = set(keep)
    annotations: list[dict[str, Any]] = []
    for image_id, gt in zip(ids, gts, strict=True):
        for box, label, crowd, area in zip(
            xyxy_to_xywh(gt.boxes).tolist(),
            gt.labels.tolist(),
            gt.iscrowd.tolist(),
            gt.areas.tolist(),
            strict=True,
        ):
            if label in keep_set:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": label + 1,
                        "bbox": box,
                        "area": area,
                        "iscrowd": int(crowd),
                    }
                )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c + 1, "name": class_names[c]} for c in keep],
    }


def dets_to_coco(
    dets: Sequence[Detections],
    *,
    image_ids: Sequence[int] | None = None,
    classes: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """A COCO results list, each image's detections in their given order.

    The order matters: pycocotools breaks score ties by it. Labels outside ``classes``
    (when given) are dropped.
    """
    ids = _ids(image_ids, len(dets))
    keep = None if classes is None else {int(c) for c in classes}
    out: list[dict[str, Any]] = []
    for image_id, det in zip(ids, dets, strict=True):
        for box, label, score in zip(
            xyxy_to_xywh(det.boxes).tolist(), det.labels.tolist(), det.scores.tolist(), strict=True
        ):
            if keep is None or label in keep:
                out.append(
                    {"image_id": image_id, "category_id": label + 1, "bbox": box, "score": score}
                )
    return out


@dataclass(frozen=True, slots=True)
class CocoGroundTruth:
    """Ground truth read from a COCO instances dict, images sorted by id.

    Class ``i`` is the ``i``-th category by ascending id (``category_ids[i]``), so a
    dict written by :func:`gt_to_coco` with all classes reads back with the same labels.
    """

    gts: list[GroundTruth]
    image_ids: list[int]
    file_names: list[str]
    class_names: list[str]
    category_ids: list[int]

    def class_of(self) -> dict[int, int]:
        """Category id -> class index."""
        return {c: i for i, c in enumerate(self.category_ids)}


def coco_to_gt(coco: Mapping[str, Any]) -> CocoGroundTruth:
    """Read a COCO instances dict (bbox, area and iscrowd of each annotation).

    Boxes become xyxy as ``x + w``, which may differ from the original right edge in
    the last bit; areas are kept as given.
    """
    try:
        cats = sorted(coco["categories"], key=lambda c: int(c["id"]))
        images = sorted(coco["images"], key=lambda im: int(im["id"]))
        anns = coco.get("annotations", [])
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"not a COCO instances dict: missing {exc}") from exc
    cat_ids = [int(c["id"]) for c in cats]
    class_of = {c: i for i, c in enumerate(cat_ids)}
    row = {int(im["id"]): i for i, im in enumerate(images)}
    per: list[list[tuple[list[float], int, bool, float]]] = [[] for _ in images]
    for ann in anns:
        image_id, cat = int(ann["image_id"]), int(ann["category_id"])
        if image_id not in row or cat not in class_of:
            raise DatasetError(
                f"annotation {ann.get('id')}: unknown image_id {image_id} or category_id {cat}"
            )
        x, y, w, h = (float(v) for v in ann["bbox"])
        area = float(ann["area"]) if "area" in ann else w * h
        crowd = bool(ann.get("iscrowd", 0))
        per[row[image_id]].append(([x, y, x + w, y + h], class_of[cat], crowd, area))
    gts = [
        GroundTruth(
            boxes=np.array([p[0] for p in items], np.float64).reshape(-1, 4),
            labels=np.array([p[1] for p in items], np.int64),
            iscrowd=np.array([p[2] for p in items], np.bool_),
            areas=np.array([p[3] for p in items], np.float64),
        )
        for items in per
    ]
    return CocoGroundTruth(
        gts=gts,
        image_ids=[int(im["id"]) for im in images],
        file_names=[str(im.get("file_name", im["id"])) for im in images],
        class_names=[str(c.get("name", c["id"])) for c in cats],
        category_ids=cat_ids,
    )


def coco_to_dets(results: Sequence[Mapping[str, Any]], gt: CocoGroundTruth) -> list[Detections]:
    """Detections per image of ``gt`` from a COCO results list, in list order.

    Results on categories absent from ``gt`` are left out, as pycocotools does; results
    on unknown images raise :class:`DatasetError`. :class:`Detections` holds float32
    boxes and scores, so decimal values are rounded: for pycocotools-exact numbers on
    arbitrary files use :func:`brittle.metrics.coco.evaluate_coco`.
    """
    row = {image_id: i for i, image_id in enumerate(gt.image_ids)}
    class_of = gt.class_of()
    per: list[list[tuple[list[float], float, int]]] = [[] for _ in gt.image_ids]
    for n, r in enumerate(results):
        image_id, cat = int(r["image_id"]), int(r["category_id"])
        if image_id not in row:
            raise DatasetError(f"result {n}: unknown image_id {image_id}")
        if cat not in class_of:
            continue  # as pycocotools, which only evaluates the ground truth's categories
        x, y, w, h = (float(v) for v in r["bbox"])
        per[row[image_id]].append(([x, y, x + w, y + h], float(r["score"]), class_of[cat]))
    return [
        Detections(
            boxes=np.array([p[0] for p in items], np.float32).reshape(-1, 4),
            scores=np.array([p[1] for p in items], np.float32),
            labels=np.array([p[2] for p in items], np.int64),
        )
        for items in per
    ]
