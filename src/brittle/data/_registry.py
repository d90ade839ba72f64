"""The dataset-format registry, in its own module so readers can import it without cycles."""

from __future__ import annotations

from collections.abc import Callable

from brittle.data.base import DatasetReader
from brittle.registry import Registry

__all__ = ["readers"]

#: Dataset formats by name; third-party packages add theirs under the
#: ``brittle.datasets`` entry-point group (a class or factory returning a DatasetReader).
readers: Registry[Callable[[], DatasetReader]] = Registry(
    "dataset format", entry_point_group="brittle.datasets"
)
