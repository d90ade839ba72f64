"""A plain folder of images, searched recursively: no labels, so no metrics, but every
perturbation and prediction still works (and a ``brittle data`` check still reads every
image header).

>>> FolderReader().sniff(Path("no/such/folder"))
False
"""

from __future__ import annotations

from pathlib import Path

from brittle.data._common import absolute, index_image, list_images, no_splits, relative_id
from brittle.data._registry import readers
from brittle.data.base import Dataset, ImageRecord, IssueLog
from brittle.data.images import is_image_path
from brittle.errors import DatasetError

__all__ = ["FolderReader"]


def _any_image(folder: Path) -> bool:
    """True as soon as one image is found (without listing a whole large tree)."""
    stack = [folder]
    while stack:
        d = stack.pop()
        try:
            entries = list(d.iterdir())
        except OSError:
            continue
        for p in entries:
            if p.name.startswith("."):
                continue
            if p.is_file() and is_image_path(p):
                return True
            if p.is_dir():
                stack.append(p)
    return False


@readers.register("folder")
class FolderReader:
    """Every image under a folder (hidden files and folders skipped); records have no targets."""

    def sniff(self, path: Path) -> bool:
        """A folder with at least one image file somewhere below it."""
        return path.is_dir() and _any_image(path)

    def read(self, path: Path, *, split: str | None = None, strict: bool = False) -> Dataset:
        """Index every image under ``path``; ids are paths relative to it."""
        root = absolute(path)
        if not root.is_dir():
            raise DatasetError(f"{root}: not a folder of images")
        no_splits(split, str(root))
        log = IssueLog(strict=strict)
        records = []
        for image in list_images(root):
            header = index_image(image, log, relative_id(image, root))
            if header is not None:
                records.append(
                    ImageRecord(relative_id(image, root), image, header.width, header.height, None)
                )
        return Dataset(
            name=root.name or str(root),
            format="folder",
            root=root,
            class_names=(),
            records=tuple(records),
            issues=log,
            split=None,
        )
