"""Dataset readers: YOLO (Roboflow / Ultralytics), COCO JSON, Pascal VOC and plain folders.

:func:`open_dataset` picks the reader from the layout (or takes ``format``) and returns
a :class:`~brittle.data.base.Dataset` index; see ``docs/datasets.md`` for the layouts,
conventions and every issue a reader counts.

>>> sorted(readers)
['coco', 'folder', 'voc', 'yolo']
>>> open_dataset(".", format="yollo")
Traceback (most recent call last):
...
brittle.errors.UnknownNameError: unknown dataset format 'yollo'; did you mean 'yolo'? \
(known: coco, folder, voc, yolo)
"""

from __future__ import annotations

import os
from pathlib import Path

from brittle.data import coco, folder, voc, yolo
from brittle.data._common import absolute
from brittle.data._registry import readers
from brittle.data.base import Dataset, DatasetReader, ImageRecord, IssueLog
from brittle.data.images import IMAGE_SUFFIXES
from brittle.errors import DatasetError

__all__ = [
    "Dataset",
    "DatasetReader",
    "ImageRecord",
    "IssueLog",
    "detect_format",
    "open_dataset",
    "readers",
]

# The built-in readers are imported above for their registration side effect.
_BUILTIN = (yolo, coco, voc, folder)

#: Order in which readers are asked whether a path is theirs; the folder reader accepts
#: any folder with an image in it, so it goes last, after any plugin formats.
SNIFF_ORDER = ("yolo", "coco", "voc")
_LAST = "folder"


def detect_format(path: str | os.PathLike[str]) -> str:
    """The name of the first reader whose ``sniff`` accepts ``path``.

    >>> detect_format("no/such/folder")
    Traceback (most recent call last):
    ...
    brittle.errors.DatasetError: no/such/folder: no such file or folder
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    names = list(SNIFF_ORDER) + [n for n in readers if n not in SNIFF_ORDER and n != _LAST]
    names.append(_LAST)
    for name in names:
        if readers.get(name)().sniff(p):
            return name
    suffixes = " ".join(sorted(IMAGE_SUFFIXES))
    raise DatasetError(
        f"{p}: not a dataset layout brittle recognises. It reads: a YOLO data.yaml, or a "
        "folder with data.yaml or images/ + labels/; a COCO instances .json, or a folder "
        "with annotations/instances_*.json or <split>/_annotations.coco.json; a Pascal VOC "
        f"folder with Annotations/ + JPEGImages/; or a folder of images ({suffixes}). "
        "Pass format= (--data-format) to force one"
    )


def open_dataset(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    split: str | None = None,
    strict: bool = False,
) -> Dataset:
    """Index the dataset at ``path`` (a folder; a data.yaml for YOLO; a .json for COCO).

    ``format`` names a reader (default: detected from the layout); ``split`` picks
    train/val/test where the dataset has splits (default: val, else test, else train);
    ``strict`` turns bad records (see ``FATAL_WHEN_STRICT``) into a DatasetError.

    >>> import tempfile, cv2, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = cv2.imwrite(f"{d}/a.png", np.zeros((4, 6, 3), np.uint8))
    ...     ds = open_dataset(d)
    ...     ds.format, [(r.id, r.width, r.height, r.targets) for r in ds]
    ('folder', [('a.png', 6, 4, None)])
    """
    p = Path(path)
    if format is None:
        format = detect_format(p)
    reader = readers.get(format)()
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    return reader.read(absolute(p), split=split, strict=strict)
